//! `posd import` against exports of a real posd: a round trip to the byte,
//! tampered files refused at their line, targets that are not empty refused,
//! and a migrated chain (v1 and v2 draws) that goes on after its import.

use pos_testkit::{posd_bin, Posd};
use std::path::Path;
use std::process::{Command, Output};

/// A posd with a few rounds among several validators, one of them slashed;
/// returns its export.
fn exported(dir: &Path) -> Vec<u8> {
    let posd = Posd::start(posd_bin!(), dir, &["--round-interval", "1h"]);
    let mut clients: Vec<_> = (0..4).map(|i| posd.validator(10 + i * 7)).collect();
    for round in 0..6u64 {
        for (c, _, _) in clients.iter_mut().take(3) {
            c.send(&format!("{}\n", 60 + round));
            // Its own answer, not an earlier prompt: the proposal is in.
            c.expect(&format!("proposal {} for block", 60 + round));
        }
        pos_testkit::admin::lottery_run(&posd.socket())
            .unwrap()
            .expect("a block");
    }
    let (cheat, _, _) = &mut clients[3];
    cheat.send("72.5\n");
    cheat.expect_closed();
    pos_testkit::admin::export(&posd.socket()).unwrap()
}

fn posd(args: &[&str]) -> Output {
    Command::new(posd_bin!()).args(args).output().unwrap()
}

