//! Test harness: the real posd binary in a temp dir, and an `nc`-like client.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any expected reply may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A running posd process.
pub struct Posd {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Everything posd logged so far.
    pub log: Arc<Mutex<String>>,
}

impl Posd {
    /// Starts posd on `127.0.0.1:0` with `data_dir` and extra flags; waits until it listens.
    pub fn start(data_dir: &Path, args: &[&str]) -> Posd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_posd"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn posd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            // Drain stderr for the whole life of the process so posd never blocks on it.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("posd listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("posd did not start:\n{}", log.lock().unwrap());
            }
        };
        Posd {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A new validator staking `stake`; returns it at the BPM prompt.
    pub fn validator(&self, stake: u64) -> (Client, String, String) {
        let mut c = self.connect();
        c.expect("Enter token balance:");
        c.send(&format!("{stake}\n"));
        let (address, key) = c.registration();
        (c, address, key)
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Posd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Talks to posd as `nc` would: raw writes, and reads until some text appears.
pub struct Client {
    pub stream: TcpStream,
    /// Received but not yet consumed.
    pub buf: String,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
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
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(_) => false,
        }
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
