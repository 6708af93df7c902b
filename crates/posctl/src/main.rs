//! posctl: the posd operator's CLI, over posd's admin socket.
//!
//! Exit codes: 0 ok, 1 failed (e.g. `chain verify` found a fault),
//! 2 usage, 3 cannot reach or may not use posd.

mod client;
mod cmd;
mod man;
mod output;

use clap::{CommandFactory, Parser, Subcommand};
use client::Unreachable;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Inspect a running posd, force lottery rounds and audit their draws.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Machine output: one JSON object per line.
    #[arg(long, global = true)]
    json: bool,

    /// Whole hashes, addresses and values instead of fitting 80 columns.
    #[arg(long, global = true)]
    wide: bool,

    /// posd's admin socket [default: /run/posd/admin.sock if it exists, else ./posd-data/admin.sock].
    #[arg(long, global = true, env = "POSD_SOCKET")]
    socket: Option<PathBuf>,

    /// Longest wait for posd: to connect, for an answer, between two frames of a stream.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than 0 (e.g. 10s, 2m)".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (e.g. 10s, 2m)")),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Daemon(DaemonCommand),
    /// Print a shell completion script (needs no posd).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page in roff, every subcommand in it (needs no posd).
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
    /// One block, by index, hash or a unique hash prefix (4 or more hex digits).
    Block {
        /// A whole number is an index (if no block has it, a hash prefix); anything else is
        /// (the start of) a hash.
        #[arg(value_name = "INDEX|HASH", value_parser = cmd::block::parse_id)]
        id: cmd::block::BlockArg,
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
    /// One validator, by address or a unique prefix of it (4 or more hex digits).
    Validator {
        /// The address, or its start as tables show it.
        #[arg(value_parser = cmd::validators::parse_address)]
        address: cmd::HexArg,
    },
    /// Force or explain lottery rounds.
    #[command(subcommand)]
    Lottery(cmd::lottery::LotteryCommand),
    /// Write the whole state (blocks, round records, validators, the lottery's
    /// pending secret) as JSON lines (docs/EXPORT.md), a consistent snapshot
    /// taken while posd serves. The file is 0600: keep it as private as the
    /// data directory until the next block commits.
    Export {
        /// Where to write it (written aside, then renamed) [default: standard output].
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Copy the state, consistent and verified, into a new data directory
    /// that posd starts from as it is (posd --data-dir DIR).
    Backup {
        /// The directory to create (it must not exist, or be empty).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Several nodes, one chain: make, grow, shrink and inspect a cluster.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCommand),
    /// Find a nonce for the open round of a stake_work chain, on this
    /// machine; propose it as '<bpm> <nonce>'.
    Work {
        /// The validator's address (all 64 hex digits).
        address: pos_core::Address,
        /// The BPM the proposal will carry.
        bpm: u32,
        /// Leading zero bits to find [default: the chain's work_bits].
        #[arg(long, value_name = "N")]
        bits: Option<u32>,
    },
}

/// posd's socket under the shipped systemd unit.
const SYSTEM_SOCKET: &str = "/run/posd/admin.sock";
/// posd's socket when started by hand with the default data dir.
const LOCAL_SOCKET: &str = "./posd-data/admin.sock";

/// The system socket unless it surely is not there (`system` is whether it
/// exists). One posctl may not even look at is there for posd's group:
/// connecting to it says so, where the local one would hide why.
fn default_socket(system: std::io::Result<bool>) -> PathBuf {
    match system {
        Ok(false) => PathBuf::from(LOCAL_SOCKET),
        Ok(true) | Err(_) => PathBuf::from(SYSTEM_SOCKET),
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
            return match man::render(Cli::command(), &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("posctl: {e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    let socket = cli
        .socket
        .unwrap_or_else(|| default_socket(Path::new(SYSTEM_SOCKET).try_exists()));
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
    let out = output::Output::new(cli.json, cli.wide);
    match runtime.block_on(run(command, out, &socket, cli.timeout)) {
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
    out: output::Output,
    socket: &Path,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let mut client = client::Client::connect(socket, timeout).await?;
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
        DaemonCommand::Work { address, bpm, bits } => {
            cmd::work::run(&mut client, out, (address, bpm, bits)).await
        }
        DaemonCommand::Export { file } => cmd::export::export(&mut client, out, file).await,
        DaemonCommand::Backup { dir } => cmd::export::backup(&mut client, out, dir).await,
        DaemonCommand::Cluster(c) => cmd::cluster::run(&mut client, out, c).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_socket_posctl_may_not_see_is_still_the_one_to_use() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(default_socket(Err(denied)), Path::new(SYSTEM_SOCKET));
        assert_eq!(default_socket(Ok(true)), Path::new(SYSTEM_SOCKET));
        assert_eq!(default_socket(Ok(false)), Path::new(LOCAL_SOCKET));
    }

    #[test]
    fn timeouts_are_positive_durations() {
        assert_eq!(parse_timeout("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
