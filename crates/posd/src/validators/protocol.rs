//! The validator protocol's grammar: what a line means at each prompt.
//! Pure, so it is unit-tested and fuzzed without a socket.

use crate::validators::line::Line;
use pos_core::{ValidatorKey, Weighting};

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
    /// The chain's lottery weighting: `stake_work` takes `<bpm> <nonce>`.
    pub weighting: Weighting,
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
    /// A valid `<bpm> <nonce>` proposal (BPM prompt, `stake_work` chains).
    Work(u32, u64),
    Balance,
    /// `chain [N]`: the count, or `None` when N is out of range.
    Chain(Option<u64>),
    Status,
    /// A word that is no command at this prompt, as typed (escaped): no penalty.
    Unknown(String),
    /// A command that takes no argument (lowercased), given one: no penalty.
    NoArgument(String),
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

/// Whether a line's first token is a word (a command, known or not) rather
/// than a number: a word holds no digit (of any script), sign or dot. So
/// `Help`, `balanse` and `?` are words, while `72.5`, `-1`, `72abc` and
/// `seventy-two` are numbers, malformed ones at the BPM prompt.
fn is_word(token: &str) -> bool {
    !token
        .chars()
        .any(|c| c.is_numeric() || matches!(c, '+' | '-' | '.'))
}

/// Interprets one line at `prompt`. Commands ignore case; the first token
/// decides whether the line is a command or a number (see [`is_word`]).
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
    if word.is_empty() {
        return Input::Empty;
    }
    if is_word(word) {
        return command(prompt, word, arg);
    }
    match prompt {
        Prompt::Stake => match text.parse::<u64>() {
            Ok(s) if (1..=limits.max_stake).contains(&s) => Input::Stake(s),
            _ => Input::BadStake(format!("'{}' is not a stake", shown(text))),
        },
        Prompt::Bpm => match (limits.weighting, arg) {
            (Weighting::StakeWork { .. }, Some(nonce)) => {
                match (bpm(word, limits), nonce.parse()) {
                    (Ok(bpm), Ok(nonce)) => Input::Work(bpm, nonce),
                    (Err(why), _) => why,
                    (_, Err(_)) => Input::Malformed(format!(
                        "'{}' is not a nonce: a whole number from 0 to {}",
                        shown(nonce),
                        u64::MAX
                    )),
                }
            }
            _ => bpm(text, limits).map_or_else(|why| why, Input::Bpm),
        },
    }
}

/// A BPM from 0 to `max_bpm`, or the malformed proposal it is.
fn bpm(text: &str, limits: Limits) -> Result<u32, Input> {
    match text.parse::<u32>() {
        Ok(bpm) if bpm <= limits.max_bpm => Ok(bpm),
        _ => Err(Input::Malformed(format!(
            "'{}' is not a whole number from 0 to {}",
            shown(text),
            limits.max_bpm
        ))),
    }
}

/// A line starting with a word: a command at this prompt, or an unknown one.
fn command(prompt: Prompt, word: &str, arg: Option<&str>) -> Input {
    let name = word.to_lowercase();
    match (prompt, name.as_str(), arg) {
        (Prompt::Stake, "resume", key) => Input::Resume(key.and_then(|k| k.parse().ok())),
        (Prompt::Bpm, "chain", None) => Input::Chain(Some(CHAIN_DEFAULT)),
        (Prompt::Bpm, "chain", Some(n)) => {
            Input::Chain(n.parse().ok().filter(|n| (1..=CHAIN_MAX).contains(n)))
        }
        (_, "help" | "quit", Some(_)) | (Prompt::Bpm, "balance" | "status", Some(_)) => {
            Input::NoArgument(name)
        }
        (_, "help", None) => Input::Help,
        (_, "quit", None) => Input::Quit,
        (Prompt::Bpm, "balance", None) => Input::Balance,
        (Prompt::Bpm, "status", None) => Input::Status,
        _ => Input::Unknown(shown(word)),
    }
}

