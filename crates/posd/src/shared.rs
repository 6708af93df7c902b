//! What every task of a running posd shares.

use crate::announce::Announcer;
use crate::config::Config;
use crate::connected::Connected;
use crate::pending::Pending;
use crate::scheduler::NextRound;
use crate::writer::Writer;
use pos_store::Store;
use std::sync::Arc;
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
}
