//! The validator listener: accepts connections within the connection limit,
//! shedding connections that have not registered when it is reached.

use crate::shared::Serving;
use crate::validators::session;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

/// Pause after a failed `accept` (e.g. EMFILE) so a full fd table is not spun on.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts until shutdown; every session runs on `tracker`, so the caller can
/// wait for them all to finish.
pub async fn serve(listener: TcpListener, ctx: Serving, tracker: TaskTracker) {
    while let Some((stream, peer)) = accept(&listener, &ctx.shutdown, "validator").await {
        let limit = ctx.config.get().max_connections as usize;
        match ctx.clients.slots.take(limit) {
            Some(slot) => {
                tracker.spawn(session::run(stream, peer, ctx.clone(), slot));
            }
            None => {
                tracing::warn!(%peer, limit, "connection limit reached, every connection registered; refusing");
                tracker.spawn(refuse(stream, limit));
            }
        }
    }
}

/// The next connection on the `what` listener, or `None` once `shutdown` is
/// cancelled. A failed `accept` is logged and retried after a pause.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &tokio_util::sync::CancellationToken,
    what: &str,
) -> Option<(TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(conn) => return Some(conn),
            Err(e) => {
                tracing::warn!(listener = what, error = %e, "accept failed; retrying shortly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn refuse(mut stream: TcpStream, limit: usize) {
    let text = format!("error: too many connections (limit {limit}); try again later\n");
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(text.as_bytes())).await;
}