/// Every text a validator's client sees, so the protocol reads in one place
/// (docs/PROTOCOL.md describes it). Replies end in `\n`; the session adds
/// the prompt after them. Texts that arrive unasked (announcements, timeouts)
/// start with `\n`, so they begin on a line of their own after a prompt.
pub mod say {
    use super::{Limits, Prompt, CHAIN_MAX};
    use pos_core::weighting::{Weighed, Why};
    use pos_core::{Address, Block, Validator, Weighting};
    use pos_proto::text::count;
    use std::time::Duration;

    /// `12.3s`: how long until something happens.
    fn secs(d: Duration) -> String {
        format!("{:.1}s", d.as_secs_f64())
    }

    pub fn greeting() -> String {
        format!(
            "posd {}: stake tokens to become a validator, or 'help'\n",
            env!("CARGO_PKG_VERSION")
        )
    }

    pub fn help(prompt: Prompt, limits: Limits) -> String {
        match prompt {
            Prompt::Stake => format!(
                "  <tokens>      stake 1 to {} tokens and become a validator\n  \
                 resume <key>  continue as the validator that key belongs to\n  \
                 help          this text\n  quit          close the connection\n",
                limits.max_stake
            ),
            Prompt::Bpm => format!(
                "  <bpm>         propose a block with this BPM (0 to {}) for this round\n  \
                 balance       your balance, blocks won and status\n  \
                 chain [N]     the last N blocks as JSON lines (default 10, at most {CHAIN_MAX})\n  \
                 status        height, time to the end of the round, candidates\n  \
                 help          this text\n  quit          close the connection\n{}",
                limits.max_bpm,
                rule(limits.weighting)
            ),
        }
    }

    /// One line on the chain's weighting (none under plain stake).
    fn rule(weighting: Weighting) -> String {
        match weighting {
            Weighting::Stake => String::new(),
            Weighting::StakeAge { age_window } => format!(
                "lottery: stake_age: weight = stake x (1 + rounds of the last {age_window} you proposed in since your last win)\n"
            ),
            Weighting::StakeWork { work_bits, work_bonus_max } => format!(
                "lottery: stake_work: '<bpm> <nonce>': weight = stake x 2^min(z - {work_bits}, {work_bonus_max}) \
                 if SHA-256 of 'posd-work-v1|<prev hash>|<block>|<address>|<bpm>|<nonce>' has z >= {work_bits} \
                 leading zero bits (posctl work finds one), else stake\n"
            ),
        }
    }

    /// `, weight 300 (age 2)`: a proposal's weight and why, under the
    /// chain's weighting; nothing under plain stake.
    pub fn weight(w: &Weighed, weighting: Weighting) -> String {
        let why = match (w.why, weighting) {
            (Why::Stake, _) => return String::new(),
            (Why::Age(age), _) => format!("age {age}"),
            (Why::Work { nonce: None, .. }, _) => "no nonce: weight = stake".into(),
            (Why::Work { zeros, .. }, Weighting::StakeWork { work_bits, .. })
                if zeros < work_bits =>
            {
                format!("work_bits {zeros}, below {work_bits}: weight = stake")
            }
            (Why::Work { zeros, .. }, _) => format!("work_bits {zeros}"),
        };
        format!(", weight {} ({why})", w.weight)
    }

    pub const BYE: &str = "bye\n";

    /// `what` is wrong at the stake prompt; says what is accepted.
    pub fn bad_stake(what: &str, max_stake: u64) -> String {
        format!(
            "error: {what}: enter a whole number of tokens from 1 to {max_stake}, 'resume <key>' or 'help'\n"
        )
    }

    /// `word` (escaped) is no command at the stake prompt.
    pub fn unknown_at_stake(word: &str, max_stake: u64) -> String {
        bad_stake(&format!("unknown command '{word}'"), max_stake)
    }

    /// `word` (escaped) is no command at the BPM prompt.
    pub fn unknown_command(word: &str) -> String {
        format!("error: unknown command '{word}', type help\n")
    }

