//! posd, the daemon, as a library: `main.rs` parses config and signals and
//! calls [`run`]; tests call [`run`] too, with a listener on `127.0.0.1:0`.
//!
//! - [`server`] accepts validators; [`session`] speaks the `nc` protocol;
//!   [`line`] frames their bytes and [`protocol`] says what each line means.
//! - [`writer`] is the single writer: every durable change, group-committed.
//! - [`scheduler`] closes rounds on a timer; [`round`] turns proposals into a block.
//! - [`admin`] answers posctl on the Unix socket.
//! - [`pending`], [`connected`], [`announce`]: in-memory round state and fan-out.
//! - [`config`]: keys, precedence, reload rules.

pub mod admin;
pub mod announce;
pub mod config;
pub mod connected;
pub mod line;
pub mod pending;
pub mod protocol;
pub mod round;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod shared;
pub mod writer;

use anyhow::Context;
use config::{Config, RELOADABLE};
use futures::{Stream, StreamExt};
use pos_store::Store;
use shared::Shared;
use std::future::Future;
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
    let store = Store::open(&config.data_dir, writer::now_ms())
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
    let store = Arc::new(store);
    let tip = store.tip()?;
    tracing::info!(
        height = tip.index,
        tip = %tip.hash,
        data_dir = %config.data_dir.display(),
        "chain opened (pending proposals from before a restart are gone)"
    );

    let pending = Arc::new(pending::Pending::default());
    let announcer = announce::Announcer::new(tokio::runtime::Handle::current(), tip.index);
    let (writer, writer_thread) = writer::Writer::spawn(writer::WriterContext {
        store: Arc::clone(&store),
        data_dir: config.data_dir.clone(),
        pending: Arc::clone(&pending),
        announcer: announcer.clone(),
        block_reward: config.block_reward,
        max_stake: config.max_stake,
    })
    .context("cannot start the writer thread")?;
    let (admin_listener, socket_file) = admin::socket::bind(&config.admin_socket)?;
    let token = CancellationToken::new();
    let (interval_tx, interval_rx) = watch::channel(config.round_interval);
    let shared = Arc::new(Shared {
        listen: listener
            .local_addr()
            .context("validator listener has no address")?,
        admin_socket: config.admin_socket.clone(),
        started: std::time::Instant::now(),
        slots: Arc::default(),
        next_round: Arc::new(scheduler::NextRound::new(
            tokio::time::Instant::now() + config.round_interval,
        )),
        config: watch::Sender::new(Arc::new(config)),
        store,
        writer,
        pending,
        announcer,
        connected: Arc::default(),
        shutdown: token.clone(),
    });

    let tracker = TaskTracker::new();
    tracker.spawn({
        let shared = Arc::clone(&shared);
        async move {
            let writer = shared.writer.clone();
            scheduler::run(
                interval_rx,
                &shared.next_round,
                shared.shutdown.clone(),
                || async {
                    if let Err(e) = writer.round().await {
                        tracing::error!(error = %e, "round failed; proposals dropped");
                    }
                },
            )
            .await
        }
    });
    tracker.spawn(server::serve(
        listener,
        Arc::clone(&shared),
        tracker.clone(),
    ));
    tracker.spawn(admin::serve(
        admin_listener,
        Arc::clone(&shared),
        tracker.clone(),
    ));
    // Not on the tracker: the reload stream may never end.
    let reloader = tokio::spawn(apply_reloads(Arc::clone(&shared), reloads, interval_tx));
    tracing::info!(
        listen = %shared.listen,
        admin_socket = %shared.admin_socket.display(),
        "posd ready"
    );
    notify(sd_notify::NotifyState::Ready);

    shutdown.await;
    notify(sd_notify::NotifyState::Stopping);
    tracing::info!(discarded_proposals = shared.pending.len(), "shutting down");
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
    drop(shared);
    drop(socket_file);
    // The writer ends (after a last flush) once the last handle is gone.
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .ok();
    tracing::info!("stopped");
    Ok(())
}

/// Applies each reloaded config's reloadable keys and logs every change.
async fn apply_reloads(
    shared: Arc<Shared>,
    mut reloads: impl Stream<Item = Config> + Unpin,
    interval: watch::Sender<Duration>,
) {
    while let Some(new) = reloads.next().await {
        let current = shared.config();
        let changes = current.changes(&new);
        for (key, old, value) in &changes {
            if RELOADABLE.contains(key) {
                tracing::info!(key, old = %old, new = %value, "config reloaded");
            } else {
                tracing::warn!(key, running = %old, file = %value, "changed key needs a restart; keeping the running value");
            }
        }
        if changes.is_empty() {
            tracing::info!("config reloaded: nothing changed");
        }
        let effective = current.reloaded(&new);
        interval.send_replace(effective.round_interval);
        shared.config.send_replace(Arc::new(effective));
    }
}
