//! posd, the daemon, as a library: `main.rs` parses config and signals and
//! calls [`run`]; tests call [`run`] too, with a listener on `127.0.0.1:0`.
//!
//! - [`server`] accepts validators; [`session`] speaks the `nc` protocol;
//!   [`line`] frames their bytes and [`protocol`] says what each line means.
//! - [`writer`] is the single writer: every durable change, group-committed.
//! - [`scheduler`] closes rounds on a timer; [`round`] turns proposals into a block.
//! - [`admin`] answers posctl on the Unix socket; [`http`] serves metrics,
//!   the JSON API and the live page; [`query`] is the reads both make.
//! - [`pending`], [`connected`], [`announce`]: in-memory round state and fan-out.
//! - [`cluster`]: a cluster node's Raft, the leader's batcher, the peer
//!   port; [`submit`]: where writes go (local writer or cluster).
//! - [`config`]: keys, precedence, reload rules.

mod admin;
mod announce;
mod clock;
mod cluster;
pub mod config;
mod connected;
mod forget;
mod http;
mod line;
mod pending;
mod proposer;
mod protocol;
mod query;
mod ratelimit;
mod report;
mod round;
mod scheduler;
mod server;
mod session;
mod shared;
mod slots;
mod submit;
mod writer;

use anyhow::Context;
use config::Config;
use futures::{Stream, StreamExt};
use pos_proto::text::count;
use pos_store::Store;
use shared::Shared;
use std::fs::File;
use std::future::Future;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for sessions to say goodbye before leaving anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Tells systemd (when it started us with `Type=notify`) how we are doing.
fn notify(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Opens the data directory and serves `listener` and the admin socket until
/// `shutdown` resolves. Each config from `reloads` (SIGHUP) replaces the
/// reloadable keys of the running one.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    reloads: impl Stream<Item = Config> + Send + Unpin + 'static,
) -> anyhow::Result<()> {
    Node::open(config)?.serve(listener, shutdown, reloads).await
}

/// `posd --check`: opens the data directory as a start would (which checks it
/// against the acknowledgement record), then verifies the whole chain and
/// every record. Returns a one-line summary.
pub fn check(config: &Config) -> anyhow::Result<String> {
    let dir = &config.data_dir;
    if !dir.join("sled").exists() && !dir.join(pos_store::acked::FILE).exists() {
        anyhow::bail!("{} holds no chain", dir.display());
    }
    let store = match Store::open(dir, &config.chain_spec(clock::record_ms())) {
        Ok(store) => store,
        // In use is no fault: the check needs the directory to itself.
        Err(e @ pos_store::StoreError::Locked(..)) => {
            anyhow::bail!("{e}: posd --check needs it stopped, or check a backup")
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("data directory {} failed its check", dir.display()))
        }
    };
    let tip = store.tip()?;
    let checked = store
        .check_all()
        .with_context(|| format!("data directory {} failed its check", dir.display()))?;
    Ok(format!(
        "{}: ok: height {}, tip {}, {} verified, {}, matches what posd acknowledged",
        dir.display(),
        tip.index,
        tip.hash,
        count(checked.blocks, "block"),
        count(checked.validators, "validator")
    ))
}

/// `posd import FILE`: a new data directory at `data_dir` from an export
/// file (`-`: standard input), verified before it exists. Returns a one-line summary.
pub fn import(file: &Path, data_dir: &Path) -> anyhow::Result<String> {
    let context = || {
        format!(
            "cannot import {} into {}",
            file.display(),
            data_dir.display()
        )
    };
    let input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(context)?)
    };
    let imported = pos_store::export::import(BufReader::with_capacity(1 << 20, input), data_dir)
        .with_context(context)?;
    let h = &imported.header;
    Ok(format!(
        "{}: imported height {}, tip {}: {}, {}; every hash, link, draw and \
         the checksum verified; start posd with --data-dir {}",
        data_dir.display(),
        h.height,
        h.tip,
        count(imported.blocks, "block"),
        count(imported.validators, "validator"),
        data_dir.display()
    ))
}

