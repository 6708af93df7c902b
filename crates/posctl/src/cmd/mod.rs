//! One file per posctl subcommand.

pub mod block;
pub mod chain;
pub mod cluster;
pub mod export;
pub mod lottery;
pub mod status;
pub mod validators;
pub mod work;

use crate::output::ELLIPSIS;
use pos_core::Digest;
use pos_proto::{HexPrefix, Request};

/// A hash or address on the command line: all 64 hex digits, or a prefix
/// posd resolves to the one value it starts (or says which ones it starts).
#[derive(Debug, Clone)]
pub enum HexArg {
    Whole(Digest),
    Prefix(HexPrefix),
}

impl HexArg {
    /// The request for the value: `whole` for all digits, `prefix` for a prefix.
    pub fn request(
        self,
        whole: fn(Digest) -> Request,
        prefix: fn(HexPrefix) -> Request,
    ) -> Request {
        match self {
            HexArg::Whole(d) => whole(d),
            HexArg::Prefix(p) => prefix(p),
        }
    }
}

/// Reads a hash or address. A trailing ellipsis, as tables print a shortened
/// value, is dropped: what a table shows can be pasted back.
pub fn parse_hex(s: &str) -> Result<HexArg, String> {
    let s = s.trim_end_matches([ELLIPSIS, '.']);
    if s.len() == 64 {
        if let Ok(d) = s.parse() {
            return Ok(HexArg::Whole(d));
        }
    }
    s.parse().map(HexArg::Prefix).map_err(|e| format!("{e}"))
}
