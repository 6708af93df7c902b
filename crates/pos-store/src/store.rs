//! The store: opening a data directory, applying commands, reading the chain.

use crate::acked::{self, AckFile, Acked};
use crate::codec::{
    bytes32, decode, decode_round, decode_spec, encode, encode_spec, secret_value, u64_value,
};
use crate::export::import::PARTIAL;
use crate::layout::*;
use crate::machine::TxState;
use crate::sync::{io_err, SledFiles};
use crate::StoreError;
use pos_core::lottery::{expected_commitment, Anchor};
use pos_core::transition::{self, Counts, Outcome};
use pos_core::verify::check_link;
use pos_core::{Address, Block, ChainSpec, Command, Digest, RoundRecord, Secret, Validator};
use rand::RngCore;
use sled::transaction::{TransactionError, Transactional, TransactionalTree};
use std::fs::{File, TryLockError};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Names of the files posd itself keeps in a data directory; anything else
/// in a directory without a chain means it belongs to someone else.
const OWN_FILES: &[&str] = &[LOCK, "sled", "admin.sock", acked::FILE];

/// The lock file's name in a data directory.
pub(crate) const LOCK: &str = "posd.lock";

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
    /// A cluster node's Raft log and vote (empty on a standalone node).
    pub(crate) raft_log: sled::Tree,
    pub(crate) raft: sled::Tree,
    /// The files behind a store on disk; `None` for a temporary one.
    pub(crate) disk: Option<OnDisk>,
    /// Whether [`Store::open`] made a new chain rather than finding one.
    created: bool,
    /// The chain's rules, as stored with it (replaced only by an import).
    spec: RwLock<ChainSpec>,
    /// Whether [`Store::open`] migrated a schema-1 store.
    migrated: bool,
    /// Where lottery v2 begins; `None` only in a schema-1 store not yet
    /// migrated. Replaced only by an import.
    anchor: RwLock<Option<Anchor>>,
    /// Height of the last block made durable by [`Store::flush`] (or found
    /// at open): round records above it are not served yet.
    durable: AtomicU64,
}