fn import(file: &Path, target: &Path) -> Output {
    posd(&[
        "import",
        file.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn export_import_export_is_byte_identical_and_posd_starts_from_it() {
    let root = tempfile::tempdir().unwrap();
    let first = exported(&root.path().join("live"));
    let file = root.path().join("chain.jsonl");
    std::fs::write(&file, &first).unwrap();
    let new = root.path().join("new");

    let out = import(&file, &new);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("imported height 6"), "{said}");
    let check = posd(&["--check", "--data-dir", new.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("7 blocks verified, 4 validators"));

    let again = Posd::start(posd_bin!(), &new, &["--round-interval", "1h"]);
    again.wait_log("posd ready");
    assert_eq!(pos_testkit::admin::export(&again.socket()).unwrap(), first);

    // `-` reads standard input.
    let piped = root.path().join("piped");
    let out = Command::new(posd_bin!())
        .args(["import", "-", "--data-dir", piped.to_str().unwrap()])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let check = posd(&["--check", "--data-dir", piped.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn tampered_files_and_full_targets_are_refused_naming_the_line() {
    let root = tempfile::tempdir().unwrap();
    let text = String::from_utf8(exported(&root.path().join("live"))).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let last = lines.len();
    let write = |name: &str, lines: &[String]| {
        let path = root.path().join(name);
        std::fs::write(
            &path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        path
    };
    let owned = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();

    // Line 1 is the header, 2 genesis, 3 block 1, 4 its round, 5 block 2.
    let mut bpm = owned(&lines);
    bpm[4] = bpm[4].replace(r#""bpm":61"#, r#""bpm":99"#);
    let mut swapped = owned(&lines);
    swapped.swap(4, 6);
    let mut sum = owned(&lines);
    let at = sum[last - 1].find(r#""sha256":""#).unwrap() + 10;
    let digit = if &sum[last - 1][at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    sum[last - 1].replace_range(at..at + 1, digit);
    for (name, tampered, says) in [
        (
            "bpm",
            bpm,
            "line 5: block 2: stored hash does not match".to_string(),
        ),
        (
            "swapped",
            swapped,
            "line 5: block 3: expected index 2".to_string(),
        ),
        ("sum", sum, format!("line {last}: checksum mismatch")),
    ] {
        let file = write(name, &tampered);
        let target = root.path().join(format!("{name}-new"));
        let out = import(&file, &target);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.starts_with(&format!(
                "posd: error: cannot import {} into {}: {says}",
                file.display(),
                target.display()
            )),
            "{name}: {err}"
        );
        assert!(!target.exists(), "{name}: a refused import left its target");
    }

    let good = write("good", &owned(&lines));
    let full = root.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let out = import(&good, &full);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(&full).unwrap().collect();
    assert_eq!(left.len(), 1, "only the stranger's file is there");
}

/// One round with a single fresh validator, committed by `lottery run`.
fn one_round(posd: &Posd, bpm: u32) -> pos_core::Block {
    let (mut v, _, _) = posd.validator(10);
    v.send(&format!("{bpm}\n"));
    v.expect(&format!("proposal {bpm} for block"));
    pos_testkit::admin::lottery_run(&posd.socket())
        .unwrap()
        .expect("a block")
}

#[test]
fn a_migrated_chain_keeps_its_v1_draws_and_goes_on_after_import() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    std::fs::create_dir(&live).unwrap();
    crate::lottery::schema1(&live);
    let mut live_posd = Posd::start(posd_bin!(), &live, &["--round-interval", "1h"]);
    // Blocks 1-3 drawn by v1, block 4 by v2 (the migration's anchor).
    assert_eq!(one_round(&live_posd, 75).index, 4);
    let bytes = pos_testkit::admin::export(&live_posd.socket()).unwrap();
    let pending = crate::lottery::status(&live_posd.socket()).lottery_commitment;
    assert!(live_posd.terminate().success());
    let text = String::from_utf8(bytes.clone()).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["header"]["lottery"]["from"], 4);

    let file = root.path().join("chain.jsonl");
    std::fs::write(&file, &bytes).unwrap();
    let new = root.path().join("new");
    let out = import(&file, &new);
    assert!(out.status.success(), "{}", stderr(&out));
    // Every record as the original store holds it, v1 layout below the anchor.
    assert_eq!(
        crate::lottery::raw_rounds(&new),
        crate::lottery::raw_rounds(&live)
    );
    let check = posd(&["--check", "--data-dir", new.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));

    // The copy can close the next round: it holds the secret block 5 reveals.
    let again = Posd::start(posd_bin!(), &new, &["--round-interval", "1h"]);
    again.wait_log("posd ready");
    let block = one_round(&again, 76);
    assert_eq!(block.index, 5);
    let head = crate::lottery::round_head(&again.socket(), 5);
    assert_eq!(head.commitment, Some(pending));
    assert_eq!(crate::lottery::reveal_of(&head).commitment(), pending);
    assert_eq!(pos_testkit::admin::chain_verify(&again.socket()), Ok(6));
}

/// A data directory with `blocks` blocks of one validator, made through the
/// store (faster than rounds through posd); its export as a file in `root`.
fn long_export(root: &Path, blocks: u64) -> std::path::PathBuf {
    let dir = root.join("long");
    let store = pos_store::Store::open(&dir, &pos_core::ChainSpec::default()).unwrap();
    let address = pos_core::Address(pos_core::Digest([7; 32]));
    let register = pos_core::Command::Register {
        address,
        stake: 10,
        max_stake: 100,
        max_validators: 100,
        at_ms: 1,
    };
    store.apply(&register).unwrap().unwrap();
    for i in 0..blocks {
        let tip = store.tip().unwrap();
        let candidates = vec![pos_core::lottery::Candidate {
            address,
            stake: 10,
            bpm: 60,
        }];
        let reveal = store.pending_secret().unwrap();
        let next = pos_core::Secret(pos_core::Digest::of(&i.to_be_bytes()).0);
        let cmd =
            pos_core::Command::commit_round(&tip, candidates, reveal, next, tip.timestamp_ms, 0)
                .unwrap();
        store.apply(&cmd).unwrap().unwrap();
    }
    let file = root.join("long.jsonl");
    store
        .export_to(std::fs::File::create(&file).unwrap(), None)
        .unwrap();
    file
}

#[test]
fn an_import_killed_while_writing_leaves_a_directory_posd_refuses() {
    let root = tempfile::tempdir().unwrap();
    let file = long_export(root.path(), 5_000);
    let target = root.path().join("new");
    let mut child = Command::new(posd_bin!())
        .args(["import", file.to_str().unwrap(), "--data-dir"])
        .arg(&target)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The marker exists only while the verified stream replaces the store.
    let marker = target.join("import.partial");
    while !marker.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it could be killed while writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(marker.exists());

    let check = posd(&["--check", "--data-dir", target.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let err = stderr(&check);
    assert!(
        err.contains(&format!(
            "{}: an import into it (posd import, or a cluster snapshot) did not finish",
            target.display()
        )) && err.contains("remove the directory"),
        "{err}"
    );
    // And a new import refuses it too: it is not empty.
    let out = import(&file, &target);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
}
