//! The posd binary: config, logging, signals, then [`posd::run`].

use anyhow::Context;
use futures::StreamExt;
use posd::config::Config;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = Config::from_args();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .with_context(|| format!("bad log_level {:?}", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    let shutdown = async move {
        if let Some(sig) = signals.next().await {
            tracing::info!(signal = sig, "signal received");
        }
    };
    tracing::info!("posd listening on {addr}");
    posd::run(config, listener, shutdown).await
}
