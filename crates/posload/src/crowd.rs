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

use crate::child::Piped;
use anyhow::Context;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A crowd in a child process.
pub struct Crowd(Piped);

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
        let (addr, connections) = (addr.to_string(), connections.to_string());
        Piped::spawn(&["crowd", "--connections", &connections, "--addr", &addr]).map(Crowd)
    }

    /// Waits until every client has registered.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        self.expect("ready").await.map(drop)
    }

    /// Has every client propose (see [`Crowd::proposed`]).
    pub async fn propose(&mut self) -> anyhow::Result<()> {
        self.0.send("propose").await
    }

    /// Waits until every proposal of the last [`Crowd::propose`] is confirmed.
    pub async fn proposed(&mut self) -> anyhow::Result<()> {
        self.expect("proposed").await.map(drop)
    }

    /// Asks to be told when every client has block `index`.
    pub async fn watch(&mut self, index: u64) -> anyhow::Result<()> {
        self.0.send(&format!("block {index}")).await
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
        self.0.pid()
    }

    /// The next line, which must start with `word`; what follows it.
    async fn expect(&mut self, word: &str) -> anyhow::Result<String> {
        let line = tokio::time::timeout(Duration::from_secs(300), self.0.next_line())
            .await
            .with_context(|| format!("crowd: no {word:?} in 300 s"))??
            .with_context(|| format!("the crowd exited before {word:?}"))?;
        let rest = line
            .strip_prefix(word)
            .with_context(|| format!("crowd said {line:?}, expected {word:?}"))?;
        Ok(rest.trim().to_string())
    }
}
