//! posd's Prometheus metrics. Counters and the commit histogram are recorded
//! as things happen (by the writer, the cluster's batcher and replica);
//! gauges are set from the running daemon's own values at each scrape
//! ([`Gauges`]), so they cannot drift from what `posctl status` says. Imports
//! nothing of posd, so anything may record into it.

use pos_core::{Status, Validator};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

type Label = [(&'static str, &'static str); 1];

/// `posd_rounds_total{outcome}`'s outcomes: a block, no candidates, or
/// refused (disk nearly full, clock out of range) or failed in storage.
const COMMITTED: Label = [("outcome", "committed")];
const NO_CANDIDATES: Label = [("outcome", "no_candidates")];
const FAILED: Label = [("outcome", "failed")];

/// What a scrape reads from the running daemon.
pub struct Gauges {
    pub height: u64,
    pub active: u64,
    pub slashed: u64,
    /// Open validator connections.
    pub connections: usize,
    pub pending: usize,
    /// A cluster node's Raft; `None` standalone.
    pub raft: Option<RaftGauges>,
}

pub struct RaftGauges {
    pub term: u64,
    pub is_leader: bool,
    pub applied: u64,
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
        };
        // Every outcome shows from the start (as 0), so rate() sees its first one.
        for outcome in [COMMITTED, NO_CANDIDATES, FAILED] {
            let _ = m.rounds.get_or_create(&outcome);
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

    /// A round ended with a block.
    pub fn round_committed(&self) {
        self.rounds.get_or_create(&COMMITTED).inc();
    }

    /// A round ended without candidates, so without a block.
    pub fn round_no_candidates(&self) {
        self.rounds.get_or_create(&NO_CANDIDATES).inc();
    }

    /// A round was refused or failed in storage.
    pub fn round_failed(&self) {
        self.rounds.get_or_create(&FAILED).inc();
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

    /// Sets the gauges to `now` and encodes everything.
    pub fn scrape(&self, now: &Gauges) -> Result<String, std::fmt::Error> {
        self.height.set(now.height as i64);
        for (status, n) in [("active", now.active), ("slashed", now.slashed)] {
            self.validators
                .get_or_create(&[("status", status)])
                .set(n as i64);
        }
        self.connections.set(now.connections as i64);
        self.pending.set(now.pending as i64);
        if let Some(raft) = &now.raft {
            self.raft_term.set(raft.term as i64);
            self.raft_is_leader.set(i64::from(raft.is_leader));
            self.raft_applied.set(raft.applied as i64);
        }
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
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
