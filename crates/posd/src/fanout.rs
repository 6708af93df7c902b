//! The fan-out: every announcement offered to every client's seat, in the
//! order announced, by one writing task per core.
//!
//! A writer takes the next [`CHUNK`] seats at a time and writes the
//! announcement straight into their sockets, waking a session only for
//! what it must deliver itself (see `validators::seat`): a block reaches
//! 10,000 clients without 10,000 tasks being scheduled. Taking chunks
//! rather than a fixed half each matters here: the cores are shared with
//! the clients, and fixed halves finished up to 60 ms apart
//! (docs/BENCHMARKS.md, round 3, fourth pass).

use crate::announce::{Announcement, Announcer};
use crate::validators::seat::Seat;
use slab::Slab;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// Seats a writer takes at a time: about a millisecond of writes.
const CHUNK: usize = 64;

/// Seats written to before a writer gives the worker's other tasks a
/// turn: a write costs ~15 µs here, so 5,000 seats would hold a worker for
/// 80 ms, and each turn polls the reactor, which costs more the more often.
const TURN: usize = 1024;

/// Everyone the fan-out writes to.
pub struct Audience {
    seats: Mutex<Slab<Arc<Seat>>>,
    /// Tasks that write one announcement: one per core.
    writers: usize,
}

impl Audience {
    /// Starts the fan-out on the current runtime, fed by `announcer`. It
    /// ends with the announcer.
    pub fn start(announcer: &Announcer) -> Arc<Audience> {
        let audience = Arc::new(Audience {
            seats: Mutex::default(),
            writers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        });
        let (rx, next) = announcer.numbered();
        tokio::spawn(fan_out(Arc::clone(&audience), rx, next));
        audience
    }

    /// A seat for a new connection, in the audience until it is dropped:
    /// it hears every announcement sent from now on, and none before.
    pub fn seat(self: &Arc<Self>, stream: TcpStream, announcer: &Announcer) -> Member {
        let (seat, key) = announcer.joining(|from| {
            let seat = Arc::new(Seat::new(stream, from));
            let key = self.seats().insert(Arc::clone(&seat));
            (seat, key)
        });
        Member {
            audience: Arc::clone(self),
            key,
            seat,
        }
    }

