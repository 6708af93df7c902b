//! The operator's window (SPEC §10): read-only HTTP on posd's own runtime,
//! off unless `http_listen` is set. docs/HTTP.md describes every route.
//!
//! - [`server`]: accepting within a connection limit, timeouts, GET/HEAD only.
//! - [`metrics`]: `/metrics` in Prometheus text; the writer records into it.
//! - [`api`]: `/api/...`, the same JSON objects as `posctl --json`.
//! - [`events`]: `/api/events`, new blocks and slashings as server-sent events.
//! - [`page`]: `/`, the live page, its script and style built into the binary.

pub mod api;
pub mod events;
pub mod metrics;
pub mod page;
pub mod server;

use crate::shared::Shared;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// Every route; anything else is a 404, any method but GET or HEAD a 405.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/page.js", get(page::script))
        .route("/page.css", get(page::style))
        .route("/metrics", get(metrics::get))
        .route("/api/status", get(api::status))
        .route("/api/blocks", get(api::blocks))
        .route("/api/blocks/{id}", get(api::block))
        .route("/api/validators", get(api::validators))
        .route("/api/validators/{address}", get(api::validator))
        .route("/api/rounds/{index}", get(api::round))
        .route("/api/round", get(api::open_round))
        .route("/api/events", get(events::stream))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(server::read_only))
        .with_state(shared)
}
