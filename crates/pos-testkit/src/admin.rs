//! posctl's requests without the posctl binary: the admin wire, blocking.

use pos_proto::client::Client;
use pos_proto::{LotteryOutcome, Request, Response};
use std::path::Path;

/// Sends `request` to the admin socket at `socket`; its single answer, or
/// posd's error text.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut c = Client::connect(socket, "pos-testkit")
            .await
            .map_err(|e| e.to_string())?;
        c.ask(request).await.map_err(|e| e.to_string())
    })
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
