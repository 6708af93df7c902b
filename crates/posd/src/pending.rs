//! This round's proposals: memory only, one per validator, newest wins.
//! A restart or shutdown discards them (and says so in the log). Kept in
//! address order, the lottery's order, so closing a round never sorts.

use pos_core::Address;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Pending {
    map: Mutex<BTreeMap<Address, u32>>,
}

impl Pending {
    /// Records `bpm` as the validator's proposal, replacing an older one.
    pub fn propose(&self, address: Address, bpm: u32) {
        self.lock().insert(address, bpm);
    }

    pub fn withdraw(&self, address: &Address) {
        self.lock().remove(address);
    }

    /// Ends the round: hands over every proposal and starts an empty set.
    pub fn take(&self) -> BTreeMap<Address, u32> {
        std::mem::take(&mut *self.lock())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Address, u32>> {
        // A panic while holding this lock leaves a plain map behind: still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
