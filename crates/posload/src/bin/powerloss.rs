//! powerloss: cuts the power under a loaded posd again and again and checks
//! that everything posd acknowledged survived (SPEC §7). posd's data directory
//! lives on LazyFS. A cut is SIGKILL to posd and then LazyFS dropping every
//! write not yet synced, or a torn write (only some parts of one write reach
//! the disk, then LazyFS dies). Then LazyFS is mounted afresh, posd restarts
//! on the same directory, and every registration, slashing and block it
//! acknowledged must be there, and `posctl chain verify` must pass.
//!
//! Needs root and /dev/fuse; tests/powerloss/run.sh builds LazyFS and runs it:
//!
//!   powerloss --lazyfs /var/tmp/posd-lazyfs/lazyfs/build/lazyfs --work /var/tmp/pl.1 --cycles 5

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use pos_core::{Address, BlockJson, Digest, Status};
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
    /// LazyFS's cache in MiB: it must hold all posd reads and writes in one
    /// cycle (it does not evict).
    #[arg(long, default_value_t = 512)]
    cache_mib: u64,
    /// The posd binary (default: beside this one).
    #[arg(long)]
    posd: Option<PathBuf>,
    /// The posctl binary (default: beside this one).
    #[arg(long)]
    posctl: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Fault {
    /// SIGKILL posd, then LazyFS drops every unsynced write.
    Clear,
    /// The next write to sled's log reaches the disk only in parts, then LazyFS dies.
    TornOp,
    /// Of the next run of writes to sled's log between syncs, only one
    /// reaches the disk, then LazyFS dies (the writes were reordered).
    TornSeq,
}

/// What posd acknowledged: a `Validator address:` reply, a slashing reply or
/// announcement, a block announcement or `lottery run` reply.
#[derive(Default)]
struct Acked {
    registered: HashSet<Address>,
    slashed: HashSet<Address>,
    /// Index -> hash.
    blocks: BTreeMap<u64, Digest>,
}

impl Acked {
    fn summary(&self) -> String {
        format!(
            "{} registrations, {} slashings, {} blocks",
            self.registered.len(),
            self.slashed.len(),
            self.blocks.len()
        )
    }

    fn is_empty(&self) -> bool {
        self.registered.is_empty() && self.slashed.is_empty() && self.blocks.is_empty()
    }

    fn add(&mut self, other: &Acked) {
        self.registered.extend(&other.registered);
        self.slashed.extend(&other.slashed);
        self.blocks.extend(&other.blocks);
    }

    fn remove(&mut self, other: &Acked) {
        self.registered.retain(|a| !other.registered.contains(a));
        self.slashed.retain(|a| !other.slashed.contains(a));
        self.blocks.retain(|i, _| !other.blocks.contains_key(i));
    }
}

/// Counts over the whole run.
#[derive(Default)]
struct Totals {
    acked: [usize; 3],
    lost: [usize; 3],
}

fn counts(a: &Acked) -> [usize; 3] {
    [a.registered.len(), a.slashed.len(), a.blocks.len()]
}

