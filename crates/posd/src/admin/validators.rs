//! `posctl validators` and `posctl validator <ADDRESS>`.

use super::{send_chunks, send_found, Out};
use crate::query;
use crate::shared::Shared;
use pos_core::{Address, Status};
use pos_proto::{HexPrefix, ProtoError, Response};

/// Streams validators by address: the active ones, or all.
pub async fn list(shared: &Shared, out: &mut Out, all: bool) -> Result<(), ProtoError> {
    let items = shared
        .store
        .validators()
        .filter(|v| all || v.as_ref().map_or(true, |v| v.status() == Status::Active))
        .map(|v| v.map(|v| shared.validator_info(v)));
    send_chunks(out, items, Response::Validators).await
}

pub async fn one(shared: &Shared, out: &mut Out, address: Address) -> Result<(), ProtoError> {
    let found = query::validator(&shared.store, &address);
    send_found(out, found, |v| {
        Response::Validators(vec![shared.validator_info(v)])
    })
    .await
}

/// `posctl validator <ADDRESS-PREFIX>`: the one validator whose address starts so.
pub async fn by_prefix(
    shared: &Shared,
    out: &mut Out,
    prefix: HexPrefix,
) -> Result<(), ProtoError> {
    let found = query::validator_by_prefix(&shared.store, &prefix);
    send_found(out, found, |v| {
        Response::Validators(vec![shared.validator_info(v)])
    })
    .await
}
