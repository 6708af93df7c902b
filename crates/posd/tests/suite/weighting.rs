//! stake_age and stake_work on a real posd (SPEC §12): the rule kept with the
//! chain, weights named in the confirmations and stored with each round,
//! mined nonces and malformed ones, and an age chain through export, import
//! and `posd --check`.

use pos_core::weighting::{work_weight, work_zeros};
use pos_core::{Address, Block};
use pos_testkit::{posd_bin, Posd};
use std::process::Command;

fn round(posd: &Posd) -> Block {
    pos_testkit::admin::lottery_run(&posd.socket())
        .unwrap()
        .expect("a block")
}

fn posd_cmd(args: &[&str]) -> std::process::Output {
    Command::new(posd_bin!()).args(args).output().unwrap()
}

/// The round records of an export, as JSON.
fn rounds_of(export: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(export)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("round").cloned())
        .collect()
}

/// A `stake_age` chain with a window of 3 rounds and hour-long rounds
/// (closed by hand).
fn age_window_3() -> Vec<&'static str> {
    [&["--round-interval", "1h"][..], &pos_testkit::STAKE_AGE_3].concat()
}

#[test]
fn stake_age_weights_grow_while_proposing_and_reset_on_a_win() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("age");
    let args = age_window_3();
    let posd = Posd::start(posd_bin!(), &dir, &args);
    let (mut a, a_addr, _) = posd.validator(10);
    let (mut b, _, _) = posd.validator(10);
    a.send("70\n");
    a.expect("proposal 70 for block 1, weight 10 (age 0); round ends in");
    b.propose(71);
    let first = round(&posd);
    // The loser of round 1 proposed in it: age 1; the winner starts again.
    let (mut winner, mut loser) = if first.validator.unwrap().to_string() == a_addr {
        (a, b)
    } else {
        (b, a)
    };
    winner.send("72\n");
    winner.expect("proposal 72 for block 2, weight 11 (age 0)");
    loser.send("73\n");
    loser.expect("proposal 73 for block 2, weight 20 (age 1)");
    for _ in 0..6 {
        round(&posd);
        winner.propose(74);
        loser.propose(75);
    }
    round(&posd);
    assert_eq!(pos_testkit::admin::chain_verify(&posd.socket()).unwrap(), 9);
    let export = pos_testkit::admin::export(&posd.socket()).unwrap();
    let records = rounds_of(&export);
    assert_eq!(records.len(), 8);
    for r in &records {
        assert_eq!(
            r["weighting"],
            serde_json::json!({"stake_age": {"age_window": 3}})
        );
        assert_eq!(r["weights"].as_array().unwrap().len(), 2);
    }
    // Age never passes the window.
    assert!(records
        .iter()
        .flat_map(|r| r["weights"].as_array().unwrap().iter())
        .all(|w| w["why"]["age"].as_u64().unwrap() <= 3));

    // The chain keeps its rule whatever the config says, and says so.
    drop((winner, loser));
    drop(posd);
    let posd = Posd::start(posd_bin!(), &dir, &["--round-interval", "1h"]);
    posd.wait_log("posd ready");
    assert!(posd.log().contains("lottery_weighting"), "{}", posd.log());
    let (mut c, _, _) = posd.validator(5);
    c.send("60\n");
    c.expect("proposal 60 for block 9, weight 5 (age 0)");
    drop(c);
    drop(posd);

    // Export, import, check: every weight re-checked.
    let file = root.path().join("age.jsonl");
    std::fs::write(&file, &export).unwrap();
    let copy = root.path().join("copy");
    let out = posd_cmd(&[
        "import",
        file.to_str().unwrap(),
        "--data-dir",
        copy.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = posd_cmd(&["--check", "--data-dir", copy.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// The first nonce from 0 on whose work has `wanted` leading zero bits.
pub(crate) fn mine(
    prev: &Block,
    address: &Address,
    bpm: u32,
    wanted: impl Fn(u32) -> bool,
) -> (u64, u32) {
    (0..)
        .map(|n| (n, work_zeros(&prev.hash, prev.index + 1, address, bpm, n)))
        .find(|&(_, z)| wanted(z))
        .unwrap()
}

#[test]
fn stake_work_takes_mined_nonces_and_slashes_malformed_ones() {
    let root = tempfile::tempdir().unwrap();
    let args = [
        &["--round-interval", "1h"][..],
        &pos_testkit::STAKE_WORK_4_2,
    ]
    .concat();
    let posd = Posd::start(posd_bin!(), &root.path().join("work"), &args);
    let (mut a, a_addr, _) = posd.validator(10);
    let (mut b, b_addr, _) = posd.validator(10);
    a.send("help\n");
    a.expect("lottery: stake_work: '<bpm> <nonce>'");
    a.send("70\n");
    a.expect("proposal 70 for block 1, weight 10 (no nonce: weight = stake)");
    let tip = round(&posd);
    let (a_addr, b_addr): (Address, Address) = (a_addr.parse().unwrap(), b_addr.parse().unwrap());
    let stake = |addr: &Address| if Some(*addr) == tip.validator { 11 } else { 10 };

    let (nonce, z) = mine(&tip, &a_addr, 72, |z| z >= 5);
    let weight = work_weight(stake(&a_addr), z, 4, 2);
    a.send(&format!("72 {nonce}\n"));
    a.expect(&format!(
        "proposal 72 for block 2, weight {weight} (work_bits {z})"
    ));
    let (low, z) = mine(&tip, &b_addr, 73, |z| z < 4);
    b.send(&format!("73 {low}\n"));
    b.expect(&format!(
        "proposal 73 for block 2, weight {} (work_bits {z}, below 4: weight = stake)",
        stake(&b_addr)
    ));
    let block = round(&posd);
    let export = pos_testkit::admin::export(&posd.socket()).unwrap();
    let records = rounds_of(&export);
    let nonces: Vec<_> = records[1]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["why"]["work"]["nonce"].as_u64())
        .collect();
    let mut expected = [(a_addr, Some(nonce)), (b_addr, Some(low))];
    expected.sort();
    assert_eq!(nonces, expected.iter().map(|e| e.1).collect::<Vec<_>>());
    assert_eq!(block.index, 2);

    // A nonce that is not a decimal u64 is a malformed proposal.
    b.send("74 12ab\n");
    b.expect("'12ab' is not a nonce");
    b.expect_closed();
    assert_eq!(pos_testkit::admin::chain_verify(&posd.socket()).unwrap(), 3);
}

/// χ² critical value at p = 0.001 for 3 degrees of freedom (4 validators).
const CHI2_001_DF3: f64 = 16.266;

/// `rounds` rounds of a real posd under `args`' rule with four validators of
/// stakes 10, 20, 30, 40 (under `stake_work` validator i keeps the best of
/// 4^i nonces): the conditional χ² of wins against the sum over rounds of
/// weight/total, from the stored round records; asserted p > 0.001.
fn chi2_of_real_rounds(args: &[&str], rounds: usize) -> f64 {
    let root = tempfile::tempdir().unwrap();
    let mut args = args.to_vec();
    args.extend(["--round-interval", "1h"]);
    let posd = Posd::start(posd_bin!(), &root.path().join("chi2"), &args);
    let mut validators: Vec<_> = [10, 20, 30, 40]
        .into_iter()
        .map(|stake| {
            let (client, addr, _) = posd.validator(stake);
            (client, addr.parse::<Address>().unwrap())
        })
        .collect();
    let work = args.contains(&"stake_work");
    let mut tip: Option<Block> = None;
    for _ in 0..rounds {
        for (i, (client, address)) in validators.iter_mut().enumerate() {
            let bpm = 60 + i as u32;
            let nonce = match (&tip, work) {
                (Some(tip), true) => {
                    let zeros = |n| work_zeros(&tip.hash, tip.index + 1, address, bpm, n);
                    let best = (0..4u64.pow(i as u32)).max_by_key(|&n| zeros(n)).unwrap();
                    format!(" {best}")
                }
                _ => String::new(),
            };
            client.send(&format!("{bpm}{nonce}\n"));
            client.expect(&format!("proposal {bpm} for block"));
        }
        tip = Some(round(&posd));
    }
    let export = pos_testkit::admin::export(&posd.socket()).unwrap();
    let records: Vec<pos_core::RoundRecord> = rounds_of(&export)
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
    assert_eq!(records.len(), rounds);
    let mut wins = std::collections::HashMap::<Address, f64>::new();
    let mut expected = std::collections::HashMap::<Address, f64>::new();
    for r in &records {
        let total = r.total_weight() as f64;
        for (i, c) in r.candidates.iter().enumerate() {
            *expected.entry(c.address).or_default() += r.weight(i) as f64 / total;
        }
        *wins.entry(r.winner().address).or_default() += 1.0;
    }
    assert_eq!(expected.len(), 4);
    let chi2: f64 = expected
        .iter()
        .map(|(a, e)| (wins.get(a).copied().unwrap_or(0.0) - e).powi(2) / e)
        .sum();
    assert!(chi2 < CHI2_001_DF3, "{args:?}: chi2 {chi2}");
    chi2
}

/// 200 rounds per rule of a real posd (each proposal over TCP, each round a
/// durable commit): about 6 s for the three in a debug build.
/// `cargo test -p posd --test suite -- wins_follow_weights_on_a_real_posd --nocapture`
#[test]
fn wins_follow_weights_on_a_real_posd() {
    for args in [
        &["--lottery-weighting", "stake"][..],
        &["--lottery-weighting", "stake_age", "--age-window", "10"],
        &[
            "--lottery-weighting",
            "stake_work",
            "--work-bits",
            "2",
            "--work-bonus-max",
            "4",
        ],
    ] {
        let chi2 = chi2_of_real_rounds(args, 200);
        println!(
            "{}: 200 rounds, chi2 {chi2:.2} (3 df, p = 0.001 at {CHI2_001_DF3})",
            args[1]
        );
    }
}

/// A 3-node cluster under `stake_age`: the leader weighs each round, every
/// follower's apply re-checks the weights against its own history, and all
/// three end with the same chain and the same round records, verified.
#[test]
fn a_stake_age_cluster_agrees_on_every_weight() {
    use pos_testkit::cluster::{eventually, ClusterDir, Node};
    let dir = ClusterDir::new();
    let args = age_window_3();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| dir.start(posd_bin!(), id, &args))
        .collect();
    nodes[0].init();
    nodes[0].add(&nodes[1]);
    nodes[0].add(&nodes[2]);
    let mut clients: Vec<_> = nodes.iter().map(|n| n.posd.validator(10).0).collect();
    for index in 1..=6u64 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.propose(70 + i as u32);
        }
        let at = &nodes[index as usize % 3].posd;
        let block = pos_testkit::admin::lottery_run(&at.socket())
            .unwrap()
            .expect("a block");
        assert_eq!(block.index, index);
    }
    let chains: Vec<_> = nodes
        .iter()
        .map(|n| {
            eventually("node applied block 6", || {
                let c = pos_testkit::history::chain(n);
                (c.len() == 7).then_some(c)
            })
        })
        .collect();
    assert_eq!(chains[0], chains[1]);
    assert_eq!(chains[0], chains[2]);
    let records: Vec<_> = nodes
        .iter()
        .map(|n| {
            assert_eq!(pos_testkit::admin::chain_verify(&n.posd.socket()), Ok(7));
            rounds_of(&pos_testkit::admin::export(&n.posd.socket()).unwrap())
        })
        .collect();
    assert_eq!(records[0].len(), 6);
    assert_eq!(records[0], records[1]);
    assert_eq!(records[0], records[2]);
    // Three candidates every round and only one winner: someone aged.
    assert!(records[0]
        .iter()
        .flat_map(|r| r["weights"].as_array().unwrap().iter())
        .any(|w| w["why"]["age"].as_u64() > Some(0)));
}

