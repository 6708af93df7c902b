//! The acknowledgement record: what posd has promised, kept outside sled.
//!
//! sled recovers from damage by dropping the log after the first bad record,
//! which looks exactly like a shorter chain. So after every synced commit
//! group posd writes here how far it has acknowledged (the applied count and
//! the tip), and at start a store that is behind it, or holds another block
//! at that height, is refused instead of served.
//!
//! Layout: two slots of [`SLOT_LEN`] bytes at offsets 0 and [`SLOT_STRIDE`],
//! written alternately, each `magic | seq | applied | height | tip | sha256`.
//! A torn or flipped slot fails its checksum and the other (one commit older,
//! so never ahead of the store) is used.

use crate::sync::{io_err, sync_path};
use crate::StoreError;
use pos_core::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The record's file name in the data directory.
pub const FILE: &str = "acked";

const MAGIC: &[u8; 8] = b"posdack1";
const BODY_LEN: usize = 8 + 8 + 8 + 8 + 32;
const SLOT_LEN: usize = BODY_LEN + 32;
/// Slots live in different pages, so one torn page write damages at most one.
const SLOT_STRIDE: u64 = 4096;

/// How far posd has acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Commands applied (the store's applied index).
    pub applied: u64,
    pub height: u64,
    pub tip: Digest,
}

/// The open record file; written only by the store's flush.
pub(crate) struct AckFile {
    file: File,
    path: PathBuf,
    /// Sequence number of the last slot written; its parity picks the next slot.
    seq: std::sync::Mutex<u64>,
}

fn encode(seq: u64, acked: &Acked) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&seq.to_be_bytes());
    slot[16..24].copy_from_slice(&acked.applied.to_be_bytes());
    slot[24..32].copy_from_slice(&acked.height.to_be_bytes());
    slot[32..64].copy_from_slice(&acked.tip.0);
    let sum = Sha256::digest(&slot[..BODY_LEN]);
    slot[BODY_LEN..].copy_from_slice(&sum);
    slot
}

fn decode(slot: &[u8]) -> Option<(u64, Acked)> {
    if slot.len() < SLOT_LEN
        || &slot[..8] != MAGIC
        || Sha256::digest(&slot[..BODY_LEN])[..] != slot[BODY_LEN..SLOT_LEN]
    {
        return None;
    }
    let u64_at = |at: usize| u64::from_be_bytes(slot[at..at + 8].try_into().expect("8 bytes"));
    let tip: [u8; 32] = slot[32..64].try_into().expect("32 bytes");
    Some((
        u64_at(8),
        Acked {
            applied: u64_at(16),
            height: u64_at(24),
            tip: Digest(tip),
        },
    ))
}

impl AckFile {
    /// Reads the record in `dir`: `None` if there is none yet; an error naming
    /// the file if neither slot is intact.
    pub(crate) fn read(dir: &Path) -> Result<Option<(AckFile, Acked)>, StoreError> {
        let path = dir.join(FILE);
        let file = match File::options().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut best: Option<(u64, Acked)> = None;
        for at in [0, SLOT_STRIDE] {
            let mut slot = [0u8; SLOT_LEN];
            let read = file.read_at(&mut slot, at).map_err(io_err(&path))?;
            if let Some((seq, acked)) = decode(&slot[..read]) {
                if best.is_none_or(|(s, _)| seq > s) {
                    best = Some((seq, acked));
                }
            }
        }
        let Some((seq, acked)) = best else {
            return Err(StoreError::Damaged {
                path,
                detail: "the acknowledgement record is unreadable (both copies damaged)".into(),
            });
        };
        let record = AckFile {
            file,
            path,
            seq: std::sync::Mutex::new(seq),
        };
        Ok(Some((record, acked)))
    }

    /// Creates the record in `dir` atomically (written aside, synced, renamed).
    pub(crate) fn create(dir: &Path, acked: &Acked) -> Result<AckFile, StoreError> {
        let path = dir.join(FILE);
        let aside = dir.join(format!("{FILE}.new"));
        let file = File::create(&aside).map_err(io_err(&aside))?;
        for (seq, at) in [(0, SLOT_STRIDE), (1, 0)] {
            file.write_all_at(&encode(seq, acked), at)
                .map_err(io_err(&aside))?;
        }
        file.sync_all().map_err(io_err(&aside))?;
        std::fs::rename(&aside, &path).map_err(io_err(&path))?;
        sync_path(dir)?;
        Ok(AckFile {
            file,
            path,
            seq: std::sync::Mutex::new(1),
        })
    }

    /// Records `acked`, synced, over the older slot.
    pub(crate) fn write(&self, acked: &Acked) -> Result<(), StoreError> {
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        let next = *seq + 1;
        let at = if next % 2 == 1 { 0 } else { SLOT_STRIDE };
        self.file
            .write_all_at(&encode(next, acked), at)
            .and_then(|()| self.file.sync_data())
            .map_err(io_err(&self.path))?;
        *seq = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(n: u64) -> Acked {
        Acked {
            applied: n * 10,
            height: n,
            tip: Digest([n as u8; 32]),
        }
    }

    #[test]
    fn newest_intact_slot_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = AckFile::create(dir.path(), &acked(1)).unwrap();
        file.write(&acked(2)).unwrap();
        file.write(&acked(3)).unwrap();
        drop(file);
        let (_, read) = AckFile::read(dir.path()).unwrap().unwrap();
        assert_eq!(read, acked(3));
    }

    #[test]
    fn a_damaged_slot_falls_back_to_the_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = AckFile::create(dir.path(), &acked(1)).unwrap();
        file.write(&acked(2)).unwrap(); // seq 2: the slot at SLOT_STRIDE
        drop(file);
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT_STRIDE as usize + 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (_, read) = AckFile::read(dir.path()).unwrap().unwrap();
        assert_eq!(read, acked(1));
    }

    #[test]
    fn both_slots_damaged_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(AckFile::create(dir.path(), &acked(1)).unwrap());
        let path = dir.path().join(FILE);
        std::fs::write(&path, b"short").unwrap();
        let err = AckFile::read(dir.path()).err().unwrap().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn missing_record_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(AckFile::read(dir.path()).unwrap().is_none());
    }
}
