//! `posctl lottery run` and `posctl lottery explain <INDEX>`.

use super::{send_chunks, store_error, Out};
use crate::query;
use crate::shared::Chain;
use crate::write::RoundOutcome;
use pos_proto::{write_frame, LotteryOutcome, ProtoError, Response, RoundHead};

/// Forces a round through the writer: the same serialized path as the timer.
/// The round that opens then lasts a whole interval on this node's timer.
pub async fn run(chain: &Chain, out: &mut Out) -> Result<(), ProtoError> {
    let outcome = chain.submit.round().await;
    if outcome.is_ok() {
        chain.next_round.restart();
    }
    let response = match outcome {
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
pub async fn explain(chain: &Chain, out: &mut Out, index: u64) -> Result<(), ProtoError> {
    let query::Draw {
        record: round,
        prev_hash,
        commitment,
        history,
    } = match query::round(&chain.store, index) {
        Ok(Ok(found)) => found,
        Ok(Err(why)) => return write_frame(out, &Response::Error(why)).await,
        Err(e) => return store_error(out, e).await,
    };
    let head = RoundHead {
        index,
        prev_hash,
        seed: round.seed,
        ticket: round.ticket,
        winner: round.winner as u64,
        candidates: round.candidates.len() as u64,
        rule: round.rule,
        commitment,
        weighting: round.weighting,
    };
    write_frame(out, &Response::RoundHead(head)).await?;
    send_chunks(
        out,
        round.candidates.into_iter().map(Ok),
        Response::Candidates,
    )
    .await?;
    if round.weighting != pos_core::Weighting::Stake {
        send_chunks(out, round.weights.into_iter().map(Ok), Response::Weights).await?;
        send_chunks(out, history.into_iter().map(Ok), Response::Rounds).await?;
    }
    Ok(())
}
