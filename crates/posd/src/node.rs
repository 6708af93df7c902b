//! A node's life: [`Node::open`] checks the data directory and binds the
//! ports, [`Node::serve`] starts the writes (the standalone writer or the
//! cluster), spawns the tasks, waits for shutdown or a storage failure, and
//! stops in order; SIGHUP's configs are applied on the way.

use crate::announce::Announcer;
use crate::config::{self, Config};
use crate::fanout::Audience;
use crate::metrics::Metrics;
use crate::proposer::Proposer;
use crate::shared::{self, Serving, Shared};
use crate::submit::Submit;
use crate::validators::pending::Pending;
use crate::writer::{Writer, WriterContext};
use crate::{admin, clock, cluster, http, scheduler, server, validators};
use anyhow::Context;
use futures::{Stream, StreamExt};
use pos_store::{Store, StoreError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for sessions to say goodbye before leaving anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A data directory opened and checked, not yet serving: the binary opens
/// it before binding the port, so a refused directory never shows as "listening".
pub struct Node {
    config: Config,
    store: Arc<Store>,
    /// `config.data_dir` made absolute, for the writer's free-space checks and logs.
    data_dir: PathBuf,
    /// Bound to `http_listen` when it is set.
    http: Option<std::net::TcpListener>,
    /// A cluster node's port and secret; `None` standalone.
    cluster: Option<cluster::start::Port>,
}

/// A node serving: what its stop waits for and releases.
struct Running {
    shared: Arc<Shared>,
    tracker: TaskTracker,
    /// Cancelled when storage has failed and posd must stop.
    failed: CancellationToken,
    /// Applies SIGHUP's configs; not on the tracker, as its stream may never end.
    reloader: tokio::task::JoinHandle<()>,
    /// Removed once everything that answers on it has stopped.
    socket_file: admin::socket::SocketFile,
    /// The standalone writer; `None` on a cluster node.
    writer: Option<JoinHandle<Result<(), StoreError>>>,
    /// Kept to the end: see the fail-stop in [`Running::stop`].
    store: Arc<Store>,
}

/// Where writes go, once started, with what stopping them needs.
struct Writes {
    submit: Submit,
    writer: Option<JoinHandle<Result<(), StoreError>>>,
    cluster: Option<(Arc<cluster::Cluster>, std::net::SocketAddr)>,
}

/// Tells systemd (when it started us with `Type=notify`) how we are doing.
fn notify(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
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
            .map(|addr| cluster::start::port(&config, addr))
            .transpose()?;
        let config = if store.has_chain()? {
            log_opened(&dir, &store)?;
            config.ruled_by_chain(&store.chain_spec())
        } else {
            tracing::info!(
                data_dir = %dir.display(),
                "no chain yet: run `posctl cluster init` on this node to start a cluster, or add it from the leader with `posctl cluster add`"
            );
            config
        };
        let http = config.http_listen.map(http::server::bind).transpose()?;
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
        let running = self.start(listener, reloads).await?;
        tracing::info!(
            listen = %running.shared.listen,
            admin_socket = %running.shared.admin_socket.display(),
            "posd ready"
        );
        notify(sd_notify::NotifyState::Ready);
        tokio::select! {
            () = shutdown => {}
            () = running.failed.cancelled() => {}
        }
        notify(sd_notify::NotifyState::Stopping);
        running.stop().await
    }

    /// Starts the writes and every task.
    async fn start(
        self,
        listener: TcpListener,
        reloads: impl Stream<Item = Config> + Send + Unpin + 'static,
    ) -> anyhow::Result<Running> {
        let Node {
            config,
            store,
            data_dir,
            http,
            cluster: port,
        } = self;
        let http = http
            .map(TcpListener::from_std)
            .transpose()
            .context("cannot serve the HTTP listener")?;
        // Before the writer thread exists, so a refusal here releases the store at once.
        let (admin_listener, socket_file) = admin::socket::bind(&config.admin_socket)?;
        let height = match store.has_chain()? {
            true => store.tip()?.index,
            false => 0,
        };
        let parts = Parts {
            announcer: Announcer::new(tokio::runtime::Handle::current(), height),
            metrics: Arc::new(Metrics::new(port.is_some())),
            config: watch::Sender::new(Arc::new(config.clone())),
            store,
            pending: Arc::new(Pending::opening(height + 1)),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            failed: CancellationToken::new(),
        };
        let writes = start_writes(&parts, &config, data_dir, port).await?;
        let (cluster, cluster_addr) = writes.cluster.unzip();
        let audience = Audience::start(&parts.announcer);
        let shared = Arc::new(Shared {
            listen: listener
                .local_addr()
                .context("validator listener has no address")?,
            admin_socket: config.admin_socket.clone(),
            started: std::time::Instant::now(),
            config: shared::RunningConfig(parts.config),
            chain: Arc::new(shared::Chain {
                store: Arc::clone(&parts.store),
                submit: writes.submit,
                pending: parts.pending,
                announcer: parts.announcer,
                next_round: Arc::new(scheduler::NextRound::new(
                    tokio::time::Instant::now() + config.round_interval,
                )),
            }),
            clients: Arc::new(shared::Clients::new(audience)),
            cluster,
            cluster_addr,
            shutdown: parts.shutdown,
            metrics: parts.metrics,
        });
        spawn_tasks(&shared, &parts.tracker, listener, admin_listener, http);
        Ok(Running {
            reloader: tokio::spawn(apply_reloads(Arc::clone(&shared), reloads)),
            shared,
            tracker: parts.tracker,
            failed: parts.failed,
            socket_file,
            writer: writes.writer,
            store: parts.store,
        })
    }
}

