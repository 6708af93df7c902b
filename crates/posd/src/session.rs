//! One validator connection: the line protocol of SPEC §4, as `nc` sees it.

use crate::announce::Announcement;
use crate::config::Config;
use crate::connected::Claim;
use crate::line::{Line, LineCodec, LineError};
use crate::protocol::{self, Input, Limits, Prompt, CHAIN_MAX};
use crate::server::Slot;
use crate::shared::Shared;
use futures::StreamExt;
use pos_core::{Address, ValidatorKey};
use rand::RngCore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::FramedRead;

/// Kernel send buffer per client: caps what a client that does not read can
/// pin in kernel memory (Linux's autotuning would allow megabytes each).
const SEND_BUFFER: usize = 64 * 1024;

/// Probes a connection idle this long (then every 10 s), so a peer that
/// vanished (power cut, cable) is noticed and its slot freed.
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10));

/// Where the conversation is.
enum Phase {
    /// At `Enter token balance:`, until this instant.
    Stake(Instant),
    /// At `Enter a new BPM:`, speaking for the claimed validator.
    Bpm(Claim),
}

/// Whether the connection goes on after handling an event.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session {
    shared: Arc<Shared>,
    /// The config as the connection opened: a reload applies to new connections.
    config: Arc<Config>,
    out: OwnedWriteHalf,
    peer: SocketAddr,
    phase: Phase,
    /// When the client last sent a line: `idle_timeout` counts from here.
    last_line: Instant,
    /// This connection's place under `max_connections`.
    slot: Slot,
}

/// Serves one connection until the client leaves, misbehaves fatally, or posd
/// stops, or it is shed to make room (see [`Slot`]).
pub async fn run(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&KEEPALIVE);
    let (rd, out) = stream.into_split();
    let config = shared.config();
    let max_line = config.max_line_bytes as usize;
    let mut lines = FramedRead::with_capacity(rd, LineCodec::new(max_line), 256);
    let mut announcements = shared.announcer.subscribe();
    let shutdown = shared.shutdown.clone();
    let shed = slot.shed();
    let deadline = Instant::now() + config.stake_timeout;
    let mut s = Session {
        shared,
        config,
        out,
        peer,
        phase: Phase::Stake(deadline),
        last_line: Instant::now(),
        slot,
    };
    let greeting = format!(
        "posd {}: stake tokens to become a validator, or 'help'\n{}",
        env!("CARGO_PKG_VERSION"),
        Prompt::Stake.text()
    );
    let mut flow = s.send(&greeting).await;
    while flow == Flow::Continue {
        let deadline = match s.phase {
            Phase::Stake(at) => Some(at),
            Phase::Bpm(_) => s.config.idle_timeout.map(|idle| s.last_line + idle),
        };
        flow = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                s.send("\nposd is shutting down; proposals not yet in a block are discarded\n").await;
                Flow::Close
            }
            _ = shed.cancelled() => {
                tracing::info!(peer = %s.peer, "connection limit reached: shed this unregistered connection for a newer one");
                s.farewell("\nerror: connection limit reached and this connection has not registered; closing to make room\n").await;
                Flow::Close
            }
            line = lines.next() => s.on_line(line).await,
            msg = announcements.recv() => s.on_announcement(msg).await,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => s.timed_out().await,
        };
    }
    // A proposal stands while its validator is connected: this keeps pending
    // proposals within max_connections.
    if let Some(address) = s.address() {
        s.shared.pending.withdraw(&address);
    }
    tracing::debug!(peer = %s.peer, "connection closed");
    // Free the slot and the validator before the socket closes, so a client
    // that sees the close and reconnects (or resumes) at once is never refused for our sake.
    let Session {
        slot, phase, out, ..
    } = s;
    drop((slot, phase));
    drop(lines);
    drop(out);
}

