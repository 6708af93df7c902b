//! The admin socket file: stale-file cleanup, permissions, removal on exit.

use anyhow::{bail, Context};
use std::os::unix::fs::PermissionsExt;
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

/// Binds the admin socket at `path` with mode 0660. A file left by a dead posd
/// is removed; a socket another posd answers on stops the start.
pub fn bind(path: &Path) -> anyhow::Result<(UnixListener, SocketFile)> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another posd is answering on admin socket {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale admin socket {}", path.display()))?;
        tracing::info!(path = %path.display(), "removed stale admin socket");
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind admin socket {}", path.display()))?;
    let file = SocketFile(path.to_owned());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set mode 0660 on {}", path.display()))?;
    Ok((listener, file))
}
