//! posd's settings. Every key comes from, in order of precedence: its flag,
//! its `POSD_*` variable, the config file, its default. One table (the
//! `settings!` rows below) declares each key once and drives all four,
//! `--print-config`, and what SIGHUP may change.

use clap::Parser;
use pos_core::weighting::{AGE_WINDOW, WORK_BITS, WORK_BONUS_MAX};
use pos_core::{ChainSpec, Weighting};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

// Accepted values, the same for flag, variable, file and reload. Every bound
// fits a TOML integer (i64), so `--print-config` always reads back, and no
// duration exceeds a day, so adding one to an `Instant` cannot overflow.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
pub const ROUND_INTERVAL: RangeInclusive<Duration> = Duration::from_millis(1)..=DAY;
/// For `stake_timeout` and `write_timeout`.
pub const TIMEOUT: RangeInclusive<Duration> = Duration::from_millis(100)..=DAY;
/// For `idle_timeout` when it is not 0 (off).
pub const IDLE_TIMEOUT: RangeInclusive<Duration> = Duration::from_secs(1)..=DAY;
/// Balances stay below `u64::MAX` for ~1.8e13 blocks (580 years of 1 ms
/// rounds) even from the largest stake, so a reward never overflows.
pub const BLOCK_REWARD: RangeInclusive<u64> = 0..=1_000_000;
/// Below 2^53 too, so stakes stay exact in JSON tools that use doubles.
pub const MAX_STAKE: RangeInclusive<u64> = 1..=1_000_000_000_000_000;
pub const MAX_BPM: RangeInclusive<u32> = 0..=u32::MAX;
pub const MAX_CONNECTIONS: RangeInclusive<u32> = 1..=1_000_000;
/// `resume <64 hex digits>` is 71 bytes (72 with nc's `\r`); below this a
/// validator could never resume and its stake would be stranded.
pub const MAX_LINE_BYTES: RangeInclusive<u32> = 128..=65_536;
/// About 100 bytes each on disk: the bound on what free registrations can store.
pub const MAX_VALIDATORS: RangeInclusive<u64> = 1..=100_000_000;
pub const REGISTRATION_RATE: RangeInclusive<u32> = 0..=1_000_000;
/// For `forget_after` when it is not 0 (never).
pub const FORGET_AFTER: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3650 * 24 * 60 * 60);
/// Below 2^53: ids stay exact in JSON tools that use doubles.
pub const NODE_ID: RangeInclusive<u64> = 1..=(1 << 53);
pub const ELECTION_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(60);
const _: () = assert!(
    *NODE_ID.end() <= i64::MAX as u64
        && *BLOCK_REWARD.end() <= i64::MAX as u64
        && *MAX_STAKE.end() <= i64::MAX as u64
        && *MAX_VALIDATORS.end() <= i64::MAX as u64
);

/// Log line shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
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

