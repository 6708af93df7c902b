//! What the cluster replicates: one Raft entry is one group commit of posd
//! operations, so one fsync on a majority carries many registrations.

use pos_core::{Address, Command};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// posd's Raft: node ids are `u64` (config `node_id`), nodes are addresses.
    pub TypeConfig:
        D = Batch,
        // Writes are answered by each node's own apply (`Observer`), so
        // openraft's response to the leader carries nothing.
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Membership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;

/// One replicated entry: operations applied in order on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub ops: Vec<Tagged>,
}

impl Op {
    /// Whether applying it closes the open round (with a block or without).
    pub fn ends_round(&self) -> bool {
        matches!(
            self,
            Op::Command(Command::CommitRound { .. }) | Op::EndRound
        )
    }
}

/// An op with where it came from, so the node that submitted it can answer
/// its client once it has applied it itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tagged {
    pub origin: Origin,
    pub op: Op,
}

/// The node an op entered at, and that node's ticket for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub node: NodeId,
    pub ticket: u64,
}

/// One operation of a batch. Commands change the store; the others change
/// the round's pending proposals, which every node keeps in memory so that
/// any leader can close the round and every node can tell its own clients
/// how their proposal fared.
// Most ops of a busy batch are commands: boxing them would buy nothing but
// an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A store change; a `CommitRound` also ends the round.
    Command(Command),
    /// The validator's proposal for the open round (the newest one counts).
    Propose { address: Address, bpm: u32 },
    /// The validator left: its proposal no longer stands.
    Withdraw { address: Address },
    /// The round ended without a block (no candidates).
    EndRound,
    /// The validator's proposal for the round that makes block `block`
    /// (the newest one counts), with its nonce on a `stake_work` chain.
    /// Applied once that round has closed (a write sent again after a lost
    /// answer) it is dropped: a proposal stands at most in the round it was
    /// made for. `Propose` is what older nodes wrote; it stands in whichever
    /// round is open.
    ProposeFor {
        address: Address,
        bpm: u32,
        block: u64,
        nonce: Option<u64>,
    },
}

/// bincode, as everywhere in posd: entries, votes and log ids as bytes.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("Raft types encode")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(v, _)| v)
}
