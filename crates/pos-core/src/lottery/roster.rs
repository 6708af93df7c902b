//! A round's table of candidates and the draw over it in two passes: the
//! first (as the table is built, or over a table handed over) checks the
//! strict address order and sums the weights per block of [`BLOCK`]
//! candidates; the second finds the block the ticket falls in from those
//! sums and scans that block alone. A [`Roster`] keeps its memory from round
//! to round, so a large round does not fill fresh pages from the kernel.
//!
//! The winner is the first candidate whose running weight sum exceeds the
//! ticket, exactly as a scan of the whole table finds it: the block sums only
//! skip the blocks before it.

use super::{weigh_into, Candidate, LotteryError, RoundRecord, Rule, ShaStream};
use crate::digest::{Address, Digest};
use crate::weighting::{Weighed, Weighting};

/// Candidates per block of running sums: the second pass reads at most
/// n / BLOCK sums and one block.
pub const BLOCK: usize = 1024;

/// The weights' total and the running sum at the start of each block of
/// [`BLOCK`] candidates.
#[derive(Debug, Default, Clone)]
struct Sums {
    total: u128,
    starts: Vec<u128>,
    /// The total passed 2^128 (possible under a weighting, never for stakes).
    overflow: bool,
}

impl Sums {
    fn clear(&mut self) {
        self.total = 0;
        self.starts.clear();
        self.overflow = false;
    }

    /// Adds the weight of candidate `i`; candidates come in table order.
    #[inline]
    fn add(&mut self, i: usize, weight: u128) {
        if i.is_multiple_of(BLOCK) {
            self.starts.push(self.total);
        }
        // Branch-free: a round close adds a million of these in a row.
        let (total, overflowed) = self.total.overflowing_add(weight);
        self.total = total;
        self.overflow |= overflowed;
    }

    /// The ticket `seed` draws below the total and the winner's position,
    /// given candidate `i`'s weight by `weight`.
    fn pick(&self, seed: Digest, weight: impl Fn(usize) -> u128) -> (u128, usize) {
        let ticket = ShaStream::new(seed).below(self.total);
        (ticket, self.winner(ticket, weight))
    }

    /// The first candidate whose running sum exceeds `ticket` (< total):
    /// in the last block starting at or below the ticket.
    fn winner(&self, ticket: u128, weight: impl Fn(usize) -> u128) -> usize {
        let block = self.starts.partition_point(|&start| start <= ticket) - 1;
        let mut running = self.starts[block];
        (block * BLOCK..)
            .find(|&i| {
                running += weight(i);
                running > ticket
            })
            .expect("ticket < total, so this block holds a running sum above it")
    }
}

/// The memory a draw works in besides the table: kept by a [`Roster`].
#[derive(Debug, Default)]
struct Scratch {
    sums: Sums,
    weights: Vec<Weighed>,
    ages: Vec<u32>,
}

/// Which round a draw weighs: block `index` on `prev_hash` under
/// `weighting` (reading `history`, the previous rounds' records in
/// ascending order, under `stake_age`).
pub(crate) struct Round<'a> {
    pub prev_hash: &'a Digest,
    pub index: u64,
    pub weighting: Weighting,
    pub history: &'a [RoundRecord],
}

/// What a draw came to: its seed, ticket and winner's position.
pub(crate) type Drawn = (Digest, u128, usize);

/// The first pass over a table handed over whole: `None` unless it is in
/// strict address order (which rules out duplicates) and non-empty;
/// otherwise the stakes are summed into `sums` and the first candidate with
/// zero stake, if any, returned.
fn tally(candidates: &[Candidate], sums: &mut Sums) -> Option<Option<Address>> {
    sums.clear();
    let mut zero = None;
    let mut previous: Option<&Address> = None;
    for (i, c) in candidates.iter().enumerate() {
        if previous.is_some_and(|p| *p >= c.address) {
            return None;
        }
        previous = Some(&c.address);
        if c.stake == 0 && zero.is_none() {
            zero = Some(c.address);
        }
        sums.add(i, c.stake as u128);
    }
    previous?;
    Some(zero)
}

