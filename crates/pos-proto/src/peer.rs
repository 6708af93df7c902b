//! Traffic between the nodes of a cluster (SPEC §9), framed like the admin
//! protocol with a larger cap.
//!
//! Handshake (SPEC §14): the caller sends [`PeerHello`] in the clear (its
//! id, the id it means to reach, the protocol version), so a node of
//! another version or another id refuses it with one line that says why (a
//! stale address must not split the cluster). Then a Noise handshake keyed
//! from the shared `cluster_secret_file`, bound to the hello
//! ([`crate::seal`]): the caller's [`PeerHandshake::Noise`], the callee's
//! answer (or [`PeerHandshake::Refused`]). From then on every frame is
//! sealed: the caller sends [`PeerRequest`]s, each answered by one
//! [`PeerResponse`].
//!
//! Raft's own messages travel as opaque bytes: only the cluster crate knows
//! their types.

use pos_core::Address;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to these messages.
pub const PEER_VERSION: u32 = 2;
/// Largest frame between nodes: log entries and snapshot chunks.
pub const PEER_MAX_FRAME: u32 = 64 * 1024 * 1024;
const MAGIC: [u8; 8] = *b"posdpeer";

/// The cleartext first frame. Its layout is version 1's, so nodes of
/// either version read the other's and refuse it by its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHello {
    pub magic: [u8; 8],
    pub version: u32,
    pub from: u64,
    pub to: u64,
    /// Random: version 1's challenge; now only makes each prologue unique.
    pub nonce: [u8; 32],
}

impl PeerHello {
    pub fn new(from: u64, to: u64, nonce: [u8; 32]) -> Self {
        PeerHello {
            magic: MAGIC,
            version: PEER_VERSION,
            from,
            to,
            nonce,
        }
    }

    /// Why this hello is refused by node `me`, if it is.
    pub fn refusal(&self, me: u64) -> Option<String> {
        if self.magic != MAGIC {
            Some("not a posd node".into())
        } else if self.version != PEER_VERSION {
            Some(format!(
                "node {} speaks peer protocol version {}, node {me} speaks version {PEER_VERSION}: \
                 upgrade every node (docs/CLUSTER.md)",
                self.from, self.version
            ))
        } else if self.to != me {
            Some(format!(
                "this is node {me}, not node {} (stale address?)",
                self.to
            ))
        } else {
            None
        }
    }

    /// The Noise prologue: both sides bind the hello they saw.
    pub fn prologue(&self) -> Vec<u8> {
        [b"posd peer hello\0".as_slice(), &crate::encode(self)].concat()
    }
}

/// A handshake message after the hello, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerHandshake {
    /// The next Noise handshake message.
    Noise(Vec<u8>),
    /// Why the callee refuses. Variant 1 like version 1's refusal, so a
    /// node of either version reads the other's.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft messages, encoded by the cluster crate.
    AppendEntries(Vec<u8>),
    Vote(Vec<u8>),
    InstallSnapshot(Vec<u8>),
    /// A write that entered at node `node` (its `ticket`), for the leader
    /// to put in the log.
    Submit {
        node: u64,
        ticket: u64,
        submission: Submission,
    },
    /// Node `node`'s validators, for the leader's `forget_after`: each one
    /// connected to it within `forget_after`, with how long ago it was
    /// (zero: connected now), and how long the node has been up.
    Seen {
        node: u64,
        up_ms: u64,
        seen: Vec<(Address, u64)>,
    },
    /// From a leader that is stopping, to the follower it chose: stand for
    /// election now (answered with an empty [`PeerResponse::Raft`]).
    Campaign,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerResponse {
    /// A Raft answer (encoded), or the Raft error's text.
    Raft(Result<Vec<u8>, String>),
    /// The submission is committed (the node that sent it learns its
    /// outcome by applying it), or why it is not.
    Submitted(Result<(), SubmitError>),
    /// A [`PeerRequest::Seen`] report was taken.
    Noted,
}

/// What a follower forwards to the leader: the validators' and posctl's
/// writes, before the leader completes them with its clock and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Submission {
    Ledger(LedgerWrite),
    Withdraw {
        address: Address,
    },
    /// Close the round now (`posctl lottery run`).
    Round,
    /// The validator's proposal for the round that makes block `block`,
    /// with its nonce on a `stake_work` chain; it stands in no later round.
    ProposeFor {
        address: Address,
        bpm: u32,
        block: u64,
        nonce: Option<u64>,
    },
    /// The leader's `forget_after` sweep: remove those of `addresses` that
    /// still qualify (registered at or before `registered_by_ms`).
    Forget {
        addresses: Vec<Address>,
        registered_by_ms: u64,
    },
}

/// A change to a validator as a client asked for it; the node that writes
/// it (the standalone writer, a cluster's leader) completes it into a
/// command with its clock and the chain's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerWrite {
    Register {
        address: Address,
        stake: u64,
    },
    Slash {
        address: Address,
        reason: String,
    },
    /// The validator's first proposal: it is never forgotten from then on.
    Proposed {
        address: Address,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SubmitError {
    /// The node asked is not (or no longer) the leader.
    #[error("not the leader")]
    NotLeader,
    /// The leader could not write it (its text says why); nothing changed.
    #[error("{0}")]
    Failed(String),
    /// The node the write entered at is not in the leader's cluster: it
    /// could never apply it, so the leader does not write it.
    #[error("the node is not in the cluster")]
    NotMember,
}
