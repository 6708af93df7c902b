//! The proposer: what the writer applies next. It alone reads the clock, the
//! running limits and the pending proposals into commands, so that applying a
//! command depends on nothing but the command and the store (in a cluster,
//! only the leader proposes; every node applies).

use crate::clock;
use crate::config::Config;
use crate::round;
use crate::validators::pending::{Pending, Proposal};
use crate::write::{Request, WriteError};
use pos_core::{Address, Command};
use pos_proto::peer::LedgerWrite;
use pos_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

pub(crate) struct Proposer {
    pub store: Arc<Store>,
    pub pending: Arc<Pending>,
    /// The running config: limits are read per command, so a reload applies.
    pub config: watch::Receiver<Arc<Config>>,
    /// Whether the clock was last seen behind the tip, so a jump back is logged once.
    pub clock_behind: AtomicBool,
}

impl Proposer {
    /// Completes a request with the clock and the chain's limits.
    pub fn command(&self, request: Request) -> Command {
        let at_ms = clock::record_ms();
        match request {
            Request::Ledger(LedgerWrite::Register { address, stake }) => {
                let config = self.config.borrow();
                Command::Register {
                    address,
                    stake,
                    max_stake: config.max_stake,
                    max_validators: config.max_validators,
                    at_ms,
                }
            }
            Request::Ledger(LedgerWrite::Slash { address, reason }) => {
                self.pending.withdraw(&address);
                Command::Slash {
                    address,
                    reason,
                    at_ms,
                }
            }
            Request::Ledger(LedgerWrite::Proposed { address }) => {
                Command::Proposed { address, at_ms }
            }
            Request::Forget {
                addresses,
                registered_by_ms,
            } => Command::Forget {
                addresses,
                registered_by_ms,
            },
        }
    }

    /// The round to close now from the proposals `take` reads out of
    /// `pending` (the standalone writer takes them; a cluster leader copies
    /// them, and every node takes them when it applies the round), or a
    /// refusal when the clock cannot stamp a block (then none are read, and
    /// they stay).
    pub fn round(
        &self,
        take: impl FnOnce(&Pending) -> BTreeMap<Address, Proposal>,
    ) -> Result<Result<Closing, WriteError>, StoreError> {
        let Some(clock_ms) = clock::now_ms() else {
            tracing::error!("system clock is outside the years 1970-9999: round skipped");
            return Ok(Err(WriteError::Clock));
        };
        let proposals = take(&self.pending);
        let reward = self.config.borrow().block_reward;
        let next_secret = round::fresh_secret();
        let cmd = round::prepare(&self.store, &proposals, clock_ms, reward, next_secret)?;
        let Some(cmd) = cmd else {
            tracing::info!(
                proposals = proposals.len(),
                "round closed: no candidates, no block"
            );
            return Ok(Ok(Closing {
                cmd: None,
                proposals,
            }));
        };
        if let Command::CommitRound { block, .. } = &cmd {
            let behind = block.timestamp_ms > clock_ms;
            if behind && !self.clock_behind.load(Ordering::Relaxed) {
                tracing::warn!(
                    clock = %pos_core::block::format_timestamp(clock_ms),
                    block = %pos_core::block::format_timestamp(block.timestamp_ms),
                    "clock is behind the chain's last block: block times continue from the chain"
                );
            }
            self.clock_behind.store(behind, Ordering::Relaxed);
        }
        Ok(Ok(Closing {
            cmd: Some(cmd),
            proposals,
        }))
    }
}

/// A round closing: its `CommitRound` (`None` without candidates) and the
/// proposals it was made from. The caller frees those only once the round
/// is answered: a map the sessions' threads filled, freed on the writer
/// thread, took 0.5 ms a round, and 3-5 ms the first time (glibc handing
/// their arenas' pages back), before the block could be announced.
pub(crate) struct Closing {
    pub cmd: Option<Command>,
    pub proposals: BTreeMap<Address, Proposal>,
}
