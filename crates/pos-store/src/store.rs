//! The store: opening a data directory, applying commands, reading the chain.

use crate::acked::{self, AckFile, Acked};
use crate::codec::{decode, encode, u64_value};
use crate::export::import::PARTIAL;
use crate::layout::*;
use crate::machine::TxState;
use crate::sync::{io_err, SledFiles};
use crate::StoreError;
use pos_core::transition::{self, Counts, Outcome};
use pos_core::verify::check_link;
use pos_core::{Address, Block, Command, Digest, RoundRecord, Validator};
use sled::transaction::{TransactionError, Transactional};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// Names of the files posd itself keeps in a data directory; anything else
/// in a directory without a chain means it belongs to someone else.
const OWN_FILES: &[&str] = &[LOCK, "sled", "admin.sock", acked::FILE];

/// The lock file's name in a data directory.
pub(crate) const LOCK: &str = "posd.lock";

/// An open data directory. Cheap to share behind an `Arc`: sled is
/// thread-safe, and only posd's single writer calls [`Store::apply`].
pub struct Store {
    db: sled::Db,
    pub(crate) blocks: sled::Tree,
    pub(crate) block_index: sled::Tree,
    pub(crate) rounds: sled::Tree,
    pub(crate) validators: sled::Tree,
    pub(crate) proposed: sled::Tree,
    pub(crate) meta: sled::Tree,
    /// The files behind a store on disk; `None` for a temporary one.
    disk: Option<OnDisk>,
    /// Whether [`Store::open`] made a new chain rather than finding one.
    created: bool,
}

/// What a store on disk keeps open besides sled.
struct OnDisk {
    /// The data directory.
    dir: PathBuf,
    files: SledFiles,
    acked: AckFile,
    /// Held for the store's life: a second posd on the same directory fails to take it.
    _lock: File,
}

