//! The export format: a store's whole state as JSON lines (docs/EXPORT.md).
//!
//! One format carries every copy of a chain that leaves a data directory:
//! `posctl export` writes it, `posd import` and `posctl backup` rebuild a data
//! directory from it, and cluster snapshots carry state in it
//! ([`Store::export_to`], [`Store::restore_from`]).
//!
//! - [`lines`]: writing and reading the lines, with the SHA-256 trailer.
//! - [`snapshot`]: a consistent point-in-time copy of a store, written out.
//! - [`import`]: a stream verified whole, then installed into a store.
//!
//! Each line is one JSON object with one key naming the record:
//!
//! ```text
//! {"header":{...}}                                  once, first
//! {"block":{...}}                                   genesis
//! {"block":{...}} {"round":{...}}                   each later block, then its draw
//! {"validator":{...}} [{"proposed":{...}}]          by address; a mark right after its validator
//! {"end":{...,"sha256":...}}                        once, last
//! ```
//!
//! Blocks, rounds and validators are pos-core's own types through serde, so a
//! field added there appears here without a change to this module; such a
//! change changes the store's schema, which the header carries.
//!
//! [`Store::export_to`]: crate::Store::export_to
//! [`Store::restore_from`]: crate::Store::restore_from

pub mod import;
pub mod lines;
pub mod snapshot;
mod spool;

use pos_core::{Address, Block, ChainSpec, Digest, RoundRecord, Secret, Validator};
use serde::{Deserialize, Serialize};

pub use import::{import, Imported};
pub use lines::{LineReader, LineWriter};
pub use snapshot::Snapshot;

/// The `format` every header names.
pub const FORMAT: &str = "posd-export";

/// The version of the line framing and record kinds; bumped on any change a
/// reader of the previous version would misread. 2: the header carries the
/// chain spec, the lottery and `extra`; proposed marks follow their validator.
pub const VERSION: u32 = 2;

/// The first line: what the file is and the state it holds besides records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] of the writer.
    pub version: u32,
    /// The layout of the records (`layout::EXPORT_SCHEMA`), whichever
    /// store schema held them.
    pub schema: u32,
    /// The rules the chain was created with (`meta/chain_spec`).
    pub chain_spec: ChainSpec,
    /// The genesis block's hash: which chain this is.
    pub genesis: Digest,
    pub height: u64,
    /// The hash of block `height`.
    pub tip: Digest,
    /// Commands applied to the store (its applied index).
    pub applied: u64,
    /// Since when the store records first proposals (`meta/proposals_since`).
    pub proposals_since_ms: u64,
    pub lottery: Lottery,
    /// Opaque to the store: what the exporter asked to carry along (a
    /// cluster's last applied log id and membership), handed back by import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
}

/// Where lottery v2 begins, and the secret the next round reveals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lottery {
    /// The first block drawn by v2 (`meta/lottery_v2_from`).
    pub from: u64,
    /// What that block's round had to reveal a preimage of.
    pub commitment: Digest,
    /// SECRET until block `height + 1` commits: without it nobody can close
    /// the next round, so the chain could not go on from a copy.
    pub pending_secret: Secret,
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

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub header: Header,
    pub trailer: Trailer,
}
