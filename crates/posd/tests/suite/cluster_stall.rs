//! Gray failures of a cluster (SPEC §13), real posd processes on loopback:
//! a frozen leader (SIGSTOP), a leader stopped with SIGTERM (hand-over),
//! and the nemesis freezing and thawing the leader and a follower. Every
//! run ends with the history checker (pos_testkit::history).
//!
//! `POSD_CLUSTER_STALLS=20 cargo test -p posd --test suite -- cluster_stall::nemesis --nocapture`
//! runs a long nemesis; the SIGSTOP and SIGTERM tests print their figures
//! (docs/RELIABILITY.md) with `--nocapture`.

use super::cluster_faults::{
    by_id, cluster, env_count, grows, height, new_leader_commits, refs, spread, stop_and_check,
    three_under_load, ARGS, VALIDATORS,
};
use pos_proto::Request;
use pos_testkit::cluster::{agreed_leader, eventually, ClusterDir, Node};
use pos_testkit::history::{History, Load, Roster};
use pos_testkit::posd_bin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The election timeout, for the timed tests.
const ELECTION: &str = "1s";
/// SPEC §13: a write is answered within 2 × election_timeout + 1 s of the fault.
const ANSWERED: Duration = Duration::from_secs(3);
/// SPEC §13: after a leader is stopped, the cluster commits again within this.
const HANDED_OVER: Duration = Duration::from_secs(1);

fn others(nodes: &[Node], id: u64) -> Vec<&Node> {
    nodes.iter().filter(|n| n.id != id).collect()
}

/// Waits until `node` follows a leader and holds `leader`'s chain as of now.
fn caught_up(node: &Node, leader: &Node) {
    let target = eventually("the leader's height", || height(leader));
    eventually("the node caught up", || {
        let info = node.cluster(&Request::ClusterStatus).ok()?;
        (info.leader_id.is_some() && height(node)? >= target).then_some(())
    });
}

/// Waits until `node` has committed `entries` more Raft entries (rounds
/// close every 200 ms, with a block or without).
fn commits(node: &Node, entries: u64) {
    let committed = || Some(node.cluster(&Request::ClusterStatus).ok()?.committed);
    let from = eventually("a committed index", committed);
    eventually("entries committed", || {
        (committed()? >= from + entries).then_some(())
    });
}

/// The leader frozen under load, election_timeout 1s, validators on the
/// followers: each of their writes is answered (resent to the new leader)
/// within 2 × election_timeout plus 1 s, none hears "no leader reachable",
/// and the new leader's rounds have candidates (it commits blocks).
#[test]
fn sigstop_the_leader_under_load() {
    let dir = ClusterDir::with_election_timeout(ELECTION);
    let nodes = cluster(&dir, 3, 3);
    let leader = agreed_leader(&refs(&nodes));
    let followers = others(&nodes, leader);
    let roster = Roster::default();
    followers.iter().for_each(|n| roster.up(n));
    let history = Arc::new(History::default());
    let load = Load::start(&roster, &history, VALIDATORS);
    grows(followers[0], 2);

    let frozen = by_id(&nodes, leader);
    let term = frozen.status().term;
    frozen.posd.freeze();
    let froze = Instant::now();
    let (new, led) = new_leader_commits(&followers, term, froze);
    let committed = froze.elapsed();
    eventually("every client answered after the freeze", || {
        history.all_answered_since(froze).then_some(())
    });
    let served = froze.elapsed();
    assert!(
        served < ANSWERED,
        "some client waited {served:?} after leader {leader} froze"
    );
    grows(new, 2);

    frozen.posd.thaw();
    caught_up(frozen, new);
    let summary = stop_and_check(load, &history, &refs(&nodes));
    assert_eq!(summary.no_leader, 0, "{summary:?}");
    assert!(summary.slowest < ANSWERED, "{summary:?}");
    println!(
        "SIGSTOP of the leader, election_timeout {ELECTION}: node {} led after {led:?}, \
         committed a block after {committed:?}; every client answered {served:?} after; {summary:?}",
        new.id
    );
}

/// SIGTERM of the leader under load, election_timeout 1s: it hands over to
/// a follower, and the cluster commits again within 1 s (an election would
/// take 1.5 to 2 s); nothing acknowledged is lost.
#[test]
fn sigterm_the_leader_hands_over() {
    let dir = ClusterDir::with_election_timeout(ELECTION);
    let bin = posd_bin!();
    let (mut nodes, roster, history, load) = three_under_load(&dir);

    let leader = agreed_leader(&refs(&nodes));
    let k = nodes.iter().position(|n| n.id == leader).unwrap();
    let term = nodes[k].status().term;
    let addr = nodes[k].addr.clone();
    roster.down(leader);
    nodes[k].posd.signal(libc::SIGTERM);
    let stopped = Instant::now();
    let (new, led) = new_leader_commits(&others(&nodes, leader), term, stopped);
    let committed = stopped.elapsed();
    let new = new.id;
    let exit = nodes[k].posd.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let log = nodes[k].posd.log();
    assert!(
        log.contains("handed leadership over"),
        "node {leader} logged:\n{log}"
    );
    assert!(
        committed < HANDED_OVER,
        "node {new} led {led:?} and committed {committed:?} after node {leader} was stopped"
    );

    nodes[k] = dir.start_at(bin, leader, &addr, &ARGS);
    roster.up(&nodes[k]);
    caught_up(&nodes[k], by_id(&nodes, new));
    let summary = stop_and_check(load, &history, &refs(&nodes));
    println!(
        "SIGTERM of the leader, election_timeout {ELECTION}: node {new} led after {led:?}, \
         committed a block after {committed:?}; {summary:?}"
    );
}

/// The nemesis: SIGSTOP and SIGCONT of the leader, then of a follower,
/// `POSD_CLUSTER_STALLS` times (2 by default), under load. While the leader
/// is frozen the others elect a leader that commits a block; while a
/// follower is, the leader goes on committing entries; each thawed node
/// catches up; at the end the history holds (nothing acknowledged lost, one
/// block per height).
#[test]
fn nemesis_freezes_the_leader_and_a_follower() {
    let stalls = env_count("POSD_CLUSTER_STALLS", 2);
    let dir = ClusterDir::new();
    let (nodes, roster, history, load) = three_under_load(&dir);

    let mut replaced = Vec::new();
    for _ in 0..stalls {
        let leader = agreed_leader(&refs(&nodes));
        let frozen = by_id(&nodes, leader);
        let term = frozen.status().term;
        roster.down(leader);
        frozen.posd.freeze();
        let froze = Instant::now();
        let (new, _) = new_leader_commits(&others(&nodes, leader), term, froze);
        replaced.push(froze.elapsed());
        frozen.posd.thaw();
        roster.up(frozen);
        caught_up(frozen, new);

        let leader = agreed_leader(&refs(&nodes));
        let follower = others(&nodes, leader)[0];
        roster.down(follower.id);
        follower.posd.freeze();
        commits(by_id(&nodes, leader), 4);
        follower.posd.thaw();
        roster.up(follower);
        caught_up(follower, by_id(&nodes, leader));
    }
    let summary = stop_and_check(load, &history, &refs(&nodes));
    println!(
        "nemesis, {stalls} times SIGSTOP/SIGCONT of the leader and of a follower: \
         a new leader committed {}; {summary:?}",
        spread(replaced)
    );
}
