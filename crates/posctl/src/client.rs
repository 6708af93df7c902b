//! posctl's view of the admin client: which failures mean "cannot reach
//! posd" (exit code 3), and what an unexpected answer looks like.

use anyhow::anyhow;
use pos_proto::{ClientError, Response};
use std::path::Path;

pub use pos_proto::Client;

/// posd could not be reached at all (exit code 3).
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// Connects and shakes hands, sorting failures into exit codes.
pub async fn connect(path: &Path) -> anyhow::Result<Client> {
    let who = format!("posctl {}", env!("CARGO_PKG_VERSION"));
    match Client::connect(path, &who).await {
        Ok(c) => Ok(c),
        Err(e @ (ClientError::Unreachable { .. } | ClientError::Closed)) => {
            Err(Unreachable(format!(
            "{e}\nIs posd running? Try: systemctl status posd (or pass --socket / set POSD_SOCKET)"
        ))
            .into())
        }
        Err(e) => Err(e.into()),
    }
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
