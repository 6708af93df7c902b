//! A cluster under faults (SPEC §9), real posd processes on loopback:
//! kill -9 of the leader under load, membership change under load, and a
//! node with no leader. Every run under load ends with the history checker
//! (pos_testkit::history).
//!
//! `POSD_CLUSTER_KILLS=20 cargo test -p posd --test suite -- cluster_faults::kill9 --nocapture`
//! runs the 20 kills and prints the figures (docs/RELIABILITY.md).

use pos_proto::{Request, Response};
use pos_testkit::admin::lottery_run;
use pos_testkit::cluster::{agreed_leader, eventually, ClusterDir, Node};
use pos_testkit::history::{History, Load, Roster, Summary};
use pos_testkit::{posd_bin, PATIENCE};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rounds as the load has them.
const ARGS: [&str; 2] = ["--round-interval", "200ms"];
/// Validator clients under load, spread over the nodes.
pub(crate) const VALIDATORS: usize = 6;
/// SPEC §9: after the leader dies, a new leader commits within this.
const NEW_LEADER_COMMITS: Duration = Duration::from_secs(5);

/// The node's chain height, `None` while it does not answer.
pub(crate) fn height(node: &Node) -> Option<u64> {
    match node.ask(&Request::Status) {
        Ok(Response::Status(s)) => Some(s.height),
        _ => None,
    }
}

/// Nodes 1..=`started` running; nodes 1..=`members` in one cluster that
/// node 1 bootstrapped.
fn cluster(dir: &ClusterDir, started: u64, members: usize) -> Vec<Node> {
    let nodes: Vec<Node> = (1..=started)
        .map(|id| dir.start(posd_bin!(), id, &ARGS))
        .collect();
    nodes[0].init();
    for n in &nodes[1..members] {
        nodes[0].add(n);
    }
    nodes
}

fn refs(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

/// The leader all of `nodes` agree on, once it is one of them.
fn leader_among(nodes: &[Node]) -> u64 {
    eventually("a leader among the nodes", || {
        let leaders: Vec<Option<u64>> = nodes
            .iter()
            .map(|n| n.cluster(&Request::ClusterStatus).ok()?.leader_id)
            .collect();
        let first = leaders[0]?;
        let agreed = leaders.iter().all(|l| *l == Some(first));
        (agreed && nodes.iter().any(|n| n.id == first)).then_some(first)
    })
}

fn by_id(nodes: &[Node], id: u64) -> &Node {
    nodes
        .iter()
        .find(|n| n.id == id)
        .expect("a node with that id")
}

/// Waits until `node`'s chain grows by `blocks` from now.
pub(crate) fn grows(node: &Node, blocks: u64) {
    let from = eventually("a height", || height(node));
    eventually("blocks under load", || {
        (height(node)? >= from + blocks).then_some(())
    });
}

/// Stops the load, lets the cluster settle (no proposal pending anywhere,
/// one height everywhere), and runs the history checker.
pub(crate) fn stop_and_check(load: Load, history: &History, nodes: &[&Node]) -> Summary {
    load.stop();
    eventually("every node settled at one height", || {
        let mut heights = Vec::new();
        for n in nodes {
            match n.ask(&Request::Status) {
                Ok(Response::Status(s)) if s.pending_proposals == 0 => heights.push(s.height),
                _ => return None,
            }
        }
        heights.windows(2).all(|w| w[0] == w[1]).then_some(())
    });
    let summary = history.check(nodes);
    assert!(summary.registrations >= VALIDATORS, "{summary:?}");
    assert!(summary.height >= 2, "{summary:?}");
    summary
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count"))
    })
}

/// "max M median D" of `times`.
fn spread(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "max {:?} median {:?}",
        times[times.len() - 1],
        times[times.len() / 2]
    )
}

/// kill -9 of the leader under load, `POSD_CLUSTER_KILLS` times (3 by
/// default): each time a new leader commits a block within 5 s, and the
/// killed node, restarted on its data dir and cluster port, rejoins.
#[test]
fn kill9_the_leader_under_load() {
    let kills = env_count("POSD_CLUSTER_KILLS", 3);
    let dir = ClusterDir::new();
    let bin = posd_bin!();
    let mut nodes = cluster(&dir, 3, 3);
    let roster = Roster::default();
    nodes.iter().for_each(|n| roster.up(n));
    let history = Arc::new(History::default());
    let load = Load::start(&roster, &history, VALIDATORS);
    grows(&nodes[0], 2);

    let (mut elected, mut committed, mut served) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..kills {
        let leader = agreed_leader(&refs(&nodes));
        let k = nodes.iter().position(|n| n.id == leader).unwrap();
        let term = nodes[k].status().term;
        let addr = nodes[k].addr.clone();
        roster.down(leader);
        nodes[k].posd.kill9();
        let killed = Instant::now();
        let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != leader).collect();
        let (new, base) = eventually("a new leader", || {
            survivors.iter().find_map(|n| {
                let info = n.cluster(&Request::ClusterStatus).ok()?;
                (info.role == "leader" && info.term > term).then_some((*n, height(n)?))
            })
        });
        elected.push(killed.elapsed());
        eventually("a block committed by the new leader", || {
            (height(new)? > base).then_some(())
        });
        let took = killed.elapsed();
        committed.push(took);
        assert!(
            took < NEW_LEADER_COMMITS,
            "node {} led {:?} and committed its first block {took:?} after node {leader} was killed",
            new.id,
            elected.last().unwrap()
        );
        // Every client of the survivors is served again, those whose write
        // was in flight to the dead leader included.
        eventually("every client answered after the kill", || {
            history.all_answered_since(killed).then_some(())
        });
        let took = killed.elapsed();
        served.push(took);
        assert!(
            took < NEW_LEADER_COMMITS,
            "some client of the survivors waited {took:?} after node {leader} was killed"
        );
        let new = new.id;

        nodes[k] = dir.start_at(bin, leader, &addr, &ARGS);
        roster.up(&nodes[k]);
        let target = height(by_id(&nodes, new)).expect("the leader answers");
        eventually("the killed node rejoined and caught up", || {
            let back = nodes[k].cluster(&Request::ClusterStatus).ok()?;
            (back.leader_id.is_some() && height(&nodes[k])? >= target).then_some(())
        });
    }
    let summary = stop_and_check(load, &history, &refs(&nodes));
    // A write in flight when its leader died is answered once a new leader
    // has it, not after a timeout.
    assert!(summary.slowest < NEW_LEADER_COMMITS, "{summary:?}");
    println!(
        "kill -9 of the leader, {kills} times, after the kill: a new leader {}; \
         its first block {}; every client answered {}; {summary:?}",
        spread(elected),
        spread(committed),
        spread(served),
    );
}

