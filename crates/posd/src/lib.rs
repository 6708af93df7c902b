//! posd, the daemon, as a library: `main.rs` parses config and signals and
//! calls [`run`]; tests call [`run`] too, with a listener on `127.0.0.1:0`.
//! `posd --check` is [`check`], `posd import` is [`import`].
//!
//! - [`node`]: a node's life: open, start, reload, stop.
//! - [`server`] accepts validators; [`validators`] is the validator port
//!   (sessions, the line protocol, who is connected, the round's proposals).
//! - [`submit`]: where writes go, the local [`writer`] (every durable change,
//!   group-committed) or the [`cluster`]; [`write`] is what both are asked
//!   and answer; [`proposer`] turns a request into a command.
//! - [`scheduler`] closes rounds on a timer; [`round`] turns proposals into a block.
//! - [`report`]: what a durable change means to [`metrics`] and to
//!   [`announce`]ments, which [`fanout`] writes to every client.
//! - [`admin`] answers posctl on the Unix socket; [`http`] serves metrics,
//!   the JSON API and the live page; [`query`] is the reads both make.
//! - [`shared`]: what the running tasks share; [`config`]: keys, precedence,
//!   reload rules; [`clock`]: the only wall clock.

mod admin;
mod announce;
mod clock;
mod cluster;
pub mod config;
mod fanout;
mod http;
mod metrics;
mod node;
mod proposer;
mod query;
mod report;
mod round;
mod scheduler;
mod server;
mod shared;
mod submit;
mod validators;
mod write;
mod writer;

pub use node::Node;

use anyhow::Context;
use config::Config;
use futures::Stream;
use pos_proto::text::count;
use pos_store::Store;
use std::fs::File;
use std::future::Future;
use std::io::{BufReader, Read};
use std::path::Path;
use tokio::net::TcpListener;

/// Opens the data directory and serves `listener` and the admin socket until
/// `shutdown` resolves. Each config from `reloads` (SIGHUP) replaces the
/// reloadable keys of the running one.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    reloads: impl Stream<Item = Config> + Send + Unpin + 'static,
) -> anyhow::Result<()> {
    Node::open(config)?.serve(listener, shutdown, reloads).await
}

/// `posd --check`: opens the data directory as a start would (which checks it
/// against the acknowledgement record), then verifies the whole chain and
/// every record. Returns a one-line summary.
pub fn check(config: &Config) -> anyhow::Result<String> {
    let dir = &config.data_dir;
    if !pos_store::data_dir::holds_chain(dir) {
        anyhow::bail!("{} holds no chain", dir.display());
    }
    let store = match Store::open(dir, &config.chain_spec(clock::record_ms())) {
        Ok(store) => store,
        // In use is no fault: the check needs the directory to itself.
        Err(e @ pos_store::StoreError::Locked(..)) => {
            anyhow::bail!("{e}: posd --check needs it stopped, or check a backup")
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("data directory {} failed its check", dir.display()))
        }
    };
    let tip = store.tip()?;
    let checked = store
        .check_all()
        .with_context(|| format!("data directory {} failed its check", dir.display()))?;
    Ok(format!(
        "{}: ok: height {}, tip {}, {} verified, {}, matches what posd acknowledged",
        dir.display(),
        tip.index,
        tip.hash,
        count(checked.blocks, "block"),
        count(checked.validators, "validator")
    ))
}

/// `posd import FILE`: a new data directory at `data_dir` from an export
/// file (`-`: standard input), verified before it exists. Returns a one-line summary.
pub fn import(file: &Path, data_dir: &Path) -> anyhow::Result<String> {
    let context = || {
        format!(
            "cannot import {} into {}",
            file.display(),
            data_dir.display()
        )
    };
    let input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(context)?)
    };
    let imported = pos_store::export::import(BufReader::with_capacity(1 << 20, input), data_dir)
        .with_context(context)?;
    let h = &imported.header;
    Ok(format!(
        "{}: imported height {}, tip {}: {}, {}; every hash, link, draw and \
         the checksum verified; start posd with --data-dir {}",
        data_dir.display(),
        h.height,
        h.tip,
        count(imported.blocks, "block"),
        count(imported.validators, "validator"),
        data_dir.display()
    ))
}
