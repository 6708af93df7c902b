//! Sealed connections between nodes (handshake in pos-proto's `peer`
//! module, sealing in its `seal` module), with a deadline on everything and
//! TCP keepalive, so a black-holed peer costs a timeout, never a wedged
//! replication stream. A frame that fails authentication breaks the
//! connection: it is logged once, naming the peer, never handed on, and the
//! caller drops the connection and reconnects on its next call.

use pos_proto::peer::{PeerHandshake, PeerHello, PeerRequest, PeerResponse, PEER_MAX_FRAME};
use pos_proto::seal::{self, SealError, Sealed};
use pos_proto::{decode, encode, read_frame, write_frame, ProtoError};
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long a handshake may take, each way.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
const KEEPALIVE: Duration = Duration::from_secs(10);

/// The links' key, from the shared secret of `cluster_secret_file`.
#[derive(Clone)]
pub struct ClusterSecret(Arc<[u8; 32]>);

impl ClusterSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        ClusterSecret(Arc::new(seal::psk(&bytes)))
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
    #[error("{0}")]
    Sealed(#[from] SealError),
    #[error("the peer closed the connection")]
    Closed,
    #[error("handshake refused: {0}")]
    Refused(String),
    #[error("an earlier call on this connection was abandoned midway")]
    Abandoned,
}

/// One sealed connection, either side.
pub struct PeerConn {
    rd: BufReader<OwnedReadHalf>,
    wr: BufWriter<OwnedWriteHalf>,
    /// The node at the other end, for the log.
    peer: u64,
    addr: String,
    /// `None` until the handshake is done, and after the link broke.
    link: Option<Sealed>,
    out: Vec<u8>,
    /// A call began and has not ended: if its caller gave up on it (a
    /// deadline), its frames are half sent or half read, and the link
    /// cannot carry another.
    in_call: bool,
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
    fn new(stream: TcpStream, peer: u64) -> Self {
        tune(&stream);
        let addr = stream
            .peer_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        let (rd, wr) = stream.into_split();
        PeerConn {
            rd: BufReader::new(rd),
            wr: BufWriter::new(wr),
            peer,
            addr,
            link: None,
            out: Vec::new(),
            in_call: false,
        }
    }

    /// A cleartext handshake frame.
    async fn send_clear<T: serde::Serialize>(&mut self, msg: &T) -> Result<(), PeerError> {
        write_frame(&mut self.wr, msg).await?;
        self.wr.flush().await.map_err(ProtoError::from)?;
        Ok(())
    }

    async fn recv_clear<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, PeerError> {
        read_frame(&mut self.rd).await?.ok_or(PeerError::Closed)
    }

    async fn send<T: serde::Serialize>(&mut self, msg: &T) -> Result<(), PeerError> {
        let link = self.link.as_mut().ok_or(PeerError::Closed)?;
        self.out.clear();
        link.seal(&encode(msg), PEER_MAX_FRAME, &mut self.out)?;
        self.wr
            .write_all(&self.out)
            .await
            .map_err(ProtoError::from)?;
        self.wr.flush().await.map_err(ProtoError::from)?;
        Ok(())
    }

    /// The next sealed frame; `None` when the peer left between frames.
    async fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, PeerError> {
        let link = self.link.as_mut().ok_or(PeerError::Closed)?;
        match link.open(&mut self.rd, PEER_MAX_FRAME).await {
            Ok(Some(body)) => Ok(Some(decode(&body)?)),
            Ok(None) => Ok(None),
            Err(e) => {
                if matches!(e, SealError::Broken) {
                    tracing::warn!(
                        peer = self.peer,
                        addr = %self.addr,
                        "cluster link broken: a frame failed authentication \
                         (changed in flight or replayed); dropping the connection"
                    );
                }
                self.link = None;
                Err(e.into())
            }
        }
    }

