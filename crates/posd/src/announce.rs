//! Round results and slashings, announced once for every connected client
//! (`fanout` writes them into the clients' sockets) and for the web feed.
//!
//! A bounded broadcast channel: sending never waits, so a client that does not
//! read can never slow the lottery. A client that falls more than
//! [`BACKLOG`] messages behind is told so and dropped by its session.
//!
//! Slashings are caused by clients and cost them nothing, so they are
//! coalesced (docs/PROTOCOL.md): beyond [`FEW`] in a second, everyone gets one summary
//! line a second until they calm down. Blocks are never coalesced; there is at
//! most one per round.
//!
//! Shutdown goes out on the same channel ([`Announcement::Shutdown`]), in
//! order after everything announced before it.

use crate::validators::pending::RoundId;
use crate::validators::protocol::{say, Prompt};
use pos_core::{Block, Validator};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Announcements a client may lag behind before it is dropped.
pub const BACKLOG: usize = 1024;
/// Slashings a second announced one by one before summaries take over.
pub const FEW: usize = 3;
/// How often a summary of slashings goes out while they keep coming.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);

/// One announcement, formatted once and shared by every session.
#[derive(Debug, Clone)]
pub enum Announcement {
    /// Text for every client: a summary of slashings, a notice.
    Text(Arc<Lines>),
    /// One validator slashed: its line for clients, its record for the web feed.
    Slashed {
        text: Arc<Lines>,
        validator: Arc<Validator>,
    },
    /// Round `round` (see `pending`) ended, with its block's text if it made one.
    Round {
        round: RoundId,
        block: Option<Arc<Lines>>,
    },
    /// posd is stopping: sessions say goodbye and close.
    Shutdown,
}

