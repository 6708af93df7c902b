//! posctl: the posd operator's CLI, over posd's admin socket.
//!
//! Exit codes: 0 ok, 1 failed (e.g. `chain verify` found a fault),
//! 2 usage, 3 cannot reach posd.

mod client;
mod cmd;
mod output;

use clap::{CommandFactory, Parser, Subcommand};
use client::Unreachable;
use std::path::PathBuf;
use std::process::ExitCode;

/// Inspect a running posd, force lottery rounds and audit their draws.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Machine output: one JSON object per line.
    #[arg(long, global = true)]
    json: bool,

    /// posd's admin socket [default: /run/posd/admin.sock if it exists, else ./posd-data/admin.sock].
    #[arg(long, global = true, env = "POSD_SOCKET")]
    socket: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Daemon(DaemonCommand),
    /// Print a shell completion script (needs no posd).
    Completions { shell: clap_complete::Shell },
    /// Print the man page in roff (needs no posd).
    Man,
}

/// What posctl asks a running posd.
#[derive(Debug, Subcommand)]
enum DaemonCommand {
    /// Height, tip, validators, pending proposals, next round, uptime, data size.
    Status,
    /// Show or verify the chain.
    #[command(subcommand)]
    Chain(cmd::chain::ChainCommand),
    /// One block, by index or by hash.
    Block {
        #[arg(value_parser = cmd::block::parse_id)]
        id: pos_proto::BlockId,
    },
    /// Active validators (all with --all, or those with --status), by address.
    Validators {
        /// Include slashed validators.
        #[arg(long, conflicts_with = "status")]
        all: bool,
        /// Only validators with this status.
        #[arg(long, value_enum)]
        status: Option<cmd::validators::StatusFilter>,
    },
    /// One validator.
    Validator {
        #[arg(value_parser = cmd::validators::parse_address)]
        address: pos_core::Address,
    },
    /// Force or explain lottery rounds.
    #[command(subcommand)]
    Lottery(cmd::lottery::LotteryCommand),
}

fn default_socket() -> PathBuf {
    let system = PathBuf::from("/run/posd/admin.sock");
    if system.exists() {
        system
    } else {
        PathBuf::from("./posd-data/admin.sock")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Daemon(c) => c,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "posctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("posctl: {e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    let socket = cli.socket.unwrap_or_else(default_socket);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("posctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(command, cli.json, &socket)) {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<Unreachable>().is_some() => {
            eprintln!("posctl: {e:#}");
            ExitCode::from(3)
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `posctl chain show | head` is not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn run(
    command: DaemonCommand,
    json: bool,
    socket: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let mut client = client::connect(socket).await?;
    let out = output::Output::new(json);
    match command {
        DaemonCommand::Status => cmd::status::run(&mut client, out).await,
        DaemonCommand::Chain(c) => cmd::chain::run(&mut client, out, c).await,
        DaemonCommand::Block { id } => cmd::block::run(&mut client, out, id).await,
        DaemonCommand::Validators { all, status } => {
            cmd::validators::list(&mut client, out, all, status).await
        }
        DaemonCommand::Validator { address } => {
            cmd::validators::one(&mut client, out, address).await
        }
        DaemonCommand::Lottery(c) => cmd::lottery::run(&mut client, out, c).await,
    }
}
