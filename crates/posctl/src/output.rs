//! Printing: human tables by default, one JSON object per line with `--json`.

use pos_core::block::format_timestamp;
use pos_core::Block;
use pos_proto::ValidatorInfo;
use serde_json::{json, Value};
use std::fmt::Display;
use std::io::{BufWriter, Stdout, Write};

pub struct Output {
    pub json: bool,
    w: BufWriter<Stdout>,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output {
            json,
            w: BufWriter::with_capacity(256 * 1024, std::io::stdout()),
        }
    }

    pub fn line(&mut self, text: impl Display) -> std::io::Result<()> {
        writeln!(self.w, "{text}")
    }

    pub fn json_line(&mut self, value: &impl serde::Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.w, value)?;
        self.w.write_all(b"\n")
    }

    /// Aligned `label  value` rows.
    pub fn pairs(&mut self, rows: &[(&str, String)]) -> std::io::Result<()> {
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            writeln!(self.w, "{k:<width$}  {v}")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// The first 16 hex digits: enough to tell hashes apart in a table.
pub fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}

pub const BLOCK_HEADER: &str = "INDEX  TIMESTAMP                 BPM   VALIDATOR         HASH";

pub fn block_row(b: &Block) -> String {
    let j = b.json();
    let validator = if j.validator.is_empty() {
        "-"
    } else {
        short(&j.validator)
    };
    format!(
        "{:<5}  {:<24}  {:<4}  {:<16}  {}",
        j.index,
        j.timestamp,
        j.bpm,
        validator,
        short(&j.hash)
    )
}

pub fn block_json(b: &Block) -> Value {
    serde_json::to_value(b.json()).expect("blocks serialize")
}

pub fn validator_json(info: &ValidatorInfo) -> Value {
    let v = &info.validator;
    let mut obj = json!({
        "address": v.address.to_string(),
        "balance": v.balance,
        "status": v.status().as_str(),
        "blocks_won": v.blocks_won,
        "connected": info.connected,
        "registered_at": format_timestamp(v.registered_at_ms),
    });
    if let Some(s) = &v.slashed {
        obj["slashed_at"] = json!(format_timestamp(s.at_ms));
        obj["slash_reason"] = json!(s.reason);
        obj["forfeited"] = json!(s.forfeited);
    }
    obj
}

pub const VALIDATOR_HEADER: &str =
    "ADDRESS                                                           BALANCE       STATUS   WON     CONNECTED";

pub fn validator_row(info: &ValidatorInfo) -> String {
    let v = &info.validator;
    format!(
        "{}  {:<12}  {:<7}  {:<6}  {}",
        v.address,
        v.balance,
        v.status().as_str(),
        v.blocks_won,
        if info.connected { "yes" } else { "no" }
    )
}

/// Bytes as B, KiB, MiB or GiB.
pub fn size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
