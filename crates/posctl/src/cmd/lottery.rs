//! `posctl lottery run` and `posctl lottery explain <INDEX>`.

use crate::client::{for_each_chunk, unexpected, Client};
use crate::output::Output;
use clap::Subcommand;
use pos_core::lottery::Candidate;
use pos_core::RoundRecord;
use pos_proto::{LotteryOutcome, Request, Response};
use serde_json::json;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum LotteryCommand {
    /// Close the current round now; prints the winner or "no candidates".
    Run,
    /// The stored draw of a block, replayed here to check it.
    Explain {
        /// The block's index.
        index: u64,
    },
}

pub async fn run(
    client: &mut Client,
    out: Output,
    cmd: LotteryCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        LotteryCommand::Run => force(client, out).await,
        LotteryCommand::Explain { index } => explain(client, out, index).await,
    }
}

async fn force(client: &mut Client, mut out: Output) -> anyhow::Result<ExitCode> {
    let outcome = match client.ask(&Request::LotteryRun).await? {
        Response::Lottery(o) => o,
        other => return Err(unexpected(other)),
    };
    match (&outcome, out.json) {
        (LotteryOutcome::Committed { block, candidates }, true) => out.json_line(&json!({
            "outcome": "committed",
            "candidates": candidates,
            "block": pos_proto::json::block(block),
        }))?,
        (LotteryOutcome::NoCandidates, true) => {
            out.json_line(&json!({"outcome": "no_candidates"}))?
        }
        (LotteryOutcome::Committed { block, candidates }, false) => {
            let j = block.json();
            out.line(format_args!(
                "block {} committed: winner {} (BPM {}) out of {candidates} candidate(s)\nhash {}",
                j.index,
                out.id(&j.validator),
                j.bpm,
                j.hash
            ))?
        }
        (LotteryOutcome::NoCandidates, false) => {
            out.line("no candidates: no validator proposed this round, so no block")?
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn explain(client: &mut Client, mut out: Output, index: u64) -> anyhow::Result<ExitCode> {
    let head = match client.ask(&Request::LotteryExplain(index)).await? {
        Response::RoundHead(h) => h,
        other => return Err(unexpected(other)),
    };
    let mut candidates: Vec<Candidate> = Vec::with_capacity(head.candidates.min(1 << 20) as usize);
    let chunks = |r| match r {
        Response::Candidates(chunk) => Ok(chunk),
        other => Err(Box::new(other)),
    };
    for_each_chunk(client, chunks, |chunk| {
        candidates.extend(chunk);
        Ok(())
    })
    .await?;
    let record = RoundRecord {
        index: head.index,
        seed: head.seed,
        candidates,
        ticket: head.ticket,
        winner: head.winner as usize,
        rule: head.rule,
        weighting: pos_core::Weighting::Stake,
        weights: Vec::new(),
    };
    // Replayed here, with posctl's own copy of the lottery: posd is not trusted.
    let replay = record.replay(&head.prev_hash, head.commitment.as_ref());
    let total = record.total_stake();
    if out.json {
        let commitment = head.commitment.as_ref();
        out.json_line(&pos_proto::json::round(
            &record,
            &head.prev_hash,
            commitment,
            &replay,
        ))?;
    } else {
        let reveal = record.rule.reveal().map(|r| r.to_hex());
        let next_commitment = record.rule.next_commitment().map(|c| c.to_string());
        let commitment = head.commitment.map(|c| c.to_string());
        let mut rows = vec![
            ("block", record.index.to_string()),
            ("prev hash", head.prev_hash.to_string()),
        ];
        match reveal {
            Some(reveal) => rows.extend([
                (
                    "lottery",
                    "v2: the seed mixes in a secret revealed now".into(),
                ),
                ("commitment", commitment.unwrap_or_else(|| "none".into())),
                ("reveal", reveal),
            ]),
            None => rows.push(("lottery", "v1: the seed is the chain's alone".into())),
        }
        rows.extend([
            ("seed", record.seed.to_string()),
            ("total stake", total.to_string()),
            (
                "ticket",
                format!("{} (uniform in [0, total stake))", record.ticket),
            ),
        ]);
        if let Some(next) = next_commitment {
            rows.push(("next commit", next));
        }
        rows.push((
            "replayed",
            match &replay {
                Ok(()) if record.rule.version() > 1 => {
                    "ok: reveal, seed, ticket and winner checked here".to_string()
                }
                Ok(()) => "ok: seed, ticket and winner recomputed here".to_string(),
                Err(e) => format!("FAILED: {e}"),
            },
        ));
        out.pairs(&rows)?;
        out.line("")?;
        let w = out.id_width();
        out.line(format_args!(
            "   {:<w$}  {:<12}  {:<4}  TICKETS",
            "ADDRESS", "STAKE", "BPM"
        ))?;
        let mut start: u128 = 0;
        for (i, c) in record.candidates.iter().enumerate() {
            let end = start + c.stake as u128;
            let mark = if i == record.winner { "*" } else { " " };
            out.line(format_args!(
                "{mark}  {:<w$}  {:<12}  {:<4}  [{start}, {end})",
                out.id(&c.address.to_string()),
                c.stake,
                c.bpm
            ))?;
            start = end;
        }
    }
    out.flush()?;
    Ok(if replay.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
