//! Sealed links between nodes (SPEC §14): a Noise session keyed from the
//! cluster secret, and peer frames carried as sequences of Noise messages.
//!
//! The handshake is `Noise_NNpsk0_25519_ChaChaPoly_SHA256`: the pre-shared
//! key is a domain-separated SHA-256 of `cluster_secret_file` (no other key
//! for the operator to manage), each side brings a fresh ephemeral key (a
//! recording cannot be decrypted later nor replayed: the replayer lacks the
//! ephemeral key the new session's keys mix in), and the prologue binds the
//! cleartext hello (ids and version) to the session.
//!
//! A sealed frame is one or more records, each a u16 big-endian length and
//! a Noise transport message (at most 65535 bytes). The first record's
//! plaintext starts with the frame's u32 big-endian length, so lengths are
//! authenticated too. Noise's ordered nonces refuse a record that is
//! changed, dropped, reordered or replayed: any such record breaks the link.

use sha2::{Digest, Sha256};
use snow::{HandshakeState, TransportState};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The Noise protocol of every link.
pub const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";
/// Largest Noise message (the protocol's own limit).
const MAX_RECORD: usize = 65535;
/// The authentication tag every record carries.
const TAG: usize = 16;
/// Plaintext bytes one record carries.
const MAX_PLAIN: usize = MAX_RECORD - TAG;
/// The frame length that opens a frame's first record.
const HEADER: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A record failed authentication: changed in flight, replayed,
    /// reordered, or keyed from another secret.
    #[error("a sealed record failed authentication (changed in flight or replayed)")]
    Broken,
    #[error("sealed frame of {len} bytes exceeds the {max}-byte limit")]
    TooBig { len: u64, max: u32 },
    #[error("connection closed mid-frame")]
    Truncated,
    /// Noise refused to start (never for well-formed inputs).
    #[error("noise: {0}")]
    Noise(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The pre-shared key of every link, from the cluster secret.
pub fn psk(secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"posd cluster link psk v2\0");
    h.update(secret);
    h.finalize().into()
}

/// A fresh handshake keyed by `psk`, bound to `prologue` (the cleartext
/// hello both sides saw).
pub fn handshake(
    psk: &[u8; 32],
    prologue: &[u8],
    initiator: bool,
) -> Result<HandshakeState, SealError> {
    let noise = |e: snow::Error| SealError::Noise(e.to_string());
    let params = NOISE_PATTERN.parse().map_err(noise)?;
    let builder = snow::Builder::new(params)
        .psk(0, psk)
        .map_err(noise)?
        .prologue(prologue)
        .map_err(noise)?;
    if initiator {
        builder.build_initiator().map_err(noise)
    } else {
        builder.build_responder().map_err(noise)
    }
}

/// Writes our next handshake message (no payload).
pub fn handshake_write(hs: &mut HandshakeState) -> Result<Vec<u8>, SealError> {
    let mut out = vec![0; MAX_RECORD];
    let n = hs
        .write_message(&[], &mut out)
        .map_err(|_| SealError::Broken)?;
    out.truncate(n);
    Ok(out)
}

/// Reads the peer's next handshake message: `Broken` when it was keyed
/// from another secret, bound to another hello, or changed.
pub fn handshake_read(hs: &mut HandshakeState, message: &[u8]) -> Result<(), SealError> {
    let mut payload = vec![0; MAX_RECORD];
    hs.read_message(message, &mut payload)
        .map_err(|_| SealError::Broken)?;
    Ok(())
}

/// One end of an established link: seals what it sends, opens what it
/// receives.
pub struct Sealed(TransportState);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

impl Sealed {
    /// The link once the handshake is complete.
    pub fn new(hs: HandshakeState) -> Result<Sealed, SealError> {
        hs.into_transport_mode()
            .map(Sealed)
            .map_err(|e| SealError::Noise(e.to_string()))
    }

