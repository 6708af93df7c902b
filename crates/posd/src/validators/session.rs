//! One validator connection: the line protocol of docs/PROTOCOL.md, as `nc` sees it.
//! What each line means is in `protocol`; what posd says, in `protocol::say`.

use crate::announce::{Announcement, Lines};
use crate::config::Config;
use crate::fanout::Member;
use crate::shared::Serving;
use crate::validators::connected::Claim;
use crate::validators::line::{Line, LineCodec, LineError};
use crate::validators::pending::RoundId;
use crate::validators::protocol::{self, say, Input, Limits, Prompt};
use crate::validators::seat::{Due, Reader};
use crate::validators::slots::Slot;
use crate::write::WriteError;
use futures::StreamExt;
use pos_core::{Address, Refusal, ValidatorKey};
use rand::RngCore;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

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
    /// At `Enter token balance:`, until this instant (moved on by every line).
    Stake(Instant),
    /// At `Enter a new BPM:`, speaking for the claimed validator.
    Bpm(Claim),
}

/// What the session wakes for.
enum Event {
    /// A newer connection needs this one's place (see [`Slot`]).
    Shed,
    /// A `resume` elsewhere took this session's validator.
    TakenOver,
    /// Something the fan-out left to the session.
    Due(Due),
    Line(Option<Result<Line, LineError>>),
    /// The stake prompt went unanswered, or the validator was idle too long.
    TimedOut,
}

/// Whether the connection goes on after handling an event.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session {
    ctx: Serving,
    /// The config as the connection opened: a reload applies to new connections.
    config: Arc<Config>,
    /// The socket, shared with the fan-out: writes go through it.
    seat: Member,
    peer: SocketAddr,
    phase: Phase,
    /// Fires when a `resume` elsewhere takes this session's validator.
    taken_over: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The round of this validator's proposal, until that round's result is seen.
    awaiting: Option<RoundId>,
    /// The client closed its sending side (`nc -N`, a pipe that ended): no
    /// more lines; the session ends with the result of `awaiting`.
    half_closed: bool,
    /// When the client last sent a line: `idle_timeout` counts from here.
    last_line: Instant,
    /// Whether the store knows this validator proposed (see `forget_after`).
    proposed: bool,
    /// This connection's place under `max_connections`.
    slot: Slot,
    /// Whether `shed` can still fire: not once registered. (Each token
    /// polled takes its mutex, on every wake-up of every session.)
    sheddable: bool,
}

