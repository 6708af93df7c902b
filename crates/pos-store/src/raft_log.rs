//! A cluster node's Raft log in its own append-only files: the write-ahead
//! log of the cluster (docs/CLUSTER.md, "Durability").
//!
//! Every cluster write waits for this log's sync on a majority, twice in
//! series (the leader's, then a follower's), so it must cost one device
//! flush and nothing else. Kept in sled it cost sled's flush (a
//! `sync_file_range` of everything dirty, chain state included), a listing
//! of sled's blobs and an `fdatasync`: ~0.8 ms per append on the test
//! machine, against ~0.2 ms for a write and `fdatasync` of a plain file.
//!
//! Layout: `raft-log/` in the data directory holds segments named by the
//! index of their first entry (`1.log`, `10342.log`: short, so that a
//! LazyFS fault command naming one fits its 100 bytes), each the magic
//! [`MAGIC`] then records `len u32 | crc32 u32 | index u64 | entry`, little
//! endian, the CRC over index and entry. Indexes run on without a gap within
//! a segment, and grow from one segment to the next. An append writes all its records in one `pwrite`
//! and returns after `fdatasync`; a new segment's directory entry is synced
//! before its first append returns.
//!
//! A power cut can leave a torn tail: the last append, never acknowledged,
//! half written. Opening drops it (the last segment is cut back to its last
//! whole record), unless it holds an entry the caller says was acknowledged
//! (`open_keeping`): that is damage, refused with the file left as it is. A
//! bad record anywhere else is damage and refused.
//!
//! Round records too big for sled are kept in a log of the same kind
//! (`round_log`).

use crate::sync::{io_err, sync_path};
use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The log's directory in a data directory.
pub const DIR: &str = "raft-log";
/// Where an older store's log is copied before it becomes [`DIR`].
pub const DIR_NEW: &str = "raft-log.new";
/// Starts every segment: the format, so a future one can tell.
const MAGIC: &[u8; 8] = b"posdlog1";
/// A segment takes no new append beyond this size (one append may pass it).
const SEGMENT_BYTES: u64 = 16 << 20;
const HEADER: usize = 16;
/// Larger than any entry posd writes (a round of 1,000,000 candidates is
/// ~50 MB); a length beyond it is damage, not an allocation to attempt.
const MAX_ENTRY: usize = 256 << 20;

/// The open log. Appends, truncations and purges are durable on return.
pub struct RaftLog {
    dir: PathBuf,
    segments: Mutex<Segments>,
    /// Bytes of a torn tail cut off at open (0 after a clean stop).
    cut: u64,
}

#[derive(Default)]
struct Segments {
    /// In index order: indexes run on within one, and grow from one to
    /// the next.
    list: Vec<Segment>,
    /// Entries below it are purged: never read, though the segment that
    /// runs past the purge still holds them.
    from: u64,
    /// Set when a write or sync failed: what is on disk is then unknown,
    /// and nothing more is written or claimed (fail-stop, like the store).
    failed: bool,
}

struct Segment {
    first: u64,
    path: PathBuf,
    file: File,
    /// Where each entry's record starts (entry `first + k` at `starts[k]`).
    starts: Vec<u64>,
    /// The file's length: the end of its last whole record.
    end: u64,
}

impl Segments {
    /// The index the next append continues from; `None` while the log
    /// holds no entry.
    fn next_index(&self) -> Option<u64> {
        let last = self.list.last()?;
        (!last.starts.is_empty() || self.list.len() > 1).then(|| last.next_index())
    }
}

impl Segment {
    fn next_index(&self) -> u64 {
        self.first + self.starts.len() as u64
    }

    fn last_index(&self) -> Option<u64> {
        (!self.starts.is_empty()).then(|| self.next_index() - 1)
    }

    /// The byte range of entry `index`'s record.
    fn span(&self, index: u64) -> (u64, u64) {
        let k = (index - self.first) as usize;
        let end = self.starts.get(k + 1).copied().unwrap_or(self.end);
        (self.starts[k], end)
    }

