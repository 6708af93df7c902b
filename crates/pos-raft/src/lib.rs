//! posd's cluster (SPEC §9): several nodes, one chain, through openraft.
//! This is the only crate that names openraft; pos-store keeps the bytes,
//! posd decides what to submit and what to announce.
//!
//! - [`types`]: the Raft type config; one entry is a [`Batch`] of posd ops.
//! - [`log_store`]: the log (pos-store's append-only files) and the vote
//!   (the node's sled store), synced before openraft is told; its newest
//!   entries also in memory (`recent`).
//! - [`state_machine`]: committed batches applied by the store's transition;
//!   snapshots in the export format.
//! - [`node`]: the node as posd uses it (start, write, membership, view);
//!   [`handover`]: a stopping leader's hand-over to a follower.
//! - [`transport`]: authenticated TCP between nodes; [`network`]: openraft's
//!   client over it, and the callee's [`network::answer`].

// openraft's traits return its `StorageError` (over 200 bytes); boxing it
// is not ours to choose.
#![allow(clippy::result_large_err)]

mod blocking;
pub mod dedup;
pub mod handover;
pub mod log_store;
pub mod network;
pub mod node;
mod recent;
pub mod state_machine;
pub mod transport;
pub mod types;

pub use handover::HandOver;
pub use node::{ClusterError, Member, Node, Role, View, WriteFailure};
pub use state_machine::{Observer, StateMachine};
pub use transport::{ClusterSecret, PeerConn, PeerError};
pub use types::{Batch, NodeId, Op, Origin, Raft, Tagged, TypeConfig};
