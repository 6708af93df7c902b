//! `posctl export` and `posctl backup`: posd's consistent snapshot in the
//! export format (docs/EXPORT.md), to a file or into a new data directory.

use crate::client::{unexpected, Client};
use crate::output::{size, Output};
use anyhow::{anyhow, Context};
use indicatif::{ProgressBar, ProgressStyle};
use pos_proto::text::count;
use pos_proto::{Request, Response};
use pos_store::export::import::check_target;
use pos_store::export::{import, Header, Imported, Record, Trailer};
use serde_json::json;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::sync::mpsc;

/// Bytes of the stream's end kept to find its last line, the trailer.
const TAIL: usize = 4096;

/// A byte counter on stderr, only when a person is watching it.
fn progress(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    let template = format!("{{spinner}} {what} {{bytes}} ({{bytes_per_sec}})");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}

/// The next piece of the export, `None` at its end.
async fn next_data(client: &mut Client) -> anyhow::Result<Option<Vec<u8>>> {
    match client.next().await? {
        Response::ExportData(bytes) => Ok(Some(bytes.0)),
        Response::End => Ok(None),
        other => Err(unexpected(other)),
    }
}

/// `posctl export [FILE]`: the lines to FILE (written aside, then renamed
/// into place) or to standard output.
pub async fn export(
    client: &mut Client,
    mut out: Output,
    file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let file = file.filter(|f| f != Path::new("-"));
    // Named for this posctl, so two exports to one file never share it.
    let aside = file.as_ref().map(|f| {
        let mut name = f.as_os_str().to_owned();
        name.push(format!(".{}.partial", std::process::id()));
        PathBuf::from(name)
    });
    let mut sink: Box<dyn Write> = match file.as_ref().zip(aside.as_ref()) {
        // 0600: the export holds the lottery's pending secret (docs/EXPORT.md).
        Some((file, aside)) => Box::new(
            File::options()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(aside)
                .with_context(|| {
                    format!("cannot write {} (as {})", file.display(), aside.display())
                })?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    client.send(&Request::Export).await?;
    let bar = progress("exported");
    let (mut first, mut tail, mut bytes) = (Vec::new(), Vec::new(), 0u64);
    let written = async {
        while let Some(data) = next_data(client).await? {
            if first.len() < TAIL {
                first.extend_from_slice(&data[..data.len().min(TAIL)]);
            }
            tail.extend_from_slice(&data[data.len().saturating_sub(TAIL)..]);
            tail.drain(..tail.len().saturating_sub(TAIL));
            sink.write_all(&data)?;
            bytes += data.len() as u64;
            bar.set_position(bytes);
        }
        sink.flush()?;
        anyhow::Ok(())
    }
    .await;
    bar.finish_and_clear();
    drop(sink);
    if let Err(e) = written {
        if let Some(aside) = &aside {
            let _ = std::fs::remove_file(aside);
        }
        return Err(e);
    }
    let (header, trailer) = ends(&first, &tail)?;
    let Some((file, aside)) = file.zip(aside) else {
        eprintln!(
            "posctl: {}",
            summary(&header, &trailer, bytes, "standard output")
        );
        return Ok(ExitCode::SUCCESS);
    };
    File::open(&aside)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&aside, &file))
        .with_context(|| format!("cannot move {} to {}", aside.display(), file.display()))?;
    if out.json {
        out.json_line(&json!({
            "file": file.display().to_string(),
            "bytes": bytes,
            "height": header.height,
            "tip": header.tip.to_string(),
            "blocks": trailer.blocks,
            "validators": trailer.validators,
            "proposed": trailer.proposed,
            "sha256": trailer.sha256.to_string(),
        }))?;
    } else {
        out.line(summary(
            &header,
            &trailer,
            bytes,
            &file.display().to_string(),
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn summary(header: &Header, trailer: &Trailer, bytes: u64, to: &str) -> String {
    format!(
        "exported height {} ({}, {}, {} proposed; {}, sha256 {}) to {to}",
        header.height,
        count(trailer.blocks, "block"),
        count(trailer.validators, "validator"),
        trailer.proposed,
        size(bytes),
        trailer.sha256
    )
}

/// The header (the first line) and the trailer (the last) of an export,
/// from its first and last bytes.
fn ends(first: &[u8], tail: &[u8]) -> anyhow::Result<(Header, Trailer)> {
    let line = |bytes: &[u8]| serde_json::from_slice::<Record>(bytes).ok();
    let header = first
        .split(|&b| b == b'\n')
        .next()
        .and_then(line)
        .and_then(|r| match r {
            Record::Header(h) => Some(h),
            _ => None,
        });
    let trailer = tail
        .strip_suffix(b"\n")
        .and_then(|t| t.rsplit(|&b| b == b'\n').next())
        .and_then(line)
        .and_then(|r| match r {
            Record::End(t) => Some(t),
            _ => None,
        });
    header
        .zip(trailer)
        .ok_or_else(|| anyhow!("posd's export has no header or no end line"))
}

/// `posctl backup DIR`: posd's snapshot, verified as `posd import` verifies
/// a file, into DIR (absent or empty), from which posd starts as it is.
pub async fn backup(
    client: &mut Client,
    mut out: Output,
    dir: PathBuf,
) -> anyhow::Result<ExitCode> {
    // Refused before posd takes a snapshot for nothing.
    check_target(&dir)?;
    client.send(&Request::Export).await?;
    let bar = progress("copied");
    let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
    let target = dir.clone();
    let importer = tokio::task::spawn_blocking(move || {
        let input = Received {
            rx,
            chunk: Vec::new(),
            at: 0,
        };
        import(BufReader::with_capacity(1 << 20, input), &target)
    });
    let mut bytes = 0u64;
    let received = async {
        while let Some(data) = next_data(client).await? {
            bytes += data.len() as u64;
            bar.set_position(bytes);
            if tx.send(data).await.is_err() {
                break; // The import stopped; it says why.
            }
        }
        anyhow::Ok(())
    }
    .await;
    bar.finish_and_clear();
    // The end of input: a stream cut short is refused and leaves nothing.
    drop(tx);
    let imported = importer.await.context("the import thread failed")?;
    received?;
    let imported = imported.with_context(|| format!("backup into {} refused", dir.display()))?;
    report(&mut out, &dir, &imported, bytes)?;
    Ok(ExitCode::SUCCESS)
}

fn report(out: &mut Output, dir: &Path, imported: &Imported, bytes: u64) -> anyhow::Result<()> {
    let h = &imported.header;
    if out.json {
        out.json_line(&json!({
            "dir": dir.display().to_string(),
            "height": h.height,
            "tip": h.tip.to_string(),
            "blocks": imported.blocks,
            "validators": imported.validators,
            "proposed": imported.proposed,
            "bytes": bytes,
        }))?;
    } else {
        out.line(format_args!(
            "backup of height {} ({}, {}) in {}; every hash, link and draw \
             verified; start posd on it with --data-dir {}",
            h.height,
            count(imported.blocks, "block"),
            count(imported.validators, "validator"),
            dir.display(),
            dir.display()
        ))?;
    }
    out.flush()?;
    Ok(())
}

/// The export's bytes as they arrive, for the importer's blocking thread.
struct Received {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => (self.chunk, self.at) = (chunk, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
