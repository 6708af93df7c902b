//! One client's socket, shared by its session and the fan-out.
//!
//! A block goes to every client at once. Waking 10,000 session tasks so
//! that each writes it cost posd a quarter more than a server that writes
//! it from one task per core (docs/BENCHMARKS.md, round 3). So the fan-out
//! (`crate::fanout`) writes an announcement straight into the socket when
//! that is what the session would do anyway: the session is not answering
//! anything, nothing is held for it, and the client can still type (so the
//! prompt that follows is the session's). Everything else (a socket that is
//! full, a session in the middle of an answer, a half-closed client waiting
//! for its round's result, shutdown) is held here in order, and the session
//! is woken to deliver it by its own rules.

use crate::announce::{Announcement, Lines, BACKLOG};
use crate::validators::pending::RoundId;
use crate::validators::protocol::Prompt;
use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

pub struct Seat {
    stream: TcpStream,
    /// The number of the first announcement for this client: those sent
    /// before it connected are not news to it.
    from: u64,
    state: Mutex<State>,
    /// Whether the session has something to deliver: read without the
    /// lock on each of the session's wake-ups.
    due: AtomicBool,
    /// The session, woken when something is held for it.
    session: AtomicWaker,
}

#[derive(Default)]
struct State {
    /// The session is answering something (a line, a timeout, what it
    /// took from `held`): announcements wait behind its answer.
    answering: bool,
    /// The prompt that follows an announcement the fan-out writes; `None`
    /// while only the session may deliver (before its greeting, and once
    /// the client half-closed).
    direct: Option<Prompt>,
    /// What the session must deliver, oldest first.
    held: VecDeque<Due>,
    /// Announcements dropped because `held` was full.
    missed: u64,
    /// The last round whose result the fan-out wrote.
    last_round: Option<RoundId>,
    /// The session ended: nothing more is written.
    closed: bool,
}

/// What the session delivers itself.
#[derive(Debug)]
pub enum Due {
    /// The rest of an announcement the socket did not take whole: its
    /// bytes from `from` (the prompt was chosen when it was written).
    Rest {
        lines: Arc<Lines>,
        prompt: Prompt,
        from: usize,
    },
    Announcement(Announcement),
    /// The client fell this many announcements behind: it is dropped.
    Behind(u64),
}

impl Seat {
    pub fn new(stream: TcpStream, from: u64) -> Seat {
        Seat {
            stream,
            from,
            state: Mutex::default(),
            due: AtomicBool::new(false),
            session: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fan-out's side: writes announcement number `n`, `a`, now if the
    /// session would write it as it is and the socket takes it, or holds
    /// it for the session.
    pub fn offer(&self, n: u64, a: &Announcement) {
        if n < self.from {
            return;
        }
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let free = !st.answering && st.held.is_empty() && st.missed == 0;
        let (lines, prompt) = match (free, st.direct, a) {
            (true, Some(prompt), Announcement::Text(t) | Announcement::Slashed { text: t, .. }) => {
                (t, prompt)
            }
            (true, Some(prompt), Announcement::Round { round, block }) => {
                st.last_round = Some(*round);
                match block {
                    Some(t) => (t, prompt),
                    None => return,
                }
            }
            _ => return self.hold(st, Due::Announcement(a.clone())),
        };
        let bytes = lines.with(Some(prompt)).as_bytes();
        // A broken connection is left to the session: its write fails too.
        let from = match self.stream.try_write(bytes) {
            Ok(n) if n == bytes.len() => return,
            Ok(n) => n,
            Err(_) => 0,
        };
        let lines = Arc::clone(lines);
        self.hold(
            st,
            Due::Rest {
                lines,
                prompt,
                from,
            },
        );
    }

    /// The fan-out missed the announcements numbered `missed`.
    pub fn fell_behind(&self, missed: std::ops::Range<u64>) {
        let n = missed.end.saturating_sub(missed.start.max(self.from));
        if n > 0 {
            let mut st = self.lock();
            st.missed += n;
            self.wake(st);
        }
    }

    fn hold(&self, mut st: MutexGuard<'_, State>, due: Due) {
        if st.missed > 0 || st.held.len() >= BACKLOG {
            st.missed += 1;
        } else {
            st.held.push_back(due);
        }
        self.wake(st);
    }

    fn wake(&self, st: MutexGuard<'_, State>) {
        self.due.store(true, Ordering::Release);
        drop(st);
        self.session.wake();
    }

    /// The session's side: the next thing it must deliver. Until it calls
    /// [`Seat::answered`], the fan-out holds everything behind it.
    pub fn poll_due(&self, cx: &mut Context<'_>) -> Poll<Due> {
        self.session.register(cx.waker());
        if !self.due.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        let mut st = self.lock();
        if st.missed > 0 {
            st.answering = true;
            return Poll::Ready(Due::Behind(st.missed));
        }
        let Some(due) = st.held.pop_front() else {
            self.due.store(false, Ordering::Release);
            return Poll::Pending;
        };
        st.answering = true;
        Poll::Ready(due)
    }

    pub fn due(&self) -> impl std::future::Future<Output = Due> + '_ {
        std::future::poll_fn(|cx| self.poll_due(cx))
    }

    /// The session starts answering: announcements wait.
    pub fn answering(&self) {
        self.lock().answering = true;
    }

    /// The session answered: the fan-out may write again.
    pub fn answered(&self) {
        self.lock().answering = false;
    }

    /// Writes the session's `text`, while it is answering. From then on the
    /// fan-out follows an announcement with `direct`, or leaves all to the
    /// session (`None`). A poll function rather than an `async fn` awaiting
    /// `writable()`: that future would sit in every session's task.
    pub fn write<'a>(
        &'a self,
        text: &'a [u8],
        direct: Option<Prompt>,
    ) -> impl std::future::Future<Output = io::Result<()>> + 'a {
        self.lock().direct = direct;
        let mut rest = text;
        std::future::poll_fn(move |cx| {
            while !rest.is_empty() {
                match self.stream.try_write(rest) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => rest = &rest[n..],
                    // Only the session waits for the socket to drain.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(self.stream.poll_write_ready(cx))?
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            Poll::Ready(Ok(()))
        })
    }

    /// The client half-closed: from now on the session delivers everything.
    /// Returns the last round whose result already reached it.
    pub fn hold_all(&self) -> Option<RoundId> {
        let mut st = self.lock();
        st.direct = None;
        st.last_round
    }

    /// The session ended: nothing more is written, not even by a fan-out
    /// that still holds this seat.
    pub fn close(&self) {
        self.lock().closed = true;
    }
}

/// The session's reading side of a seat, for a `FramedRead`.
pub struct Reader(pub Arc<Seat>);

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &self.0.stream;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            match stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale and is now cleared: wait for the next.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}
