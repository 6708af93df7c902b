//! A restarted node's view starts from what it stored, never from blank.

use pos_core::transition::Outcome;
use pos_core::ChainSpec;
use pos_raft::{ClusterSecret, Node, Role, Tagged};
use pos_store::Store;
use std::sync::Arc;
use std::time::Duration;

struct Quiet;

impl pos_raft::Observer for Quiet {
    fn applied(&self, _index: u64, _ops: &[Tagged], _outcomes: &[Option<Outcome>]) {}
    fn restored(&self) {}
}

async fn start(store: &Arc<Store>, dir: &std::path::Path) -> Node {
    let secret = ClusterSecret::new(b"a secret of sixteen or more".to_vec());
    Node::start(
        1,
        Duration::from_millis(300),
        Arc::clone(store),
        dir,
        Arc::new(Quiet),
        secret,
    )
    .await
    .expect("node starts")
}

/// openraft's metrics are blank until its core has run; `Node::start`
/// returns only after that, so `cluster status` after a restart never shows
/// term 0, nothing applied and no members (the history checker saw a
/// restarted node's term go from 18 back to 0).
#[tokio::test]
async fn a_restarted_node_shows_its_stored_term_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &ChainSpec::default()).unwrap());
    let node = start(&store, dir.path()).await;
    node.init("127.0.0.1:1".into()).await.unwrap();
    let before = node.view();
    assert_eq!(before.role, Role::Leader);
    assert!(before.term >= 1 && before.applied >= 1, "{before:?}");
    node.shutdown().await;
    drop(node);

    // On the current-thread runtime nothing else runs between the start and
    // this look: the view is whatever the start left.
    let again = start(&store, dir.path()).await.view();
    assert!(again.term >= before.term, "{again:?} after {before:?}");
    assert!(
        again.applied >= before.applied,
        "{again:?} after {before:?}"
    );
    assert_eq!(again.members, before.members);
}
