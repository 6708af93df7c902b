//! The client side of the admin protocol: connect, handshake, ask.
//! Used by posctl and by the load tool.

use crate::frame::{read_frame, write_frame, ProtoError};
use crate::message::{Hello, Request, Response, Welcome, PROTOCOL_VERSION};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody answers at the path (not running, wrong path, no permission).
    #[error("cannot reach posd at {path}: {source}")]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// posd answered the handshake with a refusal.
    #[error("posd at {path} refused: {reason}")]
    Refused { path: PathBuf, reason: String },
    /// posd answered a request with `Response::Error`.
    #[error("{0}")]
    Remote(String),
    #[error("posd closed the connection")]
    Closed,
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Proto(e.into())
    }
}

pub struct Client {
    rd: BufReader<OwnedReadHalf>,
    wr: BufWriter<OwnedWriteHalf>,
}

impl Client {
    /// Connects to `path` and does the version handshake; `who` names the
    /// client in posd's log.
    pub async fn connect(path: &Path, who: &str) -> Result<Client, ClientError> {
        let stream =
            UnixStream::connect(path)
                .await
                .map_err(|source| ClientError::Unreachable {
                    path: path.to_owned(),
                    source,
                })?;
        let (rd, wr) = stream.into_split();
        let mut client = Client {
            rd: BufReader::with_capacity(256 * 1024, rd),
            wr: BufWriter::new(wr),
        };
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            client: who.to_string(),
        };
        write_frame(&mut client.wr, &hello).await?;
        client.wr.flush().await?;
        match read_frame(&mut client.rd).await? {
            Some(Welcome::Accepted { .. }) => Ok(client),
            Some(Welcome::Refused(reason)) => Err(ClientError::Refused {
                path: path.to_owned(),
                reason,
            }),
            None => Err(ClientError::Closed),
        }
    }

    pub async fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        write_frame(&mut self.wr, request).await?;
        self.wr.flush().await?;
        Ok(())
    }

    /// The next answer; posd's `Error` becomes [`ClientError::Remote`].
    pub async fn next(&mut self) -> Result<Response, ClientError> {
        match read_frame(&mut self.rd).await? {
            Some(Response::Error(why)) => Err(ClientError::Remote(why)),
            Some(r) => Ok(r),
            None => Err(ClientError::Closed),
        }
    }

    /// Sends `request` and returns its single answer.
    pub async fn ask(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.send(request).await?;
        self.next().await
    }
}
