//! What every task of a running posd shares.

use crate::announce::Announcer;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::connected::Connected;
use crate::http::metrics::Metrics;
use crate::pending::Pending;
use crate::ratelimit::RegistrationRate;
use crate::scheduler::NextRound;
use crate::slots::Slots;
use crate::submit::Submit;
use pos_core::Validator;
use pos_proto::{StatusInfo, ValidatorInfo};
use pos_store::{Store, StoreError};
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
    /// Where writes go: the local writer, or the cluster's leader.
    pub submit: Submit,
    /// This node's cluster, and the address other nodes reach it at; `None` standalone.
    pub cluster: Option<Arc<Cluster>>,
    pub cluster_addr: Option<SocketAddr>,
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
    /// Commit times, round outcomes and slashings, for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// A snapshot of the running config.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The facts `posctl status` and `/api/status` show.
    pub fn status(&self) -> Result<StatusInfo, StoreError> {
        let store = &self.store;
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
            connected: self.connected.count() as u64,
            connections: self.slots.active() as u64,
            pending_proposals: self.pending.len() as u64,
            next_round_in_ms: self.next_round.remaining().as_millis() as u64,
            round_interval_ms: config.round_interval.as_millis() as u64,
            uptime_secs: self.started.elapsed().as_secs(),
            data_size_bytes: size,
            lottery_commitment,
            cluster,
        })
    }

    /// A validator with whether it is connected right now.
    pub fn validator_info(&self, validator: Validator) -> ValidatorInfo {
        ValidatorInfo {
            connected: self.connected.is_connected(&validator.address),
            validator,
        }
    }
}
