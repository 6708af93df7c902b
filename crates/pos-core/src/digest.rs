//! Fixed 32-byte values: block hashes, validator addresses and validator keys.
//!
//! They are kept as raw bytes (compact on disk, cheap to compare) and shown as
//! lowercase hex everywhere a person or a JSON reader sees them.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
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

/// A SHA-256 output.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

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

    #[test]
    fn hex_round_trip_and_rejects() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!("zz".parse::<Digest>().is_err());
        assert!(d.to_hex()[..62].parse::<Digest>().is_err());
    }
}
