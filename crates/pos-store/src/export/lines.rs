//! Export lines on the wire: each record one JSON line, the last one a
//! trailer with the counts and the SHA-256 of everything before it.

use super::{Header, Record, Trailer, FORMAT, VERSION};
use crate::StoreError;
use pos_core::Digest;
use sha2::{Digest as _, Sha256};
use std::io::{self, BufRead, Read, Write};

/// Longest line a reader accepts. A round record with a million candidates
/// (the most connections posd serves) is about 100 MiB of JSON; beyond this
/// the input is no export, and memory stays bounded whatever it holds.
pub const MAX_LINE: u64 = 256 << 20;

/// Records of each kind so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    lines: u64,
    blocks: u64,
    rounds: u64,
    validators: u64,
    proposed: u64,
}

impl Tally {
    fn count(&mut self, record: &Record) {
        self.lines += 1;
        match record {
            Record::Block(_) => self.blocks += 1,
            Record::Round(_) => self.rounds += 1,
            Record::Validator(_) => self.validators += 1,
            Record::Proposed(_) => self.proposed += 1,
            Record::Header(_) | Record::End(_) => {}
        }
    }

    fn trailer(&self, sha256: Digest) -> Trailer {
        Trailer {
            lines: self.lines,
            blocks: self.blocks,
            rounds: self.rounds,
            validators: self.validators,
            proposed: self.proposed,
            sha256,
        }
    }
}

/// Writes records as lines, hashing them, and the trailer last.
pub struct LineWriter<W: Write> {
    w: W,
    sha: Sha256,
    tally: Tally,
    /// The line being written, kept to reuse its allocation.
    line: Vec<u8>,
}

impl<W: Write> LineWriter<W> {
    pub fn new(w: W) -> Self {
        LineWriter {
            w,
            sha: Sha256::new(),
            tally: Tally::default(),
            line: Vec::with_capacity(1024),
        }
    }

    /// Writes one record; the trailer is [`LineWriter::finish`]'s alone.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        if let Record::End(_) = record {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the end line is written by finish",
            ));
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        self.line.push(b'\n');
        self.sha.update(&self.line);
        self.tally.count(record);
        self.w.write_all(&self.line)
    }

    /// Writes the trailer and flushes; returns it.
    pub fn finish(mut self) -> io::Result<Trailer> {
        let trailer = self.tally.trailer(Digest(self.sha.finalize().into()));
        serde_json::to_writer(&mut self.w, &Record::End(trailer.clone()))?;
        self.w.write_all(b"\n")?;
        self.w.flush()?;
        Ok(trailer)
    }
}

/// Reads records back, checking the framing as it goes: the header first,
/// then at the trailer the checksum and counts, and nothing after it.
pub struct LineReader<R: BufRead> {
    r: R,
    sha: Sha256,
    tally: Tally,
    line: Vec<u8>,
    ended: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(r: R) -> Self {
        LineReader {
            r,
            sha: Sha256::new(),
            tally: Tally::default(),
            line: Vec::with_capacity(1024),
            ended: false,
        }
    }

    /// The next record and its line number (from 1); `None` once the trailer
    /// has been read and checked. The header is checked to be a posd export
    /// of this version; what the records say is the importer's to check.
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>, StoreError> {
        if self.ended {
            return Ok(None);
        }
        let at = self.tally.lines + 1;
        if !self.read_line(at)? {
            return Err(bad(
                at,
                "the file ends without its end line: it is cut short",
            ));
        }
        let text = &self.line[..self.line.len() - 1];
        let record: Record = serde_json::from_slice(text).map_err(|e| {
            let what = json_error(&e);
            match at {
                1 => bad(
                    at,
                    format!("not a posd export (expected its header): {what}"),
                ),
                _ => bad(at, format!("not an export record: {what}")),
            }
        })?;
        match (&record, at) {
            (Record::Header(h), 1) => check_header(h)?,
            (_, 1) => {
                return Err(bad(
                    1,
                    format!(
                        "not a posd export: the first line is a {} record, not the header",
                        record.kind()
                    ),
                ))
            }
            (Record::Header(_), _) => return Err(bad(at, "a second header")),
            (Record::End(trailer), _) => {
                self.check_end(at, trailer)?;
                return Ok(None);
            }
            _ => {}
        }
        self.sha.update(&self.line);
        self.tally.count(&record);
        Ok(Some((at, record)))
    }

    /// Reads line `at` into `self.line` (its newline included); `false` at the end of input.
    fn read_line(&mut self, at: u64) -> Result<bool, StoreError> {
        self.line.clear();
        let read = (&mut self.r)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(|error| read_error(at, error))?;
        if read == 0 {
            return Ok(false);
        }
        if self.line.last() != Some(&b'\n') {
            return Err(bad(
                at,
                if read as u64 > MAX_LINE {
                    format!("longer than {} MiB: not an export line", MAX_LINE >> 20)
                } else {
                    "no newline at its end: the file is cut short".into()
                },
            ));
        }
        Ok(true)
    }

    fn check_end(&mut self, at: u64, trailer: &Trailer) -> Result<(), StoreError> {
        let sum = Digest(std::mem::take(&mut self.sha).finalize().into());
        if trailer.sha256 != sum {
            return Err(bad(
                at,
                format!(
                    "checksum mismatch: lines 1 to {} hash to {sum}, the end line says {}; \
                     the file was changed after it was exported",
                    at - 1,
                    trailer.sha256
                ),
            ));
        }
        let expected = self.tally.trailer(sum);
        if *trailer != expected {
            return Err(bad(
                at,
                format!(
                    "the end line counts {} lines, {} blocks, {} rounds, {} validators and {} \
                     proposed; the file has {}, {}, {}, {} and {}",
                    trailer.lines,
                    trailer.blocks,
                    trailer.rounds,
                    trailer.validators,
                    trailer.proposed,
                    expected.lines,
                    expected.blocks,
                    expected.rounds,
                    expected.validators,
                    expected.proposed
                ),
            ));
        }
        let more = self
            .r
            .fill_buf()
            .map_err(|error| read_error(at + 1, error))?;
        if !more.is_empty() {
            return Err(bad(at + 1, "more data after the end line"));
        }
        self.ended = true;
        Ok(())
    }
}

fn check_header(h: &Header) -> Result<(), StoreError> {
    if h.format != FORMAT {
        return Err(bad(
            1,
            format!(
                "not a posd export: format {:?}, expected {FORMAT:?}",
                h.format
            ),
        ));
    }
    if h.version != VERSION {
        return Err(bad(
            1,
            format!(
                "export format version {}; this posd reads version {VERSION}",
                h.version
            ),
        ));
    }
    Ok(())
}

pub(crate) fn bad(line: u64, what: impl Into<String>) -> StoreError {
    StoreError::Refused {
        line,
        what: what.into(),
    }
}

fn read_error(line: u64, error: io::Error) -> StoreError {
    bad(line, format!("cannot read it: {error}"))
}

/// serde_json's message with its position in our terms: each line is parsed
/// alone, so its "line 1" would mislead.
fn json_error(e: &serde_json::Error) -> String {
    let mut text = e.to_string();
    if let Some(at) = text.rfind(" at line ") {
        text.truncate(at);
    }
    format!("{text} (column {})", e.column())
}
