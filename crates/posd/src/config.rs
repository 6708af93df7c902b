//! posd's settings. Every key comes from, in order of precedence: its flag,
//! its `POSD_*` variable, the config file, its default. One table, [`KEYS`],
//! drives all four, `--print-config`, and what SIGHUP may change.

use clap::Parser;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every config key, in the order `--print-config` shows them.
pub const KEYS: [&str; 14] = [
    "listen",
    "data_dir",
    "admin_socket",
    "round_interval",
    "block_reward",
    "max_stake",
    "max_bpm",
    "slash_on_invalid_bpm",
    "max_connections",
    "max_line_bytes",
    "stake_timeout",
    "write_timeout",
    "log_level",
    "log_format",
];

/// Keys SIGHUP applies to the running daemon; others need a restart.
pub const RELOADABLE: [&str; 6] = [
    "round_interval",
    "log_level",
    "max_connections",
    "max_line_bytes",
    "stake_timeout",
    "write_timeout",
];

/// Log line shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective configuration of a running posd.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// TCP address validators connect to.
    pub listen: SocketAddr,
    /// Where the chain lives.
    pub data_dir: PathBuf,
    /// posctl's Unix socket.
    pub admin_socket: PathBuf,
    /// How long a lottery round lasts.
    pub round_interval: Duration,
    /// Tokens added to the winner's balance per block.
    pub block_reward: u64,
    /// Largest stake accepted at registration.
    pub max_stake: u64,
    /// Largest BPM accepted in a proposal.
    pub max_bpm: u32,
    /// Slash a validator whose proposal is not a BPM (else reply `error:` only).
    pub slash_on_invalid_bpm: bool,
    /// Validator connections served at once.
    pub max_connections: u32,
    /// Longest line a validator may send, in bytes.
    pub max_line_bytes: u32,
    /// Time a new connection has to answer the balance prompt.
    pub stake_timeout: Duration,
    /// A client that cannot take a write for this long is dropped.
    pub write_timeout: Duration,
    /// Log filter (`RUST_LOG` syntax); `RUST_LOG` itself wins when set.
    pub log_level: String,
    pub log_format: LogFormat,
}

/// A config that cannot be used; the message names the key and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("bad value for {key} (from {origin}): {message}")]
    BadValue {
        key: &'static str,
        origin: String,
        message: String,
    },
    #[error("unknown key `{key}` in {path} (known keys: {known})", known = KEYS.join(", "))]
    UnknownKey { key: String, path: PathBuf },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
}

/// posd: a Proof-of-Stake node. Validators connect with `nc`, stake tokens and
/// propose blocks; a stake-weighted lottery picks each block's proposer.
/// Every setting is a flag, a POSD_* variable (e.g. POSD_ROUND_INTERVAL) or a
/// key in the config file; flags win over variables, variables over the file.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "posd", version, about, long_about = None)]
pub struct Args {
    /// TOML config file (flat keys, as in config/posd.toml).
    #[arg(long, value_name = "FILE", env = "POSD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Check the data directory with posd stopped (acknowledgement record,
    /// whole chain, every record); exit 0 if sound, 1 naming the fault.
    #[arg(long)]
    pub check: bool,
    /// Print a shell completion script and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long)]
    pub man: bool,

