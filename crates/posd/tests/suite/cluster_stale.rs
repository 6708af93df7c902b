//! Gray failures, part B (SPEC §13), real posd processes on loopback: a
//! node that was removed, a proposal sent twice after a lost answer, and
//! `forget_after` when who is connected is spread over the nodes.

use pos_core::Address;
use pos_proto::peer::{PeerRequest, PeerResponse, Submission};
use pos_proto::{Request, Response};
use pos_testkit::admin::lottery_run;
use pos_testkit::cluster::{eventually, ClusterDir, Node};
use pos_testkit::posd_bin;
use std::time::Duration;

const NOT_IN_CLUSTER: &str = "error: this node is not in the cluster, connect to another node";
/// What a removed node's connected validators are told.
const TOLD: &str = "this node was removed from the cluster";

/// Nodes 1..=`n` in one cluster that node 1 bootstrapped.
fn cluster(dir: &ClusterDir, n: u64, args: &[&str]) -> Vec<Node> {
    let nodes: Vec<Node> = (1..=n).map(|id| dir.start(posd_bin!(), id, args)).collect();
    nodes[0].init();
    for node in &nodes[1..] {
        nodes[0].add(node);
    }
    nodes
}

fn active_validators(node: &Node) -> u64 {
    match node.ask(&Request::Status) {
        Ok(Response::Status(s)) => s.validators_active,
        other => panic!("node {} status: {other:?}", node.id),
    }
}

/// Whether `node` stores the validator at `address`.
fn stores(node: &Node, address: &str) -> bool {
    let address: Address = address.parse().expect("an address");
    match node.ask(&Request::Validator(address)) {
        Ok(Response::Validators(found)) => !found.is_empty(),
        Err(e) if e.starts_with("no validator") => false,
        other => panic!("node {} validator {address}: {other:?}", node.id),
    }
}

/// A removed node says so, tells its validators once, refuses every write
/// at once (writing nothing anywhere), and still knows after a restart.
#[test]
fn a_removed_node_knows_it_and_refuses_writes() {
    let dir = ClusterDir::new();
    let args = ["--round-interval", "1h"];
    let mut nodes = cluster(&dir, 3, &args);
    // Joining (a snapshot's membership without it) is no removal.
    assert!(!nodes[2].posd.log().contains("not in the cluster"));
    let (mut client, _, _) = nodes[2].posd.validator(10);
    let before = active_validators(&nodes[0]);

    let info = nodes[0]
        .cluster(&Request::ClusterRemove { node_id: 3 })
        .expect("remove node 3");
    assert!(info.members.iter().all(|m| m.node_id != 3), "{info:?}");
    let info = eventually("node 3 knows it was removed", || {
        let info = nodes[2].status();
        (info.role == "removed").then_some(info)
    });
    assert_eq!(info.leader_id, None);
    client.expect(TOLD);

    // Writes on it are refused at once, never left unanswered.
    client.send("70\n");
    let said = client.expect(NOT_IN_CLUSTER);
    let mut fresh = nodes[2].posd.connect();
    fresh.expect("Enter token balance:");
    fresh.send("5\n");
    fresh.expect(NOT_IN_CLUSTER);
    let run = lottery_run(&nodes[2].posd.socket()).unwrap_err();
    assert!(run.contains("this node is not in the cluster"), "{run}");
    client.send("status\n");
    let said = said + &client.expect(" slashed\n");
    assert!(!said.contains(TOLD), "told twice: {said}");
    // Nothing it refused was written: the cluster goes on without it.
    let (_, _, _) = nodes[1].posd.validator(10);
    assert_eq!(active_validators(&nodes[0]), before + 1);

    // A restart does not make it forget.
    drop(client);
    nodes[2].posd.terminate();
    nodes[2] = dir.start(posd_bin!(), 3, &args);
    assert_eq!(nodes[2].status().role, "removed");
    assert!(nodes[2]
        .posd
        .log()
        .contains("this node is not in the cluster"));
    let mut again = nodes[2].posd.connect();
    again.expect("Enter token balance:");
    again.send("5\n");
    again.expect(NOT_IN_CLUSTER);
    assert_eq!(active_validators(&nodes[0]), before + 1);

    // A leader that removes itself knows it too.
    nodes[0]
        .cluster(&Request::ClusterRemove { node_id: 1 })
        .expect("node 1 removes itself");
    eventually("node 1 knows it was removed", || {
        (nodes[0].status().role == "removed").then_some(())
    });
    let mut late = nodes[0].posd.connect();
    late.expect("Enter token balance:");
    late.send("5\n");
    late.expect(NOT_IN_CLUSTER);
}

/// Sends `request` to node `to` over the peer link, as a node would.
fn peer_call(dir: &ClusterDir, node: &Node, request: &PeerRequest) -> PeerResponse {
    let secret = std::fs::read_to_string(&dir.secret).unwrap();
    let secret = pos_raft::ClusterSecret::new(secret.trim().as_bytes().to_vec());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = pos_raft::PeerConn::connect(&node.addr, 9, node.id, &secret)
            .await
            .expect("peer link");
        conn.call(request, Duration::from_secs(10))
            .await
            .expect("an answer")
    })
}

/// A proposal forwarded again after its answer was lost (the same origin
/// and ticket) is committed twice, but stands only in the round it was
/// made for: the next round, without it, makes no block.
#[test]
fn a_proposal_sent_twice_stands_only_in_its_round() {
    let dir = ClusterDir::new();
    let nodes = cluster(&dir, 1, &["--round-interval", "1h"]);
    let leader = &nodes[0];
    let (_client, address, _) = leader.posd.validator(10);
    let proposal = |block| PeerRequest::Submit {
        node: 1,
        ticket: u64::MAX - block,
        submission: Submission::ProposeFor {
            address: address.parse().unwrap(),
            bpm: 70,
            block,
            nonce: None,
        },
    };
    let committed = PeerResponse::Submitted(Ok(()));
    assert_eq!(peer_call(&dir, leader, &proposal(1)), committed);
    let first = lottery_run(&leader.posd.socket())
        .unwrap()
        .expect("block 1");
    assert_eq!(first.validator.unwrap().to_string(), address);

    assert_eq!(peer_call(&dir, leader, &proposal(1)), committed);
    assert_eq!(
        lottery_run(&leader.posd.socket()),
        Ok(None),
        "it stood again"
    );

    // A proposal made for the open round does stand.
    assert_eq!(peer_call(&dir, leader, &proposal(2)), committed);
    let second = lottery_run(&leader.posd.socket())
        .unwrap()
        .expect("block 2");
    assert_eq!(second.index, 2);
}

/// forget_after 4s on three nodes: a validator that registered on a
/// follower and hung up is forgotten on every node; one still connected to
/// the other follower is kept everywhere.
#[test]
fn forget_after_holds_across_the_cluster() {
    let dir = ClusterDir::new();
    let nodes = cluster(&dir, 3, &["--round-interval", "1h", "--forget-after", "4s"]);
    let (hung_up, gone, _) = nodes[1].posd.validator(10);
    drop(hung_up);
    let (_connected, kept, _) = nodes[2].posd.validator(10);
    eventually("the idle validator is gone from every node", || {
        nodes.iter().all(|n| !stores(n, &gone)).then_some(())
    });
    for n in &nodes {
        assert!(
            stores(n, &kept),
            "node {} forgot a connected validator",
            n.id
        );
    }
}
