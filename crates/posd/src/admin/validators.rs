//! `posctl validators` and `posctl validator <ADDRESS>`.

use super::{send_chunks, send_found, Out};
use crate::query;
use crate::shared::{Chain, Clients};
use pos_core::{Address, Status};
use pos_proto::{HexPrefix, ProtoError, Response};

/// Streams validators by address: the active ones, or all.
pub async fn list(
    (chain, clients): (&Chain, &Clients),
    out: &mut Out,
    all: bool,
) -> Result<(), ProtoError> {
    let items = chain
        .store
        .validators()
        .filter(|v| all || v.as_ref().map_or(true, |v| v.status() == Status::Active))
        .map(|v| v.map(|v| clients.info(v)));
    send_chunks(out, items, Response::Validators).await
}

pub async fn one(
    (chain, clients): (&Chain, &Clients),
    out: &mut Out,
    address: Address,
) -> Result<(), ProtoError> {
    let found = query::validator(&chain.store, &address);
    send_found(out, found, |v| Response::Validators(vec![clients.info(v)])).await
}

/// `posctl validator <ADDRESS-PREFIX>`: the one validator whose address starts so.
pub async fn by_prefix(
    (chain, clients): (&Chain, &Clients),
    out: &mut Out,
    prefix: HexPrefix,
) -> Result<(), ProtoError> {
    let found = query::validator_by_prefix(&chain.store, &prefix);
    send_found(out, found, |v| Response::Validators(vec![clients.info(v)])).await
}
