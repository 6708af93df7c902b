//! `powerloss --cluster`: power cuts on one node of a 3-node cluster (SPEC
//! §7 and §9). Nodes 1 and 2 keep their data on the plain disk, node 3 on
//! LazyFS. Node 3 bootstraps the cluster, so the first cut hits the leader;
//! before every other odd cycle the leader is SIGKILLed and restarted until
//! node 3 wins an election (at most a few tries), so leaders and followers
//! both lose power. Each cycle: validators register on all three nodes,
//! node 3 is SIGKILLed and its unsynced writes dropped (in cycles 2, 3, 6,
//! 7, ... its next Raft log append is torn instead, as LazyFS dies
//! mid-write), the other two go on a moment, then node 3 is remounted and restarted. Checked after every
//! cycle, on every node: nothing acknowledged anywhere is missing, balances
//! match, `chain verify` passes, the three chains are equal; node 3's term
//! after the restart is not below the one before. All along, a monitor
//! polls every node's `cluster status`: no term may have two leaders, and
//! no node's term may go back.

use super::{
    add, check, die_with_parent, force_rounds, newest_segment, observe, report, torn_op,
    validators, Acked, Cli, LazyFs, Posd, Totals,
};
use anyhow::{bail, Context};
use pos_core::Block;
use pos_proto::{Client, ClusterInfo, Request, Response};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: u64 = 3;
/// The node on LazyFS.
const LAZY: u64 = 3;
/// Attempts per cycle at handing the leadership to node 3.
const HANDOVER_TRIES: u32 = 6;
/// How long the nodes may take to agree on a leader or to catch up.
const CATCH_UP: Duration = Duration::from_secs(60);

/// The three nodes: fixed cluster ports (a restarted node keeps its address).
struct Cluster {
    bin: PathBuf,
    work: PathBuf,
    secret: PathBuf,
    ports: Vec<u16>,
    nodes: Vec<Option<Posd>>,
}

/// What the monitor saw: leaders by term, the highest term per node.
#[derive(Default)]
struct History {
    leaders: BTreeMap<u64, BTreeSet<u64>>,
    terms: BTreeMap<u64, u64>,
    /// "node N: term went from A to B".
    regressions: Vec<String>,
}

impl History {
    fn record(&mut self, info: &ClusterInfo) {
        if info.role == "leader" {
            self.leaders
                .entry(info.term)
                .or_default()
                .insert(info.node_id);
        }
        let seen = self.terms.entry(info.node_id).or_default();
        if info.term < *seen {
            self.regressions.push(format!(
                "node {}: term went from {} to {}",
                info.node_id, seen, info.term
            ));
        }
        *seen = (*seen).max(info.term);
    }

    fn double_leaders(&self) -> Vec<String> {
        self.leaders
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(term, ids)| format!("term {term}: leaders {ids:?}"))
            .collect()
    }
}

impl Cluster {
    fn socket(&self, id: u64) -> PathBuf {
        self.work.join(format!("n{id}.sock"))
    }