    fn read(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        let (start, end) = self.span(index);
        let mut record = vec![0; (end - start) as usize];
        self.file
            .read_exact_at(&mut record, start)
            .map_err(io_err(&self.path))?;
        match parse(&record) {
            Some((i, entry, _)) if i == index => Ok(entry.to_vec()),
            _ => Err(self.damaged(start, "a record changed since it was written")),
        }
    }

    fn damaged(&self, offset: u64, what: &str) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            detail: format!("log record at byte {offset}: {what}"),
        }
    }
}

/// One record's index, entry and length, if `bytes` starts with a whole,
/// intact one.
fn parse(bytes: &[u8]) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let index = u64::from_le_bytes(header[8..16].try_into().ok()?);
    if len > MAX_ENTRY {
        return None;
    }
    let entry = bytes.get(HEADER..HEADER + len)?;
    (checksum(index, entry) == crc).then_some((index, entry, HEADER + len))
}

fn checksum(index: u64, entry: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(entry);
    h.finalize()
}

fn record(out: &mut Vec<u8>, index: u64, entry: &[u8]) {
    out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(index, entry).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(entry);
}

/// The file name of the segment whose first entry is `first`.
pub fn segment_name(first: u64) -> String {
    format!("{first}.log")
}

/// The first entry of the segment named `name`; `None` if it names none.
pub fn segment_first(name: &str) -> Option<u64> {
    name.strip_suffix(".log")?.parse().ok()
}

impl RaftLog {
    /// Opens (or makes) the log in `dir`, dropping a torn tail.
    pub fn open(dir: &Path) -> Result<RaftLog, StoreError> {
        RaftLog::open_keeping(dir, 0)
    }

