//! `registration_rate`: new registrations per second per source IP, with a
//! burst of ten seconds' worth. Stakes cost nothing, so without this one
//! source could register thousands of validators a second, each stored for
//! good. A token bucket per IP; buckets that have refilled are dropped, so
//! memory follows the sources active in the last ten seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Seconds of rate a bucket holds: the burst.
const BURST_SECONDS: u32 = 10;
/// Buckets kept before the refilled ones are swept out.
const SWEEP_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-IP token buckets; `per_second == 0` admits everything.
#[derive(Debug, Default)]
pub(crate) struct RegistrationRate {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RegistrationRate {
    /// Takes one registration for `ip` at `per_second`; `Err(wait)` when none
    /// is left, with how long until one is.
    pub(crate) fn take(&self, ip: IpAddr, per_second: u32, now: Instant) -> Result<(), Duration> {
        if per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(per_second);
        let capacity = rate * f64::from(BURST_SECONDS);
        let refilled = |b: &Bucket| (b.tokens + (now - b.at).as_secs_f64() * rate).min(capacity);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| refilled(b) < capacity);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let tokens = refilled(bucket);
        if tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - tokens) / rate));
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_ten_seconds_then_the_rate() {
        let limit = RegistrationRate::default();
        let start = Instant::now();
        for _ in 0..50 {
            limit.take(ip(1), 5, start).unwrap();
        }
        let wait = limit.take(ip(1), 5, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        // Another source is not affected.
        limit.take(ip(2), 5, start).unwrap();
        // After the wait, exactly one more.
        tokio::time::advance(wait).await;
        limit.take(ip(1), 5, Instant::now()).unwrap();
        assert!(limit.take(ip(1), 5, Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unlimited_and_idle_buckets_are_swept() {
        let limit = RegistrationRate::default();
        for _ in 0..10_000 {
            limit.take(ip(1), 0, Instant::now()).unwrap();
        }
        for n in 0..SWEEP_AT as u32 {
            limit
                .take(IpAddr::from(n.to_be_bytes()), 1, Instant::now())
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(u64::from(BURST_SECONDS))).await;
        limit.take(ip(1), 1, Instant::now()).unwrap();
        assert_eq!(limit.buckets.lock().unwrap().len(), 1);
    }
}
