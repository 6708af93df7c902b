//! What the tasks of a running posd share, in parts, so that each task
//! takes the parts it uses rather than the whole:
//!
//! - [`Chain`]: the chain as this node serves it: read from `store`,
//!   changed only through `submit`, with the round's pending proposals and
//!   the announcements of what was applied.
//! - [`Clients`]: who is connected to the validator port.
//! - [`RunningConfig`]: the config, whose reloadable keys SIGHUP replaces.
//! - [`Serving`]: those three and the shutdown token: what serving
//!   validators uses.
//! - [`Shared`]: all of it with the node's own facts, for the two places
//!   that report on everything (the admin socket and HTTP).

use crate::announce::Announcer;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::fanout::Audience;
use crate::metrics::Metrics;
use crate::scheduler::NextRound;
use crate::submit::Submit;
use crate::validators::connected::Connected;
use crate::validators::pending::Pending;
use crate::validators::ratelimit::RegistrationRate;
use crate::validators::slots::Slots;
use pos_core::Validator;
use pos_proto::{StatusInfo, ValidatorInfo};
use pos_store::{Store, StoreError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The chain as this node serves it.
pub struct Chain {
    /// Read directly; written only through `submit`.
    pub store: Arc<Store>,
    /// Where writes go: the local writer, or the cluster's leader.
    pub submit: Submit,
    pub pending: Arc<Pending>,
    pub announcer: Announcer,
    pub next_round: Arc<NextRound>,
}

/// Who is connected to the validator port.
pub struct Clients {
    /// Every connection's seat, where announcements are written.
    pub audience: Arc<Audience>,
    /// One live connection per validator.
    pub connected: Arc<Connected>,
    /// Validator connections open right now, against `max_connections`.
    pub slots: Arc<Slots>,
    /// Registrations per source IP, against `registration_rate`.
    pub registrations: RegistrationRate,
}

impl Clients {
    pub fn new(audience: Arc<Audience>) -> Clients {
        Clients {
            audience,
            connected: Arc::default(),
            slots: Arc::default(),
            registrations: RegistrationRate::default(),
        }
    }

    /// A validator with whether it is connected right now.
    pub fn info(&self, validator: Validator) -> ValidatorInfo {
        ValidatorInfo {
            connected: self.connected.is_connected(&validator.address),
            validator,
        }
    }
}

/// What serving validators uses: the sessions, the accept loop and the
/// forget sweep.
#[derive(Clone)]
pub struct Serving {
    pub chain: Arc<Chain>,
    pub clients: Arc<Clients>,
    pub config: RunningConfig,
    pub shutdown: CancellationToken,
}

/// The running config; SIGHUP replaces its reloadable keys. Cheap to clone.
#[derive(Clone)]
pub struct RunningConfig(pub watch::Sender<Arc<Config>>);

impl RunningConfig {
    /// A snapshot of the running config.
    pub fn get(&self) -> Arc<Config> {
        self.0.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.0.subscribe()
    }
}

pub struct Shared {
    pub config: RunningConfig,
    pub chain: Arc<Chain>,
    pub clients: Arc<Clients>,
    /// Commit times, round outcomes and slashings, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Cancelled once on SIGTERM/SIGINT; every task watches it.
    pub shutdown: CancellationToken,
    /// This node's cluster, and the address other nodes reach it at; `None` standalone.
    pub cluster: Option<Arc<Cluster>>,
    pub cluster_addr: Option<SocketAddr>,
    /// The validator listener's real address (the config may say port 0).
    pub listen: SocketAddr,
    pub admin_socket: PathBuf,
    pub started: Instant,
}

impl Shared {
    /// A snapshot of the running config.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// The facts `posctl status` and `/api/status` show.
    pub fn status(&self) -> Result<StatusInfo, StoreError> {
        let (chain, clients) = (&self.chain, &self.clients);
        let store = &chain.store;
        let (tip, counts, size) = (store.tip()?, store.counts()?, store.size_on_disk()?);
        let lottery_commitment = store.next_commitment()?;
        let cluster = self.cluster.as_ref().map(|c| c.info(store));
        let config = self.config();
        Ok(StatusInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            height: tip.index,
            tip_hash: tip.hash,
            listen: self.listen.to_string(),
            admin_socket: self.admin_socket.display().to_string(),
            data_dir: config.data_dir.display().to_string(),
            validators_active: counts.active,
            validators_slashed: counts.slashed,
            connected: clients.connected.count() as u64,
            connections: clients.slots.active() as u64,
            pending_proposals: chain.pending.len() as u64,
            next_round_in_ms: chain.next_round.remaining().as_millis() as u64,
            round_interval_ms: config.round_interval.as_millis() as u64,
            uptime_secs: self.started.elapsed().as_secs(),
            data_size_bytes: size,
            lottery_commitment,
            cluster,
            weighting: store.chain_spec().weighting,
        })
    }
}
