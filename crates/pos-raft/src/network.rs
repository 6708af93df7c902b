//! openraft's network over [`PeerConn`]: one connection per target, opened
//! on demand, every call bounded by openraft's own deadline
//! ([`RPCOption::hard_ttl`]), dropped and reopened after any failure or a
//! call openraft gave up on.

use crate::transport::{ClusterSecret, PeerConn, PeerError};
use crate::types::{decode, encode, NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use pos_proto::peer::{PeerRequest, PeerResponse};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Makes clients for openraft, as node `me`.
#[derive(Clone)]
pub struct Network {
    pub me: NodeId,
    pub secret: ClusterSecret,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Client;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Client {
        Client {
            me: self.me,
            target,
            addr: node.addr.clone(),
            secret: self.secret.clone(),
            conn: None,
            connecting: None,
        }
    }
}

/// A connection to one node for openraft's replication and elections.
pub struct Client {
    me: NodeId,
    target: NodeId,
    addr: String,
    secret: ClusterSecret,
    conn: Option<PeerConn>,
    /// A connection being made, on its own task: a handshake that outlasts
    /// one call's deadline (a heartbeat's is short) serves the next call
    /// instead of starting over.
    connecting: Option<tokio::task::JoinHandle<Result<PeerConn, PeerError>>>,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl Client {
    async fn call<T: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        request: PeerRequest,
        limit: Duration,
    ) -> Result<T, RpcError<E>> {
        let started = tokio::time::Instant::now();
        // A call openraft dropped at its deadline leaves its connection
        // busy (`is_idle` false), so `connected` makes a new one rather than
        // read that call's answer as the next one's.
        let conn = self
            .connected()
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let left = limit.saturating_sub(started.elapsed());
        let answer = conn.call(&request, left).await;
        let bytes = match answer {
            Ok(PeerResponse::Raft(Ok(bytes))) => bytes,
            Ok(PeerResponse::Raft(Err(text))) => {
                return Err(self.failed(PeerError::Refused(text)));
            }
            Ok(other) => {
                let e = PeerError::Refused(format!("unexpected answer {other:?}"));
                return Err(self.failed(e));
            }
            Err(e) => return Err(self.failed(e)),
        };
        match decode::<Result<T, RaftError<NodeId, E>>>(&bytes) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e) => Err(self.failed(PeerError::Refused(format!("undecodable answer: {e}")))),
        }
    }

    /// The open connection, or the one being made once it is.
    async fn connected(&mut self) -> Result<&mut PeerConn, PeerError> {
        if self.conn.as_ref().is_some_and(|c| !c.is_idle()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let (addr, me, target) = (self.addr.clone(), self.me, self.target);
            let secret = self.secret.clone();
            let task = self.connecting.get_or_insert_with(|| {
                tokio::spawn(async move { PeerConn::connect(&addr, me, target, &secret).await })
            });
            let made = task.await;
            self.connecting = None;
            let made = made.map_err(|e| PeerError::Refused(format!("connecting: {e}")))?;
            self.conn = Some(made?);
        }
        self.conn.as_mut().ok_or(PeerError::Closed)
    }

    /// Drops the connection: the next call reconnects.
    fn failed<E: std::error::Error>(&mut self, e: PeerError) -> RpcError<E> {
        self.conn = None;
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.call(PeerRequest::AppendEntries(encode(&rpc)), option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        self.call(
            PeerRequest::InstallSnapshot(encode(&rpc)),
            option.hard_ttl(),
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.call(PeerRequest::Vote(encode(&rpc)), option.hard_ttl())
            .await
    }
}

/// The callee's side: hands a Raft request to the local Raft and encodes
/// its answer (an error included) for the caller; a `Campaign` starts an
/// election here. `None` for a request that is not Raft's.
pub async fn answer(raft: &crate::Raft, request: &PeerRequest) -> Option<PeerResponse> {
    let encoded = match request {
        PeerRequest::AppendEntries(bytes) => match decode(bytes) {
            Ok(rpc) => Ok(encode(&raft.append_entries(rpc).await)),
            Err(e) => Err(e),
        },
        PeerRequest::Vote(bytes) => match decode(bytes) {
            Ok(rpc) => Ok(encode(&raft.vote(rpc).await)),
            Err(e) => Err(e),
        },
        PeerRequest::InstallSnapshot(bytes) => match decode(bytes) {
            Ok(rpc) => Ok(encode(&raft.install_snapshot(rpc).await)),
            Err(e) => Err(e),
        },
        PeerRequest::Campaign => match raft.trigger().elect().await {
            Ok(()) => Ok(Vec::new()),
            Err(e) => return Some(PeerResponse::Raft(Err(e.to_string()))),
        },
        PeerRequest::Submit { .. } | PeerRequest::Seen { .. } => return None,
    };
    Some(PeerResponse::Raft(
        encoded.map_err(|e| format!("undecodable Raft message: {e}")),
    ))
}
