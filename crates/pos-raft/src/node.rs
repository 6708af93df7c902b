//! A cluster node's Raft, as posd sees it: start it, write batches, confirm
//! leadership, change membership, read the node's view. posd never names
//! openraft; this is the whole surface it uses.

use crate::log_store::LogStore;
use crate::network::Network;
use crate::transport::ClusterSecret;
use crate::types::{Batch, NodeId, Raft};
use crate::{Observer, StateMachine};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState, SnapshotPolicy};
use pos_proto::peer::{PeerRequest, PeerResponse};
use pos_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Entries between snapshots; after one, all but the last
/// [`KEEP_AFTER_SNAPSHOT`] are purged, which bounds the log on disk.
const SNAPSHOT_EVERY: u64 = 10_000;
const KEEP_AFTER_SNAPSHOT: u64 = 1_000;
/// Snapshot chunks: well under the peer frame cap.
const CHUNK: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteFailure {
    /// This node does not lead (any more), or could not have the write
    /// committed in time; the caller may send it again elsewhere.
    #[error("not the leader")]
    NotLeader,
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

/// What the node knows of its cluster right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub me: NodeId,
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub applied: u64,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Learner,
    Candidate,
    /// No membership yet: before `cluster init`, or before a leader added it.
    Uninitialized,
    Stopped,
    /// The membership this node holds leaves it out: it was removed.
    Removed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Learner => "learner",
            Role::Candidate => "candidate",
            Role::Uninitialized => "uninitialized",
            Role::Stopped => "stopped",
            Role::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
}

#[derive(Clone)]
pub struct Node {
    pub(crate) raft: Raft,
    pub(crate) me: NodeId,
    /// How long a leader may go without a majority's acknowledgement and
    /// still take writes: the election timeout, after which the others
    /// may have elected a leader of their own.
    pub(crate) lease: Duration,
    /// Shares openraft's state machine, for consistent exports.
    state: StateMachine,
    /// Closed (`true`) once a stopping leader hands over: it appends no
    /// more, so the follower it chose can catch up and win. Held (read)
    /// across each write, so closing it waits for the one in flight.
    pub(crate) closed: Arc<tokio::sync::RwLock<bool>>,
    /// To ask a follower over the peer link to campaign.
    pub(crate) secret: ClusterSecret,
}

impl Node {
    /// Starts node `me` on `store` (vote and state in its sled Db, the log
    /// in its own files beside it).
    /// openraft lets a follower stand for election only once the leader's
    /// lease (its maximum timeout) AND a random timeout have passed; with
    /// `election_timeout` t as that maximum and t/2 as the minimum, a leader
    /// that died is replaced 1.5 to 2 t later. The leader beats every t/10.
    pub async fn start(
        me: NodeId,
        election_timeout: Duration,
        store: Arc<Store>,
        data_dir: &Path,
        observer: Arc<dyn Observer>,
        secret: ClusterSecret,
    ) -> Result<Node, ClusterError> {
        let ms = election_timeout.as_millis() as u64;
        let config = openraft::Config {
            cluster_name: "posd".into(),
            election_timeout_min: ms / 2,
            election_timeout_max: ms,
            heartbeat_interval: (ms / 10).max(10),
            // Large chains travel as snapshots: give them time.
            install_snapshot_timeout: 60_000,
            snapshot_max_chunk_size: CHUNK,
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
            max_in_snapshot_log_to_keep: KEEP_AFTER_SNAPSHOT,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError(format!("Raft config: {e}")))?;
        let state = StateMachine::new(Arc::clone(&store), data_dir, observer);
        let raft = Raft::new(
            me,
            Arc::new(config),
            Network {
                me,
                secret: secret.clone(),
            },
            LogStore::open(Arc::clone(&store))
                .map_err(|e| ClusterError(format!("cannot open the Raft log: {e}")))?,
            state.clone(),
        )
        .await
        .map_err(|e| ClusterError(format!("cannot start Raft: {e}")))?;
        // Until its core has started, openraft's metrics are blank (term 0,
        // nothing applied, no members): a restarted node's view would go back.
        // The core answers this only once it has reported the stored state.
        raft.with_raft_state(|_| ())
            .await
            .map_err(|e| ClusterError(format!("cannot start Raft: {e}")))?;
        Ok(Node {
            raft,
            me,
            lease: election_timeout,
            state,
            closed: Arc::default(),
            secret,
        })
    }

    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The configured `election_timeout`.
    pub fn election_timeout(&self) -> Duration {
        self.lease
    }

