//! The export format against real stores: round trips, and every kind of
//! damage refused at its line before anything is written.

mod common;

use common::{addr, commit_among, register};
use pos_core::Command;
use pos_store::export::{import, ImportError};
use pos_store::Store;
use std::path::Path;

/// A store with some of everything: rounds among several candidates, a
/// slashed validator, recorded proposals and a forgotten validator.
fn sample(dir: &Path) -> Store {
    let store = Store::open(dir, 1).unwrap();
    for (n, stake) in [(1, 50), (2, 70), (3, 90), (4, 5), (5, 7)] {
        register(&store, n, stake);
    }
    for bpm in 60..66 {
        commit_among(&store, &[1, 2, 3], bpm);
    }
    let apply = |cmd| store.apply(&cmd).unwrap().unwrap();
    apply(Command::Slash {
        address: addr(3),
        reason: "malformed block proposal: '72.5'".into(),
        at_ms: 1_795_000_001_000,
    });
    for n in [1, 2] {
        apply(Command::Proposed {
            address: addr(n),
            at_ms: 1_795_000_002_000 + n as u64,
        });
    }
    apply(Command::Forget {
        addresses: vec![addr(5)],
        registered_by_ms: 1_795_000_000_000,
    });
    commit_among(&store, &[1, 2], 70);
    store.flush().unwrap();
    store
}

fn export(store: &Store) -> Vec<u8> {
    store.export(Vec::new()).unwrap().1
}

/// The export of a [`sample`] store.
fn sample_export() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    export(&sample(dir.path()))
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

/// Imports `bytes` into a new directory; the error, which must leave nothing behind.
fn refused(bytes: &[u8]) -> String {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("new");
    let err = import(bytes, &target).expect_err("import refused");
    assert!(
        !target.exists(),
        "a refused import left {}",
        target.display()
    );
    err.to_string()
}

