//! The single writer: every durable change goes through this one thread, in
//! order (registrations, slashings, rounds from the timer or from posctl).
//!
//! Group commit: it takes every request already queued (up to [`BATCH`]),
//! applies each in its own sled transaction, flushes once, and only then
//! replies and announces. Acknowledged therefore always means durable, and
//! one fsync is shared by everyone who asked at the same time.
//!
//! The writer is the applier: batch -> apply -> flush and sync -> answers
//! and announcements. What to apply comes from [`Proposer`], which alone
//! reads the clock and the pending proposals into commands (in a cluster,
//! only the leader would).
//!
//! Fail-stop: once storage fails after a change was applied in memory (an
//! I/O error from sled, a failed sync), memory may be ahead of the disk. The
//! writer then answers nothing more, cancels `failed`, and posd exits
//! non-zero so that systemd restarts it from what the disk really holds.

use crate::announce::Announcer;
use crate::metrics::Metrics;
use crate::proposer::{Closing, Proposer};
use crate::report::{self, Report};
use crate::validators::pending::{Pending, Proposal};
use crate::write::{check_space, Request, RoundOutcome, WriteError};
use pos_core::transition::Change;
use pos_core::{Address, Command, Outcome, Validator};
use pos_proto::peer::LedgerWrite;
use pos_store::export::Snapshot;
use pos_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most requests sharing one flush.
const BATCH: usize = 512;
/// Requests that may wait for the writer; senders wait beyond that (backpressure).
const QUEUE: usize = 4096;

type Responder<T> = oneshot::Sender<Result<T, WriteError>>;

/// A round's proposals, by validator.
type Proposals = BTreeMap<Address, Proposal>;

/// What the writer is asked to do, with where its answer goes.
enum Task {
    Ledger {
        request: Request,
        reply: Responder<Change>,
    },
    Round {
        reply: Responder<RoundOutcome>,
    },
    /// A consistent snapshot for an export or backup, taken between batches.
    Snapshot {
        reply: Responder<Snapshot>,
    },
}

/// A task applied but not yet answered: answers wait for the batch's flush.
// A batch holds a few of these at once: boxing the round would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Answer {
    Ledger(Result<Change, WriteError>, Responder<Change>),
    Round(Result<RoundOutcome, WriteError>, Responder<RoundOutcome>),
    Snapshot(Responder<Snapshot>),
}

/// Everything the writer thread owns or shares.
pub struct WriterContext {
    pub store: Arc<Store>,
    /// Watched for free space before every batch.
    pub data_dir: PathBuf,
    /// Turns requests and rounds into commands.
    pub proposer: Proposer,
    pub announcer: Announcer,
    /// Cancelled when storage has failed and posd must stop.
    pub failed: CancellationToken,
    /// Commit times, round outcomes and slashings, for `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// A cheap handle for asking the writer; clone it freely.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Task>,
}

