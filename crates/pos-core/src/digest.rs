//! Fixed 32-byte values: block hashes, validator addresses and validator keys.
//!
//! They are kept as raw bytes (compact on disk, cheap to compare) and shown as
//! lowercase hex everywhere a person or a JSON reader sees them: serde writes
//! them as hex strings in human-readable formats (JSON: the export format) and
//! as the 32 raw bytes in binary ones (bincode: the store and the admin wire).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a hex string is not a 32-byte value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex digits")]
pub struct HexError;

fn parse32(s: &str) -> Result<[u8; 32], HexError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| HexError)?;
    Ok(out)
}

/// A SHA-256 output. Ordered as its bytes are (see the `Ord` impl).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Digest(#[serde(with = "hex32")] pub [u8; 32]);

impl Ord for Digest {
    /// The bytes' lexicographic order, compared eight at a time as
    /// big-endian words: the lottery orders and merges millions of
    /// addresses per round, and the first word almost always decides.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        let word = |d: &Digest, i: usize| {
            u64::from_be_bytes(d.0[i * 8..i * 8 + 8].try_into().expect("8 of 32 bytes"))
        };
        (0..4)
            .map(|i| word(self, i).cmp(&word(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Digest {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Serde for 32-byte values: a hex string in human-readable formats, the
/// 32 raw bytes (as a derived `[u8; 32]` writes them) in binary ones, so
/// stored and wire bytes are those of the plain array.
pub(crate) mod hex32 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            bytes.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            super::parse32(&s)
                .map_err(|_| serde::de::Error::custom(format!("{s:?}: expected 64 hex digits")))
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

impl Digest {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, HexError> {
        parse32(s).map(Digest)
    }
}

/// A validator's public identity: hex(SHA-256(key)). Ordered so that the
/// lottery can sort candidates by address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address(pub Digest);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.0)
    }
}

impl FromStr for Address {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, HexError> {
        s.parse().map(Address)
    }
}

/// The secret a validator gets once at registration. The daemon never stores
/// it: only its hash, the address, so a stolen data dir cannot resume anyone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ValidatorKey(pub [u8; 32]);

impl ValidatorKey {
    pub fn address(&self) -> Address {
        Address(Digest::of(&self.0))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ValidatorKey(..)")
    }
}

impl FromStr for ValidatorKey {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, HexError> {
        parse32(s).map(ValidatorKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_sha256_of_key() {
        let key = ValidatorKey([7u8; 32]);
        assert_eq!(
            key.address().to_string(),
            "4bb06f8e4e3a7715d201d573d0aa423762e55dabd61a2c02278fa56cc6d294e0"
        );
    }

    /// Binary encodings keep the raw bytes (the store's layout); JSON shows hex.
    #[test]
    fn serde_is_hex_in_json_and_raw_in_bincode() {
        let d = Digest::of(b"abc");
        let raw = bincode::serde::encode_to_vec(d, bincode::config::standard()).unwrap();
        assert_eq!(raw, d.0);
        let json = serde_json::to_string(&Address(d)).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), Address(d));
        assert!(serde_json::from_str::<Digest>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Digest>("[1,2]").is_err());
    }

    /// The word-wise order is the byte order, whichever byte differs first.
    #[test]
    fn order_is_the_bytes_order() {
        let base = Digest::of(b"order");
        for i in 0..32 {
            for delta in [1u8, 0x80] {
                let mut other = base;
                other.0[i] = other.0[i].wrapping_add(delta);
                assert_eq!(base.cmp(&other), base.0.cmp(&other.0), "byte {i}");
                assert_eq!(other.cmp(&base), other.0.cmp(&base.0), "byte {i}");
            }
        }
        assert_eq!(base.cmp(&base), Ordering::Equal);
        let mut sorted: Vec<Digest> = (0..500u32).map(|i| Digest::of(&i.to_be_bytes())).collect();
        sorted.sort();
        assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!("zz".parse::<Digest>().is_err());
        assert!(d.to_hex()[..62].parse::<Digest>().is_err());
    }
}
