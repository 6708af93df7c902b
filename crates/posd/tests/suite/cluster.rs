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
    let args = ["--round-interval", "1h"];
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
    }
}
