//! A write its node sent twice (the leader changed under the first copy)
//! is applied once, before and after a restart (SPEC §13).

use pos_core::transition::Outcome;
use pos_core::{Address, ChainSpec, Digest};
use pos_raft::{Batch, ClusterSecret, Node, Op, Origin, Tagged};
use pos_store::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The origins of the ops applied, in order.
#[derive(Default)]
struct Seen(Mutex<Vec<Origin>>);

impl pos_raft::Observer for Seen {
    fn applied(&self, _index: u64, ops: &[Tagged], _outcomes: &[Option<Outcome>]) {
        self.0.lock().unwrap().extend(ops.iter().map(|t| t.origin));
    }
    fn restored(&self) {}
}

async fn start(store: &Arc<Store>, dir: &std::path::Path, seen: &Arc<Seen>) -> Node {
    let secret = ClusterSecret::new(b"a secret of sixteen or more".to_vec());
    Node::start(
        1,
        Duration::from_millis(300),
        Arc::clone(store),
        dir,
        Arc::clone(seen) as Arc<dyn pos_raft::Observer>,
        secret,
    )
    .await
    .expect("node starts")
}

fn withdraw(node: u64, ticket: u64) -> Tagged {
    Tagged {
        origin: Origin { node, ticket },
        op: Op::Withdraw {
            address: Address(Digest::of(b"someone")),
        },
    }
}

async fn write(node: &Node, ops: Vec<Tagged>) {
    node.write(Batch { ops }).await.expect("written");
}

#[tokio::test]
async fn a_resent_ticket_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &ChainSpec::default()).unwrap());
    let seen = Arc::new(Seen::default());
    let node = start(&store, dir.path(), &seen).await;
    node.init("127.0.0.1:1".into()).await.unwrap();

    write(&node, vec![withdraw(2, 41), withdraw(2, 42)]).await;
    // The copies: in a later entry, and twice in one entry; another node's
    // ticket 42 is another write.
    write(&node, vec![withdraw(2, 42)]).await;
    write(
        &node,
        vec![withdraw(3, 42), withdraw(3, 42), withdraw(2, 43)],
    )
    .await;
    let origins = |seen: &Seen| -> Vec<(u64, u64)> {
        let seen = seen.0.lock().unwrap();
        seen.iter().map(|o| (o.node, o.ticket)).collect()
    };
    assert_eq!(origins(&seen), [(2, 41), (2, 42), (3, 42), (2, 43)]);
    node.shutdown().await;
    drop(node);

    // The record of applied tickets is state: a restarted node skips too.
    let seen = Arc::new(Seen::default());
    let node = start(&store, dir.path(), &seen).await;
    node.ensure_leader().await.expect("the only voter leads");
    write(
        &node,
        vec![withdraw(2, 41), withdraw(3, 42), withdraw(2, 44)],
    )
    .await;
    assert_eq!(origins(&seen), [(2, 44)]);
}