/// The second pass over a tallied table (strict order, no zero stake,
/// stakes in `scratch.sums`): under `stake` the pick from the stake sums;
/// otherwise the weights into `scratch.weights`, summed, then the pick.
fn settle(
    round: &Round<'_>,
    rule: &Rule,
    candidates: &[Candidate],
    nonces: &[Option<u64>],
    scratch: &mut Scratch,
) -> Result<Drawn, LotteryError> {
    let seed = rule.seed(&round.weighting, round.prev_hash, round.index);
    if round.weighting == Weighting::Stake {
        let (ticket, winner) = scratch.sums.pick(seed, |i| candidates[i].stake as u128);
        return Ok((seed, ticket, winner));
    }
    let Scratch {
        sums,
        weights,
        ages,
    } = scratch;
    weigh_into(weights, ages, round, candidates, nonces);
    sums.clear();
    for (i, w) in weights.iter().enumerate() {
        sums.add(i, w.weight);
    }
    if sums.overflow {
        return Err(LotteryError::Overflow);
    }
    let (ticket, winner) = sums.pick(seed, |i| weights[i].weight);
    Ok((seed, ticket, winner))
}

/// The draw of a stored table seeded by `rule`, replayed in place when it
/// is in strict address order: `None` when it is not (the caller then draws
/// a sorted copy, to say what differs); the weights recomputed are in `weights`.
pub(crate) fn replay_in_place(
    round: &Round<'_>,
    rule: &Rule,
    candidates: &[Candidate],
    nonces: &[Option<u64>],
    weights: &mut Vec<Weighed>,
) -> Option<Result<Drawn, LotteryError>> {
    let mut scratch = Scratch::default();
    if let Some(address) = tally(candidates, &mut scratch.sums)? {
        return Some(Err(LotteryError::ZeroStake(address)));
    }
    let drawn = settle(round, rule, candidates, nonces, &mut scratch);
    *weights = scratch.weights;
    Some(drawn)
}

/// A round's candidates, pushed as the proposals come (posd's are in
/// address order): each push checks the order and adds the stake to the
/// block sums, so the draw has only the pick left under `stake` (and the
/// weights under another rule). Candidates out of order are sorted at the
/// draw. [`Roster::recycle`] takes a drawn record's tables back, so the next
/// round fills memory already mapped.
#[derive(Debug, Default)]
pub struct Roster {
    candidates: Vec<Candidate>,
    /// Empty (no nonces) or one per candidate.
    nonces: Vec<Option<u64>>,
    scratch: Scratch,
    /// Some push came at or before the previous one in address order.
    unordered: bool,
    /// The first candidate pushed with zero stake.
    zero: Option<Address>,
}

impl Extend<(Candidate, Option<u64>)> for Roster {
    /// Adds candidates with their nonces, in one loop whose state stays in
    /// registers: a round close pushes every proposal in a row.
    fn extend<I: IntoIterator<Item = (Candidate, Option<u64>)>>(&mut self, items: I) {
        let Roster {
            candidates,
            nonces,
            scratch,
            unordered,
            zero,
        } = self;
        let items = items.into_iter();
        candidates.reserve(items.size_hint().0);
        for (candidate, nonce) in items {
            let i = candidates.len();
            if candidates
                .last()
                .is_some_and(|p| p.address >= candidate.address)
            {
                *unordered = true;
            }
            if candidate.stake == 0 && zero.is_none() {
                *zero = Some(candidate.address);
            }
            if nonce.is_some() && nonces.is_empty() {
                nonces.resize(i, None);
            }
            if !nonces.is_empty() || nonce.is_some() {
                nonces.push(nonce);
            }
            scratch.sums.add(i, candidate.stake as u128);
            candidates.push(candidate);
        }
    }
}

impl Roster {
    pub fn new() -> Self {
        Roster::default()
    }

    /// A roster of a table handed over whole, with its nonces (empty:
    /// none), tallied in one pass.
    pub(crate) fn of(candidates: Vec<Candidate>, nonces: Vec<Option<u64>>) -> Self {
        let mut roster = Roster {
            candidates,
            nonces,
            ..Roster::default()
        };
        roster.retally();
        roster
    }

    /// Adds a candidate with the nonce it proposed with (`stake_work`).
    pub fn push(&mut self, candidate: Candidate, nonce: Option<u64>) {
        self.extend([(candidate, nonce)]);
    }

    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Empties the roster for the next round, keeping its memory.
    pub fn clear(&mut self) {
        self.candidates.clear();
        self.nonces.clear();
        self.scratch.sums.clear();
        self.unordered = false;
        self.zero = None;
    }

    /// Takes back the tables of a record this roster drew (or any other),
    /// so the next round reuses their memory.
    pub fn recycle(&mut self, record: RoundRecord) {
        let RoundRecord {
            mut candidates,
            mut weights,
            ..
        } = record;
        if candidates.capacity() > self.candidates.capacity() {
            candidates.clear();
            candidates.append(&mut self.candidates);
            self.candidates = candidates;
        }
        if weights.capacity() > self.scratch.weights.capacity() {
            weights.clear();
            self.scratch.weights = weights;
        }
    }

