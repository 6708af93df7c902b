//! A connection to posd's admin socket: handshake, requests, streamed answers.

use anyhow::{anyhow, bail, Context};
use pos_proto::{read_frame, write_frame, Hello, Request, Response, Welcome, PROTOCOL_VERSION};
use std::path::Path;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// posd could not be reached at all (exit code 3).
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

pub struct Client {
    rd: BufReader<OwnedReadHalf>,
    wr: BufWriter<OwnedWriteHalf>,
}

impl Client {
    /// Connects and does the version handshake.
    pub async fn connect(path: &Path) -> anyhow::Result<Client> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            Unreachable(format!(
                "cannot reach posd at {}: {e}\nIs posd running? Try: systemctl status posd \
                 (or pass --socket / set POSD_SOCKET)",
                path.display()
            ))
        })?;
        let (rd, wr) = stream.into_split();
        let mut client = Client {
            rd: BufReader::with_capacity(256 * 1024, rd),
            wr: BufWriter::new(wr),
        };
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            client: format!("posctl {}", env!("CARGO_PKG_VERSION")),
        };
        write_frame(&mut client.wr, &hello).await?;
        client.wr.flush().await?;
        let welcome: Option<Welcome> = read_frame(&mut client.rd)
            .await
            .with_context(|| format!("handshake with posd at {}", path.display()))?;
        match welcome {
            Some(Welcome::Accepted { .. }) => Ok(client),
            Some(Welcome::Refused(why)) => bail!("posd at {} refused: {why}", path.display()),
            None => Err(Unreachable(format!(
                "posd at {} closed the connection during the handshake",
                path.display()
            ))
            .into()),
        }
    }

    pub async fn send(&mut self, request: &Request) -> anyhow::Result<()> {
        write_frame(&mut self.wr, request).await?;
        self.wr.flush().await?;
        Ok(())
    }

    /// The next answer; posd's `Error` becomes an error here.
    pub async fn next(&mut self) -> anyhow::Result<Response> {
        match read_frame(&mut self.rd).await? {
            Some(Response::Error(why)) => Err(anyhow!(why)),
            Some(r) => Ok(r),
            None => bail!("posd closed the connection"),
        }
    }

    /// Sends `request` and returns its single answer.
    pub async fn ask(&mut self, request: &Request) -> anyhow::Result<Response> {
        self.send(request).await?;
        self.next().await
    }
}

/// The answer was not what the request calls for.
pub fn unexpected(r: Response) -> anyhow::Error {
    let shown: String = format!("{r:?}").chars().take(120).collect();
    anyhow!("unexpected answer from posd: {shown}")
}
