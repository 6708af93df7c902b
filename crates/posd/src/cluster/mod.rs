//! A cluster node (SPEC §9): this node's Raft, where writes go (the local
//! leader's [`batcher`], or forwarded to the leader over [`peer`]), and what
//! every node does with an applied entry ([`replica`]); [`start`]: the
//! node's start and stop.
//!
//! A write is tagged with this node's id and a ticket, and answered when
//! THIS node has applied it, wherever it was put in the log: a client is
//! told only what its own node can already show it.
//!
//! A forwarded write watches this node's own view of the leader: when the
//! leader changes under it (a frozen, cut-off or dead leader was replaced),
//! it is sent to the new one at once, with the same ticket, so that if both
//! copies reach the log only the first is applied (pos-raft's dedup).

pub(crate) mod admin;
pub(crate) mod batcher;
pub(crate) mod peer;
pub(crate) mod removed;
pub(crate) mod replica;
pub(crate) mod seen;
pub(crate) mod start;

use crate::validators::pending::Proposed;
use crate::write::WriteError;
use pos_core::transition::Outcome;
use pos_proto::peer::{PeerRequest, PeerResponse, Submission, SubmitError};
use pos_raft::{ClusterSecret, HandOver, Node, NodeId, Op, Origin, PeerConn, Role};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a write may look for a leader before the client hears
/// "no leader reachable" (at least 3 election timeouts: a frozen leader is
/// replaced within 2).
const FIND_LEADER: Duration = Duration::from_secs(5);
/// How long a forwarded write may take at the leader, while this node
/// still sees that leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long this node waits to apply a write the leader committed.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections kept open to the leader for forwarding, and the most
/// forwarded writes in flight at once: more wait for a turn. (A connection,
/// and a Noise handshake, for each of 10,000 proposals at once timed out
/// the handshakes and Raft's heartbeats with them: docs/BENCHMARKS.md.)
const POOL: usize = 64;

/// An op as this node applied it: the answer to the write that made it.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub op: Op,
    /// The command's outcome (`None` for the in-memory ops).
    pub outcome: Option<Outcome>,
    /// For a proposal: the round it is in and what it replaced.
    pub proposed: Option<Proposed>,
}

/// Writes this node submitted and waits to apply.
#[derive(Default)]
pub(crate) struct Waiters(Mutex<HashMap<u64, oneshot::Sender<Applied>>>);

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Applied>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self, ticket: u64) -> oneshot::Receiver<Applied> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(ticket, tx);
        rx
    }

    fn forget(&self, ticket: u64) {
        self.lock().remove(&ticket);
    }

    /// A resent write is applied once (its first copy), which answers it.
    pub fn resolve(&self, ticket: u64, applied: Applied) {
        if let Some(tx) = self.lock().remove(&ticket) {
            let _ = tx.send(applied);
        }
    }
}

pub(crate) struct Cluster {
    pub me: NodeId,
    pub node: Node,
    secret: ClusterSecret,
    pub waiters: std::sync::Arc<Waiters>,
    batcher: mpsc::Sender<batcher::Job>,
    tickets: AtomicU64,
    /// Open connections to the leader, with its id.
    pool: Mutex<Vec<(NodeId, PeerConn)>>,
    /// Turns to forward a write: [`POOL`] of them.
    forwarding: tokio::sync::Semaphore,
    /// What the nodes report of their validators, kept by the leader.
    pub seen: std::sync::Arc<seen::Seen>,
}

/// How a write's trip to the leader ended.
enum Route {
    Committed,
    /// Certainly not in the log: safe to try again.
    Retry,
    /// Refused by the leader, with its reason.
    Failed(String),
    /// The answer was lost: it may or may not be in the log.
    Unknown,
    /// The leader's cluster leaves this node out: it was removed.
    NotMember,
}

