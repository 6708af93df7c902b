//! `posctl validators` and `posctl validator <ADDRESS>`.

use super::{send_chunks, store_error, Out};
use crate::shared::Shared;
use pos_core::{Address, Status, Validator};
use pos_proto::{write_frame, ProtoError, Response, ValidatorInfo};

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
