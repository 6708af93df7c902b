//! The export format: a store's whole state as JSON lines (docs/EXPORT.md).
//!
//! One format carries every copy of a chain that leaves a data directory:
//! `posctl export` writes it, `posd import` and `posctl backup` rebuild a data
//! directory from it, and cluster snapshots and schema migrations are meant
//! to carry state in it too.
//!
//! - [`lines`]: writing and reading the lines, with the SHA-256 trailer.
//! - [`snapshot`]: a consistent point-in-time copy of a store, written out.
//! - [`import`]: a new data directory from the lines, verified before it exists.
//!
//! Each line is one JSON object with one key naming the record:
//!
//! ```text
//! {"header":{...}}                                  once, first
//! {"block":{...}}                                   genesis
//! {"block":{...}} {"round":{...}}                   each later block, then its draw
//! {"validator":{...}}                               by address
//! {"proposed":{"address":...,"at_ms":...}}          by address
//! {"end":{...,"sha256":...}}                        once, last
//! ```
//!
//! Blocks, rounds and validators are pos-core's own types through serde, so a
//! field added there appears here without a change to this module; such a
//! change changes the store's schema, which the header carries.

pub mod import;
pub mod lines;
pub mod snapshot;

use pos_core::{Address, Block, Digest, RoundRecord, Validator};
use serde::{Deserialize, Serialize};

pub use import::{import, Imported, Importer};
pub use lines::{LineReader, LineWriter};
pub use snapshot::Snapshot;

/// The `format` every header names.
pub const FORMAT: &str = "posd-export";

/// The version of the line framing and record kinds; bumped on any change a
/// reader of the previous version would misread.
pub const VERSION: u32 = 1;

/// The first line: what the file is and the state it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] of the writer.
    pub version: u32,
    /// The store layout the records come from (`layout::SCHEMA_VERSION`).
    pub schema: u32,
    /// The genesis block's hash: which chain this is.
    pub genesis: Digest,
    pub height: u64,
    /// The hash of block `height`.
    pub tip: Digest,
    /// Commands applied to the store (its applied index).
    pub applied: u64,
    /// Since when the store records first proposals (`meta/proposals_since`).
    pub proposals_since_ms: u64,
    pub validators_active: u64,
    pub validators_slashed: u64,
}

/// A validator that has proposed, and when it first did (the `proposed` tree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposed {
    pub address: Address,
    pub at_ms: u64,
}

/// The last line: what came before it, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    /// Lines before this one, the header included.
    pub lines: u64,
    pub blocks: u64,
    pub rounds: u64,
    pub validators: u64,
    pub proposed: u64,
    /// SHA-256 of every byte before this line (newlines included).
    pub sha256: Digest,
}

/// One line.
// Blocks and rounds outnumber everything else: boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Header(Header),
    Block(Block),
    Round(RoundRecord),
    Validator(Validator),
    Proposed(Proposed),
    End(Trailer),
}

impl Record {
    /// The record's key, as the line names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Header(_) => "header",
            Record::Block(_) => "block",
            Record::Round(_) => "round",
            Record::Validator(_) => "validator",
            Record::Proposed(_) => "proposed",
            Record::End(_) => "end",
        }
    }
}

/// Why an export stream was refused: the line, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {what}")]
    Line { line: u64, what: String },
    #[error("cannot read line {line}: {error}")]
    Read { line: u64, error: std::io::Error },
    /// The directory to import into is unusable (not empty, not a directory).
    #[error("{0}")]
    Target(String),
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

impl From<sled::Error> for ImportError {
    fn from(e: sled::Error) -> Self {
        ImportError::Store(e.into())
    }
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}