/// A data directory written by the round-2 posd (schema 2, before the
/// weightings; fixtures/README.md) is a `stake` chain: a config asking for
/// another rule is logged and the chain keeps its own, every stored byte and
/// hash stays, the old draws replay, and new rounds are drawn by stake and
/// stored in round 2's layout.
#[test]
fn a_schema2_data_dir_is_a_stake_chain_and_keeps_every_hash() {
    use crate::lottery::{raw_rounds, round_head, status, unpack_fixture};
    const TIP: &str = "29fc6d2926a58006a430039730c3bc4d6eba616b398a930e745ad4fe03885171";
    const SEED_1: &str = "9d62547a612ffdcbd32df6a56f266bea137ba473c7672382d9cef266fea85842";
    let dir = tempfile::tempdir().unwrap();
    unpack_fixture("schema2.tar.gz", dir.path());
    let before = raw_rounds(dir.path());
    assert_eq!(before.len(), 3);

    let mut posd = Posd::start(posd_bin!(), dir.path(), &age_window_3());
    let log = posd.wait_log("posd ready");
    assert!(!log.contains("migrated"), "{log}");
    assert!(log.contains("from schema 2 to 3"), "{log}");
    assert!(
        log.contains("lottery_weighting") && log.contains("stake_age"),
        "the differing rule is logged: {log}"
    );
    let socket = posd.socket();
    let s = status(&socket);
    assert_eq!((s.height, s.tip_hash.to_hex()), (3, TIP.to_string()));
    assert_eq!(s.weighting, pos_core::Weighting::Stake);
    assert_eq!(pos_testkit::admin::chain_verify(&socket), Ok(4));
    let first = round_head(&socket, 1);
    assert_eq!(first.seed.to_hex(), SEED_1);
    assert_eq!(
        (first.ticket, first.weighting),
        (355, pos_core::Weighting::Stake)
    );

    // A new round: a stake confirmation (no weight named), a stake draw.
    let (mut v, _, _) = posd.validator(10);
    v.send("75\n");
    v.expect("proposal 75 for block 4; round ends in");
    assert_eq!(round(&posd).index, 4);
    assert_eq!(pos_testkit::admin::chain_verify(&socket), Ok(5));
    drop(v);
    assert!(posd.terminate().success());

    let after = raw_rounds(dir.path());
    assert_eq!(after[..3], before[..], "stored rounds kept byte for byte");
    assert_eq!(after[3][0], pos_store::layout::ROUND_LAYOUT_STAKE);
}
