//! Matching a transcript's text against real output: every line literally,
//! except the values that differ from run to run (hashes, keys and addresses,
//! times, durations, sizes, the pid, a draw's ticket), which match by their
//! shape. A hex value must stand for the same real value everywhere in the
//! file, so a block's `PrevHash` still has to be the hash printed for the
//! block before it. Table rows that begin with an address or hash are sorted
//! by it, so they may come in another order.

use regex::Regex;
use std::sync::LazyLock;

/// What may differ between runs, as it appears in a transcript.
static VOLATILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<hex>[0-9a-f]{16,})",
        r"|(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)",
        r"|(?P<size>\b\d+(?:\.\d+)? (?:B|KiB|MiB|GiB)\b)",
        r"|(?P<duration>\b(?:\d+h )?(?:\d+m )?\d+(?:\.\d+)?s\b)",
        r"|(?P<number>^(?:pid|ticket) +\d+)",
    ))
    .unwrap()
});

/// The real hex value each transcript value stands for (by their first 16
/// digits, as tables show them), learnt as the transcript is matched.
#[derive(Default, Clone)]
pub struct Bindings(Vec<(String, String)>);

impl Bindings {
    /// Records that transcript value `shown` was `real` this run; refuses a
    /// second meaning for either.
    fn bind(&mut self, shown: &str, real: &str) -> Result<(), String> {
        let (shown16, real16) = (&shown[..16], &real[..16]);
        for (s, r) in &self.0 {
            if (s[..16] == *shown16) != (r[..16] == *real16) {
                return Err(format!(
                    "{shown} stands for {real} here, but {s} stood for {r} before"
                ));
            }
        }
        if !self.0.iter().any(|(s, _)| s == shown) {
            self.0.push((shown.to_string(), real.to_string()));
        }
        Ok(())
    }

    /// `command` with each hex word (4 digits or more) that begins a known
    /// transcript value replaced by as many digits of its real value.
    pub fn apply(&self, command: &str) -> String {
        let word = |w: &str| {
            let hex = w.len() >= 4 && w.bytes().all(|b| b.is_ascii_hexdigit());
            let real = self
                .0
                .iter()
                .find(|(s, r)| hex && s.starts_with(w) && r.len() >= w.len());
            real.map_or(w.to_string(), |(_, r)| r[..w.len()].to_string())
        };
        command.split(' ').map(word).collect::<Vec<_>>().join(" ")
    }
}

/// Checks `real` against the transcript's `shown` output, line by line.
pub fn check(shown: &str, real: &str, bindings: &mut Bindings) -> Result<(), String> {
    let (shown_lines, real_lines): (Vec<_>, Vec<_>) =
        (shown.lines().collect(), real.lines().collect());
    let fail = |why: String| {
        Err(format!(
            "{why}\n--- the transcript shows:\n{shown}\n--- posd said:\n{real}"
        ))
    };
    if shown_lines.len() != real_lines.len() {
        return fail(format!(
            "{} lines shown, {} printed",
            shown_lines.len(),
            real_lines.len()
        ));
    }
    let mut unused: Vec<bool> = vec![true; real_lines.len()];
    for (i, s) in shown_lines.iter().enumerate() {
        // A row keyed by hex may match any unused row so keyed; others keep their place.
        let keyed =
            |line: &str| line.len() > 16 && line.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit);
        let places: Vec<usize> = if keyed(s) {
            (0..real_lines.len())
                .filter(|&j| unused[j] && keyed(real_lines[j]))
                .collect()
        } else {
            vec![i]
        };
        let found = places.into_iter().find_map(|j| {
            let mut tried = bindings.clone();
            check_line(s, real_lines[j], &mut tried)
                .ok()
                .map(|()| (j, tried))
        });
        match found {
            Some((j, tried)) => (*bindings, unused[j]) = (tried, false),
            // Say how the line in the same place differs.
            None => {
                let why = check_line(s, real_lines[i], &mut bindings.clone()).err();
                return fail(
                    why.unwrap_or_else(|| format!("line {} is matched twice: {s}", i + 1)),
                );
            }
        }
    }
    Ok(())
}

fn check_line(shown: &str, real: &str, bindings: &mut Bindings) -> Result<(), String> {
    let mut pattern = String::from("^");
    let mut hexes = Vec::new();
    let mut at = 0;
    for caps in VOLATILE.captures_iter(shown) {
        let whole = caps.get(0).unwrap();
        pattern.push_str(&regex::escape(&shown[at..whole.start()]));
        at = whole.end();
        pattern.push_str(&if let Some(hex) = caps.name("hex") {
            hexes.push(hex.as_str());
            format!("([0-9a-f]{{{}}})", hex.len())
        } else if caps.name("time").is_some() {
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z".to_string()
        } else if caps.name("size").is_some() {
            r"\d+(?:\.\d+)? (?:B|KiB|MiB|GiB)".to_string()
        } else if caps.name("duration").is_some() {
            r"(?:\d+h )?(?:\d+m )?\d+(?:\.\d+)?s".to_string()
        } else {
            let word = whole.as_str().split(' ').next().unwrap();
            format!(r"{word} +\d+")
        });
    }
    pattern.push_str(&regex::escape(&shown[at..]));
    pattern.push('$');
    let caps = Regex::new(&pattern)
        .unwrap()
        .captures(real)
        .ok_or_else(|| format!("line differs:\n  shown: {shown}\n  real:  {real}"))?;
    for (shown_hex, real_hex) in hexes.into_iter().zip(caps.iter().skip(1)) {
        bindings.bind(shown_hex, real_hex.unwrap().as_str())?;
    }
    Ok(())
}

#[test]
fn shapes_match_and_hex_values_keep_their_meaning() {
    let mut b = Bindings::default();
    let shown =
        "tip 9c6bd84095c6ff76… at 2026-11-29T22:44:52.722Z, 59m 58s, 3.1 KiB\npid        17469";
    let real =
        "tip 0123456789abcdef… at 2026-12-06T11:19:23.070Z, 59m 59s, 12 KiB\npid        9355";
    check(shown, real, &mut b).unwrap();
    assert_eq!(b.apply("posctl block 9c6bd8"), "posctl block 012345");
    // The same shown value must be the same real one; other words are literal.
    assert!(check("tip 9c6bd84095c6ff76…", "tip ffff456789abcdef…", &mut b).is_err());
    assert!(check("height 1", "height 2", &mut b).is_err());
    assert!(check("a\nb", "a", &mut b).is_err());
    // Rows keyed by hex may be reordered; the rest may not.
    let rows = "ADDR\n0123456789abcdef… 1\nfedcba9876543210… 2";
    let swapped = "ADDR\nfedcba9876543210… 2\n0123456789abcdef… 1";
    check(rows, swapped, &mut Bindings::default()).unwrap();
    assert!(check("x\ny", "y\nx", &mut b).is_err());
}
