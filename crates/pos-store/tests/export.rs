//! The export format against real stores: round trips (into a new data
//! directory, and in place into an open store), and every kind of damage
//! refused at its line before anything is written.

use pos_core::lottery::Candidate;
use pos_core::{Address, Command, Digest, Secret};
use pos_store::export::import;
use pos_store::{Store, StoreError};
use std::path::Path;

const MAX: u64 = 1_000_000;

fn addr(n: u8) -> Address {
    Address(Digest([n; 32]))
}

fn register(store: &Store, n: u8, stake: u64) {
    let cmd = Command::Register {
        address: addr(n),
        stake,
        max_stake: MAX,
        max_validators: MAX,
        at_ms: 1_795_000_000_010,
    };
    store.apply(&cmd).unwrap().unwrap();
}

/// Commits one v2 round among validators `among` (registered), each proposing `bpm`.
fn commit_among(store: &Store, among: &[u8], bpm: u32) {
    let tip = store.tip().unwrap();
    let candidates = among
        .iter()
        .map(|&n| Candidate {
            address: addr(n),
            stake: store.validator(&addr(n)).unwrap().unwrap().balance,
            bpm,
        })
        .collect();
    let reveal = store.pending_secret().unwrap();
    let next = Secret(Digest::of(&tip.hash.0).0);
    let cmd =
        Command::commit_round(&tip, candidates, reveal, next, tip.timestamp_ms + 100, 1).unwrap();
    store.apply(&cmd).unwrap().unwrap();
}

fn spec() -> pos_core::ChainSpec {
    pos_core::ChainSpec {
        genesis_ms: 1_795_000_000_000,
        block_reward: 1,
        max_stake: MAX,
        max_bpm: 300,
        slash_on_invalid_bpm: true,
        weighting: pos_core::Weighting::Stake,
    }
}

/// A store with some of everything: v2 rounds among several candidates, a
/// slashed validator, recorded proposals and a forgotten validator.
fn sample(dir: &Path) -> Store {
    let store = Store::open(dir, &spec()).unwrap();
    fill(&store);
    store
}

fn fill(store: &Store) {
    for (n, stake) in [(1, 50), (2, 70), (3, 90), (4, 5), (5, 7)] {
        register(store, n, stake);
    }
    for bpm in 60..66 {
        commit_among(store, &[1, 2, 3], bpm);
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
        registered_by_ms: 1_795_000_000_500,
    });
    commit_among(store, &[1, 2], 70);
    store.flush().unwrap();
}