/// Serves one connection until the client leaves, misbehaves fatally, or posd
/// stops, or it is shed to make room (see [`Slot`]).
pub async fn run(stream: TcpStream, peer: SocketAddr, ctx: Serving, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&KEEPALIVE);
    let seat = ctx.clients.audience.seat(stream, &ctx.chain.announcer);
    let config = ctx.config.get();
    let max_line = config.max_line_bytes as usize;
    let reader = Reader(Arc::clone(seat.seat()));
    let mut lines = FramedRead::with_capacity(reader, LineCodec::new(max_line), 256);
    // Shutdown comes as an announcement; one that went out before this
    // seat was taken is seen on the token instead (cancelled before it is sent).
    let stopping = ctx.shutdown.is_cancelled();
    // The futures that live as long as the session are made once: polling a
    // registered waiter again is cheap, registering 10,000 anew on every
    // line or announcement is not.
    let mut shed = std::pin::pin!(slot.shed().cancelled_owned());
    let deadline = Instant::now() + config.stake_timeout;
    let mut s = Session {
        ctx,
        config,
        seat,
        peer,
        phase: Phase::Stake(deadline),
        taken_over: Box::pin(CancellationToken::new().cancelled_owned()),
        awaiting: None,
        half_closed: false,
        last_line: Instant::now(),
        proposed: false,
        slot,
        sheddable: true,
    };
    let greeting = format!("{}{}", say::greeting(), Prompt::Stake.text());
    s.seat.answering();
    let mut flow = s.send(&greeting).await;
    if stopping && flow == Flow::Continue {
        s.send(say::SHUTTING_DOWN).await;
        flow = Flow::Close;
    }
    s.seat.answered();
    while flow == Flow::Continue {
        let deadline = match s.phase {
            Phase::Stake(at) => Some(at),
            Phase::Bpm(_) => s.config.idle_timeout.map(|idle| s.last_line + idle),
        };
        let event = tokio::select! {
            biased;
            _ = &mut shed, if s.sheddable => Event::Shed,
            _ = s.taken_over.as_mut(), if s.address().is_some() => Event::TakenOver,
            // Before lines, so a client that keeps typing still hears shutdown.
            due = s.seat.due() => Event::Due(due),
            line = lines.next(), if !s.half_closed => Event::Line(line),
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Event::TimedOut,
        };
        // Announcements wait while the session answers: a reply is never
        // split by a block, nor preceded by news it caused (its own slashing).
        s.seat.answering();
        // Boxed: handling an event (a line's write through the writer, or
        // forwarded to a cluster's leader) is the largest future a session
        // awaits, and inline it would be part of every idle session's task
        // (5.7 KB of 5.8 in a release build); boxed it costs an allocation
        // per event and the task under 1 KB.
        flow = Box::pin(s.on_event(event)).await;
        s.seat.answered();
    }
    // A proposal stands while its validator is connected: this keeps pending
    // proposals within max_connections. After a takeover it is the new
    // connection's, and stays.
    if let Phase::Bpm(claim) = std::mem::replace(&mut s.phase, Phase::Stake(Instant::now())) {
        let submit = &s.ctx.chain.submit;
        claim.release(|address| submit.withdraw(*address));
    }
    tracing::debug!(peer = %s.peer, "connection closed");
    // Free the slot before the socket closes, so a client that sees the close
    // and reconnects at once is never refused for our sake.
    let Session { slot, seat, .. } = s;
    drop(slot);
    drop(lines);
    drop(seat);
}

impl Session {
    async fn on_event(&mut self, event: Event) -> Flow {
        match event {
            Event::Shed => {
                tracing::info!(peer = %self.peer, "connection limit reached: shed this unregistered connection for a newer one");
                self.farewell(say::SHED).await;
                Flow::Close
            }
            Event::TakenOver => self.on_taken_over().await,
            Event::Due(due) => self.on_due(due).await,
            Event::Line(line) => self.on_line(line).await,
            Event::TimedOut => self.timed_out().await,
        }
    }

    /// Writes `text`; a client that is gone or too slow ends the session.
    async fn send(&mut self, text: &str) -> Flow {
        self.send_bytes(text.as_bytes()).await
    }

