//! The cluster port: other nodes connect here, prove the shared secret
//! (a node that cannot is refused and logged), then send Raft's messages
//! and, to the leader, the writes their clients made.

use super::batcher::Job;
use crate::server::accept;
use pos_proto::peer::{PeerRequest, PeerResponse, SubmitError};
use pos_raft::{ClusterSecret, Node, Origin, PeerConn};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) struct PeerServer {
    pub node: Node,
    /// Where the nodes' reports of their validators go.
    pub seen: std::sync::Arc<super::seen::Seen>,
    pub secret: ClusterSecret,
    pub batcher: mpsc::Sender<Job>,
    pub shutdown: CancellationToken,
}

impl PeerServer {
    pub async fn serve(self, listener: TcpListener, tracker: TaskTracker) {
        let server = std::sync::Arc::new(self);
        while let Some((stream, from)) = accept(&listener, &server.shutdown, "cluster").await {
            let server = std::sync::Arc::clone(&server);
            tracker.spawn(async move {
                let (conn, node) =
                    match PeerConn::accept(stream, server.node.id(), &server.secret).await {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!(peer = %from, error = %e, "cluster peer refused");
                            return;
                        }
                    };
                tokio::select! {
                    () = server.shutdown.cancelled() => {}
                    () = server.session(conn) => {}
                }
                tracing::debug!(peer = %from, node, "cluster peer left");
            });
        }
    }

    async fn session(&self, mut conn: PeerConn) {
        loop {
            let request = match conn.next_request().await {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster peer sent a bad frame");
                    return;
                }
            };
            let response = match request {
                // A node this one's cluster leaves out would never apply
                // the write: it is not written.
                PeerRequest::Submit { node, .. } if !self.node.is_member(node) => {
                    PeerResponse::Submitted(Err(SubmitError::NotMember))
                }
                PeerRequest::Submit {
                    node,
                    ticket,
                    submission,
                } => {
                    let (reply, answer) = oneshot::channel();
                    let job = Job {
                        origin: Origin { node, ticket },
                        submission,
                        reply,
                    };
                    let result = match self.batcher.send(job).await {
                        Ok(()) => answer.await.unwrap_or_else(|_| {
                            Err(SubmitError::Failed("posd is stopping".into()))
                        }),
                        Err(_) => Err(SubmitError::Failed("posd is stopping".into())),
                    };
                    PeerResponse::Submitted(result)
                }
                PeerRequest::Seen { node, up_ms, seen } => {
                    if self.node.is_member(node) {
                        self.seen.record(node, up_ms, seen);
                    }
                    PeerResponse::Noted
                }
                raft => match self.node.answer(&raft).await {
                    Some(response) => response,
                    None => return,
                },
            };
            if conn.respond(&response).await.is_err() {
                return;
            }
        }
    }
}