/// The first of systemd's colon-separated directory lists in `var`.
fn systemd_dir(var: &str) -> Option<PathBuf> {
    let list = std::env::var_os(var)?;
    let first = list.to_string_lossy().split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// A duration in `range`; with `zero_is_off`, `"0s"` too.
fn duration(
    s: &str,
    range: RangeInclusive<Duration>,
    zero_is_off: bool,
) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(s);
    match parsed {
        Ok(d) if range.contains(&d) || (zero_is_off && d.is_zero()) => return Ok(d),
        _ => {}
    }
    let why = format!(
        "expected {}a duration from {} to {}, e.g. \"500ms\", \"30s\", \"5m\"",
        if zero_is_off { "\"0s\" (off) or " } else { "" },
        humantime::format_duration(*range.start()),
        humantime::format_duration(*range.end())
    );
    Err(match parsed {
        Ok(_) => why,
        Err(e) => format!("{e}; {why}"),
    })
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    s: &str,
    range: RangeInclusive<T>,
) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// Declares every key once: its type, default, whether SIGHUP applies it, how
/// its text is read (with the accepted range) and its help line. From this
/// one table come [`Config`], the flags of [`Args`], [`KEYS`], the reload
/// rule and `--print-config`; nothing about a key is written twice.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty = $default:expr, $reload:ident, $parse:expr, $value_name:literal, $help:literal;
    )*) => {
        /// The effective configuration of a running posd. Built only by
        /// [`Config::load`], so every value is within its key's range.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $key: $ty, )*
        }

        /// One flag per key (`--round-interval` for `round_interval`).
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct KeyFlags {
            $(
                #[arg(long, global = true, value_name = $value_name, help = $help)]
                pub $key: Option<String>,
            )*
        }

        /// Every config key, in the order `--print-config` shows them.
        pub const KEYS: &[&str] = &[$(stringify!($key)),*];

        /// Whether SIGHUP applies `key` to the running daemon.
        pub fn is_reloadable(key: &str) -> bool {
            match key {
                $( stringify!($key) => Reload::$reload == Reload::Yes, )*
                _ => false,
            }
        }

        impl KeyFlags {
            fn get(&self, key: &str) -> Option<&str> {
                match key {
                    $( stringify!($key) => self.$key.as_deref(), )*
                    _ => None,
                }
            }
        }

        impl Config {
            /// Reads every key from `source` (its text and where it came from).
            fn read(
                mut source: impl FnMut(&'static str) -> (String, String),
            ) -> Result<Config, ConfigError> {
                Ok(Config {
                    $( $key: {
                        let key = stringify!($key);
                        let (text, origin) = source(key);
                        let parse: fn(&str) -> Result<$ty, String> = $parse;
                        parse(&text).map_err(|message| ConfigError::BadValue {
                            key,
                            origin,
                            message,
                        })?
                    }, )*
                })
            }

            /// Each key with its effective value, as TOML would show it.
            pub fn entries(&self) -> Vec<(&'static str, toml::Value)> {
                vec![$( (stringify!($key), self.$key.to_toml()) ),*]
            }

            /// This config with `new`'s reloadable keys; others keep their running value.
            pub fn reloaded(&self, new: &Config) -> Config {
                Config {
                    $( $key: match Reload::$reload {
                        Reload::Yes => new.$key.clone(),
                        Reload::No => self.$key.clone(),
                    }, )*
                }
            }
        }

        fn default_of(key: &str) -> String {
            match key {
                $( stringify!($key) => String::from($default), )*
                _ => String::new(),
            }
        }
    };
}

/// Whether SIGHUP applies a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reload {
    Yes,
    No,
}

