//! The wall clock, read here and nowhere else in posd: the times stamped on
//! blocks and validator records.

use pos_core::block::MAX_TIMESTAMP_MS;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, or `None` when the clock is outside the
/// years 1970–9999 that block timestamps can show.
pub(crate) fn now_ms() -> Option<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis())
        .ok()
        .filter(|ms| *ms <= MAX_TIMESTAMP_MS)
}

/// The clock for a record's informational time (registered, slashed, genesis):
/// a clock out of range is pinned to the nearest end rather than refused.
pub(crate) fn record_ms() -> u64 {
    now_ms().unwrap_or_else(|| match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(_) => MAX_TIMESTAMP_MS,
        Err(_) => 0,
    })
}
