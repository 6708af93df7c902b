//! `forget_after`: validators that never proposed, never won, hold only the
//! stake they registered and have been away that long are removed, so free
//! registrations cannot grow the store for ever. The store decides what
//! qualifies (pos-core's `Command::Forget`); this sweep adds what only this
//! node knows: who was connected lately. A restart counts as everyone having
//! just been seen, so nobody is forgotten less than `forget_after` after it.

use crate::clock;
use crate::shared::Serving;
use pos_core::{Address, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Addresses per `Forget` command: one group commit stays short.
const CHUNK: usize = 1024;

/// How often to sweep: often enough that nobody stays much past the limit.
fn period(forget_after: Duration) -> Duration {
    (forget_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Sweeps until shutdown. `forget_after` is read from the running config at
/// each sweep; zero turns forgetting off.
pub(crate) async fn run(ctx: Serving) {
    let started = Instant::now();
    loop {
        let forget_after = ctx.config.get().forget_after;
        let wait = match forget_after.is_zero() {
            true => Duration::from_secs(60),
            false => period(forget_after),
        };
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if forget_after.is_zero() || started.elapsed() < forget_after {
            continue;
        }
        if let Err(e) = sweep(&ctx, forget_after).await {
            tracing::warn!(error = %e, "forgetting idle validators failed; will retry");
        }
    }
}

async fn sweep(ctx: &Serving, forget_after: Duration) -> anyhow::Result<()> {
    let Some(now_ms) = clock::now_ms() else {
        return Ok(()); // no trustworthy clock: forget nobody
    };
    let registered_by_ms = now_ms.saturating_sub(forget_after.as_millis() as u64);
    // `run` waits `forget_after` after start first, so this is after start.
    let Some(away_since) = Instant::now().checked_sub(forget_after) else {
        return Ok(());
    };
    ctx.clients.connected.prune_left(away_since);
    let idle = {
        let (chain, clients) = (Arc::clone(&ctx.chain), Arc::clone(&ctx.clients));
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Address>> {
            let mut idle = Vec::new();
            for v in chain.store.validators() {
                let v = v?;
                let qualifies = v.status() == Status::Active
                    && v.blocks_won == 0
                    && v.registered_at_ms <= registered_by_ms
                    && !clients.connected.seen_since(&v.address, away_since)
                    && !chain.store.proposed(&v.address)?;
                if qualifies {
                    idle.push(v.address);
                }
            }
            Ok(idle)
        })
        .await??
    };
    for chunk in idle.chunks(CHUNK) {
        ctx.chain
            .submit
            .forget(chunk.to_vec(), registered_by_ms)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_are_frequent_but_bounded() {
        assert_eq!(period(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(period(Duration::from_secs(40)), Duration::from_secs(10));
        assert_eq!(
            period(Duration::from_secs(7 * 24 * 3600)),
            Duration::from_secs(3600)
        );
    }
}
