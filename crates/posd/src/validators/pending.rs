//! This round's proposals: memory only, one per validator, newest wins.
//! A restart or shutdown discards them (and says so in the log). Kept in
//! address order, the lottery's order, so closing a round never sorts.
//!
//! Rounds are numbered from 0 at start; the writer's `take` ends one. Each
//! take is followed by exactly one round result from the announcer, in the
//! same order, so the announcer's n-th result is round n's (see `announce`).
//!
//! A cluster node also knows which block the open round makes: there a
//! proposal names it, so that one sent twice stands in no later round.

use pos_core::Address;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A round's number since posd started.
pub type RoundId = u64;

/// A validator's proposal: its BPM and, under `stake_work`, its nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub bpm: u32,
    pub nonce: Option<u64>,
}

#[derive(Debug, Default)]
struct Round {
    id: RoundId,
    proposals: BTreeMap<Address, Proposal>,
    /// The block this round makes, as the applied chain says (a cluster
    /// node's replica moves it on; standalone nothing reads it).
    block: u64,
}

#[derive(Debug, Default)]
pub struct Pending {
    round: Mutex<Round>,
}

/// A proposal as recorded: the round it is in and what it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposed {
    pub round: RoundId,
    pub replaced: Option<u32>,
}

impl Pending {
    /// No proposals yet; the open round makes block `block`.
    pub fn opening(block: u64) -> Self {
        Pending {
            round: Mutex::new(Round {
                block,
                ..Round::default()
            }),
        }
    }

    /// The block the open round makes.
    pub fn block(&self) -> u64 {
        self.lock().block
    }

    /// Records the proposal if it was made for the open round (the round
    /// that makes `block`); `None` once that round has closed.
    pub fn propose_for(
        &self,
        address: Address,
        bpm: u32,
        nonce: Option<u64>,
        block: u64,
    ) -> Option<Proposed> {
        let mut round = self.lock();
        (round.block == block).then(|| Self::insert(&mut round, address, Proposal { bpm, nonce }))
    }

    /// Records `bpm` as the validator's proposal, replacing an older one.
    pub fn propose(&self, address: Address, bpm: u32) -> Proposed {
        self.propose_work(address, bpm, None)
    }

    /// Records `bpm` with `nonce` (`stake_work`) as the validator's proposal.
    pub fn propose_work(&self, address: Address, bpm: u32, nonce: Option<u64>) -> Proposed {
        Self::insert(&mut self.lock(), address, Proposal { bpm, nonce })
    }

    fn insert(round: &mut Round, address: Address, proposal: Proposal) -> Proposed {
        Proposed {
            round: round.id,
            replaced: round.proposals.insert(address, proposal).map(|p| p.bpm),
        }
    }

    /// The validator's proposal in the open round, if any.
    pub fn get(&self, address: &Address) -> Option<(u32, RoundId)> {
        let round = self.lock();
        round.proposals.get(address).map(|p| (p.bpm, round.id))
    }

    pub fn withdraw(&self, address: &Address) {
        self.lock().proposals.remove(address);
    }

    /// Ends the round: hands over every proposal and opens the next round.
    pub fn take(&self) -> BTreeMap<Address, Proposal> {
        let mut round = self.lock();
        round.id += 1;
        std::mem::take(&mut round.proposals)
    }

    /// [`Pending::take`], and the next round makes block `block`.
    pub fn take_opening(&self, block: u64) -> BTreeMap<Address, Proposal> {
        let mut round = self.lock();
        round.id += 1;
        round.block = block;
        std::mem::take(&mut round.proposals)
    }

    /// A copy of the open round's proposals, for readers outside the writer.
    pub fn snapshot(&self) -> BTreeMap<Address, Proposal> {
        self.lock().proposals.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().proposals.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Round> {
        // A panic while holding this lock leaves a plain map behind: still usable.
        self.round.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::Digest;

    #[test]
    fn proposals_know_their_round_and_what_they_replaced() {
        let p = Pending::default();
        let a = Address(Digest([1; 32]));
        assert_eq!(
            p.propose(a, 60),
            Proposed {
                round: 0,
                replaced: None
            }
        );
        assert_eq!(
            p.propose(a, 72),
            Proposed {
                round: 0,
                replaced: Some(60)
            }
        );
        assert_eq!(p.get(&a), Some((72, 0)));
        assert_eq!(p.take().get(&a).map(|p| p.bpm), Some(72));
        assert_eq!(p.get(&a), None);
        assert_eq!(
            p.propose(a, 80),
            Proposed {
                round: 1,
                replaced: None
            }
        );
    }

    #[test]
    fn a_proposal_for_a_closed_round_is_dropped() {
        let p = Pending::opening(9);
        let a = Address(Digest([1; 32]));
        assert_eq!(p.propose_for(a, 60, None, 9).map(|p| p.round), Some(0));
        assert_eq!(p.take_opening(10).get(&a).map(|p| p.bpm), Some(60));
        // The same proposal again, after its round made block 9.
        assert_eq!(p.propose_for(a, 60, None, 9), None);
        assert_eq!(p.get(&a), None);
        assert_eq!(p.propose_for(a, 61, None, 10).map(|p| p.round), Some(1));
    }
}
