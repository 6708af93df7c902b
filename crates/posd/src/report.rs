//! What a durable change means outside the store: the metrics and the
//! announcement to this node's clients. The standalone writer and a cluster
//! node's replica both report through here, once the change is on stable
//! storage, so the two cannot tell clients different things.

use crate::announce::Announcer;
use crate::http::metrics::{Metrics, RoundEnd};
use pos_core::{Block, RoundRecord, Validator};
use std::fmt::Display;

pub(crate) struct Report<'a> {
    pub announcer: &'a Announcer,
    pub metrics: &'a Metrics,
}

/// How a round ended.
pub(crate) enum RoundEnded<'a> {
    Block {
        block: &'a Block,
        round: &'a RoundRecord,
    },
    NoCandidates,
    /// Its proposals were taken but no block was committed, for this reason.
    Failed(&'a dyn Display),
}

impl Report<'_> {
    /// A validator changed: counted, and announced if it was slashed.
    pub fn validator(&self, v: &Validator) {
        self.metrics.changed(v);
        self.announcer.slashed(v);
    }

    pub fn round(&self, ended: RoundEnded) {
        match ended {
            RoundEnded::Block { block, round } => {
                self.metrics.round(RoundEnd::Committed);
                tracing::info!(
                    index = block.index,
                    winner = %round.winner().address,
                    candidates = round.candidates.len(),
                    "round committed"
                );
                self.announcer.block(block);
            }
            RoundEnded::NoCandidates => {
                self.metrics.round(RoundEnd::NoCandidates);
                self.announcer.no_block();
            }
            RoundEnded::Failed(why) => {
                self.metrics.round(RoundEnd::Failed);
                self.announcer
                    .round_failed(&format!("error: round not committed: {why}"));
            }
        }
    }
}