    fn seats(&self) -> MutexGuard<'_, Slab<Arc<Seat>>> {
        self.seats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Each announcement to every seat, `next` being the number of the first
/// it receives. The seats are copied out first, so connections come and go
/// while a block is written; one that came after an announcement was sent
/// is not offered it, however late this is.
async fn fan_out(audience: Arc<Audience>, mut rx: Receiver<Announcement>, mut next: u64) {
    loop {
        let got = rx.recv().await;
        let seats: Arc<[Arc<Seat>]> = audience
            .seats()
            .iter()
            .map(|(_, s)| Arc::clone(s))
            .collect();
        match got {
            Ok(a) => {
                offer_all(seats, Arc::new(a), next, audience.writers).await;
                next += 1;
            }
            Err(RecvError::Lagged(n)) => {
                seats.iter().for_each(|s| s.fell_behind(next..next + n));
                next += n;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Offers announcement number `n` to every seat from `writers` tasks, each
/// taking the next [`CHUNK`] seats until none are left; returns once all
/// are done, so the next announcement comes after it on every socket.
async fn offer_all(seats: Arc<[Arc<Seat>]>, a: Arc<Announcement>, n: u64, writers: usize) {
    let cursor = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (seats, a, cursor) = (Arc::clone(&seats), Arc::clone(&a), Arc::clone(&cursor));
            tokio::spawn(async move {
                for taken in 1.. {
                    let from = cursor.fetch_add(CHUNK, Ordering::Relaxed);
                    if from >= seats.len() {
                        return;
                    }
                    let chunk = &seats[from..(from + CHUNK).min(seats.len())];
                    chunk.iter().for_each(|seat| seat.offer(n, &a));
                    if taken % (TURN / CHUNK) == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        // A writer ends only by finishing, or with the runtime.
        let _ = task.await;
    }
}

/// A connection's seat in the audience; leaving it closes the seat.
pub struct Member {
    audience: Arc<Audience>,
    key: usize,
    seat: Arc<Seat>,
}

impl Member {
    pub fn seat(&self) -> &Arc<Seat> {
        &self.seat
    }
}

impl Deref for Member {
    type Target = Seat;

    fn deref(&self) -> &Seat {
        &self.seat
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.seat.close();
        self.audience.seats().remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::{Lines, BACKLOG};
    use crate::validators::protocol::Prompt;
    use crate::validators::seat::Due;
    use futures::FutureExt;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio::runtime::Handle;

    /// A connection's two ends: posd's, the client's.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    /// An announcer with its fan-out, and one client seated and greeted
    /// (`>`) the way a session greets: its socket known to be writable.
    async fn seated() -> (Announcer, Member, TcpStream) {
        let announcer = Announcer::new(Handle::current(), 0);
        let audience = Audience::start(&announcer);
        let (posd, client) = pair().await;
        let seat = audience.seat(posd, &announcer);
        seat.write(b">", Some(Prompt::Bpm)).await.unwrap();
        (announcer, seat, client)
    }

    /// Fails rather than hangs when what a test waits for never comes.
    async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("waited 20 s")
    }

    async fn read(client: &mut TcpStream, len: usize) -> String {
        let mut buf = vec![0; len];
        within(client.read_exact(&mut buf)).await.unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn at_bpm(text: &str) -> String {
        Lines::new(&format!("{text}\n"))
            .with(Some(Prompt::Bpm))
            .to_string()
    }

    #[tokio::test]
    async fn an_announcement_reaches_the_socket_without_its_session() {
        let (announcer, seat, mut client) = seated().await;
        announcer.notice("block 1");
        let want = format!(">{}", at_bpm("block 1"));
        assert_eq!(read(&mut client, want.len()).await, want);
        assert!(
            seat.due().now_or_never().is_none(),
            "nothing left to the session"
        );
    }

    #[tokio::test]
    async fn announcements_wait_while_the_session_answers() {
        let (announcer, seat, mut client) = seated().await;
        seat.answering();
        announcer.notice("news");
        // Held for the session, not written in the middle of its answer.
        let due = within(seat.due()).await;
        assert!(
            matches!(&due, Due::Announcement(Announcement::Text(t)) if t.text() == "news\n"),
            "{due:?}"
        );
        seat.write(b"reply", Some(Prompt::Bpm)).await.unwrap();
        seat.answered();
        announcer.notice("later");
        // The session dropped what it took (as if written); the next one
        // comes straight after its reply.
        let want = format!(">reply{}", at_bpm("later"));
        assert_eq!(read(&mut client, want.len()).await, want);
    }

    #[tokio::test]
    async fn a_client_hears_nothing_announced_before_it_connected() {
        let announcer = Announcer::new(Handle::current(), 0);
        let audience = Audience::start(&announcer);
        let (posd, mut client) = pair().await;
        // Sent before the seat is taken, and fanned out after: this runtime
        // has one thread, and the loops have not run since.
        announcer.notice("old news");
        let seat = audience.seat(posd, &announcer);
        seat.write(b">", Some(Prompt::Bpm)).await.unwrap();
        announcer.notice("news");
        let want = format!(">{}", at_bpm("news"));
        assert_eq!(read(&mut client, want.len()).await, want);
    }

    #[tokio::test]
    async fn a_half_closed_client_leaves_rounds_to_its_session() {
        let (announcer, seat, mut client) = seated().await;
        announcer.no_block();
        announcer.notice("written");
        // Both went straight to the socket: the round counts as heard.
        let want = format!(">{}", at_bpm("written"));
        assert_eq!(read(&mut client, want.len()).await, want);
        assert_eq!(seat.hold_all(), Some(0));
        announcer.no_block();
        let due = within(seat.due()).await;
        assert!(
            matches!(
                due,
                Due::Announcement(Announcement::Round {
                    round: 1,
                    block: None
                })
            ),
            "{due:?}"
        );
    }

    #[tokio::test]
    async fn what_a_full_socket_does_not_take_is_left_to_the_session() {
        let (announcer, seat, mut client) = seated().await;
        let long = "x".repeat(32 << 20);
        announcer.notice(&long);
        let Due::Rest {
            lines,
            prompt,
            from,
        } = within(seat.due()).await
        else {
            panic!("the rest of the announcement is due");
        };
        let whole = lines.with(Some(prompt)).as_bytes();
        assert!(from > 0 && from < whole.len(), "{from} of {}", whole.len());
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            within(client.read_to_end(&mut got)).await.unwrap();
            got
        });
        seat.write(&whole[from..], Some(Prompt::Bpm)).await.unwrap();
        drop(seat);
        assert!(reading.await.unwrap() == format!(">{}", at_bpm(&long)).as_bytes());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_client_hears_every_announcement_in_order() {
        let announcer = Announcer::new(Handle::current(), 0);
        let audience = Audience::start(&announcer);
        let mut clients = Vec::new();
        let mut seats = Vec::new();
        for _ in 0..300 {
            let (posd, client) = pair().await;
            let seat = audience.seat(posd, &announcer);
            seat.write(b">", Some(Prompt::Bpm)).await.unwrap();
            seats.push(seat);
            clients.push(client);
        }
        // Announced faster than 300 seats are written: writers of one
        // announcement must not overtake those of the one before.
        for n in 0..40 {
            announcer.notice(&format!("news {n}"));
        }
        let want: String = std::iter::once(">".to_string())
            .chain((0..40).map(|n| at_bpm(&format!("news {n}"))))
            .collect();
        for client in &mut clients {
            assert_eq!(read(client, want.len()).await, want);
        }
        assert!(seats.iter().all(|s| s.due().now_or_never().is_none()));
    }

    #[tokio::test]
    async fn a_client_that_falls_too_far_behind_is_told() {
        let (announcer, seat, _client) = seated().await;
        seat.answering();
        for n in 0..BACKLOG + 5 {
            announcer.notice(&format!("{n}"));
        }
        // However far the loops themselves lag, the client missed at least 5.
        match within(seat.due()).await {
            Due::Behind(missed) => assert!(missed >= 5, "{missed}"),
            other => panic!("{other:?}"),
        }
    }
}