/// A data directory opened and checked, not yet serving: the binary opens
/// it before binding the port, so a refused directory never shows as "listening".
pub struct Node {
    config: Config,
    store: Arc<Store>,
    /// `config.data_dir` made absolute, for the writer's free-space checks and logs.
    data_dir: std::path::PathBuf,
    /// Bound to `http_listen` when it is set.
    http: Option<std::net::TcpListener>,
    /// A cluster node's port and secret; `None` standalone.
    cluster: Option<ClusterPort>,
}

/// What a cluster node has before it serves.
struct ClusterPort {
    listener: std::net::TcpListener,
    secret: pos_raft::ClusterSecret,
}

impl Node {
    /// Opens (or creates) the chain in the configured data directory.
    pub fn open(config: Config) -> anyhow::Result<Node> {
        let dir = std::path::absolute(&config.data_dir).with_context(|| {
            format!(
                "cannot resolve data directory {}",
                config.data_dir.display()
            )
        })?;
        let spec = config.chain_spec(clock::record_ms());
        // A cluster node never makes a genesis it did not bootstrap.
        let store = match config.cluster_listen {
            None => Store::open(&dir, &spec),
            Some(_) => Store::open_awaiting(&dir, &spec),
        }
        .with_context(|| format!("cannot open data directory {}", dir.display()))?;
        let cluster = config
            .cluster_listen
            .map(|addr| cluster_port(&config, addr))
            .transpose()?;
        let config = if store.has_chain()? {
            log_opened(&dir, &store)?;
            ruled_by_chain(&config, &store.chain_spec())
        } else {
            tracing::info!(
                data_dir = %dir.display(),
                "no chain yet: run `posctl cluster init` on this node to start a cluster, or add it from the leader with `posctl cluster add`"
            );
            config
        };
        let http = config.http_listen.map(bind_http).transpose()?;
        Ok(Node {
            config,
            store: Arc::new(store),
            data_dir: dir,
            http,
            cluster,
        })
    }

