//! `posctl export` and `posctl backup`: a consistent snapshot (taken by the
//! writer between two commits) streamed as export lines (docs/EXPORT.md).

use super::Out;
use crate::shared::Chain;
use pos_proto::{write_frame, Bytes, ProtoError, Response};
use pos_store::StoreError;
use std::io::{self, Write};
use tokio::sync::mpsc;

/// Bytes of export lines per frame, well under the frame limit.
const CHUNK_BYTES: usize = 1 << 20;

pub async fn export(chain: &Chain, out: &mut Out) -> Result<(), ProtoError> {
    let snapshot = match chain.submit.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            let why = format!("cannot take a snapshot: {e}");
            return write_frame(out, &Response::Error(why)).await;
        }
    };
    // Lines are made on a blocking thread; a few chunks in flight bound memory.
    let (tx, mut rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let sink = Chunks {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK_BYTES),
        };
        let last = match snapshot.write(sink) {
            Ok(_) => Response::End,
            Err(e) => {
                if !tx.is_closed() {
                    tracing::error!(error = %e, "export failed");
                }
                Response::Error(match e {
                    StoreError::Write(e) => e.to_string(),
                    e => format!("cannot read the chain: {e}"),
                })
            }
        };
        let _ = tx.blocking_send(last);
    });
    // A client that leaves closes `rx`, which stops the writing thread.
    while let Some(msg) = rx.recv().await {
        write_frame(out, &msg).await?;
    }
    Ok(())
}

/// Export bytes gathered into `ExportData` frames for the connection's task.
struct Chunks {
    tx: mpsc::Sender<Response>,
    buf: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Response::ExportData(Bytes(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.buf.is_empty() {
            true => Ok(()),
            false => self.send(),
        }
    }
}
