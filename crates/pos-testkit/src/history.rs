//! A history checker for cluster fault tests (SPEC §9): validators on every
//! node and a sampler of every node's `cluster status` record what clients
//! were told; [`History::check`] then holds the cluster to it.
//!
//! - every acknowledged registration is on every node at the end;
//! - no height was announced with two hashes, no client saw a block twice
//!   or out of order, and every announced block is in the final chain;
//! - a node's term never goes back (across restarts too), its committed and
//!   applied indexes never go back while it runs;
//! - all nodes end with identical chains, and `chain verify` passes on each.

use crate::admin::{ask, chain_verify};
use crate::client::read_some;
use crate::cluster::Node;
use pos_proto::{ClusterInfo, Request, Response};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The nodes clients may use now, and each node's life: a kill starts a new
/// one, so a sample is never blamed on the process that came after it.
#[derive(Clone, Default)]
pub struct Roster(Arc<Mutex<BTreeMap<u64, Entry>>>);

#[derive(Clone)]
struct Entry {
    /// The validator port; `None` while the node is down.
    addr: Option<SocketAddr>,
    socket: PathBuf,
    life: u64,
}

impl Roster {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `node` serves (again): clients may connect to it.
    pub fn up(&self, node: &Node) {
        let mut nodes = self.lock();
        let life = nodes.get(&node.id).map_or(0, |e| e.life);
        nodes.insert(
            node.id,
            Entry {
                addr: Some(node.posd.addr),
                socket: node.posd.socket(),
                life,
            },
        );
    }

    /// Node `id` is about to die: no new clients, and its life ends here.
    pub fn down(&self, id: u64) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.addr = None;
            e.life += 1;
        }
    }

    /// Node `id` left the cluster: nobody uses or samples it any more.
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// The `n`th of the nodes up (round robin).
    fn pick(&self, n: usize) -> Option<(u64, SocketAddr)> {
        let up: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(id, e)| e.addr.map(|a| (*id, a)))
            .collect();
        (!up.is_empty()).then(|| up[n % up.len()])
    }

    fn life(&self, id: u64) -> Option<u64> {
        self.lock().get(&id).map(|e| e.life)
    }

    fn sockets(&self) -> Vec<(u64, PathBuf)> {
        let nodes = self.lock();
        nodes
            .iter()
            .filter(|(_, e)| e.addr.is_some())
            .map(|(id, e)| (*id, e.socket.clone()))
            .collect()
    }
}

/// One block announcement one client read.
struct Seen {
    client: usize,
    node: u64,
    index: u64,
    hash: String,
}

/// One `cluster status` answer.
struct Sample {
    node: u64,
    life: u64,
    term: u64,
    committed: u64,
    applied: u64,
}

#[derive(Default)]
struct Record {
    /// (validator address, node it registered on).
    acked: Vec<(String, u64)>,
    seen: Vec<Seen>,
    samples: Vec<Sample>,
    /// What a client was told that no client should ever be told.
    wrong: Vec<String>,
    /// Proposals posd confirmed.
    proposals: u64,
    no_leader: u64,
    /// Other `error:` lines (e.g. a write the leader lost in a kill).
    errors: u64,
    /// The longest a client waited for the answer to a line.
    slowest: Duration,
    /// Connected clients, and when each last had an answer.
    answered: BTreeMap<usize, Option<Instant>>,
}

impl Record {
    /// Each announced height's hash (and a node that announced it); no
    /// height with two hashes, no client seeing a block twice or out of order.
    fn announced(&self, wrong: &mut Vec<String>) -> BTreeMap<u64, (&str, u64)> {
        let mut hashes: BTreeMap<u64, (&str, u64)> = BTreeMap::new();
        let mut last: BTreeMap<usize, u64> = BTreeMap::new();
        for s in &self.seen {
            match hashes.get(&s.index) {
                Some((hash, node)) if *hash != s.hash => wrong.push(format!(
                    "block {} announced as {hash} on node {node} and as {} on node {}",
                    s.index, s.hash, s.node
                )),
                _ => {
                    hashes.insert(s.index, (&s.hash, s.node));
                }
            }
            if let Some(before) = last.insert(s.client, s.index) {
                if s.index <= before {
                    wrong.push(format!(
                        "client {} on node {} saw block {} after block {before}",
                        s.client, s.node, s.index
                    ));
                }
            }
        }
        hashes
    }

