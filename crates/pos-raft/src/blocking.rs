//! Store IO from openraft's tasks, on the thread that asked for it.
//!
//! Every such call is awaited by the one task that made it: openraft's core
//! waits for its log append before it replicates, the state machine worker
//! for its apply before it answers. Handing the IO to tokio's blocking pool
//! only adds two thread wake-ups to a write's path (to the pool and back),
//! 40 to 180 µs each as traced on every node a write crosses
//! (docs/BENCHMARKS.md, round 3). On the multi-threaded runtime the IO runs
//! on the calling thread instead, and tokio hands that worker's other tasks
//! to another thread meanwhile (`block_in_place`), so no session waits
//! behind an fsync; that thread's wake-up is off the write's path but not
//! free on a busy machine (end to end, no p50 change measured there). A
//! single-threaded runtime (some tests) cannot do that: there the pool runs it.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f` (blocking IO) without blocking the runtime's other tasks.
/// `Err` only if `f` panicked in the pool.
pub(crate) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        Ok(tokio::task::block_in_place(f))
    } else {
        tokio::task::spawn_blocking(f).await
    }
}