/// What the writes and the tasks share, made once at start.
struct Parts {
    store: Arc<Store>,
    pending: Arc<Pending>,
    announcer: Announcer,
    metrics: Arc<Metrics>,
    config: watch::Sender<Arc<Config>>,
    tracker: TaskTracker,
    /// Cancelled once on SIGTERM/SIGINT; every task watches it.
    shutdown: CancellationToken,
    failed: CancellationToken,
}

/// Starts where writes go: the standalone writer thread, or (with `port`)
/// this node's part of the cluster.
async fn start_writes(
    parts: &Parts,
    config: &Config,
    data_dir: PathBuf,
    port: Option<cluster::start::Port>,
) -> anyhow::Result<Writes> {
    let proposer = Proposer {
        store: Arc::clone(&parts.store),
        pending: Arc::clone(&parts.pending),
        config: parts.config.subscribe(),
        clock_behind: Default::default(),
    };
    let pending = Arc::clone(&parts.pending);
    let Some(port) = port else {
        let (writer, thread) = Writer::spawn(WriterContext {
            store: Arc::clone(&parts.store),
            data_dir,
            proposer,
            announcer: parts.announcer.clone(),
            failed: parts.failed.clone(),
            metrics: Arc::clone(&parts.metrics),
        })
        .context("cannot start the writer thread")?;
        return Ok(Writes {
            submit: Submit::Local { writer, pending },
            writer: Some(thread),
            cluster: None,
        });
    };
    let replica = cluster::replica::Replica {
        me: config.node_id,
        pending: Arc::clone(&parts.pending),
        announcer: parts.announcer.clone(),
        metrics: Arc::clone(&parts.metrics),
        waiters: Arc::default(),
        store: Arc::clone(&parts.store),
        config: parts.config.clone(),
    };
    let (cluster, addr) = cluster::start::start(
        config,
        port,
        replica,
        proposer,
        (
            Arc::clone(&parts.store),
            &data_dir,
            Arc::clone(&parts.metrics),
        ),
        (&parts.tracker, &parts.shutdown, &parts.failed),
    )
    .await?;
    Ok(Writes {
        submit: Submit::Cluster {
            cluster: Arc::clone(&cluster),
            pending,
        },
        writer: None,
        cluster: Some((cluster, addr)),
    })
}

/// The round timer, the forget sweep, the validator port, the admin socket
/// and (when on) HTTP, each on `tracker`.
fn spawn_tasks(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    listener: TcpListener,
    admin_listener: tokio::net::UnixListener,
    http: Option<TcpListener>,
) {
    tracker.spawn({
        let shared = Arc::clone(shared);
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
    let serving = Serving {
        chain: Arc::clone(&shared.chain),
        clients: Arc::clone(&shared.clients),
        config: shared.config.clone(),
        shutdown: shared.shutdown.clone(),
    };
    tracker.spawn(validators::forget::run(serving.clone()));
    tracker.spawn(server::serve(listener, serving, tracker.clone()));
    tracker.spawn(admin::serve(
        admin_listener,
        Arc::clone(shared),
        tracker.clone(),
    ));
    if let Some(listener) = http {
        tracker.spawn(http::server::serve(
            listener,
            Arc::clone(shared),
            tracker.clone(),
        ));
    }
}

impl Running {
    /// Stops the tasks (waiting [`DRAIN_TIMEOUT`] for them), then the
    /// writes: an error if storage had failed.
    async fn stop(self) -> anyhow::Result<()> {
        let Running {
            shared,
            tracker,
            failed,
            reloader,
            socket_file,
            writer,
            store,
        } = self;
        tracing::info!(
            discarded_proposals = shared.chain.pending.len(),
            "shutting down"
        );
        reloader.abort();
        // Wait until it is gone, with its handle on `shared`.
        let _ = reloader.await;
        if let Some(cluster) = &shared.cluster {
            cluster.hand_over().await;
        }
        shared.shutdown.cancel();
        shared.chain.announcer.shutdown();
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
        let Some(writer) = writer else {
            let cluster = cluster.expect("a node without a writer is a cluster node");
            return cluster::start::stop(&cluster, store, &failed).await;
        };
        // The writer ends (after a last flush) once the last handle is gone.
        let written = tokio::task::spawn_blocking(move || writer.join())
            .await
            .context("cannot wait for the writer thread")?;
        match written {
            Ok(Ok(())) => {
                drop(store);
                tracing::info!("stopped");
                Ok(())
            }
            Ok(Err(e)) => {
                // Dropping sled after its disk failed syncs again and panics
                // (sled's log unwraps that sync). The process is ending and the
                // disk holds what it holds: leave the store to the exit.
                std::mem::forget(store);
                Err(anyhow::Error::new(e).context(
                    "storage failed; stopped without acknowledging unsynced changes (restart to serve from disk)",
                ))
            }
            Err(_) => anyhow::bail!("the writer thread panicked"),
        }
    }
}

/// Logs what opening found: a migration, a new chain, or the chain's height.
fn log_opened(dir: &Path, store: &Store) -> anyhow::Result<()> {
    let tip = store.tip()?;
    if let (true, Some(anchor)) = (store.migrated(), store.lottery_anchor()) {
        tracing::warn!(
            data_dir = %dir.display(),
            lottery_v2_from = anchor.from,
            commitment = %anchor.commitment,
            "migrated the data directory from schema 1 to {}: blocks up to {} keep their v1 draws, later ones are drawn by lottery v2",
            pos_store::layout::SCHEMA_VERSION,
            anchor.from - 1
        );
    }
    if store.marked() {
        tracing::warn!(
            data_dir = %dir.display(),
            "upgraded the data directory from schema 2 to 3: round records over 4 KiB now go to round-log/, nothing else changed; a posd that reads schema 2 refuses it from now on (export, then import with that posd, to go back)"
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
