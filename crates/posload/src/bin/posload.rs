//! posload: drive a running posd like many `nc` users at once and report
//! what they would feel. Run posd with a long --round-interval so that only
//! posload's forced rounds (over the admin socket) close rounds.
//!
//!   posload register  --clients 100 --total 20000
//!   posload propose   --connections 1000 --lines 200
//!   posload broadcast --connections 10000 --rounds 20 --socket ./posd-data/admin.sock
//!   posload broadcast --connections 10000 --rounds 20 --all-propose
//!   posload broadcast --connections 10000 --rounds 20 --all-propose --floor
//!   posload floor --listen 127.0.0.1:9100     (triggers on stdin)
//!   posload --socket LEADER.sock broadcast --nodes A,B,C --node-sockets a,b,c --connections 10000 --floor
//!   posload flood     --connections 100 --rounds 20 [--slash]

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pos_proto::{
    read_frame, write_frame, Client, Hello, LotteryOutcome, Request, Response, Welcome,
    PROTOCOL_VERSION,
};
use posload::nc::{read_until, register, Validator};
use posload::{cpu_since, cpu_time, rss_kib, stats::summary};
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
        /// Then run the fan-out floor (`posload floor`, a child process)
        /// as many rounds to as many connections, once posd's are closed,
        /// and report posd ÷ floor.
        #[arg(long)]
        floor: bool,
        /// Run the floor before posd instead of after (implies `--floor`):
        /// alternating the order keeps whatever the first run leaves behind
        /// (sockets in TIME_WAIT, a warmer page cache) off one side only.
        #[arg(long)]
        floor_first: bool,
        /// Also print each round's figures, in milliseconds, in order.
        #[arg(long)]
        each: bool,
        /// A cluster: `--connections` clients on each of these nodes' validator
        /// ports (each set in a `crowd` child process), all proposing; rounds
        /// are forced at `--socket`. The floor then serves as many clients
        /// from `--floor-processes` processes.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<SocketAddr>,
        /// The nodes' admin sockets, for their RSS and CPU time.
        #[arg(long, value_delimiter = ',')]
        node_sockets: Vec<PathBuf>,
        /// How many processes the floor serves a cluster's clients from (one
        /// may hold 20,000 sockets here).
        #[arg(long, default_value_t = 2)]
        floor_processes: usize,
    },
    /// Clients for `broadcast --nodes` in a child process, driven over stdin
    /// (posload::crowd).
    #[command(hide = true)]
    Crowd {
        #[arg(long)]
        connections: usize,
    },
    /// The fan-out floor: accepts, answers the two prompts, and for each
    /// block index read on stdin writes one ready-made announcement to every
    /// connection, nothing else.
    Floor {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
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
    if let Scenario::Floor { listen } = cli.run {
        return posload::floor::serve(listen).await;
    }
    if let Scenario::Crowd { connections } = cli.run {
        return crowd(cli.addr, connections).await;
    }
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
            floor,
            floor_first,
            each,
            nodes,
            node_sockets,
            floor_processes,
        } => {
            let run = Broadcast {
                connections,
                rounds,
                all_propose,
                each,
                pid,
            };
            if nodes.is_empty() {
                let floor = match (floor_first, floor) {
                    (true, _) => Some(FloorOrder::First),
                    (false, true) => Some(FloorOrder::After),
                    (false, false) => None,
                };
                run.measure(cli.addr, &mut admin, floor).await?
            } else {
                let cluster = Cluster {
                    nodes,
                    pids: node_pids(&node_sockets).await?,
                    floor_processes: floor_processes.max(1),
                };
                run.measure_cluster(&cluster, &mut admin, floor).await?
            }
        }
        Scenario::Flood { .. } | Scenario::Floor { .. } | Scenario::Crowd { .. } => {
            unreachable!("handled above")
        }
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

/// `posload broadcast`: one block at a time to every connected client.
struct Broadcast {
    connections: usize,
    rounds: usize,
    all_propose: bool,
    /// Print each round's figures too.
    each: bool,
    /// posd's pid, for its CPU time and RSS.
    pid: u32,
}

/// When the floor runs beside a standalone posd.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FloorOrder {
    First,
    After,
}

