//! `nc` as a transcript shows it, without needing nc on the machine: an
//! interactive session (what was typed follows each prompt) or a pipe
//! (`printf '...' | nc -N HOST PORT`). Where the transcript shows a round's
//! announcement, the round is closed as `posctl lottery run` would close it,
//! once posd has printed the prompts shown before it.

use pos_testkit::PATIENCE;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const PROMPTS: [&str; 2] = ["Enter token balance:", "Enter a new BPM:"];
/// How a round's announcement begins.
const WON: &str = "winning validator: ";

/// How the transcript's command feeds nc; `None` for a command that is no nc.
pub enum Input {
    /// `nc HOST PORT`: typed after the prompts.
    Typed,
    /// `printf 'TEXT' | nc -N HOST PORT`: all at once, then half-closed.
    Piped(String),
}

impl Input {
    pub fn of(command: &str) -> Option<Input> {
        if command.starts_with("nc ") {
            return Some(Input::Typed);
        }
        let rest = command.strip_prefix("printf '")?;
        let (text, nc) = rest.split_once("' | ")?;
        nc.starts_with("nc -N ")
            .then(|| Input::Piped(text.replace("\\n", "\n")))
    }
}

/// Runs the session the transcript's `shown` screen describes against posd
/// at `addr`; returns the screen it really made (posd's output with what was
/// typed after each prompt).
pub fn session(input: &Input, shown: &str, addr: SocketAddr, socket: &Path) -> String {
    let mut conn = Conn::open(addr);
    if let Input::Piped(text) = input {
        conn.stream.write_all(text.as_bytes()).unwrap();
        conn.stream.shutdown(Shutdown::Write).unwrap();
    }
    // Typed input goes in after the k-th prompt: (k, text).
    let mut typed: Vec<(usize, String)> = Vec::new();
    let (mut prompts, mut rounds) = (0, 0);
    for line in shown.lines() {
        if line.starts_with(WON) {
            rounds += 1;
            conn.until_prompts(prompts);
            if conn.buf.matches(WON).count() < rounds {
                pos_testkit::force_round(socket);
            }
        }
        prompts += PROMPTS
            .iter()
            .map(|p| line.matches(p).count())
            .sum::<usize>();
        let Input::Typed = input else { continue };
        if let Some(text) = PROMPTS.iter().find_map(|p| line.strip_prefix(p)) {
            if !text.is_empty() {
                conn.until_prompts(prompts);
                conn.stream
                    .write_all(format!("{text}\n").as_bytes())
                    .unwrap();
                typed.push((prompts, text.to_string()));
            }
        }
    }
    conn.until_closed();
    screen(&conn.buf, &typed)
}

/// posd's output with each typed line after the prompt it answered.
fn screen(output: &str, typed: &[(usize, String)]) -> String {
    let mut screen = String::new();
    let mut rest = output;
    let mut count = 0;
    while let Some((at, prompt)) = next_prompt(rest) {
        screen.push_str(&rest[..at + prompt.len()]);
        rest = &rest[at + prompt.len()..];
        count += 1;
        if let Some((_, text)) = typed.iter().find(|(k, _)| *k == count) {
            screen.push_str(text);
            screen.push('\n');
        }
    }
    screen.push_str(rest);
    screen
}

fn next_prompt(text: &str) -> Option<(usize, &'static str)> {
    PROMPTS
        .iter()
        .filter_map(|p| text.find(p).map(|at| (at, *p)))
        .min_by_key(|(at, _)| *at)
}

struct Conn {
    stream: TcpStream,
    buf: String,
    open: bool,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect to posd");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Conn {
            stream,
            buf: String::new(),
            open: true,
        }
    }

    fn read(&mut self) {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.open = false,
            Ok(n) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => self.open = false,
        }
    }

    fn wait(&mut self, what: &str, done: impl Fn(&Conn) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                self.open,
                "posd closed the connection before {what}:\n{}",
                self.buf
            );
            assert!(
                start.elapsed() < PATIENCE,
                "no {what} from posd:\n{}",
                self.buf
            );
            self.read();
        }
    }

    /// Reads until posd has printed `n` prompts in all.
    fn until_prompts(&mut self, n: usize) {
        let count = |c: &Conn| {
            PROMPTS
                .iter()
                .map(|p| c.buf.matches(p).count())
                .sum::<usize>()
        };
        self.wait(&format!("prompt {n}"), |c| count(c) >= n);
    }

    fn until_closed(&mut self) {
        let start = Instant::now();
        while self.open {
            assert!(
                start.elapsed() < PATIENCE,
                "posd kept the connection open:\n{}",
                self.buf
            );
            self.read();
        }
    }
}