impl Cluster {
    pub fn new(
        me: NodeId,
        node: Node,
        secret: ClusterSecret,
        waiters: std::sync::Arc<Waiters>,
        batcher: mpsc::Sender<batcher::Job>,
        seen: std::sync::Arc<seen::Seen>,
    ) -> Self {
        Cluster {
            me,
            node,
            secret,
            waiters,
            batcher,
            tickets: AtomicU64::new(first_ticket()),
            pool: Mutex::default(),
            forwarding: tokio::sync::Semaphore::new(POOL),
            seen,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.node.view().role == Role::Leader
    }

    /// Before this node stops: if it leads, it hands leadership to its most
    /// up-to-date follower (SPEC §13), so the cluster does not wait out an
    /// election; meanwhile its writes go to the next leader.
    pub async fn hand_over(&self) {
        let started = std::time::Instant::now();
        match self.node.hand_over().await {
            HandOver::NotLeader => {}
            HandOver::OnlyVoter => tracing::info!("the only voter stops: nobody to hand over to"),
            HandOver::To(leader) => tracing::info!(
                leader,
                took_ms = started.elapsed().as_millis() as u64,
                "handed leadership over"
            ),
            HandOver::Failed(why) => tracing::warn!(
                error = %why,
                "leadership not handed over: the others will elect a leader"
            ),
        }
    }

    /// Puts `submission` in the log through whichever node leads, and
    /// returns once this node has applied it.
    pub async fn submit(&self, submission: Submission) -> Result<Applied, WriteError> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let applied = self.waiters.wait(ticket);
        let origin = Origin {
            node: self.me,
            ticket,
        };
        let mut applied = std::pin::pin!(applied);
        let give_up =
            tokio::time::Instant::now() + FIND_LEADER.max(self.node.election_timeout() * 3);
        loop {
            // A removed node would never apply it: say so, and write nothing.
            if self.node.is_removed() {
                self.waiters.forget(ticket);
                return Err(WriteError::Removed);
            }
            // This node's apply answers the write whenever it comes first:
            // at the leader it comes before openraft's own answer (which the
            // batcher passes on); anywhere, it means the write committed.
            let route = tokio::select! {
                done = &mut applied => return done.map_err(|_| WriteError::Stopped),
                route = self.route(origin, &submission) => route,
            };
            match route {
                Route::Committed => break,
                Route::NotMember => {
                    self.waiters.forget(ticket);
                    return Err(WriteError::Removed);
                }
                Route::Failed(why) => {
                    self.waiters.forget(ticket);
                    return Err(WriteError::Leader(why));
                }
                // Safe to send again, a round's close too: only the first
                // copy that reaches the log is applied, and it answers.
                Route::Retry | Route::Unknown => {
                    if tokio::time::Instant::now() >= give_up {
                        self.waiters.forget(ticket);
                        return Err(WriteError::NoLeader);
                    }
                    tokio::select! {
                        done = &mut applied => return done.map_err(|_| WriteError::Stopped),
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
        match tokio::time::timeout(APPLY_TIMEOUT, applied).await {
            Ok(Ok(applied)) => Ok(applied),
            _ => {
                self.waiters.forget(ticket);
                Err(WriteError::NoLeader)
            }
        }
    }

    async fn route(&self, origin: Origin, submission: &Submission) -> Route {
        let Some((leader, addr)) = self.node.leader() else {
            return Route::Retry;
        };
        if leader == self.me {
            let (reply, answer) = oneshot::channel();
            let job = batcher::Job {
                origin,
                submission: submission.clone(),
                reply,
            };
            if self.batcher.send(job).await.is_err() {
                return Route::Failed("posd is shutting down".into());
            }
            return match answer.await {
                Ok(result) => Route::of(result),
                Err(_) => Route::Unknown,
            };
        }
        let Some(addr) = addr else {
            return Route::Retry;
        };
        tokio::select! {
            route = self.forward(leader, &addr, origin, submission) => route,
            () = self.node.leader_changed(leader) => {
                // Its answer, if it ever comes, is for a connection dropped here.
                self.take_all(leader);
                tracing::debug!(leader, ticket = origin.ticket, "leader changed under a forwarded write: sending it again");
                Route::Unknown
            }
        }
    }

    /// Sends `submission` to `leader` at `addr` and waits for its answer.
    async fn forward(
        &self,
        leader: NodeId,
        addr: &str,
        origin: Origin,
        submission: &Submission,
    ) -> Route {
        // Never closed, so never an error.
        let _turn = self.forwarding.acquire().await.ok();
        let mut conn = match self.take_conn(leader) {
            Some(conn) => conn,
            None => match PeerConn::connect(addr, self.me, leader, &self.secret).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "cannot reach the leader");
                    return Route::Retry;
                }
            },
        };
        let request = PeerRequest::Submit {
            node: origin.node,
            ticket: origin.ticket,
            submission: submission.clone(),
        };
        match conn.call(&request, FORWARD_TIMEOUT).await {
            Ok(PeerResponse::Submitted(result)) => {
                self.give_conn(leader, conn);
                Route::of(result)
            }
            Ok(_) => Route::Unknown,
            Err(e) => {
                // The others to a leader that went away are as dead as this one.
                self.take_all(leader);
                tracing::debug!(leader, error = %e, "forwarded write lost");
                Route::Unknown
            }
        }
    }

    fn take_conn(&self, leader: NodeId) -> Option<PeerConn> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.retain(|(id, _)| *id == leader);
        pool.pop().map(|(_, conn)| conn)
    }

    fn take_all(&self, leader: NodeId) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.retain(|(id, _)| *id != leader);
    }

    fn give_conn(&self, leader: NodeId, conn: PeerConn) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL {
            pool.push((leader, conn));
        }
    }
}

/// Tickets start from the clock (in microseconds), so a restarted node
/// does not reuse the tickets its last run put in the log.
fn first_ticket() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

impl Route {
    fn of(result: Result<(), SubmitError>) -> Route {
        match result {
            Ok(()) => Route::Committed,
            Err(SubmitError::NotLeader) => Route::Retry,
            Err(SubmitError::Failed(why)) => Route::Failed(why),
            Err(SubmitError::NotMember) => Route::NotMember,
        }
    }
}