settings! {
    /// TCP address validators connect to.
    listen: SocketAddr = "127.0.0.1:9000", No, address, "ADDR",
        "TCP address validators connect to [default: 127.0.0.1:9000]";
    /// Where the chain lives.
    data_dir: PathBuf = default_data_dir(), No, directory, "DIR",
        "Where the chain lives [default: $STATE_DIRECTORY, else ./posd-data]";
    /// posctl's Unix socket; empty until [`Config::load`] resolves the default.
    admin_socket: PathBuf = "", No, |v| Ok(PathBuf::from(v)), "PATH",
        "posctl's socket [default: $RUNTIME_DIRECTORY/admin.sock, else <data_dir>/admin.sock]";
    /// Read-only HTTP (metrics, JSON API, web page); `None`: off.
    http_listen: Option<SocketAddr> = "", No, optional_address, "ADDR",
        "Read-only HTTP: metrics, JSON API, web page, e.g. 127.0.0.1:9080; empty: off [default: off]";
    /// How long a lottery round lasts.
    round_interval: Duration = "30s", Yes, |v| duration(v, ROUND_INTERVAL, false), "DURATION",
        "Round length, 1ms to 1day, e.g. 500ms, 30s, 5m [default: 30s]";
    /// Tokens added to the winner's balance per block.
    block_reward: u64 = "1", No, |v| number(v, BLOCK_REWARD), "TOKENS",
        "Tokens a block's winner earns, 0 to 1000000 [default: 1]";
    /// Largest stake accepted at registration.
    max_stake: u64 = "1000000000000", No, |v| number(v, MAX_STAKE), "TOKENS",
        "Largest stake accepted, 1 to 1000000000000000 [default: 1000000000000]";
    /// Largest BPM accepted in a proposal.
    max_bpm: u32 = "1000", No, |v| number(v, MAX_BPM), "BPM",
        "Largest BPM accepted [default: 1000]";
    /// Slash a validator whose proposal is not a BPM (else reply `error:` only).
    slash_on_invalid_bpm: bool = "true", No, boolean, "BOOL",
        "Slash malformed proposals: true or false [default: true]";
    /// What a candidate weighs in the lottery: stake, stake_age or stake_work.
    lottery_weighting: String = "stake", No, weighting_name, "RULE",
        "Lottery weighting: stake, stake_age or stake_work [default: stake]";
    /// stake_age: how many previous rounds a validator's age counts.
    age_window: u32 = "10", No, |v| number(v, AGE_WINDOW), "ROUNDS",
        "stake_age: rounds of age counted, 1 to 1000 [default: 10]";
    /// stake_work: the leading zero bits a nonce needs for a bonus.
    work_bits: u32 = "20", No, |v| number(v, WORK_BITS), "BITS",
        "stake_work: leading zero bits a nonce needs for a bonus, 1 to 48 [default: 20]";
    /// stake_work: the most doublings a nonce's bonus gives.
    work_bonus_max: u32 = "4", No, |v| number(v, WORK_BONUS_MAX), "DOUBLINGS",
        "stake_work: most doublings of the stake a nonce earns, 0 to 16 [default: 4]";
    /// Validator connections served at once.
    max_connections: u32 = "10000", Yes, |v| number(v, MAX_CONNECTIONS), "N",
        "Validator connections at once, 1 to 1000000 [default: 10000]";
    /// Longest line a validator may send, in bytes.
    max_line_bytes: u32 = "1024", Yes, |v| number(v, MAX_LINE_BYTES), "BYTES",
        "Longest validator line in bytes, 128 to 65536 [default: 1024]";
    /// Time a new connection has to answer the balance prompt.
    stake_timeout: Duration = "60s", Yes, |v| duration(v, TIMEOUT, false), "DURATION",
        "Time to answer the balance prompt, 100ms to 1day [default: 60s]";
    /// A client that cannot take a write for this long is dropped.
    write_timeout: Duration = "10s", Yes, |v| duration(v, TIMEOUT, false), "DURATION",
        "Drop a client that cannot take a write for this long, 100ms to 1day [default: 10s]";
    /// A registered validator that sends no line for this long is let go; `None`: never.
    idle_timeout: Option<Duration> = "0s", Yes, |v| optional(duration(v, IDLE_TIMEOUT, true)?), "DURATION",
        "Let go of a validator silent this long, 1s to 1day; 0s: never [default: 0s]";
    /// Stored validators at most; a registration beyond gets `error:`.
    max_validators: u64 = "1000000", Yes, |v| number(v, MAX_VALIDATORS), "N",
        "Stored validators at most, 1 to 100000000 [default: 1000000]";
    /// New registrations per second per source IP (burst: 10 s worth); 0: unlimited.
    registration_rate: u32 = "50", Yes, |v| number(v, REGISTRATION_RATE), "PER_SECOND",
        "Registrations per second per source IP, burst 10x; 0 to 1000000, 0: unlimited [default: 50]";
    /// Idle validators are forgotten after this long away; zero: never.
    forget_after: Duration = "7d", Yes, |v| duration(v, FORGET_AFTER, true), "DURATION",
        "Forget never-proposing validators away this long, 1s to 3650days; 0s: never [default: 7d]";
    /// This node's id in its cluster (unique, 1 or more); unused standalone.
    node_id: u64 = "1", No, |v| number(v, NODE_ID), "ID",
        "This node's id in its cluster, 1 to 2^53 [default: 1]";
    /// Address for traffic between cluster nodes; `None`: standalone.
    cluster_listen: Option<SocketAddr> = "", No, optional_address, "ADDR",
        "Address for traffic between cluster nodes, e.g. 10.0.0.1:9100; empty: standalone [default: standalone]";
    /// The file holding the cluster's shared secret (mode 0600).
    cluster_secret_file: Option<PathBuf> = "", No, optional_path, "FILE",
        "File with the cluster's shared secret, mode 0600 [default: none]";
    /// How long a follower waits for the leader before it stands for election.
    election_timeout: Duration = "1s", No, |v| duration(v, ELECTION_TIMEOUT, false), "DURATION",
        "Leader silence before an election (1.5-2x this), 100ms to 1min [default: 1s]";
    /// Log filter (`RUST_LOG` syntax); `RUST_LOG` itself wins when set.
    log_level: String = "info", Yes, log_filter, "FILTER",
        "error, warn, info, debug, trace, or a RUST_LOG filter [default: info]";
    log_format: LogFormat = "text", No, log_format, "FORMAT",
        "text or json [default: text]";
}

