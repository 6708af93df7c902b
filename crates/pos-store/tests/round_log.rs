//! Round records too big for sled's pages, filed in `round-log/`
//! (`round_log.rs`), on real stores: never in sled's blob files, read back
//! alike by every reader, orphans ignored, damage refused, and older stores
//! opened.

#[path = "../benches/closing/mod.rs"]
mod closing;

use pos_core::{ChainSpec, Command, RoundRecord};
use pos_store::export::import;
use pos_store::{Store, StoreError};
use std::path::{Path, PathBuf};

/// The record of a round `cmd` committed.
fn record(cmd: Command) -> RoundRecord {
    let Command::CommitRound { round, .. } = cmd else {
        unreachable!("closing makes rounds")
    };
    round
}

/// A store with `n` validators and `rounds` rounds among all of them; the
/// records committed, in order.
fn chain(data: &Path, n: u64, rounds: u32) -> (Store, Vec<RoundRecord>) {
    let store = Store::open(data, &ChainSpec::default()).unwrap();
    let addresses = closing::register(&store, n);
    let committed = (0..rounds)
        .map(|_| record(closing::close(&store, &addresses)))
        .collect();
    (store, committed)
}

/// [`chain`] in a temporary directory, the store closed: the directory
/// (removed when dropped), the data directory and the records.
fn closed_chain(n: u64, rounds: u32) -> (tempfile::TempDir, PathBuf, Vec<RoundRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, committed) = chain(&data, n, rounds);
    (dir, data, committed)
}

/// Files sled wrote for values too big for its log.
fn blobs(data: &Path) -> usize {
    std::fs::read_dir(data.join("sled").join("blobs")).map_or(0, |d| d.count())
}

/// Bytes in the round log's files.
fn filed_bytes(data: &Path) -> u64 {
    std::fs::read_dir(data.join("round-log"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn all_rounds(store: &Store, to: u64) -> Vec<RoundRecord> {
    store.rounds(1, to).collect::<Result<_, _>>().unwrap()
}

/// Edits the closed store at `data` through sled itself.
fn edit_sled(data: &Path, edit: impl FnOnce(&sled::Db)) {
    let db = sled::open(data.join("sled")).unwrap();
    edit(&db);
    db.flush().unwrap();
}

/// The rounds tree's value for block `height`.
fn stored(db: &sled::Db, height: u64) -> Vec<u8> {
    let rounds = db.open_tree("rounds").unwrap();
    rounds.get(height.to_be_bytes()).unwrap().unwrap().to_vec()
}

#[test]
fn big_rounds_never_reach_sled_blobs_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // ~175 KB a record: each a blob of sled's before, and every few rounds
    // the rounds tree's leaf rewritten whole as one.
    let (store, committed) = chain(&data, 5_000, 20);
    assert_eq!(blobs(&data), 0, "sled wrote round records to blob files");
    assert!(filed_bytes(&data) > 20 * 150_000, "the records are filed");
    for (record, height) in committed.iter().zip(1..) {
        assert_eq!(store.round(height).unwrap().as_ref(), Some(record));
    }
    assert_eq!(all_rounds(&store, 20), committed);
    store.check_all().unwrap();
    assert!(
        store.size_on_disk().unwrap() > filed_bytes(&data),
        "the store's size counts the round log"
    );

    let mut export = Vec::new();
    store.export_to(&mut export, None).unwrap();
    drop(store);
    edit_sled(&data, |db| {
        assert_eq!(stored(db, 7).len(), 17, "sled holds only a head");
    });
    let reopened = Store::open(&data, &ChainSpec::default()).unwrap();
    assert_eq!(all_rounds(&reopened, 20), committed);

    let copy = dir.path().join("copy");
    import(&export[..], &copy).unwrap();
    let imported = Store::open(&copy, &ChainSpec::default()).unwrap();
    assert_eq!(all_rounds(&imported, 20), committed);
    imported.check_all().unwrap();
    assert_eq!(
        blobs(&copy),
        0,
        "the import wrote round records to blob files"
    );
    drop(imported);
    // The import named its last record too: a copy without its log is
    // refused before any record is read.
    let log = copy.join("round-log");
    std::fs::rename(&log, dir_aside(&log)).unwrap();
    let err = Store::open(&copy, &ChainSpec::default())
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("the store names record 20"),
        "{err}"
    );
    std::fs::rename(dir_aside(&log), &log).unwrap();

    // Restored over a store that filed records of its own, which go.
    let elsewhere = dir.path().join("other");
    let (other, _) = chain(&elsewhere, 300, 3);
    other.restore_from(&export[..]).unwrap();
    assert_eq!(all_rounds(&other, 20), committed);
    other.check_all().unwrap();
    assert_eq!(filed_bytes(&elsewhere), filed_bytes(&copy));
}

#[test]
fn small_rounds_stay_in_sled_as_schema_2_wrote_them() {
    // ~4 candidates' records: a few hundred bytes.
    let (_dir, data, committed) = closed_chain(4, 3);
    assert_eq!(filed_bytes(&data), 0, "nothing filed");
    edit_sled(&data, |db| {
        assert_eq!(stored(db, 2)[0], 2, "a stake record")
    });
    let store = Store::open(&data, &ChainSpec::default()).unwrap();
    assert_eq!(all_rounds(&store, 3), committed);
}

#[test]
fn a_record_filed_for_a_round_that_never_committed_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, &ChainSpec::default()).unwrap();
    let addresses = closing::register(&store, 400);
    let first = record(closing::close(&store, &addresses));
    let filed = filed_bytes(&data);
    // A round the store refuses (it no longer fits the tip) was filed
    // before the transaction that refused it.
    let stale = closing::round(&store, &addresses);
    let second = record(closing::close(&store, &addresses));
    assert!(store.apply(&stale).unwrap().is_err(), "a stale round");
    assert!(filed_bytes(&data) > filed + 2 * 10_000, "two more filed");
    let third = record(closing::close(&store, &addresses));
    assert_eq!(all_rounds(&store, 3), [first, second, third.clone()]);
    drop(store);
    let store = Store::open(&data, &ChainSpec::default()).unwrap();
    assert_eq!(store.round(3).unwrap(), Some(third));
    store.check_all().unwrap();
}

