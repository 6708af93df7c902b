//! The fan-out floor: a server that does nothing but what delivering a block
//! to every client cannot avoid. It accepts connections, answers the two
//! prompts as posd does (stake in, address out, the BPM prompt), and on each
//! trigger writes one pre-rendered announcement, the size of posd's, to
//! every connection, from as many tasks as the machine has cores, each
//! taking the next [`CHUNK`] connections until none are left (as posd's
//! fan-out does: fixed halves finished up to 60 ms apart on cores shared
//! with the clients): no store, no lottery, no session to wake. `posload
//! broadcast --floor` runs it after posd, as many rounds to as many
//! clients, and reports posd's fan-out as a ratio to it (docs/BENCHMARKS.md).
//!
//! Triggers come on stdin, one block index a line; after the writes for a
//! trigger are issued the floor prints `sent <index> in <time>` on stdout.

use crate::child::Piped;
use crate::nc::BPM_PROMPT;
use anyhow::Context;
use pos_core::{Address, Block, Digest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Connections that have registered, ready for announcements.
type Registered = Arc<Mutex<Vec<Arc<TcpStream>>>>;

/// Connections a writer takes at a time.
const CHUNK: usize = 64;

/// What posd writes to each client for block `index`: a blank line, the
/// winner, the block's JSON line, the BPM prompt again (protocol.rs, session.rs).
pub fn announcement(index: u64) -> String {
    let block = Block {
        index,
        timestamp_ms: 1_795_000_000_000 + index * 10_000,
        bpm: 72,
        prev_hash: Some(Digest([0x5a; 32])),
        validator: Some(Address(Digest([0xa5; 32]))),
        hash: Digest([0x3c; 32]),
    };
    let winner = block.validator.expect("set above");
    format!(
        "\nwinning validator: {winner}\n{}\n{BPM_PROMPT}",
        block.to_json_line()
    )
}

/// Serves on `listen` until stdin closes.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("floor listening on {}", listener.local_addr()?);
    let registered = Registered::default();
    let accepting = tokio::spawn(accept(listener, Arc::clone(&registered)));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut triggers = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = triggers.next_line().await? {
        let index: u64 = line
            .trim()
            .parse()
            .with_context(|| format!("trigger {line:?} is not a block index"))?;
        let started = std::time::Instant::now();
        let text: Arc<[u8]> = announcement(index).into_bytes().into();
        let all: Arc<[Arc<TcpStream>]> = registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_slice()
            .into();
        let cursor = Arc::new(AtomicUsize::new(0));
        let loops: Vec<_> = (0..workers)
            .map(|_| {
                let (all, cursor, text) =
                    (Arc::clone(&all), Arc::clone(&cursor), Arc::clone(&text));
                tokio::spawn(announce_to(all, cursor, text))
            })
            .collect();
        for l in loops {
            l.await?;
        }
        println!("sent {index} in {:?}", started.elapsed());
    }
    accepting.abort();
    Ok(())
}

/// Writes `text` to the next [`CHUNK`] connections of `all` at `cursor`,
/// until none are left; a dead one is skipped.
async fn announce_to(all: Arc<[Arc<TcpStream>]>, cursor: Arc<AtomicUsize>, text: Arc<[u8]>) {
    loop {
        let from = cursor.fetch_add(CHUNK, Ordering::Relaxed);
        if from >= all.len() {
            return;
        }
        for conn in &all[from..(from + CHUNK).min(all.len())] {
            write_all(conn, &text).await;
        }
    }
}

async fn write_all(conn: &TcpStream, text: &[u8]) {
    let mut at = 0;
    while at < text.len() {
        match conn.try_write(&text[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if conn.writable().await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

async fn accept(listener: TcpListener, registered: Registered) {
    let mut serial = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        serial += 1;
        let registered = Arc::clone(&registered);
        tokio::spawn(async move {
            if let Ok(stream) = register(stream, serial).await {
                registered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Arc::new(stream));
            }
        });
    }
}

/// The two prompts: the stake in, a made-up address and key out.
async fn register(mut stream: TcpStream, serial: u64) -> std::io::Result<TcpStream> {
    stream.set_nodelay(true)?;
    stream.write_all(b"Enter token balance:").await?;
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            break;
        }
    }
    let address = format!("{serial:064x}");
    let key = format!("{:064x}", u64::MAX - serial);
    let text = format!(
        "Validator address: {address}\n\
         Validator key: {key} (keep it secret; reconnect with: resume {key})\n{BPM_PROMPT}"
    );
    stream.write_all(text.as_bytes()).await?;
    Ok(stream)
}

/// A floor in a child process (this executable's `floor`), driven over its pipes.
pub struct Floor {
    pub addr: SocketAddr,
    child: Piped,
}

impl Floor {
    pub async fn spawn() -> anyhow::Result<Floor> {
        let mut child = Piped::spawn(&["floor", "--listen", "127.0.0.1:0"])?;
        let first = child
            .next_line()
            .await?
            .context("the floor exited before listening")?;
        let addr = first
            .strip_prefix("floor listening on ")
            .with_context(|| format!("unexpected first line from the floor: {first:?}"))?
            .parse()?;
        Ok(Floor { addr, child })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// Asks for block `index` to go out; returns once its writes are issued.
    pub async fn trigger(&mut self, index: u64) -> anyhow::Result<()> {
        self.start(index).await?;
        self.sent(index).await
    }

    /// Asks for block `index` to go out, without waiting (several floors at once).
    pub async fn start(&mut self, index: u64) -> anyhow::Result<()> {
        self.child.send(&index.to_string()).await
    }

    /// Waits until the writes of block `index` are issued.
    pub async fn sent(&mut self, index: u64) -> anyhow::Result<()> {
        let want = format!("sent {index} ");
        while let Some(line) = self.child.next_line().await? {
            if line.starts_with(&want) {
                return Ok(());
            }
        }
        anyhow::bail!("the floor exited")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_reads_as_posd_s_block_line() {
        let text = announcement(7);
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "");
        assert!(lines[1].starts_with("winning validator: "), "{text}");
        let json: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(json["Index"], 7);
        assert_eq!(lines[3], BPM_PROMPT);
    }
}