#[test]
fn export_import_export_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample(dir.path());
    let first = export(&store);
    let tip = store.tip().unwrap();
    drop(store);

    let text = lines(&first);
    let header: serde_json::Value = serde_json::from_str(&text[0]).unwrap();
    assert_eq!(header["header"]["format"], "posd-export");
    assert_eq!(header["header"]["height"], 7);
    assert_eq!(header["header"]["tip"], tip.hash.to_string());
    assert_eq!(header["header"]["validators_active"], 3);
    assert_eq!(header["header"]["validators_slashed"], 1);
    assert!(
        text[1].starts_with(r#"{"block":{"index":0,"#),
        "{}",
        text[1]
    );
    assert!(
        text[3].starts_with(r#"{"round":{"index":1,"seed":""#),
        "{}",
        text[3]
    );
    let end: serde_json::Value = serde_json::from_str(text.last().unwrap()).unwrap();
    assert_eq!(
        (
            &end["end"]["blocks"],
            &end["end"]["rounds"],
            &end["end"]["validators"],
            &end["end"]["proposed"]
        ),
        (&8.into(), &7.into(), &4.into(), &2.into())
    );

    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("new");
    let imported = import(first.as_slice(), &target).unwrap();
    assert_eq!((imported.blocks, imported.validators), (8, 4));
    assert!(!target.join("import.partial").exists());
    let again = Store::open(&target, 0).unwrap();
    again.check_all().unwrap();
    assert_eq!(again.applied().unwrap(), {
        let h = &header["header"]["applied"];
        h.as_u64().unwrap()
    });
    assert!(again.proposed(&addr(1)).unwrap() && !again.proposed(&addr(4)).unwrap());
    assert_eq!(export(&again), first);
}

#[test]
fn an_empty_directory_is_a_target_and_a_full_one_is_refused() {
    let bytes = sample_export();
    let empty = tempfile::tempdir().unwrap();
    import(bytes.as_slice(), empty.path()).unwrap();
    Store::open(empty.path(), 0).unwrap();

    let full = tempfile::tempdir().unwrap();
    std::fs::write(full.path().join("notes.txt"), "mine").unwrap();
    let err = import(bytes.as_slice(), full.path()).err().unwrap();
    assert!(matches!(err, ImportError::Target(_)), "{err}");
    assert!(err.to_string().contains("is not empty"), "{err}");
    let left: Vec<_> = std::fs::read_dir(full.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the stranger's file");
}

#[test]
fn posd_refuses_a_directory_an_import_did_not_finish() {
    let bytes = sample_export();
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("new");
    import(bytes.as_slice(), &target).unwrap();
    // As an import killed before its end leaves it: the marker still there.
    std::fs::write(target.join("import.partial"), "").unwrap();
    let err = Store::open(&target, 0).err().unwrap();
    assert!(matches!(err, pos_store::StoreError::Unfinished(_)), "{err}");
    assert!(err.to_string().contains("did not finish"), "{err}");
}

#[test]
fn concurrent_imports_into_one_target_leave_one_whole_chain() {
    let bytes = sample_export();
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("new");
    let results: Vec<_> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| s.spawn(|| import(bytes.as_slice(), &target)))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    let store = Store::open(&target, 0).unwrap();
    store.check_all().unwrap();
    assert_eq!(export(&store), bytes);
}

#[test]
fn tampered_files_are_refused_at_their_first_bad_line() {
    let text = lines(&sample_export());
    let end = text.len();

    // Line 1 is the header, 2 genesis, 3 block 1, 4 its round, 5 block 2...
    // A block's BPM changed: its hash no longer matches.
    let mut t = text.clone();
    assert!(t[4].starts_with(r#"{"block":{"index":2,"#), "{}", t[4]);
    t[4] = t[4].replace(r#""bpm":61"#, r#""bpm":62"#);
    let err = refused(&join(&t));
    assert!(err.starts_with("line 5: block 2: stored hash"), "{err}");

    // Two blocks swapped (lines 5 and 7): refused at the first one.
    let mut t = text.clone();
    t.swap(4, 6);
    let err = refused(&join(&t));
    assert!(err.starts_with("line 5: block 3:"), "{err}");

    // A round record dropped.
    let mut t = text.clone();
    t.remove(3);
    let err = refused(&join(&t));
    assert!(
        err.starts_with("line 4: block 2: the round record of block 1"),
        "{err}"
    );

    // A draw's ticket changed: the draw no longer replays.
    let mut t = text.clone();
    let round: serde_json::Value = serde_json::from_str(&t[3]).unwrap();
    let ticket = round["round"]["ticket"].as_u64().unwrap();
    t[3] = t[3].replace(
        &format!(r#""ticket":{ticket}"#),
        &format!(r#""ticket":{}"#, ticket + 1),
    );
    let err = refused(&join(&t));
    assert!(err.starts_with("line 4: block 1: lottery"), "{err}");

    // A balance changed verifies on its own: the checksum catches it.
    let mut t = text.clone();
    let v = t
        .iter()
        .position(|l| l.starts_with(r#"{"validator""#))
        .unwrap();
    t[v] = t[v].replace(r#""balance":"#, r#""balance":9"#);
    let err = refused(&join(&t));
    assert!(
        err.starts_with(&format!("line {end}: checksum mismatch")),
        "{err}"
    );

    // The checksum itself changed.
    let mut t = text.clone();
    let sum = t[end - 1].rsplit_once(r#""sha256":""#).unwrap().1[..64].to_string();
    let other = format!(
        "{}{}",
        if sum.starts_with('0') { "1" } else { "0" },
        &sum[1..]
    );
    t[end - 1] = t[end - 1].replace(&sum, &other);
    let err = refused(&join(&t));
    assert!(
        err.starts_with(&format!("line {end}: checksum mismatch")),
        "{err}"
    );

    // Cut short, garbage, something after the end.
    let err = refused(&join(&text[..end - 1]));
    assert!(
        err.starts_with(&format!("line {end}: the file ends without")),
        "{err}"
    );
    let err = refused(b"hello\n");
    assert!(err.starts_with("line 1: not a posd export"), "{err}");
    let mut t = text.clone();
    t.push("{}".into());
    let err = refused(&join(&t));
    assert!(
        err.starts_with(&format!("line {}: more data", end + 1)),
        "{err}"
    );
    let mut bytes = join(&text);
    bytes.pop();
    let err = refused(&bytes);
    assert!(err.starts_with(&format!("line {end}: no newline")), "{err}");
}

#[test]
fn other_versions_and_schemas_are_refused_by_the_header() {
    let text = lines(&sample_export());
    for (from, to, says) in [
        (
            r#""version":1"#,
            r#""version":2"#,
            "export format version 2",
        ),
        (r#""schema":1"#, r#""schema":9"#, "store schema 9"),
        (
            r#""format":"posd-export""#,
            r#""format":"other""#,
            "not a posd export",
        ),
    ] {
        let mut t = text.clone();
        t[0] = t[0].replace(from, to);
        let err = refused(&join(&t));
        assert!(err.starts_with("line 1: ") && err.contains(says), "{err}");
    }
}

#[test]
fn records_out_of_their_section_are_refused() {
    let text = lines(&sample_export());
    let v = text
        .iter()
        .position(|l| l.starts_with(r#"{"validator""#))
        .unwrap();
    // A validator moved among the blocks.
    let mut t = text.clone();
    let moved = t.remove(v);
    t.insert(3, moved);
    let err = refused(&join(&t));
    assert!(err.starts_with("line 4: "), "{err}");
    // Validators out of address order.
    let mut t = text.clone();
    t.swap(v, v + 1);
    let err = refused(&join(&t));
    assert!(
        err.starts_with(&format!("line {}: validator ", v + 2)),
        "{err}"
    );
    // Every record parses as the type its key names.
    let mut t = text.clone();
    t[1] = t[1].replace(r#"{"block":"#, r#"{"validator":"#);
    let err = refused(&join(&t));
    assert!(err.starts_with("line 2: not an export record"), "{err}");
}
