//! posctl's requests without the posctl binary: the admin wire, blocking.

use pos_proto::client::Client;
use pos_proto::{LotteryOutcome, Request, Response};
use std::path::Path;

/// Sends `request` to the admin socket at `socket`; its single answer, or
/// posd's error text.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, String> {
    ask_until(socket, request, |_| true)
}

/// Sends `request` and returns the first answer `last` accepts (the ones
/// before it, e.g. progress frames, are skipped), or posd's error text.
fn ask_until(
    socket: &Path,
    request: &Request,
    last: impl Fn(&Response) -> bool,
) -> Result<Response, String> {
    converse(
        socket,
        request,
        |answer| Ok(last(&answer).then_some(answer)),
    )
}

/// Sends `request` and feeds each answer to `step` until it returns a value.
fn converse<T>(
    socket: &Path,
    request: &Request,
    mut step: impl FnMut(Response) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut c = Client::connect(socket, "pos-testkit")
            .await
            .map_err(|e| e.to_string())?;
        c.send(request).await.map_err(|e| e.to_string())?;
        loop {
            let answer = c.next().await.map_err(|e| e.to_string())?;
            if let Some(done) = step(answer)? {
                return Ok(done);
            }
        }
    })
}

/// `posctl export`: the export's bytes (docs/EXPORT.md), or posd's error text.
pub fn export(socket: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    converse(socket, &Request::Export, |answer| match answer {
        Response::ExportData(data) => {
            bytes.extend(data.0);
            Ok(None)
        }
        Response::End => Ok(Some(std::mem::take(&mut bytes))),
        other => Err(format!("unexpected answer {other:?}")),
    })
}

/// `posctl chain verify`: the number of blocks verified, or the fault found.
pub fn chain_verify(socket: &Path) -> Result<u64, String> {
    match ask_until(socket, &Request::ChainVerify, |r| {
        matches!(r, Response::Verified(_))
    })? {
        Response::Verified(result) => result,
        other => Err(format!("unexpected answer {other:?}")),
    }
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
