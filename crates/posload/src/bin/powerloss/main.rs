//! powerloss: cuts the power under a loaded posd again and again and checks
//! that everything posd acknowledged survived (SPEC §7). posd's data directory
//! lives on LazyFS. A cut is SIGKILL to posd and then LazyFS dropping every
//! write not yet synced, or a torn write (only some parts of one write reach
//! the disk, then LazyFS dies). Then LazyFS is mounted afresh, posd restarts
//! on the same directory: every registration, slashing and block it
//! acknowledged must be there, balances must match the chain, and
//! `posctl chain verify` must pass.
//!
//! Needs root and /dev/fuse; tests/powerloss/run.sh builds LazyFS and runs it:
//!
//!   powerloss --lazyfs /var/tmp/posd-lazyfs/lazyfs/build/lazyfs --work /var/tmp/pl.1 --cycles 5
//!
//! With `--cluster`, the cuts hit one node of a 3-node cluster ([`cluster`]).

mod cluster;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use pos_core::{Address, Block, BlockJson, Digest, Status, Validator};
use pos_proto::{Client, LotteryOutcome, Request, Response};
use pos_testkit::Posd;
use posload::lazyfs::{die_with_parent, LazyFs};
use posload::nc::{read_until, register};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(about = "Power-loss test for posd on LazyFS (needs root and /dev/fuse)")]
struct Cli {
    /// The LazyFS binary.
    #[arg(long)]
    lazyfs: PathBuf,
    /// An empty directory for LazyFS's backing root, mount point, FIFOs and
    /// log, and posd's admin socket. Keep its path short: LazyFS reads fault
    /// commands, which name files under it, in 100-byte chunks.
    #[arg(long)]
    work: PathBuf,
    /// Power cuts.
    #[arg(long, env = "POSD_POWERLOSS_CYCLES", default_value_t = 5)]
    cycles: u32,
    /// Seeds the cut moments and the torn writes (default: from the clock; printed).
    #[arg(long, env = "POSD_POWERLOSS_SEED")]
    seed: Option<u64>,
    /// Faults, one per cycle in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "clear,torn-op,clear,torn-seq"
    )]
    faults: Vec<Fault>,
    /// Connections registering validators at once.
    #[arg(long, default_value_t = 32)]
    clients: u64,
    /// LazyFS's cache in MiB, at least: it must hold all posd reads and
    /// writes in one cycle (it does not evict), so it grows with the data.
    #[arg(long, default_value_t = 512)]
    cache_mib: u64,
    /// The posd binary (default: beside this one).
    #[arg(long)]
    posd: Option<PathBuf>,
    /// The posctl binary (default: beside this one).
    #[arg(long)]
    posctl: Option<PathBuf>,
    /// Three posd nodes in a cluster, one on LazyFS; cuts are SIGKILL +
    /// clear-cache on that node, or a torn write of its Raft log
    /// (`--faults` does not apply).
    #[arg(long)]
    cluster: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Fault {
    /// SIGKILL posd, then LazyFS drops every unsynced write.
    Clear,
    /// The next write to sled's log or to posd's acknowledgement record
    /// reaches the disk only in parts, then LazyFS dies.
    TornOp,
    /// Of the next run of writes to sled's log between syncs, only one
    /// reaches the disk, then LazyFS dies (the writes were reordered).
    TornSeq,
}

/// What posd acknowledged: a `Validator address:` reply, a slashing reply or
/// announcement, a block announcement or `lottery run` reply.
#[derive(Default)]
struct Acked {
    /// Address -> stake.
    registered: HashMap<Address, u64>,
    slashed: HashSet<Address>,
    /// Index -> hash.
    blocks: BTreeMap<u64, Digest>,
}

impl Acked {
    fn counts(&self) -> [usize; 3] {
        [self.registered.len(), self.slashed.len(), self.blocks.len()]
    }

    fn summary(&self) -> String {
        let [r, s, b] = self.counts();
        format!("{r} registrations, {s} slashings, {b} blocks")
    }

    fn is_empty(&self) -> bool {
        self.counts() == [0; 3]
    }

    fn add(&mut self, other: &Acked) {
        self.registered.extend(&other.registered);
        self.slashed.extend(&other.slashed);
        self.blocks.extend(&other.blocks);
    }

    fn remove(&mut self, other: &Acked) {
        self.registered
            .retain(|a, _| !other.registered.contains_key(a));
        self.slashed.retain(|a| !other.slashed.contains(a));
        self.blocks.retain(|i, _| !other.blocks.contains_key(i));
    }
}

