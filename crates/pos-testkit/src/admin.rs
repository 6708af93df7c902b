//! posctl's requests without the posctl binary: the admin wire, blocking.

use pos_proto::client::Client;
use pos_proto::{LotteryOutcome, Request, Response};
use std::path::Path;

/// A connection to the admin socket at `socket`, with a runtime to drive it.
fn connect(socket: &Path) -> Result<(tokio::runtime::Runtime, Client), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = rt
        .block_on(Client::connect(socket, "pos-testkit"))
        .map_err(|e| e.to_string())?;
    Ok((rt, client))
}

/// Sends `request` to the admin socket at `socket`; its single answer, or
/// posd's error text.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, String> {
    let (rt, mut c) = connect(socket)?;
    rt.block_on(c.ask(request)).map_err(|e| e.to_string())
}

/// `posctl lottery run`: the committed block, `Ok(None)` for no candidates,
/// or posd's error text.
pub fn lottery_run(socket: &Path) -> Result<Option<pos_core::Block>, String> {
    match ask(socket, &Request::LotteryRun)? {
        Response::Lottery(LotteryOutcome::Committed { block, .. }) => Ok(Some(block)),
        Response::Lottery(LotteryOutcome::NoCandidates) => Ok(None),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Closes a round now, as `posctl lottery run` does; posd's answer. Panics
/// naming the socket when posd cannot be asked.
pub fn force_round(socket: &Path) -> Response {
    ask(socket, &Request::LotteryRun)
        .unwrap_or_else(|e| panic!("lottery run on {}: {e}", socket.display()))
}

/// `posctl export`: the export's bytes (docs/EXPORT.md), or posd's error text.
pub fn export(socket: &Path) -> Result<Vec<u8>, String> {
    let (rt, mut c) = connect(socket)?;
    rt.block_on(async {
        c.send(&Request::Export).await.map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        loop {
            match c.next().await.map_err(|e| e.to_string())? {
                Response::ExportData(data) => bytes.extend(data.0),
                Response::End => return Ok(bytes),
                other => return Err(format!("unexpected answer {other:?}")),
            }
        }
    })
}