    pub fn no_argument(command: &str) -> String {
        format!("error: '{command}' takes no argument, type help\n")
    }

    pub const RESUME_NEEDS_KEY: &str =
        "error: resume needs the 64-hex-digit key you were given at registration\n";
    pub const NO_SUCH_KEY: &str = "error: no validator has that key\n";

    pub fn chain_range() -> String {
        format!("error: chain takes a count from 1 to {CHAIN_MAX}\n")
    }

    pub fn registered(address: &Address, key: &str) -> String {
        format!(
            "Validator address: {address}\n\
             Validator key: {key} (keep it secret; reconnect with: resume {key})\n"
        )
    }

    /// `max_validators` records exist: no new ones until some are forgotten.
    pub fn validator_limit(max: u64) -> String {
        format!("error: validator limit reached ({max} validators); try again later, or resume <key> if you have one\n")
    }

    /// `registration_rate` from this source is used up for now.
    pub fn too_many_registrations(ip: std::net::IpAddr, wait: Duration) -> String {
        let wait = Duration::from_millis(wait.as_millis().max(1) as u64);
        format!(
            "error: too many registrations from {ip}, try again in {}\n",
            humantime::format_duration(wait)
        )
    }

    /// A cluster node that cannot reach a leader (SPEC §9); the connection stays.
    pub const NO_LEADER: &str = "error: no leader reachable, try another node\n";
    /// A node removed from its cluster (SPEC §13).
    pub const REMOVED: &str = "error: this node is not in the cluster, connect to another node\n";

    pub fn proposal_not_recorded(e: &dyn std::fmt::Display) -> String {
        format!("error: proposal not recorded: {e}\n")
    }

    pub fn could_not_register(e: &dyn std::fmt::Display) -> String {
        format!("error: could not register: {e}\n")
    }

    /// A resumed validator; `pending` is its proposal still in the round and
    /// the block that round makes.
    pub fn resumed(v: &Validator, pending: Option<(u32, u64)>) -> String {
        let mut text = format!(
            "Validator address: {}\nresumed: balance {}, {} won",
            v.address,
            count(v.balance, "token"),
            count(v.blocks_won, "block")
        );
        if let Some((bpm, block)) = pending {
            text.push_str(&format!("; proposal {bpm} stands for block {block}"));
        }
        text.push('\n');
        text
    }

    pub fn resume_slashed(address: &Address, reason: &str) -> String {
        format!("error: validator {address} was slashed: {reason}\n")
    }

    /// To the connection a `resume` elsewhere took the validator from.
    pub fn taken_over(address: &Address) -> String {
        format!("\nerror: validator {address} resumed on another connection; closing\n")
    }

    /// A proposal accepted for the round that makes `block`.
    /// `weight` is [`weight`]'s text.
    pub fn proposal(
        bpm: u32,
        block: u64,
        replaced: Option<u32>,
        weight: &str,
        left: Duration,
    ) -> String {
        let replaced = replaced.map_or(String::new(), |old| format!(" (replaces {old})"));
        format!(
            "proposal {bpm} for block {block}{replaced}{weight}; round ends in {}\n",
            secs(left)
        )
    }

    /// A malformed proposal while slashing is off.
    pub fn not_a_bpm(why: &str, max_bpm: u32) -> String {
        format!("error: {why}: enter a BPM from 0 to {max_bpm}, or 'help'\n")
    }

    pub fn slashed(reason: &str, address: &Address, forfeited: u64) -> String {
        format!(
            "error: {reason}\nvalidator {address} slashed: {} forfeited; closing\n",
            count(forfeited, "token")
        )
    }

    pub fn slash_not_stored(reason: &str, e: &dyn std::fmt::Display) -> String {
        format!("error: {reason}; the slashing could not be stored ({e}); closing\n")
    }

    pub fn balance(v: &Validator) -> String {
        format!(
            "balance: {}, blocks won: {}, status: {}\n",
            count(v.balance, "token"),
            v.blocks_won,
            v.status().as_str()
        )
    }

