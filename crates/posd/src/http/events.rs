//! `/api/events`: server-sent events of new blocks and slashings.
//!
//! The announcer only says *that* blocks came; the blocks themselves are read
//! from the store, from the last one sent up to the height announced. So a
//! reader that lags (or reconnects with `Last-Event-ID`, as a browser's
//! EventSource does by itself) misses no block and sees none twice, and a
//! long catch-up costs one block of memory at a time.
//!
//! - `event: block`, `id: <index>`, data: the block as `/api/blocks/<index>` shows it;
//! - `event: slashing`, data: the validator as `/api/validators/<address>` shows it;
//! - `event: notice`, data: `{"text": ...}`: a summary of many slashings, a
//!   round that could not be committed, announcements this reader missed.

use super::api::{error, params};
use crate::announce::Announcement;
use crate::shared::Shared;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use pos_proto::json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// A comment line this often keeps proxies from closing a quiet stream and
/// finds readers that are gone.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `?after=N`: start after block N (default: the tip). A reconnecting
/// EventSource's `Last-Event-ID` header wins over it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    after: Option<u64>,
}

pub async fn stream(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<After>, QueryRejection>,
) -> Response {
    let after = match params(query) {
        Ok(a) => a.after,
        Err(refused) => return *refused,
    };
    let after = match headers.get("last-event-id") {
        None => after,
        Some(id) => match id.to_str().ok().and_then(|id| id.parse().ok()) {
            Some(index) => Some(index),
            None => {
                let why = "Last-Event-ID: expected a block index (a whole number)";
                return error(StatusCode::BAD_REQUEST, why);
            }
        },
    };
    // Subscribed before the height is read: nothing can fall in between.
    let announcements = shared.chain.announcer.subscribe();
    let sent = after.unwrap_or_else(|| shared.chain.announcer.height());
    let feed = Feed {
        shared,
        announcements,
        sent,
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, Infallible>(event), feed))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// One reader's place in the chain and in the announcements.
struct Feed {
    shared: Arc<Shared>,
    announcements: Receiver<Announcement>,
    /// The last block sent.
    sent: u64,
}

impl Feed {
    /// The next event; `None` ends the stream (shutdown, or a storage failure).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.sent < self.shared.chain.announcer.height() {
                let index = self.sent + 1;
                return match self.shared.chain.store.block(index) {
                    Ok(Some(block)) => {
                        self.sent = index;
                        Some(event("block", &json::block(&block)).id(index.to_string()))
                    }
                    Ok(None) => {
                        tracing::error!(index, "announced block missing from the store");
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "http events cut short");
                        None
                    }
                };
            }
            let announced = tokio::select! {
                () = self.shared.shutdown.cancelled() => return None,
                announced = self.announcements.recv() => announced,
            };
            match announced {
                // Blocks are read at the top of the loop.
                Ok(Announcement::Round { .. }) => {}
                Ok(Announcement::Slashed { validator, .. }) => {
                    let info = self.shared.clients.info((*validator).clone());
                    return Some(event("slashing", &json::validator(&info)));
                }
                Ok(Announcement::Text(text)) => return Some(notice(text.text().trim_end())),
                Ok(Announcement::Shutdown) => return None,
                Err(RecvError::Lagged(missed)) => {
                    let text =
                        format!("{missed} announcements missed (blocks follow from the chain)");
                    return Some(notice(&text));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn event(kind: &str, data: &Value) -> Event {
    Event::default().event(kind).data(data.to_string())
}

fn notice(text: &str) -> Event {
    event("notice", &json!({ "text": text }))
}