impl Writer {
    /// Starts the writer thread. It ends when every `Writer` handle is dropped,
    /// after a last flush, or at the first storage failure, which it returns.
    pub fn spawn(
        ctx: WriterContext,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<Result<(), StoreError>>)> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("posd-writer".into())
            .spawn(move || writer_loop(ctx, rx))?;
        Ok((Writer { tx }, thread))
    }

    async fn ask<T>(&self, job: impl FnOnce(Responder<T>) -> Task) -> Result<T, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(job(reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    async fn ledger(&self, request: Request) -> Result<Change, WriteError> {
        self.ask(|reply| Task::Ledger { request, reply }).await
    }

    /// A ledger change that yields the validator it changed.
    async fn validator(&self, request: Request) -> Result<Validator, WriteError> {
        match self.ledger(request).await? {
            Change::Validator(v) => Ok(v),
            Change::Forgotten(_) => unreachable!("only Forget forgets"),
        }
    }

    /// Registers a validator; returns once it is on disk.
    pub async fn register(&self, address: Address, stake: u64) -> Result<Validator, WriteError> {
        self.validator(Request::Ledger(LedgerWrite::Register { address, stake }))
            .await
    }

    /// Slashes a validator; returns once the slashing is on disk and announced.
    pub async fn slash(&self, address: Address, reason: String) -> Result<Validator, WriteError> {
        self.validator(Request::Ledger(LedgerWrite::Slash { address, reason }))
            .await
    }

    /// Records the validator's first proposal: from then on it is never forgotten.
    pub async fn proposed(&self, address: Address) -> Result<Validator, WriteError> {
        self.validator(Request::Ledger(LedgerWrite::Proposed { address }))
            .await
    }

    /// Removes those of `addresses` that still qualify for forgetting (see
    /// [`Command::Forget`]); returns the ones removed.
    pub async fn forget(
        &self,
        addresses: Vec<Address>,
        registered_by_ms: u64,
    ) -> Result<Vec<Address>, WriteError> {
        let request = Request::Forget {
            addresses,
            registered_by_ms,
        };
        match self.ledger(request).await? {
            Change::Forgotten(gone) => Ok(gone),
            Change::Validator(_) => unreachable!("Forget forgets"),
        }
    }

    /// Closes the current round now; returns once its block is on disk and announced.
    pub async fn round(&self) -> Result<RoundOutcome, WriteError> {
        self.ask(|reply| Task::Round { reply }).await
    }

    /// A snapshot of what is on disk, taken on the writer thread after a
    /// flush, so no command is half seen. Writes wait while the snapshot
    /// copies the validator records aside (see `pos_store::export::snapshot`).
    pub async fn snapshot(&self) -> Result<Snapshot, WriteError> {
        self.ask(|reply| Task::Snapshot { reply }).await
    }
}

fn writer_loop(ctx: WriterContext, rx: mpsc::Receiver<Task>) -> Result<(), StoreError> {
    let result = commit_loop(&ctx, rx);
    if let Err(e) = &result {
        tracing::error!(
            error = %e,
            data_dir = %ctx.data_dir.display(),
            "storage failed: nothing more is acknowledged, posd stops"
        );
        ctx.failed.cancel();
    }
    result
}

/// Group commits until every handle is gone. A storage failure returns at
/// once: the batch's requesters are dropped unanswered (they see "stopped").
fn commit_loop(ctx: &WriterContext, mut rx: mpsc::Receiver<Task>) -> Result<(), StoreError> {
    let mut batch = Vec::with_capacity(BATCH);
    // The proposals of the batch's rounds, freed once it is answered (see `Closing`).
    let mut spent = Vec::new();
    while rx.blocking_recv_many(&mut batch, BATCH) > 0 {
        if let Err(full) = check_space(&ctx.data_dir) {
            tracing::error!(error = %full, requests = batch.len(), "refusing writes");
            for job in batch.drain(..) {
                job.refuse(full.clone(), ctx);
            }
            continue;
        }
        let started = std::time::Instant::now();
        let applied = batch
            .drain(..)
            .map(|job| execute(ctx, job, &mut spent))
            .collect::<Result<Vec<Answer>, StoreError>>()?;
        ctx.store.flush()?;
        ctx.metrics.commit(started.elapsed());
        for done in applied {
            done.finish(ctx);
        }
        spent.clear();
    }
    ctx.store.flush()
}

/// A refusal becomes the requester's answer; a storage failure (`Err`) the writer's end.
fn answer(outcome: Result<Outcome, StoreError>) -> Result<Result<Change, WriteError>, StoreError> {
    Ok(outcome?.map_err(WriteError::Refused))
}

impl Task {
    /// Answers without doing anything; a refused round keeps its proposals
    /// for the next one.
    fn refuse(self, why: WriteError, ctx: &WriterContext) {
        match self {
            Task::Ledger { reply, .. } => {
                let _ = reply.send(Err(why));
            }
            Task::Round { reply } => {
                ctx.metrics.round_failed();
                ctx.announcer.notice(&format!(
                    "error: round not committed: {why}; proposals stay for the next round"
                ));
                let _ = reply.send(Err(why));
            }
            Task::Snapshot { reply } => {
                let _ = reply.send(Err(why));
            }
        }
    }
}

impl Answer {
    /// Answers (and announces) what the batch's flush made durable.
    fn finish(self, ctx: &WriterContext) {
        let report = Report {
            announcer: &ctx.announcer,
            metrics: &ctx.metrics,
        };
        // A requester that went away (client hung up) needs no answer: ignore send errors.
        match self {
            Answer::Ledger(result, reply) => {
                if let Ok(Change::Validator(v)) = &result {
                    report.validator(v);
                }
                let _ = reply.send(result);
            }
            Answer::Round(result, reply) => {
                match &result {
                    Ok(outcome) => report.round(Ok(outcome.block())),
                    Err(e) => report.round(Err(e)),
                }
                let _ = reply.send(result);
            }
            Answer::Snapshot(reply) => {
                // A failed snapshot (e.g. no room for its spool) fails only its requester.
                let started = std::time::Instant::now();
                let snapshot = ctx.store.snapshot(None).map_err(|e| {
                    tracing::warn!(error = %e, "snapshot failed");
                    WriteError::Storage(e.to_string())
                });
                if let Ok(s) = &snapshot {
                    tracing::info!(
                        height = s.header().height,
                        writes_held_ms = started.elapsed().as_millis() as u64,
                        "snapshot taken"
                    );
                }
                let _ = reply.send(snapshot);
            }
        }
    }
}

fn execute(
    ctx: &WriterContext,
    job: Task,
    spent: &mut Vec<Proposals>,
) -> Result<Answer, StoreError> {
    Ok(match job {
        Task::Ledger { request, reply } => {
            let cmd = ctx.proposer.command(request);
            let result = answer(ctx.store.apply(&cmd))?;
            if let Ok(change) = &result {
                report::log(&cmd, change);
            }
            Answer::Ledger(result, reply)
        }
        Task::Round { reply } => Answer::Round(close_round(ctx, spent)?, reply),
        Task::Snapshot { reply } => Answer::Snapshot(reply),
    })
}

/// Closes the round: the proposer's `CommitRound` applied, no block, or a
/// refusal (the clock cannot stamp one: the proposals then stay). The
/// proposals it took go to `spent`.
fn close_round(
    ctx: &WriterContext,
    spent: &mut Vec<Proposals>,
) -> Result<Result<RoundOutcome, WriteError>, StoreError> {
    let Closing { cmd, proposals } = match ctx.proposer.round(Pending::take)? {
        Ok(closing) => closing,
        Err(e) => return Ok(Err(e)),
    };
    spent.push(proposals);
    let Some(cmd) = cmd else {
        return Ok(Ok(RoundOutcome::NoCandidates));
    };
    if let Err(refusal) = answer(ctx.store.apply(&cmd))? {
        tracing::error!(error = %refusal, "round refused by the store; proposals dropped");
        return Ok(Err(refusal));
    }
    let Command::CommitRound { block, round, .. } = cmd else {
        unreachable!("the proposer's rounds are CommitRound")
    };
    Ok(Ok(RoundOutcome::Committed { block, round }))
}