/// Each round's figures on one line, in milliseconds.
fn print_each(what: &str, samples: &[Duration]) {
    let ms: Vec<String> = samples
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect();
    println!("  {what}, ms, each round in order: {}", ms.join(" "));
}

/// One server's fan-outs, each timed from the request (or trigger) that
/// started it: when its first and last client had the block, per round, and
/// when each client had it, every round's pooled. The issue measured the
/// spread over clients; the last client is the stricter, noisier figure;
/// the first shows how long the server took to start writing.
#[derive(Default)]
struct Fanout {
    first: Vec<Duration>,
    last: Vec<Duration>,
    each_client: Vec<Duration>,
}

/// A [`Fanout`]'s figures: p50, p99 and max of the last client; p50 and
/// p99 of each client; p50 of the first.
struct Spread {
    last: (Duration, Duration, Duration),
    each: (Duration, Duration),
    first: Duration,
}

impl Fanout {
    fn record(&mut self, asked: Instant, arrived: &[Instant]) {
        let late = |at: &Instant| at.saturating_duration_since(asked);
        let start = self.each_client.len();
        self.each_client.extend(arrived.iter().map(late));
        let this_round = &self.each_client[start..];
        self.first
            .push(this_round.iter().min().copied().unwrap_or_default());
        self.last
            .push(this_round.iter().max().copied().unwrap_or_default());
    }

    /// Sorts the samples in place.
    fn spread(&mut self) -> Spread {
        let (c50, c99, _) = summary(&mut self.each_client);
        Spread {
            last: summary(&mut self.last),
            each: (c50, c99),
            first: summary(&mut self.first).0,
        }
    }
}

/// Clients of one server, each reading every line it sends.
struct Audience {
    arrivals: Arc<Arrivals>,
    confirmed: Arc<AtomicU64>,
    /// Write halves: dropping one would hang up.
    writers: Vec<tokio::net::tcp::OwnedWriteHalf>,
    readers: tokio::task::JoinSet<()>,
}

impl Audience {
    fn listen(validators: Vec<Validator>) -> Audience {
        let (arrivals, confirmed) = (Arc::new(Arrivals::default()), Arc::new(AtomicU64::new(0)));
        let (writers, readers) = spawn_readers(validators, &arrivals, &confirmed);
        Audience {
            arrivals,
            confirmed,
            writers,
            readers,
        }
    }

    /// Every client proposes; returns once posd has confirmed all of them
    /// (`round` rounds' worth so far).
    async fn propose(&mut self, round: usize) -> anyhow::Result<()> {
        for wr in &mut self.writers {
            wr.write_all(b"72\n").await?;
        }
        let want = (round * self.writers.len()) as u64;
        let confirmed = &self.confirmed;
        wait(
            || confirmed.load(Ordering::Relaxed) >= want,
            || {
                format!(
                    "only {} of {want} proposals confirmed",
                    confirmed.load(Ordering::Relaxed)
                )
            },
        )
        .await
    }

    /// Waits until every client has block `index`; when each had it.
    async fn delivered(&self, index: u64) -> anyhow::Result<Vec<Instant>> {
        let all = self.writers.len();
        wait(
            || self.arrivals.count(index) >= all,
            || {
                format!(
                    "only {} clients got block {index}",
                    self.arrivals.count(index)
                )
            },
        )
        .await?;
        Ok(self.arrivals.take(index))
    }
}