/// posd: a Proof-of-Stake node. Validators connect with `nc`, stake tokens and
/// propose blocks; a stake-weighted lottery picks each block's proposer.
/// Every setting is a flag, a POSD_* variable (e.g. POSD_ROUND_INTERVAL) or a
/// key in the config file; flags win over variables, variables over the file.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "posd", version, about, long_about = None)]
pub struct Args {
    /// TOML config file (flat keys, as in config/posd.toml).
    #[arg(long, global = true, value_name = "FILE", env = "POSD_CONFIG")]
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
    #[command(flatten)]
    pub keys: KeyFlags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What posd does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Build a new data directory (--data-dir, absent or empty) from an export
    /// file, verifying every hash, link, draw and the checksum before it exists.
    Import {
        /// The export (`posctl export`); `-` reads standard input.
        file: PathBuf,
    },
}

/// How a value is shown in TOML, so that it reads back the same.
trait Setting {
    fn to_toml(&self) -> toml::Value;
}

impl Setting for SocketAddr {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.to_string())
    }
}

impl Setting for PathBuf {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.display().to_string())
    }
}

impl Setting for String {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}

impl Setting for Duration {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(humantime::format_duration(*self).to_string())
    }
}

/// Off is shown as "", as it is written.
impl Setting for Option<SocketAddr> {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.map(|a| a.to_string()).unwrap_or_default())
    }
}

/// None is shown as "", as it is written.
impl Setting for Option<PathBuf> {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(
            self.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )
    }
}

/// Off is shown as "0s", as it is written.
impl Setting for Option<Duration> {
    fn to_toml(&self) -> toml::Value {
        self.unwrap_or_default().to_toml()
    }
}

impl Setting for bool {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}

/// Lossless: every integer key's range fits an i64 (asserted above).
impl Setting for u64 {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Integer(*self as i64)
    }
}

impl Setting for u32 {
    fn to_toml(&self) -> toml::Value {
        toml::Value::Integer(i64::from(*self))
    }
}

impl Setting for LogFormat {
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(
            match self {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
            .into(),
        )
    }
}

fn default_data_dir() -> String {
    systemd_dir("STATE_DIRECTORY")
        .unwrap_or_else(|| PathBuf::from("./posd-data"))
        .display()
        .to_string()
}

fn address(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| "expected an IP address and port, e.g. 127.0.0.1:9000".to_string())
}

/// Empty means off.
fn optional_address(v: &str) -> Result<Option<SocketAddr>, String> {
    match v {
        "" => Ok(None),
        v => address(v).map(Some),
    }
}

fn directory(v: &str) -> Result<PathBuf, String> {
    match v.is_empty() {
        true => Err("must not be empty".into()),
        false => Ok(PathBuf::from(v)),
    }
}

/// Empty means none.
fn optional_path(v: &str) -> Result<Option<PathBuf>, String> {
    Ok((!v.is_empty()).then(|| PathBuf::from(v)))
}