    /// Draws the proposer of block `index` on top of `prev_hash`, seeded by
    /// `rule`, weighed by `weighting` (reading `history`, the previous
    /// rounds' records in ascending order, under `stake_age`). The roster
    /// is empty afterwards, whatever the outcome.
    pub fn draw(
        &mut self,
        prev_hash: &Digest,
        index: u64,
        rule: Rule,
        weighting: Weighting,
        history: &[RoundRecord],
    ) -> Result<RoundRecord, LotteryError> {
        let round = Round {
            prev_hash,
            index,
            weighting,
            history,
        };
        let drawn = self.settle(&round, &rule);
        let record = drawn.map(|(seed, ticket, winner)| RoundRecord {
            index,
            seed,
            candidates: std::mem::take(&mut self.candidates),
            ticket,
            winner,
            rule,
            weighting,
            weights: match weighting {
                Weighting::Stake => Vec::new(),
                _ => std::mem::take(&mut self.scratch.weights),
            },
        });
        self.clear();
        record
    }

    /// Sorts a table pushed out of order (duplicates are then neighbours)
    /// and tallies it, or the first zero stake, before the pick.
    fn settle(&mut self, round: &Round<'_>, rule: &Rule) -> Result<Drawn, LotteryError> {
        if self.candidates.is_empty() {
            return Err(LotteryError::NoCandidates);
        }
        if self.unordered {
            self.sort()?;
        }
        if let Some(address) = self.zero {
            return Err(LotteryError::ZeroStake(address));
        }
        settle(
            round,
            rule,
            &self.candidates,
            &self.nonces,
            &mut self.scratch,
        )
    }

    fn sort(&mut self) -> Result<(), LotteryError> {
        if self.nonces.is_empty() {
            self.candidates.sort_unstable_by_key(|c| c.address);
        } else {
            let mut pairs: Vec<_> = self
                .candidates
                .drain(..)
                .zip(self.nonces.drain(..))
                .collect();
            pairs.sort_unstable_by_key(|(c, _)| c.address);
            (self.candidates, self.nonces) = pairs.into_iter().unzip();
        }
        if let Some(w) = self
            .candidates
            .windows(2)
            .find(|w| w[0].address == w[1].address)
        {
            return Err(LotteryError::Duplicate(w[0].address));
        }
        self.retally();
        Ok(())
    }

