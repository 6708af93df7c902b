//! `posctl validators` and `posctl validator <ADDRESS>`.

use super::{resolve, send_chunks, store_error, Out};
use crate::shared::Shared;
use pos_core::{Address, Status, Validator};
use pos_proto::{write_frame, HexPrefix, ProtoError, Response, ValidatorInfo};

fn info(shared: &Shared, validator: Validator) -> ValidatorInfo {
    ValidatorInfo {
        connected: shared.connected.is_connected(&validator.address),
        validator,
    }
}

/// Streams validators by address: the active ones, or all.
pub async fn list(shared: &Shared, out: &mut Out, all: bool) -> Result<(), ProtoError> {
    let items = shared
        .store
        .validators()
        .filter(|v| all || v.as_ref().map_or(true, |v| v.status() == Status::Active))
        .map(|v| v.map(|v| info(shared, v)));
    send_chunks(out, items, Response::Validators).await
}

pub async fn one(shared: &Shared, out: &mut Out, address: Address) -> Result<(), ProtoError> {
    match shared.store.validator(&address) {
        Ok(Some(v)) => write_frame(out, &Response::Validators(vec![info(shared, v)])).await,
        Ok(None) => write_frame(out, &Response::Error(format!("no validator {address}"))).await,
        Err(e) => store_error(out, e).await,
    }
}

/// `posctl validator <ADDRESS-PREFIX>`: the one validator whose address starts so.
pub async fn by_prefix(
    shared: &Shared,
    out: &mut Out,
    prefix: HexPrefix,
) -> Result<(), ProtoError> {
    let store = &shared.store;
    let find = |b: &[u8], n, l| store.addresses_with_prefix(b, n, l);
    match resolve(out, "validator address", &prefix, find).await? {
        Some(address) => one(shared, out, address).await,
        None => Ok(()),
    }
}