    pub fn view(&self) -> View {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect::<Vec<_>>();
        let role = if m.running_state.is_err() {
            Role::Stopped
        } else if members.is_empty() {
            Role::Uninitialized
        } else if removed(self.me, &m) {
            Role::Removed
        } else {
            match m.state {
                ServerState::Leader => Role::Leader,
                ServerState::Follower => Role::Follower,
                ServerState::Learner => Role::Learner,
                ServerState::Candidate => Role::Candidate,
                ServerState::Shutdown => Role::Stopped,
            }
        };
        View {
            me: self.me,
            role,
            term: m.current_term,
            // A removed node's last leader leads a cluster it is not in.
            leader: m.current_leader.filter(|_| role != Role::Removed),
            applied: m.last_applied.map_or(0, |l| l.index),
            members,
        }
    }

    /// Whether this node's own Raft view says it was removed (see [`removed`]).
    pub fn is_removed(&self) -> bool {
        removed(self.me, &self.raft.metrics().borrow())
    }

    /// Whether node `id` is a voter or learner in this node's membership
    /// view, and not on its way out.
    pub fn is_member(&self, id: NodeId) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership.get_node(&id).is_some() && !leaving(id, membership)
    }

    /// Resolves once [`Node::is_removed`] says `removed` (at once if it does).
    pub async fn until_removed(&self, removed: bool) {
        let mut metrics = self.raft.metrics();
        while self.is_removed() != removed {
            if metrics.changed().await.is_err() {
                // Raft stopped: this node's view changes no more.
                return std::future::pending().await;
            }
        }
    }

    /// Resolves once this node's view of the leader is no longer `leader`
    /// (another node won, this one did, or an election is under way): a
    /// write forwarded to `leader` may then never be answered.
    pub async fn leader_changed(&self, leader: NodeId) {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow_and_update().current_leader != Some(leader) {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// This node's Raft term: a leader that keeps it has led all along.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The leader this node knows of, and its address if it is a member:
    /// what every write reads, so it reads no more than that.
    pub fn leader(&self) -> Option<(NodeId, Option<String>)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&leader);
        Some((leader, addr.map(|n| n.addr.clone())))
    }

    /// Appends `batch` (this node must lead); returns once it is committed
    /// and applied here. A leader cut off from the majority for longer than
    /// the election timeout refuses at once: openraft would append and wait
    /// for a commit that cannot come while the partition lasts, and the
    /// client would never hear "no leader reachable". So does a leader
    /// handing over ([`Node::hand_over`]).
    pub async fn write(&self, batch: Batch) -> Result<(), WriteFailure> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(WriteFailure::NotLeader);
        }
        let unheard = self.raft.metrics().borrow().millis_since_quorum_ack;
        if unheard.is_some_and(|ms| u128::from(ms) > self.lease.as_millis()) {
            return Err(WriteFailure::NotLeader);
        }
        // A write the leader took just before it was cut off would wait for
        // the partition to heal, and every write queued behind it too: give
        // up on hearing its outcome after a few election timeouts (it may
        // still commit later; retrying it is harmless, see posd's cluster).
        let ends_round = batch.ops.iter().any(|t| t.op.ends_round());
        let written = tokio::time::timeout(self.lease * 3, self.raft.client_write(batch)).await;
        drop(closed);
        match written {
            Ok(Ok(_)) => {
                // Followers learn of a commit with the next AppendEntries:
                // while writes flow that is soon, but after a round's close
                // it would be the next heartbeat (up to a tenth of the
                // election timeout), and their clients would wait for the
                // block that long. Tell them now.
                if ends_round {
                    let _ = self.raft.trigger().heartbeat().await;
                }
                Ok(())
            }
            Ok(Err(e)) => Err(failure(e)),
            Err(_) => Err(WriteFailure::NotLeader),
        }
    }

    /// Returns once this node has confirmed with a majority that it still
    /// leads, and has applied everything committed before. A leader the
    /// majority did not answer does not lead as far as posd is concerned.
    pub async fn ensure_leader(&self) -> Result<(), WriteFailure> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|e| match e.api_error() {
                Some(CheckIsLeaderError::ForwardToLeader(_))
                | Some(CheckIsLeaderError::QuorumNotEnough(_)) => WriteFailure::NotLeader,
                _ => WriteFailure::Failed(e.to_string()),
            })
    }

    /// Makes this node, reachable at `addr`, a one-member cluster; then
    /// snapshots and purges the log, so a node that joins later receives
    /// the whole chain (which predates the log) as a snapshot.
    pub async fn init(&self, addr: String) -> Result<(), ClusterError> {
        let members = BTreeMap::from([(self.me, BasicNode { addr })]);
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ClusterError(e.to_string()))?;
        let applied = self
            .raft
            .wait(Some(Duration::from_secs(10)))
            .state(ServerState::Leader, "leader after init")
            .await
            .map_err(|e| ClusterError(e.to_string()))?
            .last_applied
            .map_or(0, |l| l.index);
        self.snapshot_and_purge(applied).await
    }

    async fn snapshot_and_purge(&self, upto: u64) -> Result<(), ClusterError> {
        let fatal = |e: openraft::error::Fatal<NodeId>| ClusterError(e.to_string());
        self.raft.trigger().snapshot().await.map_err(fatal)?;
        self.raft
            .wait(Some(Duration::from_secs(600)))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= upto),
                "snapshot built",
            )
            .await
            .map_err(|e| ClusterError(e.to_string()))?;
        self.raft.trigger().purge_log(upto).await.map_err(fatal)
    }

    /// Adds node `id` at `addr`: a learner first, until it has caught up
    /// (by snapshot when the chain is long), then a voter.
    pub async fn add(&self, id: NodeId, addr: String) -> Result<(), ClusterError> {
        self.raft
            .add_learner(id, BasicNode { addr }, true)
            .await
            .map_err(|e| ClusterError(e.to_string()))?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(|e| ClusterError(e.to_string()))?;
        Ok(())
    }

    /// Removes node `id` from the cluster.
    pub async fn remove(&self, id: NodeId) -> Result<(), ClusterError> {
        let view = self.view();
        let change = match view.members.iter().find(|m| m.id == id) {
            None => return Err(ClusterError(format!("node {id} is not a member"))),
            Some(m) if m.voter => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            Some(_) => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(|e| ClusterError(e.to_string()))?;
        Ok(())
    }

    /// The node's state at one point between two applied entries, to be
    /// written as export lines (`posctl export`, `backup`).
    pub async fn export_snapshot(&self) -> Result<pos_store::export::Snapshot, ClusterError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.export_snapshot())
            .await
            .map_err(|e| ClusterError(e.to_string()))?
            .map_err(|e| ClusterError(e.to_string()))
    }

    /// Resolves when Raft has stopped on a fatal error (a storage error:
    /// the node must not go on), with its text.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(e) = &metrics.borrow().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                return "Raft stopped".into();
            }
        }
    }

    /// Answers a Raft request from a peer; `None` for another kind.
    pub async fn answer(&self, request: &PeerRequest) -> Option<PeerResponse> {
        crate::network::answer(&self.raft, request).await
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// Whether `membership` lists node `id` on its way out: a voter of a joint
/// configuration whose new half leaves it out.
fn leaving(id: NodeId, membership: &openraft::Membership<NodeId, BasicNode>) -> bool {
    let target = membership.get_joint_config().last();
    membership.get_node(&id).is_some()
        && target.is_some_and(|voters| !voters.contains(&id))
        && !membership.learner_ids().any(|l| l == id)
}

/// Whether node `me`'s own view says it was removed. A removed follower
/// holds the joint configuration that leaves it out ([`leaving`]): openraft
/// stops replicating to it once the final one is appended, so that joint
/// one is the last it hears. A leader that removed itself holds the final
/// one, which no longer lists it. A node that is joining also holds a
/// membership without itself for a moment (the snapshot's), but it already
/// follows the leader adding it: its vote is that leader's, committed. The
/// removed leader's vote is its own, or one it granted and no leader of
/// that term ever confirmed to it.
fn removed(me: NodeId, metrics: &openraft::RaftMetrics<NodeId, BasicNode>) -> bool {
    let membership = metrics.membership_config.membership();
    let unlisted = membership.nodes().next().is_some() && membership.get_node(&me).is_none();
    let vote = &metrics.vote;
    let follows_another = vote.is_committed() && vote.leader_id().voted_for() != Some(me);
    leaving(me, membership) || unlisted && !follows_another
}

fn failure(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> WriteFailure {
    match e.forward_to_leader() {
        Some(_) => WriteFailure::NotLeader,
        None => WriteFailure::Failed(e.to_string()),
    }
}
