//! Printing: human tables within 80 columns by default (`--wide` for whole
//! hashes and values), one JSON object per line with `--json`.

use pos_core::Block;
use pos_proto::ValidatorInfo;
use std::fmt::Display;
use std::io::{BufWriter, Stdout, Write};

/// Columns human output keeps within, unless `--wide`.
pub const WIDTH: usize = 80;

/// Hex digits of a hash or address a table shows: enough to tell them apart,
/// and a prefix `posctl block` and `posctl validator` take back.
const SHORT: usize = 16;

/// Marks a shortened value.
pub const ELLIPSIS: char = '…';

pub struct Output {
    pub json: bool,
    pub wide: bool,
    w: BufWriter<Stdout>,
}

impl Output {
    pub fn new(json: bool, wide: bool) -> Self {
        Output {
            json,
            wide,
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

    /// Aligned `label  value` rows; a value too long for the line loses its
    /// middle (unless `--wide`).
    pub fn pairs(&mut self, rows: &[(&str, String)]) -> std::io::Result<()> {
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let room = WIDTH.saturating_sub(width + 2);
        for (k, v) in rows {
            let v = if self.wide {
                v.clone()
            } else {
                middle_cut(v, room)
            };
            writeln!(self.w, "{k:<width$}  {v}")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }

    /// A hash or address as a table shows it: its first digits and an
    /// ellipsis, or whole with `--wide`.
    pub fn id(&self, hex: &str) -> String {
        if self.wide || hex.chars().count() <= SHORT {
            hex.to_string()
        } else {
            let head: String = hex.chars().take(SHORT).collect();
            format!("{head}{ELLIPSIS}")
        }
    }

    /// Width of an [`Output::id`] column.
    pub fn id_width(&self) -> usize {
        if self.wide {
            64
        } else {
            SHORT + 1
        }
    }

    pub fn block_header(&self) -> String {
        let w = self.id_width();
        format!(
            "{:<5}  {:<24}  {:<4}  {:<w$}  HASH",
            "INDEX", "TIMESTAMP", "BPM", "VALIDATOR"
        )
    }

    pub fn block_row(&self, b: &Block) -> String {
        let j = b.json();
        let validator = if j.validator.is_empty() {
            "-".to_string()
        } else {
            self.id(&j.validator)
        };
        format!(
            "{:<5}  {:<24}  {:<4}  {:<w$}  {}",
            j.index,
            j.timestamp,
            j.bpm,
            validator,
            self.id(&j.hash),
            w = self.id_width()
        )
    }

    pub fn validator_header(&self) -> String {
        let w = self.id_width();
        format!(
            "{:<w$}  {:<12}  {:<7}  {:<6}  CONNECTED",
            "ADDRESS", "BALANCE", "STATUS", "WON"
        )
    }

    pub fn validator_row(&self, info: &ValidatorInfo) -> String {
        let v = &info.validator;
        format!(
            "{:<w$}  {:<12}  {:<7}  {:<6}  {}",
            self.id(&v.address.to_string()),
            v.balance,
            v.status().as_str(),
            v.blocks_won,
            if info.connected { "yes" } else { "no" },
            w = self.id_width()
        )
    }
}

/// `s` within `room` characters: its start and end around an ellipsis.
fn middle_cut(s: &str, room: usize) -> String {
    let len = s.chars().count();
    if len <= room || room < 3 {
        return s.to_string();
    }
    let tail = (room - 1) / 2;
    let head = room - 1 - tail;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(len - tail).collect();
    format!("{start}{ELLIPSIS}{end}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_lose_their_middle_to_fit() {
        assert_eq!(middle_cut("abcdef", 6), "abcdef");
        assert_eq!(middle_cut("abcdefgh", 5), "ab…gh");
        assert_eq!(middle_cut("abcdefgh", 6), "abc…gh");
        assert_eq!(
            middle_cut("/a/very/long/path/admin.sock", 20)
                .chars()
                .count(),
            20
        );
    }

    #[test]
    fn ids_are_shortened_unless_wide() {
        let hex = "ab".repeat(32);
        let short = Output::new(false, false);
        assert_eq!(short.id(&hex), format!("{}…", &hex[..16]));
        assert_eq!(short.id(&hex).chars().count(), short.id_width());
        let wide = Output::new(false, true);
        assert_eq!(wide.id(&hex), hex);
        assert_eq!(wide.id(&hex).len(), wide.id_width());
    }
}