fn export(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    store.export_to(&mut out, None).unwrap();
    out
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

/// `copy` passes a full check and holds `original`'s state besides the
/// records (which the callers compare through a second export).
fn same_state(copy: &Store, original: &Store) {
    copy.check_all().unwrap();
    assert_eq!(copy.chain_spec(), spec());
    assert_eq!(copy.lottery_anchor(), original.lottery_anchor());
    assert_eq!(
        copy.pending_secret().unwrap(),
        original.pending_secret().unwrap()
    );
    assert_eq!(copy.applied().unwrap(), original.applied().unwrap());
    assert_eq!(copy.counts().unwrap(), original.counts().unwrap());
}

#[test]
fn export_import_export_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample(dir.path());
    let first = export(&store);
    let tip = store.tip().unwrap();

    let text = lines(&first);
    let header: serde_json::Value = serde_json::from_str(&text[0]).unwrap();
    assert_eq!(header["header"]["format"], "posd-export");
    assert_eq!(header["header"]["height"], 7);
    assert_eq!(header["header"]["tip"], tip.hash.to_string());
    assert_eq!(header["header"]["version"], 2);
    assert_eq!(header["header"]["chain_spec"]["max_bpm"], 300);
    assert_eq!(header["header"]["lottery"]["from"], 1);
    // The pending secret travels: without it the copy could not go on.
    assert_eq!(
        header["header"]["lottery"]["pending_secret"],
        store.pending_secret().unwrap().to_hex()
    );
    assert!(header["header"].get("extra").is_none());
    assert!(
        text[1].starts_with(r#"{"block":{"index":0,"#),
        "{}",
        text[1]
    );
    assert!(
        text[3].starts_with(r#"{"round":{"index":1,"seed":""#)
            && text[3].contains(r#""rule":{"V2":{"reveal":""#),
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
    let again = Store::open(&target, &pos_core::ChainSpec::default()).unwrap();
    same_state(&again, &store);
    assert_eq!(
        again.rounds(1, 7).collect::<Result<Vec<_>, _>>().unwrap(),
        store.rounds(1, 7).collect::<Result<Vec<_>, _>>().unwrap()
    );
    assert_eq!(again.applied().unwrap(), {
        let h = &header["header"]["applied"];
        h.as_u64().unwrap()
    });
    assert!(again.proposed(&addr(1)).unwrap() && !again.proposed(&addr(4)).unwrap());
    assert_eq!(export(&again), first);
    // The copy goes on: its next round reveals the secret the original committed to.
    commit_among(&again, &[1, 2], 71);
    again.check_all().unwrap();
}

#[test]
fn restore_replaces_an_open_store_in_place_and_carries_extra() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(dir.path());
    let extra = serde_json::json!({"last_applied": {"term": 3, "index": 41}, "members": [1, 2]});
    let mut bytes = Vec::new();
    let summary = source.export_to(&mut bytes, Some(extra.clone())).unwrap();
    assert_eq!(summary.header.height, 7);
    assert_eq!(
        (
            summary.trailer.blocks,
            summary.trailer.validators,
            summary.trailer.proposed
        ),
        (8, 4, 2)
    );

    // A node with a chain of its own (another genesis, another secret).
    let other = tempfile::tempdir().unwrap();
    let target = Store::open(other.path(), &pos_core::ChainSpec::default()).unwrap();
    register(&target, 9, 40);
    commit_among(&target, &[9], 99);
    target.flush().unwrap();
    assert_eq!(
        target.restore_from(bytes.as_slice()).unwrap(),
        Some(extra.clone())
    );
    same_state(&target, &source);
    assert_eq!(target.validator(&addr(9)).unwrap(), None);
    assert!(!other.path().join("import.partial").exists());
    let mut again = Vec::new();
    target.export_to(&mut again, Some(extra)).unwrap();
    assert_eq!(again, bytes);
    // Durable and acknowledged: it reopens as the restored chain.
    drop(target);
    let reopened = Store::open(other.path(), &pos_core::ChainSpec::default()).unwrap();
    assert_eq!(reopened.tip().unwrap(), source.tip().unwrap());
    reopened.check_all().unwrap();
    commit_among(&reopened, &[1, 2], 72);
    reopened.check_all().unwrap();

    // A temporary store restores too.
    let memory = Store::temporary(&pos_core::ChainSpec::default()).unwrap();
    memory.restore_from(bytes.as_slice()).unwrap();
    memory.check_all().unwrap();
}

#[test]
fn a_refused_restore_leaves_the_open_store_untouched() {
    let bytes = sample_export();
    let mut text = lines(&bytes);
    text[4] = text[4].replace(r#""bpm":61"#, r#""bpm":62"#);
    let other = tempfile::tempdir().unwrap();
    let target = Store::open(other.path(), &pos_core::ChainSpec::default()).unwrap();
    register(&target, 9, 40);
    commit_among(&target, &[9], 99);
    target.flush().unwrap();
    let before = export(&target);
    let err = target.restore_from(join(&text).as_slice()).unwrap_err();
    assert!(matches!(err, StoreError::Refused { line: 5, .. }), "{err}");
    assert!(
        err.to_string().starts_with("line 5: block 2: stored hash"),
        "{err}"
    );
    assert_eq!(export(&target), before);
    assert!(!other.path().join("import.partial").exists());
}

#[test]
fn an_empty_directory_is_a_target_and_a_full_one_is_refused() {
    let bytes = sample_export();
    let empty = tempfile::tempdir().unwrap();
    import(bytes.as_slice(), empty.path()).unwrap();
    Store::open(empty.path(), &spec()).unwrap();

    let full = tempfile::tempdir().unwrap();
    std::fs::write(full.path().join("notes.txt"), "mine").unwrap();
    let err = import(bytes.as_slice(), full.path()).err().unwrap();
    assert!(matches!(err, StoreError::Target(_)), "{err}");
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
    let err = Store::open(&target, &spec()).err().unwrap();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    let says = err.to_string();
    assert!(
        says.starts_with(&format!("{}: an import into it", target.display())),
        "{says}"
    );
    assert!(says.contains("remove the directory"), "{says}");
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
    let store = Store::open(&target, &spec()).unwrap();
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

    // A round's reveal changed: it no longer opens the anchor's commitment.
    let mut t = text.clone();
    let round: serde_json::Value = serde_json::from_str(&t[3]).unwrap();
    let reveal = round["round"]["rule"]["V2"]["reveal"]
        .as_str()
        .unwrap()
        .to_string();
    t[3] = t[3].replace(&reveal, &"ab".repeat(32));
    let err = refused(&join(&t));
    assert!(err.starts_with("line 4: block 1: lottery"), "{err}");

    // The pending secret changed: the next round could not close. Named at the header.
    let mut t = text.clone();
    let header: serde_json::Value = serde_json::from_str(&t[0]).unwrap();
    let secret = header["header"]["lottery"]["pending_secret"]
        .as_str()
        .unwrap()
        .to_string();
    t[0] = t[0].replace(&secret, &"cd".repeat(32));
    let err = refused(&join(&t));
    assert!(
        err.starts_with("line 1: the header's pending secret"),
        "{err}"
    );

    // The chain spec changed so that it makes another genesis.
    let mut t = text.clone();
    t[0] = t[0].replace(
        r#""genesis_ms":1795000000000"#,
        r#""genesis_ms":1795000000001"#,
    );
    let err = refused(&join(&t));
    assert!(err.starts_with("line 2: genesis is not the block"), "{err}");

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
            r#""version":2"#,
            r#""version":1"#,
            "export format version 1",
        ),
        (r#""schema":2"#, r#""schema":9"#, "store schema 9"),
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
    // Validators out of address order (the last two have no proposed mark).
    let mut t = text.clone();
    let (third, fourth) = (t.len() - 3, t.len() - 2);
    assert!(t[third].starts_with(r#"{"validator""#) && t[fourth].starts_with(r#"{"validator""#));
    t.swap(third, fourth);
    let err = refused(&join(&t));
    assert!(
        err.starts_with(&format!("line {}: validator ", fourth + 1)),
        "{err}"
    );
    // A proposed mark away from its validator's line.
    let mut t = text.clone();
    assert!(t[v + 1].starts_with(r#"{"proposed""#), "{}", t[v + 1]);
    t.swap(v + 1, v + 2);
    let err = refused(&join(&t));
    assert!(
        err.starts_with(&format!("line {}: the proposed mark of ", v + 3)),
        "{err}"
    );
    // Every record parses as the type its key names.
    let mut t = text.clone();
    t[1] = t[1].replace(r#"{"block":"#, r#"{"validator":"#);
    let err = refused(&join(&t));
    assert!(err.starts_with("line 2: not an export record"), "{err}");
}

#[test]
fn a_snapshot_holds_only_what_is_durable() {
    let store = Store::temporary(&spec()).unwrap();
    register(&store, 1, 10);
    commit_among(&store, &[1], 70);
    // Block 1's record reveals its secret: not before it is durable.
    let err = store.snapshot(None).err().expect("refused");
    assert!(err.to_string().contains("not yet flushed"), "{err}");
    // export_to flushes first.
    let text = lines(&export(&store));
    assert!(text[0].contains(r#""height":1"#), "{}", text[0]);
    store.snapshot(None).unwrap();
}