    /// Terms never go back; committed and applied not while a node runs.
    fn monotonic(&self, wrong: &mut Vec<String>) {
        let mut prev: BTreeMap<u64, &Sample> = BTreeMap::new();
        for s in &self.samples {
            if let Some(p) = prev.insert(s.node, s) {
                if s.term < p.term {
                    wrong.push(format!(
                        "node {} went from term {} back to {}",
                        s.node, p.term, s.term
                    ));
                }
                if p.life == s.life && (s.committed < p.committed || s.applied < p.applied) {
                    wrong.push(format!(
                        "node {} went from committed/applied {}/{} back to {}/{}",
                        s.node, p.committed, p.applied, s.committed, s.applied
                    ));
                }
            }
        }
    }
}

/// What the clients and the sampler recorded; see the module doc.
#[derive(Default)]
pub struct History(Mutex<Record>);

/// Totals, for the test's report.
#[derive(Debug)]
pub struct Summary {
    pub registrations: usize,
    pub announcements: usize,
    pub samples: usize,
    pub proposals: u64,
    /// How often a client heard "no leader reachable".
    pub no_leader: u64,
    /// Other `error:` lines clients read.
    pub errors: u64,
    /// The longest a client waited for the answer to a line.
    pub slowest: Duration,
    pub height: u64,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Samples every node's `cluster status` until `stop`.
    fn sample(&self, roster: &Roster, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            for (id, socket) in roster.sockets() {
                let life = roster.life(id);
                let Ok(Response::Cluster(info)) = ask(&socket, &Request::ClusterStatus) else {
                    continue;
                };
                // A kill during the question: the answer may be either life's.
                if roster.life(id) != life {
                    continue;
                }
                self.sampled(id, life.unwrap_or_default(), &info);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether every connected client had an answer after `t`.
    pub fn all_answered_since(&self, t: Instant) -> bool {
        let record = self.lock();
        record.answered.values().all(|a| a.is_some_and(|a| a > t))
    }

    fn sampled(&self, node: u64, life: u64, info: &ClusterInfo) {
        self.lock().samples.push(Sample {
            node,
            life,
            term: info.term,
            committed: info.committed,
            applied: info.applied,
        });
    }

    /// Checks everything recorded against `nodes`, the cluster's members at
    /// the end, once they have stopped changing; panics listing every
    /// violation found.
    pub fn check(&self, nodes: &[&Node]) -> Summary {
        let record = self.lock();
        let mut wrong = record.wrong.clone();

        let hashes = record.announced(&mut wrong);
        record.monotonic(&mut wrong);

        // Identical, verified chains holding every announced block.
        let chains: Vec<Vec<pos_core::Block>> = nodes.iter().map(|n| chain(n)).collect();
        for (n, c) in nodes.iter().zip(&chains).skip(1) {
            if *c != chains[0] {
                wrong.push(format!(
                    "node {} holds {} blocks, node {} holds {}, not the same chain",
                    n.id,
                    c.len(),
                    nodes[0].id,
                    chains[0].len()
                ));
            }
        }
        for n in nodes {
            if let Err(e) = chain_verify(&n.posd.socket()) {
                wrong.push(format!("chain verify on node {}: {e}", n.id));
            }
        }
        for (index, (hash, node)) in &hashes {
            let stored = chains[0].get(*index as usize).map(|b| b.hash.to_hex());
            if stored.as_deref() != Some(*hash) {
                wrong.push(format!(
                    "block {index} announced on node {node} as {hash}, the chain has {stored:?}"
                ));
            }
        }

        // Every acknowledged registration, on every node.
        for (address, entered) in &record.acked {
            let request = Request::Validator(address.parse().expect("an address"));
            for n in nodes {
                match n.ask(&request) {
                    Ok(Response::Validators(v)) if !v.is_empty() => {}
                    other => wrong.push(format!(
                        "validator {address} (acknowledged by node {entered}) missing on node {}: {other:?}",
                        n.id
                    )),
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} violations:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        Summary {
            registrations: record.acked.len(),
            announcements: record.seen.len(),
            samples: record.samples.len(),
            proposals: record.proposals,
            no_leader: record.no_leader,
            errors: record.errors,
            slowest: record.slowest,
            height: chains[0].len() as u64 - 1,
        }
    }
}

/// The node's whole chain (`posctl chain show`).
pub fn chain(node: &Node) -> Vec<pos_core::Block> {
    let request = Request::ChainShow {
        from: None,
        to: None,
        last: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let socket = node.posd.socket();
        let mut c = pos_proto::Client::connect(&socket, "pos-testkit")
            .await
            .unwrap_or_else(|e| panic!("node {}: {e}", node.id));
        c.send(&request).await.unwrap();
        let mut blocks = Vec::new();
        loop {
            match c.next().await.unwrap() {
                Response::Blocks(b) => blocks.extend(b),
                Response::End => return blocks,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
}

/// Validators registering and proposing on every node in the roster, and
/// the status sampler, all recording into a [`History`] until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `validators` clients, spread over the roster's nodes; each moves to
    /// another node when its own goes away.
    pub fn start(roster: &Roster, history: &Arc<History>, validators: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(AtomicUsize::new(0));
        let mut threads: Vec<JoinHandle<()>> = (0..validators)
            .map(|n| {
                let (roster, history, stop, clients) = (
                    roster.clone(),
                    Arc::clone(history),
                    Arc::clone(&stop),
                    Arc::clone(&clients),
                );
                std::thread::spawn(move || {
                    let mut attempt = n;
                    while !stop.load(Ordering::Relaxed) {
                        match roster.pick(attempt) {
                            Some((node, addr)) => {
                                let client = clients.fetch_add(1, Ordering::Relaxed);
                                let mut v = Validator {
                                    client,
                                    node,
                                    history: &history,
                                    buf: String::new(),
                                    block_line: false,
                                    registered: false,
                                    proposals: 0,
                                    asking: None,
                                };
                                history.lock().answered.insert(client, None);
                                v.run(addr, &stop);
                                let mut record = history.lock();
                                record.answered.remove(&client);
                                if stop.load(Ordering::Relaxed) {
                                    // Still waiting at the end counts too.
                                    v.answered(&mut record);
                                }
                            }
                            None => std::thread::sleep(Duration::from_millis(20)),
                        }
                        attempt += 1;
                    }
                })
            })
            .collect();
        let (roster, history, halt) = (roster.clone(), Arc::clone(history), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || history.sample(&roster, &halt)));
        Load { stop, threads }
    }

    /// Stops every client (they hang up) and the sampler.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("a load thread panicked");
        }
    }
}

/// Proposals a validator makes before it hangs up, so that registrations
/// go on all through a test.
const PROPOSALS: u32 = 10;

/// One validator connection, as `nc` would hold it.
struct Validator<'a> {
    client: usize,
    node: u64,
    history: &'a History,
    buf: String,
    /// The next line is an announced block's JSON.
    block_line: bool,
    registered: bool,
    /// Proposals confirmed on this connection.
    proposals: u32,
    /// A line was sent at this instant and not yet answered.
    asking: Option<Instant>,
}

impl Validator<'_> {
    /// Registers, then proposes every 100 ms (each line once the previous
    /// one was answered), reading everything posd says, until the
    /// connection ends, [`PROPOSALS`] were confirmed, or `stop`.
    fn run(&mut self, addr: SocketAddr, stop: &AtomicBool) {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        let mut bpm = 60;
        let mut due = Instant::now();
        while !stop.load(Ordering::Relaxed) && self.proposals < PROPOSALS {
            if self.asking.is_none() && Instant::now() >= due {
                due = Instant::now() + Duration::from_millis(100);
                let line = if self.registered {
                    bpm = 60 + (bpm + 7) % 60;
                    format!("{bpm}\n")
                } else {
                    "10\n".to_string()
                };
                if stream.write_all(line.as_bytes()).is_err() {
                    return;
                }
                self.asking = Some(Instant::now());
            }
            if !read_some(&mut stream, &mut self.buf) {
                return;
            }
            self.lines();
        }
    }

    /// Records each complete line read.
    fn lines(&mut self) {
        while let Some(end) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=end).collect();
            let line = line.trim_end();
            let mut record = self.history.lock();
            if std::mem::take(&mut self.block_line) {
                match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(json) => record.seen.push(Seen {
                        client: self.client,
                        node: self.node,
                        index: json["Index"].as_u64().unwrap_or(u64::MAX),
                        hash: json["Hash"].as_str().unwrap_or_default().to_string(),
                    }),
                    Err(e) => record.wrong.push(format!(
                        "node {} announced a block that is no JSON ({e}): {line:?}",
                        self.node
                    )),
                }
            } else if line.contains("winning validator: ") {
                self.block_line = true;
            } else if let Some(at) = line.find("Validator address: ") {
                let address = line[at + "Validator address: ".len()..].to_string();
                record.acked.push((address, self.node));
                self.registered = true;
                self.answered(&mut record);
            } else if line.contains("proposal ") && line.contains(" for block ") {
                record.proposals += 1;
                self.proposals += 1;
                self.answered(&mut record);
            } else if line.contains("error: no leader reachable, try another node") {
                record.no_leader += 1;
                self.answered(&mut record);
            } else if line.contains("slashed") {
                record.wrong.push(format!(
                    "client {} on node {} was told {line:?}",
                    self.client, self.node
                ));
            } else if line.contains("error: ") {
                record.errors += 1;
                self.answered(&mut record);
            }
        }
    }

    fn answered(&mut self, record: &mut Record) {
        if let Some(sent) = self.asking.take() {
            record.slowest = record.slowest.max(sent.elapsed());
            record.answered.insert(self.client, Some(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(client: usize, node: u64, index: u64, hash: &str) -> Seen {
        let hash = hash.to_string();
        Seen {
            client,
            node,
            index,
            hash,
        }
    }

    fn sample(node: u64, life: u64, term: u64, applied: u64) -> Sample {
        Sample {
            node,
            life,
            term,
            committed: applied,
            applied,
        }
    }

    fn violations(record: &Record) -> Vec<String> {
        let mut wrong = Vec::new();
        record.announced(&mut wrong);
        record.monotonic(&mut wrong);
        wrong
    }

    #[test]
    fn announcements_agree_and_each_client_sees_a_block_once() {
        let mut record = Record {
            seen: vec![
                seen(0, 1, 1, "aa"),
                seen(1, 2, 1, "aa"),
                seen(0, 1, 2, "bb"),
            ],
            ..Record::default()
        };
        assert!(violations(&record).is_empty());

        record.seen.push(seen(1, 2, 2, "cc"));
        record.seen.push(seen(0, 1, 2, "bb"));
        let wrong = violations(&record);
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong[0].contains("block 2 announced as bb on node 1 and as cc on node 2"));
        assert!(wrong[1].contains("client 0 on node 1 saw block 2 after block 2"));
    }

    #[test]
    fn terms_never_go_back_indexes_not_within_a_life() {
        // A restart (life 1) may start from a lower applied index, not term.
        let mut record = Record {
            samples: vec![
                sample(1, 0, 3, 50),
                sample(2, 0, 3, 40),
                sample(1, 1, 3, 45),
            ],
            ..Record::default()
        };
        assert!(violations(&record).is_empty());

        record.samples.push(sample(1, 1, 2, 46));
        record.samples.push(sample(2, 0, 4, 39));
        let wrong = violations(&record);
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong[0].contains("node 1 went from term 3 back to 2"));
        assert!(wrong[1].contains("node 2 went from committed/applied 40/40 back to 39/39"));
    }
}
