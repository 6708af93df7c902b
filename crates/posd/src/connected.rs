//! Which validators have a live connection: at most one each.

use pos_core::Address;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Connected {
    set: Mutex<HashSet<Address>>,
}

/// Proof that a session speaks for a validator; dropping it frees the address.
#[derive(Debug)]
pub struct Claim {
    registry: Arc<Connected>,
    pub address: Address,
}

impl Connected {
    /// Claims `address` for one session, or `None` if another session holds it.
    pub fn claim(self: &Arc<Self>, address: Address) -> Option<Claim> {
        self.lock().insert(address).then(|| Claim {
            registry: Arc::clone(self),
            address,
        })
    }

    pub fn is_connected(&self, address: &Address) -> bool {
        self.lock().contains(address)
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Address>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::Digest;

    #[test]
    fn one_claim_per_address_until_dropped() {
        let reg = Arc::new(Connected::default());
        let a = Address(Digest([1; 32]));
        let first = reg.claim(a).unwrap();
        assert!(reg.claim(a).is_none());
        assert_eq!(reg.count(), 1);
        drop(first);
        assert!(!reg.is_connected(&a));
        assert!(reg.claim(a).is_some());
    }
}
