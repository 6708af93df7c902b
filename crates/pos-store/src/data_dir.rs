//! A data directory on disk: what files a chain's directory holds, its lock,
//! its private mode, the marker of an import under way, refusing someone
//! else's directory, and opening sled inside it. Everything else reads and
//! writes the chain through the open [`Store`](crate::Store).

use crate::acked;
use crate::sync::{io_err, sync_path};
use crate::StoreError;
use std::fs::{File, TryLockError};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// sled's directory inside a data directory.
pub const SLED: &str = "sled";

/// The lock file's name in a data directory.
pub const LOCK: &str = "posd.lock";

/// The marker of an import under way (`posd import`, a cluster snapshot).
pub const PARTIAL: &str = "import.partial";

/// Names of the files posd itself keeps in a data directory; anything else
/// in a directory without a chain means it belongs to someone else.
const OWN_FILES: &[&str] = &[
    LOCK,
    SLED,
    "admin.sock",
    acked::FILE,
    crate::raft_log::DIR,
    crate::raft_log::DIR_NEW,
    crate::round_log::DIR,
];

/// Whether `dir` holds a chain, or what is left of one (a store, or the
/// record of what posd acknowledged from it), as opposed to nothing yet.
pub fn holds_chain(dir: &Path) -> bool {
    dir.join(SLED).exists() || dir.join(acked::FILE).exists()
}

/// Makes `dir` ready to open: it exists, holds no unfinished import, and is
/// posd's own or empty (someone else's directory is refused before posd
/// leaves a file in it).
pub(crate) fn prepare(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    if dir.join(PARTIAL).exists() {
        return Err(StoreError::Damaged {
            path: dir.to_owned(),
            detail: "an import into it (posd import, or a cluster snapshot) did not finish, \
                so it holds part of a chain; remove the directory, then import again or \
                re-add the node to its cluster"
                .into(),
        });
    }
    if !holds_chain(dir) {
        refuse_foreign(dir)?;
    }
    Ok(())
}

/// Sets (`true`) or removes the marker of an import under way, synced, so
/// that a crash in between leaves a directory [`prepare`] refuses.
pub(crate) fn mark_import(dir: &Path, under_way: bool) -> Result<(), StoreError> {
    let marker = dir.join(PARTIAL);
    if under_way {
        File::create(&marker).map_err(io_err(&marker))?;
    } else {
        std::fs::remove_file(&marker).map_err(io_err(&marker))?;
    }
    sync_path(dir)
}

/// Takes `dir`'s lock file, held for as long as the returned file is open:
/// a second posd (or an import) on the same directory fails to take it, and
/// reads the holder's pid from it to say who has the directory.
pub(crate) fn lock(dir: &Path) -> Result<File, StoreError> {
    use std::io::{Read, Write};
    let path = dir.join(LOCK);
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match lock.try_lock() {
        Ok(()) => {
            lock.set_len(0).map_err(io_err(&path))?;
            writeln!(lock, "{}", std::process::id()).map_err(io_err(&path))?;
            Ok(lock)
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            Err(StoreError::Locked(path, holder.trim().parse().ok()))
        }
        Err(TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// Creates `dir` with mode 0700, or takes group and other access away from
/// an existing one: the store holds the lottery's pending secret.
pub(crate) fn private_dir(dir: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.permissions().mode() & 0o077 == 0 => Ok(()),
        Ok(_) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir)),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Opens sled in `sled_dir`. We hold `posd.lock`, so if sled's own file lock
/// is busy its holder is a store this process just dropped, whose flusher
/// thread sled lets finish in the background: wait for it, briefly.
pub(crate) fn open_sled(sled_dir: &Path) -> sled::Result<sled::Db> {
    let config = sled::Config::new()
        .path(sled_dir)
        .cache_capacity(8 * 1024 * 1024);
    let mut waits = 0;
    loop {
        match config.open() {
            // sled says so only in its message (ErrorKind::Other).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock") && waits < 200 =>
            {
                waits += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn refuse_foreign(dir: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
    let strangers: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !OWN_FILES.iter().any(|own| e.file_name() == *own))
        .map(|e| e.path())
        .collect();
    if let Some(first) = strangers.first() {
        return Err(StoreError::Foreign(format!(
            "{} has no chain but holds other files (e.g. {}); use a new or empty directory",
            dir.display(),
            first.display()
        )));
    }
    Ok(())
}
