//! The single writer: every durable change goes through this one thread, in
//! order (registrations, slashings, rounds from the timer or from posctl).
//!
//! Group commit: it takes every request already queued (up to [`BATCH`]),
//! applies each in its own sled transaction, flushes once, and only then
//! replies and announces. Acknowledged therefore always means durable, and
//! one fsync is shared by everyone who asked at the same time.
//!
//! Fail-stop: once storage fails after a change was applied in memory (an
//! I/O error from sled, a failed sync), memory may be ahead of the disk. The
//! writer then answers nothing more, cancels `failed`, and posd exits
//! non-zero so that systemd restarts it from what the disk really holds.

use crate::announce::Announcer;
use crate::pending::Pending;
use crate::round;
use pos_core::{Address, Block, Command, RoundRecord, Validator};
use pos_store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Free space kept on the data directory's file system. Below it posd
/// refuses writes before touching sled, so a full disk never leaves a commit
/// half-flushed, and writing resumes by itself once space returns.
pub const DISK_RESERVE: u64 = 64 * 1024 * 1024;

/// Most requests sharing one flush.
const BATCH: usize = 512;
/// Requests that may wait for the writer; senders wait beyond that (backpressure).
const QUEUE: usize = 4096;

type Responder<T> = oneshot::Sender<Result<T, WriteError>>;

/// What the writer is asked to do, with where its answer goes.
enum Job {
    Register {
        address: Address,
        stake: u64,
        reply: Responder<Validator>,
    },
    Slash {
        address: Address,
        reason: String,
        reply: Responder<Validator>,
    },
    Round {
        reply: Responder<RoundOutcome>,
    },
}

/// A job applied but not yet answered: answers wait for the batch's flush.
enum Applied {
    Validator(Result<Validator, WriteError>, Responder<Validator>),
    Round(Result<RoundOutcome, WriteError>, Responder<RoundOutcome>),
}

/// How a round ended.
// One of these exists per round: boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RoundOutcome {
    Committed { block: Block, round: RoundRecord },
    NoCandidates,
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The ledger refused it (e.g. already slashed); nothing changed.
    #[error("{0}")]
    Refused(String),
    /// Storage failed (e.g. disk full); the change is not acknowledged.
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("posd is shutting down")]
    Stopped,
}

/// Everything the writer thread owns or shares.
pub struct WriterContext {
    pub store: Arc<Store>,
    /// Watched for free space before every batch.
    pub data_dir: PathBuf,
    pub pending: Arc<Pending>,
    pub announcer: Announcer,
    pub block_reward: u64,
    pub max_stake: u64,
    /// Cancelled when storage has failed and posd must stop.
    pub failed: CancellationToken,
}

/// A cheap handle for asking the writer; clone it freely.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Wall-clock milliseconds since the epoch: the timestamps of blocks and records.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

    async fn ask<T>(&self, job: impl FnOnce(Responder<T>) -> Job) -> Result<T, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(job(reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Registers a validator; returns once it is on disk.
    pub async fn register(&self, address: Address, stake: u64) -> Result<Validator, WriteError> {
        self.ask(|reply| Job::Register {
            address,
            stake,
            reply,
        })
        .await
    }

    /// Slashes a validator; returns once the slashing is on disk and announced.
    pub async fn slash(&self, address: Address, reason: String) -> Result<Validator, WriteError> {
        self.ask(|reply| Job::Slash {
            address,
            reason,
            reply,
        })
        .await
    }

    /// Closes the current round now; returns once its block is on disk and announced.
    pub async fn round(&self) -> Result<RoundOutcome, WriteError> {
        self.ask(|reply| Job::Round { reply }).await
    }
}

fn writer_loop(ctx: WriterContext, rx: mpsc::Receiver<Job>) -> Result<(), StoreError> {
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
fn commit_loop(ctx: &WriterContext, mut rx: mpsc::Receiver<Job>) -> Result<(), StoreError> {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.blocking_recv_many(&mut batch, BATCH) > 0 {
        if let Err(full) = check_space(&ctx.data_dir) {
            tracing::error!(error = %full, requests = batch.len(), "refusing writes");
            for job in batch.drain(..) {
                job.refuse(full.clone(), &ctx.announcer);
            }
            continue;
        }
        let applied = batch
            .drain(..)
            .map(|job| execute(ctx, job))
            .collect::<Result<Vec<Applied>, StoreError>>()?;
        ctx.store.flush()?;
        for done in applied {
            done.finish(&ctx.announcer);
        }
    }
    ctx.store.flush()
}

/// A refusal as the requester's answer; a storage failure as the writer's end.
fn refused<T>(result: Result<T, StoreError>) -> Result<Result<T, WriteError>, StoreError> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is_storage_failure() => Err(e),
        Err(e) => Ok(Err(WriteError::Refused(e.to_string()))),
    }
}