    /// Appends `frame`, sealed, to `out`.
    pub fn seal(&mut self, frame: &[u8], max: u32, out: &mut Vec<u8>) -> Result<(), SealError> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l <= max)
            .ok_or(SealError::TooBig {
                len: frame.len() as u64,
                max,
            })?;
        let mut plain = Vec::with_capacity(MAX_PLAIN);
        plain.extend_from_slice(&len.to_be_bytes());
        let mut rest = frame;
        loop {
            let take = rest.len().min(MAX_PLAIN - plain.len());
            plain.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            let at = out.len();
            out.resize(at + 2 + plain.len() + TAG, 0);
            let n = self
                .0
                .write_message(&plain, &mut out[at + 2..])
                .map_err(|e| SealError::Noise(e.to_string()))?;
            out[at..at + 2].copy_from_slice(&(n as u16).to_be_bytes());
            plain.clear();
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Reads and opens one frame; `Ok(None)` on a clean end of stream
    /// between frames.
    pub async fn open<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        max: u32,
    ) -> Result<Option<Vec<u8>>, SealError> {
        let mut record = vec![0; MAX_RECORD];
        let mut plain = vec![0; MAX_RECORD];
        let Some(n) = self.record(r, &mut record, &mut plain, true).await? else {
            return Ok(None);
        };
        if n < HEADER {
            return Err(SealError::Broken);
        }
        let len = u32::from_be_bytes(plain[..HEADER].try_into().expect("4 bytes"));
        if len > max {
            return Err(SealError::TooBig {
                len: len.into(),
                max,
            });
        }
        let len = len as usize;
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(&plain[HEADER..n]);
        while frame.len() < len {
            let n = self
                .record(r, &mut record, &mut plain, false)
                .await?
                .ok_or(SealError::Truncated)?;
            frame.extend_from_slice(&plain[..n]);
        }
        // A frame's records say its length: more is not ours to accept.
        if frame.len() != len {
            return Err(SealError::Broken);
        }
        Ok(Some(frame))
    }

    /// Reads one record into `plain`: its plaintext length, or `None` at a
    /// clean end of stream (only where `first`).
    async fn record<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        record: &mut [u8],
        plain: &mut [u8],
        first: bool,
    ) -> Result<Option<usize>, SealError> {
        let mut len = [0u8; 2];
        match r.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && first => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(SealError::Truncated)
            }
            Err(e) => return Err(e.into()),
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len < TAG {
            return Err(SealError::Broken);
        }
        r.read_exact(&mut record[..len])
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => SealError::Truncated,
                _ => e.into(),
            })?;
        self.0
            .read_message(&record[..len], plain)
            .map(Some)
            .map_err(|_| SealError::Broken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends of a link that completed its handshake.
    fn pair(caller_secret: &[u8], callee_secret: &[u8]) -> Result<(Sealed, Sealed), SealError> {
        let mut a = handshake(&psk(caller_secret), b"hello", true)?;
        let mut b = handshake(&psk(callee_secret), b"hello", false)?;
        handshake_read(&mut b, &handshake_write(&mut a)?)?;
        handshake_read(&mut a, &handshake_write(&mut b)?)?;
        Ok((Sealed::new(a)?, Sealed::new(b)?))
    }

    const MAX: u32 = 64 * 1024 * 1024;

    async fn open_all(b: &mut Sealed, wire: &[u8]) -> Result<Vec<Vec<u8>>, SealError> {
        let mut r = wire;
        let mut frames = Vec::new();
        while let Some(f) = b.open(&mut r, MAX).await? {
            frames.push(f);
        }
        Ok(frames)
    }

    #[tokio::test]
    async fn frames_of_every_size_round_trip_and_hide_their_bytes() {
        let (mut a, mut b) = pair(b"s3cret", b"s3cret").unwrap();
        let sizes = [
            0,
            1,
            MAX_PLAIN - HEADER,
            MAX_PLAIN - HEADER + 1,
            3 * MAX_PLAIN + 5,
        ];
        let frames: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| b"lottery secret ".iter().copied().cycle().take(n).collect())
            .collect();
        let mut wire = Vec::new();
        for f in &frames {
            a.seal(f, MAX, &mut wire).unwrap();
        }
        assert!(!wire.windows(14).any(|w| w == b"lottery secret"));
        assert_eq!(open_all(&mut b, &wire).await.unwrap(), frames);
        // And the other way.
        let mut back = Vec::new();
        b.seal(b"answer", MAX, &mut back).unwrap();
        assert_eq!(open_all(&mut a, &back).await.unwrap(), [b"answer".to_vec()]);
    }

    #[tokio::test]
    async fn any_flipped_byte_breaks_the_link() {
        // 70 000 bytes seal as two records: flips in both, lengths included.
        for at in [
            0,
            1,
            2,
            100,
            MAX_RECORD + 1,
            MAX_RECORD + 3,
            MAX_RECORD + 4_000,
        ] {
            // A fresh pair per flip: the same keys are never reused.
            let (mut a, mut b) = pair(b"s3cret", b"s3cret").unwrap();
            let mut wire = Vec::new();
            a.seal(&[7; 70_000], MAX, &mut wire).unwrap();
            wire[at] ^= 1;
            let got = open_all(&mut b, &wire).await;
            assert!(
                matches!(got, Err(SealError::Broken | SealError::Truncated)),
                "flip at {at}: {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn replayed_reordered_or_cut_frames_are_refused() {
        let sealed = |a: &mut Sealed, frame: &[u8]| {
            let mut wire = Vec::new();
            a.seal(frame, MAX, &mut wire).unwrap();
            wire
        };
        // Replayed within the session.
        let (mut a, mut b) = pair(b"s3cret", b"s3cret").unwrap();
        let one = sealed(&mut a, b"one");
        let replayed = [one.clone(), one.clone()].concat();
        let got = open_all(&mut b, &replayed).await;
        assert!(matches!(got, Err(SealError::Broken)), "{got:?}");
        // Reordered.
        let (mut a, mut b) = pair(b"s3cret", b"s3cret").unwrap();
        let (one, two) = (sealed(&mut a, b"one"), sealed(&mut a, b"two"));
        let got = open_all(&mut b, &[two, one.clone()].concat()).await;
        assert!(matches!(got, Err(SealError::Broken)), "{got:?}");
        // Replayed into another session (same secret, same hello).
        let (_, mut other) = pair(b"s3cret", b"s3cret").unwrap();
        let got = open_all(&mut other, &one).await;
        assert!(matches!(got, Err(SealError::Broken)), "{got:?}");
        // Cut mid-frame.
        let (mut a, mut b) = pair(b"s3cret", b"s3cret").unwrap();
        let big = sealed(&mut a, &[1; 100_000]);
        let got = open_all(&mut b, &big[..big.len() - 1]).await;
        assert!(matches!(got, Err(SealError::Truncated)), "{got:?}");
    }

    #[test]
    fn another_secret_or_another_hello_fails_the_handshake() {
        assert!(matches!(pair(b"s3cret", b"other"), Err(SealError::Broken)));
        let mut a = handshake(&psk(b"s3cret"), b"hello to 2", true).unwrap();
        let mut b = handshake(&psk(b"s3cret"), b"hello to 3", false).unwrap();
        let m = handshake_write(&mut a).unwrap();
        assert!(matches!(handshake_read(&mut b, &m), Err(SealError::Broken)));
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_both_ways() {
        let (mut a, mut b) = pair(b"s3cret", b"s3cret").unwrap();
        let mut wire = Vec::new();
        assert!(matches!(
            a.seal(&[0; 11], 10, &mut wire),
            Err(SealError::TooBig { len: 11, max: 10 })
        ));
        a.seal(&[0; 11], 11, &mut wire).unwrap();
        let mut r = wire.as_slice();
        assert!(matches!(
            b.open(&mut r, 10).await,
            Err(SealError::TooBig { len: 11, max: 10 })
        ));
    }
}
