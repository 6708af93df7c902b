//! Traffic between the nodes of a cluster (SPEC §9), framed like the admin
//! protocol with a larger cap.
//!
//! Handshake, both ways authenticated by the shared `cluster_secret_file`:
//! the caller sends [`PeerHello`] (its id, the id it means to reach, a
//! nonce); the callee answers [`PeerChallenge`] with its own nonce and a
//! proof, and the caller answers with its proof. A proof is SHA-256 over the
//! secret and everything both sides said, so it cannot be replayed on
//! another connection, and a node refuses a hello meant for another id (a
//! stale address must not split the cluster). Then the caller sends
//! [`PeerRequest`]s, each answered by one [`PeerResponse`].
//!
//! Raft's own messages travel as opaque bytes: only the cluster crate knows
//! their types.

use pos_core::Address;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped on any incompatible change to these messages.
pub const PEER_VERSION: u32 = 1;
/// Largest frame between nodes: log entries and snapshot chunks.
pub const PEER_MAX_FRAME: u32 = 64 * 1024 * 1024;
const MAGIC: [u8; 8] = *b"posdpeer";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHello {
    pub magic: [u8; 8],
    pub version: u32,
    pub from: u64,
    pub to: u64,
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
                "peer protocol version {} (this node speaks {PEER_VERSION})",
                self.version
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

    /// The proof that `role` ("caller" or "callee") holds `secret`, bound to
    /// this hello and the callee's nonce.
    pub fn proof(&self, secret: &[u8], role: &str, callee_nonce: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"posd peer proof v1\0");
        h.update(Sha256::digest(secret));
        h.update(role.as_bytes());
        h.update(self.from.to_be_bytes());
        h.update(self.to.to_be_bytes());
        h.update(self.version.to_be_bytes());
        h.update(self.nonce);
        h.update(callee_nonce);
        h.finalize().into()
    }
}

/// The callee's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerChallenge {
    Challenge { nonce: [u8; 32], proof: [u8; 32] },
    Refused(String),
}

/// The caller's proof, or why it gives up (the callee's proof was wrong).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerProof {
    Proof([u8; 32]),
    Refused(String),
}

/// The callee's verdict on the caller's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerVerdict {
    Accepted,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerResponse {
    /// A Raft answer (encoded), or the Raft error's text.
    Raft(Result<Vec<u8>, String>),
    /// The submission is committed (the node that sent it learns its
    /// outcome by applying it), or why it is not.
    Submitted(Result<(), SubmitError>),
}

/// What a follower forwards to the leader: the validators' and posctl's
/// writes, before the leader completes them with its clock and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Submission {
    Ledger(LedgerWrite),
    Propose {
        address: Address,
        bpm: u32,
    },
    Withdraw {
        address: Address,
    },
    /// Close the round now (`posctl lottery run`).
    Round,
    /// A proposal with a nonce, on a `stake_work` chain.
    ProposeWork {
        address: Address,
        bpm: u32,
        nonce: u64,
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
}
