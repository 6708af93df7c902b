//! `posctl block <INDEX|HASH>`.

use super::{parse_hex, HexArg};
use crate::client::{unexpected, Client};
use crate::output::Output;
use anyhow::anyhow;
use pos_proto::{BlockId, ClientError, HexPrefix, Request, Response};
use std::process::ExitCode;

/// A block on the command line.
#[derive(Debug, Clone)]
pub enum BlockArg {
    /// A whole number, and the hash prefix its digits also are, if any.
    Index(u64, Option<HexPrefix>),
    Hash(HexArg),
}

/// A whole number is an index; anything else a hash or a prefix of one.
pub fn parse_id(s: &str) -> Result<BlockArg, String> {
    if let Ok(index) = s.parse() {
        return Ok(BlockArg::Index(index, s.parse().ok()));
    }
    parse_hex(s).map(BlockArg::Hash).map_err(|e| {
        format!("expected a block index (a whole number), a hash or a unique prefix of one: {e}")
    })
}

pub async fn run(client: &mut Client, mut out: Output, id: BlockArg) -> anyhow::Result<ExitCode> {
    let answer = match id {
        BlockArg::Index(i, digits) => {
            let by_index = client.ask(&Request::Block(BlockId::Index(i))).await;
            match (by_index, digits) {
                // The digits are a hash prefix too: one that is no block's index may be that.
                (Err(e), Some(digits)) if is_remote(&e) => client
                    .ask(&Request::BlockByPrefix(digits))
                    .await
                    .map_err(|by_hash| anyhow!("{e}; as a hash prefix: {by_hash}")),
                (answer, _) => answer,
            }
        }
        BlockArg::Hash(h) => {
            let request = h.request(|d| Request::Block(BlockId::Hash(d)), Request::BlockByPrefix);
            client.ask(&request).await
        }
    };
    let block = match answer? {
        Response::Blocks(mut b) if b.len() == 1 => b.remove(0),
        other => return Err(unexpected(other)),
    };
    if out.json {
        out.json_line(&pos_proto::json::block(&block))?;
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

/// posd answered, and its answer was an error.
fn is_remote(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref(), Some(ClientError::Remote(_)))
}