/// `Ok` while the data directory's file system has more than [`DISK_RESERVE`] free.
fn check_space(dir: &Path) -> Result<(), WriteError> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        WriteError::Storage(format!("cannot check free space on {}: {e}", dir.display()))
    })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    if free < DISK_RESERVE {
        return Err(WriteError::Storage(format!(
            "disk nearly full: {} MiB free on {}, posd keeps {} MiB in reserve; nothing was written",
            free >> 20,
            dir.display(),
            DISK_RESERVE >> 20
        )));
    }
    Ok(())
}

impl Job {
    /// Answers without doing anything; a refused round keeps its proposals
    /// for the next one.
    fn refuse(self, why: WriteError, announcer: &Announcer) {
        match self {
            Job::Register { reply, .. } | Job::Slash { reply, .. } => {
                let _ = reply.send(Err(why));
            }
            Job::Round { reply } => {
                announcer.notice(&format!(
                    "error: round not committed: {why}; proposals stay for the next round"
                ));
                let _ = reply.send(Err(why));
            }
        }
    }
}

impl Applied {
    /// Answers (and announces) what the batch's flush made durable.
    fn finish(self, announcer: &Announcer) {
        // A requester that went away (client hung up) needs no answer: ignore send errors.
        match self {
            Applied::Validator(result, reply) => {
                if let Ok(v) = &result {
                    announcer.slashed(v);
                }
                let _ = reply.send(result);
            }
            Applied::Round(result, reply) => {
                match &result {
                    Ok(RoundOutcome::Committed { block, .. }) => announcer.block(block),
                    Ok(RoundOutcome::NoCandidates) => {}
                    Err(e) => announcer.notice(&format!("error: round not committed: {e}")),
                }
                let _ = reply.send(result);
            }
        }
    }
}

fn execute(ctx: &WriterContext, job: Job) -> Result<Applied, StoreError> {
    let at_ms = now_ms();
    Ok(match job {
        Job::Register {
            address,
            stake,
            reply,
        } => {
            let result = refused(ctx.store.apply(&Command::Register {
                address,
                stake,
                max_stake: ctx.max_stake,
                at_ms,
            }))?;
            if result.is_ok() {
                tracing::info!(%address, stake, "validator registered");
            }
            Applied::Validator(result, reply)
        }
        Job::Slash {
            address,
            reason,
            reply,
        } => {
            ctx.pending.withdraw(&address);
            let result = refused(ctx.store.apply(&Command::Slash {
                address,
                reason: reason.clone(),
                at_ms,
            }))?;
            if result.is_ok() {
                tracing::warn!(%address, %reason, "validator slashed");
            }
            Applied::Validator(result, reply)
        }
        Job::Round { reply } => Applied::Round(refused(close_round(ctx, at_ms))?, reply),
    })
}

fn close_round(ctx: &WriterContext, at_ms: u64) -> Result<RoundOutcome, StoreError> {
    let proposals = ctx.pending.take();
    let offered = proposals.len();
    let Some(cmd) = round::prepare(&ctx.store, proposals, at_ms, ctx.block_reward)? else {
        tracing::info!(proposals = offered, "round closed: no candidates, no block");
        return Ok(RoundOutcome::NoCandidates);
    };
    ctx.store.apply(&cmd)?;
    let Command::CommitRound { block, round, .. } = cmd else {
        unreachable!("round::prepare builds a CommitRound")
    };
    tracing::info!(
        index = block.index,
        winner = %round.winner().address,
        candidates = round.candidates.len(),
        "round committed"
    );
    Ok(RoundOutcome::Committed { block, round })
}
