//! Where a session's or posctl's write goes: the local writer (standalone)
//! or the cluster's leader (through Raft, wherever the write entered).
//! Everything above this module is the same in both.

use crate::cluster::{Applied, Cluster};
use crate::validators::pending::{Pending, Proposed};
use crate::write::{RoundOutcome, WriteError};
use crate::writer::Writer;
use pos_core::transition::Change;
use pos_core::{Address, Command, Validator};
use pos_proto::peer::{LedgerWrite, Submission};
use pos_raft::Op;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) enum Submit {
    Local {
        writer: Writer,
        pending: Arc<Pending>,
    },
    Cluster {
        cluster: Arc<Cluster>,
        pending: Arc<Pending>,
    },
}

impl Submit {
    pub async fn register(&self, address: Address, stake: u64) -> Result<Validator, WriteError> {
        match self {
            Submit::Local { writer, .. } => writer.register(address, stake).await,
            Submit::Cluster { cluster: c, .. } => validator(
                c.submit(ledger(LedgerWrite::Register { address, stake }))
                    .await?,
            ),
        }
    }

    pub async fn slash(&self, address: Address, reason: String) -> Result<Validator, WriteError> {
        match self {
            Submit::Local { writer, .. } => writer.slash(address, reason).await,
            Submit::Cluster { cluster: c, .. } => validator(
                c.submit(ledger(LedgerWrite::Slash { address, reason }))
                    .await?,
            ),
        }
    }

    /// Records the validator's first proposal (it is then never forgotten).
    pub async fn proposed(&self, address: Address) -> Result<Validator, WriteError> {
        match self {
            Submit::Local { writer, .. } => writer.proposed(address).await,
            Submit::Cluster { cluster: c, .. } => {
                validator(c.submit(ledger(LedgerWrite::Proposed { address })).await?)
            }
        }
    }

    /// The validator's proposal for the open round, with its nonce on a
    /// `stake_work` chain.
    pub async fn propose(
        &self,
        address: Address,
        bpm: u32,
        nonce: Option<u64>,
    ) -> Result<Proposed, WriteError> {
        match self {
            Submit::Local { pending, .. } => Ok(pending.propose_work(address, bpm, nonce)),
            Submit::Cluster {
                cluster: c,
                pending,
            } => {
                // Made for the open round. Should that close before the
                // proposal reaches the log, it goes to the next round once,
                // as on a standalone node; a copy sent again after a lost
                // answer stands in no later round.
                for _ in 0..2 {
                    let block = pending.block();
                    let submission = Submission::ProposeFor {
                        address,
                        bpm,
                        block,
                        nonce,
                    };
                    if let Some(proposed) = c.submit(submission).await?.proposed {
                        return Ok(proposed);
                    }
                }
                Err(WriteError::RoundClosed)
            }
        }
    }

    /// The validator left: its proposal no longer stands. Not waited for.
    pub fn withdraw(&self, address: Address) {
        match self {
            Submit::Local { pending, .. } => pending.withdraw(&address),
            // Only a proposal that stands is worth a write.
            Submit::Cluster { pending, .. } if pending.get(&address).is_none() => {}
            Submit::Cluster { cluster: c, .. } => {
                let c = Arc::clone(c);
                tokio::spawn(async move {
                    if let Err(e) = c.submit(Submission::Withdraw { address }).await {
                        tracing::debug!(%address, error = %e, "proposal not withdrawn");
                    }
                });
            }
        }
    }

    /// Closes the round now; returns once its block is durable and announced.
    pub async fn round(&self) -> Result<RoundOutcome, WriteError> {
        match self {
            Submit::Local { writer, .. } => writer.round().await,
            Submit::Cluster { cluster: c, .. } => {
                let applied = c.submit(Submission::Round).await?;
                match (applied.op, applied.outcome) {
                    (Op::EndRound, _) => Ok(RoundOutcome::NoCandidates),
                    (Op::Command(Command::CommitRound { block, round, .. }), Some(Ok(_))) => {
                        Ok(RoundOutcome::Committed { block, round })
                    }
                    (_, Some(Err(refusal))) => Err(WriteError::Refused(refusal)),
                    _ => Err(unexpected("a round")),
                }
            }
        }
    }

    /// A consistent snapshot of the state, taken between two commits.
    pub async fn snapshot(&self) -> Result<pos_store::export::Snapshot, WriteError> {
        match self {
            Submit::Local { writer, .. } => writer.snapshot().await,
            Submit::Cluster { cluster: c, .. } => c
                .node
                .export_snapshot()
                .await
                .map_err(|e| WriteError::Storage(e.to_string())),
        }
    }

    /// Removes those of `addresses` that still qualify for forgetting. In a
    /// cluster only the leader sweeps (see `cluster::seen`); the command
    /// goes through the log, so every node forgets the same.
    pub async fn forget(
        &self,
        addresses: Vec<Address>,
        registered_by_ms: u64,
    ) -> Result<Vec<Address>, WriteError> {
        match self {
            Submit::Local { writer, .. } => writer.forget(addresses, registered_by_ms).await,
            Submit::Cluster { cluster: c, .. } => {
                let forget = Submission::Forget {
                    addresses,
                    registered_by_ms,
                };
                match c.submit(forget).await?.outcome {
                    Some(Ok(Change::Forgotten(gone))) => Ok(gone),
                    Some(Err(refusal)) => Err(WriteError::Refused(refusal)),
                    _ => Err(unexpected("a forget")),
                }
            }
        }
    }

    /// The cluster this node is in; `None` standalone.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        match self {
            Submit::Local { .. } => None,
            Submit::Cluster { cluster, .. } => Some(cluster),
        }
    }
}

fn ledger(write: LedgerWrite) -> Submission {
    Submission::Ledger(write)
}

fn validator(applied: Applied) -> Result<Validator, WriteError> {
    match applied.outcome {
        Some(Ok(Change::Validator(v))) => Ok(v),
        Some(Err(refusal)) => Err(WriteError::Refused(refusal)),
        _ => Err(unexpected("a validator change")),
    }
}

fn unexpected(what: &str) -> WriteError {
    WriteError::Storage(format!("the applied entry was not {what}"))
}
