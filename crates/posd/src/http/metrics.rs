//! `/metrics`: Prometheus text, the gauges read from the running daemon at
//! each scrape.

use crate::metrics::{Gauges, RaftGauges};
use crate::shared::Shared;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::prometheus_text;
use std::sync::Arc;

pub async fn get(State(shared): State<Arc<Shared>>) -> Response {
    match scrape(&shared) {
        Ok(text) => ([(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], text).into_response(),
        Err(e) => super::api::failed(&format!("cannot read the metrics: {e}")),
    }
}

fn scrape(shared: &Shared) -> Result<String, String> {
    let counts = shared.chain.store.counts().map_err(|e| e.to_string())?;
    let raft = shared.cluster.as_ref().map(|cluster| {
        let view = cluster.node.view();
        RaftGauges {
            term: view.term,
            is_leader: view.leader == Some(view.me),
            applied: view.applied,
        }
    });
    let now = Gauges {
        height: shared.chain.announcer.height(),
        active: counts.active,
        slashed: counts.slashed,
        connections: shared.clients.slots.active(),
        pending: shared.chain.pending.len(),
        raft,
    };
    shared.metrics.scrape(&now).map_err(|e| e.to_string())
}
