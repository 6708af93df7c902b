//! `posctl chain show`, `posctl chain follow`, `posctl block`, `posctl chain verify`.

use super::{send_chunks, send_found, store_error, stream_chunks, Out};
use crate::query;
use crate::shared::Chain;
use pos_proto::{write_frame, BlockId, HexPrefix, ProtoError, Response};
use pos_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Shortest heartbeat interval posd agrees to, so no client can make it spin.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// Blocks between two progress reports of `chain verify`.
const PROGRESS_EVERY: u64 = 16 * 1024;

pub async fn show(
    chain: &Chain,
    out: &mut Out,
    from: Option<u64>,
    to: Option<u64>,
    last: Option<u64>,
) -> Result<(), ProtoError> {
    let height = match chain.store.tip() {
        Ok(tip) => tip.index,
        Err(e) => return store_error(out, e).await,
    };
    match query::block_range(height, from, to, last) {
        Some(range) => {
            let blocks = chain.store.blocks(*range.start(), *range.end());
            send_chunks(out, blocks, Response::Blocks).await
        }
        None => write_frame(out, &Response::End).await,
    }
}

/// `posctl chain follow`: blocks `from` on, then each as it commits, until
/// posd stops or the client leaves. The store is the only source of blocks;
/// announcements just wake this up. Subscribing before the first read means
/// a block committed after any read is announced to us, so none is missed,
/// and reading from the next index on means none is sent twice.
pub async fn follow(
    chain: &Chain,
    shutdown: &CancellationToken,
    out: &mut Out,
    from: u64,
    heartbeat_ms: u64,
) -> Result<(), ProtoError> {
    let heartbeat = Duration::from_millis(heartbeat_ms).max(MIN_HEARTBEAT);
    let mut woken = chain.announcer.subscribe();
    let mut next = from;
    let mut quiet_until = Instant::now() + heartbeat;
    loop {
        let height = match chain.store.tip() {
            Ok(tip) => tip.index,
            Err(e) => return store_error(out, e).await,
        };
        if next <= height {
            if !stream_chunks(out, chain.store.blocks(next, height), Response::Blocks).await? {
                return Ok(());
            }
            out.flush().await?;
            next = height + 1;
            quiet_until = Instant::now() + heartbeat;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            woke = woken.recv() => {
                // Lagging behind only means several blocks to read at once.
                if let Err(broadcast::error::RecvError::Closed) = woke {
                    return Ok(());
                }
            }
            _ = tokio::time::sleep_until(quiet_until) => {
                write_frame(out, &Response::Heartbeat).await?;
                out.flush().await?;
                quiet_until = Instant::now() + heartbeat;
            }
        }
    }
}

pub async fn block(chain: &Chain, out: &mut Out, id: BlockId) -> Result<(), ProtoError> {
    let found = query::block(&chain.store, id);
    send_found(out, found, |b| Response::Blocks(vec![b])).await
}

/// `posctl block <HASH-PREFIX>`: the one block whose hash starts so.
pub async fn block_by_prefix(
    chain: &Chain,
    out: &mut Out,
    prefix: HexPrefix,
) -> Result<(), ProtoError> {
    let found = query::block_by_prefix(&chain.store, &prefix);
    send_found(out, found, |b| Response::Blocks(vec![b])).await
}

/// Verifies on a blocking thread, streaming progress; stops if the client leaves.
pub async fn verify(chain: &Chain, out: &mut Out) -> Result<(), ProtoError> {
    let (tx, mut rx) = mpsc::channel(4);
    let store = Arc::clone(&chain.store);
    let worker = tokio::task::spawn_blocking(move || verify_all(&store, &tx));
    while let Some(msg) = rx.recv().await {
        write_frame(out, &msg).await?;
        if matches!(msg, Response::Progress { .. }) {
            out.flush().await?;
        }
    }
    let _ = worker.await;
    Ok(())
}

fn verify_all(store: &Store, tx: &mpsc::Sender<Response>) {
    let send = |msg| tx.blocking_send(msg).is_ok();
    let result = store.verify_chain(|checked, height| {
        // A failed send means the client went away: stop.
        !checked.is_multiple_of(PROGRESS_EVERY) || send(Response::Progress { checked, height })
    });
    match result {
        Ok(Some(checked)) => send(Response::Verified(Ok(checked))),
        Ok(None) => false,
        Err(e) => send(Response::Verified(Err(e.to_string()))),
    };
}
