//! `posctl work <ADDRESS> <BPM> [--bits N]`: finds a nonce for the open round
//! of a `stake_work` chain (SPEC §12), here, on the caller's machine: posd
//! never mines for clients. The round's inputs (the tip's hash and the next
//! index) come from `status`.

use crate::client::{unexpected, Client};
use crate::output::Output;
use pos_core::weighting::work_zeros;
use pos_core::{Address, Weighting};
use pos_proto::{Request, Response};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// Hashes between two updates of the progress line.
const PROGRESS_EVERY: u64 = 1 << 18;

pub async fn run(
    client: &mut Client,
    mut out: Output,
    (address, bpm, bits): (Address, u32, Option<u32>),
) -> anyhow::Result<ExitCode> {
    let s = match client.ask(&Request::Status).await? {
        Response::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    let bits = match (bits, s.weighting) {
        (Some(bits), _) => bits,
        (None, Weighting::StakeWork { work_bits, .. }) => work_bits,
        (None, other) => anyhow::bail!(
            "this chain weighs by {other}, where a nonce counts for nothing; \
             give --bits N to find one anyway"
        ),
    };
    anyhow::ensure!((1..=64).contains(&bits), "--bits must be from 1 to 64");
    let (prev, index) = (s.tip_hash, s.height + 1);
    let started = Instant::now();
    let mut stderr = std::io::stderr();
    let mut nonce = 0u64;
    let zeros = loop {
        let z = work_zeros(&prev, index, &address, bpm, nonce);
        if z >= bits {
            break z;
        }
        nonce = nonce
            .checked_add(1)
            .ok_or_else(|| anyhow::anyhow!("no nonce below 2^64 has {bits} leading zero bits"))?;
        if nonce.is_multiple_of(PROGRESS_EVERY) {
            let rate = nonce as f64 / started.elapsed().as_secs_f64().max(1e-9);
            // One line, rewritten: how far, how fast, how long to expect.
            let _ = write!(
                stderr,
                "\rblock {index}: {nonce} hashes, {rate:.0}/s, {bits} bits expect ~{:.0}s   ",
                2f64.powi(bits as i32) / rate
            );
        }
    };
    let secs = started.elapsed().as_secs_f64();
    if nonce >= PROGRESS_EVERY {
        let _ = writeln!(stderr);
    }
    let rate = (nonce + 1) as f64 / secs.max(1e-9);
    if out.json {
        out.json_line(&json!({
            "index": index,
            "prev_hash": prev.to_string(),
            "address": address.to_string(),
            "bpm": bpm,
            "nonce": nonce.to_string(),
            "work_bits": zeros,
            "hashes": nonce + 1,
            "hashes_per_sec": rate.round() as u64,
        }))?;
    } else {
        out.line(format_args!(
            "nonce {nonce} gives {zeros} leading zero bits for block {index} \
             ({} hashes in {secs:.2}s, {rate:.0}/s); propose with: {bpm} {nonce}",
            nonce + 1
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
