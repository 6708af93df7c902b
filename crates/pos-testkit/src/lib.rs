//! What posd's and posctl's integration tests share: real daemons and a
//! client that talks like `nc`. Never a dependency of shipped code.
//!
//! - [`process`]: the posd binary as a child process (for SIGKILL and restarts).
//! - [`daemon`]: posd's `run()` in-process on `127.0.0.1:0`.
//! - [`cluster`]: several posd processes as one cluster on loopback.
//! - [`history`]: what clients of a cluster were told, and the checks on it.
//! - [`netns`]: network namespaces on a bridge, for partitions (root only).
//! - [`proxy`]: a recording (and byte-flipping) TCP proxy in front of a node.
//! - [`client`]: raw TCP, reading until expected text appears.
//! - [`admin`]: posctl's requests over the admin socket, blocking.
//! - [`adversary`]: the validators that try to steer the lottery (issue 11).
//! - [`browser`]: headless Chromium over the DevTools protocol, for the web page.
//! - [`http`]: posd's HTTP port as curl would use it.

pub mod admin;
pub mod adversary;
pub mod browser;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod history;
pub mod http;
pub mod netns;
pub mod process;
pub mod proxy;

pub use admin::force_round;
pub use client::Client;
pub use daemon::Daemon;
pub use process::Posd;

use std::time::Duration;

/// posd's flags for a `stake_age` chain whose ages reach their window in a
/// few forced rounds: age_window 3.
pub const STAKE_AGE_3: [&str; 4] = ["--lottery-weighting", "stake_age", "--age-window", "3"];

/// posd's flags for a `stake_work` chain whose nonces a test finds in
/// milliseconds: work_bits 4, work_bonus_max 2.
pub const STAKE_WORK_4_2: [&str; 6] = [
    "--lottery-weighting",
    "stake_work",
    "--work-bits",
    "4",
    "--work-bonus-max",
    "2",
];

/// How long any expected reply may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// The posd binary built for the calling package's tests (`env!` expands there).
#[macro_export]
macro_rules! posd_bin {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_posd"))
    };
}
