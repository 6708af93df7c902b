//! posctl's admin client: a deadline on every wait for posd, and failures to
//! reach or use posd told as what to do about them (exit code 3).

use anyhow::anyhow;
use nix::unistd::{geteuid, Gid, Group, User};
use pos_proto::{ClientError, ProtoError, Request, Response, NOT_ALLOWED};
use std::future::Future;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// posd could not be reached or used (exit code 3); the text says what to do.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// Where to look next: posd may run under systemd or have been started by hand
/// in another directory (its socket is then that directory's posd-data/admin.sock).
const IS_POSD_RUNNING: &str = "Is posd running? Under systemd: systemctl status posd. \
     Started by hand: run posctl in the directory posd was started in, or pass \
     --socket DATA_DIR/admin.sock (or set POSD_SOCKET)";

/// A connection to posd where no wait lasts longer than `timeout`: not the
/// handshake, not an answer, not the gap between two frames of a stream.
pub struct Client {
    inner: pos_proto::Client,
    socket: PathBuf,
    timeout: Duration,
}

/// How posctl names itself in the handshake.
fn who() -> String {
    format!("posctl {}", env!("CARGO_PKG_VERSION"))
}

impl Client {
    /// Connects and shakes hands.
    pub async fn connect(socket: &Path, timeout: Duration) -> anyhow::Result<Client> {
        let who = who();
        match tokio::time::timeout(timeout, pos_proto::Client::connect(socket, &who)).await {
            Ok(Ok(inner)) => Ok(Client {
                inner,
                socket: socket.to_owned(),
                timeout,
            }),
            Ok(Err(e)) => Err(diagnose(socket, &who, e).into()),
            Err(_) => Err(silent(socket, timeout).into()),
        }
    }

    pub async fn send(&mut self, request: &Request) -> anyhow::Result<()> {
        let (socket, timeout) = (self.socket.clone(), self.timeout);
        within(&socket, timeout, self.inner.send(request)).await
    }

    /// The next answer or frame of a stream.
    pub async fn next(&mut self) -> anyhow::Result<Response> {
        let (socket, timeout) = (self.socket.clone(), self.timeout);
        within(&socket, timeout, self.inner.next()).await
    }

    /// Sends `request` and returns its single answer.
    pub async fn ask(&mut self, request: &Request) -> anyhow::Result<Response> {
        self.send(request).await?;
        self.next().await
    }

    /// The longest wait for posd (`--timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connects again to the same socket, after [`lost`] said the connection
    /// is gone: `Ok(false)` while no posd answers there yet (stopped,
    /// restarting); an error when one answers but cannot be used.
    pub async fn reconnect(&mut self) -> anyhow::Result<bool> {
        let who = who();
        match tokio::time::timeout(self.timeout, pos_proto::Client::connect(&self.socket, &who))
            .await
        {
            Ok(Ok(inner)) => {
                self.inner = inner;
                Ok(true)
            }
            Ok(Err(e)) if gone(&e) => Ok(false),
            Ok(Err(e)) => Err(diagnose(&self.socket, &who, e).into()),
            Err(_) => Ok(false),
        }
    }
}

