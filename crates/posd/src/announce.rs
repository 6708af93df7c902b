//! Fan-out of committed blocks and slashings to every connected client.
//!
//! A bounded broadcast channel: sending never waits, so a client that does not
//! read can never slow the lottery. A client that falls more than
//! [`BACKLOG`] messages behind is told so and dropped by its session.

use pos_core::{Block, Validator};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Announcements a client may lag behind before it is dropped.
pub const BACKLOG: usize = 1024;

/// One announcement, formatted once and shared by every session.
pub type Announcement = Arc<str>;

#[derive(Debug, Clone)]
pub struct Announcer {
    tx: broadcast::Sender<Announcement>,
}

impl Default for Announcer {
    fn default() -> Self {
        Announcer {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Announcer {
    pub fn subscribe(&self) -> broadcast::Receiver<Announcement> {
        self.tx.subscribe()
    }

    /// `winning validator: <address>` then the block as one JSON line.
    pub fn block(&self, block: &Block) {
        let winner = block.validator.map(|a| a.to_string()).unwrap_or_default();
        self.send(format!(
            "winning validator: {winner}\n{}\n",
            block.to_json_line()
        ));
    }

    pub fn slashed(&self, v: &Validator) {
        if let Some(s) = &v.slashed {
            self.send(format!(
                "slashed validator: {}: {} ({} tokens forfeited)\n",
                v.address, s.reason, s.forfeited
            ));
        }
    }

    /// A one-line message to everyone, e.g. a round that could not be committed.
    pub fn notice(&self, text: &str) {
        self.send(format!("{text}\n"));
    }

    fn send(&self, text: String) {
        // No receivers is fine: nobody is connected.
        let _ = self.tx.send(text.into());
    }
}
