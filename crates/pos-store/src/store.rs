//! The store: opening a data directory, applying commands, reading the chain.

use crate::acked::{self, AckFile, Acked};
use crate::cache::{Overlay, Validators};
use crate::codec::{decode_spec, encode, encode_spec, u64_value};
use crate::layout::*;
use crate::locks::{read, write};
use crate::machine::TxState;
use crate::round_log::{self, Prepared, RoundLog};
use crate::sync::SledFiles;
use crate::{data_dir, lottery, StoreError};
use pos_core::lottery::Anchor;
use pos_core::transition::{self, Outcome};
use pos_core::verify::check_link;
use pos_core::{ChainSpec, Command, Digest, RoundRecord};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// An open data directory. Cheap to share behind an `Arc`: sled is
/// thread-safe, and only posd's single writer calls [`Store::apply`].
pub struct Store {
    pub(crate) db: sled::Db,
    pub(crate) blocks: sled::Tree,
    pub(crate) block_index: sled::Tree,
    pub(crate) rounds: sled::Tree,
    pub(crate) validators: sled::Tree,
    pub(crate) proposed: sled::Tree,
    pub(crate) meta: sled::Tree,
    /// A cluster node's Raft log as stores before its own files kept it;
    /// emptied by [`Store::open_raft_log`].
    pub(crate) raft_log: sled::Tree,
    /// A cluster node's vote and log bookkeeping (empty on a standalone node).
    pub(crate) raft: sled::Tree,
    /// The files behind a store on disk; `None` for a temporary one.
    pub(crate) disk: Option<OnDisk>,
    /// Round records too big for sled (`round_log`); `None` for a
    /// temporary store, which keeps every record in sled.
    pub(crate) round_log: Option<Arc<RoundLog>>,
    /// Whether [`Store::open`] made a new chain rather than finding one.
    created: bool,
    /// The chain's rules, as stored with it (replaced only by an import).
    spec: RwLock<ChainSpec>,
    /// Whether [`Store::open`] migrated a schema-1 store.
    migrated: bool,
    /// Whether [`Store::open`] marked a schema-2 store as 3.
    marked: bool,
    /// Where lottery v2 begins; `None` only in a schema-1 store not yet
    /// migrated. Replaced only by an import.
    pub(crate) anchor: RwLock<Option<Anchor>>,
    /// Height of the last block made durable by [`Store::flush`] (or found
    /// at open): round records above it are not served yet.
    pub(crate) durable: AtomicU64,
    /// Every validator, decoded (`cache`): what [`Store::validator`] and
    /// the transactions read.
    pub(crate) cache: Validators,
    /// Held from a transaction's start until the cache took its writes, so
    /// the cache takes them in the order sled committed them.
    applying: Mutex<()>,
    /// The last draw history read, decoded (`Store::history`).
    pub(crate) history: Mutex<Option<History>>,
}

/// Draw history as last read (`Store::history`): the records from block
/// `key.0` up to the block whose hash is `key.1` (which fixes the chain, and
/// the height).
pub(crate) struct History {
    pub key: (u64, Digest),
    pub records: Arc<[RoundRecord]>,
}

/// What a store on disk keeps open besides sled.
pub(crate) struct OnDisk {
    /// The data directory.
    pub(crate) dir: PathBuf,
    pub(crate) files: SledFiles,
    acked: AckFile,
    /// Held for the store's life: a second posd on the same directory fails to take it.
    _lock: File,
}

impl Store {
    /// Opens the chain in `dir`, or creates it from `spec` when the directory
    /// holds none, then checks its schema version, its tip, and that it still
    /// holds everything the acknowledgement record says posd promised. An
    /// existing chain keeps its own spec ([`Store::chain_spec`]); `spec.genesis_ms`
    /// then only stands for "now" in one-time upgrades of older stores. A
    /// schema-1 store is then migrated in place (see [`Store::migrated`]). The
    /// store's directory is made private (0700): it holds the lottery's secret.
    pub fn open(dir: &Path, spec: &ChainSpec) -> Result<Store, StoreError> {
        Store::open_with(dir, spec, Genesis::Create)
    }

    /// Opens the chain in `dir` like [`Store::open`], but where the directory
    /// holds none it makes no genesis: the store then waits for a chain
    /// ([`Store::has_chain`]), which a cluster node receives from its leader.
    pub fn open_awaiting(dir: &Path, spec: &ChainSpec) -> Result<Store, StoreError> {
        Store::open_with(dir, spec, Genesis::Await)
    }

