//! How posd lays its state out in sled. Integer keys are big-endian so that
//! sled's byte order is numeric order and range scans walk the chain in order.

/// `u64 BE index -> bincode Block`.
pub const BLOCKS: &str = "blocks";
/// `32-byte block hash -> u64 BE index`: find a block by hash without a scan.
pub const BLOCK_INDEX: &str = "block_index";
/// `u64 BE index -> round record`: the draw that produced that block.
/// Below [`META_LOTTERY_FROM`] (rounds written by schema 1): bincode of
/// schema 1's record (index, seed, candidates, ticket, winner), no version
/// byte. From it: one byte, the record's layout version, then bincode:
/// [`ROUND_LAYOUT_STAKE`] a record drawn by stake (schema 2's record: index,
/// seed, candidates, ticket, winner, rule), [`ROUND_LAYOUT`] the whole
/// `RoundRecord` with its weighting and weights. The height and the version
/// byte say which, so no record is ever decoded by guessing. From schema 3,
/// a record over 4 KiB is kept in the data directory's `round-log/`
/// (`round_log`) and its value here is [`ROUND_LAYOUT_FILED`], its sequence
/// number there (`u64` BE), its length and its CRC-32 (`u32` BE each).
pub const ROUNDS: &str = "rounds";
/// `32-byte address -> bincode Validator`.
pub const VALIDATORS: &str = "validators";
/// `32-byte address -> u64 BE ms`: validators that proposed, and when they
/// first did; they are never forgotten.
pub const PROPOSED: &str = "proposed";
/// Small named values, below.
pub const META: &str = "meta";
/// Cluster nodes of older stores only: `u64 BE index -> Raft log entry`
/// (opaque bytes the cluster crate encodes). Moved out to `raft-log/`
/// ([`crate::raft_log`]) when the node first opens its log.
pub const RAFT_LOG: &str = "raft_log";
/// Cluster nodes only: the Raft vote, committed and purged log ids (opaque bytes).
pub const RAFT: &str = "raft";

/// `u32 BE`: the layout version; bumped on any incompatible change.
pub const META_SCHEMA: &[u8] = b"schema_version";
/// `u64 BE`: index of the last committed block.
pub const META_TIP: &[u8] = b"tip";
/// `u64 BE`: number of active validators, kept so `status` costs O(1).
pub const META_ACTIVE: &[u8] = b"validators_active";
/// `u64 BE`: number of slashed validators.
pub const META_SLASHED: &[u8] = b"validators_slashed";

/// `u64 BE`: commands applied since creation, written in each command's own
/// transaction; the acknowledgement record (outside sled) compares against it.
pub const META_APPLIED: &[u8] = b"applied";

/// `u64 BE ms`: since when `proposed` is kept (set once, when a store first
/// opens with it): validators registered earlier are never forgotten.
pub const META_PROPOSALS_SINCE: &[u8] = b"proposals_since";

/// bincode of the rules the chain was created with (genesis time, reward,
/// stake and BPM limits, slashing: `ChainSpec` without its weighting);
/// written with genesis, never changed.
pub const META_CHAIN_SPEC: &[u8] = b"chain_spec";
/// `bincode Weighting`: the chain's lottery weighting, written with genesis
/// (absent: a chain made before weightings existed, weighed by stake).
pub const META_WEIGHTING: &[u8] = b"lottery_weighting";

/// `u64 BE`: the first block drawn by lottery v2 (1 on a chain created by
/// schema 2; the tip + 1 when a schema-1 store was migrated). Never changes.
pub const META_LOTTERY_FROM: &[u8] = b"lottery_v2_from";
/// 32 bytes: the commitment the round of block [`META_LOTTERY_FROM`] had to
/// reveal a preimage of, made at creation or migration. Never changes.
pub const META_LOTTERY_ANCHOR: &[u8] = b"lottery_v2_anchor";
/// 32 bytes, SECRET: the secret the next block's round reveals. Replaced by
/// each committed round; never served by posd before that round closes.
pub const META_LOTTERY_SECRET: &[u8] = b"lottery_secret";

/// Cluster nodes only, opaque bytes: the log id and membership of the last
/// Raft entry applied, written in that entry's transaction.
pub const META_RAFT_APPLIED: &[u8] = b"raft_applied";
/// Present while a cluster node waits for its chain: it joined with an
/// empty data directory and never makes a genesis of its own.
pub const META_AWAITING_CHAIN: &[u8] = b"awaiting_chain";
/// `u64 BE`: the sequence number of the last record in `round-log/` a
/// [`ROUNDS`] head names, written with that head: the log must hold it at
/// open (absent: none named yet).
pub const META_ROUND_LOG_NAMED: &[u8] = b"round_log_named";

/// The layout version byte of round records drawn by stake from schema 2 on
/// (written so still: a `stake` chain's records stay byte for byte as they were).
pub const ROUND_LAYOUT_STAKE: u8 = 2;
/// The layout version byte of round records drawn under another weighting.
pub const ROUND_LAYOUT: u8 = 3;
/// The first byte of a [`ROUNDS`] value whose record is in `round-log/`.
pub const ROUND_LAYOUT_FILED: u8 = 4;

/// The layout this code reads and writes. Schema 1 (lottery v1 only) is
/// migrated in place when opened: the lottery keys above are added. Schema
/// 2 only lacked filed round records: opening one marks it 3, nothing moved.
pub const SCHEMA_VERSION: u32 = 3;
/// What an export's header calls its records' layout: the records of
/// schema 2, which schema 3 changed only in where it keeps them, so exports
/// of either read alike.
pub const EXPORT_SCHEMA: u32 = 2;
