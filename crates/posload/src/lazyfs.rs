//! LazyFS as a child process: a FUSE file system that keeps written data in its
//! own cache until the file is fsync'ed and drops it on command, as a power cut
//! would. The power-loss test's stand-in for a disk.

use anyhow::{bail, ensure, Context};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::pipe;
use tokio::process::Child;

/// How long LazyFS may take to mount (it pre-allocates its cache) or to answer.
const PATIENCE: Duration = Duration::from_secs(60);

/// Makes the child get SIGKILL when this process dies, however it dies, so a
/// killed test leaves neither a LazyFS nor a posd behind.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child here.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// One mount of LazyFS; unmounted on drop.
pub struct LazyFs {
    child: Child,
    /// Where programs see the file system.
    pub mnt: PathBuf,
    /// The backing directory: what reached "the disk". Fault commands name files by this path.
    pub root: PathBuf,
    faults: PathBuf,
    done: Lines<BufReader<pipe::Receiver>>,
    log: PathBuf,
}

impl LazyFs {
    /// Mounts `bin` at `work/mnt` over `work/root` with a cache of at least
    /// `cache_mib` MiB; returns once the mount is there.
    pub async fn mount(bin: &Path, work: &Path, cache_mib: u64) -> anyhow::Result<LazyFs> {
        let (root, mnt) = (work.join("root"), work.join("mnt"));
        for dir in [&root, &mnt] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // A full cache (LazyFS does not evict) would write straight to the
        // backing files, as if synced: room for reading all that is there,
        // rewriting as much, and more.
        let cache_mib = cache_mib.max(2 * (bytes_under(&root)? >> 20) + 256);
        let (faults, done) = (work.join("faults.fifo"), work.join("done.fifo"));
        let config = work.join("lazyfs.toml");
        std::fs::write(
            &config,
            format!(
                "[faults]\nfifo_path=\"{}\"\nfifo_path_completed=\"{}\"\n\
                 [cache]\napply_eviction=false\n\
                 [cache.simple]\ncustom_size=\"{cache_mib}mb\"\nblocks_per_page=1\n\
                 [filesystem]\nlog_all_operations=false\nlogfile=\"\"\n",
                faults.display(),
                done.display()
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let log = work.join("lazyfs.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = std::process::Command::new(bin);
        cmd.arg(&mnt)
            .arg("--config-path")
            .arg(&config)
            .args(["-o", "modules=subdir", "-o"])
            .arg(format!("subdir={}", root.display()))
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        die_with_parent(&mut cmd);
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let start = Instant::now();
        while !mounted(&mnt)? {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "lazyfs exited ({status}) before mounting; see {}",
                    log.display()
                );
            }
            ensure!(
                start.elapsed() < PATIENCE,
                "lazyfs did not mount {} in {PATIENCE:?}",
                mnt.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // LazyFS made the FIFOs before mounting. Its fault worker waits for a
        // reader of the completion FIFO; opened read-write, that reader never
        // leaves LazyFS writing to a pipe with no reader (SIGPIPE).
        let done = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&done)
            .with_context(|| format!("opening {}", done.display()))?;
        Ok(LazyFs {
            child,
            mnt,
            root,
            faults,
            done: BufReader::new(done).lines(),
            log,
        })
    }

    /// Sends one fault command (see LazyFS's README).
    pub async fn command(&self, command: &str) -> anyhow::Result<()> {
        // LazyFS reads commands in 100-byte chunks: one command, one write.
        ensure!(command.len() < 100, "LazyFS command too long: {command}");
        let mut fifo = pipe::OpenOptions::new()
            .open_sender(&self.faults)
            .with_context(|| format!("opening {}", self.faults.display()))?;
        fifo.write_all(format!("{command}\n").as_bytes()).await?;
        Ok(())
    }

    /// Drops every write not yet synced; returns when LazyFS says it is done.
    pub async fn clear_cache(&mut self) -> anyhow::Result<()> {
        self.command("lazyfs::clear-cache").await?;
        let line = tokio::time::timeout(PATIENCE, self.done.next_line())
            .await
            .with_context(|| {
                format!(
                    "lazyfs did not finish clear-cache; see {}",
                    self.log.display()
                )
            })??;
        ensure!(
            line.as_deref() == Some("finished::clear-cache"),
            "lazyfs answered {line:?} to clear-cache"
        );
        Ok(())
    }

    /// Whether LazyFS is gone within `wait` (a torn-write fault kills it).
    pub async fn exits_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.child.wait()).await.is_ok()
    }

    /// Unmounts and waits for LazyFS to end. Whatever was not synced is lost.
    pub async fn unmount(mut self) -> anyhow::Result<()> {
        // A LazyFS killed by a torn write leaves a dead mount: detach that lazily.
        fusermount(&self.mnt, "-u").or_else(|_| fusermount(&self.mnt, "-uz"))?;
        if tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        // Lazily, so a busy or dead mount goes too; kill_on_drop ends LazyFS.
        let _ = fusermount(&self.mnt, "-uz");
    }
}

/// Runs `fusermount3 <flag> mnt` if `mnt` is mounted.
fn fusermount(mnt: &Path, flag: &str) -> anyhow::Result<()> {
    if mounted(mnt)? {
        let status = std::process::Command::new("fusermount3")
            .arg(flag)
            .arg(mnt)
            .status()
            .context("running fusermount3")?;
        ensure!(
            status.success(),
            "fusermount3 {flag} {} failed: {status}",
            mnt.display()
        );
    }
    Ok(())
}

/// Bytes in the files under `dir`.
fn bytes_under(dir: &Path) -> anyhow::Result<u64> {
    let mut sum = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        sum += if meta.is_dir() {
            bytes_under(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(sum)
}

/// Whether something is mounted at `dir`, from /proc/self/mounts.
fn mounted(dir: &Path) -> anyhow::Result<bool> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    Ok(mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(&*dir.to_string_lossy())))
}
