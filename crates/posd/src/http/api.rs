//! `/api/...`: the same JSON objects as `posctl --json` (pos_proto::json),
//! looked up the same way (crate::query). Lists are JSON lines, streamed in
//! constant memory; one thing is one object; an error is `{"error": "..."}`
//! with a 400 (bad request), 404 (no such thing) or 500 (storage) status.

use crate::query::{self, Found};
use crate::round;
use crate::shared::Shared;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pos_core::{Address, Digest, Status, Weighting};
use pos_proto::{json, BlockId, HexPrefix};
use pos_store::StoreError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Bytes of JSON lines gathered before they are sent on.
const CHUNK: usize = 32 * 1024;

/// `{"error": why}` with `status`.
pub fn error(status: StatusCode, why: &str) -> Response {
    (status, Json(json!({ "error": why }))).into_response()
}

/// A 500 for something posd itself could not do; logged.
pub fn failed(why: &str) -> Response {
    tracing::error!(error = why, "http request failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, why)
}

fn store_failed(e: StoreError) -> Response {
    failed(&format!("cannot read the chain: {e}"))
}

/// The thing found, shown by `show`; or 404 saying why not; or 500.
fn answer<T>(found: Result<Found<T>, StoreError>, show: impl FnOnce(T) -> Value) -> Response {
    match found {
        Ok(Ok(t)) => Json(show(t)).into_response(),
        Ok(Err(why)) => error(StatusCode::NOT_FOUND, &why),
        Err(e) => store_failed(e),
    }
}

/// A query string's values, or a 400 naming what is wrong with it.
pub fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Box<Response>> {
    query
        .map(|Query(t)| t)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &e.body_text())))
}

