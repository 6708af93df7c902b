//! posd, the daemon, as a library: `main.rs` parses config and signals and
//! calls [`run`]; tests call [`run`] too, with a listener on `127.0.0.1:0`.
//!
//! - [`server`] accepts validators; [`session`] speaks the `nc` protocol;
//!   [`line`] frames their bytes.
//! - [`writer`] is the single writer: every durable change, group-committed.
//! - [`scheduler`] closes rounds on a timer; [`round`] turns proposals into a block.
//! - [`pending`], [`connected`], [`announce`]: in-memory round state and fan-out.

pub mod admin;
pub mod announce;
pub mod config;
pub mod connected;
pub mod line;
pub mod pending;
pub mod round;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod shared;
pub mod writer;

use anyhow::Context;
use config::Config;
use pos_store::Store;
use shared::Shared;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for sessions to say goodbye before leaving anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the data directory and serves `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let store = Store::open(&config.data_dir, now_ms)
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
    let announcer = announce::Announcer::default();
    let (writer, writer_thread) = writer::Writer::spawn(writer::WriterContext {
        store: Arc::clone(&store),
        pending: Arc::clone(&pending),
        announcer: announcer.clone(),
        block_reward: config.block_reward,
        max_stake: config.max_stake,
    })
    .context("cannot start the writer thread")?;
    let admin_socket = config.admin_socket_path();
    let (admin_listener, socket_file) = admin::socket::bind(&admin_socket)?;
    let token = CancellationToken::new();
    let shared = Arc::new(Shared {
        listen: listener
            .local_addr()
            .context("validator listener has no address")?,
        admin_socket,
        started: std::time::Instant::now(),
        slots: Arc::new(tokio::sync::Semaphore::new(config.max_connections as usize)),
        next_round: Arc::new(scheduler::NextRound::new(
            tokio::time::Instant::now() + config.round_interval,
        )),
        config,
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
                shared.config.round_interval,
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
    tracing::info!(path = %shared.admin_socket.display(), "admin socket ready");

    shutdown.await;
    tracing::info!(discarded_proposals = shared.pending.len(), "shutting down");
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
