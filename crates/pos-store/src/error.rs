use pos_core::verify::VerifyError;
use pos_core::LedgerError;
use std::path::PathBuf;

/// Everything that can go wrong with a data directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Sled(#[from] sled::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another posd")]
    Locked(PathBuf),
    #[error("data directory has schema version {found}, this posd reads {expected}")]
    Schema { found: u32, expected: u32 },
    #[error("data directory is not a posd chain: {0}")]
    Foreign(String),
    #[error("corrupt record in tree {tree:?}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    #[error("tip check failed: {0}")]
    Tip(#[from] VerifyError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}
