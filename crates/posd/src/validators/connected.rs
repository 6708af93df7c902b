//! Which validators have a live connection: at most one each. A `resume` on a
//! new connection takes the validator over; the old session is told to go.

use pos_core::Address;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The session speaking for a validator now.
#[derive(Debug)]
struct Holder {
    id: u64,
    /// Cancelled when another session takes the validator over.
    taken_over: CancellationToken,
}

#[derive(Debug, Default)]
pub struct Connected {
    map: Mutex<HashMap<Address, Holder>>,
    next_id: AtomicU64,
    /// When each validator's last connection ended, for `forget_after`;
    /// pruned by [`Connected::seen_since`]'s caller through [`Connected::prune_left`].
    left: Mutex<HashMap<Address, Instant>>,
}

/// Proof that a session speaks for a validator; dropping it frees the address
/// (unless another session has taken it over since).
#[derive(Debug)]
pub struct Claim {
    registry: Arc<Connected>,
    id: u64,
    pub address: Address,
    taken_over: CancellationToken,
}

impl Connected {
    /// Claims `address` for one session. A session holding it already is
    /// told (its [`Claim::taken_over`] fires) and loses it; the second value
    /// says whether that happened.
    pub fn claim(self: &Arc<Self>, address: Address) -> (Claim, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let taken_over = CancellationToken::new();
        let holder = Holder {
            id,
            taken_over: taken_over.clone(),
        };
        let previous = self.lock().insert(address, holder);
        if let Some(old) = &previous {
            old.taken_over.cancel();
        }
        let claim = Claim {
            registry: Arc::clone(self),
            id,
            address,
            taken_over,
        };
        (claim, previous.is_some())
    }

    pub fn is_connected(&self, address: &Address) -> bool {
        self.lock().contains_key(address)
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Whether the validator is connected now or was at any time since `since`.
    pub fn seen_since(&self, address: &Address, since: Instant) -> bool {
        self.is_connected(address) || self.left().get(address).is_some_and(|at| *at >= since)
    }

    /// Forgets departures before `before`: they no longer matter to [`Connected::seen_since`].
    pub fn prune_left(&self, before: Instant) {
        self.left().retain(|_, at| *at >= before);
    }

    fn left(&self) -> std::sync::MutexGuard<'_, HashMap<Address, Instant>> {
        self.left.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Address, Holder>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes `claim`'s entry if it still holds the address; runs `last`
    /// under the same lock, so no takeover can slip in between.
    fn remove(&self, claim: &Claim, last: impl FnOnce(&Address)) {
        let mut map = self.lock();
        if map.get(&claim.address).is_some_and(|h| h.id == claim.id) {
            map.remove(&claim.address);
            self.left().insert(claim.address, Instant::now());
            last(&claim.address);
        }
    }
}

impl Claim {
    /// Fires when another session takes this validator over.
    pub fn taken_over(&self) -> CancellationToken {
        self.taken_over.clone()
    }

    /// Frees the address and runs `last` (e.g. withdrawing the proposal),
    /// unless another session has taken the validator over: what it left
    /// behind is then the new session's.
    pub fn release(self, last: impl FnOnce(&Address)) {
        self.registry.remove(&self, last);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.registry.remove(self, |_| {});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::Digest;

    #[test]
    fn a_second_claim_takes_over_and_the_first_release_is_a_no_op() {
        let reg = Arc::new(Connected::default());
        let a = Address(Digest([1; 32]));
        let (first, took) = reg.claim(a);
        assert!(!took && !first.taken_over().is_cancelled());
        let (second, took) = reg.claim(a);
        assert!(took && first.taken_over().is_cancelled());
        assert_eq!(reg.count(), 1);
        let mut ran = false;
        first.release(|_| ran = true);
        assert!(!ran && reg.is_connected(&a));
        second.release(|_| ran = true);
        assert!(ran && !reg.is_connected(&a));
    }
}
