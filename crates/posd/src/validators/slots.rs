//! Open validator connections against `max_connections`, with shedding of
//! connections that have not registered when the limit is reached.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// Counts open validator connections against `max_connections`. A count
/// rather than a semaphore, so SIGHUP can change the limit without touching
/// open connections. When the limit is reached, the oldest connection that
/// has not registered makes room, so silent sockets cannot lock validators out.
#[derive(Debug, Default)]
pub struct Slots {
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    /// Slots counted against the limit.
    active: usize,
    next_id: u64,
    /// Connections that have not registered, oldest first; cancelling the
    /// token tells that session its slot is gone.
    unregistered: BTreeMap<u64, CancellationToken>,
}

/// One open connection; dropping it frees the slot, unless the connection
/// was shed and its slot already passed to a newcomer.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    shed: CancellationToken,
}

impl Slots {
    /// Takes a slot if fewer than `limit` are taken, else the slot of the
    /// oldest connection that has not registered (which is told to close).
    /// `None` when every connection has registered.
    pub fn take(self: &Arc<Self>, limit: usize) -> Option<Slot> {
        let mut state = self.lock();
        if state.active < limit {
            state.active += 1;
        } else {
            let (_, oldest) = state.unregistered.pop_first()?;
            oldest.cancel();
        }
        let id = state.next_id;
        state.next_id += 1;
        let shed = CancellationToken::new();
        state.unregistered.insert(id, shed.clone());
        Some(Slot {
            slots: Arc::clone(self),
            id,
            shed,
        })
    }

    pub fn active(&self) -> usize {
        self.lock().active
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Slot {
    /// Cancelled when this connection was shed to make room for a newer one.
    pub fn shed(&self) -> CancellationToken {
        self.shed.clone()
    }

    /// The connection speaks for a validator now: it is never shed. `false`
    /// if it was shed before that (its slot is a newcomer's).
    pub fn registered(&self) -> bool {
        self.slots.lock().unregistered.remove(&self.id).is_some()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.unregistered.remove(&self.id);
        if !self.shed.is_cancelled() {
            state.active -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_slots_shed_the_oldest_unregistered_connection() {
        let slots = Arc::new(Slots::default());
        let a = slots.take(2).unwrap();
        let b = slots.take(2).unwrap();
        let c = slots.take(2).unwrap();
        assert!(a.shed().is_cancelled() && !b.shed().is_cancelled());
        assert_eq!(slots.active(), 2);
        assert!(b.registered() && c.registered());
        assert!(!a.registered(), "a was shed before it registered");
        assert!(
            slots.take(2).is_none(),
            "registered connections are never shed"
        );
        // The shed connection's slot went to `c`: its end frees nothing.
        drop(a);
        assert_eq!(slots.active(), 2);
        drop(b);
        assert_eq!(slots.active(), 1);
        let d = slots.take(2).unwrap();
        drop((c, d));
        assert_eq!(slots.active(), 0);
    }
}
