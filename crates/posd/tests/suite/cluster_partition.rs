//! A partitioned cluster (SPEC §9), in network namespaces the test makes:
//! five posd processes, each in its own namespace on one bridge
//! (10.77.0.0/24, never outside those namespaces); validators connect to
//! each node's loopback from inside its namespace. Needs root.

use pos_proto::ClusterInfo;
use pos_testkit::admin::{chain_verify, lottery_run};
use pos_testkit::cluster::{agreed_leader, eventually, ClusterDir, Node};
use pos_testkit::history::chain;
use pos_testkit::netns::Net;
use pos_testkit::{posd_bin, Client};

const NO_LEADER: &str = "error: no leader reachable, try another node\n";

/// The leader and one follower cut off from the other three: the two
/// commit nothing and tell their validators so (keeping them connected),
/// the three elect a leader and make a block; once healed, all five hold
/// the same verified chain and the cut-off validators take part again.
#[test]
#[ignore = "needs root: network namespaces"]
fn minority_commits_nothing_majority_goes_on_and_all_converge() {
    let net = Net::new(5);
    let dir = ClusterDir::new();
    let bin = posd_bin!();
    let args = ["--round-interval", "1h"];
    let nodes: Vec<Node> = (1..=5)
        .map(|id| {
            let listen = format!("{}:7070", Net::addr(id));
            dir.start_cmd(net.command(id, bin), id, &listen, &args)
        })
        .collect();
    let node = |id: u64| &nodes[id as usize - 1];
    nodes[0].init();
    for n in &nodes[1..] {
        nodes[0].add(n);
    }
    let leader = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    let validator = |id: u64| {
        let stream = net.connect(id, node(id).posd.addr);
        let (mut c, _, _) = Client::over(stream).register(10);
        c.propose(70);
        c
    };
    let mut clients: Vec<Client> = (1..=5).map(validator).collect();
    let first = lottery_run(&node(leader).posd.socket()).unwrap().unwrap();
    assert_eq!(first.index, 1);
    for c in &mut clients {
        assert_eq!(c.next_block().1["Index"], 1);
    }

    let follower = (1..=5).find(|id| *id != leader).unwrap();
    let minority = [leader, follower];
    let majority: Vec<u64> = (1..=5).filter(|id| !minority.contains(id)).collect();
    let before: Vec<ClusterInfo> = minority.iter().map(|id| node(*id).status()).collect();
    net.partition(&minority, &majority);

    // The three elect one of them and commit a block through a follower.
    let new_leader = eventually("the majority elects a leader of its own", || {
        let seen: Vec<Option<u64>> = majority
            .iter()
            .map(|id| node(*id).status().leader_id)
            .collect();
        let first = seen[0].filter(|l| majority.contains(l))?;
        seen.iter().all(|l| *l == Some(first)).then_some(first)
    });
    for id in &majority {
        clients[*id as usize - 1].propose(71);
    }
    let via = *majority.iter().find(|id| **id != new_leader).unwrap();
    let second = lottery_run(&node(via).posd.socket()).unwrap().unwrap();
    assert_eq!(second.index, 2);
    for id in &majority {
        assert_eq!(clients[*id as usize - 1].next_block().1["Index"], 2);
    }

    // The two commit nothing: proposals, a new validator and a round all
    // hear that no leader is reachable; the connections stay open.
    for id in minority {
        let c = &mut clients[id as usize - 1];
        c.send("72\n");
        c.expect(NO_LEADER);
        let err = lottery_run(&node(id).posd.socket()).expect_err("a round in the minority");
        assert!(err.contains("no leader reachable"), "{err}");
    }
    let mut newcomer = Client::over(net.connect(follower, node(follower).posd.addr));
    newcomer.expect("Enter token balance:");
    newcomer.send("5\n");
    newcomer.expect(NO_LEADER);
    for (id, was) in minority.iter().zip(&before) {
        let now = node(*id).status();
        assert_eq!(now.committed, was.committed, "node {id} committed: {now:?}");
        assert_eq!(now.applied, was.applied, "node {id} applied: {now:?}");
        assert_eq!(chain(node(*id)).len(), 2, "node {id} grew its chain");
    }

    net.heal(&minority, &majority);
    let tip = eventually("all five hold the majority's chain", || {
        let chains: Vec<_> = nodes.iter().map(chain).collect();
        (chains[0].len() == 3 && chains.iter().all(|c| *c == chains[0])).then(|| chains[0].clone())
    });
    assert_eq!(tip[2], second);
    for n in &nodes {
        assert_eq!(chain_verify(&n.posd.socket()), Ok(3), "node {}", n.id);
    }
    // The cut-off validators, still connected, are in the next block.
    agreed_leader(&nodes.iter().collect::<Vec<_>>());
    for id in minority {
        let c = &mut clients[id as usize - 1];
        assert_eq!(c.next_block().1["Index"], 2);
        c.propose(73);
    }
    let third = lottery_run(&node(follower).posd.socket()).unwrap().unwrap();
    assert_eq!(third.index, 3);
    for c in &mut clients {
        assert_eq!(c.next_block().1["Index"], 3);
    }
}
