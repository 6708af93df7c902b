//! The posd binary: config, logging, signals, then [`posd::run`].

use anyhow::Context;
use clap::{CommandFactory, Parser};
use futures::StreamExt;
use posd::config::{Args, Command, Config, LogFormat};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::IsTerminal;
use std::process::ExitCode;
use tokio::sync::{mpsc, oneshot};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Changes the log filter of the running process.
type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// Expected failures (a bad config, a locked or damaged data directory) print
/// one `posd: error: ...` line with their causes, whatever `RUST_BACKTRACE` says.
fn main() -> ExitCode {
    match posd_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn posd_main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(shell) = args.completions {
        clap_complete::generate(shell, &mut Args::command(), "posd", &mut std::io::stdout());
        return Ok(());
    }
    if args.man {
        // A daemon: section 8, system administration.
        clap_mangen::Man::new(Args::command())
            .section("8")
            .render(&mut std::io::stdout())?;
        return Ok(());
    }
    let config = Config::load(&args)?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    if args.check {
        println!("{}", posd::check(&config)?);
        return Ok(());
    }
    if let Some(Command::Import { file }) = &args.command {
        println!("{}", posd::import(file, &config.data_dir)?);
        return Ok(());
    }
    let filter = init_logging(&config)?;
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(serve(args, config, filter))
}

/// `RUST_LOG` wins over `log_level`.
fn filter_for(config: &Config) -> anyhow::Result<EnvFilter> {
    let (spec, filter) = match std::env::var("RUST_LOG") {
        Ok(spec) => {
            let filter =
                EnvFilter::try_new(&spec).with_context(|| format!("bad RUST_LOG {spec:?}"))?;
            (spec, filter)
        }
        Err(_) => {
            let filter = EnvFilter::try_new(&config.log_level)
                .with_context(|| format!("bad log_level {:?}", config.log_level))?;
            (config.log_level.clone(), filter)
        }
    };
    Ok(quiet_sled(filter, &spec))
}

/// sled logs its own view of a fault (WARN and ERROR lines in its wording)
/// before it returns the error posd reports in one line of its own: its
/// lines are shown only when logging at debug, or when the filter names sled.
fn quiet_sled(filter: EnvFilter, spec: &str) -> EnvFilter {
    let debugging = filter
        .max_level_hint()
        .is_some_and(|level| level >= LevelFilter::DEBUG);
    if debugging || spec.contains("sled") {
        return filter;
    }
    filter.add_directive("sled=off".parse().expect("a valid directive"))
}

fn init_logging(config: &Config) -> anyhow::Result<FilterHandle> {
    let (filter, handle) = reload::Layer::new(filter_for(config)?);
    // journald stamps every line itself: no second timestamp when it is our stderr.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let layer = match (config.log_format, journald) {
        (LogFormat::Json, _) => fmt.json().boxed(),
        (LogFormat::Text, true) => fmt.without_time().boxed(),
        (LogFormat::Text, false) => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
    Ok(handle)
}

async fn serve(args: Args, config: Config, filter: FilterHandle) -> anyhow::Result<()> {
    // The data directory first: one that is refused must not show as "listening".
    let listen = config.listen;
    let node = posd::Node::open(config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (reload_tx, reload_rx) = mpsc::channel::<Config>(1);
    tokio::spawn(async move {
        let mut stop_tx = Some(stop_tx);
        while let Some(sig) = signals.next().await {
            if sig == SIGHUP {
                reload(&args, &filter, &reload_tx).await;
            } else if let Some(tx) = stop_tx.take() {
                tracing::info!(signal = sig, "signal received");
                let _ = tx.send(());
            }
        }
    });
    tracing::info!("posd listening on {addr}");
    let shutdown = async {
        let _ = stop_rx.await;
    };
    node.serve(listener, shutdown, tokio_stream_from(reload_rx))
        .await
}

/// Re-reads the config (same flags, variables and file); on any error the
/// running config stays and the log says why.
async fn reload(args: &Args, filter: &FilterHandle, daemon: &mpsc::Sender<Config>) {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
    let loaded = Config::load(args)
        .map_err(anyhow::Error::from)
        .and_then(|new| Ok((filter_for(&new)?, new)));
    match loaded {
        Ok((new_filter, new)) => {
            if let Err(e) = filter.reload(new_filter) {
                tracing::warn!(error = %e, "cannot change the log filter");
            }
            let _ = daemon.send(new).await;
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the running config")
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// An mpsc receiver as a `Stream`.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + Unpin + 'static {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}
