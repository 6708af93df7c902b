//! At most once: a node that lost sight of the leader a write went to sends
//! it again, with the same origin (node and ticket), to the next leader; if
//! both copies reach the log, only the first is applied.
//!
//! The record of applied tickets is part of the applied state (written with
//! each entry's position, in its transaction), so every node skips the same
//! copies. It keeps, per origin node, the tickets within [`WINDOW`] of the
//! newest one, as ranges: tickets are handed out in order, so a busy node's
//! applied tickets are a few long runs. A node's tickets start from the
//! clock at its start, so a restarted node never reuses one.

use crate::types::{NodeId, Origin};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far back (in tickets of one node) a second copy is still caught:
/// a resend comes within seconds, a million writes of one node later at most.
pub const WINDOW: u64 = 1 << 20;
/// Most ranges kept per node; the oldest go first (lost writes leave gaps).
const RANGES: usize = 256;

/// The tickets applied recently, per origin node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(BTreeMap<NodeId, Tickets>);

/// Disjoint, sorted, inclusive ranges of tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tickets(Vec<(u64, u64)>);

impl Applied {
    /// Records `origin`; `false` if it was applied before (skip this copy).
    pub fn first(&mut self, origin: Origin) -> bool {
        self.0.entry(origin.node).or_default().insert(origin.ticket)
    }
}

impl Tickets {
    fn insert(&mut self, t: u64) -> bool {
        let ranges = &mut self.0;
        // The first range starting after `t`.
        let i = ranges.partition_point(|&(lo, _)| lo <= t);
        if i > 0 && ranges[i - 1].1 >= t {
            return false;
        }
        let joins_left = i > 0 && ranges[i - 1].1 + 1 == t;
        let joins_right = i < ranges.len() && ranges[i].0 == t + 1;
        match (joins_left, joins_right) {
            (true, true) => {
                ranges[i - 1].1 = ranges[i].1;
                ranges.remove(i);
            }
            (true, false) => ranges[i - 1].1 = t,
            (false, true) => ranges[i].0 = t,
            (false, false) => ranges.insert(i, (t, t)),
        }
        let newest = ranges.last().map_or(t, |r| r.1);
        let floor = newest.saturating_sub(WINDOW);
        let stale = ranges.partition_point(|&(_, hi)| hi < floor);
        let excess = ranges.len().saturating_sub(RANGES);
        ranges.drain(..stale.max(excess));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(node: NodeId, ticket: u64) -> Origin {
        Origin { node, ticket }
    }

    #[test]
    fn a_ticket_is_applied_once_per_node() {
        let mut applied = Applied::default();
        assert!(applied.first(origin(1, 7)));
        assert!(!applied.first(origin(1, 7)));
        // The same ticket from another node is another write.
        assert!(applied.first(origin(2, 7)));
        assert!(!applied.first(origin(2, 7)));
    }

    #[test]
    fn out_of_order_tickets_merge_into_runs() {
        let mut t = Tickets::default();
        for ticket in [5, 3, 4, 9, 7, 8, 1] {
            assert!(t.insert(ticket), "{ticket}");
        }
        assert_eq!(t.0, vec![(1, 1), (3, 5), (7, 9)]);
        for ticket in [1, 3, 4, 5, 7, 8, 9] {
            assert!(!t.insert(ticket), "{ticket} again");
        }
        assert!(t.insert(6));
        assert!(t.insert(2));
        assert_eq!(t.0, vec![(1, 9)]);
    }

    #[test]
    fn old_tickets_and_excess_gaps_are_dropped() {
        let mut t = Tickets::default();
        assert!(t.insert(10));
        assert!(t.insert(10 + WINDOW + 1));
        // Out of the window: forgotten, so a (very) late copy would apply.
        assert_eq!(t.0, vec![(10 + WINDOW + 1, 10 + WINDOW + 1)]);

        let mut t = Tickets::default();
        for k in 0..(RANGES as u64 + 10) {
            assert!(t.insert(k * 2));
        }
        assert_eq!(t.0.len(), RANGES);
        assert_eq!(t.0[0], (20, 20));
    }
}