    async fn send_bytes(&mut self, bytes: &[u8]) -> Flow {
        let limit = self.config.write_timeout;
        match timeout(limit, self.seat.write(bytes, self.direct())).await {
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
        let write = self.seat.write(text.as_bytes(), None);
        let _ = timeout(Duration::from_secs(1), write).await;
    }

    /// The prompt the fan-out may follow an announcement with: the
    /// client's, unless it can no longer type (then the session delivers).
    fn direct(&self) -> Option<Prompt> {
        (!self.half_closed).then(|| self.prompt_kind())
    }

    /// The stake prompt went unanswered, or a validator was idle too long.
    async fn timed_out(&mut self) -> Flow {
        let text = match self.phase {
            Phase::Stake(_) => say::stake_timeout(self.config.stake_timeout),
            Phase::Bpm(_) => say::idle_timeout(self.config.idle_timeout.unwrap_or_default()),
        };
        self.send(&text).await;
        Flow::Close
    }

    /// Sends `text` followed by the current prompt.
    async fn reply(&mut self, text: &str) -> Flow {
        let text = format!("{text}{}", self.prompt_kind().text());
        self.send(&text).await
    }

    /// Sends an announcement on a line of its own; the prompt follows unless
    /// the client can no longer type.
    async fn announce(&mut self, lines: &Lines) -> Flow {
        let prompt = (!self.half_closed).then(|| self.prompt_kind());
        self.send(lines.with(prompt)).await
    }

    /// What the fan-out left to the session.
    async fn on_due(&mut self, due: Due) -> Flow {
        match due {
            Due::Rest {
                lines,
                prompt,
                from,
            } => {
                let bytes = &lines.with(Some(prompt)).as_bytes()[from..];
                self.send_bytes(bytes).await
            }
            Due::Announcement(a) => self.on_announcement(a).await,
            Due::Behind(missed) => {
                tracing::warn!(peer = %self.peer, missed, "client too slow to read announcements; dropped");
                self.farewell(&say::behind(missed)).await;
                Flow::Close
            }
        }
    }

    async fn on_announcement(&mut self, a: Announcement) -> Flow {
        match a {
            Announcement::Text(text) | Announcement::Slashed { text, .. } => {
                self.announce(&text).await
            }
            Announcement::Round { round, block } => {
                let answered = self.heard(round);
                if answered && self.half_closed {
                    // The result this client stayed for; then goodbye.
                    match block {
                        Some(lines) => self.send(lines.with(None)).await,
                        None => self.send(say::NO_BLOCK).await,
                    };
                    return Flow::Close;
                }
                match block {
                    Some(lines) => self.announce(&lines).await,
                    None => Flow::Continue,
                }
            }
            Announcement::Shutdown => {
                self.send(say::SHUTTING_DOWN).await;
                Flow::Close
            }
        }
    }

    /// Round `round`'s result reached the client: whether it answers the
    /// proposal it awaited (which it then no longer awaits).
    fn heard(&mut self, round: RoundId) -> bool {
        let answered = self.awaiting.is_some_and(|mine| round >= mine);
        if answered {
            self.awaiting = None;
        }
        answered
    }

    async fn on_taken_over(&mut self) -> Flow {
        if let Some(address) = self.address() {
            tracing::info!(peer = %self.peer, %address, "validator resumed on another connection; closing this one");
            self.send(&say::taken_over(&address)).await;
        }
        Flow::Close
    }

    async fn on_line(&mut self, line: Option<Result<Line, LineError>>) -> Flow {
        self.last_line = Instant::now();
        if let Phase::Stake(deadline) = &mut self.phase {
            *deadline = Instant::now() + self.config.stake_timeout;
        }
        match line {
            // A half-close: a pending proposal still gets its round's result.
            None => {
                self.half_closed = true;
                // The fan-out may have written its round's result already.
                if let Some(seen) = self.seat.hold_all() {
                    self.heard(seen);
                }
                if self.awaiting.is_none() {
                    return Flow::Close;
                }
                tracing::debug!(peer = %self.peer, "client half-closed; waiting for its round");
                Flow::Continue
            }
            Some(Err(LineError::TooLong(max))) => {
                tracing::info!(peer = %self.peer, max, "line too long; closing");
                self.send(&say::line_too_long(max)).await;
                Flow::Close
            }
            Some(Err(LineError::Io(e))) => {
                tracing::debug!(peer = %self.peer, error = %e, "read failed");
                Flow::Close
            }
            Some(Ok(line)) => {
                let input = protocol::parse(self.prompt_kind(), &line, self.limits());
                self.on_input(input).await
            }
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_stake: self.config.max_stake,
            max_bpm: self.config.max_bpm,
            weighting: self.config.weighting(),
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
            Input::Help => {
                let text = say::help(self.prompt_kind(), self.limits());
                self.reply(&text).await
            }
            Input::Quit => {
                self.send(say::BYE).await;
                Flow::Close
            }
            Input::Stake(stake) => self.register(stake).await,
            Input::Resume(Some(key)) => self.resume(key).await,
            Input::Resume(None) => self.reply(say::RESUME_NEEDS_KEY).await,
            Input::BadStake(why) => {
                let text = say::bad_stake(&why, self.config.max_stake);
                self.reply(&text).await
            }
            Input::Unknown(word) => {
                let text = match self.prompt_kind() {
                    Prompt::Stake => say::unknown_at_stake(&word, self.config.max_stake),
                    Prompt::Bpm => say::unknown_command(&word),
                };
                self.reply(&text).await
            }
            Input::NoArgument(command) => self.reply(&say::no_argument(&command)).await,
            Input::Bpm(bpm) => self.propose(bpm, None).await,
            Input::Work(bpm, nonce) => self.propose(bpm, Some(nonce)).await,
            Input::Balance => self.balance().await,
            Input::Chain(Some(n)) => self.chain(n).await,
            Input::Chain(None) => self.reply(&say::chain_range()).await,
            Input::Status => self.status().await,
            Input::Malformed(why) => self.malformed_proposal(why).await,
        }
    }

    async fn register(&mut self, stake: u64) -> Flow {
        let ip = self.peer.ip();
        let rate = self.ctx.config.get().registration_rate;
        if let Err(wait) = self
            .ctx
            .clients
            .registrations
            .take(ip, rate, Instant::now())
        {
            return self.reply(&say::too_many_registrations(ip, wait)).await;
        }
        let mut key = ValidatorKey([0; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key.0);
        let address = key.address();
        match self.ctx.chain.submit.register(address, stake).await {
            Ok(_) => self.proposed = false,
            Err(WriteError::Refused(Refusal::ValidatorLimit { max })) => {
                return self.reply(&say::validator_limit(max)).await;
            }
            Err(WriteError::NoLeader) => return self.reply(say::NO_LEADER).await,
            Err(WriteError::Removed) => return self.reply(say::REMOVED).await,
            Err(e) => return self.reply(&say::could_not_register(&e)).await,
        }
        // A fresh random key: nobody else can hold its address.
        let (claim, _) = self.ctx.clients.connected.claim(address);
        self.claimed(claim);
        self.reply(&say::registered(&address, &key.to_hex())).await
    }

    fn claimed(&mut self, claim: Claim) {
        self.taken_over = Box::pin(claim.taken_over().cancelled_owned());
        self.phase = Phase::Bpm(claim);
        // Shed while registering: the next turn of the loop says so and closes.
        self.sheddable &= !self.slot.registered();
    }

    /// The block the open round makes, as far as posd has announced.
    fn next_block(&self) -> u64 {
        self.ctx.chain.announcer.height() + 1
    }

    async fn resume(&mut self, key: ValidatorKey) -> Flow {
        let address = key.address();
        let v = match self.ctx.chain.store.validator(&address) {
            Ok(Some(v)) => v,
            Ok(None) => return self.reply(say::NO_SUCH_KEY).await,
            Err(e) => return self.store_error(e).await,
        };
        if let Some(s) = &v.slashed {
            return self.reply(&say::resume_slashed(&address, &s.reason)).await;
        }
        self.proposed = match self.ctx.chain.store.proposed(&address) {
            Ok(proposed) => proposed,
            Err(e) => return self.store_error(e).await,
        };
        let (claim, took_over) = self.ctx.clients.connected.claim(address);
        if took_over {
            tracing::info!(peer = %self.peer, %address, "validator taken over by a resume");
        }
        self.claimed(claim);
        // A proposal the old connection left stays, and is now this one's.
        let pending = self.ctx.chain.pending.get(&address);
        self.awaiting = pending.map(|(_, round)| round);
        let text = say::resumed(&v, pending.map(|(bpm, _)| (bpm, self.next_block())));
        self.reply(&text).await
    }

    async fn propose(&mut self, bpm: u32, nonce: Option<u64>) -> Flow {
        let Some(address) = self.address() else {
            return Flow::Close;
        };
        if !self.proposed {
            // Once per validator, durably: a validator that proposed is never forgotten.
            match self.ctx.chain.submit.proposed(address).await {
                Ok(_) => self.proposed = true,
                Err(WriteError::NoLeader) => return self.reply(say::NO_LEADER).await,
                Err(WriteError::Removed) => return self.reply(say::REMOVED).await,
                Err(e) => tracing::warn!(%address, error = %e, "cannot record a first proposal"),
            }
        }
        let proposed = match self.ctx.chain.submit.propose(address, bpm, nonce).await {
            Ok(proposed) => proposed,
            Err(WriteError::NoLeader) => return self.reply(say::NO_LEADER).await,
            Err(WriteError::Removed) => return self.reply(say::REMOVED).await,
            Err(e) => return self.reply(&say::proposal_not_recorded(&e)).await,
        };
        self.awaiting = Some(proposed.round);
        let left = self.ctx.chain.next_round.remaining();
        let weight = self.weight(address, bpm, nonce);
        let text = say::proposal(bpm, self.next_block(), proposed.replaced, &weight, left);
        self.reply(&text).await
    }

    /// What the proposal weighs if the round closes on the current tip, as
    /// the confirmation says it (nothing under plain stake).
    fn weight(&self, address: Address, bpm: u32, nonce: Option<u64>) -> String {
        let weighting = self.config.weighting();
        if weighting == pos_core::Weighting::Stake {
            return String::new();
        }
        let store = &self.ctx.chain.store;
        let weighed = store.validator(&address).and_then(|v| {
            let stake = v.map_or(0, |v| v.balance);
            let candidate = pos_core::Candidate {
                address,
                stake,
                bpm,
            };
            crate::round::weight_now(store, &candidate, nonce)
        });
        match weighed {
            Ok(w) => say::weight(&w, weighting),
            Err(e) => {
                tracing::warn!(%address, error = %e, "cannot weigh a proposal");
                String::new()
            }
        }
    }

    async fn store_error(&mut self, e: pos_store::StoreError) -> Flow {
        tracing::error!(peer = %self.peer, error = %e, "read failed");
        self.reply(&say::store_error(&e)).await
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
        if !self.config.slash_on_invalid_bpm {
            let text = say::not_a_bpm(&why, self.config.max_bpm);
            return self.reply(&text).await;
        }
        let reason = format!("malformed block proposal: {why}");
        let text = match self.ctx.chain.submit.slash(address, reason.clone()).await {
            Ok(v) => say::slashed(&reason, &address, v.slashed.map_or(0, |s| s.forfeited)),
            // Nobody is slashed for the cluster's trouble: the connection stays.
            Err(WriteError::NoLeader) => return self.reply(say::NO_LEADER).await,
            Err(WriteError::Removed) => return self.reply(say::REMOVED).await,
            Err(e) => say::slash_not_stored(&reason, &e),
        };
        self.send(&text).await;
        Flow::Close
    }

    async fn balance(&mut self) -> Flow {
        let Some(address) = self.address() else {
            return Flow::Close;
        };
        match self.ctx.chain.store.validator(&address) {
            Ok(Some(v)) => self.reply(&say::balance(&v)).await,
            Ok(None) => self.reply(say::RECORD_MISSING).await,
            Err(e) => self.store_error(e).await,
        }
    }

    async fn chain(&mut self, n: u64) -> Flow {
        let tip = match self.ctx.chain.store.tip() {
            Ok(t) => t.index,
            Err(e) => return self.store_error(e).await,
        };
        let mut text = String::new();
        for block in self.ctx.chain.store.blocks(tip.saturating_sub(n - 1), tip) {
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
        let chain = &self.ctx.chain;
        let (tip, counts) = match (chain.store.tip(), chain.store.counts()) {
            (Ok(t), Ok(c)) => (t, c),
            (Err(e), _) | (_, Err(e)) => return self.store_error(e).await,
        };
        let text = say::status(
            tip.index,
            chain.next_round.remaining(),
            chain.pending.len(),
            counts.active,
            counts.slashed,
        );
        self.reply(&text).await
    }
}
