//! Validator records and the rules that change them. The store applies these
//! inside its transactions; nothing here touches a disk.

use crate::digest::Address;
use serde::{Deserialize, Serialize};

/// Why a ledger change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("stake must be a whole number from 1 to {max}")]
    StakeOutOfRange { max: u64 },
    #[error("validator {0} is already registered")]
    AlreadyRegistered(Address),
    #[error("validator {0} is not registered")]
    Unknown(Address),
    #[error("validator {0} is slashed")]
    Slashed(Address),
    #[error("balance of {0} would overflow")]
    Overflow(Address),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Active,
    Slashed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Slashed => "slashed",
        }
    }
}

/// When and why a validator lost its stake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashInfo {
    pub at_ms: u64,
    pub reason: String,
    /// The balance it had, which is gone.
    pub forfeited: u64,
}

/// One validator as stored. The key is never here: only its hash, the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub address: Address,
    /// Tokens at stake; the lottery weight. Grows by the reward per block won.
    pub balance: u64,
    pub registered_at_ms: u64,
    pub blocks_won: u64,
    /// Set once, never cleared: a slashed validator stays slashed.
    pub slashed: Option<SlashInfo>,
}

impl Validator {
    /// A new validator staking `stake`, if the address is free and the stake allowed.
    pub fn register(
        existing: Option<&Validator>,
        address: Address,
        stake: u64,
        max_stake: u64,
        at_ms: u64,
    ) -> Result<Validator, LedgerError> {
        if stake == 0 || stake > max_stake {
            return Err(LedgerError::StakeOutOfRange { max: max_stake });
        }
        if existing.is_some() {
            return Err(LedgerError::AlreadyRegistered(address));
        }
        Ok(Validator {
            address,
            balance: stake,
            registered_at_ms: at_ms,
            blocks_won: 0,
            slashed: None,
        })
    }

    pub fn status(&self) -> Status {
        if self.slashed.is_some() {
            Status::Slashed
        } else {
            Status::Active
        }
    }

    pub fn ensure_active(&self) -> Result<(), LedgerError> {
        match self.status() {
            Status::Active => Ok(()),
            Status::Slashed => Err(LedgerError::Slashed(self.address)),
        }
    }

    /// Forfeits the whole stake; a slashed validator can never win again.
    pub fn slash(&mut self, at_ms: u64, reason: String) -> Result<(), LedgerError> {
        self.ensure_active()?;
        self.slashed = Some(SlashInfo {
            at_ms,
            reason,
            forfeited: self.balance,
        });
        self.balance = 0;
        Ok(())
    }

    /// Whether a won block's `reward` fits the balance. One that does not is
    /// no lottery candidate, so its overflow never fails a round for everyone.
    pub fn can_take(&self, reward: u64) -> bool {
        self.balance.checked_add(reward).is_some()
    }

    /// Credits a won block.
    pub fn reward(&mut self, amount: u64) -> Result<(), LedgerError> {
        self.ensure_active()?;
        if !self.can_take(amount) {
            return Err(LedgerError::Overflow(self.address));
        }
        self.balance += amount;
        self.blocks_won += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn addr() -> Address {
        Address(Digest::of(b"v"))
    }

    #[test]
    fn register_checks_range_and_uniqueness() {
        let max = 1000;
        for bad in [0, 1001] {
            assert_eq!(
                Validator::register(None, addr(), bad, max, 0),
                Err(LedgerError::StakeOutOfRange { max })
            );
        }
        let v = Validator::register(None, addr(), 1000, max, 5).unwrap();
        assert_eq!((v.balance, v.status()), (1000, Status::Active));
        assert_eq!(
            Validator::register(Some(&v), addr(), 1, max, 6),
            Err(LedgerError::AlreadyRegistered(addr()))
        );
    }

    #[test]
    fn slash_forfeits_and_sticks() {
        let mut v = Validator::register(None, addr(), 40, 100, 0).unwrap();
        v.reward(2).unwrap();
        v.slash(9, "bad".into()).unwrap();
        assert_eq!(v.balance, 0);
        assert_eq!(v.slashed.as_ref().unwrap().forfeited, 42);
        assert_eq!(v.status(), Status::Slashed);
        assert_eq!(
            v.slash(10, "again".into()),
            Err(LedgerError::Slashed(addr()))
        );
        assert_eq!(v.reward(1), Err(LedgerError::Slashed(addr())));
    }

    #[test]
    fn reward_counts_and_refuses_overflow() {
        let mut v = Validator::register(None, addr(), u64::MAX - 1, u64::MAX, 0).unwrap();
        assert!(v.can_take(1) && !v.can_take(2));
        assert_eq!(v.reward(2), Err(LedgerError::Overflow(addr())));
        assert_eq!((v.balance, v.blocks_won), (u64::MAX - 1, 0));
        v.balance = 1;
        v.reward(1).unwrap();
        assert_eq!((v.balance, v.blocks_won), (2, 1));
    }
}
