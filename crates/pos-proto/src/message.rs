//! What posd and posctl say to each other. Append variants; never reorder.

use pos_core::lottery::{Candidate, Rule};
use pos_core::{Address, Block, Digest, Validator};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Version of this protocol; bumped on any change an older peer could misread.
/// 2: round heads carry the lottery rule and commitment, status the open
/// round's commitment (lottery v2).
/// 4: status carries the chain's lottery weighting; round heads too, and a
/// weighted draw's head is followed by its weights and (stake_age) the
/// previous rounds' records, each a chunk stream of its own.
pub const PROTOCOL_VERSION: u32 = 4;

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
    /// The one block whose hash starts with the prefix -> `Blocks` with one
    /// block, or `Error` saying none does or listing the matches.
    BlockByPrefix(HexPrefix),
    /// The one validator whose address starts with the prefix -> `Validators`
    /// with one, or `Error` saying none does or listing the matches.
    ValidatorByPrefix(HexPrefix),
    /// Blocks from `from` on, as they commit: those already there, then each
    /// new one -> `Blocks`... without end, and `Heartbeat` after every
    /// `heartbeat_ms` without a block. Ends when posd stops.
    ChainFollow { from: u64, heartbeat_ms: u64 },
    /// A consistent snapshot of the whole state in the export format
    /// (docs/EXPORT.md) -> `ExportData`... then `End`; or `Error`.
    Export,
    /// Makes this node a one-member cluster -> `Cluster`, or `Error`.
    ClusterInit,
    /// Adds a node (learner, then voter once it caught up) -> `Cluster`, or `Error`.
    ClusterAdd { node_id: u64, addr: String },
    /// Removes a node from the cluster -> `Cluster`, or `Error`.
    ClusterRemove { node_id: u64 },
    /// This node's view of its cluster -> `Cluster`, or `Error` when standalone.
    ClusterStatus,
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
    /// The open round's commitment: its draw will reveal a preimage of it.
    pub lottery_commitment: Digest,
    /// This node's view of its cluster; `None` when standalone.
    pub cluster: Option<ClusterInfo>,
    /// The chain's lottery weighting and its parameters (SPEC §12).
    pub weighting: pos_core::Weighting,
}

/// A node's view of its cluster (`posctl cluster status`, SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub node_id: u64,
    /// "leader", "follower", "learner", "candidate"; "uninitialized" before
    /// `posctl cluster init` or before a leader added this node.
    pub role: String,
    pub term: u64,
    pub leader_id: Option<u64>,
    /// Index of the last log entry known committed, and applied here.
    pub committed: u64,
    pub applied: u64,
    pub members: Vec<ClusterMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    pub node_id: u64,
    pub addr: String,
    pub voter: bool,
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
    /// The seed rule, with v2's reveal and next commitment.
    pub rule: Rule,
    /// What the reveal must answer (v2): the previous round's next
    /// commitment, or the chain's anchor for its first v2 round.
    pub commitment: Option<Digest>,
    /// The weighting the draw used (SPEC §12).
    pub weighting: pos_core::Weighting,
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
    /// `ChainFollow` is alive; no new block yet.
    Heartbeat,
    /// The next bytes of an export's lines.
    ExportData(Bytes),
    Cluster(ClusterInfo),
    /// A weighted draw's weights, in candidate order (after its candidates).
    Weights(Vec<pos_core::weighting::Weighed>),
    /// The round records a stake_age draw's ages come from (after its weights).
    Rounds(Vec<pos_core::RoundRecord>),
}

/// Bytes that serde moves as one run, not one element at a time.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// How posd's refusal of a peer's credentials starts; posctl names the user
/// before it ("user alice (uid 1000) is not allowed: ...").
pub const NOT_ALLOWED: &str = "not allowed: ";

/// Fewest hex digits a prefix may have: shorter ones match too much to help.
pub const MIN_PREFIX_DIGITS: usize = 4;

/// The first hex digits of a hash or address (`posctl block 1f99e`):
/// lowercase, [`MIN_PREFIX_DIGITS`] to 64 of them. Checked when decoded too,
/// so posd never sees an invalid one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexPrefix(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("{0:?} is not hexadecimal (digits 0-9 and a-f)")]
    NotHex(String),
    #[error("{0:?} is too short: give at least {MIN_PREFIX_DIGITS} hex digits")]
    TooShort(String),
    #[error("{0:?} is longer than 64 hex digits")]
    TooLong(String),
}

impl HexPrefix {
    /// The whole bytes the digits spell, then the odd last digit if any: the
    /// high half of the byte after them.
    pub fn bytes(&self) -> (Vec<u8>, Option<u8>) {
        let nibbles: Vec<u8> = self
            .0
            .chars()
            .filter_map(|c| c.to_digit(16))
            .map(|d| d as u8)
            .collect();
        let pairs = nibbles.chunks_exact(2);
        let odd = pairs.remainder().first().copied();
        (pairs.map(|p| p[0] << 4 | p[1]).collect(), odd)
    }
}

impl FromStr for HexPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, PrefixError> {
        if !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(PrefixError::NotHex(s.into()));
        }
        match s.len() {
            n if n < MIN_PREFIX_DIGITS => Err(PrefixError::TooShort(s.into())),
            n if n > 64 => Err(PrefixError::TooLong(s.into())),
            _ => Ok(HexPrefix(s.to_ascii_lowercase())),
        }
    }
}

impl TryFrom<String> for HexPrefix {
    type Error = PrefixError;

    fn try_from(s: String) -> Result<Self, PrefixError> {
        s.parse()
    }
}

impl From<HexPrefix> for String {
    fn from(p: HexPrefix) -> String {
        p.0
    }
}

impl fmt::Display for HexPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_travel_as_one_run() {
        let data = Response::ExportData(Bytes(b"{\"header\":{}}\n".to_vec()));
        let body = crate::encode(&data);
        // Variant, length, then the bytes themselves.
        assert_eq!(body.len(), 1 + 1 + 14);
        assert_eq!(crate::decode::<Response>(&body).unwrap(), data);
    }

    #[test]
    fn prefixes_split_into_bytes_and_an_odd_digit() {
        let p: HexPrefix = "AB12c".parse().unwrap();
        assert_eq!(p.to_string(), "ab12c");
        assert_eq!(p.bytes(), (vec![0xab, 0x12], Some(0xc)));
        let p: HexPrefix = "00ff".parse().unwrap();
        assert_eq!(p.bytes(), (vec![0x00, 0xff], None));
        let full = "7".repeat(64);
        assert_eq!(
            full.parse::<HexPrefix>().unwrap().bytes(),
            (vec![0x77; 32], None)
        );
    }

    #[test]
    fn bad_prefixes_are_refused_when_parsed_and_when_decoded() {
        for (s, want) in [
            ("abc", PrefixError::TooShort("abc".into())),
            ("ab1g", PrefixError::NotHex("ab1g".into())),
            ("ab 12", PrefixError::NotHex("ab 12".into())),
            ("+1234", PrefixError::NotHex("+1234".into())),
        ] {
            assert_eq!(s.parse::<HexPrefix>(), Err(want));
        }
        assert!(matches!(
            "a".repeat(65).parse::<HexPrefix>(),
            Err(PrefixError::TooLong(_))
        ));
        // A forged frame carrying a bad prefix does not decode.
        let bad = crate::encode(&("ab".to_string(),));
        assert!(crate::decode::<HexPrefix>(&bad).is_err());
        let good = crate::encode(&("abcd".to_string(),));
        assert_eq!(
            crate::decode::<HexPrefix>(&good).unwrap().to_string(),
            "abcd"
        );
    }
}
