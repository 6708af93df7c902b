//! The round timer: closes a round every `round_interval`, counting from the
//! end of the last round, whether the timer or `posctl lottery run` closed it.

use crate::config::Config;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When the timer will next close a round; read by `status`.
#[derive(Debug)]
pub struct NextRound {
    at: Mutex<Instant>,
    /// A round was closed by hand: the next one gets a whole interval.
    restart: Notify,
}

impl NextRound {
    pub fn new(at: Instant) -> Self {
        NextRound {
            at: Mutex::new(at),
            restart: Notify::new(),
        }
    }

    pub fn set(&self, at: Instant) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Time left until the timer closes the round (zero if it is closing now).
    pub fn remaining(&self) -> Duration {
        let at = *self.at.lock().unwrap_or_else(|e| e.into_inner());
        at.saturating_duration_since(Instant::now())
    }

    /// A round was just closed outside the timer (`posctl lottery run`): the
    /// round that opens now lasts a whole `round_interval`, as a user who
    /// forced a round expects, not the rest of the old one.
    pub fn restart(&self) {
        self.restart.notify_one();
    }
}

/// Calls `close_round` every `interval` until `shutdown`. The interval counts
/// from the end of the previous round, so a slow commit never makes rounds
/// pile up, and from a round closed by hand ([`NextRound::restart`]). A new
/// interval (SIGHUP) moves the current round's end at once.
pub async fn run<F, Fut>(
    mut config: watch::Receiver<Arc<Config>>,
    next: &NextRound,
    shutdown: CancellationToken,
    mut close_round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut started = Instant::now();
    loop {
        let deadline = started + config.borrow_and_update().round_interval;
        next.set(deadline);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => {
                close_round().await;
                started = Instant::now();
            }
            _ = next.restart.notified() => started = Instant::now(),
            // Once the sender is gone this branch is off: the last interval stays.
            Ok(()) = config.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn every(interval: Duration) -> Arc<Config> {
        Arc::new(Config {
            round_interval: interval,
            ..Config::defaults()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn closes_a_round_per_interval_and_stops_on_shutdown() {
        let count = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(NextRound::new(Instant::now()));
        let stop = CancellationToken::new();
        let (interval_tx, interval) = watch::channel(every(Duration::from_secs(30)));
        let task = tokio::spawn({
            let (count, next, stop) = (count.clone(), next.clone(), stop.clone());
            async move {
                run(interval, &next, stop, || {
                    count.fetch_add(1, Ordering::SeqCst);
                    async {}
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(count.load(Ordering::SeqCst), 0);
        assert_eq!(next.remaining(), Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(count.load(Ordering::SeqCst), 3);
        // 10 s into the 4th round the interval drops to 5 s: that round ends now.
        tokio::time::sleep(Duration::from_secs(10)).await;
        interval_tx.send_replace(every(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(count.load(Ordering::SeqCst), 4);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(count.load(Ordering::SeqCst), 5);
        stop.cancel();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(count.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_closed_by_hand_restarts_the_interval() {
        let count = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(NextRound::new(Instant::now()));
        let (_interval_tx, interval) = watch::channel(every(Duration::from_secs(30)));
        tokio::spawn({
            let (count, next) = (count.clone(), next.clone());
            async move {
                run(interval, &next, CancellationToken::new(), || {
                    count.fetch_add(1, Ordering::SeqCst);
                    async {}
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_secs(20)).await;
        next.restart();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            next.remaining(),
            Duration::from_secs(30) - Duration::from_millis(1)
        );
        // The old round would have ended 10 s later; the timer waits the whole 30 s.
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(count.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