    pub const RECORD_MISSING: &str = "error: validator record missing\n";

    pub fn store_error(e: &dyn std::fmt::Display) -> String {
        format!("error: could not read the chain: {e}\n")
    }

    pub fn status(
        height: u64,
        left: Duration,
        candidates: usize,
        active: u64,
        slashed: u64,
    ) -> String {
        format!(
            "height: {height}, round ends in: {}, candidates: {candidates}, \
             validators: {active} active, {slashed} slashed\n",
            secs(left)
        )
    }

    pub fn stake_timeout(limit: Duration) -> String {
        format!(
            "\nerror: no stake within {}s; closing\n",
            limit.as_secs_f64()
        )
    }

    /// A registered validator silent for `idle_timeout`.
    pub fn idle_timeout(limit: Duration) -> String {
        format!(
            "\nerror: nothing received for {}s (idle_timeout); closing\n",
            limit.as_secs_f64()
        )
    }

    /// An unregistered connection closed to make room for a newcomer.
    pub const SHED: &str = "\nerror: connection limit reached and this connection has not registered; closing to make room\n";

    pub fn line_too_long(max: usize) -> String {
        format!("\nerror: line longer than {max} bytes; closing\n")
    }

    pub fn behind(missed: u64) -> String {
        format!("\nerror: {missed} announcements behind; closing\n")
    }

    pub const SHUTTING_DOWN: &str =
        "\nposd is shutting down; proposals not yet in a block are discarded\n";

    /// The round a half-closed client waited for ended without a block.
    pub const NO_BLOCK: &str = "\nno block this round\n";

    /// A committed block, to everyone.
    pub fn block(block: &Block) -> String {
        let winner = block.validator.map(|a| a.to_string()).unwrap_or_default();
        format!("winning validator: {winner}\n{}\n", block.to_json_line())
    }

    /// One slashing, to everyone; `None` if `v` is not slashed.
    pub fn slashing(v: &Validator) -> Option<String> {
        let s = v.slashed.as_ref()?;
        Some(format!(
            "slashed validator: {}: {} ({} forfeited)\n",
            v.address,
            s.reason,
            count(s.forfeited, "token")
        ))
    }

