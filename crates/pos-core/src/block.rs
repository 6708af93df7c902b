//! Blocks, their canonical hash, and the tutorial-compatible JSON view.

use crate::digest::{Address, Digest};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// One block of the chain, in the compact form that is stored and sent to
/// posctl. Hashes are raw bytes; [`Block::json`] gives the tutorial's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Height: genesis is 0, each block is its parent's index + 1.
    pub index: u64,
    /// Milliseconds since the Unix epoch; shown as RFC 3339 with milliseconds.
    pub timestamp_ms: u64,
    /// The winning proposal (beats per minute, as in the tutorial).
    pub bpm: u32,
    /// Parent's hash; `None` only for genesis (the tutorial's empty string).
    pub prev_hash: Option<Digest>,
    /// Proposer's address; `None` only for genesis.
    pub validator: Option<Address>,
    /// [`Block::compute_hash`] of the fields above, stored so reads need no hashing.
    pub hash: Digest,
}

/// The tutorial's JSON shape, field for field, so its readers keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJson {
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "BPM")]
    pub bpm: u32,
    #[serde(rename = "Hash")]
    pub hash: String,
    #[serde(rename = "PrevHash")]
    pub prev_hash: String,
    #[serde(rename = "Validator")]
    pub validator: String,
}

/// The last representable block time: 9999-12-31T23:59:59.999Z. RFC 3339
/// has four-digit years; later clocks are refused, never formatted.
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// Formats milliseconds since the epoch the way blocks show them. Beyond
/// [`MAX_TIMESTAMP_MS`] it shows that instant (such blocks never verify, so
/// the clamp never hides a difference; it only keeps this total).
pub fn format_timestamp(timestamp_ms: u64) -> String {
    let ms = timestamp_ms.min(MAX_TIMESTAMP_MS);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The timestamp of the block after one stamped `parent_ms`, given the clock:
/// block times never go backwards, whatever the clock does.
pub fn next_timestamp(parent_ms: u64, clock_ms: u64) -> u64 {
    clock_ms.max(parent_ms + 1)
}

fn hex_or_empty<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings are length-prefixed so that no two field sequences share an encoding.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Block {
    /// The first block; created once per data directory and never rewritten.
    pub fn genesis(timestamp_ms: u64) -> Block {
        Block::sealed(0, timestamp_ms, 0, None, None)
    }

    /// The block a round's winner appends on top of `parent`.
    pub fn next(parent: &Block, timestamp_ms: u64, bpm: u32, validator: Address) -> Block {
        Block::sealed(
            parent.index + 1,
            timestamp_ms,
            bpm,
            Some(parent.hash),
            Some(validator),
        )
    }

    fn sealed(
        index: u64,
        timestamp_ms: u64,
        bpm: u32,
        prev_hash: Option<Digest>,
        validator: Option<Address>,
    ) -> Block {
        let mut block = Block {
            index,
            timestamp_ms,
            bpm,
            prev_hash,
            validator,
            hash: Digest::default(),
        };
        block.hash = block.compute_hash();
        block
    }

    /// The canonical encoding: Index (u64 BE), Timestamp, BPM (u32 BE),
    /// PrevHash, Validator; strings as u32 BE length + UTF-8, hashes as the
    /// hex text the JSON shows, so anyone can re-hash a block from its JSON.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 + 24 + 4 + 4 + 64 + 4 + 64);
        out.extend_from_slice(&self.index.to_be_bytes());
        put_str(&mut out, &format_timestamp(self.timestamp_ms));
        out.extend_from_slice(&self.bpm.to_be_bytes());
        put_str(&mut out, &hex_or_empty(&self.prev_hash));
        put_str(&mut out, &hex_or_empty(&self.validator));
        out
    }

    /// SHA-256 of [`Block::canonical_bytes`]; unlike the tutorial it covers the validator.
    pub fn compute_hash(&self) -> Digest {
        Digest::of(&self.canonical_bytes())
    }

    pub fn json(&self) -> BlockJson {
        BlockJson {
            index: self.index,
            timestamp: format_timestamp(self.timestamp_ms),
            bpm: self.bpm,
            hash: self.hash.to_hex(),
            prev_hash: hex_or_empty(&self.prev_hash),
            validator: hex_or_empty(&self.validator),
        }
    }

    /// One JSON line (no newline), as clients and `posctl --json` print it.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&self.json()).expect("a block always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Block {
        let genesis = Block::genesis(1_795_000_000_000);
        Block::next(
            &genesis,
            1_795_000_030_000,
            72,
            Address(Digest::of(b"validator")),
        )
    }

    /// Vectors computed independently (Python hashlib) from the documented encoding.
    #[test]
    fn block_times_never_go_backwards() {
        assert_eq!(next_timestamp(1_000, 5_000), 5_000);
        assert_eq!(next_timestamp(5_000, 1_000), 5_001);
        assert_eq!(next_timestamp(5_000, 5_000), 5_001);
    }

    #[test]
    fn pinned_hashes() {
        let genesis = Block::genesis(1_795_000_000_000);
        assert_eq!(
            genesis.hash.to_hex(),
            "774daf47ed80a1e63efebd5f0d7a625f83e02477676ef21eeb44919ae2f1f5b2"
        );
        assert_eq!(
            sample().hash.to_hex(),
            "c33048059c13fd8b29fb84feea9011c859b8741f40af9be9c53e06e6ca178b57"
        );
    }

    #[test]
    fn hash_covers_every_field() {
        let base = sample();
        let mut variants = vec![base.clone(); 5];
        variants[0].index += 1;
        variants[1].timestamp_ms += 1;
        variants[2].bpm += 1;
        variants[3].prev_hash = Some(Digest::of(b"other"));
        variants[4].validator = Some(Address(Digest::of(b"other")));
        for v in variants {
            assert_ne!(v.compute_hash(), base.hash, "{v:?}");
        }
    }

    #[test]
    fn json_uses_tutorial_names() {
        let line = sample().to_json_line();
        assert!(
            line.starts_with(r#"{"Index":1,"Timestamp":"2026-11-18T"#),
            "{line}"
        );
        for key in ["\"BPM\":72", "\"Hash\":", "\"PrevHash\":", "\"Validator\":"] {
            assert!(line.contains(key), "{line}");
        }
        let g = Block::genesis(0).json();
        assert_eq!((g.prev_hash.as_str(), g.validator.as_str()), ("", ""));
        assert_eq!(g.timestamp, "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(MAX_TIMESTAMP_MS),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format_timestamp(u64::MAX),
            format_timestamp(MAX_TIMESTAMP_MS)
        );
    }
}
