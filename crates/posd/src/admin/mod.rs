//! The admin server: posctl's requests over a Unix socket (docs/PROTOCOL.md, admin frames).
//!
//! One task per connection: check the peer's credentials, do the version
//! handshake, then answer requests until the client hangs up. Each request
//! kind has its own file.

mod auth;
mod chain;
mod export;
mod lottery;
pub mod socket;
mod status;
mod validators;

use crate::cluster::admin::Ask;
use crate::query::Found;
use crate::shared::Shared;
use pos_proto::{
    read_frame, write_frame, Hello, ProtoError, Request, Response, Welcome, PROTOCOL_VERSION,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::task::TaskTracker;

/// Where answers are written; flushed after each request.
pub type Out = BufWriter<OwnedWriteHalf>;

/// Time a client has to send its hello, so idle connections do not pile up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts admin connections until shutdown. (No keepalive, unlike TCP: a Unix
/// socket's peer is on this machine, and the kernel closes it when that process dies.)
pub async fn serve(listener: UnixListener, shared: Arc<Shared>, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tracker.spawn(connection(stream, Arc::clone(&shared)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, shared: Arc<Shared>) {
    let peer = match auth::Peer::of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "admin peer credentials unavailable; refusing");
            return;
        }
    };
    let (uid, pid) = (peer.uid, peer.pid);
    let (mut rd, wr) = stream.into_split();
    let mut out = BufWriter::new(wr);
    let result = async {
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, read_frame::<_, Hello>(&mut rd)).await {
            Ok(hello) => hello?,
            Err(_) => return Err(ProtoError::Decode("no hello in time".into())),
        };
        let Some(hello) = hello else { return Ok(()) };
        if !peer.allowed() {
            tracing::warn!(
                uid,
                pid,
                gid = peer.gid,
                groups = ?peer.groups,
                "admin connection refused: not root, posd's user or in posd's group"
            );
            return send_welcome(&mut out, Welcome::Refused(auth::refusal())).await;
        }
        if hello.protocol != PROTOCOL_VERSION {
            let why = format!(
                "posctl speaks admin protocol v{}, this posd ({}) speaks v{PROTOCOL_VERSION}: use the posctl that came with this posd",
                hello.protocol,
                env!("CARGO_PKG_VERSION")
            );
            tracing::warn!(uid, pid, client = %hello.client, "admin protocol mismatch");
            return send_welcome(&mut out, Welcome::Refused(why)).await;
        }
        send_welcome(
            &mut out,
            Welcome::Accepted {
                protocol: PROTOCOL_VERSION,
                server: env!("CARGO_PKG_VERSION").into(),
            },
        )
        .await?;
        loop {
            // Between requests an idle client must not hold up a shutdown.
            let next = tokio::select! {
                _ = shared.shutdown.cancelled() => return Ok(()),
                next = read_frame::<_, Request>(&mut rd) => next?,
            };
            let Some(request) = next else { return Ok(()) };
            tracing::info!(uid, pid, ?request, "admin request");
            dispatch(request, &shared, &mut out).await?;
            out.flush().await?;
        }
    }
    .await;
    if let Err(e) = result {
        tracing::info!(uid, pid, error = %e, "admin connection ended with an error");
        // Tell a confused client why, if it still listens.
        let _ = write_frame(&mut out, &Response::Error(e.to_string())).await;
        let _ = out.flush().await;
    }
}

async fn send_welcome(out: &mut Out, welcome: Welcome) -> Result<(), ProtoError> {
    write_frame(out, &welcome).await?;
    out.flush().await?;
    Ok(())
}

