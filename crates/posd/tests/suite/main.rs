//! posd's integration tests, one binary: each module starts the real posd
//! (a child process or its `run()` in-process) on 127.0.0.1:0 with a temp data dir.

mod browser;
mod http;