    /// [`RaftLog::open`] for a log whose entries up to `keep` were
    /// acknowledged: a tail that would cut one of them is damage, refused
    /// with the file left as it is, not dropped.
    pub fn open_keeping(dir: &Path, keep: u64) -> Result<RaftLog, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let mut firsts = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            match entry.file_name().to_str().and_then(segment_first) {
                Some(first) => firsts.push(first),
                None => {
                    return Err(StoreError::Damaged {
                        path: entry.path(),
                        detail: "not a log segment".into(),
                    })
                }
            }
        }
        firsts.sort_unstable();
        let mut list: Vec<Segment> = Vec::with_capacity(firsts.len());
        let mut cut = 0;
        for (n, &first) in firsts.iter().enumerate() {
            let last = n + 1 == firsts.len();
            let (segment, torn) = scan(&dir.join(segment_name(first)), first, last, keep)?;
            cut += torn;
            if let Some(before) = list.last() {
                if before.next_index() > first {
                    return Err(segment.damaged(
                        0,
                        &format!("it begins at entry {first}, within the segment before it"),
                    ));
                }
            }
            list.push(segment);
        }
        Ok(RaftLog {
            dir: dir.to_owned(),
            segments: Mutex::new(Segments {
                list,
                from: 0,
                failed: false,
            }),
            cut,
        })
    }

    /// Bytes of a torn last append that opening cut off: an append a power
    /// cut interrupted, never acknowledged (0 after a clean stop).
    pub fn cut_at_open(&self) -> u64 {
        self.cut
    }

    fn segments(&self) -> Result<MutexGuard<'_, Segments>, StoreError> {
        let guard = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        if guard.failed {
            return Err(StoreError::Damaged {
                path: self.dir.clone(),
                detail: "an earlier write to this log failed".into(),
            });
        }
        Ok(guard)
    }

    /// Appends entries `(index, bytes)`, in order without a gap, after the
    /// log's last; durable when this returns. An append that leaves a gap
    /// after the last (openraft's storage tests make some) starts a segment.
    pub fn append(
        &self,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let mut segments = self.segments()?;
        let after = segments.next_index();
        let mut records = Vec::new();
        let mut starts = Vec::new();
        let mut next: Option<u64> = None;
        for (index, entry) in entries {
            let fits = match next {
                Some(n) => index == n,
                None => after.is_none_or(|a| index >= a),
            };
            if !fits {
                return Err(StoreError::Invalid(format!(
                    "log append of entry {index} after entry {}",
                    next.or(after).unwrap_or(1) - 1
                )));
            }
            starts.push(records.len() as u64);
            record(&mut records, index, &entry);
            next = Some(index + 1);
        }
        let Some(next) = next else { return Ok(()) };
        let first = next - starts.len() as u64;
        let gap = after.is_some_and(|a| a != first);
        let result = self.write(&mut segments, first, gap, &records, starts);
        segments.failed |= result.is_err();
        result
    }

    fn write(
        &self,
        segments: &mut Segments,
        first: u64,
        gap: bool,
        records: &[u8],
        starts: Vec<u64>,
    ) -> Result<(), StoreError> {
        match segments.list.last() {
            Some(s) if s.starts.is_empty() && s.first != first => {
                // An empty log's segment, made for another start.
                let s = segments.list.pop().expect("just seen");
                remove(std::iter::once(s), &self.dir)?;
                segments.list.push(self.create(first)?);
            }
            Some(s) if !gap && (s.starts.is_empty() || s.end < SEGMENT_BYTES) => {}
            _ => segments.list.push(self.create(first)?),
        }
        let segment = segments.list.last_mut().expect("a segment was made");
        segment
            .file
            .write_all_at(records, segment.end)
            .and_then(|()| segment.file.sync_data())
            .map_err(io_err(&segment.path))?;
        let base = segment.end;
        segment.starts.extend(starts.into_iter().map(|s| base + s));
        segment.end += records.len() as u64;
        Ok(())
    }

    /// A new, empty segment for entries from `first`, its name synced.
    fn create(&self, first: u64) -> Result<Segment, StoreError> {
        let path = self.dir.join(segment_name(first));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all_at(MAGIC, 0)
            .and_then(|()| file.sync_data())
            .map_err(io_err(&path))?;
        sync_path(&self.dir)?;
        Ok(Segment {
            first,
            path,
            file,
            starts: Vec::new(),
            end: MAGIC.len() as u64,
        })
    }

    /// Entries with index in `from..to` (`to` exclusive) that the log holds, in order.
    pub fn read(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let segments = self.segments()?;
        let mut out = Vec::new();
        let from = from.max(segments.from);
        for s in &segments.list {
            let (lo, hi) = (from.max(s.first), to.min(s.next_index()));
            for index in lo..hi {
                out.push((index, s.read(index)?));
            }
        }
        Ok(out)
    }

    /// The index the next append continues from; `None` while the log
    /// holds no entry.
    pub fn next_index(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.segments()?.next_index())
    }

    /// Bytes in the log's segments.
    pub fn bytes(&self) -> Result<u64, StoreError> {
        Ok(self.segments()?.list.iter().map(|s| s.end).sum())
    }

    /// The last entry, if the log holds any.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let segments = self.segments()?;
        let Some(s) = segments.list.iter().rev().find(|s| !s.starts.is_empty()) else {
            return Ok(None);
        };
        let index = s.last_index().expect("not empty");
        if index < segments.from {
            return Ok(None);
        }
        Ok(Some((index, s.read(index)?)))
    }

    /// Removes every entry from `index` on (a conflicting suffix); durable
    /// on return. Later segments go first, so a crash midway leaves a log
    /// without a gap.
    pub fn truncate(&self, index: u64) -> Result<(), StoreError> {
        let mut segments = self.segments()?;
        let result = truncate(&mut segments.list, index, &self.dir);
        segments.failed |= result.is_err();
        result
    }

    /// Drops every entry up to `index`: the segments holding only such
    /// entries are removed, the rest are never read again. The caller
    /// records the purge first, and repeats it after a restart (the log
    /// does not keep it). Earlier segments go first, so a crash midway
    /// leaves a log without a gap.
    pub fn purge(&self, index: u64) -> Result<(), StoreError> {
        let mut segments = self.segments()?;
        segments.from = segments.from.max(index + 1);
        let whole = segments
            .list
            .iter()
            .take_while(|s| s.next_index() <= index + 1)
            .count();
        if whole == 0 {
            return Ok(());
        }
        let result = remove(segments.list.drain(..whole), &self.dir);
        segments.failed |= result.is_err();
        result
    }
}

