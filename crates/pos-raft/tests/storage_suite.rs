//! openraft's own storage test suite, run on posd's store: the log, the
//! vote, the state machine and snapshots, against a real sled directory.

use openraft::testing::{StoreBuilder, Suite};
use pos_core::transition::Outcome;
use pos_core::ChainSpec;
use pos_raft::log_store::LogStore;
use pos_raft::{StateMachine, Tagged, TypeConfig};
use pos_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts what it is told, so the suite's applies reach a real observer.
#[derive(Default)]
struct Counting(AtomicU64);

impl pos_raft::Observer for Counting {
    fn applied(&self, _index: u64, _ops: &[Tagged], _outcomes: &[Option<Outcome>]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn restored(&self) {}
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), openraft::StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(dir.path(), &ChainSpec::default()).expect("store"));
        let sm = StateMachine::new(
            Arc::clone(&store),
            dir.path(),
            Arc::new(Counting::default()),
        );
        let log = LogStore::open(store).expect("Raft log");
        Ok((dir, log, sm))
    }
}

/// The suite makes its own runtime (and spawn_blocking needs one); it must
/// not run inside another.
#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
