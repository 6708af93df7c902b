//! A cluster node's start and stop: the port and secret read before the
//! node serves, then this node's Raft, the leader's batcher and the peer
//! port; at the end, Raft stopped.

use super::batcher::{self, Batcher};
use super::peer::PeerServer;
use super::replica::Replica;
use super::Cluster;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proposer::Proposer;
use anyhow::Context;
use pos_store::Store;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a cluster node has before it serves.
pub(crate) struct Port {
    listener: std::net::TcpListener,
    secret: pos_raft::ClusterSecret,
}

/// Binds `cluster_listen` and reads the cluster's secret, which must be
/// private to posd's user (mode 0600 or stricter) and not short.
pub(crate) fn port(config: &Config, addr: SocketAddr) -> anyhow::Result<Port> {
    use std::os::unix::fs::PermissionsExt;
    let path = config.cluster_secret_file.as_ref().context(
        "cluster_listen is set but cluster_secret_file is not: every node needs the cluster's shared secret",
    )?;
    let read = || format!("cannot read cluster_secret_file {}", path.display());
    let file = std::fs::File::open(path).with_context(read)?;
    let mode = file.metadata().with_context(read)?.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "cluster_secret_file {} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    let secret = std::io::read_to_string(file).with_context(read)?;
    let secret = secret.trim();
    if secret.len() < 16 {
        anyhow::bail!(
            "cluster_secret_file {} holds fewer than 16 characters; use a long random secret, e.g. `openssl rand -hex 32`",
            path.display()
        );
    }
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (cluster_listen)"))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("cannot listen on {addr} (cluster_listen)"))?;
    tracing::info!(
        node_id = config.node_id,
        cluster_listen = %listener.local_addr().unwrap_or(addr),
        "cluster node"
    );
    Ok(Port {
        listener,
        secret: pos_raft::ClusterSecret::new(secret.as_bytes().to_vec()),
    })
}

/// Starts this node's Raft, the leader's batcher and the peer port. A
/// fatal Raft error (storage) cancels `failed`, as the writer's would.
pub(crate) async fn start(
    config: &Config,
    port: Port,
    replica: Replica,
    proposer: Proposer,
    (store, data_dir, metrics): (Arc<Store>, &Path, Arc<Metrics>),
    (tracker, shutdown, failed): (&TaskTracker, &CancellationToken, &CancellationToken),
) -> anyhow::Result<(Arc<Cluster>, SocketAddr)> {
    let Port { listener, secret } = port;
    let addr = listener
        .local_addr()
        .context("cluster listener has no address")?;
    let waiters = Arc::clone(&replica.waiters);
    let node = pos_raft::Node::start(
        config.node_id,
        config.election_timeout,
        store,
        data_dir,
        Arc::new(replica),
        secret.clone(),
    )
    .await
    .context("cannot start the cluster node")?;
    let (tx, rx) = tokio::sync::mpsc::channel(batcher::QUEUE);
    let batcher = Batcher {
        node: node.clone(),
        proposer,
        data_dir: data_dir.to_owned(),
        metrics,
    };
    tokio::spawn(batcher.run(rx));
    tokio::spawn({
        let (node, failed) = (node.clone(), failed.clone());
        async move {
            let why = node.fatal().await;
            if !failed.is_cancelled() {
                tracing::error!(error = %why, "cluster node stopped: nothing more is acknowledged, posd stops");
                failed.cancel();
            }
        }
    });
    let listener = TcpListener::from_std(listener).context("cannot serve cluster_listen")?;
    let peers = PeerServer {
        node: node.clone(),
        secret: secret.clone(),
        batcher: tx.clone(),
        shutdown: shutdown.clone(),
    };
    tracker.spawn(peers.serve(listener, tracker.clone()));
    let cluster = Cluster::new(config.node_id, node, secret, waiters, tx);
    Ok((Arc::new(cluster), addr))
}

/// Stops Raft; an error if it had stopped on its own (storage failed).
pub(crate) async fn stop(
    cluster: &Cluster,
    store: Arc<Store>,
    failed: &CancellationToken,
) -> anyhow::Result<()> {
    let stopped_by_fault = cluster.node.view().role == pos_raft::Role::Stopped;
    // Raft's own end is not a fault once we asked it to stop.
    failed.cancel();
    cluster.node.shutdown().await;
    if stopped_by_fault {
        // As the writer's fail-stop: leave the store to the exit.
        std::mem::forget(store);
        anyhow::bail!("the cluster node stopped on a storage failure; restart to serve from disk");
    }
    drop(store);
    tracing::info!("stopped");
    Ok(())
}
