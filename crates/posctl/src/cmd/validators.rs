//! `posctl validators [--all | --status STATUS]` and `posctl validator <ADDRESS>`.

use super::{parse_hex, HexArg};
use crate::client::{for_each_chunk, unexpected, Client};
use crate::output::Output;
use pos_core::block::format_timestamp;
use pos_core::{Address, Status};
use pos_proto::text::count;
use pos_proto::{json, Request, Response};
use std::process::ExitCode;

pub fn parse_address(s: &str) -> Result<HexArg, String> {
    parse_hex(s).map_err(|e| format!("expected a validator address or a unique prefix of one: {e}"))
}

/// `--status`: the validators `posctl validators` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    Active,
    Slashed,
}

impl StatusFilter {
    fn status(self) -> Status {
        match self {
            StatusFilter::Active => Status::Active,
            StatusFilter::Slashed => Status::Slashed,
        }
    }
}

pub async fn list(
    client: &mut Client,
    mut out: Output,
    all: bool,
    status: Option<StatusFilter>,
) -> anyhow::Result<ExitCode> {
    // posd lists active validators or all; slashed ones are picked out here.
    let all = all || status == Some(StatusFilter::Slashed);
    let wanted = status.map(StatusFilter::status);
    client.send(&Request::Validators { all }).await?;
    if !out.json {
        out.line(out.validator_header())?;
    }
    let validators = |r| match r {
        Response::Validators(chunk) => Ok(chunk),
        other => Err(Box::new(other)),
    };
    for_each_chunk(client, validators, |chunk| {
        for v in &chunk {
            if wanted.is_some_and(|s| v.validator.status() != s) {
                continue;
            }
            if out.json {
                out.json_line(&json::validator(v))?;
            } else {
                out.line(out.validator_row(v))?;
            }
        }
        Ok(())
    })
    .await?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub async fn one(
    client: &mut Client,
    mut out: Output,
    address: HexArg,
) -> anyhow::Result<ExitCode> {
    let request = address.request(
        |d| Request::Validator(Address(d)),
        Request::ValidatorByPrefix,
    );
    let info = match client.ask(&request).await? {
        Response::Validators(mut v) if v.len() == 1 => v.remove(0),
        other => return Err(unexpected(other)),
    };
    if out.json {
        out.json_line(&json::validator(&info))?;
    } else {
        let v = &info.validator;
        let mut rows = vec![
            ("address", v.address.to_string()),
            ("balance", count(v.balance, "token")),
            ("status", v.status().as_str().to_string()),
            ("blocks won", v.blocks_won.to_string()),
            (
                "connected",
                if info.connected { "yes" } else { "no" }.to_string(),
            ),
            ("registered at", format_timestamp(v.registered_at_ms)),
        ];
        if let Some(s) = &v.slashed {
            rows.push(("slashed at", format_timestamp(s.at_ms)));
            rows.push(("slash reason", s.reason.clone()));
            rows.push(("forfeited", count(s.forfeited, "token")));
        }
        out.pairs(&rows)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