/// What the restarted posd says, held against what it had acknowledged.
struct Checked {
    height: u64,
    lost: Acked,
    /// Validators whose record disagrees with the chain, said how.
    inconsistent: Vec<String>,
    /// `posctl chain verify`: Err(what it said) when it failed.
    verify: Result<(), String>,
}

impl Checked {
    fn ok(&self) -> bool {
        self.lost.is_empty() && self.inconsistent.is_empty() && self.verify.is_ok()
    }
}

/// What a torn-write fault did.
#[derive(Clone, Copy)]
enum Torn {
    /// LazyFS died mid-write.
    Fired,
    /// ... and posd, failing to write, stopped itself with a panic (not a clean error).
    FiredPosdPanicked,
    /// Nothing matched in time; the cycle fell back to SIGKILL + clear-cache.
    DidNotFire,
}

/// Counts over the whole run.
#[derive(Default)]
struct Totals {
    acked: [usize; 3],
    lost: [usize; 3],
    /// Torn writes by [`Torn`] (as index).
    torn: [usize; 3],
    passed: u32,
    failed: u32,
}

impl Totals {
    /// Fails a run whose load never ran; prints the count; the exit code.
    fn verdict(mut self, cycles: u32) -> ExitCode {
        if cycles > 0 && self.acked.contains(&0) {
            println!("FAILED: the load did not run (nothing of some kind was acknowledged)");
            self.failed += 1;
        }
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

fn add(total: &mut [usize; 3], n: [usize; 3]) {
    total.iter_mut().zip(n).for_each(|(t, n)| *t += n);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    anyhow::ensure!(!cli.faults.is_empty(), "--faults: name at least one fault");
    let beside = |name: &str| -> anyhow::Result<PathBuf> {
        Ok(std::env::current_exe()
            .context("finding this binary")?
            .with_file_name(name))
    };
    let posd_bin = cli.posd.clone().map_or_else(|| beside("posd"), Ok)?;
    let posctl = cli.posctl.clone().map_or_else(|| beside("posctl"), Ok)?;
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut rng = StdRng::seed_from_u64(seed);
    if cli.cluster {
        println!(
            "power-loss test, cluster: {} cycles, seed {seed} (POSD_POWERLOSS_SEED)",
            cli.cycles
        );
        return cluster::run(&cli, posd_bin, &posctl, &mut rng).await;
    }
    println!(
        "power-loss test: {} cycles, faults in turn {:?}, seed {seed} (POSD_POWERLOSS_SEED)",
        cli.cycles, cli.faults
    );
    let socket = cli.work.join("admin.sock");
    // Everything acknowledged and not yet reported lost: checked after every cut.
    let mut acked = Acked::default();
    let mut totals = Totals::default();
    for cycle in 1..=cli.cycles + 1 {
        let mut fs = LazyFs::mount(&cli.lazyfs, &cli.work, cli.cache_mib).await?;
        let mut posd = start_posd(&posd_bin, &fs.mnt.join("data"), &socket);
        if cycle > 1 {
            let checked = check(&socket, &posctl, &acked).await?;
            report(cycle - 1, cli.cycles, &checked, &acked);
            add(&mut totals.lost, checked.lost.counts());
            acked.remove(&checked.lost);
            if checked.ok() {
                totals.passed += 1;
            } else {
                totals.failed += 1;
            }
        }
        if cycle > cli.cycles {
            let status = posd.terminate();
            fs.unmount().await?;
            if !status.success() {
                bail!("posd did not stop cleanly: {status}\n{}", posd.log());
            }
            break;
        }
        let fault = cli.faults[(cycle as usize - 1) % cli.faults.len()];
        let (new, how, torn) =
            cut_under_load(&mut posd, &mut fs, &socket, fault, cli.clients, &mut rng).await?;
        println!(
            "cycle {cycle}/{}: {how}; acknowledged {}; round log {} KiB on disk",
            cli.cycles,
            new.summary(),
            round_log_bytes(&fs.root.join("data")) / 1024
        );
        if let Some(torn) = torn {
            totals.torn[torn as usize] += 1;
        }
        add(&mut totals.acked, new.counts());
        acked.add(&new);
        drop(posd);
        fs.unmount().await?;
    }
    let [ar, asl, ab] = totals.acked;
    let [lr, ls, lb] = totals.lost;
    let [fired, panicked, unfired] = totals.torn;
    println!(
        "total: acknowledged {ar} registrations, {asl} slashings, {ab} blocks; \
         lost {lr} registrations, {ls} slashings, {lb} blocks; \
         torn writes: {} fired ({panicked} with posd panicking as it stopped), \
         {unfired} did not (clear-cache instead)",
        fired + panicked
    );
    if panicked > 0 {
        println!(
            "FAILED: posd panicked while stopping after a storage failure ({panicked} cycles)"
        );
        totals.failed += 1;
    }
    Ok(totals.verdict(cli.cycles))
}

/// posd on `data` with its admin socket off LazyFS; ready for requests.
fn start_posd(bin: &Path, data: &Path, socket: &Path) -> Posd {
    let mut cmd = std::process::Command::new(bin);
    die_with_parent(&mut cmd);
    let socket = socket.to_string_lossy();
    // Rounds close on a short timer and also when forced over the admin socket.
    let args = [
        "--admin-socket",
        &socket,
        "--round-interval",
        "100ms",
        "--stake-timeout",
        "1h",
    ];
    // One source registers thousands a second: lift the per-source limit (a
    // variable, which a posd without that setting ignores).
    let posd = Posd::spawn(cmd, data, &args, &[("POSD_REGISTRATION_RATE", "0")]);
    posd.wait_log("posd ready");
    posd
}

/// Loads posd, cuts the power at a random moment with `fault`, and returns
/// what posd acknowledged before, how the cut went, and what a torn write did.
async fn cut_under_load(
    posd: &mut Posd,
    fs: &mut LazyFs,
    socket: &Path,
    fault: Fault,
    clients: u64,
    rng: &mut StdRng,
) -> anyhow::Result<(Acked, String, Option<Torn>)> {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut load = tokio::task::JoinSet::new();
    load.spawn(observe(posd.addr, Arc::clone(&acked)));
    load.spawn(force_rounds(socket.to_owned(), Arc::clone(&acked)));
    for c in 0..clients {
        load.spawn(validators(posd.addr, Arc::clone(&acked), c, clients));
    }
    let after = Duration::from_millis(rng.gen_range(300..1500));
    tokio::time::sleep(after).await;
    let at = format!("{} ms into the load", after.as_millis());
    // The load runs until posd goes: a task that ended already says why the
    // test would not be testing.
    if let Some(ended) = load.try_join_next() {
        let why = match ended {
            Ok(Ok(())) => "posd hung up".to_string(),
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        };
        bail!("the load broke before the cut ({at}): {why}");
    }
    let (how, torn) = match torn(fault, &fs.root.join("data"), rng) {
        None => {
            // In this order: once posd is dead nothing can sync what is dropped.
            posd.kill9();
            fs.clear_cache().await?;
            (format!("SIGKILL + clear-cache {at}"), None)
        }
        Some(command) => {
            fs.command(&command).await?;
            if fs.exits_within(Duration::from_secs(5)).await {
                // The power is off: nothing posd does from now on reaches the disk.
                let stopped = stops_within(posd, Duration::from_secs(2));
                posd.kill9();
                let log = posd.log();
                let lines: Vec<&str> = log.lines().collect();
                let panic = lines.iter().position(|l| l.contains("panicked at"));
                let how = match (stopped, panic) {
                    // Where, and the message on the next line.
                    (Some(status), Some(i)) => format!(
                        "posd stopped itself ({status}) with a PANIC: {}",
                        lines[i..lines.len().min(i + 2)].join(" ")
                    ),
                    (Some(status), None) => format!(
                        "posd stopped itself ({status}): {}",
                        lines.last().copied().unwrap_or_default()
                    ),
                    (None, _) => "SIGKILL".to_string(),
                };
                let torn = match panic {
                    Some(_) => Torn::FiredPosdPanicked,
                    None => Torn::Fired,
                };
                (
                    format!("{command} {at}: LazyFS died mid-write, {how}"),
                    Some(torn),
                )
            } else {
                posd.kill9();
                fs.clear_cache().await?;
                let how = "did not fire in 5 s; SIGKILL + clear-cache";
                (format!("{command} {at} {how}"), Some(Torn::DidNotFire))
            }
        }
    };
    // posd is gone: the load ends as its connections close.
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while load.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        load.abort_all();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    Ok((acked, how, torn))
}

/// posd's exit status if it exits within `wait`.
fn stops_within(posd: &mut Posd, wait: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = posd.child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > wait {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The LazyFS command for a torn-write `fault` in posd's data directory
/// `data` (as LazyFS names it), the file and the parts chosen by `rng`.
fn torn(fault: Fault, data: &Path, rng: &mut StdRng) -> Option<String> {
    let db = data.join("sled/db");
    match fault {
        Fault::Clear => None,
        Fault::TornOp => {
            let mut files = vec![db, data.join(pos_store::acked::FILE)];
            files.extend(newest_segment(&data.join(pos_store::round_log::DIR)));
            let file = &files[rng.gen_range(0..files.len())];
            Some(torn_op(file, 4, rng))
        }
        // Write 1 or write 2 of the run reaches the disk, the other does not.
        Fault::TornSeq => Some(format!(
            "lazyfs::torn-seq::op=write::file={}::persist={}",
            db.display(),
            rng.gen_range(1..=2)
        )),
    }
}

/// Bytes in the round log's files (records too big for sled), as the disk
/// holds them: whether the cuts can have reached such records.
fn round_log_bytes(data: &Path) -> u64 {
    let dir = data.join(pos_store::round_log::DIR);
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// The newest segment of the log in `dir` (the Raft log's or the round
/// log's, as LazyFS names it): where its next append goes.
pub(crate) fn newest_segment(dir: &Path) -> Option<PathBuf> {
    use pos_store::raft_log::{segment_first, segment_name};
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| segment_first(e.ok()?.file_name().to_str()?))
        .max()
        .map(|first| dir.join(segment_name(first)))
}

/// The LazyFS command that tears the next write to `file` into 2 to
/// `max_parts` parts and persists some of them, never all.
pub(crate) fn torn_op(file: &Path, max_parts: u32, rng: &mut StdRng) -> String {
    let parts = rng.gen_range(2..=max_parts);
    let mask = rng.gen_range(1..(1u32 << parts) - 1);
    let persist: Vec<String> = (0..parts)
        .filter(|p| mask & (1 << p) != 0)
        .map(|p| (p + 1).to_string())
        .collect();
    format!(
        "lazyfs::torn-op::file={}::persist={}::parts={parts}",
        file.display(),
        persist.join(",")
    )
}

/// Registers validators one after another until posd goes; every 8th sends
/// a malformed proposal and is slashed, the others propose a BPM and stay
/// connected a while so their proposals stand.
async fn validators(
    addr: SocketAddr,
    acked: Arc<Mutex<Acked>>,
    first: u64,
    step: u64,
) -> anyhow::Result<()> {
    let mut open = VecDeque::new();
    for n in (first..).step_by(step as usize) {
        let stake = 10 + n % 90;
        let mut v = register(addr, stake).await?;
        let address: Address = v.address.parse().context("validator address")?;
        acked.lock().unwrap().registered.insert(address, stake);
        if n % 8 == 0 {
            v.wr.write_all(b"not-a-bpm\n").await?;
            read_until(&mut v.rd, &format!("validator {address} slashed")).await?;
            acked.lock().unwrap().slashed.insert(address);
        } else {
            open.push_back(v);
            if open.len() > 4 {
                open.pop_front();
            }
            // Every open one proposes (again: a newer proposal replaces the
            // older), so a round holds them all: with 64 clients or more its
            // record is big enough to be filed in the round log (pos-store's
            // round_log), which the cuts then reach too.
            for o in &mut open {
                o.wr.write_all(format!("{}\n", n % 200).as_bytes()).await?;
            }
        }
    }
    Ok(())
}

/// Records every block and slashing posd announces, until it goes.
async fn observe(addr: SocketAddr, acked: Arc<Mutex<Acked>>) -> anyhow::Result<()> {
    let mut lines = BufReader::new(TcpStream::connect(addr).await?).lines();
    while let Some(line) = lines.next_line().await? {
        if line.contains("winning validator: ") {
            let Some(json) = lines.next_line().await? else {
                break;
            };
            match serde_json::from_str::<BlockJson>(&json).map(|b| (b.index, b.hash.parse())) {
                Ok((index, Ok(hash))) => {
                    acked.lock().unwrap().blocks.insert(index, hash);
                }
                _ => eprintln!("powerloss: cannot read the announced block {json:?}"),
            }
        } else if let Some(rest) = line.split("slashed validator: ").nth(1) {
            match rest.split(':').next().unwrap_or_default().parse() {
                Ok(address) => {
                    acked.lock().unwrap().slashed.insert(address);
                }
                Err(_) => eprintln!("powerloss: cannot read the announced slashing {line:?}"),
            }
        }
    }
    Ok(())
}

/// Forces rounds over the admin socket, as `posctl lottery run` does, until posd goes.
async fn force_rounds(socket: PathBuf, acked: Arc<Mutex<Acked>>) -> anyhow::Result<()> {
    let mut admin = Client::connect(&socket, "powerloss").await?;
    loop {
        if let Response::Lottery(LotteryOutcome::Committed { block, .. }) =
            admin.ask(&Request::LotteryRun).await?
        {
            acked.lock().unwrap().blocks.insert(block.index, block.hash);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads every validator and block from the restarted posd and holds them
/// against `acked`; then `posctl chain verify`.
async fn check(socket: &Path, posctl: &Path, acked: &Acked) -> anyhow::Result<Checked> {
    let mut admin = Client::connect(socket, "powerloss").await?;
    let mut validators: HashMap<Address, Validator> = HashMap::new();
    admin.send(&Request::Validators { all: true }).await?;
    loop {
        match admin.next().await? {
            Response::Validators(vs) => {
                validators.extend(vs.into_iter().map(|v| (v.validator.address, v.validator)))
            }
            Response::End => break,
            other => bail!("unexpected answer to validators: {other:?}"),
        }
    }
    let mut chain: HashMap<u64, Block> = HashMap::new();
    let all = Request::ChainShow {
        from: None,
        to: None,
        last: None,
    };
    admin.send(&all).await?;
    loop {
        match admin.next().await? {
            Response::Blocks(bs) => chain.extend(bs.into_iter().map(|b| (b.index, b))),
            Response::End => break,
            other => bail!("unexpected answer to chain show: {other:?}"),
        }
    }
    let lost = Acked {
        registered: acked
            .registered
            .iter()
            .filter(|(a, _)| !validators.contains_key(a))
            .map(|(a, s)| (*a, *s))
            .collect(),
        slashed: acked
            .slashed
            .iter()
            .filter(|a| validators.get(a).map(Validator::status) != Some(Status::Slashed))
            .copied()
            .collect(),
        blocks: acked
            .blocks
            .iter()
            .filter(|(i, h)| chain.get(i).map(|b| &b.hash) != Some(h))
            .map(|(i, h)| (*i, *h))
            .collect(),
    };
    Ok(Checked {
        height: chain.keys().max().copied().unwrap_or(0),
        inconsistent: inconsistent(&validators, &chain, acked),
        lost,
        verify: verify(socket, posctl).await?,
    })
}

/// Validators whose blocks won, or balance (stake + 1 token per block won,
/// the default reward), disagree with the chain.
fn inconsistent(
    validators: &HashMap<Address, Validator>,
    chain: &HashMap<u64, Block>,
    acked: &Acked,
) -> Vec<String> {
    let mut wins: HashMap<Address, u64> = HashMap::new();
    for winner in chain.values().filter_map(|b| b.validator) {
        *wins.entry(winner).or_default() += 1;
    }
    let mut out = Vec::new();
    for v in validators.values() {
        let won = wins.get(&v.address).copied().unwrap_or(0);
        if v.blocks_won != won {
            out.push(format!(
                "{}: blocks_won {}, the chain says {won}",
                v.address, v.blocks_won
            ));
        }
        if let (Status::Active, Some(stake)) = (v.status(), acked.registered.get(&v.address)) {
            if v.balance != stake + won {
                out.push(format!(
                    "{}: balance {}, stake {stake} + {won} won",
                    v.address, v.balance
                ));
            }
        }
    }
    out
}

/// `posctl chain verify` against the running posd.
async fn verify(socket: &Path, posctl: &Path) -> anyhow::Result<Result<(), String>> {
    let out = tokio::process::Command::new(posctl)
        .arg("--socket")
        .arg(socket)
        .args(["chain", "verify"])
        .output()
        .await
        .with_context(|| format!("running {}", posctl.display()))?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let said = String::from_utf8_lossy(&out.stderr);
    Ok(Err(format!("{}: {}", out.status, said.trim())))
}

/// One line per check, and a few of the lost or inconsistent records so a
/// failure says what to look for.
fn report(cycle: u32, cycles: u32, checked: &Checked, acked: &Acked) {
    println!(
        "cycle {cycle}/{cycles}: after remount and restart: height {}, lost {}, {} inconsistent validators, chain verify {}: {}",
        checked.height,
        checked.lost.summary(),
        checked.inconsistent.len(),
        checked.verify.as_ref().map_or_else(|e| format!("FAILED ({e})"), |()| "ok".into()),
        if checked.ok() { "passed" } else { "FAILED" }
    );
    let lost = &checked.lost;
    for a in lost.registered.keys().take(3) {
        println!("  lost registration {a}");
    }
    for a in lost.slashed.iter().take(3) {
        println!("  lost slashing of {a}");
    }
    if let (Some(first), Some(last)) = (lost.blocks.keys().next(), lost.blocks.keys().last()) {
        let kept = acked
            .blocks
            .range(..first)
            .next_back()
            .map_or(0, |(i, _)| *i);
        println!("  lost announced blocks {first}..={last} (announced and kept up to {kept})");
    }
    for line in checked.inconsistent.iter().take(3) {
        println!("  inconsistent: {line}");
    }
}
