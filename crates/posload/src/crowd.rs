//! Clients in a child process (this executable's `crowd`), driven over its
//! pipes: one process may hold at most 20,000 sockets here (the open-files
//! hard limit), so 30,000 clients of a cluster, or of the floor, are several
//! crowds. The child connects and registers its clients, then on `propose`
//! has every one propose, and on `block <index>` reports when the last of
//! them had that block, as wall-clock nanoseconds, the one clock every
//! process shares.
//!
//! Child's stdout, one line per request: `ready`, `proposed`,
//! `delivered <index> <unix nanos>`.

use anyhow::Context;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A crowd in a child process.
pub struct Crowd {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

/// Now on the clock crowds report in.
pub fn wall_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

impl Crowd {
    /// Starts `connections` clients of `addr`; returns once the child has
    /// started connecting (see [`Crowd::ready`]).
    pub fn spawn(addr: SocketAddr, connections: usize) -> anyhow::Result<Crowd> {
        let exe = std::env::current_exe().context("finding posload's own executable")?;
        let mut child = Command::new(&exe)
            .args(["--addr", &addr.to_string(), "crowd"])
            .args(["--connections", &connections.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} crowd", exe.display()))?;
        let stdin = child.stdin.take().context("crowd stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("crowd stdout")?).lines();
        Ok(Crowd {
            child,
            stdin,
            stdout,
        })
    }

    /// Waits until every client has registered.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        self.expect("ready").await.map(drop)
    }

    /// Has every client propose (see [`Crowd::proposed`]).
    pub async fn propose(&mut self) -> anyhow::Result<()> {
        Ok(self.stdin.write_all(b"propose\n").await?)
    }

    /// Waits until every proposal of the last [`Crowd::propose`] is confirmed.
    pub async fn proposed(&mut self) -> anyhow::Result<()> {
        self.expect("proposed").await.map(drop)
    }

    /// Asks to be told when every client has block `index`.
    pub async fn watch(&mut self, index: u64) -> anyhow::Result<()> {
        Ok(self
            .stdin
            .write_all(format!("block {index}\n").as_bytes())
            .await?)
    }

    /// When the last client had the block of the last [`Crowd::watch`], in
    /// [`wall_nanos`].
    pub async fn delivered(&mut self) -> anyhow::Result<u128> {
        let rest = self.expect("delivered").await?;
        let at = rest
            .split_whitespace()
            .nth(1)
            .context("delivered: no time")?;
        Ok(at.parse()?)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next line, which must start with `word`; what follows it.
    async fn expect(&mut self, word: &str) -> anyhow::Result<String> {
        let line = tokio::time::timeout(Duration::from_secs(300), self.stdout.next_line())
            .await
            .with_context(|| format!("crowd: no {word:?} in 300 s"))??
            .with_context(|| format!("the crowd exited before {word:?}"))?;
        let rest = line
            .strip_prefix(word)
            .with_context(|| format!("crowd said {line:?}, expected {word:?}"))?;
        Ok(rest.trim().to_string())
    }
}
