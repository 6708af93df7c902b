//! The validator protocol's grammar: what a line means at each prompt.
//! Pure, so it is unit-tested and fuzzed without a socket.

use crate::line::Line;
use pos_core::ValidatorKey;

/// Characters of a bad input echoed back in an `error:` line.
const ECHO_MAX: usize = 40;
/// Most blocks `chain N` prints.
pub const CHAIN_MAX: u64 = 100;
/// Blocks `chain` prints without a count.
pub const CHAIN_DEFAULT: u64 = 10;

/// Which question the client is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// `Enter token balance:`
    Stake,
    /// `Enter a new BPM:`
    Bpm,
}

impl Prompt {
    /// The tutorial's prompt text, with no newline after the colon.
    pub fn text(self) -> &'static str {
        match self {
            Prompt::Stake => "Enter token balance:",
            Prompt::Bpm => "Enter a new BPM:",
        }
    }
}

/// The bounds a line is judged against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_stake: u64,
    pub max_bpm: u32,
}

/// What a line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An empty line: ask again.
    Empty,
    Help,
    Quit,
    /// A valid stake (stake prompt).
    Stake(u64),
    /// `resume <key>`; `None` when the key is not 64 hex digits.
    Resume(Option<ValidatorKey>),
    /// Not a stake: the reason, for `error:`; the prompt stays.
    BadStake(String),
    /// A valid proposal (BPM prompt).
    Bpm(u32),
    Balance,
    /// `chain [N]`: the count, or `None` when N is out of range.
    Chain(Option<u64>),
    Status,
    /// Not a BPM: a malformed block proposal, with the reason.
    Malformed(String),
}

/// Cuts an echoed input short and escapes it, so errors stay one readable line.
pub fn shown(input: &str) -> String {
    let mut s: String = input.chars().take(ECHO_MAX).collect();
    if s.len() < input.len() {
        s.push_str("...");
    }
    s.escape_debug().to_string()
}

/// Interprets one line at `prompt`.
pub fn parse(prompt: Prompt, line: &Line, limits: Limits) -> Input {
    let text = match line {
        Line::Text(t) => t.trim(),
        Line::Invalid(why) => {
            return match prompt {
                Prompt::Stake => Input::BadStake(why.to_string()),
                Prompt::Bpm => Input::Malformed(why.to_string()),
            }
        }
    };
    let (word, arg) = match text.split_once(char::is_whitespace) {
        Some((w, a)) => (w, Some(a.trim())),
        None => (text, None),
    };
    match (prompt, word, arg) {
        (_, "", None) => Input::Empty,
        (_, "help", None) => Input::Help,
        (_, "quit", None) => Input::Quit,
        (Prompt::Stake, "resume", key) => Input::Resume(key.and_then(|k| k.parse().ok())),
        (Prompt::Stake, _, _) => match text.parse::<u64>() {
            Ok(s) if (1..=limits.max_stake).contains(&s) => Input::Stake(s),
            _ => Input::BadStake(format!("'{}' is not a stake", shown(text))),
        },
        (Prompt::Bpm, "balance", None) => Input::Balance,
        (Prompt::Bpm, "status", None) => Input::Status,
        (Prompt::Bpm, "chain", None) => Input::Chain(Some(CHAIN_DEFAULT)),
        (Prompt::Bpm, "chain", Some(n)) => {
            Input::Chain(n.parse().ok().filter(|n| (1..=CHAIN_MAX).contains(n)))
        }
        (Prompt::Bpm, _, _) => match text.parse::<u32>() {
            Ok(bpm) if bpm <= limits.max_bpm => Input::Bpm(bpm),
            _ => Input::Malformed(format!(
                "'{}' is not a whole number from 0 to {}",
                shown(text),
                limits.max_bpm
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_stake: 1000,
        max_bpm: 200,
    };

    fn at(prompt: Prompt, text: &str) -> Input {
        parse(prompt, &Line::Text(text.into()), LIMITS)
    }

    #[test]
    fn stake_prompt() {
        assert_eq!(at(Prompt::Stake, " 1000 "), Input::Stake(1000));
        for bad in [
            "0",
            "-1",
            "1001",
            "1e3",
            "99999999999999999999999",
            "ten",
            "balance",
        ] {
            assert!(
                matches!(at(Prompt::Stake, bad), Input::BadStake(_)),
                "{bad}"
            );
        }
        assert_eq!(at(Prompt::Stake, "resume"), Input::Resume(None));
        assert_eq!(at(Prompt::Stake, "resume xyz"), Input::Resume(None));
        let key = "ab".repeat(32);
        assert_eq!(
            at(Prompt::Stake, &format!("resume {key}")),
            Input::Resume(Some(key.parse().unwrap()))
        );
        assert_eq!(at(Prompt::Stake, ""), Input::Empty);
        assert_eq!(at(Prompt::Stake, "quit"), Input::Quit);
    }

    #[test]
    fn bpm_prompt() {
        assert_eq!(at(Prompt::Bpm, "0"), Input::Bpm(0));
        assert_eq!(at(Prompt::Bpm, "200"), Input::Bpm(200));
        assert_eq!(at(Prompt::Bpm, "chain"), Input::Chain(Some(10)));
        assert_eq!(at(Prompt::Bpm, "chain 100"), Input::Chain(Some(100)));
        assert_eq!(at(Prompt::Bpm, "chain 101"), Input::Chain(None));
        assert_eq!(at(Prompt::Bpm, "balance"), Input::Balance);
        assert_eq!(at(Prompt::Bpm, "status"), Input::Status);
        for bad in ["201", "-1", "72.5", "seventy", "balance now", "resume x"] {
            assert!(matches!(at(Prompt::Bpm, bad), Input::Malformed(_)), "{bad}");
        }
        assert_eq!(
            parse(
                Prompt::Bpm,
                &Line::Invalid("line is not valid UTF-8"),
                LIMITS
            ),
            Input::Malformed("line is not valid UTF-8".into())
        );
    }

    #[test]
    fn echoes_are_short_and_escaped() {
        let long = "x".repeat(500);
        let Input::Malformed(why) = at(Prompt::Bpm, &long) else {
            panic!()
        };
        assert!(why.len() < 100, "{why}");
        assert_eq!(shown("a\tb"), "a\\tb");
    }
}