/// What a store on disk keeps open besides sled.
pub(crate) struct OnDisk {
    /// The data directory.
    dir: PathBuf,
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
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        if dir.join(PARTIAL).exists() {
            return Err(StoreError::Damaged {
                path: dir.to_owned(),
                detail: "an import into it (posd import, or a cluster snapshot) did not finish, \
                    so it holds part of a chain; remove the directory, then import again or \
                    re-add the node to its cluster"
                    .into(),
            });
        }
        let sled_dir = dir.join("sled");
        let no_store = !sled_dir.exists();
        // Someone else's directory is refused before posd leaves a file in it.
        if no_store && !dir.join(acked::FILE).exists() {
            refuse_foreign(dir)?;
        }
        Store::open_locked(dir, spec, lock(dir)?, genesis)
    }

    /// [`Store::open`] once `dir`'s lock is taken (`lock`, held from now on).
    pub(crate) fn open_locked(
        dir: &Path,
        spec: &ChainSpec,
        lock: File,
        genesis: Genesis,
    ) -> Result<Store, StoreError> {
        let sled_dir = dir.join("sled");
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
        private_dir(&sled_dir)?;
        let db = open_sled(&sled_dir).map_err(|e| StoreError::Damaged {
            path: sled_dir.clone(),
            detail: format!("the store cannot be opened: {e}"),
        })?;
        let mut store = Store::init(db, spec, genesis)?;
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
        let mut store = Store {
            blocks: db.open_tree(BLOCKS)?,
            block_index: db.open_tree(BLOCK_INDEX)?,
            rounds: db.open_tree(ROUNDS)?,
            validators: db.open_tree(VALIDATORS)?,
            proposed: db.open_tree(PROPOSED)?,
            meta: db.open_tree(META)?,
            raft_log: db.open_tree(RAFT_LOG)?,
            raft: db.open_tree(RAFT)?,
            db,
            disk: None,
            created: false,
            spec: RwLock::new(spec.clone()),
            migrated: false,
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
                match found {
                    _ if store.meta.contains_key(META_AWAITING_CHAIN)? => return Ok(store),
                    // Migrated by `open`, once the store has passed its checks.
                    1 => {}
                    SCHEMA_VERSION => {
                        *store.anchor.get_mut().expect("new") = Some(store.read_anchor()?)
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
                let genesis = store.block(0)?.ok_or_else(|| missing_block(0))?;
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

    /// After an import replaced the trees: the chain's rules and anchor are its.
    pub(crate) fn replaced(&self, spec: ChainSpec, anchor: Anchor) {
        *write(&self.spec) = spec;
        *write(&self.anchor) = Some(anchor);
    }

    /// Whether opening migrated a schema-1 store to schema 2: lottery v2
    /// from the next block on ([`Store::lottery_anchor`]), earlier blocks
    /// untouched and still verified by v1.
    pub fn migrated(&self) -> bool {
        self.migrated
    }

    /// Schema 1 to 2, in one transaction, then synced: the next block's round
    /// is the first drawn by v2, committed to a fresh secret from the OS RNG.
    /// A crash before the sync leaves schema 1, migrated again at the next
    /// start; nothing was published in between.
    fn migrate_v1(&mut self) -> Result<(), StoreError> {
        let (anchor, secret) = first_round(self.tip()?.index + 1);
        self.meta
            .transaction(|meta| {
                start_lottery(meta, &anchor, &secret)?;
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                Ok(())
            })
            .map_err(flatten)?;
        *write(&self.anchor) = Some(anchor);
        self.migrated = true;
        self.flush()
    }

    fn read_anchor(&self) -> Result<Anchor, StoreError> {
        let get = |key: &[u8]| {
            self.meta.get(key)?.ok_or_else(|| StoreError::Corrupt {
                tree: META,
                detail: format!("{} is missing", String::from_utf8_lossy(key)),
            })
        };
        Ok(Anchor {
            from: u64_value(META, &get(META_LOTTERY_FROM)?)?,
            commitment: Digest(bytes32(META, &get(META_LOTTERY_ANCHOR)?)?),
        })
    }

    /// Where the chain's lottery v2 begins; `None` before a schema-1 store's
    /// migration (which [`Store::open`] does).
    pub fn lottery_anchor(&self) -> Option<Anchor> {
        *read(&self.anchor)
    }

    /// The secret the next block's round will reveal. For the proposer that
    /// closes that round only: nothing may serve it (posctl, HTTP, the
    /// validator protocol, logs) before then.
    pub fn pending_secret(&self) -> Result<Secret, StoreError> {
        match self.meta.get(META_LOTTERY_SECRET)? {
            Some(v) => secret_value(META, &v),
            None => Err(StoreError::Corrupt {
                tree: META,
                detail: "the lottery's pending secret is missing".into(),
            }),
        }
    }

    /// The open round's commitment: public, so that anyone can hold the
    /// node to it when the round closes.
    pub fn next_commitment(&self) -> Result<Digest, StoreError> {
        Ok(self.pending_secret()?.commitment())
    }

    /// What the round of block `index` had to reveal a preimage of (`None`
    /// under v1): the anchor's commitment, or the previous round's.
    pub fn commitment_for(&self, index: u64) -> Result<Option<Digest>, StoreError> {
        let anchor = self.lottery_anchor();
        let anchor = anchor.as_ref();
        let previous = match anchor {
            Some(a) if index > a.from => self
                .round(index - 1)?
                .and_then(|r| r.rule.next_commitment()),
            _ => None,
        };
        expected_commitment(anchor, index, previous).map_err(|e| StoreError::Corrupt {
            tree: ROUNDS,
            detail: format!("round {index}: {e}"),
        })
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
        [
            &self.blocks,
            &self.block_index,
            &self.rounds,
            &self.validators,
            &self.proposed,
            &self.meta,
        ]
        .iter()
        .all(|t| t.is_empty())
    }

    fn create_genesis(&self, spec: &ChainSpec) -> Result<(), StoreError> {
        let genesis = spec.genesis();
        let (anchor, secret) = first_round(1);
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
                start_lottery(meta, &anchor, &secret)
            })
            .map_err(flatten)?;
        self.replaced(spec.clone(), anchor);
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
        self.trees()
            .transaction(|trees| {
                let state = Store::tx_state(trees);
                let outcome = transition::apply(&state, cmd)?;
                state.bump_applied()?;
                Ok(outcome)
            })
            .map_err(flatten)
    }

    /// The trees a command may write, for one multi-tree transaction.
    pub(crate) fn trees(&self) -> ChainTrees<'_> {
        (
            &self.blocks,
            &self.block_index,
            &self.rounds,
            &self.validators,
            &self.proposed,
            &self.meta,
        )
    }

    /// pos-core's state over the transactional views of [`Store::trees`].
    pub(crate) fn tx_state<'a>(trees: &'a TxTrees) -> TxState<'a> {
        let (blocks, block_index, rounds, validators, proposed, meta) = trees;
        TxState {
            blocks,
            block_index,
            rounds,
            validators,
            proposed,
            meta,
        }
    }

    /// Makes everything applied so far durable, power cuts included, and
    /// records it as acknowledged. Nothing is acknowledged before this returns;
    /// after an error the disk may be behind memory, so the caller must stop.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        let now = self.acked_now()?;
        if let Some(disk) = &self.disk {
            disk.files.sync()?;
            disk.acked.write(&now)?;
        }
        self.durable.store(now.height, Ordering::Release);
        Ok(())
    }

    pub fn tip(&self) -> Result<Block, StoreError> {
        let index = match self.meta.get(META_TIP)? {
            Some(v) => u64_value(META, &v)?,
            None => return Err(StoreError::Foreign("no tip".into())),
        };
        self.block(index)?.ok_or_else(|| missing_block(index))
    }

    pub fn block(&self, index: u64) -> Result<Option<Block>, StoreError> {
        self.blocks
            .get(index.to_be_bytes())?
            .map(|v| decode(BLOCKS, &v))
            .transpose()
    }

    pub fn block_by_hash(&self, hash: &Digest) -> Result<Option<Block>, StoreError> {
        match self.block_index.get(hash.0)? {
            Some(i) => self.block(u64_value(BLOCK_INDEX, &i)?),
            None => Ok(None),
        }
    }

    /// The record of block `index`'s round, once durable: a record reveals
    /// its round's secret, which must never be seen while a crash could
    /// still bring that secret back as the pending one.
    pub fn round(&self, index: u64) -> Result<Option<RoundRecord>, StoreError> {
        if index > self.durable_height() {
            return Ok(None);
        }
        self.rounds
            .get(index.to_be_bytes())?
            .map(|v| decode_round(self.lottery_anchor().as_ref(), index, &v))
            .transpose()
    }

    /// The records a draw of block `index` under `weighting` reads (the
    /// last `age_window` under `stake_age`, none otherwise), oldest first,
    /// durable or not: for the node's own draw, never to be served.
    pub fn history(
        &self,
        index: u64,
        weighting: &pos_core::Weighting,
    ) -> Result<Vec<RoundRecord>, StoreError> {
        let anchor = self.lottery_anchor();
        let from = index.saturating_sub(weighting.history()).max(1);
        let mut out = Vec::new();
        for i in from..index {
            if let Some(v) = self.rounds.get(i.to_be_bytes())? {
                out.push(decode_round(anchor.as_ref(), i, &v)?);
            }
        }
        Ok(out)
    }

    /// Height of the last block on stable storage.
    pub fn durable_height(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Blocks `from..=to` in order, read lazily: constant memory whatever the range.
    pub fn blocks(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<Block, StoreError>> + Send + 'static {
        height_range(&self.blocks, BLOCKS, from, to)
    }

    /// Durable round records `from..=to` in order, read lazily (genesis has none).
    pub fn rounds(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<RoundRecord, StoreError>> + Send + 'static {
        let anchor = self.lottery_anchor();
        let to = to.min(self.durable_height());
        self.rounds
            .range(from.to_be_bytes()..=to.to_be_bytes())
            .map(move |kv| {
                let (key, value) = kv?;
                decode_round(anchor.as_ref(), u64_value(ROUNDS, &key)?, &value)
            })
    }

    pub fn validator(&self, address: &Address) -> Result<Option<Validator>, StoreError> {
        self.validators
            .get(address.0 .0)?
            .map(|v| decode(VALIDATORS, &v))
            .transpose()
    }

    /// Whether the validator ever proposed (it is then never forgotten).
    pub fn proposed(&self, address: &Address) -> Result<bool, StoreError> {
        Ok(self.proposed.get(address.0 .0)?.is_some())
    }

    /// Every validator, by address, read lazily.
    pub fn validators(
        &self,
    ) -> impl Iterator<Item = Result<Validator, StoreError>> + Send + 'static {
        self.validators.iter().map(|kv| decode(VALIDATORS, &kv?.1))
    }

    pub fn counts(&self) -> Result<Counts, StoreError> {
        let read = |key| -> Result<u64, StoreError> {
            self.meta.get(key)?.map_or(Ok(0), |v| u64_value(META, &v))
        };
        Ok(Counts {
            active: read(META_ACTIVE)?,
            slashed: read(META_SLASHED)?,
        })
    }

    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Up to `limit` block hashes, in order, that start with `prefix` and then
    /// with the high half `nibble` of the next byte (an odd count of hex digits).
    pub fn hashes_with_prefix(
        &self,
        prefix: &[u8],
        nibble: Option<u8>,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        keys_with_prefix(&self.block_index, BLOCK_INDEX, prefix, nibble, limit)
    }

    /// Up to `limit` validator addresses, in order, selected as by [`Store::hashes_with_prefix`].
    pub fn addresses_with_prefix(
        &self,
        prefix: &[u8],
        nibble: Option<u8>,
        limit: usize,
    ) -> Result<Vec<Address>, StoreError> {
        let keys = keys_with_prefix(&self.validators, VALIDATORS, prefix, nibble, limit)?;
        Ok(keys.into_iter().map(Address).collect())
    }
}