    /// TCP address validators connect to [default: 127.0.0.1:9000].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the chain lives [default: $STATE_DIRECTORY, else ./posd-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// posctl's socket [default: $RUNTIME_DIRECTORY/admin.sock, else <data_dir>/admin.sock].
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<String>,
    /// Round length, e.g. 500ms, 30s, 5m [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub round_interval: Option<String>,
    /// Tokens a block's winner earns [default: 1].
    #[arg(long, value_name = "TOKENS")]
    pub block_reward: Option<String>,
    /// Largest stake accepted [default: 1000000000000].
    #[arg(long, value_name = "TOKENS")]
    pub max_stake: Option<String>,
    /// Largest BPM accepted [default: 1000].
    #[arg(long, value_name = "BPM")]
    pub max_bpm: Option<String>,
    /// Slash malformed proposals: true or false [default: true].
    #[arg(long, value_name = "BOOL")]
    pub slash_on_invalid_bpm: Option<String>,
    /// Validator connections at once [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// Longest validator line in bytes [default: 1024].
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<String>,
    /// Time to answer the balance prompt [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub stake_timeout: Option<String>,
    /// Drop a client that cannot take a write for this long [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub write_timeout: Option<String>,
    /// error, warn, info, debug, trace, or a RUST_LOG filter [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl Args {
    fn flag(&self, key: &str) -> Option<&str> {
        match key {
            "listen" => self.listen.as_deref(),
            "data_dir" => self.data_dir.as_deref(),
            "admin_socket" => self.admin_socket.as_deref(),
            "round_interval" => self.round_interval.as_deref(),
            "block_reward" => self.block_reward.as_deref(),
            "max_stake" => self.max_stake.as_deref(),
            "max_bpm" => self.max_bpm.as_deref(),
            "slash_on_invalid_bpm" => self.slash_on_invalid_bpm.as_deref(),
            "max_connections" => self.max_connections.as_deref(),
            "max_line_bytes" => self.max_line_bytes.as_deref(),
            "stake_timeout" => self.stake_timeout.as_deref(),
            "write_timeout" => self.write_timeout.as_deref(),
            "log_level" => self.log_level.as_deref(),
            "log_format" => self.log_format.as_deref(),
            _ => None,
        }
    }
}

/// The first of systemd's colon-separated directory lists in `var`.
fn systemd_dir(var: &str) -> Option<PathBuf> {
    let list = std::env::var_os(var)?;
    let first = list.to_string_lossy().split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

fn default_of(key: &str) -> String {
    match key {
        "listen" => "127.0.0.1:9000".into(),
        "data_dir" => systemd_dir("STATE_DIRECTORY")
            .unwrap_or_else(|| PathBuf::from("./posd-data"))
            .display()
            .to_string(),
        // Resolved once data_dir is known.
        "admin_socket" => String::new(),
        "round_interval" => "30s".into(),
        "block_reward" => "1".into(),
        "max_stake" => "1000000000000".into(),
        "max_bpm" => "1000".into(),
        "slash_on_invalid_bpm" => "true".into(),
        "max_connections" => "10000".into(),
        "max_line_bytes" => "1024".into(),
        "stake_timeout" => "60s".into(),
        "write_timeout" => "10s".into(),
        "log_level" => "info".into(),
        "log_format" => "text".into(),
        _ => String::new(),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (use e.g. \"500ms\", \"30s\", \"5m\")"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    s: &str,
    min: T,
) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!("expected a whole number of at least {min}")),
    }
}

impl Config {
    /// The defaults alone: what `posd` with no config at all runs with.
    pub fn defaults() -> Config {
        Config::load(&Args::default()).expect("defaults are valid")
    }

