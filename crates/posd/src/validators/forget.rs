//! `forget_after`: validators that never proposed, never won, hold only the
//! stake they registered and have been away that long are removed, so free
//! registrations cannot grow the store for ever. The store decides what
//! qualifies (pos-core's `Command::Forget`); this sweep adds what only this
//! node knows: who was connected lately. A restart counts as everyone having
//! just been seen, so nobody is forgotten less than `forget_after` after it.
//! In a cluster every node reports who it saw to the leader, and only the
//! leader sweeps, with what every node saw (`cluster::seen`).

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
        // A cluster node reports at once; the leader waits (`cluster::seen`).
        let standalone = ctx.chain.submit.cluster().is_none();
        if forget_after.is_zero() || standalone && started.elapsed() < forget_after {
            continue;
        }
        if let Err(e) = sweep(&ctx, forget_after, started.elapsed()).await {
            tracing::warn!(error = %e, "forgetting idle validators failed; will retry");
        }
    }
}

async fn sweep(ctx: &Serving, forget_after: Duration, up: Duration) -> anyhow::Result<()> {
    let Some(now_ms) = clock::now_ms() else {
        return Ok(()); // no trustworthy clock: forget nobody
    };
    let registered_by_ms = now_ms.saturating_sub(forget_after.as_millis() as u64);
    // Only just after boot can the monotonic clock not go back that far.
    let Some(away_since) = Instant::now().checked_sub(forget_after) else {
        return Ok(());
    };
    ctx.clients.connected.prune_left(away_since);
    // Who was connected lately: this node's knowledge, or the cluster's.
    let seen: Box<dyn Fn(&Address) -> bool + Send> = match ctx.chain.submit.cluster() {
        None => {
            let clients = Arc::clone(&ctx.clients);
            Box::new(move |a| clients.connected.seen_since(a, away_since))
        }
        Some(cluster) => {
            let mine = ctx.clients.connected.seen(away_since);
            cluster.report_seen(up, mine).await;
            if !cluster.is_leader() {
                return Ok(());
            }
            let members: Vec<_> = cluster.node.view().members.iter().map(|m| m.id).collect();
            match cluster
                .seen
                .kept(cluster.node.term(), &members, forget_after)
            {
                Some(kept) => Box::new(move |a| kept.contains(a)),
                None => return Ok(()),
            }
        }
    };
    let idle = {
        let chain = Arc::clone(&ctx.chain);
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Address>> {
            let mut idle = Vec::new();
            for v in chain.store.validators() {
                let v = v?;
                let qualifies = v.status() == Status::Active
                    && v.blocks_won == 0
                    && v.registered_at_ms <= registered_by_ms
                    && !seen(&v.address)
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
