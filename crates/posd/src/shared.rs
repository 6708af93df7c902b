//! What every task of a running posd shares.

use crate::announce::Announcer;
use crate::config::Config;
use crate::connected::Connected;
use crate::pending::Pending;
use crate::ratelimit::RegistrationRate;
use crate::scheduler::NextRound;
use crate::slots::Slots;
use crate::writer::Writer;
use pos_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub struct Shared {
    /// The running config; SIGHUP replaces its reloadable keys.
    pub config: watch::Sender<Arc<Config>>,
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
    /// Validator connections open right now, against `max_connections`.
    pub slots: Arc<Slots>,
    /// Registrations per source IP, against `registration_rate`.
    pub registrations: RegistrationRate,
}

impl Shared {
    /// A snapshot of the running config.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }
}
