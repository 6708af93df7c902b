//! Sealed cluster links (SPEC §14), real posd processes on loopback: nodes
//! 2 and 3 are added by the address of a recording proxy in front of each,
//! so every byte the leader (node 1) replicates to them crosses a proxy
//! (every command in the log does), along with their answers.

use super::cluster_faults::{grows, stop_and_check, VALIDATORS};
use super::lottery::{reveal_of, round_head};
use pos_proto::peer::{PeerHandshake, PeerHello};
use pos_proto::{Request, Response};
use pos_testkit::cluster::{agreed_leader, eventually, ClusterDir, Node};
use pos_testkit::history::{chain, History, Load, Roster, Summary};
use pos_testkit::posd_bin;
use pos_testkit::proxy::Proxy;
use std::io::{Read, Write};
use std::sync::Arc;

/// Rounds as the cluster fault tests have them.
const UNDER_LOAD: [&str; 2] = ["--round-interval", "200ms"];
/// What the leader logs, once, when a frame fails authentication.
const BROKEN: &str = "cluster link broken";

/// Nodes 1..=3, node 1 leading; nodes 2 and 3 members by their proxy's address.
fn sealed_cluster(args: &[&str]) -> (ClusterDir, Vec<Node>, Vec<Proxy>) {
    let dir = ClusterDir::new();
    let nodes: Vec<Node> = (1..=3).map(|id| dir.start(posd_bin!(), id, args)).collect();
    nodes[0].init();
    let proxies: Vec<Proxy> = nodes[1..].iter().map(|n| Proxy::start(&n.addr)).collect();
    for (n, p) in nodes[1..].iter().zip(&proxies) {
        let add = Request::ClusterAdd {
            node_id: n.id,
            addr: p.addr.clone(),
        };
        nodes[0]
            .cluster(&add)
            .unwrap_or_else(|e| panic!("add node {} by its proxy: {e}", n.id));
    }
    assert_eq!(agreed_leader(&nodes.iter().collect::<Vec<_>>()), 1);
    (dir, nodes, proxies)
}

/// Validators on every node until `until` returns; then the history check:
/// identical chains that verify everywhere, nothing acknowledged lost.
fn under_load(nodes: &[Node], until: impl FnOnce()) -> Summary {
    let roster = Roster::default();
    nodes.iter().for_each(|n| roster.up(n));
    let history = Arc::new(History::default());
    let load = Load::start(&roster, &history, VALIDATORS);
    grows(&nodes[0], 2);
    until();
    stop_and_check(load, &history, &nodes.iter().collect::<Vec<_>>())
}