fn add(total: &mut [usize; 3], n: [usize; 3]) {
    total.iter_mut().zip(n).for_each(|(t, n)| *t += n);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
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
    println!(
        "power-loss test: {} cycles, faults in turn {:?}, seed {seed} (POSD_POWERLOSS_SEED)",
        cli.cycles, cli.faults
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let socket = cli.work.join("admin.sock");
    // Everything acknowledged and not yet reported lost: checked after every cut.
    let mut acked = Acked::default();
    let mut totals = Totals::default();
    let (mut passed, mut failed) = (0u32, 0u32);
    for cycle in 1..=cli.cycles + 1 {
        let mut fs = LazyFs::mount(&cli.lazyfs, &cli.work, cli.cache_mib).await?;
        let mut posd = start_posd(&posd_bin, &fs.mnt.join("data"), &socket);
        if cycle > 1 {
            let (lost, verdict) = check(&socket, &posctl, &acked).await?;
            let ok = lost.is_empty() && verdict.is_ok();
            println!(
                "cycle {}/{}: after remount and restart: lost {}; chain verify: {}: {}",
                cycle - 1,
                cli.cycles,
                lost.summary(),
                verdict.as_ref().unwrap_or_else(|e| e),
                if ok { "passed" } else { "FAILED" }
            );
            if !lost.is_empty() {
                print_lost(&lost, &acked);
            }
            add(&mut totals.lost, counts(&lost));
            acked.remove(&lost);
            if ok {
                passed += 1;
            } else {
                failed += 1;
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
        let (new, how) =
            cut_under_load(&mut posd, &mut fs, &socket, fault, cli.clients, &mut rng).await?;
        println!(
            "cycle {cycle}/{}: {how}; acknowledged {}",
            cli.cycles,
            new.summary()
        );
        add(&mut totals.acked, counts(&new));
        acked.add(&new);
        drop(posd);
        fs.unmount().await?;
    }
    let [ar, asl, ab] = totals.acked;
    let [lr, ls, lb] = totals.lost;
    println!(
        "total: acknowledged {ar} registrations, {asl} slashings, {ab} blocks; \
         lost {lr} registrations, {ls} slashings, {lb} blocks"
    );
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
    let posd = Posd::spawn(cmd, data, &args, &[]);
    posd.wait_log("posd ready");
    posd
}

/// Loads posd, cuts the power at a random moment with `fault`, and returns
/// what posd acknowledged before, with how the cut went.
async fn cut_under_load(
    posd: &mut Posd,
    fs: &mut LazyFs,
    socket: &Path,
    fault: Fault,
    clients: u64,
    rng: &mut StdRng,
) -> anyhow::Result<(Acked, String)> {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut load = tokio::task::JoinSet::new();
    load.spawn(observe(posd.addr, Arc::clone(&acked)));
    load.spawn(force_rounds(socket.to_owned(), Arc::clone(&acked)));
    for c in 0..clients {
        load.spawn(validators(posd.addr, Arc::clone(&acked), c, clients));
    }
    let after = Duration::from_millis(rng.gen_range(300..1500));
    tokio::time::sleep(after).await;
    let ms = after.as_millis();
    let how = match fault {
        Fault::Clear => {
            // In this order: once posd is dead nothing can sync what is dropped.
            posd.kill9();
            fs.clear_cache().await?;
            format!("SIGKILL + clear-cache {ms} ms into the load")
        }
        Fault::TornOp | Fault::TornSeq => {
            let command = torn(fault, &fs.root.join("data/sled/db"), rng);
            fs.command(&command).await?;
            if fs.exits_within(Duration::from_secs(5)).await {
                // LazyFS is gone (the power is off): whatever posd does now stays off disk.
                posd.kill9();
                format!("{command} {ms} ms into the load, LazyFS died mid-write, SIGKILL")
            } else {
                posd.kill9();
                fs.clear_cache().await?;
                format!(
                    "{command} {ms} ms into the load did not fire in 5 s; SIGKILL + clear-cache"
                )
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
    Ok((acked, how))
}

/// A LazyFS torn-write command for `file`, its parts chosen by `rng`.
fn torn(fault: Fault, file: &Path, rng: &mut StdRng) -> String {
    let file = file.display();
    match fault {
        Fault::TornOp => {
            let parts = rng.gen_range(2..=4);
            // Some parts, never all of them.
            let mask = rng.gen_range(1..(1u32 << parts) - 1);
            let persist: Vec<String> = (0..parts)
                .filter(|p| mask & (1 << p) != 0)
                .map(|p| (p + 1).to_string())
                .collect();
            format!(
                "lazyfs::torn-op::file={file}::persist={}::parts={parts}",
                persist.join(",")
            )
        }
        // Write 1 or write 2 of the run reaches the disk, the other does not.
        Fault::TornSeq => format!(
            "lazyfs::torn-seq::op=write::file={file}::persist={}",
            rng.gen_range(1..=2)
        ),
        Fault::Clear => unreachable!("not a torn write"),
    }
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
        let mut v = register(addr, 10 + n % 90).await?;
        let address: Address = v.address.parse().context("validator address")?;
        acked.lock().unwrap().registered.insert(address);
        if n % 8 == 0 {
            v.wr.write_all(b"not-a-bpm\n").await?;
            read_until(&mut v.rd, &format!("validator {address} slashed")).await?;
            acked.lock().unwrap().slashed.insert(address);
        } else {
            v.wr.write_all(format!("{}\n", n % 200).as_bytes()).await?;
            open.push_back(v);
            if open.len() > 4 {
                open.pop_front();
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
            let block: BlockJson =
                serde_json::from_str(&json).with_context(|| format!("announced block: {json}"))?;
            let hash = block.hash.parse().context("announced block hash")?;
            acked.lock().unwrap().blocks.insert(block.index, hash);
        } else if let Some(rest) = line.split("slashed validator: ").nth(1) {
            let address = rest.split(':').next().unwrap_or_default();
            let address = address.parse().context("announced slashing")?;
            acked.lock().unwrap().slashed.insert(address);
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

/// What of `acked` the restarted posd lacks, and `posctl chain verify`'s verdict.
async fn check(
    socket: &Path,
    posctl: &Path,
    acked: &Acked,
) -> anyhow::Result<(Acked, Result<String, String>)> {
    let mut admin = Client::connect(socket, "powerloss").await?;
    let mut stored: HashMap<Address, Status> = HashMap::new();
    admin.send(&Request::Validators { all: true }).await?;
    loop {
        match admin.next().await? {
            Response::Validators(vs) => stored.extend(
                vs.into_iter()
                    .map(|v| (v.validator.address, v.validator.status())),
            ),
            Response::End => break,
            other => bail!("unexpected answer to validators: {other:?}"),
        }
    }
    let mut chain: HashMap<u64, Digest> = HashMap::new();
    admin
        .send(&Request::ChainShow {
            from: None,
            to: None,
            last: None,
        })
        .await?;
    loop {
        match admin.next().await? {
            Response::Blocks(bs) => chain.extend(bs.into_iter().map(|b| (b.index, b.hash))),
            Response::End => break,
            other => bail!("unexpected answer to chain show: {other:?}"),
        }
    }
    let lost = Acked {
        registered: acked
            .registered
            .iter()
            .filter(|a| !stored.contains_key(a))
            .copied()
            .collect(),
        slashed: acked
            .slashed
            .iter()
            .filter(|a| stored.get(a) != Some(&Status::Slashed))
            .copied()
            .collect(),
        blocks: acked
            .blocks
            .iter()
            .filter(|(i, h)| chain.get(i) != Some(h))
            .map(|(i, h)| (*i, *h))
            .collect(),
    };
    let out = tokio::process::Command::new(posctl)
        .arg("--socket")
        .arg(socket)
        .args(["chain", "verify"])
        .output()
        .await
        .with_context(|| format!("running {}", posctl.display()))?;
    let text = String::from_utf8_lossy(if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    });
    let said = text.lines().last().unwrap_or_default().to_string();
    let verdict = if out.status.success() {
        Ok(format!("ok, height {}", chain.len().saturating_sub(1)))
    } else {
        Err(format!("{} ({said})", out.status))
    };
    Ok((lost, verdict))
}

/// A few of the lost records, so a failure says what to look for.
fn print_lost(lost: &Acked, acked: &Acked) {
    for a in lost.registered.iter().take(3) {
        println!("  lost registration {a}");
    }
    for a in lost.slashed.iter().take(3) {
        println!("  lost slashing of {a}");
    }
    for (i, h) in lost.blocks.iter().take(3) {
        println!("  lost block {i} (announced with hash {h})");
    }
    if let Some(first) = lost.blocks.keys().next() {
        println!(
            "  announced blocks lost: {first}..={}; announced and kept up to {}",
            lost.blocks.keys().last().unwrap_or(first),
            acked
                .blocks
                .range(..first)
                .next_back()
                .map_or(0, |(i, _)| *i)
        );
    }
}
