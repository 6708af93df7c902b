//! posd's durable state. This is the only crate that knows sled: swap the
//! engine here and nothing else changes.
//!
//! - [`layout`]: tree names and key/value formats.
//! - [`data_dir`]: what a chain's directory holds: lock, modes, import
//!   marker, someone else's directory refused, sled opened inside it.
//! - [`store`]: open, integrity check on start, apply a [`pos_core::Command`],
//!   flush; `reads`: everything read back; `lottery`: the lottery's anchor and
//!   pending secret as stored.
//! - `round_log`: round records too big for sled's pages, in a log of their own.
//! - `machine`: pos-core's transition state over one sled transaction;
//!   `cache`: every validator decoded in memory, kept to what sled committed.
//! - `check`: the whole chain and every record verified, in constant memory.
//! - `raft`: a cluster node's Raft vote, and entries applied atomically;
//!   [`raft_log`]: its Raft log, in append-only files of its own.
//! - [`error`]: everything that can go wrong with a data directory.
//! - [`export`]: the export format (JSON lines): consistent snapshots out
//!   ([`Store::export_to`]), and imports verified whole before they replace
//!   a store ([`Store::restore_from`]) or make a new data directory.
//! - [`acked`]: the record, outside sled, of what posd acknowledged; `sync`:
//!   the fsyncs that make sled's flush survive a power cut.

pub mod acked;
mod cache;
mod check;
mod codec;
pub mod data_dir;
pub mod error;
pub mod export;
pub mod layout;
mod locks;
mod lottery;
mod machine;
mod raft;
pub mod raft_log;
mod reads;
pub mod round_log;
pub mod store;
mod sync;

pub use check::Checked;
pub use error::StoreError;
pub use pos_core::transition::Counts;
pub use raft_log::RaftLog;
pub use store::Store;