/// 3 -> 5 -> 3 voters while validators register and propose, the leader
/// removing itself on the way down.
#[test]
fn membership_three_to_five_to_three_under_load() {
    let dir = ClusterDir::new();
    let mut nodes = cluster(&dir, 5, 3);
    let roster = Roster::default();
    nodes[..3].iter().for_each(|n| roster.up(n));
    let history = Arc::new(History::default());
    let load = Load::start(&roster, &history, VALIDATORS);
    grows(&nodes[0], 2);

    for k in 3..5 {
        let leader = agreed_leader(&refs(&nodes[..k]));
        by_id(&nodes, leader).add(&nodes[k]);
        roster.up(&nodes[k]);
    }
    let mut leader = agreed_leader(&refs(&nodes));
    let info = by_id(&nodes, leader).status();
    assert_eq!(info.members.len(), 5, "{info:?}");
    assert!(info.members.iter().all(|m| m.voter), "{info:?}");
    grows(by_id(&nodes, leader), 2);

    // The leader removes itself, then the new leader removes one more.
    let mut removed = leader;
    for _ in 0..2 {
        let at = by_id(&nodes, leader);
        let info = at
            .cluster(&Request::ClusterRemove { node_id: removed })
            .unwrap_or_else(|e| panic!("node {leader} cannot remove node {removed}: {e}"));
        assert!(
            info.members.iter().all(|m| m.node_id != removed),
            "{info:?}"
        );
        roster.remove(removed);
        let k = nodes.iter().position(|n| n.id == removed).unwrap();
        nodes.remove(k).posd.terminate();
        leader = leader_among(&nodes);
        grows(by_id(&nodes, leader), 2);
        removed = nodes.iter().map(|n| n.id).find(|id| *id != leader).unwrap();
    }
    let info = by_id(&nodes, leader).status();
    assert_eq!(info.members.len(), 3, "{info:?}");
    let summary = stop_and_check(load, &history, &refs(&nodes));
    println!("membership 3 -> 5 -> 3: {summary:?}");
}

/// With 2 of 3 nodes dead, a validator on the survivor is told there is no
/// leader, is not slashed, and keeps its connection; once a node is back,
/// its proposal goes through.
#[test]
fn no_leader_error_keeps_the_validator() {
    let dir = ClusterDir::new();
    let bin = posd_bin!();
    let args = ["--round-interval", "1h"];
    let mut nodes: Vec<Node> = (1..=3).map(|id| dir.start(bin, id, &args)).collect();
    nodes[0].init();
    nodes[0].add(&nodes[1]);
    nodes[0].add(&nodes[2]);
    assert_eq!(agreed_leader(&refs(&nodes)), 1);
    let survivor = nodes.pop().unwrap();
    let (mut validator, address, _key) = survivor.posd.validator(10);
    validator.propose(70);
    validator.expect("Enter a new BPM:");

    let addr = nodes[0].addr.clone();
    nodes[0].posd.kill9();
    nodes[1].posd.kill9();
    // A proposal, and a registration on a new connection.
    let mut newcomer = survivor.posd.connect();
    newcomer.expect("Enter token balance:");
    let asked = Instant::now();
    validator.send("71\n");
    newcomer.send("10\n");
    const NO_LEADER: &str = "error: no leader reachable, try another node\n";
    assert_eq!(
        validator.expect("Enter a new BPM:"),
        format!("{NO_LEADER}Enter a new BPM:")
    );
    assert_eq!(
        newcomer.expect("Enter token balance:"),
        format!("{NO_LEADER}Enter token balance:")
    );
    assert!(asked.elapsed() < PATIENCE);
    match survivor.ask(&Request::Validator(address.parse().unwrap())) {
        Ok(Response::Validators(v)) => assert!(v[0].validator.slashed.is_none(), "{v:?}"),
        other => panic!("validator {address}: {other:?}"),
    }

    nodes[0] = dir.start_at(bin, 1, &addr, &args);
    agreed_leader(&[&nodes[0], &survivor]);
    validator.propose(72);
    newcomer.send("10\n");
    newcomer.registration();
    let block = lottery_run(&survivor.posd.socket())
        .unwrap()
        .expect("a block");
    assert_eq!(block.validator.unwrap().to_string(), address);
    let (winner, json) = validator.next_block();
    assert_eq!(winner, address);
    assert_eq!(json["BPM"], 72);
}
