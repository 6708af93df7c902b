//! Tools to measure posd the way its users feel it: `posload` drives a
//! running posd over TCP (as `nc` would) and its admin socket; `posgen`
//! writes a long chain straight into a data directory; `sled-open-rss`
//! measures bare sled's memory on such a directory; `powerloss` cuts the
//! power under a loaded posd on LazyFS (tests/powerloss/run.sh); `posload
//! floor` is the fan-out floor posd's broadcast is measured against;
//! `posload crowd` holds clients for it in other processes.

pub mod child;
pub mod crowd;
pub mod floor;
pub mod lazyfs;
pub mod nc;
pub mod stats;

/// A process's resident memory in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time a process has used so far (user + system), from /proc.
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(std::time::Duration::from_millis(
        ticks * 1000 / per_sec.max(1) as u64,
    ))
}

/// CPU time `pid` has used since it had used `before` ([`cpu_time`]);
/// zero when either reading failed.
pub fn cpu_since(pid: u32, before: Option<std::time::Duration>) -> std::time::Duration {
    cpu_time(pid)
        .zip(before)
        .map_or(std::time::Duration::ZERO, |(after, before)| after - before)
}
