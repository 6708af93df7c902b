//! What a durable change means outside the store: the metrics and the
//! announcement to this node's clients. The standalone writer and a cluster
//! node's replica both report through here, once the change is on stable
//! storage, so the two cannot tell clients different things.

use crate::announce::Announcer;
use crate::metrics::Metrics;
use pos_core::transition::Change;
use pos_core::{Block, Command, RoundRecord, Validator};
use std::fmt::Display;

pub(crate) struct Report<'a> {
    pub announcer: &'a Announcer,
    pub metrics: &'a Metrics,
}

impl Report<'_> {
    /// A validator changed: counted, and announced if it was slashed.
    pub fn validator(&self, v: &Validator) {
        self.metrics.changed(v);
        self.announcer.slashed(v);
    }

    /// A round ended: with its block, without candidates (`Ok(None)`), or
    /// with its proposals taken but no block committed, for this reason (`Err`).
    pub fn round(&self, ended: Result<Option<(&Block, &RoundRecord)>, &dyn Display>) {
        match ended {
            Ok(Some((block, round))) => {
                self.metrics.round_committed();
                tracing::info!(
                    index = block.index,
                    winner = %round.winner().address,
                    candidates = round.candidates.len(),
                    "round committed"
                );
                self.announcer.block(block);
            }
            Ok(None) => {
                self.metrics.round_no_candidates();
                self.announcer.no_block();
            }
            Err(why) => {
                self.metrics.round_failed();
                self.announcer
                    .round_failed(&format!("error: round not committed: {why}"));
            }
        }
    }
}

/// Logs a change applied to the ledger (a round is logged once durable, by [`Report::round`]).
pub(crate) fn log(cmd: &Command, change: &Change) {
    match (cmd, change) {
        (Command::Register { address, stake, .. }, _) => {
            tracing::info!(%address, stake, "validator registered")
        }
        (
            Command::Slash {
                address, reason, ..
            },
            _,
        ) => {
            tracing::warn!(%address, %reason, "validator slashed")
        }
        (_, Change::Forgotten(gone)) if !gone.is_empty() => {
            tracing::info!(count = gone.len(), "idle validators forgotten")
        }
        _ => {}
    }
}
