//! The HTTP listener, bounded like the validator port: at most
//! [`MAX_CONNECTIONS`] at once (a newcomer beyond gets 503), `write_timeout`
//! to send a request's headers (idle keep-alive included) and for each write
//! of an answer, so a client that stops reading never holds a connection.

use crate::server::accept;
use crate::shared::Shared;
use axum::extract::Request;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::task::TaskTracker;

/// HTTP connections served at once (live pages hold one each for their events).
pub const MAX_CONNECTIONS: usize = 256;

/// How long a refused connection is given to read its 503.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);

/// Binds `http_listen` before the runtime serves it, so a port in use stops
/// the start before the node says it is listening.
pub fn bind(addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context;
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!("http listening on http://{bound}/");
    Ok(listener)
}

/// Accepts until shutdown; every connection runs on `tracker`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let app = super::router(Arc::clone(&shared));
    while let Some((stream, peer)) = accept(&listener, &shared.shutdown, "http").await {
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                let (app, shared) = (app.clone(), Arc::clone(&shared));
                tracker.spawn(async move {
                    let _open = shared.metrics.http_connection();
                    if let Err(e) = connection(stream, app, &shared).await {
                        tracing::debug!(%peer, error = %e, "http connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Err(_) => {
                tracing::warn!(%peer, limit = MAX_CONNECTIONS, "http connection limit reached; refusing");
                tracker.spawn(refuse(stream));
            }
        }
    }
}

/// Serves one connection until the client leaves, a timeout, or shutdown
/// (which lets an answer being sent finish).
async fn connection(stream: TcpStream, app: axum::Router, shared: &Shared) -> hyper::Result<()> {
    let timeout = shared.config().write_timeout;
    let io = TokioIo::new(WriteDeadline::new(stream, timeout));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => done,
        () = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// A 503 for a connection beyond the limit; its request is read and dropped
/// for a moment so that closing does not reset the answer away.
async fn refuse(mut stream: TcpStream) {
    let body = format!(
        "{{\"error\":\"too many HTTP connections (limit {MAX_CONNECTIONS}); try again later\"}}\n"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// Refuses every method but GET and HEAD (405), and marks every answer as
/// not to be sniffed or cached: the chain moves on.
pub async fn read_only(request: Request, next: Next) -> Response {
    let mut response = if matches!(*request.method(), Method::GET | Method::HEAD) {
        next.run(request).await.into_response()
    } else {
        let why = format!(
            "method {} not allowed: this HTTP interface is read-only (GET and HEAD)",
            request.method()
        );
        let mut refused = super::api::error(StatusCode::METHOD_NOT_ALLOWED, &why);
        let allow = HeaderValue::from_static("GET, HEAD");
        refused.headers_mut().insert(header::ALLOW, allow);
        refused
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A stream whose writes fail with `TimedOut` once one has waited `limit`
/// for the peer to read.
struct WriteDeadline<S> {
    io: S,
    limit: Duration,
    /// Armed while a write waits; dropped when it makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(io: S, limit: Duration) -> Self {
        WriteDeadline {
            io,
            limit,
            stalled: None,
        }
    }

    /// Passes a write's result on, timing how long it has been pending.
    fn timed<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "client did not read for {} (write_timeout)",
                    humantime::format_duration(limit)
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.timed(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.timed(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.timed(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.timed(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_takes_times_out_but_a_slow_reader_is_served() {
        // Kept open (unread) to the end, so the write waits rather than fails.
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = WriteDeadline::new(ours, Duration::from_secs(10));
        let e = io.write_all(&[7; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("10s (write_timeout)"), "{e}");

        // The limit is per wait, not per answer: 64 bytes every 5 s is slow
        // (80 s for 1 KiB) but never 10 s without progress.
        let (ours, mut theirs_too) = tokio::io::duplex(64);
        let mut io = WriteDeadline::new(ours, Duration::from_secs(10));
        let reader = tokio::spawn(async move {
            let mut got = vec![];
            let mut buf = [0; 64];
            while got.len() < 1024 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let n = theirs_too.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let start = tokio::time::Instant::now();
        io.write_all(&[7; 1024]).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), vec![7; 1024]);
        assert!(start.elapsed() >= Duration::from_secs(75));
    }
}