impl Session {
    /// Writes `text`; a client that is gone or too slow ends the session.
    async fn send(&mut self, text: &str) -> Flow {
        let limit = self.config.write_timeout;
        match timeout(limit, self.out.write_all(text.as_bytes())).await {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "write failed");
                Flow::Close
            }
            Err(_) => {
                tracing::warn!(peer = %self.peer, "client not reading for {limit:?}; dropped");
                Flow::Close
            }
        }
    }

    /// Last words to a client being dropped: bounded by 1 s, not `write_timeout`.
    async fn farewell(&mut self, text: &str) {
        let _ = timeout(Duration::from_secs(1), self.out.write_all(text.as_bytes())).await;
    }

    /// The stake prompt went unanswered, or a validator was idle too long.
    async fn timed_out(&mut self) -> Flow {
        let text = match self.phase {
            Phase::Stake(_) => format!(
                "\nerror: no stake within {}s; closing\n",
                self.config.stake_timeout.as_secs_f64()
            ),
            Phase::Bpm(_) => format!(
                "\nerror: nothing received for {}s (idle_timeout); closing\n",
                self.config.idle_timeout.unwrap_or_default().as_secs_f64()
            ),
        };
        self.send(&text).await;
        Flow::Close
    }

    /// Sends `text` followed by the current prompt.
    async fn reply(&mut self, text: &str) -> Flow {
        let text = format!("{text}{}", self.prompt_kind().text());
        self.send(&text).await
    }

    async fn on_announcement(&mut self, msg: Result<Announcement, RecvError>) -> Flow {
        match msg {
            Ok(text) => self.reply(&format!("\n{text}")).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(peer = %self.peer, missed, "client too slow to read announcements; dropped");
                self.farewell(&format!(
                    "\nerror: {missed} announcements behind; closing\n"
                ))
                .await;
                Flow::Close
            }
            Err(RecvError::Closed) => Flow::Close,
        }
    }

    async fn on_line(&mut self, line: Option<Result<Line, LineError>>) -> Flow {
        self.last_line = Instant::now();
        match line {
            None => Flow::Close,
            Some(Err(LineError::TooLong(max))) => {
                tracing::info!(peer = %self.peer, max, "line too long; closing");
                self.send(&format!("\nerror: line longer than {max} bytes; closing\n"))
                    .await;
                Flow::Close
            }
            Some(Err(LineError::Io(e))) => {
                tracing::debug!(peer = %self.peer, error = %e, "read failed");
                Flow::Close
            }
            Some(Ok(line)) => {
                let limits = Limits {
                    max_stake: self.config.max_stake,
                    max_bpm: self.config.max_bpm,
                };
                let input = protocol::parse(self.prompt_kind(), &line, limits);
                self.on_input(input).await
            }
        }
    }

    fn prompt_kind(&self) -> Prompt {
        match self.phase {
            Phase::Stake(_) => Prompt::Stake,
            Phase::Bpm(_) => Prompt::Bpm,
        }
    }

    async fn on_input(&mut self, input: Input) -> Flow {
        match input {
            Input::Empty => self.reply("").await,
            Input::Help => self.help().await,
            Input::Quit => {
                self.send("bye\n").await;
                Flow::Close
            }
            Input::Stake(stake) => self.register(stake).await,
            Input::Resume(Some(key)) => self.resume(key).await,
            Input::Resume(None) => {
                self.reply(
                    "error: resume needs the 64-hex-digit key you were given at registration\n",
                )
                .await
            }
            Input::BadStake(why) => self.bad_stake(&why).await,
            Input::Bpm(bpm) => {
                if let Some(address) = self.address() {
                    self.shared.pending.propose(address, bpm);
                }
                self.reply("").await
            }
            Input::Balance => self.balance().await,
            Input::Chain(Some(n)) => self.chain(n).await,
            Input::Chain(None) => {
                let text = format!("error: chain takes a count from 1 to {CHAIN_MAX}\n");
                self.reply(&text).await
            }
            Input::Status => self.status().await,
            Input::Malformed(why) => self.malformed_proposal(why).await,
        }
    }

    async fn help(&mut self) -> Flow {
        let text = match self.phase {
            Phase::Stake(_) => format!(
                "  <tokens>      stake 1 to {} tokens and become a validator\n  \
                 resume <key>  continue as the validator that key belongs to\n  \
                 help          this text\n  quit          close the connection\n",
                self.config.max_stake
            ),
            Phase::Bpm(_) => format!(
                "  <bpm>         propose a block with this BPM (0 to {}) for this round\n  \
                 balance       your balance, blocks won and status\n  \
                 chain [N]     the last N blocks as JSON lines (default 10, at most {CHAIN_MAX})\n  \
                 status        height, time to the end of the round, candidates\n  \
                 help          this text\n  quit          close the connection\n",
                self.config.max_bpm
            ),
        };
        self.reply(&text).await
    }

    async fn bad_stake(&mut self, what: &str) -> Flow {
        let max = self.config.max_stake;
        self.reply(&format!(
            "error: {what}: enter a whole number of tokens from 1 to {max}, 'resume <key>' or 'help'\n"
        ))
        .await
    }

    async fn register(&mut self, stake: u64) -> Flow {
        let mut key = ValidatorKey([0; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key.0);
        let address = key.address();
        match self.shared.writer.register(address, stake).await {
            Ok(_) => {}
            Err(e) => {
                return self
                    .reply(&format!("error: could not register: {e}\n"))
                    .await
            }
        }
        let Some(claim) = self.shared.connected.claim(address) else {
            // A fresh random key cannot already be connected.
            return self.reply("error: address already connected\n").await;
        };
        self.phase = Phase::Bpm(claim);
        self.slot.registered();
        let key = key.to_hex();
        self.reply(&format!(
            "Validator address: {address}\n\
             Validator key: {key} (keep it secret; reconnect with: resume {key})\n"
        ))
        .await
    }

    async fn resume(&mut self, key: ValidatorKey) -> Flow {
        let address = key.address();
        let v = match self.shared.store.validator(&address) {
            Ok(Some(v)) => v,
            Ok(None) => return self.reply("error: no validator has that key\n").await,
            Err(e) => return self.store_error(e).await,
        };
        if let Some(s) = &v.slashed {
            let text = format!("error: validator {address} was slashed: {}\n", s.reason);
            return self.reply(&text).await;
        }
        let Some(claim) = self.shared.connected.claim(address) else {
            let text = format!(
                "error: validator {address} is already connected; close that connection first\n"
            );
            return self.reply(&text).await;
        };
        self.phase = Phase::Bpm(claim);
        self.slot.registered();
        let text = format!(
            "Validator address: {address}\nresumed: balance {} tokens, {} blocks won\n",
            v.balance, v.blocks_won
        );
        self.reply(&text).await
    }

    async fn store_error(&mut self, e: pos_store::StoreError) -> Flow {
        tracing::error!(peer = %self.peer, error = %e, "read failed");
        self.reply(&format!("error: could not read the chain: {e}\n"))
            .await
    }

    fn address(&self) -> Option<Address> {
        match &self.phase {
            Phase::Bpm(claim) => Some(claim.address),
            Phase::Stake(_) => None,
        }
    }

    async fn malformed_proposal(&mut self, why: String) -> Flow {
        let Some(address) = self.address() else {
            return Flow::Close;
        };
        let max = self.config.max_bpm;
        if !self.config.slash_on_invalid_bpm {
            let text = format!("error: {why}: enter a BPM from 0 to {max}, or 'help'\n");
            return self.reply(&text).await;
        }
        let reason = format!("malformed block proposal: {why}");
        match self.shared.writer.slash(address, reason.clone()).await {
            Ok(v) => {
                let forfeited = v.slashed.map_or(0, |s| s.forfeited);
                let text = format!(
                    "error: {reason}\nvalidator {address} slashed: {forfeited} tokens forfeited; closing\n"
                );
                self.send(&text).await;
            }
            Err(e) => {
                let text =
                    format!("error: {reason}; the slashing could not be stored ({e}); closing\n");
                self.send(&text).await;
            }
        }
        Flow::Close
    }

    async fn balance(&mut self) -> Flow {
        let Some(address) = self.address() else {
            return Flow::Close;
        };
        match self.shared.store.validator(&address) {
            Ok(Some(v)) => {
                let text = format!(
                    "balance: {} tokens, blocks won: {}, status: {}\n",
                    v.balance,
                    v.blocks_won,
                    v.status().as_str()
                );
                self.reply(&text).await
            }
            Ok(None) => self.reply("error: validator record missing\n").await,
            Err(e) => self.store_error(e).await,
        }
    }

    async fn chain(&mut self, n: u64) -> Flow {
        let tip = match self.shared.store.tip() {
            Ok(t) => t.index,
            Err(e) => return self.store_error(e).await,
        };
        let mut text = String::new();
        for block in self.shared.store.blocks(tip.saturating_sub(n - 1), tip) {
            match block {
                Ok(b) => {
                    text.push_str(&b.to_json_line());
                    text.push('\n');
                }
                Err(e) => return self.store_error(e).await,
            }
        }
        self.reply(&text).await
    }

    async fn status(&mut self) -> Flow {
        let shared = &self.shared;
        let (tip, counts) = match (shared.store.tip(), shared.store.counts()) {
            (Ok(t), Ok(c)) => (t, c),
            (Err(e), _) | (_, Err(e)) => return self.store_error(e).await,
        };
        let text = format!(
            "height: {}, round ends in: {:.1}s, candidates: {}, validators: {} active, {} slashed\n",
            tip.index,
            shared.next_round.remaining().as_secs_f64(),
            shared.pending.len(),
            counts.active,
            counts.slashed
        );
        self.reply(&text).await
    }
}
