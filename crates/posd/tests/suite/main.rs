//! posd's integration tests, one binary: each module starts the real posd
//! (a child process or its `run()` in-process) on 127.0.0.1:0 with a temp data dir.

mod admin;
mod browser;
mod clock;
mod cluster;
mod cluster_faults;
mod cluster_partition;
mod cluster_sealed;
mod cluster_stale;
mod cluster_stall;
mod config;
mod crash;
mod damage;
mod export;
mod failstop;
mod hostile;
mod http;
mod integrity;
mod lottery;
mod open_door;
mod transcript;
mod validator;
mod weighting;
