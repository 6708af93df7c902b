//! A node removed from its cluster knows it (SPEC §13): its own membership
//! view leaves it out ([`pos_raft::Node::is_removed`]), after a restart too,
//! since that view is in its log. `Cluster::submit` refuses its writes; this
//! tells the log and the connected validators, once each time it happens.

use crate::announce::Announcer;
use pos_raft::Node;
use tokio_util::sync::CancellationToken;

/// What the connected validators are told, on a line of its own.
pub(crate) const NOTICE: &str =
    "this node was removed from the cluster: its writes are refused, connect to another node";

/// Watches this node's membership until shutdown.
pub(crate) async fn watch(node: Node, announcer: Announcer, shutdown: CancellationToken) {
    let mut removed = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = node.until_removed(!removed) => {}
        }
        removed = !removed;
        if removed {
            tracing::warn!(
                node = node.id(),
                "this node is not in the cluster: it refuses writes; stop it, or wipe its data dir and add it again (docs/CLUSTER.md)"
            );
            announcer.notice(NOTICE);
        } else {
            tracing::info!(node = node.id(), "this node is in the cluster again");
        }
    }
}