    fn open_with(dir: &Path, spec: &ChainSpec, genesis: Genesis) -> Result<Store, StoreError> {
        data_dir::prepare(dir)?;
        Store::open_locked(dir, spec, data_dir::lock(dir)?, genesis)
    }

    /// [`Store::open`] once `dir`'s lock is taken (`lock`, held from now on).
    pub(crate) fn open_locked(
        dir: &Path,
        spec: &ChainSpec,
        lock: File,
        genesis: Genesis,
    ) -> Result<Store, StoreError> {
        let sled_dir = dir.join(data_dir::SLED);
        let no_store = !sled_dir.exists();
        let record = AckFile::read(dir)?;
        if let (true, Some((_, acked))) = (no_store, &record) {
            return Err(StoreError::Damaged {
                path: sled_dir,
                detail: format!(
                    "the store is missing, but posd acknowledged a chain of height {} here",
                    acked.height
                ),
            });
        }
        data_dir::private_dir(&sled_dir)?;
        let db = data_dir::open_sled(&sled_dir).map_err(|e| StoreError::Damaged {
            path: sled_dir.clone(),
            detail: format!("the store cannot be opened: {}", crate::error::engine(&e)),
        })?;
        let mut store = Store::init(db, spec, genesis)?;
        let named = match store.meta.get(META_ROUND_LOG_NAMED)? {
            Some(v) => u64_value(META, &v)?,
            None => 0,
        };
        store.round_log = Some(Arc::new(RoundLog::open(dir, named)?));
        if store.has_chain()? {
            store.check_tip_round()?;
        }
        let files = SledFiles::open(dir, &sled_dir)?;
        let acked = match record {
            Some((file, acked)) => {
                store.check_acked(&dir.join(acked::FILE), &acked)?;
                file
            }
            None => AckFile::create(dir, &store.acked_now()?)?,
        };
        store.disk = Some(OnDisk {
            dir: dir.to_owned(),
            files,
            acked,
            _lock: lock,
        });
        if store.lottery_anchor().is_none() && store.has_chain()? {
            store.migrate_v1()?;
        }
        Ok(store)
    }

    /// A throw-away store in memory, for tests.
    pub fn temporary(spec: &ChainSpec) -> Result<Store, StoreError> {
        Store::init(
            sled::Config::new().temporary(true).open()?,
            spec,
            Genesis::Create,
        )
    }

    /// A throw-away store in memory that waits for a chain, for tests.
    pub fn temporary_awaiting(spec: &ChainSpec) -> Result<Store, StoreError> {
        Store::init(
            sled::Config::new().temporary(true).open()?,
            spec,
            Genesis::Await,
        )
    }

