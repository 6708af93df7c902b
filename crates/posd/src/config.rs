//! posd's settings. Every key is a flag and a `POSD_*` variable (flag wins).

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. \"500ms\", \"30s\", \"5m\")"))
}

/// posd: a Proof-of-Stake node. Validators connect with `nc`, stake tokens
/// and propose blocks; a stake-weighted lottery picks each block's proposer.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// TCP address validators connect to.
    #[arg(long, env = "POSD_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Where the chain lives (`$STATE_DIRECTORY` under systemd).
    #[arg(long, env = "POSD_DATA_DIR", default_value = "./posd-data")]
    pub data_dir: PathBuf,

    /// posctl's Unix socket [default: `$RUNTIME_DIRECTORY/admin.sock`, else `<data_dir>/admin.sock`].
    #[arg(long, env = "POSD_ADMIN_SOCKET")]
    pub admin_socket: Option<PathBuf>,

    /// How long a lottery round lasts.
    #[arg(long, env = "POSD_ROUND_INTERVAL", default_value = "30s", value_parser = duration)]
    pub round_interval: Duration,

    /// Tokens added to the winner's balance per block.
    #[arg(long, env = "POSD_BLOCK_REWARD", default_value_t = 1)]
    pub block_reward: u64,

    /// Largest stake accepted at registration.
    #[arg(long, env = "POSD_MAX_STAKE", default_value_t = 1_000_000_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_stake: u64,

    /// Largest BPM accepted in a proposal.
    #[arg(long, env = "POSD_MAX_BPM", default_value_t = 1000)]
    pub max_bpm: u32,

    /// Slash a validator whose proposal is not a BPM (false: reply `error:` only).
    #[arg(long, env = "POSD_SLASH_ON_INVALID_BPM", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub slash_on_invalid_bpm: bool,

    /// Validator connections served at once; more get `error:` and are closed.
    #[arg(long, env = "POSD_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Longest line a validator may send, in bytes.
    #[arg(long, env = "POSD_MAX_LINE_BYTES", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(16..))]
    pub max_line_bytes: u32,

    /// Time a new connection has to answer the balance prompt.
    #[arg(long, env = "POSD_STAKE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub stake_timeout: Duration,

    /// Log filter: error, warn, info, debug, trace (`RUST_LOG` overrides).
    #[arg(long, env = "POSD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Config {
    /// The config from flags and environment alone.
    pub fn from_args() -> Self {
        Config::parse()
    }

    /// The config from an explicit command line (`argv[0]` first), for tests and tools.
    pub fn parse_args<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Config::try_parse_from(argv)
    }

    /// Where the admin socket goes when `admin_socket` is not set.
    pub fn admin_socket_path(&self) -> PathBuf {
        if let Some(p) = &self.admin_socket {
            return p.clone();
        }
        // systemd may list several runtime directories, colon-separated: use the first.
        match std::env::var_os("RUNTIME_DIRECTORY") {
            Some(dirs) => {
                let first = dirs
                    .to_string_lossy()
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .to_string();
                PathBuf::from(first).join("admin.sock")
            }
            None => self.data_dir.join("admin.sock"),
        }
    }
}