/// An announcement's text as sessions write it, rendered once for all of
/// them (10,000 sessions each formatting their own copy cost a round's
/// fan-out that much more): on a line of its own, then the prompt the
/// client is at, if it can still type.
#[derive(Debug)]
pub struct Lines {
    /// `\n` and the text.
    bare: Box<str>,
    /// The same, then the BPM prompt.
    at_bpm: Box<str>,
    /// The same, then the stake prompt.
    at_stake: Box<str>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let bare = format!("\n{text}");
        Lines {
            at_bpm: format!("{bare}{}", Prompt::Bpm.text()).into(),
            at_stake: format!("{bare}{}", Prompt::Stake.text()).into(),
            bare: bare.into(),
        }
    }

    /// The text alone.
    pub fn text(&self) -> &str {
        &self.bare[1..]
    }

    /// What a session sends: the text on a line of its own, then `prompt`.
    pub fn with(&self, prompt: Option<Prompt>) -> &str {
        match prompt {
            None => &self.bare,
            Some(Prompt::Bpm) => &self.at_bpm,
            Some(Prompt::Stake) => &self.at_stake,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Announcer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Announcement>,
    /// Round results announced so far, i.e. the number of the next one. Only
    /// the writer thread announces them, one per `Pending::take`, in order.
    rounds: AtomicU64,
    /// The last block announced: the chain's height as clients know it.
    height: AtomicU64,
    slashings: Mutex<Slashings>,
    /// Announcements sent so far: each one's number is its place in the
    /// channel, counted under this lock as it is sent (see [`Announcer::numbered`]).
    sent: Mutex<u64>,
    /// Where summary timers run (the writer thread has no runtime of its own).
    runtime: Handle,
}

/// The coalescing state of slashing announcements.
#[derive(Debug, Default)]
struct Slashings {
    /// When the current one-second window opened.
    window: Option<Instant>,
    /// Slashings announced one by one in that window.
    shown: usize,
    /// While summaries are on: slashings since the last summary.
    held: Option<u64>,
}

impl Announcer {
    /// Starts at chain height `height`; summary timers run on `runtime`.
    pub fn new(runtime: Handle, height: u64) -> Self {
        Announcer {
            inner: Arc::new(Inner {
                tx: broadcast::channel(BACKLOG).0,
                rounds: AtomicU64::new(0),
                height: AtomicU64::new(height),
                slashings: Mutex::default(),
                sent: Mutex::default(),
                runtime,
            }),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Announcement> {
        self.inner.tx.subscribe()
    }

    /// A subscription, and the number of the first announcement it receives
    /// (the next one sent): counting what it receives (and the `Lagged`
    /// it skips) numbers every announcement as [`Announcer::joining`] does.
    pub fn numbered(&self) -> (broadcast::Receiver<Announcement>, u64) {
        let sent = self.inner.count();
        (self.inner.tx.subscribe(), *sent)
    }

    /// Runs `join` with the number the next announcement gets, none being
    /// sent meanwhile: what `join` sets up (a client's seat) is in place
    /// before that announcement goes out.
    pub fn joining<T>(&self, join: impl FnOnce(u64) -> T) -> T {
        join(*self.inner.count())
    }

    /// posd is stopping: every session is told (after `shutdown` is cancelled,
    /// so a session that subscribes later sees the token instead).
    pub fn shutdown(&self) {
        self.inner.send(Announcement::Shutdown);
    }

    /// A round committed `block`: `winning validator: <address>` and the block as JSON.
    pub fn block(&self, block: &Block) {
        self.inner.height.fetch_max(block.index, Ordering::Relaxed);
        self.round_end(Some(say::block(block)));
    }

    /// The height of the last block announced (or of the chain at start).
    /// Read for every proposal, so it is kept here rather than read from disk.
    pub fn height(&self) -> u64 {
        self.inner.height.load(Ordering::Relaxed)
    }

    /// The chain arrived whole (a cluster snapshot): the height clients
    /// are told about, without announcing the blocks.
    pub fn caught_up(&self, height: u64) {
        self.inner.height.fetch_max(height, Ordering::Relaxed);
    }

    /// A round ended without a block (no candidates).
    pub fn no_block(&self) {
        self.round_end(None);
    }

    /// A round's proposals were taken but its block could not be committed.
    pub fn round_failed(&self, text: &str) {
        self.notice(text);
        self.round_end(None);
    }

    fn round_end(&self, block: Option<String>) {
        let round = self.inner.rounds.fetch_add(1, Ordering::Relaxed);
        self.inner.send(Announcement::Round {
            round,
            block: block.map(|text| Arc::new(Lines::new(&text))),
        });
    }

    /// A validator was slashed: one line, or a part of the next summary.
    pub fn slashed(&self, v: &Validator) {
        let Some(text) = say::slashing(v) else {
            return;
        };
        let mut s = self.inner.lock();
        if let Some(held) = &mut s.held {
            *held += 1;
            return;
        }
        let now = Instant::now();
        if s.window
            .is_none_or(|w| now.duration_since(w) >= SUMMARY_EVERY)
        {
            s.window = Some(now);
            s.shown = 0;
        }
        if s.shown < FEW {
            s.shown += 1;
            self.inner.send(Announcement::Slashed {
                text: Arc::new(Lines::new(&text)),
                validator: Arc::new(v.clone()),
            });
        } else {
            s.held = Some(1);
            let inner = Arc::downgrade(&self.inner);
            self.inner.runtime.spawn(summarise(inner));
        }
    }

    /// A one-line message to everyone, e.g. a round that could not be committed.
    pub fn notice(&self, text: &str) {
        self.inner
            .send(Announcement::Text(Arc::new(Lines::new(&format!(
                "{text}\n"
            )))));
    }
}

impl Inner {
    fn send(&self, a: Announcement) {
        let mut sent = self.count();
        // No receivers is fine: nobody is connected.
        let _ = self.tx.send(a);
        *sent += 1;
    }

    fn count(&self) -> std::sync::MutexGuard<'_, u64> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slashings> {
        self.slashings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends a summary every second while slashings keep coming; after a quiet
/// second, slashings are announced one by one again.
async fn summarise(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(SUMMARY_EVERY).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut s = inner.lock();
        match s.held {
            Some(n) if n > 0 => {
                s.held = Some(0);
                inner.send(Announcement::Text(Arc::new(Lines::new(&say::slashings(n)))));
            }
            _ => {
                *s = Slashings::default();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::{Address, Digest, SlashInfo};

    fn slashed(n: u8) -> Validator {
        Validator {
            address: Address(Digest([n; 32])),
            balance: 0,
            registered_at_ms: 0,
            blocks_won: 0,
            slashed: Some(SlashInfo {
                at_ms: 0,
                reason: "test".into(),
                forfeited: 5,
            }),
        }
    }

    fn texts(rx: &mut broadcast::Receiver<Announcement>) -> Vec<String> {
        let mut out = vec![];
        while let Ok(a) = rx.try_recv() {
            match a {
                Announcement::Text(t) | Announcement::Slashed { text: t, .. } => {
                    out.push(t.text().to_string())
                }
                Announcement::Round { .. } => out.push("round".into()),
                Announcement::Shutdown => out.push("shutdown".into()),
            }
        }
        out
    }

    #[test]
    fn lines_are_the_text_on_a_line_of_its_own_then_the_prompt() {
        let lines = Lines::new("winning validator: x\n{}\n");
        assert_eq!(lines.text(), "winning validator: x\n{}\n");
        assert_eq!(lines.with(None), "\nwinning validator: x\n{}\n");
        assert_eq!(
            lines.with(Some(Prompt::Bpm)),
            "\nwinning validator: x\n{}\nEnter a new BPM:"
        );
        assert_eq!(
            lines.with(Some(Prompt::Stake)),
            "\nwinning validator: x\n{}\nEnter token balance:"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_slashings_becomes_one_summary_a_second() {
        let a = Announcer::new(Handle::current(), 0);
        let mut rx = a.subscribe();
        for n in 0..100 {
            a.slashed(&slashed(n));
        }
        let first = texts(&mut rx);
        assert_eq!(first.len(), FEW, "{first:?}");
        assert!(first.iter().all(|t| t.starts_with("slashed validator: ")));
        tokio::time::sleep(Duration::from_millis(1001)).await;
        assert_eq!(
            texts(&mut rx),
            ["slashed: 97 validators, see posctl validators --status slashed\n"]
        );
        // Still coming: still summarised, and blocks are never held back.
        a.slashed(&slashed(200));
        a.no_block();
        assert_eq!(texts(&mut rx), ["round"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(texts(&mut rx), [say::slashings(1)]);
        // A quiet second ends the summaries.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(texts(&mut rx).is_empty());
        a.slashed(&slashed(201));
        assert_eq!(texts(&mut rx).len(), 1);
    }
}