#[test]
fn a_head_that_names_another_or_no_record_is_damage_not_a_record() {
    // ~14 KB records, filed.
    let (_dir, data, _) = closed_chain(400, 3);
    edit_sled(&data, |db| {
        let rounds = db.open_tree("rounds").unwrap();
        // Block 1's head names record 2 of the log (block 2's) and its
        // length, with block 1's checksum; block 2's names a record never
        // filed.
        let (one, mut two) = (stored(db, 1), stored(db, 2));
        let forged = [&two[..13], &one[13..]].concat();
        rounds.insert(1u64.to_be_bytes(), forged).unwrap();
        two[1..9].copy_from_slice(&99u64.to_be_bytes());
        rounds.insert(2u64.to_be_bytes(), two).unwrap();
    });
    let store = Store::open(&data, &ChainSpec::default()).unwrap();
    for (height, says) in [
        (1, "record 2 of round-log is not the one filed for it"),
        (2, "record 99 is missing from round-log"),
    ] {
        let err = store.round(height).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { tree: "rounds", .. }),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{err}");
    }
    assert!(store.check_all().is_err());
}

#[test]
fn a_store_whose_round_log_is_gone_or_another_is_refused_at_start() {
    let (_dir, data, _) = closed_chain(400, 2);
    let refused = |says: &str| {
        let err = Store::open(&data, &ChainSpec::default())
            .err()
            .expect("refused");
        assert!(err.to_string().contains(says), "{err}");
    };
    // Another store's log of as many records: each is not the one filed.
    let (_other, elsewhere, _) = closed_chain(300, 2);
    let log = data.join("round-log");
    std::fs::rename(&log, dir_aside(&log)).unwrap();
    std::fs::rename(elsewhere.join("round-log"), &log).unwrap();
    refused("round 2: record 2 of round-log is not the one filed for it");
    std::fs::remove_dir_all(&log).unwrap();
    refused("it holds round records up to 0, but the store names record 2");
}

/// Where a directory is moved aside.
fn dir_aside(dir: &Path) -> PathBuf {
    dir.with_extension("aside")
}

#[test]
fn a_schema_2_store_opens_marked_3_with_its_records() {
    let (_dir, data, committed) = closed_chain(4, 2);
    let schema = |db: &sled::Db| {
        let meta = db.open_tree("meta").unwrap();
        let v = meta.get("schema_version").unwrap().unwrap();
        (meta, u32::from_be_bytes(v.as_ref().try_into().unwrap()))
    };
    edit_sled(&data, |db| {
        let (meta, found) = schema(db);
        assert_eq!(found, 3);
        meta.insert("schema_version", &2u32.to_be_bytes()).unwrap();
    });
    std::fs::remove_dir_all(data.join("round-log")).unwrap();
    let store = Store::open(&data, &ChainSpec::default()).unwrap();
    assert_eq!(all_rounds(&store, 2), committed);
    store.flush().unwrap();
    drop(store);
    edit_sled(&data, |db| assert_eq!(schema(db).1, 3));
}

#[test]
fn a_round_log_that_lost_a_named_record_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let segment = data.join("round-log").join("1.log");
    let store = Store::open(&data, &ChainSpec::default()).unwrap();
    let addresses = closing::register(&store, 400);
    let mut ends = Vec::new();
    for _ in 0..3 {
        closing::close(&store, &addresses);
        ends.push(std::fs::metadata(&segment).unwrap().len());
    }
    // The tip's own record is small, in sled: its check at open passes.
    closing::close(&store, &addresses[..4]);
    drop(store);
    let whole = std::fs::read(&segment).unwrap();
    let refused = |says: &str| {
        let err = Store::open(&data, &ChainSpec::default())
            .err()
            .expect("refused");
        assert!(err.to_string().contains(says), "{err}");
    };

    // A flipped byte in the last record, named by block 3: not a torn
    // append to cut off, damage to keep for inspection.
    let mut flipped = whole.clone();
    flipped[whole.len() - 10] ^= 1;
    std::fs::write(&segment, &flipped).unwrap();
    refused("unreadable, but entry 3 was acknowledged");
    assert_eq!(std::fs::read(&segment).unwrap(), flipped, "left as it is");

    // The last record gone whole.
    std::fs::write(&segment, &whole[..ends[1] as usize]).unwrap();
    refused("it holds round records up to 2, but the store names record 3");

    std::fs::write(&segment, &whole).unwrap();
    Store::open(&data, &ChainSpec::default()).unwrap();
}
