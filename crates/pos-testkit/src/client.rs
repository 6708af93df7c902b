//! Talking to posd as `nc` would.

use crate::PATIENCE;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Talks to posd as `nc` would: raw writes, and reads until some text appears.
pub struct Client {
    pub stream: TcpStream,
    /// Received but not yet consumed.
    pub buf: String,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).expect("connect"))
    }

    /// A client on an open connection (e.g. one made in another network namespace).
    pub fn over(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Client {
            stream,
            buf: String::new(),
        }
    }

    pub fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads what is available; `false` once the server closed the connection.
    fn fill(&mut self) -> bool {
        read_some(&mut self.stream, &mut self.buf)
    }

    /// Consumes and returns everything up to and including `needle`.
    pub fn expect(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(pos) = self.buf.find(needle) {
                let rest = self.buf.split_off(pos + needle.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            if start.elapsed() > PATIENCE || !self.fill() && !self.buf.contains(needle) {
                panic!("expected {needle:?}, got {:?}", self.buf);
            }
        }
    }

    /// Reads until the server closes; returns everything left.
    pub fn expect_closed(&mut self) -> String {
        let start = Instant::now();
        while self.fill() {
            assert!(start.elapsed() < PATIENCE, "still open: {:?}", self.buf);
        }
        std::mem::take(&mut self.buf)
    }

    /// Connects and registers a new validator staking `stake`; returns
    /// (client at the BPM prompt, address, key).
    pub fn validator(addr: SocketAddr, stake: u64) -> (Client, String, String) {
        Client::connect(addr).register(stake)
    }

    /// [`Client::validator`] on this fresh connection.
    pub fn register(mut self, stake: u64) -> (Client, String, String) {
        self.expect("Enter token balance:");
        self.send(&format!("{stake}\n"));
        let (address, key) = self.registration();
        (self, address, key)
    }

    /// Registers a fresh validator and returns how long it took: the
    /// "is posd still responsive" probe of the hostile-client tests.
    pub fn registration_time(addr: SocketAddr) -> Duration {
        let start = Instant::now();
        Client::assert_serves(addr);
        start.elapsed()
    }

    /// Asserts that posd at `addr` still serves validators: a new one
    /// registers and is given an address that parses as one.
    pub fn assert_serves(addr: SocketAddr) {
        let (_, address, _) = Client::validator(addr, 1);
        assert!(
            address.parse::<pos_core::Address>().is_ok(),
            "posd at {addr} no longer serves: registration gave address {address:?}"
        );
    }

    /// Proposes `bpm` and waits for its confirmation, so a round forced next
    /// sees it (a prompt alone may be one an earlier announcement re-printed).
    pub fn propose(&mut self, bpm: u32) {
        self.send(&format!("{bpm}\n"));
        self.expect(&format!("proposal {bpm} for block"));
    }

    /// Reads the `Validator address:`/`Validator key:` pair and the BPM prompt.
    pub fn registration(&mut self) -> (String, String) {
        self.expect("Validator address: ");
        let address = self.expect("\n").trim().to_string();
        self.expect("Validator key: ");
        let key = self.expect(" ").trim().to_string();
        self.expect("Enter a new BPM:");
        (address, key)
    }

    /// Waits for the next block announcement; returns (winner, block JSON).
    pub fn next_block(&mut self) -> (String, serde_json::Value) {
        self.expect("winning validator: ");
        let winner = self.expect("\n").trim().to_string();
        let json = self.expect("\n");
        (
            winner,
            serde_json::from_str(json.trim()).expect("block JSON"),
        )
    }
}

/// Appends what `stream` has to `buf` (waiting at most its read timeout);
/// `false` once the server closed the connection.
pub(crate) fn read_some(stream: &mut TcpStream, buf: &mut String) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
            true
        }
        Err(e)
            // A read with SO_RCVTIMEO returns EINTR on any caught signal,
            // even with SA_RESTART: that is no hang-up either.
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
            ) =>
        {
            true
        }
        Err(_) => false,
    }
}
