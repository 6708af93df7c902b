//! A TCP proxy on loopback in front of one cluster node (SPEC §14): a node
//! added by the proxy's address is reached through it, so every byte of
//! those links is recorded, and on request one byte is flipped in flight.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes into one connection's stream after which a flip lands: past the
/// handshake, inside a sealed frame.
const FLIP_AFTER: usize = 512;

/// One proxied connection's bytes, each way.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// What the connecting node sent.
    pub sent: Vec<u8>,
    /// What the node behind the proxy answered.
    pub answered: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    sessions: Mutex<Vec<Arc<Mutex<Session>>>>,
    /// Flips still to make, one per stream chunk past `FLIP_AFTER`.
    flips: AtomicUsize,
    flipped: AtomicUsize,
    stop: AtomicBool,
}

pub struct Proxy {
    /// Where nodes connect: give this to `cluster add`.
    pub addr: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy on 127.0.0.1:0 forwarding every connection to `target`.
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let (target, state) = (target.to_string(), Arc::clone(&shared));
        std::thread::spawn(move || {
            for caller in listener.incoming() {
                if state.stop.load(Ordering::Relaxed) {
                    return;
                }
                let (Ok(caller), Ok(callee)) = (caller, TcpStream::connect(&target)) else {
                    continue;
                };
                let session = Arc::new(Mutex::new(Session::default()));
                state.sessions.lock().unwrap().push(Arc::clone(&session));
                pump(&state, &session, &caller, &callee, true);
                pump(&state, &session, &callee, &caller, false);
            }
        });
        Proxy { addr, shared }
    }

    /// Every connection so far.
    pub fn sessions(&self) -> Vec<Session> {
        let sessions = self.shared.sessions.lock().unwrap();
        sessions.iter().map(|s| s.lock().unwrap().clone()).collect()
    }

    /// Everything that crossed the proxy, both ways.
    pub fn capture(&self) -> Vec<u8> {
        self.sessions()
            .into_iter()
            .flat_map(|s| [s.sent, s.answered])
            .flatten()
            .collect()
    }

    /// Flips one byte in each of the next `n` chunks that pass mid-stream.
    pub fn flip(&self, n: usize) {
        self.shared.flips.fetch_add(n, Ordering::Relaxed);
    }

    /// How many bytes were flipped so far.
    pub fn flipped(&self) -> usize {
        self.shared.flipped.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Copies `from` to `to` on a thread, recording (and maybe flipping) as it goes.
fn pump(
    shared: &Arc<Shared>,
    session: &Arc<Mutex<Session>>,
    from: &TcpStream,
    to: &TcpStream,
    sent: bool,
) {
    let (shared, session) = (Arc::clone(shared), Arc::clone(session));
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        let mut seen = 0;
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let chunk = &mut buf[..n];
            if seen + n > FLIP_AFTER && take_one(&shared.flips) {
                let at = (FLIP_AFTER.saturating_sub(seen)).max(n / 2).min(n - 1);
                chunk[at] ^= 0x01;
                shared.flipped.fetch_add(1, Ordering::Relaxed);
            }
            seen += n;
            let mut s = session.lock().unwrap();
            match sent {
                true => s.sent.extend_from_slice(chunk),
                false => s.answered.extend_from_slice(chunk),
            }
            drop(s);
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

fn take_one(count: &AtomicUsize) -> bool {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}
