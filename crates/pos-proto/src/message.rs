//! What posd and posctl say to each other. Append variants; never reorder.

use pos_core::lottery::Candidate;
use pos_core::{Address, Block, Digest, Validator};
use serde::{Deserialize, Serialize};

/// Version of this protocol; bumped on any change an older peer could misread.
pub const PROTOCOL_VERSION: u32 = 1;

/// The client's first frame. Its layout never changes, so any posd can read
/// any posctl's hello and answer with a clear version error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The client's program version, for the log.
    pub client: String,
}

/// The server's answer to [`Hello`]: its own version, or why it refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Welcome {
    Accepted { protocol: u32, server: String },
    Refused(String),
}

/// A block by height or by hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockId {
    Index(u64),
    Hash(Digest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// -> `Status`.
    Status,
    /// Blocks `from..=to` (default: the whole chain), or the `last` N up to
    /// `to`; clamped to the chain -> `Blocks`... then `End`.
    ChainShow {
        from: Option<u64>,
        to: Option<u64>,
        last: Option<u64>,
    },
    /// -> `Blocks` with one block, or `Error`.
    Block(BlockId),
    /// Active ones, or all with `all` -> `Validators`... then `End`.
    Validators { all: bool },
    /// -> `Validators` with one, or `Error`.
    Validator(Address),
    /// Closes the round now through posd's one round path -> `Lottery`.
    LotteryRun,
    /// The stored draw of a block -> `RoundHead`, `Candidates`..., `End`; or `Error`.
    LotteryExplain(u64),
    /// Re-hash, re-link and replay the whole chain -> `Progress`... then `Verified`.
    ChainVerify,
}

/// Daemon facts for `posctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub version: String,
    /// posd's process id (for `ps`, RSS readings, signals).
    pub pid: u32,
    pub height: u64,
    pub tip_hash: Digest,
    pub listen: String,
    pub admin_socket: String,
    pub data_dir: String,
    pub validators_active: u64,
    pub validators_slashed: u64,
    /// Validators with a live connection.
    pub connected: u64,
    /// TCP connections of any kind, validators or not.
    pub connections: u64,
    pub pending_proposals: u64,
    pub next_round_in_ms: u64,
    pub round_interval_ms: u64,
    pub uptime_secs: u64,
    pub data_size_bytes: u64,
}

/// A validator and whether it is connected right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorInfo {
    pub validator: Validator,
    pub connected: bool,
}

/// How `lottery run` ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LotteryOutcome {
    Committed { block: Block, candidates: u64 },
    NoCandidates,
}

/// A stored draw without its candidate list (which follows in pieces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundHead {
    pub index: u64,
    /// The parent's hash, the seed's input.
    pub prev_hash: Digest,
    pub seed: Digest,
    pub ticket: u128,
    pub winner: u64,
    pub candidates: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request failed; the text says why.
    Error(String),
    /// Ends a stream.
    End,
    Status(StatusInfo),
    Blocks(Vec<Block>),
    Validators(Vec<ValidatorInfo>),
    Lottery(LotteryOutcome),
    RoundHead(RoundHead),
    Candidates(Vec<Candidate>),
    /// Verification reached `checked` of `height + 1` blocks.
    Progress {
        checked: u64,
        height: u64,
    },
    /// Verification finished: `Ok(blocks checked)` or the first fault found.
    Verified(Result<u64, String>),
}
