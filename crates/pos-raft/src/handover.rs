//! Leader hand-over before a stop (SPEC §13). openraft 0.9 has no leader
//! transfer, and a leader that just goes costs the cluster a full election
//! (1.5 to 2 election timeouts). So a stopping leader appends no more, waits
//! until its most up-to-date follower holds its whole log, and asks that
//! follower over the peer link to campaign at once.
//!
//! Why that wins fast in a 3-node cluster: the other follower refuses the
//! vote (it heard from the leader within its lease), but the old leader
//! grants it, since the candidate's log is as long as its own; the two are a
//! majority. A leader elected less than an election timeout ago refuses too
//! (its own lease), but steps down on seeing the higher term: asked again,
//! the follower then wins. With 5 voters the old leader's vote is not
//! enough: the others' leases run out first, and the follower wins about one
//! election timeout later, still sooner than an election from scratch. The
//! stopping leader stands for no election meanwhile.

use crate::node::Node;
use crate::transport::PeerConn;
use crate::types::NodeId;
use openraft::ServerState;
use pos_proto::peer::{PeerRequest, PeerResponse};
use std::time::Duration;
use tokio::time::Instant;

/// How often the leader looks at its followers' progress while handing over.
const POLL: Duration = Duration::from_millis(5);
/// The follower is asked again after this share of the election timeout
/// without a leader...
const ASK_AGAIN: u32 = 5;
/// ...or after this share once this node stepped down (the first time).
const STEPPED_DOWN: u32 = 20;

/// How a hand-over ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOver {
    /// This node did not lead: nothing to hand over.
    NotLeader,
    /// This node is the only voter: it just stops.
    OnlyVoter,
    /// Node `0` leads now.
    To(NodeId),
    /// No follower took over within the bound; why.
    Failed(String),
}

impl Node {
    /// Hands leadership to the most up-to-date voter, within two election
    /// timeouts. From the call on, this node refuses writes (`NotLeader`,
    /// so followers resend them to the next leader).
    pub async fn hand_over(&self) -> HandOver {
        let view = self.view();
        if view.role != crate::Role::Leader {
            return HandOver::NotLeader;
        }
        if !view.members.iter().any(|m| m.voter && m.id != self.me) {
            return HandOver::OnlyVoter;
        }
        let deadline = Instant::now() + self.lease * 2;
        // Waits for the write in flight, if any.
        match tokio::time::timeout_at(deadline, self.closed.write()).await {
            Ok(mut closed) => *closed = true,
            Err(_) => return HandOver::Failed("a write did not finish".into()),
        }
        let (target, addr) = match self.caught_up(deadline).await {
            Ok(found) => found,
            Err(why) => return HandOver::Failed(why),
        };
        self.raft.runtime_config().elect(false);
        let mut why = String::new();
        let mut leads = true;
        while Instant::now() < deadline {
            if let Err(e) = self.ask_to_campaign(target, &addr, deadline).await {
                why = format!("node {target}: {e}");
            }
            let again = deadline.min(Instant::now() + self.lease / ASK_AGAIN);
            match self.other_leader(again, &mut leads).await {
                Ok(Some(leader)) => return HandOver::To(leader),
                Ok(None) => {}
                Err(e) => return HandOver::Failed(e),
            }
        }
        if why.is_empty() {
            why = format!("node {target} did not win in time");
        }
        HandOver::Failed(why)
    }

    /// Another node, once it leads (by `until`; sooner once this node,
    /// which `leads`, steps down without a new leader: it refused the vote
    /// only for its own lease, and grants the next one).
    async fn other_leader(
        &self,
        mut until: Instant,
        leads: &mut bool,
    ) -> Result<Option<NodeId>, String> {
        let mut metrics = self.raft.metrics();
        loop {
            let (leader, state) = {
                let m = metrics.borrow_and_update();
                (m.current_leader, m.state)
            };
            if let Some(leader) = leader.filter(|l| *l != self.me) {
                return Ok(Some(leader));
            }
            if *leads && state != ServerState::Leader {
                *leads = false;
                until = until.min(Instant::now() + self.lease / STEPPED_DOWN);
            }
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return Err("Raft stopped".into());
                    }
                }
                () = tokio::time::sleep_until(until) => return Ok(None),
            }
        }
    }

    /// The voter (not this node) holding this leader's whole log, once one
    /// does, with its address; the one furthest along is waited for.
    async fn caught_up(&self, deadline: Instant) -> Result<(NodeId, String), String> {
        loop {
            let found = {
                let m = self.raft.metrics();
                let m = m.borrow();
                if m.state != ServerState::Leader {
                    return Err("no longer the leader".into());
                }
                let membership = m.membership_config.membership();
                let best = m.replication.as_ref().and_then(|progress| {
                    membership
                        .voter_ids()
                        .filter(|id| *id != self.me)
                        .map(|id| (progress.get(&id).copied().flatten().map(|l| l.index), id))
                        .max()
                });
                match best {
                    Some((matched, id)) if matched == m.last_log_index => {
                        membership.get_node(&id).map(|n| (id, n.addr.clone()))
                    }
                    _ => None,
                }
            };
            if let Some(found) = found {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err("no follower caught up in time".into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn ask_to_campaign(
        &self,
        target: NodeId,
        addr: &str,
        deadline: Instant,
    ) -> Result<(), String> {
        let asked = async {
            let mut conn = PeerConn::connect(addr, self.me, target, &self.secret)
                .await
                .map_err(|e| e.to_string())?;
            let left = deadline.saturating_duration_since(Instant::now());
            match conn.call(&PeerRequest::Campaign, left).await {
                Ok(PeerResponse::Raft(Ok(_))) => Ok(()),
                Ok(PeerResponse::Raft(Err(why))) => Err(why),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        };
        tokio::time::timeout_at(deadline, asked)
            .await
            .unwrap_or_else(|_| Err("no answer in time".into()))
    }
}