impl Store {
    /// Opens (or creates, with a genesis block stamped `now_ms`) the chain in `dir`,
    /// then checks its schema version, its tip, and that it still holds
    /// everything the acknowledgement record says posd promised.
    pub fn open(dir: &Path, now_ms: u64) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        if dir.join(PARTIAL).exists() {
            return Err(StoreError::Unfinished(dir.to_owned()));
        }
        let sled_dir = dir.join("sled");
        let no_store = !sled_dir.exists();
        // Someone else's directory is refused before posd leaves a file in it.
        if no_store && !dir.join(acked::FILE).exists() {
            refuse_foreign(dir)?;
        }
        let lock = lock(dir)?;
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
        let db = sled_config(&sled_dir)
            .open()
            .map_err(|e| StoreError::Damaged {
                path: sled_dir.clone(),
                detail: format!("the store cannot be opened: {e}"),
            })?;
        Store::init(db, now_ms)?.attach(dir, lock, record)
    }

    /// Adds what a store in `dir` keeps besides sled: sled's files synced
    /// (so a commit only has to sync what it appends), and the
    /// acknowledgement record, checked against the store if there is one,
    /// else made from it. `lock` is the directory's, held from now on.
    pub(crate) fn attach(
        mut self,
        dir: &Path,
        lock: File,
        record: Option<(AckFile, Acked)>,
    ) -> Result<Store, StoreError> {
        let files = SledFiles::open(dir, &dir.join("sled"))?;
        let acked = match record {
            Some((file, acked)) => {
                self.check_acked(&dir.join(acked::FILE), &acked)?;
                file
            }
            None => AckFile::create(dir, &self.acked_now()?)?,
        };
        self.disk = Some(OnDisk {
            dir: dir.to_owned(),
            files,
            acked,
            _lock: lock,
        });
        Ok(self)
    }

    /// A throw-away store in memory, for tests.
    pub fn temporary(now_ms: u64) -> Result<Store, StoreError> {
        Store::init(sled::Config::new().temporary(true).open()?, now_ms)
    }

    /// The trees of `db`, unchecked: [`Store::init`] checks them, an import fills them.
    pub(crate) fn of(db: sled::Db) -> Result<Store, StoreError> {
        Ok(Store {
            blocks: db.open_tree(BLOCKS)?,
            block_index: db.open_tree(BLOCK_INDEX)?,
            rounds: db.open_tree(ROUNDS)?,
            validators: db.open_tree(VALIDATORS)?,
            proposed: db.open_tree(PROPOSED)?,
            meta: db.open_tree(META)?,
            db,
            disk: None,
            created: false,
        })
    }

    fn init(db: sled::Db, now_ms: u64) -> Result<Store, StoreError> {
        Store::of(db)?.checked(now_ms)
    }

    /// Checks the trees as a start does (schema version, tip), making a
    /// genesis block stamped `now_ms` in an empty store.
    pub(crate) fn checked(self, now_ms: u64) -> Result<Store, StoreError> {
        let mut store = self;
        match store.meta.get(META_SCHEMA)? {
            None if store.is_empty() => {
                store.create_genesis(now_ms)?;
                store.created = true;
            }
            None => return Err(StoreError::Foreign("records but no schema version".into())),
            Some(v) => {
                let found =
                    u32::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                        StoreError::Foreign("schema version is not 4 bytes".into())
                    })?);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
        }
        if store.meta.get(META_PROPOSALS_SINCE)?.is_none() {
            store
                .meta
                .insert(META_PROPOSALS_SINCE, &now_ms.to_be_bytes())?;
        }
        store.check_tip()?;
        Ok(store)
    }

    /// Where snapshots spool what changes: the data directory, or the
    /// system's temporary directory for a store in memory.
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.disk
            .as_ref()
            .map_or_else(std::env::temp_dir, |d| d.dir.clone())
    }

    /// Whether opening made a new chain (the directory held none).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The store must hold everything `record` (read from `path`) says was acknowledged.
    fn check_acked(&self, path: &Path, record: &Acked) -> Result<(), StoreError> {
        let now = self.acked_now()?;
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

    fn create_genesis(&self, now_ms: u64) -> Result<(), StoreError> {
        let genesis = Block::genesis(now_ms);
        (&self.blocks, &self.block_index, &self.meta)
            .transaction(|(blocks, index, meta)| {
                blocks.insert(&0u64.to_be_bytes(), encode(&genesis))?;
                index.insert(&genesis.hash.0, &0u64.to_be_bytes())?;
                meta.insert(META_TIP, &0u64.to_be_bytes())?;
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                Ok(())
            })
            .map_err(flatten)?;
        self.flush()
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
        (
            &self.blocks,
            &self.block_index,
            &self.rounds,
            &self.validators,
            &self.proposed,
            &self.meta,
        )
            .transaction(
                |(blocks, block_index, rounds, validators, proposed, meta)| {
                    let state = TxState {
                        blocks,
                        block_index,
                        rounds,
                        validators,
                        proposed,
                        meta,
                    };
                    let outcome = transition::apply(&state, cmd)?;
                    state.bump_applied()?;
                    Ok(outcome)
                },
            )
            .map_err(flatten)
    }

    /// Makes everything applied so far durable, power cuts included, and
    /// records it as acknowledged. Nothing is acknowledged before this returns;
    /// after an error the disk may be behind memory, so the caller must stop.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(disk) = &self.disk {
            disk.files.sync()?;
            disk.acked.write(&self.acked_now()?)?;
        }
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

    pub fn round(&self, index: u64) -> Result<Option<RoundRecord>, StoreError> {
        self.rounds
            .get(index.to_be_bytes())?
            .map(|v| decode(ROUNDS, &v))
            .transpose()
    }

    /// Blocks `from..=to` in order, read lazily: constant memory whatever the range.
    pub fn blocks(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<Block, StoreError>> + Send + 'static {
        height_range(&self.blocks, BLOCKS, from, to)
    }

    /// Round records `from..=to` in order, read lazily (genesis has none).
    pub fn rounds(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<RoundRecord, StoreError>> + Send + 'static {
        height_range(&self.rounds, ROUNDS, from, to)
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

/// How posd opens sled at `path`, whether serving or importing.
pub(crate) fn sled_config(path: &Path) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(8 * 1024 * 1024)
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

fn flatten(e: TransactionError<StoreError>) -> StoreError {
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
