//! posload run again as a helper process of its own (`floor`, `crowd`),
//! driven one line at a time over its stdin and stdout.

use anyhow::Context;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub struct Piped {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Piped {
    /// This executable with `args`; killed when dropped.
    pub fn spawn(args: &[&str]) -> anyhow::Result<Piped> {
        let exe = std::env::current_exe().context("finding posload's own executable")?;
        let what = args.first().copied().unwrap_or_default();
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {what}", exe.display()))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        Ok(Piped {
            child,
            stdin,
            stdout,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `line` (a newline is added).
    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        Ok(self.stdin.write_all(format!("{line}\n").as_bytes()).await?)
    }

    /// The next line; `None` once the child has exited.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<String>> {
        Ok(self.stdout.next_line().await?)
    }
}