async fn dispatch(request: Request, shared: &Shared, out: &mut Out) -> Result<(), ProtoError> {
    let (chain, clients) = (&*shared.chain, &*shared.clients);
    match request {
        Request::Status => status::status(shared, out).await,
        Request::ChainShow { from, to, last } => chain::show(chain, out, from, to, last).await,
        Request::Block(id) => chain::block(chain, out, id).await,
        Request::ChainVerify => chain::verify(chain, out).await,
        Request::Validators { all } => validators::list((chain, clients), out, all).await,
        Request::Validator(address) => validators::one((chain, clients), out, address).await,
        Request::LotteryRun => lottery::run(chain, out).await,
        Request::LotteryExplain(index) => lottery::explain(chain, out, index).await,
        Request::BlockByPrefix(prefix) => chain::block_by_prefix(chain, out, prefix).await,
        Request::ValidatorByPrefix(prefix) => {
            validators::by_prefix((chain, clients), out, prefix).await
        }
        Request::ChainFollow { from, heartbeat_ms } => {
            chain::follow(chain, &shared.shutdown, out, from, heartbeat_ms).await
        }
        Request::Export => export::export(chain, out).await,
        Request::ClusterInit => cluster(shared, out, Ask::Init).await,
        Request::ClusterAdd { node_id, addr } => {
            cluster(shared, out, Ask::Add { node_id, addr }).await
        }
        Request::ClusterRemove { node_id } => cluster(shared, out, Ask::Remove { node_id }).await,
        Request::ClusterStatus => cluster(shared, out, Ask::Status).await,
    }
}

/// `posctl cluster ...`: answered by this node's cluster, or refused standalone.
async fn cluster(shared: &Shared, out: &mut Out, ask: Ask) -> Result<(), ProtoError> {
    let spec = shared.config().chain_spec(crate::clock::record_ms());
    let answer = crate::cluster::admin::answer(
        shared.cluster.as_deref(),
        &shared.chain.store,
        &spec,
        shared.cluster_addr,
        ask,
    )
    .await;
    write_frame(out, &answer).await
}

/// Sends what a lookup found, wrapped by `wrap`, or `Error` saying why not.
async fn send_found<T>(
    out: &mut Out,
    found: Result<Found<T>, pos_store::StoreError>,
    wrap: impl FnOnce(T) -> Response,
) -> Result<(), ProtoError> {
    match found {
        Ok(Ok(t)) => write_frame(out, &wrap(t)).await,
        Ok(Err(why)) => write_frame(out, &Response::Error(why)).await,
        Err(e) => store_error(out, e).await,
    }
}

/// Sends `Error` for a failed store read; the connection goes on.
async fn store_error(out: &mut Out, e: pos_store::StoreError) -> Result<(), ProtoError> {
    tracing::error!(error = %e, "admin read failed");
    write_frame(out, &Response::Error(format!("cannot read the chain: {e}"))).await
}

/// Items per streamed frame: big enough to amortize framing, small enough
/// to keep memory flat whatever the stream's length.
const CHUNK: usize = 1024;

/// Streams `items` in chunks, then `End`; a read error mid-way ends the
/// stream with `Error` instead.
async fn send_chunks<T>(
    out: &mut Out,
    items: impl Iterator<Item = Result<T, pos_store::StoreError>>,
    wrap: fn(Vec<T>) -> Response,
) -> Result<(), ProtoError> {
    if stream_chunks(out, items, wrap).await? {
        write_frame(out, &Response::End).await?;
    }
    Ok(())
}

/// Streams `items` in chunks; `false` if a read failed, which was answered
/// with `Error`.
async fn stream_chunks<T>(
    out: &mut Out,
    items: impl Iterator<Item = Result<T, pos_store::StoreError>>,
    wrap: fn(Vec<T>) -> Response,
) -> Result<bool, ProtoError> {
    let mut chunk = Vec::with_capacity(CHUNK);
    for item in items {
        match item {
            Ok(item) => chunk.push(item),
            Err(e) => return store_error(out, e).await.map(|()| false),
        }
        if chunk.len() == CHUNK {
            write_frame(
                out,
                &wrap(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))),
            )
            .await?;
        }
    }
    if !chunk.is_empty() {
        write_frame(out, &wrap(chunk)).await?;
    }
    Ok(true)
}