    /// Where the HTTP listener is bound (the config may say port 0), if on.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, or until storage fails, which is
    /// returned as an error after the same orderly stop.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        reloads: impl Stream<Item = Config> + Send + Unpin + 'static,
    ) -> anyhow::Result<()> {
        let Node {
            config,
            store,
            data_dir,
            http,
            cluster: cluster_port,
        } = self;
        // Kept to the end: see the fail-stop arm below.
        let last_store = Arc::clone(&store);
        let http = http
            .map(TcpListener::from_std)
            .transpose()
            .context("cannot serve the HTTP listener")?;
        let metrics = Arc::new(http::metrics::Metrics::new(cluster_port.is_some()));
        // Before the writer thread exists, so a refusal here releases the store at once.
        let (admin_listener, socket_file) = admin::socket::bind(&config.admin_socket)?;
        let pending = Arc::new(pending::Pending::default());
        let height = match store.has_chain()? {
            true => store.tip()?.index,
            false => 0,
        };
        let announcer = announce::Announcer::new(tokio::runtime::Handle::current(), height);
        let failed = CancellationToken::new();
        let config_tx = watch::Sender::new(Arc::new(config.clone()));
        let proposer = proposer::Proposer {
            store: Arc::clone(&store),
            pending: Arc::clone(&pending),
            config: config_tx.subscribe(),
            clock_behind: Default::default(),
        };
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (submit, writer_thread, cluster, cluster_addr) = match cluster_port {
            None => {
                let (writer, thread) = writer::Writer::spawn(writer::WriterContext {
                    store: Arc::clone(&store),
                    data_dir,
                    proposer,
                    announcer: announcer.clone(),
                    failed: failed.clone(),
                    metrics: Arc::clone(&metrics),
                })
                .context("cannot start the writer thread")?;
                let submit = submit::Submit::Local {
                    writer,
                    pending: Arc::clone(&pending),
                };
                (submit, Some(thread), None, None)
            }
            Some(port) => {
                let replica = cluster::replica::Replica {
                    me: config.node_id,
                    pending: Arc::clone(&pending),
                    announcer: announcer.clone(),
                    metrics: Arc::clone(&metrics),
                    waiters: Arc::default(),
                    store: Arc::clone(&store),
                    config: config_tx.clone(),
                };
                let (cluster, addr) = start_cluster(
                    &config,
                    port,
                    replica,
                    proposer,
                    (Arc::clone(&store), &data_dir, Arc::clone(&metrics)),
                    (&tracker, &token, &failed),
                )
                .await?;
                let submit = submit::Submit::Cluster {
                    cluster: Arc::clone(&cluster),
                    pending: Arc::clone(&pending),
                };
                (submit, None, Some(cluster), Some(addr))
            }
        };
        let chain = Arc::new(shared::Chain {
            store,
            submit,
            pending,
            announcer,
            next_round: Arc::new(scheduler::NextRound::new(
                tokio::time::Instant::now() + config.round_interval,
            )),
        });
        let shared = Arc::new(Shared {
            listen: listener
                .local_addr()
                .context("validator listener has no address")?,
            admin_socket: config.admin_socket.clone(),
            started: std::time::Instant::now(),
            config: shared::RunningConfig(config_tx),
            chain,
            clients: Arc::default(),
            cluster,
            cluster_addr,
            shutdown: token.clone(),
            metrics,
        });
        let serving = shared::Serving {
            chain: Arc::clone(&shared.chain),
            clients: Arc::clone(&shared.clients),
            config: shared.config.clone(),
            shutdown: token.clone(),
        };

        tracker.spawn({
            let shared = Arc::clone(&shared);
            async move {
                scheduler::run(
                    shared.config.subscribe(),
                    &shared.chain.next_round,
                    shared.shutdown.clone(),
                    || async {
                        // In a cluster only the leader's timer closes rounds.
                        if shared.cluster.as_ref().is_some_and(|c| !c.is_leader()) {
                            return;
                        }
                        if let Err(e) = shared.chain.submit.round().await {
                            tracing::error!(error = %e, "round failed; proposals dropped");
                        }
                    },
                )
                .await
            }
        });
        tracker.spawn(forget::run(serving.clone()));
        tracker.spawn(server::serve(listener, serving, tracker.clone()));
        tracker.spawn(admin::serve(
            admin_listener,
            Arc::clone(&shared),
            tracker.clone(),
        ));
        if let Some(listener) = http {
            tracker.spawn(http::server::serve(
                listener,
                Arc::clone(&shared),
                tracker.clone(),
            ));
        }
        // Not on the tracker: the reload stream may never end.
        let reloader = tokio::spawn(apply_reloads(Arc::clone(&shared), reloads));
        tracing::info!(
            listen = %shared.listen,
            admin_socket = %shared.admin_socket.display(),
            "posd ready"
        );
        notify(sd_notify::NotifyState::Ready);

        tokio::select! {
            () = shutdown => {}
            () = failed.cancelled() => {}
        }
        notify(sd_notify::NotifyState::Stopping);
        tracing::info!(
            discarded_proposals = shared.chain.pending.len(),
            "shutting down"
        );
        reloader.abort();
        // Wait until it is gone, with its handle on `shared`.
        let _ = reloader.await;
        token.cancel();
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        let cluster = shared.cluster.clone();
        drop(shared);
        drop(socket_file);
        let Some(writer_thread) = writer_thread else {
            let cluster = cluster.expect("a node without a writer is a cluster node");
            return stop_cluster(&cluster, last_store, &failed).await;
        };
        // The writer ends (after a last flush) once the last handle is gone.
        let written = tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .context("cannot wait for the writer thread")?;
        match written {
            Ok(Ok(())) => {
                drop(last_store);
                tracing::info!("stopped");
                Ok(())
            }
            Ok(Err(e)) => {
                // Dropping sled after its disk failed syncs again and panics
                // (sled's log unwraps that sync). The process is ending and the
                // disk holds what it holds: leave the store to the exit.
                std::mem::forget(last_store);
                Err(anyhow::Error::new(e).context(
                    "storage failed; stopped without acknowledging unsynced changes (restart to serve from disk)",
                ))
            }
            Err(_) => anyhow::bail!("the writer thread panicked"),
        }
    }
}