fn truncate(list: &mut Vec<Segment>, index: u64, dir: &Path) -> Result<(), StoreError> {
    let keep = list.iter().take_while(|s| s.first < index).count();
    let later: Vec<Segment> = list.drain(keep..).rev().collect();
    remove(later.into_iter(), dir)?;
    let Some(s) = list.last_mut() else {
        return Ok(());
    };
    if index >= s.next_index() {
        return Ok(());
    }
    let cut = s.span(index).0;
    s.file
        .set_len(cut)
        .and_then(|()| s.file.sync_all())
        .map_err(io_err(&s.path))?;
    s.starts.truncate((index - s.first) as usize);
    s.end = cut;
    Ok(())
}

fn remove(segments: impl Iterator<Item = Segment>, dir: &Path) -> Result<(), StoreError> {
    let mut any = false;
    for s in segments {
        std::fs::remove_file(&s.path).map_err(io_err(&s.path))?;
        any = true;
    }
    if any {
        sync_path(dir)?;
    }
    Ok(())
}

/// Reads a segment's records. In the `last` segment a torn tail (or a
/// magic never written) is cut off, and its length returned; anywhere
/// else it is damage.
fn scan(path: &Path, first: u64, last: bool, keep: u64) -> Result<(Segment, u64), StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    let mut segment = Segment {
        first,
        path: path.to_owned(),
        file,
        starts: Vec::new(),
        end: MAGIC.len() as u64,
    };
    if !bytes.starts_with(MAGIC) {
        // Only the last segment, made as the power went, may lack its magic
        // (and then holds nothing else): it starts again, empty.
        if !last || bytes.len() > MAGIC.len() || first <= keep {
            return Err(segment.damaged(0, "not a posd log segment"));
        }
        segment
            .file
            .write_all_at(MAGIC, 0)
            .and_then(|()| segment.file.set_len(segment.end))
            .and_then(|()| segment.file.sync_all())
            .map_err(io_err(path))?;
        return Ok((segment, bytes.len() as u64));
    }
    let mut at = MAGIC.len();
    while let Some((index, _, len)) = parse(&bytes[at..]) {
        if index != segment.next_index() {
            return Err(segment.damaged(
                at as u64,
                &format!("entry {index} where {} comes next", segment.next_index()),
            ));
        }
        segment.starts.push(at as u64);
        at += len;
    }
    segment.end = at as u64;
    if at < bytes.len() {
        if !last {
            return Err(segment.damaged(segment.end, "unreadable in an older segment"));
        }
        if segment.next_index() <= keep {
            return Err(segment.damaged(
                segment.end,
                &format!(
                    "unreadable, but entry {} was acknowledged",
                    segment.next_index()
                ),
            ));
        }
        // The last append's unacknowledged remains: cut back, durably.
        segment
            .file
            .set_len(segment.end)
            .and_then(|()| segment.file.sync_all())
            .map_err(io_err(path))?;
    }
    let cut = bytes.len() as u64 - segment.end;
    Ok((segment, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(range: std::ops::Range<u64>, size: usize) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, vec![i as u8; size])).collect()
    }

    /// A closed log made by these appends.
    fn written(appends: Vec<Vec<(u64, Vec<u8>)>>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        for batch in appends {
            log.append(batch).unwrap();
        }
        dir
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    segment_first(p.file_name().unwrap().to_str().unwrap()).unwrap(),
                    p,
                )
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn appends_survive_a_reopen_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.last().unwrap(), None);
        // 2 MiB entries: the ninth fills the first segment, the rest roll.
        for chunk in [1..4, 4..9, 9..12] {
            log.append(entries(chunk, 2 << 20)).unwrap();
        }
        log.append(entries(12..20, 10)).unwrap();
        drop(log);
        assert_eq!(segment_files(dir.path()).len(), 2);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(
            log.read(1, 20).unwrap(),
            [entries(1..12, 2 << 20), entries(12..20, 10)].concat()
        );
        assert_eq!(log.read(5, 7).unwrap(), entries(5..7, 2 << 20));
        assert_eq!(log.last().unwrap(), Some((19, vec![19; 10])));
        // An append must continue the log.
        let err = log.append(entries(19..20, 1)).unwrap_err();
        assert!(err.to_string().contains("entry 19 after entry 19"), "{err}");
        log.append(entries(20..21, 1)).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_back_and_the_log_goes_on() {
        let dir = written(vec![entries(1..4, 100)]);
        let file = segment_files(dir.path()).remove(0);
        let whole = std::fs::metadata(&file).unwrap().len();
        // Half of entry 3's record, as a power cut may leave it.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(whole - 60)
            .unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.read(1, 10).unwrap(), entries(1..3, 100));
        assert_eq!(std::fs::metadata(&file).unwrap().len(), whole - 116);
        assert_eq!(log.cut_at_open(), 116 - 60);
        log.append(entries(3..5, 7)).unwrap();
        drop(log);
        // And a tail of garbage after whole records.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(&[0xff; 40]);
        std::fs::write(&file, bytes).unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(
            log.read(1, 10).unwrap(),
            [entries(1..3, 100), entries(3..5, 7)].concat()
        );
    }

    #[test]
    fn a_damaged_older_segment_is_refused() {
        let dir = written(vec![entries(1..10, 2 << 20), entries(10..12, 5)]);
        let first = segment_files(dir.path()).remove(0);
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[MAGIC.len() + HEADER + 5] ^= 1;
        std::fs::write(&first, bytes).unwrap();
        let err = RaftLog::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        assert!(
            err.to_string().contains("unreadable in an older segment"),
            "{err}"
        );
    }

    #[test]
    fn a_segment_made_as_the_power_went_starts_empty() {
        let dir = written(vec![entries(1..3, 10)]);
        std::fs::write(dir.path().join(segment_name(3)), b"posd").unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.last().unwrap(), Some((2, vec![2; 10])));
        log.append(entries(3..4, 10)).unwrap();
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.read(1, 9).unwrap(), entries(1..4, 10));
    }

    #[test]
    fn truncate_and_purge_are_durable() {
        let dir = written(vec![entries(1..10, 2 << 20), entries(10..20, 5)]);
        let log = RaftLog::open(dir.path()).unwrap();
        log.truncate(15).unwrap();
        assert_eq!(log.last().unwrap(), Some((14, vec![14; 5])));
        log.append(entries(15..17, 6)).unwrap();
        // Purging 9 drops the whole first segment; 12 hides 10..=12.
        log.purge(12).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(
            log.read(0, 100).unwrap(),
            [entries(13..15, 5), entries(15..17, 6)].concat()
        );
        // Truncating within a segment cuts its file back.
        log.truncate(14).unwrap();
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        // The purge is the caller's to repeat after a restart.
        log.purge(12).unwrap();
        assert_eq!(log.read(0, 100).unwrap(), entries(13..14, 5));
        // A purge past the end empties the log; any index may start it again.
        log.purge(40).unwrap();
        assert_eq!(log.last().unwrap(), None);
        assert!(segment_files(dir.path()).is_empty());
        log.append(entries(41..43, 1)).unwrap();
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.read(0, 100).unwrap(), entries(41..43, 1));
    }
}
