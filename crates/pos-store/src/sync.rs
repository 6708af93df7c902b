//! Power-loss durability for sled's files.
//!
//! sled's `flush` writes its log with `sync_file_range`, which neither commits
//! file metadata nor flushes the drive's cache, and fsyncs only from a 500 ms
//! timer; values too big for a log segment go to files under `blobs/` that it
//! never syncs at all. A power cut therefore loses what sled called flushed.
//! [`SledFiles::sync`] runs after every flush and closes that gap.

use crate::StoreError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The files of one sled directory that a commit can write.
pub(crate) struct SledFiles {
    /// sled's log and page store; every commit appends here.
    db: File,
    db_path: PathBuf,
    blobs: PathBuf,
    /// Highest blob id (an LSN, so ids only grow) already synced.
    synced_blob: Mutex<u64>,
}

/// A `StoreError` naming `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Io {
        path: path.to_owned(),
        error,
    }
}

/// fsync of a file or directory by path.
pub(crate) fn sync_path(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

impl SledFiles {
    /// Called once sled has opened `sled_dir`: syncs everything sled created
    /// (files and the directory entries naming them, up to `data_dir`) so that
    /// later commits only need to sync what they append.
    pub(crate) fn open(data_dir: &Path, sled_dir: &Path) -> Result<SledFiles, StoreError> {
        let db_path = sled_dir.join("db");
        let db = File::open(&db_path).map_err(io_err(&db_path))?;
        db.sync_all().map_err(io_err(&db_path))?;
        let files = SledFiles {
            db,
            db_path,
            blobs: sled_dir.join("blobs"),
            synced_blob: Mutex::new(0),
        };
        files.sync_new_blobs()?;
        for path in [&sled_dir.join("conf"), sled_dir, data_dir] {
            sync_path(path)?;
        }
        Ok(files)
    }

    /// Makes what sled flushed survive a power cut: new blobs first (the log
    /// points at them), then the log itself.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.sync_new_blobs()?;
        self.db.sync_data().map_err(io_err(&self.db_path))
    }

    fn sync_new_blobs(&self) -> Result<(), StoreError> {
        let mut synced = self.synced_blob.lock().unwrap_or_else(|e| e.into_inner());
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&self.blobs)(e)),
        };
        let mut newest = *synced;
        for entry in entries {
            let entry = entry.map_err(io_err(&self.blobs))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if id <= *synced {
                continue;
            }
            match File::open(entry.path()) {
                Ok(f) => f.sync_data().map_err(io_err(&entry.path()))?,
                // sled collected it since the listing: nothing left to sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&entry.path())(e)),
            }
            newest = newest.max(id);
        }
        if newest > *synced {
            sync_path(&self.blobs)?;
            *synced = newest;
        }
        Ok(())
    }
}
