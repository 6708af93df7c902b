//! The admin socket file: stale-file cleanup, permissions, removal on exit.

use anyhow::{bail, Context};
use std::fs::FileType;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

/// Removes the socket file when posd stops, so no stale file is left behind.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove admin socket");
        }
    }
}

/// Binds the admin socket at `path` with mode 0660. A socket left by a dead
/// posd is removed; a socket another posd answers on, or anything that is not
/// a socket (a mistyped path may name the config file), stops the start.
pub fn bind(path: &Path) -> anyhow::Result<(UnixListener, SocketFile)> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot inspect admin socket path {}", path.display()))
        }
        Ok(meta) if meta.file_type().is_socket() => remove_stale(path)?,
        Ok(meta) => bail!(
            "admin socket path {} is {}, not a socket; posd removes only a stale socket \
             there: choose another admin_socket or remove it yourself",
            path.display(),
            kind(meta.file_type())
        ),
    }
    let bind = || format!("cannot bind admin socket {}", path.display());
    // Bound, given its mode, and only then listening: nobody can connect
    // while the file still has the mode the umask gave it.
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .with_context(bind)?;
    socket
        .bind(&socket2::SockAddr::unix(path).with_context(bind)?)
        .with_context(bind)?;
    let file = SocketFile(path.to_owned());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set mode 0660 on {}", path.display()))?;
    socket.listen(1024).with_context(bind)?;
    socket.set_nonblocking(true).with_context(bind)?;
    let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(
        std::os::fd::OwnedFd::from(socket),
    ))
    .with_context(bind)?;
    Ok((listener, file))
}

/// Removes a socket file nobody answers on.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "another posd is answering on admin socket {}; stop it first",
            path.display()
        );
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove stale admin socket {}", path.display()))?;
    tracing::info!(path = %path.display(), "removed stale admin socket");
    Ok(())
}

/// What a path that is not a socket holds, for the refusal.
fn kind(t: FileType) -> &'static str {
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a named pipe"
    } else {
        "a device"
    }
}