/// The node's last applied log index, once it has applied all it knows committed.
fn settled(node: &Node) -> u64 {
    eventually("the node applied what is committed", || {
        let s = node.status();
        (s.applied == s.committed).then_some(s.applied)
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a reader of the links must not find: every round's revealed
/// secret and every validator's address (raw and as text), and a slash
/// reason (the one command that carries text).
#[test]
fn a_capture_of_the_links_under_load_holds_no_secret_address_or_command() {
    let (_dir, nodes, proxies) = sealed_cluster(&UNDER_LOAD);
    let summary = under_load(&nodes, || grows(&nodes[0], 4));
    // Slashed after the load: its announcement would surprise the load's
    // clients. The slashing travels to nodes 2 and 3 in the log.
    const REASON: &str = "canary-bpm-in-the-clear";
    let (mut bad, address, _) = nodes[1].posd.validator(10);
    bad.send(&format!("{REASON}\n"));
    bad.expect("slashed");
    let slashed = Request::Validator(address.parse().unwrap());
    for n in &nodes {
        eventually("every node applied the slashing", || {
            match n.ask(&slashed) {
                Ok(Response::Validators(v)) => v[0].validator.slashed.as_ref().map(|_| ()),
                _ => None,
            }
        });
    }
    let socket = nodes[0].posd.socket();
    let mut needles: Vec<(String, Vec<u8>)> = vec![(REASON.into(), REASON.into())];
    for block in &chain(&nodes[0])[1..] {
        let reveal = reveal_of(&round_head(&socket, block.index));
        needles.push((
            format!("secret of round {}", block.index),
            reveal.0.to_vec(),
        ));
        needles.push((reveal.to_hex(), reveal.to_hex().into()));
    }
    let Ok(Response::Validators(all)) = nodes[0].ask(&Request::Validators { all: true }) else {
        panic!("no validator list");
    };
    assert!(all.len() > VALIDATORS, "{} validators", all.len());
    for v in &all {
        let address = v.validator.address;
        needles.push((address.to_string(), address.0 .0.to_vec()));
        needles.push((address.to_string(), address.to_string().into()));
        needles.push((address.to_string(), address.0.to_hex().into()));
    }
    let capture: Vec<u8> = proxies.iter().flat_map(Proxy::capture).collect();
    // Several rounds of log entries crossed the proxies.
    assert!(capture.len() > 20_000, "{} bytes captured", capture.len());
    let found: Vec<&String> = needles
        .iter()
        .filter(|(_, bytes)| contains(&capture, bytes))
        .map(|(what, _)| what)
        .collect();
    assert!(found.is_empty(), "in the clear on the links: {found:?}");
    println!(
        "{} bytes captured, {} needles absent; {summary:?}",
        capture.len(),
        needles.len()
    );
}

/// One byte flipped mid-stream, three times over: each time the link
/// breaks (logged once by the node that read it), is made again, and the
/// cluster goes on; nothing acknowledged is lost and the chains agree.
#[test]
fn a_flipped_byte_breaks_the_link_which_is_made_again() {
    let (_dir, nodes, proxies) = sealed_cluster(&UNDER_LOAD);
    let summary = under_load(&nodes, || {
        for round in 1..=3 {
            proxies[0].flip(1);
            eventually("a byte flipped", || {
                (proxies[0].flipped() >= round).then_some(())
            });
            grows(&nodes[1], 2);
        }
    });
    assert_eq!(proxies[0].flipped(), 3);
    // Whoever reads the flipped frame warns once. (A flip in a record's
    // length can also end as a timeout or a cut frame, with no warning.)
    let broken: usize = nodes
        .iter()
        .map(|n| n.posd.log().matches(BROKEN).count())
        .sum();
    assert!((1..=3).contains(&broken), "{broken} warnings for 3 flips");
    println!("3 flips: {summary:?}");
}

/// Everything node 1 sent node 2 on one recorded connection, replayed to
/// node 2 on a new one: the handshake's replay is answered (it proves
/// nothing yet), the first frame fails, the link is dropped and logged,
/// and nothing changes.
#[test]
fn a_replayed_session_is_refused_and_changes_nothing() {
    let (_dir, nodes, proxies) = sealed_cluster(&["--round-interval", "1h"]);
    let (mut c, _, _) = nodes[1].posd.validator(10);
    c.propose(70);
    let block = pos_testkit::admin::lottery_run(&nodes[0].posd.socket())
        .unwrap()
        .expect("a block");
    let recorded = eventually("a session that carried frames", || {
        let sessions = proxies[0].sessions();
        sessions.into_iter().map(|s| s.sent).max_by_key(Vec::len)
    });
    assert!(recorded.len() > 1_000, "{} bytes", recorded.len());
    // Node 2 as it stands once it has the block (it may learn of the commit
    // a heartbeat after the leader answered).
    eventually("node 2 applied the block", || {
        chain(&nodes[1]).contains(&block).then_some(())
    });
    let state = |node: &Node| (node.status().term, settled(node), chain(node));
    let before = state(&nodes[1]);

    let mut replay = std::net::TcpStream::connect(&nodes[1].addr).unwrap();
    replay
        .set_read_timeout(Some(pos_testkit::PATIENCE))
        .unwrap();
    replay.write_all(&recorded).unwrap();
    // Node 2 hangs up (a reset, with the replay's rest unread).
    let _ = replay.read_to_end(&mut Vec::new());
    nodes[1].posd.wait_log(BROKEN);
    assert_eq!(nodes[1].posd.log().matches(BROKEN).count(), 1);
    let after = state(&nodes[1]);
    assert_eq!(after.2, before.2, "the replay changed node 2's chain");
    // An election under a loaded machine adds the new leader's blank entry;
    // otherwise not one entry was applied.
    if after.0 == before.0 {
        assert_eq!(after.1, before.1, "the replay applied entries on node 2");
    }
}

/// A node of version 1 says hello: it is refused with one line naming both
/// versions, in the frame version 1 reads as its refusal, and it is logged.
#[test]
fn a_version_1_hello_is_refused_naming_both_versions() {
    let dir = ClusterDir::new();
    let node = dir.start(posd_bin!(), 1, &["--round-interval", "1h"]);
    node.init();
    let mut old = std::net::TcpStream::connect(&node.addr).unwrap();
    let hello = pos_proto::encode(&PeerHello {
        version: 1,
        ..PeerHello::new(7, 1, [0; 32])
    });
    old.write_all(&(hello.len() as u32).to_be_bytes()).unwrap();
    old.write_all(&hello).unwrap();
    let mut answer = Vec::new();
    old.read_to_end(&mut answer).unwrap();
    let why = "node 7 speaks peer protocol version 1, node 1 speaks version 2: \
               upgrade every node (docs/CLUSTER.md)";
    assert_eq!(
        pos_proto::decode::<PeerHandshake>(&answer[4..]).unwrap(),
        PeerHandshake::Refused(why.into())
    );
    assert!(node.posd.wait_log("cluster peer refused").contains(why));
}
