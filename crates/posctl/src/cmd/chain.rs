//! `posctl chain show`, `posctl chain follow` and `posctl chain verify`.

use crate::client::{for_each_chunk, lost, unexpected, Client};
use crate::output::Output;
use anyhow::bail;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use pos_core::{Block, Digest};
use pos_proto::text::count;
use pos_proto::{json, Request, Response};
use serde_json::json;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Blocks in order (the whole chain by default), streamed.
    Show {
        /// First index to show.
        #[arg(long, value_name = "INDEX")]
        from: Option<u64>,
        /// Last index to show.
        #[arg(long, value_name = "INDEX")]
        to: Option<u64>,
        /// Only the last N blocks (up to --to).
        #[arg(long, value_name = "N")]
        last: Option<u64>,
    },
    /// Re-hash and re-link every block and replay every lottery draw.
    Verify,
    /// Print each block as it commits, until interrupted. If posd restarts,
    /// posctl reconnects and goes on from the block after the last it printed:
    /// none is missed or printed twice.
    Follow {
        /// First index to print, even if already committed [default: the next block].
        #[arg(long, value_name = "INDEX")]
        from: Option<u64>,
    },
}

pub async fn run(client: &mut Client, out: Output, cmd: ChainCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ChainCommand::Show { from, to, last } => show(client, out, from, to, last).await,
        ChainCommand::Verify => verify(client, out).await,
        ChainCommand::Follow { from } => follow(client, out, from).await,
    }
}

/// Longest pause between two reconnection attempts.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Where following stands: the next index to print, and the hash it must link to.
struct Followed {
    next: u64,
    last_hash: Option<Digest>,
}

async fn follow(
    client: &mut Client,
    mut out: Output,
    from: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let mut at = match from {
        Some(next) => Followed {
            next,
            last_hash: None,
        },
        None => match client.ask(&Request::Status).await? {
            Response::Status(s) => Followed {
                next: s.height + 1,
                last_hash: Some(s.tip_hash),
            },
            other => return Err(unexpected(other)),
        },
    };
    if !out.json {
        out.line(out.block_header())?;
        out.flush()?;
    }
    // Heartbeats well within --timeout, so a quiet chain never looks like a dead posd.
    let heartbeat_ms = u64::try_from((client.timeout() / 3).as_millis()).unwrap_or(u64::MAX);
    loop {
        let why = match stream(client, &mut out, &mut at, heartbeat_ms).await {
            Err(e) if lost(&e) => e,
            Err(e) => return Err(e),
        };
        eprintln!(
            "posctl: lost posd ({why:#}); reconnecting, to go on at block {}",
            at.next
        );
        let mut pause = Duration::from_millis(100);
        while !client.reconnect().await? {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY);
        }
        eprintln!("posctl: reconnected; going on at block {}", at.next);
    }
}

/// Follows over one connection until it fails; each block is checked to be
/// the next one and to link to the one before.
async fn stream(
    client: &mut Client,
    out: &mut Output,
    at: &mut Followed,
    heartbeat_ms: u64,
) -> anyhow::Result<std::convert::Infallible> {
    let request = Request::ChainFollow {
        from: at.next,
        heartbeat_ms,
    };
    client.send(&request).await?;
    loop {
        match client.next().await? {
            Response::Blocks(chunk) => {
                for b in &chunk {
                    at.take(b)?;
                    if out.json {
                        out.json_line(&b.json())?;
                    } else {
                        out.line(out.block_row(b))?;
                    }
                }
                out.flush()?;
            }
            Response::Heartbeat => {}
            other => return Err(unexpected(other)),
        }
    }
}

impl Followed {
    /// Accepts `b` as the next block, or says why it is not.
    fn take(&mut self, b: &Block) -> anyhow::Result<()> {
        if b.index != self.next {
            bail!(
                "posd sent block {} where block {} was due",
                b.index,
                self.next
            );
        }
        if let Some(want) = self.last_hash {
            if b.prev_hash != Some(want) {
                bail!(
                    "block {} does not follow the block {} printed before (PrevHash {}, \
                     not {want}): posd now serves another chain",
                    b.index,
                    b.index - 1,
                    b.prev_hash.map(|h| h.to_string()).unwrap_or_default()
                );
            }
        }
        self.next += 1;
        self.last_hash = Some(b.hash);
        Ok(())
    }
}

/// A progress display on stderr, only when a person is watching it.
fn progress(bar: ProgressBar, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

async fn show(
    client: &mut Client,
    mut out: Output,
    from: Option<u64>,
    to: Option<u64>,
    last: Option<u64>,
) -> anyhow::Result<ExitCode> {
    client.send(&Request::ChainShow { from, to, last }).await?;
    // Stdout on a terminal shows progress by itself; a bar is for redirected output.
    let bar = if std::io::stdout().is_terminal() {
        ProgressBar::hidden()
    } else {
        progress(
            ProgressBar::new_spinner(),
            "{spinner} {pos} blocks ({per_sec})",
        )
    };
    if !out.json {
        out.line(out.block_header())?;
    }
    let blocks = |r| match r {
        Response::Blocks(chunk) => Ok(chunk),
        other => Err(Box::new(other)),
    };
    for_each_chunk(client, blocks, |chunk| {
        for b in &chunk {
            if out.json {
                out.json_line(&json::block(b))?;
            } else {
                out.line(out.block_row(b))?;
            }
        }
        bar.inc(chunk.len() as u64);
        Ok(())
    })
    .await?;
    bar.finish_and_clear();
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn verify(client: &mut Client, mut out: Output) -> anyhow::Result<ExitCode> {
    client.send(&Request::ChainVerify).await?;
    let bar = progress(
        ProgressBar::new(0),
        "verifying {bar:40} {pos}/{len} blocks ({per_sec}, eta {eta})",
    );
    let result = loop {
        match client.next().await? {
            Response::Progress { checked, height } => {
                bar.set_length(height + 1);
                bar.set_position(checked);
            }
            Response::Verified(result) => break result,
            other => return Err(unexpected(other)),
        }
    };
    bar.finish_and_clear();
    let code = match &result {
        Ok(blocks) => {
            if out.json {
                out.json_line(&json!({"ok": true, "blocks": blocks}))?;
            } else {
                out.line(format_args!(
                    "chain verified: {}; every hash, link and lottery draw checks out",
                    count(*blocks, "block")
                ))?;
            }
            ExitCode::SUCCESS
        }
        Err(fault) => {
            if out.json {
                out.json_line(&json!({"ok": false, "error": fault}))?;
            } else {
                out.line(format_args!("chain verification FAILED: {fault}"))?;
            }
            ExitCode::from(1)
        }
    };
    out.flush()?;
    Ok(code)
}
