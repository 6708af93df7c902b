//! Length-prefixed byte strings in an unlinked temporary file: what a
//! snapshot copies aside, and what an import has verified, in constant memory.

use crate::sync::io_err;
use crate::StoreError;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const BUFFER: usize = 256 * 1024;

pub(crate) struct Spool {
    file: BufWriter<File>,
    dir: PathBuf,
}

impl Spool {
    /// A new spool in `dir`; it has no name, so nothing is left behind.
    pub(crate) fn create(dir: &Path) -> Result<Spool, StoreError> {
        let file = tempfile::tempfile_in(dir).map_err(io_err(dir))?;
        Ok(Spool {
            file: BufWriter::with_capacity(BUFFER, file),
            dir: dir.to_owned(),
        })
    }

    /// Appends one string made of `parts`.
    pub(crate) fn push(&mut self, parts: &[&[u8]]) -> Result<(), StoreError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).expect("sled values are under 4 GiB");
        let mut write = || -> std::io::Result<()> {
            self.file.write_all(&len.to_be_bytes())?;
            for part in parts {
                self.file.write_all(part)?;
            }
            Ok(())
        };
        write().map_err(io_err(&self.dir))
    }

    /// Reads the strings back from the first.
    pub(crate) fn read(self) -> Result<SpoolReader, StoreError> {
        let Spool { file, dir } = self;
        let mut file = file
            .into_inner()
            .map_err(|e| io_err(&dir)(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err(&dir))?;
        Ok(SpoolReader {
            file: BufReader::with_capacity(BUFFER, file),
            dir,
            bytes: Vec::new(),
        })
    }
}

pub(crate) struct SpoolReader {
    file: BufReader<File>,
    dir: PathBuf,
    /// The last string read, kept to reuse its allocation.
    bytes: Vec<u8>,
}

impl SpoolReader {
    /// The next string, or `None` after the last.
    pub(crate) fn next(&mut self) -> Result<Option<&[u8]>, StoreError> {
        let mut len = [0u8; 4];
        match self.file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err(&self.dir)(e)),
        }
        self.bytes.resize(u32::from_be_bytes(len) as usize, 0);
        self.file
            .read_exact(&mut self.bytes)
            .map_err(io_err(&self.dir))?;
        Ok(Some(&self.bytes))
    }
}
