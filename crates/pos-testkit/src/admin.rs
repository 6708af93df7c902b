//! posctl's side of the admin socket, for tests that close rounds on demand.

use pos_proto::{Client, Request, Response};
use std::path::Path;

/// Closes a round now through posd's admin socket at `socket`, as
/// `posctl lottery run` does; returns posd's answer.
pub fn force_round(socket: &Path) -> Response {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime");
    runtime.block_on(async {
        let mut client = Client::connect(socket, "pos-testkit")
            .await
            .unwrap_or_else(|e| panic!("admin socket {}: {e}", socket.display()));
        client
            .ask(&Request::LotteryRun)
            .await
            .unwrap_or_else(|e| panic!("lottery run on {}: {e}", socket.display()))
    })
}
