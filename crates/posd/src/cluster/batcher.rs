//! The leader's group commit: every write queued at the leader (its own
//! clients' and those forwarded by followers) becomes one Raft entry, so a
//! majority's fsyncs are shared, as the standalone writer shares one.
//!
//! Only here does a cluster read the clock into a command (through the
//! [`Proposer`]); a round is prepared only after the leader has confirmed
//! it still leads and applied everything before it, and goes in an entry
//! of its own, so its candidates are those of the state it extends.

use crate::metrics::Metrics;
use crate::proposer::{Closing, Proposer};
use crate::validators::pending::Pending;
use crate::write::{check_space, Request};
use pos_proto::peer::{Submission, SubmitError};
use pos_raft::{Batch, Node, Op, Origin, Tagged, WriteFailure};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most writes in one entry.
const BATCH: usize = 512;
/// Writes that may wait for the batcher.
pub(crate) const QUEUE: usize = 4096;

pub(crate) struct Job {
    pub origin: Origin,
    pub submission: Submission,
    pub reply: oneshot::Sender<Result<(), SubmitError>>,
}

pub(crate) struct Batcher {
    pub node: Node,
    pub proposer: Proposer,
    pub data_dir: PathBuf,
    pub metrics: Arc<Metrics>,
}

impl Batcher {
    /// Group-commits until every sender is gone.
    pub async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut jobs, BATCH).await > 0 {
            if let Err(full) = check_space(&self.data_dir) {
                tracing::error!(error = %full, requests = jobs.len(), "refusing writes");
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(SubmitError::Failed(full.to_string())));
                }
                continue;
            }
            let mut ops = Vec::with_capacity(jobs.len());
            let mut replies = Vec::with_capacity(jobs.len());
            for job in jobs.drain(..) {
                let op = match job.submission {
                    Submission::Round => {
                        self.commit(std::mem::take(&mut ops), std::mem::take(&mut replies))
                            .await;
                        let result = self.round(job.origin).await;
                        let _ = job.reply.send(result);
                        continue;
                    }
                    Submission::Ledger(write) => self.command(Request::Ledger(write)),
                    Submission::Withdraw { address } => Op::Withdraw { address },
                    Submission::ProposeFor {
                        address,
                        bpm,
                        block,
                        nonce,
                    } => Op::ProposeFor {
                        address,
                        bpm,
                        block,
                        nonce,
                    },
                    Submission::Forget {
                        addresses,
                        registered_by_ms,
                    } => self.command(Request::Forget {
                        addresses,
                        registered_by_ms,
                    }),
                };
                ops.push(Tagged {
                    origin: job.origin,
                    op,
                });
                replies.push(job.reply);
            }
            self.commit(ops, replies).await;
        }
    }

    fn command(&self, request: Request) -> Op {
        Op::Command(self.proposer.command(request))
    }

    /// One entry for `ops`; each requester hears whether it committed.
    async fn commit(
        &self,
        ops: Vec<Tagged>,
        replies: Vec<oneshot::Sender<Result<(), SubmitError>>>,
    ) {
        if ops.is_empty() {
            return;
        }
        let answer = self.write(ops).await;
        for reply in replies {
            let _ = reply.send(answer.clone());
        }
    }

    /// Closes the round: its `CommitRound` (or the end of a round without
    /// candidates) in an entry of its own.
    async fn round(&self, origin: Origin) -> Result<(), SubmitError> {
        // Everything committed before is applied here once this returns.
        if let Err(e) = self.node.ensure_leader().await {
            tracing::debug!(error = %e, "not closing the round");
            return Err(refusal(e));
        }
        let Closing { cmd, proposals } = match self.proposer.round(Pending::snapshot) {
            Ok(Ok(closing)) => closing,
            Ok(Err(e)) => return Err(SubmitError::Failed(e.to_string())),
            Err(e) => return Err(SubmitError::Failed(format!("storage failure: {e}"))),
        };
        let op = cmd.map_or(Op::EndRound, Op::Command);
        let written = self.write(vec![Tagged { origin, op }]).await;
        // Freed once the round is applied and announced here (see `Closing`).
        drop(proposals);
        written
    }

    /// One Raft entry, timed as a group commit.
    async fn write(&self, ops: Vec<Tagged>) -> Result<(), SubmitError> {
        let started = std::time::Instant::now();
        let result = self.node.write(Batch { ops }).await;
        self.metrics.commit(started.elapsed());
        result.map_err(refusal)
    }
}

fn refusal(e: WriteFailure) -> SubmitError {
    match e {
        WriteFailure::NotLeader => SubmitError::NotLeader,
        WriteFailure::Failed(why) => SubmitError::Failed(why),
    }
}