    fn init(db: sled::Db, spec: &ChainSpec, genesis: Genesis) -> Result<Store, StoreError> {
        let validators = db.open_tree(VALIDATORS)?;
        let mut store = Store {
            cache: Validators::load(&validators)?,
            applying: Mutex::new(()),
            history: Mutex::new(None),
            blocks: db.open_tree(BLOCKS)?,
            block_index: db.open_tree(BLOCK_INDEX)?,
            rounds: db.open_tree(ROUNDS)?,
            validators,
            proposed: db.open_tree(PROPOSED)?,
            meta: db.open_tree(META)?,
            raft_log: db.open_tree(RAFT_LOG)?,
            raft: db.open_tree(RAFT)?,
            db,
            disk: None,
            round_log: None,
            created: false,
            spec: RwLock::new(spec.clone()),
            migrated: false,
            marked: false,
            anchor: RwLock::new(None),
            durable: AtomicU64::new(0),
        };
        match store.meta.get(META_SCHEMA)? {
            None if store.is_empty() && genesis == Genesis::Await => {
                store
                    .meta
                    .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                store.meta.insert(META_AWAITING_CHAIN, &[])?;
                store.db.flush()?;
                return Ok(store);
            }
            None if store.is_empty() => {
                store.create_genesis(spec)?;
                store.created = true;
            }
            None => return Err(StoreError::Foreign("records but no schema version".into())),
            Some(v) => {
                let found =
                    u32::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                        StoreError::Foreign("schema version is not 4 bytes".into())
                    })?);
                if found == 2 {
                    // Schema 3 only added filed round records. The mark goes
                    // to sled's log before any head, so it is durable by the
                    // time one is.
                    store
                        .meta
                        .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                    store.marked = true;
                }
                match found {
                    _ if store.meta.contains_key(META_AWAITING_CHAIN)? => return Ok(store),
                    // Migrated by `open`, once the store has passed its checks.
                    1 => {}
                    2 | SCHEMA_VERSION => {
                        *store.anchor.get_mut().expect("new") =
                            Some(lottery::read_anchor(&store.meta)?)
                    }
                    _ => {
                        return Err(StoreError::Schema {
                            found,
                            expected: SCHEMA_VERSION,
                        })
                    }
                }
            }
        }
        // One-time upgrades of stores from before these keys existed.
        if store.meta.get(META_PROPOSALS_SINCE)?.is_none() {
            store
                .meta
                .insert(META_PROPOSALS_SINCE, &spec.genesis_ms.to_be_bytes())?;
        }
        *store.spec.get_mut().expect("new") = match store.meta.get(META_CHAIN_SPEC)? {
            Some(v) => decode_spec(&v, store.meta.get(META_WEIGHTING)?.as_deref())?,
            None => {
                // A chain from before chain specs: its draws were by stake.
                let genesis = store
                    .block(0)?
                    .ok_or_else(|| StoreError::missing_block(0))?;
                let kept = ChainSpec {
                    genesis_ms: genesis.timestamp_ms,
                    weighting: pos_core::Weighting::Stake,
                    ..spec.clone()
                };
                store.meta.insert(META_CHAIN_SPEC, encode_spec(&kept).0)?;
                kept
            }
        };
        store.check_tip()?;
        store.durable = AtomicU64::new(store.tip()?.index);
        Ok(store)
    }

    /// Whether the store holds a chain; only a store opened with
    /// [`Store::open_awaiting`] may not, until a chain is restored into it.
    pub fn has_chain(&self) -> Result<bool, StoreError> {
        Ok(!self.meta.contains_key(META_AWAITING_CHAIN)?)
    }

    /// Whether opening made a new chain (the directory held none).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The rules this chain was created with.
    pub fn chain_spec(&self) -> ChainSpec {
        read(&self.spec).clone()
    }

    /// The data directory; `None` for a store in memory.
    pub(crate) fn data_dir(&self) -> Option<&Path> {
        self.disk.as_ref().map(|d| d.dir.as_path())
    }

    /// Where exports and imports spool: the data directory, or the system's
    /// temporary directory for a store in memory.
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.data_dir()
            .map_or_else(std::env::temp_dir, Path::to_path_buf)
    }

    /// After an import replaced the trees (or a genesis filled them): the
    /// chain's rules, anchor and validators are theirs.
    pub(crate) fn replaced(&self, spec: ChainSpec, anchor: Anchor) -> Result<(), StoreError> {
        *write(&self.spec) = spec;
        *write(&self.anchor) = Some(anchor);
        self.cache.reload(&self.validators)
    }

    /// Whether opening marked a schema-2 store as schema 3: nothing moved,
    /// but a posd that reads schema 2 refuses it from now on.
    pub fn marked(&self) -> bool {
        self.marked
    }

    /// Whether opening migrated a schema-1 store (to the current schema):
    /// lottery v2 from the next block on ([`Store::lottery_anchor`]), earlier
    /// blocks untouched and still verified by v1.
    pub fn migrated(&self) -> bool {
        self.migrated
    }

    /// Schema 1 to the current one, in one transaction, then synced: the next block's round
    /// is the first drawn by v2, committed to a fresh secret from the OS RNG.
    /// A crash before the sync leaves schema 1, migrated again at the next
    /// start; nothing was published in between.
    fn migrate_v1(&mut self) -> Result<(), StoreError> {
        let (anchor, secret) = lottery::first_round(self.tip()?.index + 1);
        self.meta
            .transaction(|meta| {
                lottery::start_lottery(meta, &anchor, &secret)?;
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                Ok(())
            })
            .map_err(flatten)?;
        *write(&self.anchor) = Some(anchor);
        self.migrated = true;
        self.flush()
    }

    /// The store must hold everything `record` (read from `path`) says was acknowledged.
    fn check_acked(&self, path: &Path, record: &Acked) -> Result<(), StoreError> {
        let now = self.acked_now()?;
        if now == *record {
            return Ok(());
        }
        let block = self.block(record.height)?;
        let detail = if now.applied < record.applied {
            format!(
                "the store has applied {} commands (height {}), but posd acknowledged {} (height {})",
                now.applied, now.height, record.applied, record.height
            )
        } else if block.as_ref().map(|b| b.hash) != Some(record.tip) {
            format!(
                "posd acknowledged block {} with hash {}, but the store holds {}",
                record.height,
                record.tip,
                block.map_or("no such block".to_string(), |b| format!("hash {}", b.hash))
            )
        } else {
            return Ok(());
        };
        Err(StoreError::Damaged {
            path: path.to_owned(),
            detail,
        })
    }

    /// What the store holds now, as the acknowledgement record writes it.
    fn acked_now(&self) -> Result<Acked, StoreError> {
        if !self.has_chain()? {
            return Ok(Acked {
                applied: 0,
                height: 0,
                tip: Digest([0; 32]),
            });
        }
        let tip = self.tip()?;
        Ok(Acked {
            applied: self.applied()?,
            height: tip.index,
            tip: tip.hash,
        })
    }

    /// Commands applied since the store was created (its applied index).
    pub fn applied(&self) -> Result<u64, StoreError> {
        self.meta
            .get(META_APPLIED)?
            .map_or(Ok(0), |v| u64_value(META, &v))
    }

    fn is_empty(&self) -> bool {
        self.chain_trees().iter().all(|t| t.is_empty())
    }

    fn create_genesis(&self, spec: &ChainSpec) -> Result<(), StoreError> {
        let genesis = spec.genesis();
        let (anchor, secret) = lottery::first_round(1);
        (&self.blocks, &self.block_index, &self.meta)
            .transaction(|(blocks, index, meta)| {
                blocks.insert(&0u64.to_be_bytes(), encode(&genesis))?;
                index.insert(&genesis.hash.0, &0u64.to_be_bytes())?;
                meta.insert(META_TIP, &0u64.to_be_bytes())?;
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                let (stored, weighting) = encode_spec(spec);
                meta.insert(META_CHAIN_SPEC, stored)?;
                meta.insert(META_WEIGHTING, weighting)?;
                meta.insert(META_PROPOSALS_SINCE, &spec.genesis_ms.to_be_bytes())?;
                meta.remove(META_AWAITING_CHAIN)?;
                lottery::start_lottery(meta, &anchor, &secret)
            })
            .map_err(flatten)?;
        self.replaced(spec.clone(), anchor)?;
        self.flush()
    }

    /// Makes the genesis of `spec` in a store still waiting for a chain
    /// ([`Store::open_awaiting`]): the one node that bootstraps a cluster
    /// does this, once; every other node receives the chain.
    pub fn bootstrap(&self, spec: &ChainSpec) -> Result<(), StoreError> {
        if self.has_chain()? {
            return Err(StoreError::Invalid(
                "the store already holds a chain".into(),
            ));
        }
        self.create_genesis(spec)
    }

    /// The tip's round record must be readable: a filed one must be in
    /// `round-log/` as filed (a log lost or replaced is refused at start,
    /// not at the next draw that reads it).
    fn check_tip_round(&self) -> Result<(), StoreError> {
        let tip = self.tip()?.index;
        if tip == 0 {
            return Ok(());
        }
        let value = self
            .rounds
            .get(tip.to_be_bytes())?
            .ok_or(StoreError::Corrupt {
                tree: ROUNDS,
                detail: format!("the round record of the tip, block {tip}, is missing"),
            })?;
        let anchor = self.lottery_anchor();
        round_log::record_bytes(self.round_log.as_deref(), anchor.as_ref(), tip, &value).map(drop)
    }

    /// The tip must exist, hash right and link to its parent, and nothing may lie beyond it.
    fn check_tip(&self) -> Result<(), StoreError> {
        let tip = self.tip()?;
        if tip.compute_hash() != tip.hash {
            return Err(pos_core::verify::VerifyError::BadHash { index: tip.index }.into());
        }
        if tip.index > 0 {
            let parent = self.block(tip.index - 1)?.ok_or(StoreError::Corrupt {
                tree: BLOCKS,
                detail: format!("block {} (parent of the tip) is missing", tip.index - 1),
            })?;
            check_link(&parent, &tip)?;
        }
        if let Some((last, _)) = self.blocks.last()? {
            let last = u64_value(BLOCKS, &last)?;
            if last != tip.index {
                return Err(StoreError::Corrupt {
                    tree: BLOCKS,
                    detail: format!("tip is {} but block {last} is stored", tip.index),
                });
            }
        }
        Ok(())
    }

    /// Applies one command (pos-core's transition) in a single multi-tree
    /// transaction, counting it in the applied index whether it was applied
    /// or refused. Not durable until [`Store::flush`] returns. `Err` is the
    /// store failing, never the command being refused.
    pub fn apply(&self, cmd: &Command) -> Result<Outcome, StoreError> {
        let prepared = self.prepare_rounds(&[cmd])?;
        self.trees()
            .transaction(|trees| {
                let state = self.tx_state(trees, &prepared);
                let outcome = transition::apply(&state, cmd)?;
                state.bump_applied()?;
                Ok(outcome)
            })
            .map_err(flatten)
    }

    /// The chain's trees, in this order (an export's spool numbers them
    /// so): everything but the Raft log and vote.
    pub(crate) fn chain_trees(&self) -> [&sled::Tree; 6] {
        [
            &self.blocks,
            &self.block_index,
            &self.rounds,
            &self.validators,
            &self.proposed,
            &self.meta,
        ]
    }

    /// The trees a command may write, for one multi-tree transaction.
    pub(crate) fn trees(&self) -> Trees<'_> {
        Trees(self)
    }

    /// The [`ROUNDS`] values of the rounds `commands` commit, made before
    /// their transaction ([`round_log::prepare`]).
    pub(crate) fn prepare_rounds<'c>(
        &self,
        commands: &[&'c Command],
    ) -> Result<Prepared<'c>, StoreError> {
        let anchor = self.lottery_anchor();
        round_log::prepare(self.round_log.as_deref(), anchor.as_ref(), commands)
    }

    /// pos-core's state over the transactional views of [`Store::trees`],
    /// appending the rounds `prepared` holds.
    pub(crate) fn tx_state<'a>(
        &'a self,
        trees: &'a TxTrees,
        prepared: &'a Prepared<'a>,
    ) -> TxState<'a> {
        let (blocks, block_index, rounds, validators, proposed, meta) = trees.views;
        TxState {
            blocks,
            block_index,
            rounds,
            validators,
            proposed,
            meta,
            overlay: &trees.overlay,
            cache: trees.cache,
            prepared,
            round_log: self.round_log.as_deref(),
        }
    }

    /// Makes everything applied so far durable, power cuts included, and
    /// records it as acknowledged. Nothing is acknowledged before this returns;
    /// after an error the disk may be behind memory, so the caller must stop.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.sync_sled()?;
        let now = self.acked_now()?;
        if let Some(disk) = &self.disk {
            disk.acked.write(&now)?;
        }
        self.durable.store(now.height, Ordering::Release);
        Ok(())
    }

    /// Makes everything sled holds durable, power cuts included, without
    /// touching the acknowledgement record (on a cluster node: its vote, its
    /// purge mark and the state applied so far).
    pub(crate) fn sync_sled(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(disk) = &self.disk {
            disk.files.sync()?;
        }
        Ok(())
    }

    /// Counts everything applied so far as durable without syncing it; for
    /// a cluster node only. There an entry is applied once it is committed,
    /// that is synced in the Raft logs of a majority: the log is the
    /// write-ahead log, and a crash before the state's own sync costs a
    /// re-apply from the log, never an acknowledged write (pos-raft's state
    /// machine). The acknowledgement record is left as it is.
    pub fn durable_in_log(&self) -> Result<(), StoreError> {
        if self.has_chain()? {
            self.durable.store(self.tip()?.index, Ordering::Release);
        }
        Ok(())
    }
}

