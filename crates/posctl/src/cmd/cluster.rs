//! `posctl cluster init | add | remove | status` (SPEC §9, docs/CLUSTER.md).

use crate::client::{unexpected, Client};
use crate::output::Output;
use pos_proto::{json, ClusterInfo, Request, Response};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Make this node a one-member cluster (its chain, or a new genesis, is
    /// the cluster's). Run once, on one node.
    Init,
    /// Add a node: it joins as a learner, receives the chain, then votes.
    /// Run on the leader. Waits until the node has caught up (give a long
    /// chain time: --timeout 10m).
    Add {
        /// The new node's node_id.
        id: u64,
        /// The new node's cluster_listen address, e.g. 10.0.0.2:9100.
        addr: String,
    },
    /// Remove a node from the cluster. Run on the leader.
    Remove {
        /// The node_id to remove.
        id: u64,
    },
    /// This node's view: role, term, leader, committed and applied, members.
    Status,
}

pub async fn run(
    client: &mut Client,
    mut out: Output,
    command: ClusterCommand,
) -> anyhow::Result<ExitCode> {
    let request = match command {
        ClusterCommand::Init => Request::ClusterInit,
        ClusterCommand::Add { id, addr } => Request::ClusterAdd { node_id: id, addr },
        ClusterCommand::Remove { id } => Request::ClusterRemove { node_id: id },
        ClusterCommand::Status => Request::ClusterStatus,
    };
    let info = match client.ask(&request).await? {
        Response::Cluster(info) => info,
        Response::Error(e) => anyhow::bail!("{e}"),
        other => return Err(unexpected(other)),
    };
    if out.json {
        out.json_line(&json::cluster(&info))?;
    } else {
        show(&mut out, &info)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn show(out: &mut Output, info: &ClusterInfo) -> std::io::Result<()> {
    let leader = info
        .leader_id
        .map_or("none".to_string(), |id| id.to_string());
    let mut rows = vec![
        ("node id".to_string(), info.node_id.to_string()),
        ("role".into(), info.role.clone()),
        ("term".into(), info.term.to_string()),
        ("leader".into(), leader),
        ("committed".into(), info.committed.to_string()),
        ("applied".into(), info.applied.to_string()),
    ];
    for m in &info.members {
        let kind = if m.voter { "voter" } else { "learner" };
        rows.push((
            format!("member {}", m.node_id),
            format!("{} ({kind})", m.addr),
        ));
    }
    let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    out.pairs(&rows)?;
    if info.role == "removed" {
        out.line(REMOVED)?;
    }
    Ok(())
}

/// What a removed node is for now (docs/CLUSTER.md, "A removed node").
const REMOVED: &str = "This node was removed from the cluster: it refuses writes, and its \
members above are its last view. Stop it; to add it again, wipe its data directory, start \
it and run `posctl cluster add` on the leader.";
