//! `posctl lottery run` and `posctl lottery explain <INDEX>`.

use crate::client::{for_each_chunk, unexpected, Client};
use crate::output::Output;
use clap::Subcommand;
use pos_core::lottery::{Candidate, LotteryError};
use pos_core::{Digest, RoundRecord};
use pos_proto::text::count;
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
                "block {} committed: winner {} (BPM {}) out of {}\nhash {}",
                j.index,
                out.id(&j.validator),
                j.bpm,
                count(*candidates, "candidate"),
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
    // A weighted draw: its weights, then the rounds its ages come from.
    let (mut weights, mut history) = (Vec::new(), Vec::new());
    if head.weighting != pos_core::Weighting::Stake {
        let pick = |r| match r {
            Response::Weights(chunk) => Ok(chunk),
            other => Err(Box::new(other)),
        };
        for_each_chunk(client, pick, |chunk| {
            weights.extend(chunk);
            Ok(())
        })
        .await?;
        let pick = |r| match r {
            Response::Rounds(chunk) => Ok(chunk),
            other => Err(Box::new(other)),
        };
        for_each_chunk(client, pick, |chunk| {
            history.extend(chunk);
            Ok(())
        })
        .await?;
    }
    let record = RoundRecord {
        index: head.index,
        seed: head.seed,
        candidates,
        ticket: head.ticket,
        winner: head.winner as usize,
        rule: head.rule,
        weighting: head.weighting,
        weights,
    };
    // Replayed here, with posctl's own copy of the lottery: posd is not trusted.
    let replay = record.replay_after(&head.prev_hash, head.commitment.as_ref(), &history);
    if out.json {
        let commitment = head.commitment.as_ref();
        out.json_line(&pos_proto::json::round(
            &record,
            &head.prev_hash,
            commitment,
            &replay,
        ))?;
    } else {
        print_round(
            &mut out,
            &record,
            (&head.prev_hash, head.commitment.as_ref()),
            &replay,
        )?;
    }
    out.flush()?;
    Ok(if replay.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `explain`'s text: the draw's inputs, whether it replayed, and every
/// candidate's ticket range with the winner marked.
fn print_round(
    out: &mut Output,
    record: &RoundRecord,
    (prev_hash, commitment): (&Digest, Option<&Digest>),
    replay: &Result<(), LotteryError>,
) -> anyhow::Result<()> {
    let total = record.total_weight();
    let reveal = record.rule.reveal().map(|r| r.to_hex());
    let next_commitment = record.rule.next_commitment().map(|c| c.to_string());
    let commitment = commitment.map(|c| c.to_string());
    let mut rows = vec![
        ("block", record.index.to_string()),
        ("prev hash", prev_hash.to_string()),
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
    let total_name = match record.weighting {
        pos_core::Weighting::Stake => "total stake",
        _ => "total weight",
    };
    rows.extend([
        ("weighting", record.weighting.to_string()),
        ("seed", record.seed.to_string()),
        (total_name, total.to_string()),
        (
            "ticket",
            format!("{} (uniform in [0, {total_name}))", record.ticket),
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
    print_candidates(out, record)
}

/// Each candidate's stake (and weight and why, for a weighted draw) and
/// ticket range, the winner marked.
fn print_candidates(out: &mut Output, record: &RoundRecord) -> anyhow::Result<()> {
    let w = out.id_width();
    match record.weights.is_empty() {
        false => out.line(format_args!(
            "   {:<w$}  {:<12}  {:<12}  {:<4}  {:<14}  TICKETS",
            "ADDRESS", "STAKE", "WEIGHT", "BPM", "WHY"
        ))?,
        true => out.line(format_args!(
            "   {:<w$}  {:<12}  {:<4}  TICKETS",
            "ADDRESS", "STAKE", "BPM"
        ))?,
    }
    let mut start: u128 = 0;
    for (i, c) in record.candidates.iter().enumerate() {
        let end = start.saturating_add(record.weight(i));
        let mark = if i == record.winner { "*" } else { " " };
        let address = out.id(&c.address.to_string());
        match record.weights.get(i) {
            Some(wd) => out.line(format_args!(
                "{mark}  {address:<w$}  {:<12}  {:<12}  {:<4}  {:<14}  [{start}, {end})",
                c.stake,
                wd.weight,
                c.bpm,
                why(&wd.why)
            ))?,
            None => out.line(format_args!(
                "{mark}  {address:<w$}  {:<12}  {:<4}  [{start}, {end})",
                c.stake, c.bpm
            ))?,
        }
        start = end;
    }
    Ok(())
}

/// Why a candidate weighs what it does, in a few columns: `age 2`,
/// `work_bits 22`, `no nonce`.
fn why(why: &pos_core::weighting::Why) -> String {
    use pos_core::weighting::Why;
    match why {
        Why::Stake => "stake".into(),
        Why::Age(age) => format!("age {age}"),
        Why::Work { nonce: None, .. } => "no nonce".into(),
        Why::Work { zeros, .. } => format!("work_bits {zeros}"),
    }
}