/// The trees a command may write ([`Store::trees`]), transacted on together.
pub(crate) struct Trees<'a>(&'a Store);

impl Trees<'_> {
    /// One multi-tree sled transaction of `body` (which may run more than
    /// once); the validators it wrote reach the cache only once it committed.
    pub(crate) fn transaction<T>(
        &self,
        body: impl Fn(&TxTrees) -> Result<T, ConflictableTransactionError<StoreError>>,
    ) -> Result<T, TransactionError<StoreError>> {
        let store = self.0;
        let [blocks, block_index, rounds, validators, proposed, meta] = store.chain_trees();
        let _applying = store.applying.lock().unwrap_or_else(|e| e.into_inner());
        let done = (blocks, block_index, rounds, validators, proposed, meta).transaction(|views| {
            let trees = TxTrees {
                views,
                overlay: Overlay::default(),
                cache: &store.cache,
            };
            let outcome = body(&trees)?;
            Ok((outcome, trees.overlay))
        });
        match done {
            Ok((outcome, overlay)) => {
                store.cache.commit(overlay);
                Ok(outcome)
            }
            // sled failing mid-commit may have applied part of it: the
            // cache is read again (the caller stops anyway).
            Err(TransactionError::Storage(e)) => {
                let _ = store.cache.reload(validators);
                Err(TransactionError::Storage(e))
            }
            Err(abort) => Err(abort),
        }
    }
}

/// One run of a transaction's body: sled's views of [`Trees`], what the run
/// wrote to validators, and the cache of the committed ones.
pub(crate) struct TxTrees<'a> {
    views: &'a (
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
    ),
    overlay: Overlay,
    cache: &'a Validators,
}

/// Whether opening an empty directory makes a genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Genesis {
    Create,
    /// A cluster node that joins: its chain comes from the leader.
    Await,
}

pub(crate) fn flatten(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}
