//! `posctl cluster init | add | remove | status`.

use super::Cluster;
use pos_proto::{ClusterInfo, ClusterMember, Response};
use pos_store::Store;

impl Cluster {
    /// This node's view, with the committed index it has saved.
    pub fn info(&self, store: &Store) -> ClusterInfo {
        let view = self.node.view();
        ClusterInfo {
            node_id: view.me,
            role: view.role.as_str().into(),
            term: view.term,
            leader_id: view.leader,
            committed: pos_raft::log_store::committed_index(store).max(view.applied),
            applied: view.applied,
            members: view
                .members
                .into_iter()
                .map(|m| ClusterMember {
                    node_id: m.id,
                    addr: m.addr,
                    voter: m.voter,
                })
                .collect(),
        }
    }
}

/// What posctl asks of the cluster.
pub(crate) enum Ask {
    Init,
    Add { node_id: u64, addr: String },
    Remove { node_id: u64 },
    Status,
}

/// Answers a cluster request: `cluster` and `advertised` are `None` on a
/// standalone node; `spec` is the genesis an `Init` on an empty node makes.
pub(crate) async fn answer(
    cluster: Option<&Cluster>,
    store: &Store,
    spec: &pos_core::ChainSpec,
    advertised: Option<std::net::SocketAddr>,
    ask: Ask,
) -> Response {
    let (Some(cluster), Some(addr)) = (cluster, advertised) else {
        return Response::Error(
            "this posd is standalone: set cluster_listen, node_id and cluster_secret_file to run it as a cluster node (docs/CLUSTER.md)".into(),
        );
    };
    let done = match ask {
        Ask::Status => Ok(()),
        Ask::Init => init(cluster, store, spec, addr).await,
        Ask::Add { node_id, addr } => match leader_only(cluster) {
            Err(e) => Err(e),
            Ok(()) => cluster
                .node
                .add(node_id, addr.clone())
                .await
                .map_err(|e| format!("cannot add node {node_id} at {addr}: {e}")),
        },
        Ask::Remove { node_id } => match leader_only(cluster) {
            Err(e) => Err(e),
            Ok(()) => cluster
                .node
                .remove(node_id)
                .await
                .map_err(|e| format!("cannot remove node {node_id}: {e}")),
        },
    };
    match done {
        Ok(()) => Response::Cluster(cluster.info(store)),
        Err(e) => Response::Error(e),
    }
}

/// Membership changes are made by the leader.
fn leader_only(cluster: &Cluster) -> Result<(), String> {
    match cluster.node.leader() {
        Some((leader, _)) if leader == cluster.me => Ok(()),
        Some((leader, Some(addr))) => Err(format!(
            "this node is not the leader; run it on node {leader} ({addr})"
        )),
        _ => Err("no leader reachable, try another node".into()),
    }
}

/// Makes this node a one-member cluster: an empty data directory gets its
/// genesis now (the one genesis of the cluster), an existing chain is kept.
async fn init(
    cluster: &Cluster,
    store: &Store,
    spec: &pos_core::ChainSpec,
    addr: std::net::SocketAddr,
) -> Result<(), String> {
    if cluster.node.view().role != pos_raft::Role::Uninitialized {
        return Err("this node is already in a cluster".into());
    }
    let has_chain = store.has_chain().map_err(|e| e.to_string())?;
    if !has_chain {
        store
            .bootstrap(spec)
            .map_err(|e| format!("cannot create the genesis: {e}"))?;
    }
    cluster
        .node
        .init(addr.to_string())
        .await
        .map_err(|e| format!("cannot initialize the cluster: {e}"))
}