impl Broadcast {
    async fn measure(
        &self,
        addr: SocketAddr,
        admin: &mut Client,
        floor: Option<FloorOrder>,
    ) -> anyhow::Result<()> {
        let (connections, rounds, pid) = (self.connections, self.rounds, self.pid);
        let floor_first = match floor {
            Some(FloorOrder::First) => Some(floor_rounds(connections, rounds, self.each).await?),
            _ => None,
        };
        let t = Instant::now();
        let mut validators = many(addr, connections).await?;
        println!(
            "connected and registered {connections} validators in {:.2}s; posd rss {} KiB",
            t.elapsed().as_secs_f64(),
            rss_kib(pid).unwrap_or(0)
        );
        // One proposer that only proposes, or every connection proposing and reading.
        let mut proposer = if self.all_propose {
            None
        } else {
            Some(validators.pop().expect("at least one connection"))
        };
        let mut posd = Audience::listen(validators);
        let readers_n = posd.writers.len();
        let (mut commit_reply, mut after_request, mut proposing) =
            (Vec::new(), Fanout::default(), Vec::new());
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
                None => posd.propose(round).await?,
            }
            proposing.push(started.elapsed());
            let asked = Instant::now();
            let index = match admin.ask(&Request::LotteryRun).await? {
                Response::Lottery(LotteryOutcome::Committed { block, .. }) => block.index,
                other => bail!("round did not commit: {other:?}"),
            };
            let committed = Instant::now();
            let arrived = posd.delivered(index).await?;
            commit_reply.push(committed - asked);
            after_request.record(asked, &arrived);
            if let Some(p) = &mut proposer {
                // Drain the proposer's own copy.
                read_until(&mut p.rd, "{\"Index\":").await?;
            }
        }
        let cpu = cpu_since(pid, cpu_before);
        if self.each {
            print_each("posd, request -> last client", &after_request.last);
            print_each("posd, request -> commit reply", &commit_reply);
        }
        let (c50, _, cmax) = summary(&mut commit_reply);
        let Spread {
            last: (r50, r99, rmax),
            each: (e50, e99),
            first: s50,
        } = after_request.spread();
        let (p50, _, _) = summary(&mut proposing);
        let who = if self.all_propose {
            format!("{readers_n} clients, every one proposing (proposals confirmed p50 {p50:?})")
        } else {
            format!("{readers_n} clients, one other proposing")
        };
        // posd announces before it answers posctl, so "request -> last client"
        // bounds "commit -> last client" from above; it includes the flush.
        println!(
            "broadcast to {who} over {rounds} rounds: lottery run request -> last client has the block: \
             p50 {r50:?}, p99 {r99:?}, max {rmax:?}; each client: p50 {e50:?}, p99 {e99:?}; \
             first client p50 {s50:?} (request -> commit reply p50 {c50:?}, max {cmax:?}); posd CPU {:?} per round, proposals included",
            cpu / rounds as u32
        );
        posd.readers.abort_all();
        // posd's connections close first: one process may not hold both sets.
        drop((posd, proposer));
        let at_floor = match floor {
            Some(FloorOrder::After) => Some(floor_rounds(connections, rounds, self.each).await?),
            _ => floor_first,
        };
        if let Some(mut at_floor) = at_floor {
            let Spread {
                last: (f50, f99, fmax),
                each: (g50, g99),
                first: h50,
            } = at_floor.spread();
            let ratio = |posd: Duration, floor: Duration| {
                posd.as_secs_f64() / floor.as_secs_f64().max(1e-9)
            };
            println!(
                "floor, {connections} clients over {rounds} rounds: trigger -> last client has the block: \
                 p50 {f50:?}, p99 {f99:?}, max {fmax:?}; each client: p50 {g50:?}, p99 {g99:?}; \
                 first client p50 {h50:?}; posd ÷ floor: last client p50 {:.2}, p99 {:.2}; each client p50 {:.2}, p99 {:.2}",
                ratio(r50, f50),
                ratio(r99, f99),
                ratio(e50, g50),
                ratio(e99, g99)
            );
        }
        Ok(())
    }
}

/// `broadcast --nodes`: the nodes and how to measure them.
struct Cluster {
    nodes: Vec<SocketAddr>,
    /// Each node's pid, when its admin socket was given.
    pids: Vec<u32>,
    floor_processes: usize,
}

/// The pids of the posd behind each admin socket.
async fn node_pids(sockets: &[PathBuf]) -> anyhow::Result<Vec<u32>> {
    let mut pids = Vec::with_capacity(sockets.len());
    for path in sockets {
        let mut admin = Client::connect(path, "posload")
            .await
            .with_context(|| format!("admin socket {}", path.display()))?;
        match admin.ask(&Request::Status).await? {
            Response::Status(s) => pids.push(s.pid),
            other => bail!(
                "unexpected status answer from {}: {other:?}",
                path.display()
            ),
        }
    }
    Ok(pids)
}

