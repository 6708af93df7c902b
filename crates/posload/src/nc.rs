//! An async validator connection speaking posd's line protocol.

use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub const STAKE_PROMPT: &str = "Enter token balance:";
pub const BPM_PROMPT: &str = "Enter a new BPM:";

pub struct Validator {
    pub rd: BufReader<OwnedReadHalf>,
    pub wr: OwnedWriteHalf,
    pub address: String,
}

/// Reads until `needle` has been seen; returns what follows it on its line.
pub async fn read_until(rd: &mut BufReader<OwnedReadHalf>, needle: &str) -> anyhow::Result<String> {
    scan(rd, needle, false).await
}

/// [`read_until`]; with `refuse`, an `error:` line before `needle` is posd's
/// answer, returned as the error (instead of waiting for ever).
async fn scan(
    rd: &mut BufReader<OwnedReadHalf>,
    needle: &str,
    refuse: bool,
) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Prompts have no newline: read up to the prompt's last byte instead.
        let n = rd.read_until(b'\n', &mut buf).await?;
        anyhow::ensure!(n > 0, "posd closed the connection");
        let text = String::from_utf8_lossy(&buf);
        if let Some(pos) = text.find(needle) {
            return Ok(text[pos + needle.len()..].trim().to_string());
        }
        if let Some(pos) = text.find("error: ").filter(|_| refuse) {
            anyhow::bail!("posd answered {}", text[pos..].trim());
        }
    }
}

/// Connects and registers a validator staking `stake`; posd's `error:`
/// answer (e.g. a rate limit) is the error.
pub async fn register(addr: SocketAddr, stake: u64) -> anyhow::Result<Validator> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(format!("{stake}\n").as_bytes()).await?;
    let address = scan(&mut rd, "Validator address: ", true).await?;
    Ok(Validator { rd, wr, address })
}
