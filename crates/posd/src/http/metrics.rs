//! `/metrics`: Prometheus text. Counters and the commit histogram are
//! recorded as things happen (by the writer); gauges are read from the
//! running daemon at each scrape, so they cannot drift from what `posctl
//! status` says.

use crate::shared::Shared;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use pos_core::{Status, Validator};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

type Label = [(&'static str, &'static str); 1];

/// How a round ended, as `posd_rounds_total{outcome}` counts it.
#[derive(Debug, Clone, Copy)]
pub enum RoundEnd {
    Committed,
    NoCandidates,
    /// Refused (disk nearly full, clock out of range) or failed in storage.
    Failed,
}

impl RoundEnd {
    fn label(self) -> Label {
        [(
            "outcome",
            match self {
                RoundEnd::Committed => "committed",
                RoundEnd::NoCandidates => "no_candidates",
                RoundEnd::Failed => "failed",
            },
        )]
    }
}

/// posd's metrics; one per daemon, shared by the writer and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    height: Gauge,
    validators: Family<Label, Gauge>,
    connections: Gauge,
    http_connections: Gauge,
    pending: Gauge,
    rounds: Family<Label, Counter>,
    slashings: Counter,
    commit: Histogram,
    /// A cluster node's Raft: term, whether it leads, last applied index.
    raft_term: Gauge,
    raft_is_leader: Gauge,
    raft_applied: Gauge,
    /// Free bytes on the data directory's file system, and the part of them
    /// posd will not write into (writes are refused below it).
    disk_free: Gauge,
    disk_reserve: Gauge,
    /// The tip block's timestamp and the round interval: together they tell
    /// how many rounds went by without a block.
    tip_timestamp: Gauge<f64, AtomicU64>,
    round_interval: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// The registry of a standalone node, or with `cluster` the Raft series too.
    pub fn new(cluster: bool) -> Self {
        let m = Metrics {
            registry: Registry::default(),
            height: Gauge::default(),
            validators: Family::default(),
            connections: Gauge::default(),
            http_connections: Gauge::default(),
            pending: Gauge::default(),
            rounds: Family::default(),
            slashings: Counter::default(),
            // 0.25 ms to about 4 s: an fsync on a busy disk takes tens of ms.
            commit: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_applied: Gauge::default(),
            disk_free: Gauge::default(),
            disk_reserve: Gauge::default(),
            tip_timestamp: Gauge::default(),
            round_interval: Gauge::default(),
        };
        // Every outcome shows from the start (as 0), so rate() sees its first one.
        for end in [
            RoundEnd::Committed,
            RoundEnd::NoCandidates,
            RoundEnd::Failed,
        ] {
            let _ = m.rounds.get_or_create(&end.label());
        }
        let mut registry = m.registry;
        registry.register(
            "posd_height",
            "Index of the last committed block",
            m.height.clone(),
        );
        registry.register(
            "posd_validators",
            "Stored validators by status",
            m.validators.clone(),
        );
        registry.register(
            "posd_connections",
            "Open TCP connections on the validator port",
            m.connections.clone(),
        );
        registry.register(
            "posd_http_connections",
            "Open connections on the HTTP port",
            m.http_connections.clone(),
        );
        registry.register(
            "posd_pending_proposals",
            "Proposals in the open round",
            m.pending.clone(),
        );
        registry.register("posd_rounds", "Rounds closed, by outcome", m.rounds.clone());
        registry.register(
            "posd_slashings",
            "Validators slashed since posd started",
            m.slashings.clone(),
        );
        registry.register(
            "posd_commit_seconds",
            "Group commits: apply, flush and sync of one batch (in a cluster: the leader's Raft write)",
            m.commit.clone(),
        );
        registry.register(
            "posd_disk_free_bytes",
            "Bytes free on the data directory's file system",
            m.disk_free.clone(),
        );
        registry.register(
            "posd_disk_reserve_bytes",
            "Free bytes posd keeps: below them it refuses writes",
            m.disk_reserve.clone(),
        );
        registry.register(
            "posd_tip_timestamp_seconds",
            "Timestamp of the last committed block (Unix seconds)",
            m.tip_timestamp.clone(),
        );
        registry.register(
            "posd_round_interval_seconds",
            "How often the round timer closes a round (round_interval)",
            m.round_interval.clone(),
        );
        if cluster {
            registry.register(
                "posd_raft_term",
                "Raft term this node is in",
                m.raft_term.clone(),
            );
            registry.register(
                "posd_raft_is_leader",
                "1 if this node leads the cluster",
                m.raft_is_leader.clone(),
            );
            registry.register(
                "posd_raft_applied",
                "Index of the last Raft entry applied here",
                m.raft_applied.clone(),
            );
        }
        Metrics { registry, ..m }
    }

    /// One group commit took `took`.
    pub fn commit(&self, took: Duration) {
        self.commit.observe(took.as_secs_f64());
    }

    pub fn round(&self, end: RoundEnd) {
        self.rounds.get_or_create(&end.label()).inc();
    }

    /// A ledger change was made durable; counts it if it was a slashing.
    pub fn changed(&self, v: &Validator) {
        if v.status() == Status::Slashed {
            self.slashings.inc();
        }
    }

    /// Counts an HTTP connection as open until the guard is dropped.
    pub fn http_connection(&self) -> OpenConnection {
        self.http_connections.inc();
        OpenConnection(self.http_connections.clone())
    }

    /// Reads the gauges from `shared` and encodes everything.
    fn scrape(&self, shared: &Shared) -> Result<String, String> {
        let counts = shared.chain.store.counts().map_err(|e| e.to_string())?;
        self.height.set(shared.chain.announcer.height() as i64);
        for (status, n) in [("active", counts.active), ("slashed", counts.slashed)] {
            self.validators
                .get_or_create(&[("status", status)])
                .set(n as i64);
        }
        self.connections.set(shared.clients.slots.active() as i64);
        self.pending.set(shared.chain.pending.len() as i64);
        let config = shared.config.get();
        let free = crate::writer::free_space(&config.data_dir).map_err(|e| e.to_string())?;
        self.disk_free.set(free as i64);
        self.disk_reserve.set(crate::writer::DISK_RESERVE as i64);
        let tip = shared.chain.store.tip().map_err(|e| e.to_string())?;
        self.tip_timestamp.set(tip.timestamp_ms as f64 / 1000.0);
        self.round_interval.set(config.round_interval.as_secs_f64());
        if let Some(cluster) = &shared.cluster {
            let view = cluster.node.view();
            self.raft_term.set(view.term as i64);
            self.raft_is_leader
                .set(i64::from(view.leader == Some(view.me)));
            self.raft_applied.set(view.applied as i64);
        }
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry).map_err(|e| e.to_string())?;
        Ok(text)
    }
}

/// One open HTTP connection in `posd_http_connections`.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub async fn get(State(shared): State<Arc<Shared>>) -> Response {
    match shared.metrics.scrape(&shared) {
        Ok(text) => ([(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], text).into_response(),
        Err(e) => super::api::failed(&format!("cannot read the metrics: {e}")),
    }
}
