//! `posctl status`.

use super::{store_error, Out};
use crate::shared::Shared;
use pos_proto::{write_frame, ProtoError, Response};

pub async fn status(shared: &Shared, out: &mut Out) -> Result<(), ProtoError> {
    match shared.status() {
        Ok(info) => write_frame(out, &Response::Status(info)).await,
        Err(e) => store_error(out, e).await,
    }
}