/// `config` with the chain's rules in place of its own: they are chain data,
/// so a config that differs does not change them (each difference is logged).
fn ruled_by_chain(config: &Config, chain: &pos_core::ChainSpec) -> Config {
    let (ruled, differing) = config.with_chain_rules(chain);
    for (key, configured, chain_value) in differing {
        tracing::warn!(
            key,
            chain = %chain_value,
            config = %configured,
            "chain rule set when this chain was created; the config's value does not apply"
        );
    }
    ruled
}

/// Logs what opening found: a migration, a new chain, or the chain's height.
fn log_opened(dir: &std::path::Path, store: &Store) -> anyhow::Result<()> {
    let tip = store.tip()?;
    if let (true, Some(anchor)) = (store.migrated(), store.lottery_anchor()) {
        tracing::warn!(
            data_dir = %dir.display(),
            lottery_v2_from = anchor.from,
            commitment = %anchor.commitment,
            "migrated the data directory from schema 1 to 2: blocks up to {} keep their v1 draws, later ones are drawn by lottery v2",
            anchor.from - 1
        );
    }
    if store.created() {
        tracing::info!(data_dir = %dir.display(), tip = %tip.hash, "created a new chain (genesis only)");
    } else {
        tracing::info!(
            data_dir = %dir.display(),
            height = tip.index,
            tip = %tip.hash,
            "opened the chain (pending proposals from before a restart are gone)"
        );
    }
    Ok(())
}

/// Binds `cluster_listen` and reads the cluster's secret, which must be
/// private to posd's user (mode 0600 or stricter) and not short.
fn cluster_port(config: &Config, addr: std::net::SocketAddr) -> anyhow::Result<ClusterPort> {
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
    Ok(ClusterPort {
        listener,
        secret: pos_raft::ClusterSecret::new(secret.as_bytes().to_vec()),
    })
}

/// Starts this node's Raft, the leader's batcher and the peer port. A
/// fatal Raft error (storage) cancels `failed`, as the writer's would.
async fn start_cluster(
    config: &Config,
    port: ClusterPort,
    replica: cluster::replica::Replica,
    proposer: proposer::Proposer,
    (store, data_dir, metrics): (Arc<Store>, &std::path::Path, Arc<http::metrics::Metrics>),
    (tracker, shutdown, failed): (&TaskTracker, &CancellationToken, &CancellationToken),
) -> anyhow::Result<(Arc<cluster::Cluster>, std::net::SocketAddr)> {
    let ClusterPort { listener, secret } = port;
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
    let (tx, rx) = tokio::sync::mpsc::channel(cluster::batcher::QUEUE);
    let batcher = cluster::batcher::Batcher {
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
    let peers = cluster::peer::PeerServer {
        node: node.clone(),
        secret: secret.clone(),
        batcher: tx.clone(),
        shutdown: shutdown.clone(),
    };
    tracker.spawn(peers.serve(listener, tracker.clone()));
    let cluster = cluster::Cluster::new(config.node_id, node, secret, waiters, tx);
    Ok((Arc::new(cluster), addr))
}

/// Stops Raft; an error if it had stopped on its own (storage failed).
async fn stop_cluster(
    cluster: &cluster::Cluster,
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

/// Binds `http_listen`; the runtime takes it over in [`Node::serve`].
fn bind_http(addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!("http listening on http://{bound}/");
    Ok(listener)
}

/// Applies each reloaded config's reloadable keys and logs every change.
async fn apply_reloads(shared: Arc<Shared>, mut reloads: impl Stream<Item = Config> + Unpin) {
    while let Some(new) = reloads.next().await {
        let current = shared.config();
        let changes = current.changes(&new);
        for (key, old, value) in &changes {
            if config::is_reloadable(key) {
                tracing::info!(key, old = %old, new = %value, "config reloaded");
            } else {
                tracing::warn!(key, running = %old, file = %value, "changed key needs a restart; keeping the running value");
            }
        }
        if changes.is_empty() {
            tracing::info!("config reloaded: nothing changed");
        }
        let effective = current.reloaded(&new);
        shared.config.0.send_replace(Arc::new(effective));
    }
}