    fn cluster_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[id as usize - 1])
    }

    fn disk_dir(&self, id: u64) -> PathBuf {
        self.work.join(format!("node{id}"))
    }

    fn node(&self, id: u64) -> &Posd {
        self.nodes[id as usize - 1].as_ref().expect("node running")
    }

    /// Starts node `id` on `data`; returns once it serves.
    fn start(&mut self, id: u64, data: &Path) {
        let mut cmd = std::process::Command::new(&self.bin);
        die_with_parent(&mut cmd);
        let (id_text, socket) = (id.to_string(), self.socket(id));
        let (addr, secret) = (self.cluster_addr(id), self.secret.to_string_lossy());
        let args = [
            "--admin-socket",
            &socket.to_string_lossy(),
            "--round-interval",
            "100ms",
            "--stake-timeout",
            "1h",
            "--node-id",
            &id_text,
            "--cluster-listen",
            &addr,
            "--cluster-secret-file",
            &secret,
            "--election-timeout",
            "500ms",
        ];
        let posd = Posd::spawn(cmd, data, &args, &[("POSD_REGISTRATION_RATE", "0")]);
        posd.wait_log("posd ready");
        self.nodes[id as usize - 1] = Some(posd);
    }

    fn kill9(&mut self, id: u64) {
        if let Some(mut posd) = self.nodes[id as usize - 1].take() {
            posd.kill9();
        }
    }

    async fn status(&self, id: u64) -> anyhow::Result<ClusterInfo> {
        cluster(&self.socket(id), Request::ClusterStatus).await
    }

    /// The leader all running nodes agree on.
    async fn leader(&self) -> anyhow::Result<u64> {
        let start = Instant::now();
        loop {
            let mut seen = BTreeSet::new();
            for id in 1..=NODES {
                if self.nodes[id as usize - 1].is_some() {
                    seen.insert(self.status(id).await.ok().and_then(|i| i.leader_id));
                }
            }
            if let [Some(leader)] = seen.into_iter().collect::<Vec<_>>()[..] {
                if self.nodes[leader as usize - 1].is_some() {
                    return Ok(leader);
                }
            }
            if start.elapsed() > CATCH_UP {
                bail!("the nodes agreed on no leader in {CATCH_UP:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One admin request answered with a cluster view.
async fn cluster(socket: &Path, request: Request) -> anyhow::Result<ClusterInfo> {
    let mut admin = Client::connect(socket, "powerloss").await?;
    match admin.ask(&request).await? {
        Response::Cluster(info) => Ok(info),
        other => bail!("{}: {request:?} answered {other:?}", socket.display()),
    }
}

async fn chain(socket: &Path) -> anyhow::Result<Vec<Block>> {
    let mut admin = Client::connect(socket, "powerloss").await?;
    admin
        .send(&Request::ChainShow {
            from: None,
            to: None,
            last: None,
        })
        .await?;
    let mut blocks = Vec::new();
    loop {
        match admin.next().await? {
            Response::Blocks(b) => blocks.extend(b),
            Response::End => return Ok(blocks),
            other => bail!("unexpected answer to chain show: {other:?}"),
        }
    }
}

/// Polls every node's view until the process ends.
async fn monitor(sockets: Vec<PathBuf>, history: Arc<Mutex<History>>) {
    loop {
        for socket in &sockets {
            if let Ok(info) = cluster(socket, Request::ClusterStatus).await {
                history.lock().unwrap().record(&info);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free TCP port on loopback (bound, then let go).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub(crate) async fn run(
    cli: &Cli,
    bin: PathBuf,
    posctl: &Path,
    rng: &mut StdRng,
) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::PermissionsExt;
    let secret = cli.work.join("cluster.secret");
    std::fs::write(&secret, "the power-loss test's cluster secret, 40+ chars\n")
        .with_context(|| format!("writing {}", secret.display()))?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    let mut c = Cluster {
        bin,
        work: cli.work.clone(),
        secret,
        ports: (0..NODES).map(|_| free_port()).collect::<Result<_, _>>()?,
        nodes: (0..NODES).map(|_| None).collect(),
    };
    let history = Arc::new(Mutex::new(History::default()));
    let sockets = (1..=NODES).map(|id| c.socket(id)).collect();
    let monitor = tokio::spawn(monitor(sockets, Arc::clone(&history)));
    let mut acked = Acked::default();
    let mut totals = Totals::default();
    let mut led = 0;
    for cycle in 1..=cli.cycles + 1 {
        let mut fs = LazyFs::mount(&cli.lazyfs, &cli.work, cli.cache_mib).await?;
        c.start(LAZY, &fs.mnt.join("data"));
        if cycle == 1 {
            cluster(&c.socket(LAZY), Request::ClusterInit).await?;
            for id in (1..=NODES).filter(|id| *id != LAZY) {
                let dir = c.disk_dir(id);
                c.start(id, &dir);
                let addr = c.cluster_addr(id);
                cluster(&c.socket(LAZY), Request::ClusterAdd { node_id: id, addr })
                    .await
                    .with_context(|| format!("adding node {id}"))?;
            }
        } else {
            let after = c.status(LAZY).await?.term;
            let (lost, ok) = check_all(&c, posctl, &acked, cycle - 1, cli.cycles).await?;
            if after < led {
                println!("  FAILED: node {LAZY}'s term went back from {led} to {after}");
            }
            add(&mut totals.lost, lost.counts());
            acked.remove(&lost);
            if ok && after >= led {
                totals.passed += 1;
            } else {
                totals.failed += 1;
            }
        }
        if cycle > cli.cycles {
            for id in 1..=NODES {
                if let Some(mut posd) = c.nodes[id as usize - 1].take() {
                    let status = posd.terminate();
                    if !status.success() {
                        bail!("node {id} did not stop cleanly: {status}\n{}", posd.log());
                    }
                }
            }
            fs.unmount().await?;
            break;
        }
        let role = hand_over(&mut c, &fs, cycle % 2 == 1).await?;
        // Cycles 2, 3, 6, 7, ... tear a write of the Raft log (a follower's,
        // then a leader's); the others drop the unsynced writes.
        let tear = (cycle / 2) % 2 == 1;
        let (new, how) = cut_under_load(&mut c, &mut fs, cli.clients, tear, rng).await?;
        led = new.1;
        println!(
            "cycle {cycle}/{}: node {LAZY} ({role}, term {led}) {how}; acknowledged {}",
            cli.cycles,
            new.0.summary()
        );
        add(&mut totals.acked, new.0.counts());
        acked.add(&new.0);
        fs.unmount().await?;
    }
    monitor.abort();
    let history = history.lock().unwrap();
    let doubles = history.double_leaders();
    let [ar, _, ab] = totals.acked;
    let [lr, ls, lb] = totals.lost;
    println!(
        "total: acknowledged {ar} registrations, {} slashings, {ab} blocks; \
         lost {lr} registrations, {ls} slashings, {lb} blocks; \
         terms seen with a leader: {}, with two leaders: {}; term regressions: {}",
        totals.acked[1],
        history.leaders.len(),
        doubles.len(),
        history.regressions.len()
    );
    for line in doubles.iter().chain(&history.regressions).take(5) {
        println!("  FAILED: {line}");
    }
    if !doubles.is_empty() || !history.regressions.is_empty() {
        totals.failed += 1;
    }
    Ok(totals.verdict(cli.cycles))
}

/// Kills and restarts the leader until node 3 leads (`lead`) or follows
/// (a few tries; node 3 restarts on its mount as it is, a crash without a
/// power cut); node 3's role then.
async fn hand_over(c: &mut Cluster, fs: &LazyFs, lead: bool) -> anyhow::Result<String> {
    for _ in 0..HANDOVER_TRIES {
        let leader = c.leader().await?;
        if (leader == LAZY) == lead {
            break;
        }
        c.kill9(leader);
        c.leader().await?;
        let dir = match leader {
            LAZY => fs.mnt.join("data"),
            _ => c.disk_dir(leader),
        };
        c.start(leader, &dir);
    }
    c.leader().await?;
    Ok(c.status(LAZY).await?.role)
}

/// Loads all three nodes, cuts node 3's power at a random moment, lets the
/// other two go on a moment; what was acknowledged, node 3's term at the
/// cut, and when the cut came.
async fn cut_under_load(
    c: &mut Cluster,
    fs: &mut LazyFs,
    clients: u64,
    tear: bool,
    rng: &mut StdRng,
) -> anyhow::Result<((Acked, u64), String)> {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut load = tokio::task::JoinSet::new();
    for id in 1..=NODES {
        load.spawn(observe(c.node(id).addr, Arc::clone(&acked)));
    }
    load.spawn(force_rounds(c.socket(1), Arc::clone(&acked)));
    for n in 0..clients {
        let addr = c.node(n % NODES + 1).addr;
        load.spawn(validators(addr, Arc::clone(&acked), n, clients));
    }
    let after = Duration::from_millis(rng.gen_range(300..1500));
    tokio::time::sleep(after).await;
    let term = c.status(LAZY).await?.term;
    let at = format!("{} ms into the load", after.as_millis());
    let how = match tear
        .then(|| newest_segment(&fs.root.join("data").join(pos_store::raft_log::DIR)))
        .flatten()
    {
        Some(segment) => {
            // The next append to node 3's Raft log is half written as the
            // power goes: its restart must cut that tail and catch up.
            let command = torn_op(&segment, 3, rng);
            fs.command(&command).await?;
            let fired = fs.exits_within(Duration::from_secs(5)).await;
            c.kill9(LAZY);
            if fired {
                format!("{command} {at}: LazyFS died mid-write, SIGKILL")
            } else {
                fs.clear_cache().await?;
                format!("{command} {at}: did not fire in 5 s; SIGKILL + clear-cache")
            }
        }
        None => {
            c.kill9(LAZY);
            fs.clear_cache().await?;
            format!("SIGKILL + clear-cache {at}")
        }
    };
    // The other two still make a majority: they go on without node 3.
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.abort_all();
    while load.join_next().await.is_some() {}
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    Ok(((acked, term), how))
}

/// Once node 3 has caught up: every node holds what any node acknowledged,
/// verifies, and the chains are equal. Returns what some node lost, and
/// whether all of it held.
async fn check_all(
    c: &Cluster,
    posctl: &Path,
    acked: &Acked,
    cycle: u32,
    cycles: u32,
) -> anyhow::Result<(Acked, bool)> {
    // Rounds go on a moment after the load (proposals of node 3's
    // validators outlive their connections): check a chain that stands still.
    let start = Instant::now();
    let mut last = Vec::new();
    let chains = loop {
        let mut chains = Vec::new();
        for id in 1..=NODES {
            chains.push(chain(&c.socket(id)).await?);
        }
        if chains.iter().all(|ch| *ch == chains[0]) && chains == last {
            break chains;
        }
        if start.elapsed() > CATCH_UP {
            let tips: Vec<usize> = chains.iter().map(Vec::len).collect();
            println!("  FAILED: no equal, still chains in {CATCH_UP:?} (lengths {tips:?})");
            break chains;
        }
        last = chains;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut lost = Acked::default();
    let mut ok = chains.iter().all(|ch| *ch == chains[0]);
    for id in 1..=NODES {
        print!("node {id}: ");
        let checked = check(&c.socket(id), posctl, acked).await?;
        report(cycle, cycles, &checked, acked);
        ok &= checked.ok();
        lost.add(&checked.lost);
    }
    Ok((lost, ok))
}