    /// Many slashings in one line, to everyone.
    pub fn slashings(count: u64) -> String {
        format!("slashed: {count} validators, see posctl validators --status slashed\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_stake: 1000,
        max_bpm: 200,
        weighting: Weighting::Stake,
    };

    /// Under stake_work a second number is the nonce: a decimal u64, or the
    /// proposal is malformed; other rules take no second number.
    #[test]
    fn work_proposals_carry_a_nonce() {
        let work = Limits {
            weighting: Weighting::StakeWork {
                work_bits: 20,
                work_bonus_max: 4,
            },
            ..LIMITS
        };
        let at_work = |text: &str| parse(Prompt::Bpm, &Line::Text(text.into()), work);
        assert_eq!(at_work("72 123"), Input::Work(72, 123));
        assert_eq!(
            at_work("72  18446744073709551615 "),
            Input::Work(72, u64::MAX)
        );
        assert_eq!(at_work("72"), Input::Bpm(72));
        for bad in [
            "72 -1",
            "72 1.5",
            "72 0x10",
            "72 18446744073709551616",
            "72 1 2",
            "300 1",
        ] {
            assert!(matches!(at_work(bad), Input::Malformed(_)), "{bad}");
        }
        let Input::Malformed(why) = at_work("72 abc") else {
            panic!("malformed")
        };
        assert!(why.contains("'abc' is not a nonce"), "{why}");
        assert!(matches!(at(Prompt::Bpm, "72 123"), Input::Malformed(_)));
        assert!(say::help(Prompt::Bpm, work).contains("'<bpm> <nonce>'"));
        assert!(!say::help(Prompt::Bpm, LIMITS).contains("lottery:"));
    }

    #[test]
    fn confirmations_name_the_weight_and_why() {
        use pos_core::weighting::{Weighed, Why};
        let work = Weighting::StakeWork {
            work_bits: 20,
            work_bonus_max: 4,
        };
        let w = |weight, why| Weighed { weight, why };
        let age = Weighting::StakeAge { age_window: 10 };
        assert_eq!(
            say::proposal(
                72,
                9,
                None,
                &say::weight(&w(300, Why::Age(2)), age),
                std::time::Duration::from_secs(12)
            ),
            "proposal 72 for block 9, weight 300 (age 2); round ends in 12.0s\n"
        );
        let mined = Why::Work {
            nonce: Some(5),
            zeros: 22,
        };
        assert_eq!(
            say::weight(&w(400, mined), work),
            ", weight 400 (work_bits 22)"
        );
        let short = Why::Work {
            nonce: Some(5),
            zeros: 3,
        };
        assert_eq!(
            say::weight(&w(100, short), work),
            ", weight 100 (work_bits 3, below 20: weight = stake)"
        );
        assert_eq!(say::weight(&w(100, Why::Stake), Weighting::Stake), "");
    }

    fn at(prompt: Prompt, text: &str) -> Input {
        parse(prompt, &Line::Text(text.into()), LIMITS)
    }

    #[test]
    fn stake_prompt() {
        assert_eq!(at(Prompt::Stake, " 1000 "), Input::Stake(1000));
        for bad in ["0", "-1", "1001", "1e3", "99999999999999999999999", "1.5"] {
            assert!(
                matches!(at(Prompt::Stake, bad), Input::BadStake(_)),
                "{bad}"
            );
        }
        assert_eq!(at(Prompt::Stake, "ten"), Input::Unknown("ten".into()));
        assert_eq!(
            at(Prompt::Stake, "balance"),
            Input::Unknown("balance".into())
        );
        assert_eq!(at(Prompt::Stake, "resume"), Input::Resume(None));
        assert_eq!(at(Prompt::Stake, "resume xyz"), Input::Resume(None));
        let key = "ab".repeat(32);
        assert_eq!(
            at(Prompt::Stake, &format!("resume {key}")),
            Input::Resume(Some(key.parse().unwrap()))
        );
        assert_eq!(at(Prompt::Stake, ""), Input::Empty);
        assert_eq!(at(Prompt::Stake, "QUIT"), Input::Quit);
        assert_eq!(at(Prompt::Stake, "Help"), Input::Help);
        assert_eq!(
            at(Prompt::Stake, &format!("Resume {}", key.to_uppercase())),
            Input::Resume(Some(key.parse().unwrap()))
        );
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
        assert_eq!(at(Prompt::Bpm, "BALANCE"), Input::Balance);
        assert_eq!(at(Prompt::Bpm, "Chain 3"), Input::Chain(Some(3)));
        for bad in [
            "201",
            "-1",
            "+-1",
            "72.5",
            ".5",
            "72,5",
            "72abc",
            "abc72",
            "7 2",
            "seventy-two",
            "１２",
        ] {
            assert!(matches!(at(Prompt::Bpm, bad), Input::Malformed(_)), "{bad}");
        }
        // Words are commands, known or not: never a proposal.
        for (word, shown) in [("seventy", "seventy"), ("resume x", "resume"), ("?", "?")] {
            assert_eq!(
                at(Prompt::Bpm, word),
                Input::Unknown(shown.into()),
                "{word}"
            );
        }
        assert_eq!(
            at(Prompt::Bpm, "Balance now"),
            Input::NoArgument("balance".into())
        );
        assert_eq!(at(Prompt::Bpm, "help 2"), Input::NoArgument("help".into()));
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
        let long = "7x".repeat(250);
        let Input::Malformed(why) = at(Prompt::Bpm, &long) else {
            panic!()
        };
        assert!(why.len() < 100, "{why}");
        assert_eq!(shown("a\tb"), "a\\tb");
    }
}