/// Each pid's RSS in KiB, 0 where unknown.
fn rss_all(pids: &[u32]) -> Vec<u64> {
    pids.iter().map(|p| rss_kib(*p).unwrap_or(0)).collect()
}

impl Broadcast {
    /// `--connections` clients on every node, each proposing every round;
    /// a round forced at `admin`, timed until the last client of any node
    /// has the block. Then the floor, with as many clients in all.
    async fn measure_cluster(
        &self,
        cluster: &Cluster,
        admin: &mut Client,
        with_floor: bool,
    ) -> anyhow::Result<()> {
        let (connections, rounds) = (self.connections, self.rounds);
        let total = connections * cluster.nodes.len();
        let rss_before = rss_all(&cluster.pids);
        let t = Instant::now();
        let mut crowds = Vec::with_capacity(cluster.nodes.len());
        for addr in &cluster.nodes {
            crowds.push(posload::crowd::Crowd::spawn(*addr, connections)?);
        }
        for c in &mut crowds {
            c.ready().await?;
        }
        let rss_after = rss_all(&cluster.pids);
        println!(
            "connected and registered {total} validators, {connections} on each of {} nodes, in {:.2}s",
            cluster.nodes.len(),
            t.elapsed().as_secs_f64()
        );
        for (i, (before, after)) in rss_before.iter().zip(&rss_after).enumerate() {
            println!(
                "  node {} rss {before} -> {after} KiB: {:.2} KiB per connection",
                i + 1,
                after.saturating_sub(*before) as f64 / connections as f64
            );
        }
        let cpu_before: Vec<_> = cluster.pids.iter().map(|p| cpu_time(*p)).collect();
        let mut times = Vec::with_capacity(rounds);
        let mut per_node = vec![Vec::with_capacity(rounds); crowds.len()];
        for _ in 0..rounds {
            for c in &mut crowds {
                c.propose().await?;
            }
            for c in &mut crowds {
                c.proposed().await?;
            }
            let asked = posload::crowd::wall_nanos();
            let index = match admin.ask(&Request::LotteryRun).await? {
                Response::Lottery(LotteryOutcome::Committed { block, .. }) => block.index,
                other => bail!("round did not commit: {other:?}"),
            };
            let at = delivered_each(&mut crowds, index).await?;
            for (node, at) in per_node.iter_mut().zip(&at) {
                node.push(Duration::from_nanos(at.saturating_sub(asked) as u64));
            }
            let last = at.into_iter().max().unwrap_or(asked);
            times.push(Duration::from_nanos(last.saturating_sub(asked) as u64));
        }
        let (r50, r99, rmax) = summary(&mut times);
        println!(
            "broadcast to {total} clients on {} nodes, every one proposing, over {rounds} rounds: \
             lottery run request -> last client has the block: p50 {r50:?}, p99 {r99:?}, max {rmax:?}",
            cluster.nodes.len()
        );
        let nodes = cluster.pids.iter().zip(cpu_before).zip(&mut per_node);
        for (i, ((pid, before), delivered)) in nodes.enumerate() {
            let cpu = cpu_since(*pid, before);
            let (n50, n99, _) = summary(delivered);
            println!(
                "  node {}: its last client p50 {n50:?}, p99 {n99:?}; CPU {:?} per round, proposals included; rss {} KiB",
                i + 1,
                cpu / rounds as u32,
                rss_kib(*pid).unwrap_or(0)
            );
        }
        if with_floor {
            drop(crowds);
            let mut floor = floor_crowds(total, rounds, cluster.floor_processes).await?;
            let (f50, f99, fmax) = summary(&mut floor);
            let ratio = |posd: Duration, floor: Duration| {
                posd.as_secs_f64() / floor.as_secs_f64().max(1e-9)
            };
            println!(
                "floor, {total} clients from {} processes over {rounds} rounds: trigger -> last client has the block: \
                 p50 {f50:?}, p99 {f99:?}, max {fmax:?}; cluster ÷ floor: p50 {:.2}, p99 {:.2}",
                cluster.floor_processes,
                ratio(r50, f50),
                ratio(r99, f99)
            );
        }
        Ok(())
    }
}

