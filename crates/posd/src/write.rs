//! The write vocabulary: what posd asks of its chain and how the asking can
//! end, the same whether the standalone writer or the cluster applies it.

use pos_core::{Address, Block, Refusal, RoundRecord};
use pos_proto::peer::LedgerWrite;
use std::path::Path;

/// Free space kept on the data directory's file system. Below it posd
/// refuses writes before touching sled, so a full disk never leaves a commit
/// half-flushed, and writing resumes by itself once space returns.
pub const DISK_RESERVE: u64 = 64 * 1024 * 1024;

/// A ledger change as asked for; the proposer completes it into a
/// [`pos_core::Command`] with the clock and the chain's limits.
pub(crate) enum Request {
    Ledger(LedgerWrite),
    /// The forget sweep's: local to a standalone node.
    Forget {
        addresses: Vec<Address>,
        registered_by_ms: u64,
    },
}

/// How a round ended.
// One of these exists per round: boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RoundOutcome {
    Committed { block: Block, round: RoundRecord },
    NoCandidates,
}

impl RoundOutcome {
    /// The committed block and its round record; `None` without candidates.
    pub fn block(&self) -> Option<(&Block, &RoundRecord)> {
        match self {
            RoundOutcome::Committed { block, round } => Some((block, round)),
            RoundOutcome::NoCandidates => None,
        }
    }
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The chain's rules refused it (e.g. already slashed); nothing changed.
    #[error("{0}")]
    Refused(Refusal),
    /// The node's clock cannot stamp a block; the proposals stay.
    #[error("the node's clock is outside the years 1970-9999")]
    Clock,
    /// Storage failed (e.g. disk full); the change is not acknowledged.
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("posd is shutting down")]
    Stopped,
    /// A cluster node found no leader in time (SPEC §9's wording).
    #[error("no leader reachable, try another node")]
    NoLeader,
    /// The cluster's leader could not write it; nothing changed.
    #[error("{0}")]
    Leader(String),
}

/// `Ok` while the data directory's file system has more than [`DISK_RESERVE`] free.
pub(crate) fn check_space(dir: &Path) -> Result<(), WriteError> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        WriteError::Storage(format!("cannot check free space on {}: {e}", dir.display()))
    })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    if free < DISK_RESERVE {
        return Err(WriteError::Storage(format!(
            "disk nearly full: {} MiB free on {}, posd keeps {} MiB in reserve; nothing was written",
            free >> 20,
            dir.display(),
            DISK_RESERVE >> 20
        )));
    }
    Ok(())
}