    /// The first pass again over the whole table.
    fn retally(&mut self) {
        let tallied = tally(&self.candidates, &mut self.scratch.sums);
        self.unordered = tallied.is_none();
        self.zero = tallied.flatten();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lottery::{draw, draw_weighted, Ballot};

    fn cand(i: u64, stake: u64) -> Candidate {
        Candidate {
            address: Address(Digest::of(&i.to_be_bytes())),
            stake,
            bpm: (i % 200) as u32,
        }
    }

    /// A total past 2^128 is flagged (and stays flagged until cleared),
    /// whatever the additions after it.
    #[test]
    fn sums_flag_an_overflow() {
        let mut sums = Sums::default();
        sums.add(0, u128::MAX - 1);
        sums.add(1, 1);
        assert!(!sums.overflow);
        sums.add(2, 1);
        sums.add(3, 5);
        assert!(sums.overflow);
        sums.clear();
        assert!(!sums.overflow && sums.total == 0);
    }

    /// `n` candidates in address order with stakes 1 to 1000.
    fn table(n: u64) -> Vec<Candidate> {
        let mut v: Vec<_> = (0..n).map(|i| cand(i, 1 + i * 7919 % 1000)).collect();
        v.sort_unstable_by_key(|c| c.address);
        v
    }

    /// The winner by a scan of the whole table, as the module docs define it.
    fn scanned(candidates: &[Candidate], ticket: u128) -> usize {
        let mut running = 0u128;
        candidates
            .iter()
            .position(|c| {
                running += c.stake as u128;
                running > ticket
            })
            .unwrap()
    }

    /// The pick through block sums finds the scan's winner, wherever the
    /// ticket falls: inside blocks and at their edges.
    #[test]
    fn block_sums_find_the_scans_winner() {
        let cands = table(5 * BLOCK as u64 + 3);
        let mut sums = Sums::default();
        assert_eq!(tally(&cands, &mut sums), Some(None));
        assert_eq!(sums.starts.len(), 6);
        let stake = |i: usize| cands[i].stake as u128;
        for index in 0..200u64 {
            let seed = Digest::of(&index.to_be_bytes());
            let (ticket, winner) = sums.pick(seed, stake);
            assert_eq!(ticket, ShaStream::new(seed).below(sums.total));
            assert_eq!(winner, scanned(&cands, ticket));
        }
        // Tickets at each block's first and last unit go to its first and last candidate.
        let mut ends = sums.starts[1..].to_vec();
        ends.push(sums.total);
        for (b, (&start, &end)) in sums.starts.iter().zip(&ends).enumerate() {
            let last = ((b + 1) * BLOCK).min(cands.len()) - 1;
            for (ticket, first_or_last) in [(start, b * BLOCK), (end - 1, last)] {
                assert_eq!(scanned(&cands, ticket), first_or_last);
                assert_eq!(sums.winner(ticket, stake), first_or_last);
            }
        }
        let all: u128 = cands.iter().map(|c| c.stake as u128).sum();
        assert_eq!(sums.total, all);
    }

    /// A roster pushed in order, reused across rounds, draws what
    /// `draw_weighted` draws from the same table, under every rule.
    #[test]
    fn a_reused_roster_draws_as_a_fresh_table() {
        let prev = Digest::of(b"roster");
        let cands = table(3 * BLOCK as u64);
        let history: Vec<_> = (1..=3u64)
            .map(|i| draw(&prev, i, Rule::V1, cands[i as usize..].to_vec()).unwrap())
            .collect();
        let rules = [
            Weighting::Stake,
            Weighting::StakeAge { age_window: 2 },
            Weighting::StakeWork {
                work_bits: 1,
                work_bonus_max: 3,
            },
        ];
        let mut roster = Roster::new();
        for round in 0..6u64 {
            let weighting = rules[round as usize % 3];
            let nonces: Vec<_> = (0..cands.len() as u64)
                .map(|n| (n % 3 != 0).then_some(n + round))
                .collect();
            for (c, &nonce) in cands.iter().zip(&nonces) {
                roster.push(c.clone(), nonce);
            }
            assert_eq!(roster.len(), cands.len());
            let rule = Rule::V2 {
                reveal: crate::Secret([round as u8; 32]),
                next_commitment: Digest::default(),
            };
            let drawn = roster
                .draw(&prev, 4, rule.clone(), weighting, &history)
                .unwrap();
            assert!(roster.is_empty());
            let ballot = Ballot {
                weighting,
                candidates: cands.clone(),
                nonces,
                history: &history,
            };
            let fresh = draw_weighted(&prev, 4, rule.clone(), ballot).unwrap();
            assert_eq!(drawn, fresh);
            drawn
                .replay_after(&prev, Some(&rule.reveal().unwrap().commitment()), &history)
                .unwrap();
            let table = drawn.candidates.as_ptr();
            roster.recycle(drawn);
            // The next round fills the same memory.
            roster.push(cands[0].clone(), None);
            assert_eq!(roster.candidates.as_ptr(), table);
            roster.clear();
        }
    }

    /// Pushes out of order are sorted at the draw; duplicates and zero
    /// stakes are refused as a whole table's are, and the roster is empty after.
    #[test]
    fn pushes_out_of_order_are_sorted_or_refused() {
        let prev = Digest::of(b"order");
        let cands = table(BLOCK as u64 + 10);
        let mut roster = Roster::new();
        for c in cands.iter().rev() {
            roster.push(c.clone(), None);
        }
        let r = roster
            .draw(&prev, 2, Rule::V1, Weighting::Stake, &[])
            .unwrap();
        assert_eq!(r, draw(&prev, 2, Rule::V1, cands.clone()).unwrap());
        let refused = |pushes: &[Candidate]| {
            let mut roster = Roster::new();
            for c in pushes {
                roster.push(c.clone(), None);
            }
            let out = roster.draw(&prev, 2, Rule::V1, Weighting::Stake, &[]);
            assert!(roster.is_empty());
            out.unwrap_err()
        };
        let (a, b) = (cands[0].clone(), cands[1].clone());
        assert_eq!(refused(&[]), LotteryError::NoCandidates);
        assert_eq!(
            refused(&[a.clone(), b.clone(), a.clone()]),
            LotteryError::Duplicate(a.address)
        );
        let broke = Candidate {
            stake: 0,
            ..b.clone()
        };
        assert_eq!(
            refused(&[a.clone(), broke.clone()]),
            LotteryError::ZeroStake(b.address)
        );
        assert_eq!(refused(&[broke, a]), LotteryError::ZeroStake(b.address));
    }
}
