//! The adversary of issue 11: several validators that compute what they can
//! before a round closes and withdraw (hang up) the ones whose proposals
//! would let someone else win; and a tally of how well that works.

use pos_core::lottery::{draw, Candidate, Rule, Secret};
use pos_core::{Address, Digest};

/// Everything public when a round is about to close. The secret of the
/// round is not here: nothing the adversary sees holds it.
pub struct View<'a> {
    pub prev_hash: Digest,
    /// The block the round makes.
    pub index: u64,
    /// Whether the chain draws by lottery v2.
    pub v2: bool,
    /// The last secret revealed (v2), public since its round closed.
    pub last_reveal: Option<Secret>,
    /// The other validators' proposals.
    pub honest: &'a [Candidate],
    /// The adversary's own.
    pub mine: &'a [Candidate],
}

impl View<'_> {
    /// The seed rule the adversary computes with: exact under v1; under v2
    /// the formula with its best guess, the last revealed secret.
    fn rule(&self) -> Rule {
        match self.v2 {
            false => Rule::V1,
            true => Rule::V2 {
                reveal: self.last_reveal.unwrap_or(Secret([0; 32])),
                next_commitment: Digest::default(),
            },
        }
    }

    /// The winner the adversary expects if it keeps `kept`.
    fn expected(&self, kept: &[Candidate]) -> Address {
        let all = [self.honest, kept].concat();
        let round = draw(&self.prev_hash, self.index, self.rule(), all).expect("valid candidates");
        round.winner().address
    }
}

/// Which of its proposals the adversary keeps, and the winner it predicts:
/// the largest subset it expects to win with (looking as present as it
/// can), or all of them when it expects none to win.
pub fn steer(view: &View) -> (Vec<Candidate>, Address) {
    let mine = view.mine;
    let is_mine = |a: Address| mine.iter().any(|c| c.address == a);
    let mut masks: Vec<u32> = (1..1u32 << mine.len()).collect();
    masks.sort_by_key(|m| std::cmp::Reverse(m.count_ones()));
    for mask in masks {
        let kept: Vec<Candidate> = (0..mine.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| mine[i].clone())
            .collect();
        let winner = view.expected(&kept);
        if is_mine(winner) {
            return (kept, winner);
        }
    }
    (mine.to_vec(), view.expected(mine))
}

/// The adversary's wins and predictions against what chance gives it.
#[derive(Debug, Default)]
pub struct Tally {
    pub rounds: u64,
    pub wins: u64,
    /// Sum over rounds of the adversary's share of the candidates' stake.
    pub expected_wins: f64,
    wins_variance: f64,
    pub predicted: u64,
    /// Sum over rounds of the predicted candidate's stake share: the odds of
    /// naming that candidate blindly.
    pub expected_predicted: f64,
    predicted_variance: f64,
}

impl Tally {
    /// Counts one round drawn among `candidates`.
    pub fn record(
        &mut self,
        candidates: &[Candidate],
        winner: Address,
        adversary: &[Address],
        prediction: Address,
    ) {
        let total: u64 = candidates.iter().map(|c| c.stake).sum();
        let share = |pred: &dyn Fn(&Address) -> bool| {
            let s: u64 = candidates
                .iter()
                .filter(|c| pred(&c.address))
                .map(|c| c.stake)
                .sum();
            s as f64 / total as f64
        };
        let p_win = share(&|a| adversary.contains(a));
        let p_guess = share(&|a| *a == prediction);
        self.rounds += 1;
        self.expected_wins += p_win;
        self.wins_variance += p_win * (1.0 - p_win);
        self.expected_predicted += p_guess;
        self.predicted_variance += p_guess * (1.0 - p_guess);
        self.wins += u64::from(adversary.contains(&winner));
        self.predicted += u64::from(winner == prediction);
    }

    pub fn win_share(&self) -> f64 {
        self.wins as f64 / self.rounds as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.predicted as f64 / self.rounds as f64
    }

    /// Standard deviations of the wins from what the kept stake predicts.
    pub fn z_wins(&self) -> f64 {
        z(self.wins, self.expected_wins, self.wins_variance)
    }

    /// Standard deviations of the right predictions from blind guessing.
    pub fn z_predicted(&self) -> f64 {
        z(
            self.predicted,
            self.expected_predicted,
            self.predicted_variance,
        )
    }

    /// Whether the wins stay below `share` of the rounds plus 4.5 standard
    /// deviations of a fair lottery (p < 1e-5 that a fair one fails this).
    pub fn within_share(&self, share: f64) -> bool {
        let n = self.rounds as f64;
        (self.wins as f64) < n * share + 4.5 * (n * share * (1.0 - share)).sqrt()
    }

    /// One line with every figure, as docs/LOTTERY.md records them.
    pub fn summary(&self, label: &str) -> String {
        format!(
            "{label}: {} rounds; adversary (50% of the stake) won {} ({:.1}%; the stake it kept \
             predicts {:.1}%, {:+.1} sigma); predicted the winner {} times ({:.1}%; naming that \
             candidate blindly: {:.1}%, {:+.1} sigma)",
            self.rounds,
            self.wins,
            100.0 * self.win_share(),
            100.0 * self.expected_wins / self.rounds as f64,
            self.z_wins(),
            self.predicted,
            100.0 * self.accuracy(),
            100.0 * self.expected_predicted / self.rounds as f64,
            self.z_predicted(),
        )
    }
}

fn z(got: u64, expected: f64, variance: f64) -> f64 {
    (got as f64 - expected) / variance.sqrt().max(f64::MIN_POSITIVE)
}
