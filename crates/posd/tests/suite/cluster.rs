//! Several nodes, one chain (SPEC §9): real posd processes on loopback.

use pos_testkit::admin::{chain_verify, lottery_run};
use pos_testkit::cluster::{agreed_leader, eventually, ClusterDir, Node};
use pos_testkit::history::chain;
use pos_testkit::posd_bin;

/// Three nodes from nothing: one bootstraps, two join by snapshot; a
/// validator on every node; a round forced on a follower. Every client on
/// every node sees the block once, and the chains are identical.
#[test]
fn three_nodes_one_chain_validators_everywhere() {
    let dir = ClusterDir::new();
    let bin = posd_bin!();
    let args = ["--round-interval", "1h", "--http-listen", "127.0.0.1:0"];
    let nodes: Vec<Node> = (1..=3).map(|id| dir.start(bin, id, &args)).collect();
    let info = nodes[0].init();
    assert_eq!(info.role, "leader");
    assert_eq!(info.leader_id, Some(1));
    nodes[0].add(&nodes[1]);
    let info = nodes[0].add(&nodes[2]);
    assert_eq!(info.members.len(), 3);
    assert!(info.members.iter().all(|m| m.voter), "{info:?}");
    assert_eq!(agreed_leader(&[&nodes[0], &nodes[1], &nodes[2]]), 1);

    // A validator on every node: registered through the leader, wherever it entered.
    let mut clients: Vec<_> = nodes
        .iter()
        .map(|n| {
            let (mut c, address, _key) = n.posd.validator(10);
            c.propose(70);
            (c, address)
        })
        .collect();

    // posctl lottery run on a follower reaches the leader.
    let block = lottery_run(&nodes[2].posd.socket())
        .unwrap()
        .expect("a block");
    assert_eq!(block.index, 1);
    let addresses: Vec<String> = clients.iter().map(|(_, a)| a.clone()).collect();
    assert!(addresses.contains(&block.validator.unwrap().to_string()));
    for (c, _) in &mut clients {
        let (winner, json) = c.next_block();
        assert_eq!(winner, block.validator.unwrap().to_string());
        assert_eq!(json["Index"], 1);
    }
    // Once: a second round makes block 2, and nobody saw block 1 again.
    for (c, _) in &mut clients {
        c.propose(71);
    }
    let second = lottery_run(&nodes[1].posd.socket()).unwrap().unwrap();
    assert_eq!(second.index, 2);
    for (c, _) in &mut clients {
        let (_, json) = c.next_block();
        assert_eq!(json["Index"], 2);
    }

    let chains: Vec<_> = nodes
        .iter()
        .map(|n| {
            eventually("node applied block 2", || {
                let c = chain(n);
                (c.len() == 3).then_some(c)
            })
        })
        .collect();
    assert_eq!(chains[0], chains[1]);
    assert_eq!(chains[0], chains[2]);
    for n in &nodes {
        assert_eq!(chain_verify(&n.posd.socket()), Ok(3));
        let metrics = pos_testkit::http::get(n.posd.http(), "/metrics").body;
        let leads = if n.id == 1 { 1 } else { 0 };
        assert!(
            metrics.contains(&format!("posd_raft_is_leader {leads}\n"))
                && metrics.contains("posd_raft_term 1\n"),
            "node {}: {metrics}",
            n.id
        );
    }
}

/// An existing standalone data directory becomes a cluster's first node
/// with its chain intact; a node that joins receives that chain.
#[test]
fn a_standalone_chain_becomes_the_clusters() {
    let dir = ClusterDir::new();
    let bin = posd_bin!();
    let mut standalone = pos_testkit::Posd::start(
        bin,
        &dir.data_dir(1),
        &["--round-interval", "1h", "--registration-rate", "0"],
    );
    let (mut client, _, key) = standalone.validator(5);
    for bpm in [60, 61] {
        client.propose(bpm);
        lottery_run(&standalone.socket()).unwrap().unwrap();
        client.next_block();
    }
    drop(client);
    assert!(standalone.terminate().success());
    let node = dir.start(bin, 1, &["--round-interval", "1h"]);
    assert_eq!(node.status().role, "uninitialized");
    let before = chain(&node);
    assert_eq!(before.len(), 3);
    node.init();
    assert_eq!(chain(&node), before, "init kept the chain");
    let joiner = dir.start(bin, 2, &["--round-interval", "1h"]);
    node.add(&joiner);
    let joined = eventually("the joiner has the chain", || {
        let c = chain(&joiner);
        (c.len() == 3).then_some(c)
    });
    assert_eq!(joined, before);
    // The validator resumes on the joiner, with its balance.
    let mut c = joiner.posd.connect();
    c.expect("Enter token balance:");
    c.send(&format!("resume {key}\n"));
    c.expect("resumed: balance 7 tokens, 2 blocks won");
}
