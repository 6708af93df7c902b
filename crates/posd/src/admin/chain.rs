//! `posctl chain show`, `posctl block`, `posctl chain verify`.

use super::{send_chunks, store_error, Out};
use crate::shared::Shared;
use pos_proto::{write_frame, BlockId, ProtoError, Response};
use pos_store::Store;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Blocks between two progress reports of `chain verify`.
const PROGRESS_EVERY: u64 = 16 * 1024;

pub async fn show(
    shared: &Shared,
    out: &mut Out,
    from: Option<u64>,
    to: Option<u64>,
    last: Option<u64>,
) -> Result<(), ProtoError> {
    let height = match shared.store.tip() {
        Ok(tip) => tip.index,
        Err(e) => return store_error(out, e).await,
    };
    let to = to.unwrap_or(height).min(height);
    let from = match last {
        Some(0) => return write_frame(out, &Response::End).await,
        Some(n) => (to + 1).saturating_sub(n).max(from.unwrap_or(0)),
        None => from.unwrap_or(0),
    };
    if from > to {
        return write_frame(out, &Response::End).await;
    }
    send_chunks(out, shared.store.blocks(from, to), Response::Blocks).await
}

pub async fn block(shared: &Shared, out: &mut Out, id: BlockId) -> Result<(), ProtoError> {
    let found = match id {
        BlockId::Index(i) => shared.store.block(i),
        BlockId::Hash(h) => shared.store.block_by_hash(&h),
    };
    match found {
        Ok(Some(b)) => write_frame(out, &Response::Blocks(vec![b])).await,
        Ok(None) => {
            let what = match id {
                BlockId::Index(i) => format!("no block at index {i}"),
                BlockId::Hash(h) => format!("no block with hash {h}"),
            };
            write_frame(out, &Response::Error(what)).await
        }
        Err(e) => store_error(out, e).await,
    }
}

/// Verifies on a blocking thread, streaming progress; stops if the client leaves.
pub async fn verify(shared: &Shared, out: &mut Out) -> Result<(), ProtoError> {
    let (tx, mut rx) = mpsc::channel(4);
    let store = Arc::clone(&shared.store);
    let worker = tokio::task::spawn_blocking(move || verify_all(&store, &tx));
    while let Some(msg) = rx.recv().await {
        write_frame(out, &msg).await?;
        if matches!(msg, Response::Progress { .. }) {
            tokio::io::AsyncWriteExt::flush(out).await?;
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
