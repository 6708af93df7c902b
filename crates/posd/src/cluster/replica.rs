//! What every node (leader included) does with an entry it has applied and
//! synced: the round's pending proposals follow the log, each node's
//! clients hear of blocks and slashings, and the writes this node submitted
//! are answered. The same entries in the same order on every node, so every
//! node's clients see every block once.

use super::{Applied, Waiters};
use crate::announce::Announcer;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::report::{self, Report};
use crate::validators::pending::Pending;
use pos_core::transition::{Change, Outcome};
use pos_core::Command;
use pos_raft::{NodeId, Op, Tagged};
use pos_store::Store;
use std::sync::Arc;
use tokio::sync::watch;

pub(crate) struct Replica {
    pub me: NodeId,
    pub pending: Arc<Pending>,
    pub announcer: Announcer,
    pub metrics: Arc<Metrics>,
    pub waiters: Arc<Waiters>,
    /// For the chain's rules, which a node that received the chain takes on.
    pub store: Arc<Store>,
    pub config: watch::Sender<Arc<Config>>,
}

impl pos_raft::Observer for Replica {
    fn applied(&self, _index: u64, ops: &[Tagged], outcomes: &[Option<Outcome>]) {
        for (tagged, outcome) in ops.iter().zip(outcomes) {
            let proposed = match &tagged.op {
                Op::Command(cmd) => {
                    self.command(cmd, outcome.as_ref());
                    None
                }
                Op::Propose { address, bpm } => Some(self.pending.propose(*address, *bpm)),
                // Every node holds the same chain at this point of the log,
                // so every node drops the same late copies.
                Op::ProposeFor {
                    address,
                    bpm,
                    block,
                    nonce,
                } => self.pending.propose_for(*address, *bpm, *nonce, *block),
                Op::Withdraw { address } => {
                    self.pending.withdraw(address);
                    None
                }
                Op::EndRound => {
                    self.pending.take();
                    self.report().round(Ok(None));
                    None
                }
            };
            if tagged.origin.node == self.me {
                let applied = Applied {
                    op: tagged.op.clone(),
                    outcome: outcome.clone(),
                    proposed,
                };
                self.waiters.resolve(tagged.origin.ticket, applied);
            }
        }
    }

    fn restored(&self) {
        let spec = self.store.chain_spec();
        self.config
            .send_modify(|config| *config = Arc::new(config.ruled_by_chain(&spec)));
        let tip = self.store.tip();
        // The proposals of a state this node never saw are not known here.
        let next = tip.as_ref().map_or(self.pending.block(), |t| t.index + 1);
        self.pending.take_opening(next);
        if let Ok(tip) = tip {
            self.announcer.caught_up(tip.index);
            tracing::info!(height = tip.index, tip = %tip.hash, "chain received from the leader");
        }
    }
}

impl Replica {
    fn report(&self) -> Report<'_> {
        Report {
            announcer: &self.announcer,
            metrics: &self.metrics,
        }
    }

    fn command(&self, cmd: &Command, outcome: Option<&Outcome>) {
        match (cmd, outcome) {
            (Command::CommitRound { block, round, .. }, Some(Ok(_))) => {
                let spent = self.pending.take_opening(block.index + 1);
                self.report().round(Ok(Some((block, round))));
                // Freed once the block is announced (see `proposer::Closing`).
                drop(spent);
            }
            (Command::CommitRound { .. }, Some(Err(refusal))) => {
                self.pending.take();
                tracing::error!(error = %refusal, "round refused by the store; proposals dropped");
                self.report().round(Err(refusal));
            }
            (_, Some(Ok(change))) => {
                report::log(cmd, change);
                if let Change::Validator(v) = change {
                    if matches!(cmd, Command::Slash { .. }) {
                        self.pending.withdraw(&v.address);
                    }
                    self.report().validator(v);
                }
            }
            _ => {}
        }
    }
}