/// Streams `items` as JSON lines. A read error mid-way aborts the answer,
/// so a reader sees it cut short rather than taking it for the whole list.
fn json_lines(
    mut items: impl Iterator<Item = Result<Value, StoreError>> + Send + 'static,
) -> Response {
    let cut_short = |e: StoreError| {
        tracing::error!(error = %e, "http list cut short");
        std::io::Error::other(format!("cannot read the chain: {e}"))
    };
    let (mut failed, mut done) = (None, false);
    let chunks = std::iter::from_fn(move || {
        if let Some(e) = failed.take() {
            return Some(Err(cut_short(e)));
        }
        if done {
            return None;
        }
        let mut buf = Vec::with_capacity(CHUNK + 1024);
        while buf.len() < CHUNK {
            match items.next() {
                Some(Ok(v)) => {
                    serde_json::to_writer(&mut buf, &v).expect("values serialize");
                    buf.push(b'\n');
                }
                Some(Err(e)) => (failed, done) = (Some(e), true),
                None => done = true,
            }
            if done {
                break;
            }
        }
        if buf.is_empty() {
            return failed.take().map(|e| Err(cut_short(e)));
        }
        Some(Ok(Bytes::from(buf)))
    });
    (
        [(CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

pub async fn status(State(shared): State<Arc<Shared>>) -> Response {
    match shared.status() {
        Ok(s) => Json(json::status(&s)).into_response(),
        Err(e) => store_failed(e),
    }
}

/// `?from=&to=&last=`, as `posctl chain show` takes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRange {
    from: Option<u64>,
    to: Option<u64>,
    last: Option<u64>,
}

pub async fn blocks(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<BlockRange>, QueryRejection>,
) -> Response {
    let r = match params(query) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let height = match shared.chain.store.tip() {
        Ok(tip) => tip.index,
        Err(e) => return store_failed(e),
    };
    let blocks = match query::block_range(height, r.from, r.to, r.last) {
        Some(range) => shared.chain.store.blocks(*range.start(), *range.end()),
        // An empty range of the same iterator type.
        None => shared.chain.store.blocks(1, 0),
    };
    json_lines(blocks.map(|b| b.map(|b| json::block(&b))))
}

/// 64 hex digits, or a prefix of them.
fn hex(s: &str) -> Result<Result<Digest, HexPrefix>, String> {
    if s.len() == 64 {
        if let Ok(d) = s.parse() {
            return Ok(Ok(d));
        }
    }
    s.parse().map(Err).map_err(|e| format!("{e}"))
}

/// `/api/blocks/<index|hash|hash prefix>`, read as `posctl block` reads it.
pub async fn block(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let store = &shared.chain.store;
    let found = match (id.parse::<u64>(), hex(&id)) {
        (Ok(index), digits) => match (query::block(store, BlockId::Index(index)), digits) {
            // Digits that are no block's index may still start a hash.
            (Ok(Err(why)), Ok(Err(prefix))) => query::block_by_prefix(store, &prefix)
                .map(|f| f.map_err(|p| format!("{why}; as a hash prefix: {p}"))),
            (found, _) => found,
        },
        (Err(_), Ok(Ok(hash))) => query::block(store, BlockId::Hash(hash)),
        (Err(_), Ok(Err(prefix))) => query::block_by_prefix(store, &prefix),
        (Err(_), Err(e)) => {
            let why = format!(
                "expected a block index (a whole number), a hash or a unique prefix of one: {e}"
            );
            return error(StatusCode::BAD_REQUEST, &why);
        }
    };
    answer(found, |b| json::block(&b))
}

/// `?status=active|slashed|all`, active by default as `posctl validators`;
/// `&limit=N`: the first N only (the page's view of a large set).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Which {
    #[serde(default)]
    status: Listed,
    limit: Option<usize>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Listed {
    #[default]
    Active,
    Slashed,
    All,
}

pub async fn validators(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Which>, QueryRejection>,
) -> Response {
    let (listed, limit) = match params(query) {
        Ok(w) => (w.status, w.limit.unwrap_or(usize::MAX)),
        Err(refused) => return *refused,
    };
    let wanted = move |status| match listed {
        Listed::All => true,
        Listed::Active => status == Status::Active,
        Listed::Slashed => status == Status::Slashed,
    };
    let items = shared
        .chain
        .store
        .validators()
        .filter(move |v| v.as_ref().map_or(true, |v| wanted(v.status())))
        .take(limit)
        .map(move |v| v.map(|v| json::validator(&shared.clients.info(v))));
    json_lines(items)
}

/// `/api/validators/<address|prefix>`, as `posctl validator`.
pub async fn validator(State(shared): State<Arc<Shared>>, Path(address): Path<String>) -> Response {
    let store = &shared.chain.store;
    let found = match hex(&address) {
        Ok(Ok(whole)) => query::validator(store, &Address(whole)),
        Ok(Err(prefix)) => query::validator_by_prefix(store, &prefix),
        Err(e) => {
            let why = format!("expected a validator address or a unique prefix of one: {e}");
            return error(StatusCode::BAD_REQUEST, &why);
        }
    };
    answer(found, |v| json::validator(&shared.clients.info(v)))
}

/// `/api/rounds/<index>`: block `index`'s draw, replayed here, as `posctl lottery explain`.
pub async fn round(State(shared): State<Arc<Shared>>, Path(index): Path<String>) -> Response {
    let Ok(index) = index.parse() else {
        let why = format!("expected a block index (a whole number), not {index:?}");
        return error(StatusCode::BAD_REQUEST, &why);
    };
    answer(query::round(&shared.chain.store, index), |d| {
        let commitment = d.commitment.as_ref();
        let replay = d.record.replay_after(&d.prev_hash, commitment, &d.history);
        json::round(&d.record, &d.prev_hash, commitment, &replay)
    })
}

/// `/api/round`: the open round as it would be drawn now, in the shape of a
/// stored draw's candidates (with each one's weight and why under
/// `stake_age` and `stake_work`), for the page's "chance this round", with
/// the commitment its draw will answer (public, as in `posctl status`).
pub async fn open_round(State(shared): State<Arc<Shared>>) -> Response {
    let reward = shared.config().block_reward;
    let proposals = shared.chain.pending.snapshot();
    let store = &shared.chain.store;
    let weighting = store.chain_spec().weighting;
    let found = store.tip().and_then(|tip| {
        let (candidates, nonces) = round::candidates(store, &proposals, reward, |_| {})?;
        // Under stake the weights are the stakes, and a record keeps none.
        let weights = match weighting {
            Weighting::Stake => Vec::new(),
            _ => round::weights_on(store, &tip, &candidates, &nonces)?,
        };
        Ok((tip, candidates, weights, store.next_commitment()?))
    });
    let (tip, candidates, weights, commitment) = match found {
        Ok(found) => found,
        Err(e) => return store_failed(e),
    };
    let total: u128 = candidates.iter().map(|c| u128::from(c.stake)).sum();
    let total_weight = match weights.is_empty() {
        true => total,
        false => weights
            .iter()
            .fold(0u128, |t, w| t.saturating_add(w.weight)),
    };
    Json(json!({
        "index": tip.index + 1,
        "prev_hash": tip.hash.to_string(),
        "next_round_in_ms": shared.chain.next_round.remaining().as_millis() as u64,
        "round_interval_ms": shared.config().round_interval.as_millis() as u64,
        "commitment": commitment.to_string(),
        "total_stake": total.to_string(),
        "candidates": json::candidates(&candidates, &weights),
        "weighting": weighting.name(),
        "total_weight": total_weight.to_string(),
    }))
    .into_response()
}

pub async fn not_found(uri: Uri) -> Response {
    let why = format!(
        "no such page: {}; see docs/HTTP.md for the routes",
        uri.path()
    );
    error(StatusCode::NOT_FOUND, &why)
}
