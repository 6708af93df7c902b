//! How posd lays its state out in sled. Integer keys are big-endian so that
//! sled's byte order is numeric order and range scans walk the chain in order.

/// `u64 BE index -> bincode Block`.
pub const BLOCKS: &str = "blocks";
/// `32-byte block hash -> u64 BE index`: find a block by hash without a scan.
pub const BLOCK_INDEX: &str = "block_index";
/// `u64 BE index -> bincode RoundRecord`: the draw that produced that block.
pub const ROUNDS: &str = "rounds";
/// `32-byte address -> bincode Validator`.
pub const VALIDATORS: &str = "validators";
/// Small named values, below.
pub const META: &str = "meta";

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

/// The layout this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
