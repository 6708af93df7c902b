//! What every task of a running posd shares.

use crate::announce::Announcer;
use crate::config::Config;
use crate::connected::Connected;
use crate::pending::Pending;
use crate::scheduler::NextRound;
use crate::writer::Writer;
use pos_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub struct Shared {
    pub config: Config,
    /// Read directly by sessions; written only through `writer`.
    pub store: Arc<Store>,
    pub writer: Writer,
    pub pending: Arc<Pending>,
    pub announcer: Announcer,
    pub connected: Arc<Connected>,
    pub next_round: Arc<NextRound>,
    /// Cancelled once on SIGTERM/SIGINT; every task watches it.
    pub shutdown: CancellationToken,
    /// The validator listener's real address (the config may say port 0).
    pub listen: SocketAddr,
    pub admin_socket: PathBuf,
    pub started: Instant,
    /// One permit per validator connection, `max_connections` in all.
    pub slots: Arc<Semaphore>,
}

impl Shared {
    /// Validator connections open right now.
    pub fn connections(&self) -> usize {
        self.config.max_connections as usize - self.slots.available_permits()
    }
}
