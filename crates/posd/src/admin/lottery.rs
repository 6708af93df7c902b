//! `posctl lottery run` and `posctl lottery explain <INDEX>`.

use super::{send_chunks, store_error, Out};
use crate::shared::Shared;
use crate::writer::RoundOutcome;
use pos_proto::{write_frame, LotteryOutcome, ProtoError, Response, RoundHead};

/// Forces a round through the writer: the same serialized path as the timer.
pub async fn run(shared: &Shared, out: &mut Out) -> Result<(), ProtoError> {
    let response = match shared.writer.round().await {
        Ok(RoundOutcome::Committed { block, round }) => {
            Response::Lottery(LotteryOutcome::Committed {
                block,
                candidates: round.candidates.len() as u64,
            })
        }
        Ok(RoundOutcome::NoCandidates) => Response::Lottery(LotteryOutcome::NoCandidates),
        Err(e) => Response::Error(format!("round failed: {e}")),
    };
    write_frame(out, &response).await
}

/// Sends the stored draw of block `index`: its head, then its candidates.
/// Only durable rounds are stored to be read (see `Store::round`), so a
/// reveal is never served before its round is final.
pub async fn explain(shared: &Shared, out: &mut Out, index: u64) -> Result<(), ProtoError> {
    let store = &shared.store;
    let (round, parent) = match (
        store.round(index),
        index.checked_sub(1).map(|p| store.block(p)),
    ) {
        (Ok(Some(r)), Some(Ok(Some(p)))) => (r, p),
        (Err(e), _) | (_, Some(Err(e))) => return store_error(out, e).await,
        _ => {
            let why = if index == 0 {
                "block 0 is genesis: it had no lottery".to_string()
            } else {
                format!("no lottery round stored for block {index}")
            };
            return write_frame(out, &Response::Error(why)).await;
        }
    };
    let commitment = match store.commitment_for(index) {
        Ok(c) => c,
        Err(e) => return store_error(out, e).await,
    };
    let head = RoundHead {
        index,
        prev_hash: parent.hash,
        seed: round.seed,
        ticket: round.ticket,
        winner: round.winner as u64,
        candidates: round.candidates.len() as u64,
        rule: round.rule,
        commitment,
    };
    write_frame(out, &Response::RoundHead(head)).await?;
    send_chunks(
        out,
        round.candidates.into_iter().map(Ok),
        Response::Candidates,
    )
    .await
}
