//! `posctl status`.

use super::{store_error, Out};
use crate::shared::Shared;
use pos_proto::{write_frame, ProtoError, Response, StatusInfo};

pub async fn status(shared: &Shared, out: &mut Out) -> Result<(), ProtoError> {
    let store = &shared.store;
    let (tip, counts, size, commitment) = match (
        store.tip(),
        store.counts(),
        store.size_on_disk(),
        store.next_commitment(),
    ) {
        (Ok(t), Ok(c), Ok(s), Ok(n)) => (t, c, s, n),
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
            return store_error(out, e).await
        }
    };
    let config = shared.config();
    let info = StatusInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        height: tip.index,
        tip_hash: tip.hash,
        listen: shared.listen.to_string(),
        admin_socket: shared.admin_socket.display().to_string(),
        data_dir: config.data_dir.display().to_string(),
        validators_active: counts.active,
        validators_slashed: counts.slashed,
        connected: shared.connected.count() as u64,
        connections: shared.slots.active() as u64,
        pending_proposals: shared.pending.len() as u64,
        next_round_in_ms: shared.next_round.remaining().as_millis() as u64,
        round_interval_ms: config.round_interval.as_millis() as u64,
        uptime_secs: shared.started.elapsed().as_secs(),
        data_size_bytes: size,
        lottery_commitment: commitment,
    };
    write_frame(out, &Response::Status(info)).await
}