fn weighting_name(v: &str) -> Result<String, String> {
    match Weighting::NAMES.contains(&v) {
        true => Ok(v.to_string()),
        false => Err(format!("expected one of: {}", Weighting::NAMES.join(", "))),
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    v.parse().map_err(|_| "expected true or false".to_string())
}

/// Zero means off.
fn optional(d: Duration) -> Result<Option<Duration>, String> {
    Ok((!d.is_zero()).then_some(d))
}

fn log_filter(v: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(v).map_err(|e| e.to_string())?;
    Ok(v.to_string())
}

fn log_format(v: &str) -> Result<LogFormat, String> {
    match v {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected \"text\" or \"json\"".into()),
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
        let mut config = Config::read(|key| {
            let env_name = format!("POSD_{}", key.to_uppercase());
            if let Some(v) = args.keys.get(key) {
                (v.to_string(), format!("--{}", key.replace('_', "-")))
            } else if let Ok(v) = std::env::var(&env_name) {
                (v, env_name)
            } else if let Some((path, v)) = file
                .as_ref()
                .and_then(|(path, t)| Some((path, t.get(key)?)))
            {
                (v.clone(), path.display().to_string())
            } else {
                (default_of(key), "default".into())
            }
        })?;
        if config.admin_socket.as_os_str().is_empty() {
            config.admin_socket = systemd_dir("RUNTIME_DIRECTORY")
                .unwrap_or_else(|| config.data_dir.clone())
                .join("admin.sock");
        }
        Ok(config)
    }

    /// The effective config as a TOML file `--config` would accept.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("# posd effective configuration\n");
        for (key, value) in self.entries() {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }

    /// The rules a chain created now (at `genesis_ms`) from this config gets.
    pub fn chain_spec(&self, genesis_ms: u64) -> ChainSpec {
        ChainSpec {
            genesis_ms,
            block_reward: self.block_reward,
            max_stake: self.max_stake,
            max_bpm: self.max_bpm,
            slash_on_invalid_bpm: self.slash_on_invalid_bpm,
            weighting: self.weighting(),
        }
    }

    /// The lottery weighting these keys name.
    pub fn weighting(&self) -> Weighting {
        Weighting::from_parts(
            &self.lottery_weighting,
            self.age_window,
            self.work_bits,
            self.work_bonus_max,
        )
        .expect("each key was checked when loaded")
    }

    /// This config with `chain`'s rules in place of its own: they are chain
    /// data, so a config that differs does not change them (each difference
    /// is logged).
    pub fn ruled_by_chain(&self, chain: &ChainSpec) -> Config {
        let ruled = Config {
            block_reward: chain.block_reward,
            max_stake: chain.max_stake,
            max_bpm: chain.max_bpm,
            slash_on_invalid_bpm: chain.slash_on_invalid_bpm,
            lottery_weighting: chain.weighting.name().to_string(),
            ..self.clone()
        };
        // The parameters the chain's rule uses are its; the others stay unused.
        let ruled = match chain.weighting {
            Weighting::Stake => ruled,
            Weighting::StakeAge { age_window } => Config {
                age_window,
                ..ruled
            },
            Weighting::StakeWork {
                work_bits,
                work_bonus_max,
            } => Config {
                work_bits,
                work_bonus_max,
                ..ruled
            },
        };
        for (key, configured, chain_value) in self.changes(&ruled) {
            tracing::warn!(
                key,
                chain = %chain_value,
                config = %configured,
                "chain rule set when this chain was created; the config's value does not apply"
            );
        }
        ruled
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A value other than the default for every key.
    const OTHER: &[(&str, &str)] = &[
        ("listen", "127.0.0.1:9001"),
        ("data_dir", "/tmp/elsewhere"),
        ("admin_socket", "/tmp/elsewhere.sock"),
        ("http_listen", "127.0.0.1:9080"),
        ("round_interval", "5s"),
        ("block_reward", "2"),
        ("max_stake", "5"),
        ("max_bpm", "7"),
        ("slash_on_invalid_bpm", "false"),
        ("lottery_weighting", "stake_age"),
        ("age_window", "5"),
        ("work_bits", "12"),
        ("work_bonus_max", "2"),
        ("max_connections", "9"),
        ("max_line_bytes", "256"),
        ("stake_timeout", "3s"),
        ("write_timeout", "4s"),
        ("idle_timeout", "6s"),
        ("max_validators", "11"),
        ("registration_rate", "0"),
        ("forget_after", "0s"),
        ("node_id", "2"),
        ("cluster_listen", "127.0.0.1:9100"),
        ("cluster_secret_file", "/tmp/cluster.secret"),
        ("election_timeout", "2s"),
        ("log_level", "debug"),
        ("log_format", "json"),
    ];

    /// A reload takes exactly the keys marked reloadable, each of them.
    #[test]
    fn reload_applies_exactly_the_reloadable_keys() {
        let keys: Vec<&str> = OTHER.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, KEYS, "OTHER must cover every key, in order");
        let defaults = Config::defaults();
        let mut argv = vec!["posd".to_string()];
        for (key, value) in OTHER {
            argv.push(format!("--{}={value}", key.replace('_', "-")));
        }
        let other = Config::from_argv(argv).unwrap();
        let all: Vec<&str> = defaults.changes(&other).iter().map(|c| c.0).collect();
        assert_eq!(all, KEYS, "every OTHER value differs from its default");
        let reloaded = defaults.reloaded(&other);
        let applied: Vec<&str> = defaults.changes(&reloaded).iter().map(|c| c.0).collect();
        let reloadable: Vec<&str> = KEYS.iter().copied().filter(|k| is_reloadable(k)).collect();
        assert_eq!(applied, reloadable);
    }
}
