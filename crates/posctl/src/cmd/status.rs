//! `posctl status`.

use crate::client::{unexpected, Client};
use crate::output::{size, Output};
use pos_proto::{json, Request, Response};
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(client: &mut Client, mut out: Output) -> anyhow::Result<ExitCode> {
    let s = match client.ask(&Request::Status).await? {
        Response::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    if out.json {
        out.json_line(&json::status(&s))?;
    } else {
        // Whole seconds past 10 s: milliseconds there are noise to a reader.
        let secs = |ms: u64| {
            let ms = if ms >= 10_000 { ms - ms % 1000 } else { ms };
            humantime::format_duration(Duration::from_millis(ms)).to_string()
        };
        out.pairs(&[
            ("height", s.height.to_string()),
            ("tip hash", out.id(&s.tip_hash.to_string())),
            (
                "validators",
                format!(
                    "{} active, {} slashed, {} connected",
                    s.validators_active, s.validators_slashed, s.connected
                ),
            ),
            ("connections", s.connections.to_string()),
            ("pending proposals", s.pending_proposals.to_string()),
            (
                "next round in",
                format!(
                    "{} (every {})",
                    secs(s.next_round_in_ms),
                    secs(s.round_interval_ms)
                ),
            ),
            (
                "uptime",
                humantime::format_duration(Duration::from_secs(s.uptime_secs)).to_string(),
            ),
            ("data size", size(s.data_size_bytes)),
            (
                "lottery commitment",
                out.id(&s.lottery_commitment.to_string()),
            ),
            ("lottery weighting", s.weighting.to_string()),
            ("listen", s.listen),
            ("admin socket", s.admin_socket),
            ("data dir", s.data_dir),
            (
                "cluster",
                s.cluster.as_ref().map_or("standalone".to_string(), |c| {
                    let leader = c.leader_id.map_or("none".into(), |l| l.to_string());
                    format!("node {}, {}, leader {leader}", c.node_id, c.role)
                }),
            ),
            ("version", s.version),
            ("pid", s.pid.to_string()),
        ])?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
