//! Tools to measure posd the way its users feel it: `posload` drives a
//! running posd over TCP (as `nc` would) and its admin socket; `posgen`
//! writes a long chain straight into a data directory; `sled-open-rss`
//! measures bare sled's memory on such a directory; `powerloss` cuts the
//! power under a loaded posd on LazyFS (tests/powerloss/run.sh).

pub mod lazyfs;
pub mod nc;
pub mod stats;

/// A process's resident memory in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
