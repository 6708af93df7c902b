//! `posctl block <INDEX|HASH>`.

use crate::client::{unexpected, Client};
use crate::output::{block_json, Output};
use pos_proto::{BlockId, Request, Response};
use std::process::ExitCode;

/// 64 hex digits are a hash; a whole number is an index.
pub fn parse_id(s: &str) -> Result<BlockId, String> {
    if s.len() == 64 {
        if let Ok(h) = s.parse() {
            return Ok(BlockId::Hash(h));
        }
    }
    s.parse()
        .map(BlockId::Index)
        .map_err(|_| "expected a block index (a whole number) or a 64-hex-digit hash".into())
}

pub async fn run(client: &mut Client, mut out: Output, id: BlockId) -> anyhow::Result<ExitCode> {
    let block = match client.ask(&Request::Block(id)).await? {
        Response::Blocks(mut b) if b.len() == 1 => b.remove(0),
        other => return Err(unexpected(other)),
    };
    if out.json {
        out.json_line(&block_json(&block))?;
    } else {
        let j = block.json();
        let or_none = |s: String| {
            if s.is_empty() {
                "(none: genesis)".into()
            } else {
                s
            }
        };
        out.pairs(&[
            ("index", j.index.to_string()),
            ("timestamp", j.timestamp),
            ("bpm", j.bpm.to_string()),
            ("hash", j.hash),
            ("prev hash", or_none(j.prev_hash)),
            ("validator", or_none(j.validator)),
        ])?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
