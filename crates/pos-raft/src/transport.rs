//! Authenticated connections between nodes (handshake in pos-proto's
//! `peer` module), with a deadline on everything and TCP keepalive, so a
//! black-holed peer costs a timeout, never a wedged replication stream.

use pos_proto::peer::{
    PeerChallenge, PeerHello, PeerProof, PeerRequest, PeerResponse, PeerVerdict, PEER_MAX_FRAME,
};
use pos_proto::{read_frame_up_to, write_frame_up_to, ProtoError};
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long a handshake may take, each way.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
const KEEPALIVE: Duration = Duration::from_secs(10);

/// The shared secret of `cluster_secret_file`.
#[derive(Clone)]
pub struct ClusterSecret(Arc<[u8]>);

impl ClusterSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        ClusterSecret(bytes.into())
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: std::io::Error },
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Proto(#[from] ProtoError),
    #[error("the peer closed the connection")]
    Closed,
    #[error("handshake refused: {0}")]
    Refused(String),
}

/// One authenticated connection, either side.
pub struct PeerConn {
    rd: BufReader<OwnedReadHalf>,
    wr: BufWriter<OwnedWriteHalf>,
}

fn nonce() -> [u8; 32] {
    let mut n = [0; 32];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE)
        .with_interval(KEEPALIVE);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

async fn within<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or(Err(PeerError::Timeout))
}

impl PeerConn {
    fn new(stream: TcpStream) -> Self {
        tune(&stream);
        let (rd, wr) = stream.into_split();
        PeerConn {
            rd: BufReader::new(rd),
            wr: BufWriter::new(wr),
        }
    }

    async fn send<T: serde::Serialize>(&mut self, msg: &T) -> Result<(), PeerError> {
        write_frame_up_to(&mut self.wr, msg, PEER_MAX_FRAME).await?;
        self.wr.flush().await.map_err(ProtoError::from)?;
        Ok(())
    }

    async fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, PeerError> {
        read_frame_up_to(&mut self.rd, PEER_MAX_FRAME)
            .await?
            .ok_or(PeerError::Closed)
    }

    /// Connects to node `to` at `addr` as node `from`, proving the secret
    /// and checking the callee's proof.
    pub async fn connect(
        addr: &str,
        from: u64,
        to: u64,
        secret: &ClusterSecret,
    ) -> Result<PeerConn, PeerError> {
        within(HANDSHAKE_TIMEOUT, async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|error| PeerError::Connect {
                    addr: addr.to_string(),
                    error,
                })?;
            let mut conn = PeerConn::new(stream);
            let hello = PeerHello::new(from, to, nonce());
            conn.send(&hello).await?;
            let (theirs, their_proof) = match conn.recv().await? {
                PeerChallenge::Challenge { nonce, proof } => (nonce, proof),
                PeerChallenge::Refused(why) => return Err(PeerError::Refused(why)),
            };
            if hello.proof(&secret.0, "callee", &theirs) != their_proof {
                let why = "the callee does not know the cluster secret".to_string();
                conn.send(&PeerProof::Refused(why.clone())).await?;
                return Err(PeerError::Refused(why));
            }
            conn.send(&PeerProof::Proof(hello.proof(&secret.0, "caller", &theirs)))
                .await?;
            match conn.recv().await? {
                PeerVerdict::Accepted => Ok(conn),
                PeerVerdict::Refused(why) => Err(PeerError::Refused(why)),
            }
        })
        .await
    }

    /// The callee's side of the handshake, as node `me`: the caller's id.
    pub async fn accept(
        stream: TcpStream,
        me: u64,
        secret: &ClusterSecret,
    ) -> Result<(PeerConn, u64), PeerError> {
        let mut conn = PeerConn::new(stream);
        within(HANDSHAKE_TIMEOUT, async {
            let hello: PeerHello = conn.recv().await?;
            if let Some(why) = hello.refusal(me) {
                conn.send(&PeerChallenge::Refused(why.clone())).await?;
                return Err(PeerError::Refused(why));
            }
            let ours = nonce();
            let proof = hello.proof(&secret.0, "callee", &ours);
            conn.send(&PeerChallenge::Challenge { nonce: ours, proof })
                .await?;
            match conn.recv().await? {
                PeerProof::Proof(p) if p == hello.proof(&secret.0, "caller", &ours) => {}
                PeerProof::Proof(_) => {
                    let why = format!("node {} does not know the cluster secret", hello.from);
                    conn.send(&PeerVerdict::Refused(why.clone())).await?;
                    return Err(PeerError::Refused(why));
                }
                PeerProof::Refused(why) => return Err(PeerError::Refused(why)),
            }
            conn.send(&PeerVerdict::Accepted).await?;
            Ok(hello.from)
        })
        .await
        .map(|from| (conn, from))
    }

    /// Sends a request and waits for its answer, within `limit`.
    pub async fn call(
        &mut self,
        request: &PeerRequest,
        limit: Duration,
    ) -> Result<PeerResponse, PeerError> {
        within(limit, async {
            self.send(request).await?;
            self.recv().await
        })
        .await
    }

    /// The next request on an accepted connection; `None` when the caller left.
    pub async fn next_request(&mut self) -> Result<Option<PeerRequest>, PeerError> {
        Ok(read_frame_up_to(&mut self.rd, PEER_MAX_FRAME).await?)
    }

    pub async fn respond(&mut self, response: &PeerResponse) -> Result<(), PeerError> {
        self.send(response).await
    }
}
