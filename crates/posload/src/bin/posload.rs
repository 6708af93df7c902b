//! posload: drive a running posd like many `nc` users at once and report
//! what they would feel. Run posd with a long --round-interval so that only
//! posload's forced rounds (over the admin socket) close rounds.
//!
//!   posload register  --clients 100 --total 20000
//!   posload propose   --connections 1000 --lines 200
//!   posload broadcast --connections 10000 --rounds 20 --socket ./posd-data/admin.sock
//!   posload broadcast --connections 10000 --rounds 20 --all-propose
//!   posload flood     --connections 100 --rounds 20 [--slash]

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pos_proto::{
    read_frame, write_frame, Client, Hello, LotteryOutcome, Request, Response, Welcome,
    PROTOCOL_VERSION,
};
use posload::nc::{read_until, register, Validator};
use posload::{cpu_time, rss_kib, stats::summary};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
#[command(about = "Load generator for posd")]
struct Cli {
    /// posd's validator address.
    #[arg(long, default_value = "127.0.0.1:9000", global = true)]
    addr: SocketAddr,
    /// posd's admin socket (forces rounds, reads posd's pid for RSS).
    #[arg(long, default_value = "./posd-data/admin.sock", global = true)]
    socket: PathBuf,
    #[command(subcommand)]
    run: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Durable registrations per second from concurrent clients.
    Register {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        total: usize,
    },
    /// BPM lines per second over many registered connections.
    Propose {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Lines each connection sends (pipelined).
        #[arg(long, default_value_t = 200)]
        lines: usize,
    },
    /// Time from a commit until the last connected client has the block.
    Broadcast {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Every connection proposes each round (the tutorial's flow), instead
        /// of one proposer beside connections - 1 listeners.
        #[arg(long)]
        all_propose: bool,
    },
    /// A registration flood beside one honest proposer: registrations/s the
    /// flood gets, how long forced rounds take, whether the honest one is served.
    Flood {
        /// Flooding connections, each registering again as soon as posd answers.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Rounds forced over the admin socket, one a second.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Each flooder proposes 72.5 after registering, which slashes it.
        #[arg(long)]
        slash: bool,
        /// Admin protocol version offered (1 for a posd before lottery v2;
        /// forcing a round reads the same on both).
        #[arg(long, default_value_t = PROTOCOL_VERSION)]
        admin_protocol: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Scenario::Flood {
        connections,
        rounds,
        slash,
        admin_protocol,
    } = cli.run
    {
        let admin = RawAdmin::connect(&cli.socket, admin_protocol).await?;
        return flood(cli.addr, admin, connections, rounds, slash).await;
    }
    let mut admin = Client::connect(&cli.socket, "posload")
        .await
        .with_context(|| format!("admin socket {}", cli.socket.display()))?;
    let pid = match admin.ask(&Request::Status).await? {
        Response::Status(s) => s.pid,
        other => bail!("unexpected status answer: {other:?}"),
    };
    match cli.run {
        Scenario::Register { clients, total } => registrations(cli.addr, clients, total).await?,
        Scenario::Propose { connections, lines } => proposals(cli.addr, connections, lines).await?,
        Scenario::Broadcast {
            connections,
            rounds,
            all_propose,
        } => broadcast(cli.addr, &mut admin, connections, rounds, all_propose, pid).await?,
        Scenario::Flood { .. } => unreachable!("handled above"),
    }
    println!("posd rss: {} KiB", rss_kib(pid).unwrap_or(0));
    Ok(())
}

async fn registrations(addr: SocketAddr, clients: usize, total: usize) -> anyhow::Result<()> {
    let left = Arc::new(AtomicU64::new(total as u64));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let left = Arc::clone(&left);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let t = Instant::now();
                    register(addr, 10).await?;
                    lat.push(t.elapsed());
                }
                anyhow::Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    let (p50, p99, max) = summary(&mut lat);
    println!(
        "registrations: {total} from {clients} clients in {secs:.2}s = {:.0}/s (latency p50 {p50:?}, p99 {p99:?}, max {max:?})",
        total as f64 / secs
    );
    Ok(())
}

/// Registers `n` validators, `concurrency` at a time.
async fn many(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Validator>> {
    let mut out = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        if pending.len() >= 200 {
            out.push(pending.join_next().await.expect("non-empty")??);
        }
        pending.spawn(register(addr, 10));
    }
    while let Some(v) = pending.join_next().await {
        out.push(v??);
    }
    for v in &mut out {
        // Consume the BPM prompt that follows the registration.
        let mut prompt = [0u8; 16];
        v.rd.read_exact(&mut prompt).await?;
    }
    Ok(out)
}

async fn proposals(addr: SocketAddr, connections: usize, lines: usize) -> anyhow::Result<()> {
    let validators = many(addr, connections).await?;
    let batch: String = (0..lines).map(|i| format!("{}\n", 60 + i % 100)).collect();
    let batch = Arc::new(batch);
    let start = Instant::now();
    let tasks: Vec<_> = validators
        .into_iter()
        .map(|mut v| {
            let batch = Arc::clone(&batch);
            tokio::spawn(async move {
                let writer = async {
                    v.wr.write_all(batch.as_bytes()).await?;
                    anyhow::Ok(())
                };
                // Each accepted proposal is confirmed on a line of its own:
                // "proposal <bpm> for block <n>; round ends in ...".
                let reader = async {
                    let mut line = Vec::with_capacity(128);
                    let mut confirmed = 0;
                    while confirmed < lines {
                        line.clear();
                        let n = v.rd.read_until(b'\n', &mut line).await?;
                        anyhow::ensure!(n > 0, "posd closed the connection");
                        if line.windows(9).any(|w| w == b"proposal ") {
                            confirmed += 1;
                        }
                    }
                    anyhow::Ok(())
                };
                tokio::try_join!(writer, reader)?;
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let total = connections * lines;
    println!(
        "proposals: {total} BPM lines over {connections} connections in {secs:.2}s = {:.0} lines/s",
        total as f64 / secs
    );
    Ok(())
}

async fn broadcast(
    addr: SocketAddr,
    admin: &mut Client,
    connections: usize,
    rounds: usize,
    all_propose: bool,
    pid: u32,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut validators = many(addr, connections).await?;
    println!(
        "connected and registered {connections} validators in {:.2}s; posd rss {} KiB",
        t.elapsed().as_secs_f64(),
        rss_kib(pid).unwrap_or(0)
    );
    // One proposer that only proposes, or every connection proposing and reading.
    let mut proposer = if all_propose {
        None
    } else {
        Some(validators.pop().expect("at least one connection"))
    };
    let readers_n = validators.len();
    let (arrivals, confirmed) = (Arc::new(Arrivals::default()), Arc::new(AtomicU64::new(0)));
    let (mut writers, mut readers) = spawn_readers(validators, &arrivals, &confirmed);
    let (mut commit_reply, mut after_request, mut proposing) = (Vec::new(), Vec::new(), Vec::new());
    let cpu_before = cpu_time(pid);
    for round in 1..=rounds {
        let started = Instant::now();
        match &mut proposer {
            // `status` after the proposal: its reply proves the proposal was taken.
            Some(p) => {
                p.wr.write_all(b"72\nstatus\n").await?;
                read_until(&mut p.rd, "height: ").await?;
            }
            // Every reader proposes; its confirmation line proves it was taken.
            None => {
                for wr in &mut writers {
                    wr.write_all(b"72\n").await?;
                }
                let want = (round * readers_n) as u64;
                wait(
                    || confirmed.load(Ordering::Relaxed) >= want,
                    || {
                        format!(
                            "only {} of {want} proposals confirmed",
                            confirmed.load(Ordering::Relaxed)
                        )
                    },
                )
                .await?;
            }
        }
        proposing.push(started.elapsed());
        let asked = Instant::now();
        let index = match admin.ask(&Request::LotteryRun).await? {
            Response::Lottery(LotteryOutcome::Committed { block, .. }) => block.index,
            other => bail!("round did not commit: {other:?}"),
        };
        let committed = Instant::now();
        // Wait until every reader has this block.
        wait(
            || arrivals.count(index) >= readers_n,
            || format!("only {} clients got block {index}", arrivals.count(index)),
        )
        .await?;
        commit_reply.push(committed - asked);
        after_request.push(arrivals.take_last(index).saturating_duration_since(asked));
        if let Some(p) = &mut proposer {
            // Drain the proposer's own copy.
            read_until(&mut p.rd, "{\"Index\":").await?;
        }
    }
    let cpu = cpu_time(pid)
        .zip(cpu_before)
        .map_or(Duration::ZERO, |(after, before)| after - before);
    let (c50, _, cmax) = summary(&mut commit_reply);
    let (r50, r99, rmax) = summary(&mut after_request);
    let (p50, _, _) = summary(&mut proposing);
    let who = if all_propose {
        format!("{readers_n} clients, every one proposing (proposals confirmed p50 {p50:?})")
    } else {
        format!("{readers_n} clients, one other proposing")
    };
    // posd announces before it answers posctl, so "request -> last client"
    // bounds "commit -> last client" from above; it includes the flush.
    println!(
        "broadcast to {who} over {rounds} rounds: lottery run request -> last client has the block: \
         p50 {r50:?}, p99 {r99:?}, max {rmax:?} (request -> commit reply p50 {c50:?}, max {cmax:?}); \
         posd CPU {:?} per round, proposals included",
        cpu / rounds as u32
    );
    readers.abort_all();
    Ok(())
}

/// A reader task per validator, recording when each block arrives and
/// counting proposal confirmations; returns the write halves (dropping one
/// would hang up) and the readers.
fn spawn_readers(
    validators: Vec<Validator>,
    arrivals: &Arc<Arrivals>,
    confirmed: &Arc<AtomicU64>,
) -> (
    Vec<tokio::net::tcp::OwnedWriteHalf>,
    tokio::task::JoinSet<()>,
) {
    let mut writers = Vec::with_capacity(validators.len());
    let mut readers = tokio::task::JoinSet::new();
    for v in validators {
        let (arrivals, confirmed) = (Arc::clone(arrivals), Arc::clone(confirmed));
        writers.push(v.wr);
        let mut rd = v.rd;
        readers.spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if let Some(index) = block_index(&line) {
                    arrivals.push(index, Instant::now());
                } else if line.contains("proposal ") {
                    confirmed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    (writers, readers)
}

/// When each reader saw each block.
#[derive(Default)]
struct Arrivals(Mutex<Vec<(u64, Instant)>>);

impl Arrivals {
    fn push(&self, index: u64, at: Instant) {
        self.lock().push((index, at));
    }

    fn count(&self, index: u64) -> usize {
        self.lock().iter().filter(|(i, _)| *i == index).count()
    }

    /// The last arrival of block `index`, forgetting that block's arrivals.
    fn take_last(&self, index: u64) -> Instant {
        let mut seen = self.lock();
        let last = seen
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, t)| *t)
            .max();
        seen.retain(|(i, _)| *i != index);
        last.expect("counted before")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The index of the block a line announces, if it is a block's JSON line.
fn block_index(line: &str) -> Option<u64> {
    line.strip_prefix("{\"Index\":")?
        .split(',')
        .next()?
        .parse()
        .ok()
}

/// Polls `done` every millisecond for up to 30 s; `what` says what was missing.
async fn wait(done: impl Fn() -> bool, what: impl Fn() -> String) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// The admin socket spoken by hand, offering any protocol version: forcing a
/// round (`LotteryRun` -> `Lottery`) reads the same in versions 1 and 2, so
/// one flood compares a posd from before lottery v2 with one after it.
struct RawAdmin {
    rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

impl RawAdmin {
    async fn connect(path: &std::path::Path, protocol: u32) -> anyhow::Result<RawAdmin> {
        let stream = UnixStream::connect(path)
            .await
            .with_context(|| format!("admin socket {}", path.display()))?;
        let (rd, wr) = stream.into_split();
        let mut admin = RawAdmin {
            rd: BufReader::new(rd),
            wr,
        };
        let hello = Hello {
            protocol,
            client: "posload flood".into(),
        };
        write_frame(&mut admin.wr, &hello).await?;
        match read_frame(&mut admin.rd).await? {
            Some(Welcome::Accepted { .. }) => Ok(admin),
            Some(Welcome::Refused(why)) => bail!("posd refused protocol {protocol}: {why}"),
            None => bail!("posd closed the admin connection"),
        }
    }

    /// Forces a round; the committed block's index, or `None` without candidates.
    async fn round(&mut self) -> anyhow::Result<Option<u64>> {
        write_frame(&mut self.wr, &Request::LotteryRun).await?;
        match read_frame(&mut self.rd).await? {
            Some(Response::Lottery(LotteryOutcome::Committed { block, .. })) => {
                Ok(Some(block.index))
            }
            Some(Response::Lottery(LotteryOutcome::NoCandidates)) => Ok(None),
            other => bail!("unexpected answer to lottery run: {other:?}"),
        }
    }
}

/// What the honest proposer's reader saw.
enum Seen {
    Status,
    Block(u64),
}

async fn flood(
    addr: SocketAddr,
    mut admin: RawAdmin,
    connections: usize,
    rounds: usize,
    slash: bool,
) -> anyhow::Result<()> {
    // The honest validator registers before the flood takes the source IP's quota.
    let honest = register(addr, 10).await?;
    let (mut rd, mut wr) = (honest.rd, honest.wr);
    let lines = Arc::new(AtomicU64::new(0));
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let reader = {
        let lines = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut line = String::new();
            while rd.read_line(&mut line).await.unwrap_or(0) > 0 {
                lines.fetch_add(1, Ordering::Relaxed);
                let event = if line.contains("height: ") {
                    Some(Seen::Status)
                } else {
                    block_index(&line).map(Seen::Block)
                };
                if event.is_some_and(|e| seen_tx.send(e).is_err()) {
                    return;
                }
                line.clear();
            }
        })
    };

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut flooders = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (stop, accepted, refused) = (stop.clone(), accepted.clone(), refused.clone());
        flooders.spawn(register_until(addr, slash, stop, (accepted, refused)));
    }

    let start = Instant::now();
    let (mut close, mut status_wait, mut delivery) = (Vec::new(), Vec::new(), Vec::new());
    let (mut missed, mut empty) = (0, 0);
    let patience = Duration::from_secs(10);
    for round in 1..=rounds {
        tokio::time::sleep_until((start + Duration::from_secs(round as u64)).into()).await;
        // `status` after the proposal: its reply proves the proposal was taken.
        let asked = Instant::now();
        wr.write_all(b"72\nstatus\n").await?;
        wait_for(&mut seen, patience, |e| matches!(e, Seen::Status))
            .await
            .context("the honest validator's status went unanswered")?;
        status_wait.push(asked.elapsed());
        let asked = Instant::now();
        let Some(index) = admin.round().await? else {
            empty += 1;
            continue;
        };
        close.push(asked.elapsed());
        match wait_for(
            &mut seen,
            patience,
            |e| matches!(e, Seen::Block(i) if *i == index),
        )
        .await
        {
            Ok(()) => delivery.push(asked.elapsed()),
            Err(_) => missed += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    flooders.abort_all();
    reader.abort();
    let (accepted, refused) = (
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    let (c50, c99, cmax) = summary(&mut close);
    let (d50, d99, _) = summary(&mut delivery);
    let (s50, s99, _) = summary(&mut status_wait);
    println!(
        "flood of {connections} connections{} over {secs:.1}s: {:.0} registrations/s accepted, {:.0}/s refused",
        if slash { " (each slashed)" } else { "" },
        accepted as f64 / secs,
        refused as f64 / secs,
    );
    println!(
        "rounds: {} committed, {empty} without candidates; close (request -> reply) p50 {c50:?}, p99 {c99:?}, max {cmax:?}",
        close.len()
    );
    println!(
        "honest validator: {} of {} blocks received ({missed} not within {patience:?}), request -> block p50 {d50:?}, p99 {d99:?}; \
         status answered p50 {s50:?}, p99 {s99:?}; {:.1} lines/s",
        delivery.len(),
        close.len(),
        lines.load(Ordering::Relaxed) as f64 / secs
    );
    Ok(())
}

/// One flooder: registers again and again (and, with `slash`, gets each
/// new validator slashed) until `stop`, counting registrations accepted and refused.
async fn register_until(
    addr: SocketAddr,
    slash: bool,
    stop: Arc<std::sync::atomic::AtomicBool>,
    (accepted, refused): (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    while !stop.load(Ordering::Relaxed) {
        match register(addr, 10).await {
            Ok(mut v) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                if slash {
                    // posd slashes, says so and hangs up.
                    let _ = v.wr.write_all(b"72.5\n").await;
                    let _ = v.rd.read_to_end(&mut Vec::new()).await;
                }
            }
            Err(_) => {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Waits up to `patience` for an event `want` accepts, dropping others.
async fn wait_for(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    patience: Duration,
    want: impl Fn(&Seen) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(patience, async {
        while let Some(e) = seen.recv().await {
            if want(&e) {
                return Ok(());
            }
        }
        bail!("the honest validator's connection closed")
    })
    .await
    .context("timed out")?
}
