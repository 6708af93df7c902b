//! The rules of the posd chain, with no IO: anything here can be replayed from
//! stored data alone and cannot fail on a disk or a socket.
//!
//! - [`digest`]: 32-byte hashes, validator addresses and keys.
//! - [`block`]: blocks, their canonical encoding and hash, genesis.
//! - [`chain_spec`]: the rules a chain is created with, stored with it.
//! - [`lottery`]: the stake-weighted draw, its SHA-256 random stream, and
//!   the v2 seed's commit–reveal secrets; [`lottery::roster`], a round's
//!   table of candidates and the draw over it in two passes, its memory kept
//!   from round to round.
//! - [`weighting`]: what a candidate weighs in the draw (stake, stake_age,
//!   stake_work): the chain's rule and its pure functions.
//! - [`ledger`]: validator records and how commands change them.
//! - [`command`]: the closed set of state changes a single writer applies.
//! - [`transition`]: what each command does to the state; the only place
//!   that says so.
//! - [`verify`]: streaming verification of a whole chain.

pub mod block;
pub mod chain_spec;
pub mod command;
pub mod digest;
pub mod ledger;
pub mod lottery;
pub mod transition;
pub mod verify;
pub mod weighting;

pub use block::{Block, BlockJson};
pub use chain_spec::ChainSpec;
pub use command::Command;
pub use digest::{Address, Digest, ValidatorKey};
pub use ledger::{LedgerError, SlashInfo, Status, Validator};
pub use lottery::{Anchor, Candidate, LotteryError, RoundRecord, Rule, Secret};
pub use transition::{Counts, Outcome, Refusal};
pub use weighting::Weighting;