    /// Connects to node `to` at `addr` as node `from`: the hello, then the
    /// Noise handshake that proves both sides hold the secret.
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
            let mut conn = PeerConn::new(stream, to);
            let hello = PeerHello::new(from, to, nonce());
            let mut hs = seal::handshake(&secret.0, &hello.prologue(), true)?;
            conn.send_clear(&hello).await?;
            conn.send_clear(&PeerHandshake::Noise(seal::handshake_write(&mut hs)?))
                .await?;
            match conn.recv_clear().await? {
                PeerHandshake::Noise(answer) => {
                    seal::handshake_read(&mut hs, &answer).map_err(|_| {
                        PeerError::Refused(format!(
                            "node {to} at {addr} does not know the cluster secret"
                        ))
                    })?;
                }
                PeerHandshake::Refused(why) => return Err(PeerError::Refused(why)),
            }
            conn.link = Some(Sealed::new(hs)?);
            Ok(conn)
        })
        .await
    }

    /// The callee's side of the handshake, as node `me`: the caller's id.
    pub async fn accept(
        stream: TcpStream,
        me: u64,
        secret: &ClusterSecret,
    ) -> Result<(PeerConn, u64), PeerError> {
        let mut conn = PeerConn::new(stream, 0);
        within(HANDSHAKE_TIMEOUT, async {
            let hello: PeerHello = conn.recv_clear().await?;
            if let Some(why) = hello.refusal(me) {
                conn.send_clear(&PeerHandshake::Refused(why.clone()))
                    .await?;
                return Err(PeerError::Refused(why));
            }
            conn.peer = hello.from;
            let mut hs = seal::handshake(&secret.0, &hello.prologue(), false)?;
            let PeerHandshake::Noise(first) = conn.recv_clear().await? else {
                return Err(PeerError::Refused(format!("node {} gave up", hello.from)));
            };
            if seal::handshake_read(&mut hs, &first).is_err() {
                let why = format!(
                    "node {} does not know the cluster secret (or its hello was changed)",
                    hello.from
                );
                conn.send_clear(&PeerHandshake::Refused(why.clone()))
                    .await?;
                return Err(PeerError::Refused(why));
            }
            conn.send_clear(&PeerHandshake::Noise(seal::handshake_write(&mut hs)?))
                .await?;
            conn.link = Some(Sealed::new(hs)?);
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
        if !self.is_idle() {
            return Err(PeerError::Abandoned);
        }
        self.in_call = true;
        let answer = within(limit, async {
            self.send(request).await?;
            self.recv().await?.ok_or(PeerError::Closed)
        })
        .await;
        self.in_call = answer.is_err();
        answer
    }

    /// Whether the link can carry a call: no earlier one failed or was
    /// abandoned midway.
    pub fn is_idle(&self) -> bool {
        !self.in_call && self.link.is_some()
    }

    /// The next request on an accepted connection; `None` when the caller left.
    pub async fn next_request(&mut self) -> Result<Option<PeerRequest>, PeerError> {
        self.recv().await
    }

    pub async fn respond(&mut self, response: &PeerResponse) -> Result<(), PeerError> {
        self.send(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_proto::peer::PEER_VERSION;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn secret(text: &str) -> ClusterSecret {
        ClusterSecret::new(text.as_bytes().to_vec())
    }

    /// Node 2 accepting one connection with `key`: what `accept` and the
    /// first request gave.
    async fn node2(key: ClusterSecret) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            match PeerConn::accept(stream, 2, &key).await {
                Err(e) => format!("refused: {e}"),
                Ok((mut conn, from)) => match conn.next_request().await {
                    Ok(Some(request)) => {
                        let answer = PeerResponse::Raft(Ok(vec![9]));
                        conn.respond(&answer).await.unwrap();
                        format!("node {from} asked {request:?}")
                    }
                    other => format!("node {from}: {other:?}"),
                },
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_sealed_call_round_trips() {
        let (addr, node2) = node2(secret("shared")).await;
        let mut conn = PeerConn::connect(&addr, 1, 2, &secret("shared"))
            .await
            .unwrap();
        let answer = conn
            .call(&PeerRequest::Vote(vec![1, 2]), HANDSHAKE_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(answer, PeerResponse::Raft(Ok(vec![9])));
        assert_eq!(node2.await.unwrap(), "node 1 asked Vote([1, 2])");
    }

    #[tokio::test]
    async fn another_secret_is_refused_both_ways() {
        let (addr, node2) = node2(secret("shared")).await;
        let err = PeerConn::connect(&addr, 1, 2, &secret("guessed"))
            .await
            .err()
            .unwrap();
        let callee = node2.await.unwrap();
        assert_eq!(
            callee,
            "refused: handshake refused: node 1 does not know the cluster secret \
             (or its hello was changed)"
        );
        assert_eq!(
            err.to_string(),
            format!("handshake refused: {}", &callee[28..])
        );
    }

    #[tokio::test]
    async fn a_version_1_hello_is_refused_naming_both_versions() {
        let (addr, node2) = node2(secret("shared")).await;
        let mut old = TcpStream::connect(&addr).await.unwrap();
        let hello = PeerHello {
            version: 1,
            ..PeerHello::new(1, 2, [0; 32])
        };
        write_frame(&mut old, &hello).await.unwrap();
        let expected = format!(
            "node 1 speaks peer protocol version 1, node 2 speaks version {PEER_VERSION}: \
             upgrade every node (docs/CLUSTER.md)"
        );
        // Version 1 reads this frame as its own `PeerChallenge::Refused`.
        let answer: PeerHandshake = read_frame(&mut old).await.unwrap().unwrap();
        assert_eq!(answer, PeerHandshake::Refused(expected.clone()));
        assert_eq!(
            node2.await.unwrap(),
            format!("refused: handshake refused: {expected}")
        );
    }

    #[tokio::test]
    async fn a_call_given_up_midway_retires_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut conn, _) = PeerConn::accept(stream, 2, &secret("shared"))
                .await
                .unwrap();
            while let Ok(Some(_)) = conn.next_request().await {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = conn.respond(&PeerResponse::Raft(Ok(vec![]))).await;
            }
        });
        let mut conn = PeerConn::connect(&addr, 1, 2, &secret("shared"))
            .await
            .unwrap();
        let vote = PeerRequest::Vote(vec![]);
        let late = conn.call(&vote, Duration::from_millis(50)).await;
        assert!(matches!(late, Err(PeerError::Timeout)), "{late:?}");
        // Its late answer must not pass for the next call's.
        assert!(!conn.is_idle());
        let next = conn.call(&vote, HANDSHAKE_TIMEOUT).await;
        assert!(matches!(next, Err(PeerError::Abandoned)), "{next:?}");
    }

    /// A proxy that flips the byte at `at` of what the caller sends.
    async fn flipping_proxy(to: String, at: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(to).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
            let (mut seen, mut buf) = (0, vec![0; 4096]);
            while let Ok(n @ 1..) = cr.read(&mut buf).await {
                if (seen..seen + n).contains(&at) {
                    buf[at - seen] ^= 0x20;
                }
                seen += n;
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_changed_frame_breaks_the_link_and_is_never_handed_on() {
        let (addr, node2) = node2(secret("shared")).await;
        // The handshake is about 110 bytes; byte 400 is inside the request.
        let proxy = flipping_proxy(addr, 400).await;
        let mut conn = PeerConn::connect(&proxy, 1, 2, &secret("shared"))
            .await
            .unwrap();
        let request = PeerRequest::AppendEntries(vec![7; 1000]);
        assert!(conn.call(&request, HANDSHAKE_TIMEOUT).await.is_err());
        assert_eq!(
            node2.await.unwrap(),
            "node 1: Err(Sealed(Broken))",
            "the callee saw no request"
        );
    }
}