/// A scan of a tree of 32-byte keys from the first key the prefix allows,
/// up to the first key it does not.
fn keys_with_prefix(
    tree: &sled::Tree,
    name: &'static str,
    prefix: &[u8],
    nibble: Option<u8>,
    limit: usize,
) -> Result<Vec<Digest>, StoreError> {
    let mut start = prefix.to_vec();
    start.extend(nibble.map(|n| n << 4));
    let selected = |key: &[u8]| {
        key.starts_with(prefix)
            && (nibble.is_none() || key.get(prefix.len()).map(|b| b >> 4) == nibble)
    };
    let mut found = Vec::new();
    for key in tree.range(start..).keys() {
        let key = key?;
        if found.len() == limit || !selected(&key) {
            break;
        }
        let key = key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            tree: name,
            detail: format!("a key of {} bytes, not 32", key.len()),
        })?;
        found.push(Digest(key));
    }
    Ok(found)
}

/// Opens sled in `sled_dir`. We hold `posd.lock`, so if sled's own file lock
/// is busy its holder is a store this process just dropped, whose flusher
/// thread sled lets finish in the background: wait for it, briefly.
fn open_sled(sled_dir: &Path) -> sled::Result<sled::Db> {
    let config = sled::Config::new()
        .path(sled_dir)
        .cache_capacity(8 * 1024 * 1024);
    let mut waits = 0;
    loop {
        match config.open() {
            // sled says so only in its message (ErrorKind::Other).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock") && waits < 200 =>
            {
                waits += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Takes `dir`'s lock file, held for as long as the returned file is open:
/// a second posd (or an import) on the same directory fails to take it.
pub(crate) fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK);
    let lock = File::create(&path).map_err(io_err(&path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(dir.to_owned())),
        Err(TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// Decoded values of a tree keyed by height, `from..=to`, read lazily.
pub(crate) fn height_range<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<T, StoreError>> + Send + 'static {
    tree.range(from.to_be_bytes()..=to.to_be_bytes())
        .map(move |kv| decode(name, &kv?.1))
}

pub(crate) fn missing_block(index: u64) -> StoreError {
    StoreError::Corrupt {
        tree: BLOCKS,
        detail: format!("block {index} is missing"),
    }
}

/// The first v2 round, that of block `from`: its secret, 32 bytes from the
/// OS RNG (drawn outside any transaction body, which sled may run twice),
/// and the anchor committing to it.
fn first_round(from: u64) -> (Anchor, Secret) {
    let mut secret = Secret([0; 32]);
    rand::rngs::OsRng.fill_bytes(&mut secret.0);
    let anchor = Anchor {
        from,
        commitment: secret.commitment(),
    };
    (anchor, secret)
}

/// Records where lottery v2 starts, and its first secret as the pending one.
fn start_lottery(
    meta: &TransactionalTree,
    anchor: &Anchor,
    secret: &Secret,
) -> Result<(), sled::transaction::ConflictableTransactionError<StoreError>> {
    meta.insert(META_LOTTERY_FROM, &anchor.from.to_be_bytes())?;
    meta.insert(META_LOTTERY_ANCHOR, &anchor.commitment.0)?;
    meta.insert(META_LOTTERY_SECRET, &secret.0)?;
    Ok(())
}

/// Creates `dir` with mode 0700, or takes group and other access away from
/// an existing one: the store holds the lottery's pending secret.
fn private_dir(dir: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.permissions().mode() & 0o077 == 0 => Ok(()),
        Ok(_) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir)),
        Err(e) => Err(io_err(dir)(e)),
    }
}

pub(crate) type ChainTrees<'a> = (
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
);
pub(crate) type TxTrees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

/// Whether opening an empty directory makes a genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Genesis {
    Create,
    /// A cluster node that joins: its chain comes from the leader.
    Await,
}

/// A lock's value; a panic elsewhere while holding it left it whole (each
/// write is one assignment).
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn flatten(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

fn refuse_foreign(dir: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
    let strangers: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !OWN_FILES.iter().any(|own| e.file_name() == *own))
        .map(|e| e.path())
        .collect();
    if let Some(first) = strangers.first() {
        return Err(StoreError::Foreign(format!(
            "{} has no chain but holds other files (e.g. {}); use a new or empty directory",
            dir.display(),
            first.display()
        )));
    }
    Ok(())
}
