//! Length-prefixed bincode frames.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame body either side accepts; bigger answers are streamed in pieces.
pub const MAX_FRAME: u32 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooBig { len: u32, max: u32 },
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("connection closed mid-frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Encodes a frame body (without the length prefix).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(msg, bincode::config::standard())
        .expect("admin messages always encode")
}

/// Decodes a frame body; every byte must be used, so trailing junk is an error.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtoError> {
    let config = bincode::config::standard().with_limit::<{ MAX_FRAME as usize }>();
    let (msg, used) = bincode::serde::decode_from_slice(body, config)
        .map_err(|e| ProtoError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(ProtoError::Decode(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, ProtoError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let max = MAX_FRAME;
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(ProtoError::TooBig { len, max });
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ProtoError::Truncated,
        _ => e.into(),
    })?;
    decode(&body).map(Some)
}

/// Writes one frame (not flushed: callers batch, then flush).
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), ProtoError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let max = MAX_FRAME;
    let body = encode(msg);
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= max)
        .ok_or(ProtoError::TooBig {
            len: u32::try_from(body.len()).unwrap_or(u32::MAX),
            max,
        })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Request, Response};

    #[tokio::test]
    async fn round_trip_and_clean_eof() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::LotteryExplain(7))
            .await
            .unwrap();
        write_frame(&mut buf, &Request::Status).await.unwrap();
        let mut r = buf.as_slice();
        let a: Option<Request> = read_frame(&mut r).await.unwrap();
        let b: Option<Request> = read_frame(&mut r).await.unwrap();
        let c: Option<Request> = read_frame(&mut r).await.unwrap();
        assert_eq!(
            (a, b, c),
            (
                Some(Request::LotteryExplain(7)),
                Some(Request::Status),
                None
            )
        );
    }

    #[tokio::test]
    async fn oversized_truncated_and_garbage_frames_are_errors() {
        let mut r: &[u8] = &(MAX_FRAME + 1).to_be_bytes();
        assert!(matches!(
            read_frame::<_, Request>(&mut r).await,
            Err(ProtoError::TooBig { .. })
        ));
        let mut r: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert!(matches!(
            read_frame::<_, Request>(&mut r).await,
            Err(ProtoError::Truncated)
        ));
        let mut r: &[u8] = &[0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame::<_, Request>(&mut r).await,
            Err(ProtoError::Decode(_))
        ));
        // A valid body with junk after it is refused too.
        let mut body = encode(&Response::End);
        body.push(0);
        assert!(decode::<Response>(&body).is_err());
    }
}
