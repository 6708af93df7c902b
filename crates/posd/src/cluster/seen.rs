//! `forget_after` across a cluster (SPEC §13). Which validators are
//! connected is each node's own knowledge, so every node sends the leader,
//! over the peer link, each validator connected to it within
//! `forget_after` and how long ago (zero: now), with how long it has been
//! up. Nothing of it is written to disk: a report costs one frame per
//! node per sweep, where a replicated "seen" command would cost an fsync
//! on a majority (docs/CLUSTER.md).
//!
//! The leader keeps each member's latest report and forgets a validator
//! only when none of them has seen it within `forget_after`. A node that
//! falls silent keeps its last report: its validators connected then
//! count as connected still, and a member that never reported (down, or
//! with forgetting off) holds off all forgetting, so a node that is down
//! makes nobody forgettable. Nobody is forgotten until this node has led for
//! `forget_after` in one term, nor while a member reports having started
//! less than `forget_after` ago (a restart ends connections unreported).

use super::Cluster;
use pos_core::Address;
use pos_proto::peer::{PeerRequest, PeerResponse};
use pos_raft::{NodeId, PeerConn};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long a report may take to reach the leader.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// One node's latest report, timed by the leader's clock.
struct Report {
    at: Instant,
    up: Duration,
    seen: Vec<(Address, u64)>,
}

#[derive(Default)]
struct Inner {
    reports: HashMap<NodeId, Report>,
    /// The term this node was first seen leading in by a sweep, and when.
    leading: Option<(u64, Instant)>,
}

/// The nodes' reports, as the leader holds them.
#[derive(Default)]
pub(crate) struct Seen(Mutex<Inner>);

impl Seen {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Node `node`'s report, received now: it replaces the node's last one.
    pub fn record(&self, node: NodeId, up_ms: u64, seen: Vec<(Address, u64)>) {
        let report = Report {
            at: Instant::now(),
            up: Duration::from_millis(up_ms),
            seen,
        };
        self.lock().reports.insert(node, report);
    }

    /// The validators some member saw within `forget_after`, or `None`
    /// while the leader cannot tell yet. `term` is the one this node leads.
    pub fn kept(
        &self,
        term: u64,
        members: &[NodeId],
        forget_after: Duration,
    ) -> Option<HashSet<Address>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let since = match inner.leading {
            Some((t, since)) if t == term => since,
            _ => {
                inner.leading = Some((term, now));
                return None;
            }
        };
        let away_since = now.checked_sub(forget_after)?;
        if since > away_since {
            return None;
        }
        let reports = members
            .iter()
            .map(|m| inner.reports.get(m))
            .collect::<Option<Vec<&Report>>>()?;
        // A member that restarted lately ended connections it cannot report.
        if reports.iter().any(|r| {
            r.at.checked_sub(r.up)
                .is_none_or(|started| started > away_since)
        }) {
            return None;
        }
        let mut kept = HashSet::new();
        for r in reports {
            for (address, ago) in &r.seen {
                let at = r.at.checked_sub(Duration::from_millis(*ago));
                if *ago == 0 || at.is_some_and(|at| at >= away_since) {
                    kept.insert(*address);
                }
            }
        }
        Some(kept)
    }
}

impl Cluster {
    /// Reports this node's validators to the leader (to itself when it
    /// leads). A report that does not arrive is made again next sweep.
    pub async fn report_seen(&self, up: Duration, seen: Vec<(Address, u64)>) {
        let up_ms = up.as_millis() as u64;
        let Some((leader, addr)) = self.node.leader() else {
            return;
        };
        if leader == self.me {
            self.seen.record(self.me, up_ms, seen);
            return;
        }
        let Some(addr) = addr else { return };
        let mut conn = match self.take_conn(leader) {
            Some(conn) => conn,
            None => match PeerConn::connect(&addr, self.me, leader, &self.secret).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "cannot report validators to the leader");
                    return;
                }
            },
        };
        let request = PeerRequest::Seen {
            node: self.me,
            up_ms,
            seen,
        };
        match conn.call(&request, REPORT_TIMEOUT).await {
            Ok(PeerResponse::Noted) => self.give_conn(leader, conn),
            Ok(other) => tracing::debug!(leader, ?other, "the leader did not take the report"),
            Err(e) => tracing::debug!(leader, error = %e, "validators not reported to the leader"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::Digest;

    const WINDOW: Duration = Duration::from_secs(4);

    #[tokio::test(start_paused = true)]
    async fn kept_only_what_some_member_saw_within_the_window() {
        let seen = Seen::default();
        let (a, b, c) = (
            Address(Digest([1; 32])),
            Address(Digest([2; 32])),
            Address(Digest([3; 32])),
        );
        // The first sweep as leader starts the wait.
        assert_eq!(seen.kept(1, &[1, 2], WINDOW), None);
        tokio::time::advance(WINDOW * 2).await;
        // Node 2 (up long enough): `a` connected, `b` left 1 s ago, `c` 5 s ago.
        seen.record(2, 60_000, vec![(a, 0), (b, 1_000), (c, 5_000)]);
        seen.record(1, 60_000, vec![]);
        let kept = seen.kept(1, &[1, 2], WINDOW).expect("ready");
        assert_eq!(kept, HashSet::from([a, b]));
        // Node 2 falls silent: what it saw connected stays kept.
        tokio::time::advance(WINDOW * 10).await;
        assert_eq!(seen.kept(1, &[1, 2], WINDOW), Some(HashSet::from([a])));
        // A removed node's report no longer counts.
        assert_eq!(seen.kept(1, &[1], WINDOW), Some(HashSet::new()));
        // A member that never reported holds off all forgetting.
        assert_eq!(seen.kept(1, &[1, 2, 3], WINDOW), None);
        // A member that restarted lately: nobody is forgotten yet.
        seen.record(2, 1_000, vec![]);
        assert_eq!(seen.kept(1, &[1, 2], WINDOW), None);
        // A new term starts the wait again.
        assert_eq!(seen.kept(2, &[1], WINDOW), None);
    }
}
