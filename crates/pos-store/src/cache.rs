//! Every validator, decoded, in memory: a round's close reads each of its
//! candidates twice (the proposer's check, then pos-core's re-check inside
//! the apply), and from sled each read is a lookup, a copy and a decode.
//!
//! The cache is filled whole when the store opens (one scan of the tree), so
//! it is authoritative: a miss means "not registered". It changes in two
//! ways only, both under its write lock. An apply's transaction records its
//! own validator writes in an [`Overlay`], which reaches the cache only after
//! sled committed the transaction (an aborted or retried run leaves it
//! untouched); applies are serialized, so the cache takes them in commit
//! order. Anything else that rewrites the tree (an import, a snapshot's
//! install) reloads it. Readers thus see each validator as of some committed
//! apply, never a write that sled might still undo.

use crate::codec::decode;
use crate::layout::VALIDATORS;
use crate::locks::{read, write};
use crate::StoreError;
use pos_core::{Address, Validator};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

/// Set entries a walk may step over per address looked up before single
/// lookups are cheaper (a lookup descends several nodes, mostly cache misses).
const WALK_PER_ADDRESS: usize = 8;

/// The decoded validators, ordered by their own address (no second copy of
/// it). Ordered rather than hashed: a round's candidates are read in address
/// order, twice, and neighbours share a node (fewer cache misses than a hash
/// table's scattered buckets); built from the tree's scan, it takes about 100
/// bytes per validator (a hash set 130-200).
pub(crate) struct Validators(RwLock<BTreeSet<Cached>>);

impl Validators {
    /// Every validator in `tree`.
    pub(crate) fn load(tree: &sled::Tree) -> Result<Validators, StoreError> {
        Ok(Validators(RwLock::new(scan(tree)?)))
    }

    /// Replaces the whole cache with `tree`'s validators, after something
    /// other than an apply rewrote it.
    pub(crate) fn reload(&self, tree: &sled::Tree) -> Result<(), StoreError> {
        *write(&self.0) = scan(tree)?;
        Ok(())
    }

    pub(crate) fn get(&self, address: &Address) -> Option<Validator> {
        read(&self.0).get(address).map(|c| c.0.clone())
    }

    /// Hands `each` the validator at every one of `addresses`, in order,
    /// by reference: a round's candidates, 10,000 of them twice a round,
    /// neither copied nor collected. They come in strictly increasing
    /// address order and are most of the set: then one walk along the set
    /// finds them all, each step to a neighbour, rather than a descent from
    /// the root per address (10,000 of those were a quarter of a round's
    /// close).
    pub(crate) fn each_at<'a>(
        &self,
        addresses: impl ExactSizeIterator<Item = &'a Address> + Clone,
        mut each: impl FnMut(&Address, Option<&Validator>),
    ) {
        let set = read(&self.0);
        let mut ahead = addresses.clone().skip(1);
        let increasing = addresses
            .clone()
            .all(|a| ahead.next().is_none_or(|b| a < b));
        let dense = set.len() / WALK_PER_ADDRESS <= addresses.len();
        let (Some(first), true) = (addresses.clone().next(), increasing && dense) else {
            return addresses.for_each(|a| each(a, set.get(a).map(|c| &c.0)));
        };
        let mut walk = set.range::<Address, _>(first..).peekable();
        for a in addresses {
            while walk.next_if(|c| c.0.address < *a).is_some() {}
            each(a, walk.next_if(|c| c.0.address == *a).map(|c| &c.0));
        }
    }

    /// A committed transaction's writes.
    pub(crate) fn commit(&self, overlay: Overlay) {
        let writes = overlay.0.into_inner();
        if writes.is_empty() {
            return;
        }
        let mut set = write(&self.0);
        for (address, written) in writes {
            match written {
                Some(v) => {
                    set.replace(Cached(v));
                }
                None => {
                    set.remove(&address);
                }
            }
        }
    }
}

/// The tree's validators; collected in address order, so the set is built
/// with full nodes.
fn scan(tree: &sled::Tree) -> Result<BTreeSet<Cached>, StoreError> {
    tree.iter()
        .map(|kv| Ok(Cached(decode(VALIDATORS, &kv?.1)?)))
        .collect()
}

/// One transaction run's validator writes: `Some` put, `None` removed. Made
/// afresh by each run of the transaction's body, read before the cache so
/// the transaction sees its own writes.
#[derive(Default)]
pub(crate) struct Overlay(RefCell<HashMap<Address, Option<Validator>>>);

impl Overlay {
    /// What this transaction wrote at `address`: `None` if it did not.
    pub(crate) fn get(&self, address: &Address) -> Option<Option<Validator>> {
        self.0.borrow().get(address).cloned()
    }

    /// Everything this transaction wrote, by address.
    pub(crate) fn writes(&self) -> std::cell::Ref<'_, HashMap<Address, Option<Validator>>> {
        self.0.borrow()
    }

    pub(crate) fn put(&self, validator: &Validator) {
        self.0
            .borrow_mut()
            .insert(validator.address, Some(validator.clone()));
    }

    pub(crate) fn remove(&self, address: &Address) {
        self.0.borrow_mut().insert(*address, None);
    }
}

/// A validator that compares as its address.
struct Cached(Validator);

impl Borrow<Address> for Cached {
    fn borrow(&self) -> &Address {
        &self.0.address
    }
}

impl Ord for Cached {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.address.cmp(&other.0.address)
    }
}

impl PartialOrd for Cached {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Cached {
    fn eq(&self, other: &Self) -> bool {
        self.0.address == other.0.address
    }
}

impl Eq for Cached {}