/// Whether `e` says posd is not there to answer (rather than refusing):
/// no socket, nobody listening, or hanging up, as a posd does that stops.
/// (A connect that a stopping posd's listener held but never accepted ends
/// in a reset.)
fn gone(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable { source, .. } => matches!(
            source.kind(),
            ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
        ),
        ClientError::Closed | ClientError::Proto(ProtoError::Truncated) => true,
        ClientError::Proto(ProtoError::Io(e)) => matches!(
            e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// Whether a failed wait means the connection to posd is gone (posd stopped,
/// or fell silent past `--timeout`), so that reconnecting may help.
pub fn lost(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ClientError>().is_some_and(gone) || e.downcast_ref::<Unreachable>().is_some()
}

async fn within<T>(
    socket: &Path,
    timeout: Duration,
    work: impl Future<Output = Result<T, ClientError>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(timeout, work).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(silent(socket, timeout).into()),
    }
}

fn silent(socket: &Path, timeout: Duration) -> Unreachable {
    Unreachable(format!(
        "posd at {} did not answer within {} (--timeout): it may be stuck or overloaded, \
         or the socket is not posd's.\nTry: systemctl status posd",
        socket.display(),
        humantime::format_duration(timeout)
    ))
}

/// Why the handshake failed, and what to do about it.
fn diagnose(socket: &Path, who: &str, e: ClientError) -> Unreachable {
    let path = socket.display();
    Unreachable(match e {
        ClientError::Unreachable { source, .. } if source.kind() == ErrorKind::PermissionDenied => {
            let group = socket_group(socket);
            format!(
                "{} is not allowed to use {path}: permission denied; only root and members of \
                 group {group} may.\nAdd the user to the group: sudo usermod -aG {group} {}, then \
                 log in again (or use sudo)",
                describe_me(),
                my_name()
            )
        }
        ClientError::Refused { reason, .. } if reason.starts_with(NOT_ALLOWED) => {
            format!(
                "{} is {}",
                describe_me(),
                reason.replace("$USER", &my_name())
            )
        }
        // An echo answers the hello with the hello, which reads as a refusal
        // whose reason is posctl's own name.
        ClientError::Refused { reason, .. } if reason == who => not_posd(
            socket,
            "it sent posctl's handshake back instead of answering it",
        ),
        // posd reads the hello and answers it, even to refuse.
        ClientError::Closed => not_posd(socket, HUNG_UP),
        ClientError::Proto(ProtoError::Io(e))
            if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) =>
        {
            not_posd(socket, HUNG_UP)
        }
        ClientError::Proto(ProtoError::Io(e)) => {
            format!(
                "connection to posd at {path} failed during the handshake: {e}\n{IS_POSD_RUNNING}"
            )
        }
        ClientError::Proto(e) => not_posd(
            socket,
            &format!("its answer to the handshake is not posd's ({e})"),
        ),
        e @ ClientError::Unreachable { .. } => format!("{e}\n{IS_POSD_RUNNING}"),
        e @ (ClientError::Refused { .. } | ClientError::Remote(_)) => e.to_string(),
    })
}

const HUNG_UP: &str =
    "it hung up without answering the handshake (or posd stopped just now: systemctl status posd)";

fn not_posd(socket: &Path, why: &str) -> String {
    format!(
        "{} is not a posd admin socket: {why}.\nPoint posctl at posd's socket (its admin_socket \
         setting) with --socket PATH or POSD_SOCKET",
        socket.display()
    )
}

/// The name of the user posctl runs as, or its uid.
fn my_name() -> String {
    match User::from_uid(geteuid()) {
        Ok(Some(u)) => u.name,
        _ => geteuid().to_string(),
    }
}

/// "user alice (uid 1000)".
fn describe_me() -> String {
    format!("user {} (uid {})", my_name(), geteuid())
}

/// The group that may use `socket`: the socket's, else its directory's
/// (which a stranger may be able to look at when the socket is hidden).
fn socket_group(socket: &Path) -> String {
    let dir = socket.parent().unwrap_or(Path::new("."));
    [socket, dir]
        .iter()
        .find_map(|p| std::fs::metadata(p).ok())
        .map_or_else(
            || "posd".into(),
            |m| match Group::from_gid(Gid::from_raw(m.gid())) {
                Ok(Some(g)) => g.name,
                _ => m.gid().to_string(),
            },
        )
}

/// The answer was not what the request calls for.
pub fn unexpected(r: Response) -> anyhow::Error {
    let shown: String = format!("{r:?}").chars().take(120).collect();
    anyhow!("unexpected answer from posd: {shown}")
}

/// Reads a streamed answer up to its `End`, handing every chunk that `pick`
/// accepts to `each`; any other answer is an error.
pub async fn for_each_chunk<T>(
    client: &mut Client,
    pick: fn(Response) -> Result<Vec<T>, Box<Response>>,
    mut each: impl FnMut(Vec<T>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    loop {
        match client.next().await? {
            Response::End => return Ok(()),
            answer => each(pick(answer).map_err(|r| unexpected(*r))?)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_failed(kind: ErrorKind) -> ClientError {
        ClientError::Unreachable {
            path: PathBuf::from("admin.sock"),
            source: kind.into(),
        }
    }

    #[test]
    fn a_posd_going_or_gone_is_waited_for_and_a_refusal_is_not() {
        // Stopped, never there, or stopping with our connect in its backlog.
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
        ] {
            assert!(gone(&connect_failed(kind)), "{kind:?}");
        }
        assert!(!gone(&connect_failed(ErrorKind::PermissionDenied)));
        let refused = ClientError::Refused {
            path: PathBuf::from("admin.sock"),
            reason: "no".into(),
        };
        assert!(!gone(&refused));
    }
}