/// When the last client of each crowd had block `index`, in wall-clock nanos.
async fn delivered_each(
    crowds: &mut [posload::crowd::Crowd],
    index: u64,
) -> anyhow::Result<Vec<u128>> {
    for c in crowds.iter_mut() {
        c.watch(index).await?;
    }
    let mut at = Vec::with_capacity(crowds.len());
    for c in crowds.iter_mut() {
        at.push(c.delivered().await?);
    }
    Ok(at)
}

/// The floor's fan-out to `total` clients split over `processes` floors
/// (each with its clients in a crowd): trigger -> last client, per round.
async fn floor_crowds(
    total: usize,
    rounds: usize,
    processes: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut floors = Vec::with_capacity(processes);
    let mut crowds = Vec::with_capacity(processes);
    for i in 0..processes {
        let floor = posload::floor::Floor::spawn().await?;
        let share = total / processes + usize::from(i < total % processes);
        crowds.push(posload::crowd::Crowd::spawn(floor.addr, share)?);
        floors.push(floor);
    }
    for c in &mut crowds {
        c.ready().await?;
    }
    let rss: Vec<_> = floors
        .iter()
        .map(|f| f.pid().and_then(rss_kib).unwrap_or(0))
        .collect();
    println!("floor: {total} connected over {processes} processes; floor rss {rss:?} KiB");
    let mut times = Vec::with_capacity(rounds);
    for index in 1..=rounds as u64 {
        let asked = posload::crowd::wall_nanos();
        for f in &mut floors {
            f.start(index).await?;
        }
        for f in &mut floors {
            f.sent(index).await?;
        }
        let last = delivered_each(&mut crowds, index).await?.into_iter().max();
        times.push(Duration::from_nanos(
            last.unwrap_or(asked).saturating_sub(asked) as u64,
        ));
    }
    Ok(times)
}

/// `posload crowd`: registers `connections` clients of `addr`, then serves
/// the requests of posload::crowd on stdin.
async fn crowd(addr: SocketAddr, connections: usize) -> anyhow::Result<()> {
    let mut audience = Audience::listen(many(addr, connections).await?);
    println!("ready");
    let mut requests = BufReader::new(tokio::io::stdin()).lines();
    let mut round = 0;
    while let Some(line) = requests.next_line().await? {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["propose"] => {
                round += 1;
                audience.propose(round).await?;
                println!("proposed");
            }
            ["block", index] => {
                let arrived = audience.delivered(index.parse()?).await?;
                let last = arrived.iter().max().context("a crowd of no clients")?;
                let at = posload::crowd::wall_nanos() - last.elapsed().as_nanos();
                println!("delivered {index} {at}");
            }
            _ => bail!("crowd: unknown request {line:?}"),
        }
    }
    Ok(())
}

/// The same fan-out from `posload floor`, from each trigger.
async fn floor_rounds(connections: usize, rounds: usize, each: bool) -> anyhow::Result<Fanout> {
    let mut floor = posload::floor::Floor::spawn().await?;
    let audience = Audience::listen(many(floor.addr, connections).await?);
    let rss = floor.pid().and_then(rss_kib).unwrap_or(0);
    println!(
        "floor at {}: {connections} connected; floor rss {rss} KiB",
        floor.addr
    );
    let mut times = Fanout::default();
    let cpu_before = floor.pid().and_then(cpu_time);
    for index in 1..=rounds as u64 {
        let asked = Instant::now();
        floor.trigger(index).await?;
        times.record(asked, &audience.delivered(index).await?);
    }
    let cpu = floor
        .pid()
        .map_or(Duration::ZERO, |pid| cpu_since(pid, cpu_before));
    println!("floor CPU {:?} per round", cpu / rounds as u32);
    if each {
        print_each("floor, trigger -> last client", &times.last);
    }
    Ok(times)
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

    /// Every arrival of block `index`, forgotten here.
    fn take(&self, index: u64) -> Vec<Instant> {
        let mut seen = self.lock();
        let taken = seen
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, t)| *t)
            .collect();
        seen.retain(|(i, _)| *i != index);
        taken
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

/// Polls `done` every millisecond for up to 180 s (a cluster's first round
/// records 30,000 first proposals through Raft); `what` says what was missing.
async fn wait(done: impl Fn() -> bool, what: impl Fn() -> String) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
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
