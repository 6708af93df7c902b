use pos_core::verify::VerifyError;
use std::path::PathBuf;

/// Everything that can go wrong with a data directory. Each message is
/// complete in itself (no `source` chain), so `{:#}` prints it once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {}", engine(.0))]
    Sled(sled::Error),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("data directory {0} is in use by another posd")]
    Locked(PathBuf),
    #[error("data directory has schema version {found}, this posd reads {expected}")]
    Schema { found: u32, expected: u32 },
    #[error("data directory is not a posd chain: {0}")]
    Foreign(String),
    /// An export stream refused: the line (from 1) and what is wrong with it.
    #[error("line {line}: {what}")]
    Refused { line: u64, what: String },
    /// A directory an import may not write into (not empty, not a directory).
    #[error("{0}")]
    Target(String),
    /// The stream an export was being written to failed.
    #[error("cannot write the export: {0}")]
    Write(std::io::Error),
    #[error("corrupt record in tree {tree:?}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    #[error("tip check failed: {0}")]
    Tip(VerifyError),
    /// A full check found a fault (the message names the block or record).
    #[error("{0}")]
    Invalid(String),
    /// The store lost something posd acknowledged, or cannot be read at all.
    #[error("{}: {detail}; posd will not serve a shorter or a new chain. Restore the data directory from a backup (docs/RELIABILITY.md, \"A damaged store\")", path.display())]
    Damaged { path: PathBuf, detail: String },
}

impl StoreError {
    /// Block `index` should be stored but is not.
    pub(crate) fn missing_block(index: u64) -> StoreError {
        StoreError::Corrupt {
            tree: crate::layout::BLOCKS,
            detail: format!("block {index} is missing"),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

impl From<VerifyError> for StoreError {
    fn from(e: VerifyError) -> Self {
        StoreError::Tip(e)
    }
}

/// sled's own text, minus its debug noise ("at file offset None backtrace ()").
pub(crate) fn engine(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { at: Some(at), .. } => format!("corrupted data at {at}"),
        sled::Error::Corruption { at: None, .. } => "corrupted data".into(),
        sled::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}