    /// The config for a command line (`argv[0]` first), for tests and tools.
    pub fn from_argv<I, T>(argv: I) -> Result<Config, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::load(&args).map_err(|e| e.to_string())
    }

    /// Builds the config from flags, `POSD_*` variables, `args.config`, defaults.
    pub fn load(args: &Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => Some((path.clone(), read_file(path)?)),
            None => None,
        };
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            data_dir: PathBuf::new(),
            admin_socket: PathBuf::new(),
            round_interval: Duration::ZERO,
            block_reward: 0,
            max_stake: 0,
            max_bpm: 0,
            slash_on_invalid_bpm: true,
            max_connections: 0,
            max_line_bytes: 0,
            stake_timeout: Duration::ZERO,
            write_timeout: Duration::ZERO,
            log_level: String::new(),
            log_format: LogFormat::Text,
        };
        for key in &KEYS {
            let env_name = format!("POSD_{}", key.to_uppercase());
            let (value, origin) = if let Some(v) = args.flag(key) {
                (v.to_string(), format!("--{}", key.replace('_', "-")))
            } else if let Ok(v) = std::env::var(&env_name) {
                (v, env_name)
            } else if let Some(v) = file
                .as_ref()
                .and_then(|(path, t)| Some((path, t.get(*key)?)))
            {
                (v.1.clone(), format!("{}", v.0.display()))
            } else {
                (default_of(key), "default".into())
            };
            config
                .set(key, &value)
                .map_err(|message| ConfigError::BadValue {
                    key,
                    origin,
                    message,
                })?;
        }
        if config.admin_socket.as_os_str().is_empty() {
            config.admin_socket = systemd_dir("RUNTIME_DIRECTORY")
                .unwrap_or_else(|| config.data_dir.clone())
                .join("admin.sock");
        }
        Ok(config)
    }

    fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        match key {
            "listen" => {
                self.listen = v.parse().map_err(|_| {
                    "expected an IP address and port, e.g. 127.0.0.1:9000".to_string()
                })?
            }
            "data_dir" if v.is_empty() => return Err("must not be empty".into()),
            "data_dir" => self.data_dir = PathBuf::from(v),
            "admin_socket" => self.admin_socket = PathBuf::from(v),
            "round_interval" => self.round_interval = duration(v)?,
            "block_reward" => self.block_reward = number(v, 0)?,
            "max_stake" => self.max_stake = number(v, 1)?,
            "max_bpm" => self.max_bpm = number(v, 0)?,
            "slash_on_invalid_bpm" => {
                self.slash_on_invalid_bpm = v
                    .parse()
                    .map_err(|_| "expected true or false".to_string())?
            }
            "max_connections" => self.max_connections = number(v, 1)?,
            "max_line_bytes" => self.max_line_bytes = number(v, 16)?,
            "stake_timeout" => self.stake_timeout = duration(v)?,
            "write_timeout" => self.write_timeout = duration(v)?,
            "log_level" => {
                tracing_subscriber::EnvFilter::try_new(v).map_err(|e| e.to_string())?;
                self.log_level = v.to_string();
            }
            "log_format" => {
                self.log_format = match v {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err("expected \"text\" or \"json\"".into()),
                }
            }
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }

    /// Each key with its effective value, as TOML would show it.
    pub fn entries(&self) -> Vec<(&'static str, toml::Value)> {
        use toml::Value::{Boolean, Integer, String as Str};
        let path = |p: &Path| Str(p.display().to_string());
        let dur = |d: Duration| Str(humantime::format_duration(d).to_string());
        vec![
            ("listen", Str(self.listen.to_string())),
            ("data_dir", path(&self.data_dir)),
            ("admin_socket", path(&self.admin_socket)),
            ("round_interval", dur(self.round_interval)),
            ("block_reward", Integer(self.block_reward as i64)),
            ("max_stake", Integer(self.max_stake as i64)),
            ("max_bpm", Integer(self.max_bpm as i64)),
            ("slash_on_invalid_bpm", Boolean(self.slash_on_invalid_bpm)),
            ("max_connections", Integer(self.max_connections as i64)),
            ("max_line_bytes", Integer(self.max_line_bytes as i64)),
            ("stake_timeout", dur(self.stake_timeout)),
            ("write_timeout", dur(self.write_timeout)),
            ("log_level", Str(self.log_level.clone())),
            (
                "log_format",
                Str(match self.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }
                .into()),
            ),
        ]
    }

    /// The effective config as a TOML file `--config` would accept.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("# posd effective configuration\n");
        for (key, value) in self.entries() {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }

    /// `(key, old, new)` for every key whose value differs in `new`.
    pub fn changes(&self, new: &Config) -> Vec<(&'static str, String, String)> {
        self.entries()
            .into_iter()
            .zip(new.entries())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((key, a), (_, b))| (key, a.to_string(), b.to_string()))
            .collect()
    }

    /// This config with `new`'s reloadable keys; others keep their running value.
    pub fn reloaded(&self, new: &Config) -> Config {
        Config {
            round_interval: new.round_interval,
            log_level: new.log_level.clone(),
            max_connections: new.max_connections,
            max_line_bytes: new.max_line_bytes,
            stake_timeout: new.stake_timeout,
            write_timeout: new.write_timeout,
            ..self.clone()
        }
    }
}

/// Reads the file's flat table as strings, refusing unknown keys.
fn read_file(path: &Path) -> Result<std::collections::HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let mut out = std::collections::HashMap::new();
    for (key, value) in table {
        let Some(&known) = KEYS.iter().find(|k| **k == key) else {
            return Err(ConfigError::UnknownKey {
                key,
                path: path.to_owned(),
            });
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::BadValue {
                    key: known,
                    origin: path.display().to_string(),
                    message: format!(
                        "expected a string, number or boolean, found {}",
                        other.type_str()
                    ),
                })
            }
        };
        out.insert(key, text);
    }
    Ok(out)
}
