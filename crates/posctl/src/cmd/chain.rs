//! `posctl chain show` and `posctl chain verify`.

use crate::client::{for_each_chunk, unexpected, Client};
use crate::output::Output;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use pos_proto::{json, Request, Response};
use serde_json::json;
use std::io::IsTerminal;
use std::process::ExitCode;

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
}

pub async fn run(client: &mut Client, out: Output, cmd: ChainCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ChainCommand::Show { from, to, last } => show(client, out, from, to, last).await,
        ChainCommand::Verify => verify(client, out).await,
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
                    "chain verified: {blocks} blocks; every hash, link and lottery draw checks out"
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
