//! The live page (SPEC §10) in a real browser: headless Chromium from the
//! Debian packages (CI installs it and runs the ignored tests as root).

use crate::weighting::mine;
use pos_core::{Address, Block};
use pos_testkit::browser::Browser;
use pos_testkit::{force_round, posd_bin, Client, Posd};

/// The CSS selector of block `index` on the page.
fn block(index: u64) -> String {
    format!("document.querySelector('#blocks [data-index=\"{index}\"]')")
}

/// The draw panel's verdict once it is about block `index`.
fn verdict(b: &mut Browser, index: u64) -> String {
    let js = format!(
        "(t => t.startsWith('✓ Block {index}') || t.startsWith('✗ Block {index}') ? t : '')\
         (document.getElementById('draw-verdict').textContent)"
    );
    let what = format!("the verdict on block {index}'s draw");
    b.wait_for(&what, &js).as_str().unwrap().to_string()
}

/// The page's verdict on block `index` when `change` (JS on `round`) alters
/// the stored round it reads.
fn tamper(b: &mut Browser, index: u64, change: &str) -> String {
    let js = format!(
        "(async () => {{
            const real = window.fetch;
            window.fetch = async (url) => {{
                const r = await real(url);
                if (String(url) !== 'api/rounds/{index}') return r;
                const round = await r.json();
                {change};
                return new Response(JSON.stringify(round));
            }};
            try {{ await explain({index}); }} finally {{ window.fetch = real; }}
            return document.getElementById('draw-verdict').textContent;
        }})()"
    );
    b.eval(&js).as_str().unwrap().to_string()
}

/// The page's replay against the test vectors of docs/LOTTERY.md (a new
/// chain draws by v2 only; a migrated one keeps its v1 past).
fn the_page_draws_as_docs_lottery_md_says(b: &mut Browser) {
    let posd = pos_core::Digest::of(b"posd").to_hex();
    let candidates =
        "[1, 2, 3].map((n) => ({ address: n.toString(16).padStart(2, '0').repeat(32), \
         stake: [100, 200, 700][n - 1], bpm: 60 }))";
    let replay = |b: &mut Browser, lottery: u32, index: u64, reveal: &str| {
        let js = format!(
            "(async () => {{ const m = await replay({{ lottery: {lottery}, index: {index}, \
             prev_hash: '{posd}', reveal: '{reveal}', candidates: {candidates} }}); \
             return [m.seed, String(m.ticket), m.candidates[m.winner].address.slice(0, 2), \
             m.commitment]; }})()"
        );
        b.eval(&js)
    };
    let v1 = replay(b, 1, 1, "");
    assert_eq!(
        v1[0],
        "f2ff9aed4f9a9c4f9cd3d823b8d1f003e8a40f4d71d17f65e9b64f1812145b06"
    );
    for (index, ticket, winner) in [(1, "695", "03"), (3, "180", "02"), (6, "48", "01")] {
        let got = replay(b, 1, index, "");
        let got = (got[1].as_str(), got[2].as_str());
        assert_eq!(got, (Some(ticket), Some(winner)), "v1, block {index}");
    }
    let counting: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
    let v2 = replay(b, 2, 1, &counting);
    assert_eq!(
        v2[0],
        "bd8404bbace9e9a64667f19119f89463fbd78b785ba69328fb7013655b68e1d4"
    );
    assert_eq!(
        v2[3],
        "b1fc3b6e70bc70268665590033255ec7ddde7ea975d2e19ec824bd243b1809ad"
    );
    for (index, ticket, winner) in [(1u8, "658", "03"), (4, "191", "02"), (11, "90", "01")] {
        let reveal = pos_core::Digest::of(&[b'r', index]).to_hex();
        let got = replay(b, 2, u64::from(index), &reveal);
        let got = (got[1].as_str(), got[2].as_str());
        assert_eq!(got, (Some(ticket), Some(winner)), "v2, block {index}");
    }
    the_page_weighs_as_docs_lottery_md_says(b, &posd);
}

/// The page's weighted replay against LOTTERY.md's weighted test vectors:
/// block 4, reveal SHA-256("r" || k), candidates 0x01…, 0x02…, 0x03… with
/// stakes 100, 200, 700 and BPM 1, 2, 3.
fn the_page_weighs_as_docs_lottery_md_says(b: &mut Browser, posd: &str) {
    let address = |n: u8| format!("{n:02x}").repeat(32);
    let candidates = |nonces: [&str; 3]| {
        let all: Vec<String> = (1u8..=3)
            .map(|n| {
                let stake = [100, 200, 700][usize::from(n) - 1];
                let nonce = nonces[usize::from(n) - 1];
                format!(
                    "{{ address: '{}', stake: {stake}, bpm: {n}, nonce: {nonce} }}",
                    address(n)
                )
            })
            .collect();
        format!("[{}]", all.join(", "))
    };
    let rounds = |who: &[(u64, &[u8], u8)]| {
        let all: Vec<String> = who
            .iter()
            .map(|(index, cands, winner)| {
                let cands: Vec<String> = cands
                    .iter()
                    .map(|&n| format!("{{ address: '{}' }}", address(n)))
                    .collect();
                format!(
                    "{{ index: {index}, candidates: [{}], winner: '{}' }}",
                    cands.join(", "),
                    address(*winner)
                )
            })
            .collect();
        format!("[{}]", all.join(", "))
    };
    let age_history = rounds(&[(1, &[1, 2, 3], 3), (2, &[1, 2], 2), (3, &[1, 2, 3], 3)]);
    let cases = [
        (
            "{ weighting: 'stake_age', age_window: 10 }",
            candidates(["null"; 3]),
            age_history.as_str(),
            [(1u8, "151", "01"), (6, "490", "02"), (2, "1440", "03")],
            "400,400,700",
        ),
        (
            "{ weighting: 'stake_work', work_bits: 1, work_bonus_max: 4 }",
            candidates(["'160'", "'1'", "'0'"]),
            "[]",
            [(1, "157", "01"), (8, "1855", "02"), (2, "2310", "03")],
            "1600,400,700",
        ),
    ];
    for (rule, candidates, history, draws, weights) in cases {
        for (k, ticket, winner) in draws {
            let reveal = pos_core::Digest::of(&[b'r', k]).to_hex();
            let js = format!(
                "(async () => {{ const m = await replay({{ lottery: 2, index: 4, prev_hash: '{posd}', \
                 reveal: '{reveal}', candidates: {candidates} }}, {history}, {rule}); \
                 return [m.weights.map((w) => String(w.weight)).join(), String(m.ticket), \
                 m.candidates[m.winner].address.slice(0, 2)]; }})()"
            );
            let got = b.eval(&js);
            assert_eq!(
                got,
                serde_json::json!([weights, ticket, winner]),
                "{rule}, k = {k}"
            );
        }
    }
}

/// Validators with these `stakes`, after `rounds` rounds of [`propose`]
/// each closed by posctl.
fn chain_of(posd: &Posd, stakes: &[u64], rounds: usize) -> Vec<(Client, String, String)> {
    let mut validators: Vec<_> = stakes.iter().map(|&stake| posd.validator(stake)).collect();
    for round in 0..rounds {
        propose(&mut validators, round);
        force_round(&posd.socket());
    }
    validators
}

fn propose(clients: &mut [(Client, String, String)], round: usize) {
    for (i, (c, _, _)) in clients.iter_mut().enumerate() {
        // Not everyone every round, so chances and wins differ.
        if (round + i) % 4 != 3 {
            let bpm = 60 + (round * 7 + i * 13) % 40;
            c.send(&format!("{bpm}\n"));
            c.expect(&format!("proposal {bpm}"));
        }
    }
}

#[test]
#[ignore = "needs chromium"]
fn the_page_grows_live_and_rechecks_draws_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let posd = page_posd(dir.path(), &[]);
    let http = posd.http();
    // A chain worth looking at: four validators, twelve blocks, one slashing.
    let mut validators = chain_of(&posd, &[500, 300, 150, 50], 12);
    let (mut cheat, _, _) = posd.validator(40);
    cheat.send("72.5\n");
    cheat.expect_closed();
    propose(&mut validators, 12);

    let mut b = Browser::start(1280, 900);
    b.open(&format!("http://{http}/"));
    b.wait_for(
        "the chain up to block 12",
        &format!("{} !== null", block(12)),
    );
    b.wait_for(
        "the page to go live",
        "document.getElementById('live').textContent === '● live'",
    );
    b.eval("window.notReloaded = true");

    force_round(&posd.socket());
    b.wait_for(
        "block 13 to appear without a reload",
        &format!("{} !== null && window.notReloaded === true", block(13)),
    );
    // The draw panel follows the newest block and re-checks it here.
    let v = verdict(&mut b, 13);
    assert!(v.contains("matches"), "{v}");
    // Any block's draw, chosen on the page.
    b.eval(&format!("{}.querySelector('button').click()", block(5)));
    let v = verdict(&mut b, 5);
    assert!(v.contains("matches"), "{v}");
    let shown = b.eval("document.getElementById('draw').textContent");
    assert!(
        shown.as_str().unwrap().contains("posd-lottery-v2-commit"),
        "{shown}"
    );

    // A stored draw that was tampered with does not pass.
    let tampered = tamper(
        &mut b,
        5,
        "round.ticket = String(BigInt(round.ticket) + 1n)",
    );
    assert!(
        tampered.starts_with("✗ Block 5's draw does not match: ticket"),
        "{tampered}"
    );
    let forged = tamper(
        &mut b,
        5,
        "round.reveal = round.reveal.replace(/^./, (c) => (c === '0' ? '1' : '0'))",
    );
    assert!(
        forged.starts_with("✗ Block 5's draw does not match: the revealed secret does not hash"),
        "{forged}"
    );
    b.eval("explain(13)");
    verdict(&mut b, 13);
    the_page_draws_as_docs_lottery_md_says(&mut b);

    // Validators with stake, status and their chance in the open round.
    let rows =
        b.eval("[...document.querySelectorAll('#validators tbody tr')].map(r => r.textContent)");
    let rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows[0].contains(&validators[0].1[..10]), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("slashed")), "{rows:?}");
    let dots = b.eval("document.querySelectorAll('#chart circle').length");
    assert_eq!(dots, 4, "one dot per active validator");
    // Proposals made after the page loaded show up by themselves.
    propose(&mut validators, 13);
    let chances = b.wait_for(
        "the open round's proposals",
        "(rows => rows.length === 3 && rows)\
         ([...document.querySelectorAll('#round tbody tr')].map(r => r.lastChild.textContent))",
    );
    let total: f64 = chances
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap()
                .trim_end_matches('%')
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    assert!(
        (99.0..=101.0).contains(&total),
        "chances {chances} add up to {total}%"
    );

    assert_eq!(b.errors(), Vec::<String>::new(), "the page reported errors");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page.png");
    b.screenshot(&shot);
    println!("screenshot: {}", shot.display());
}

/// Opens the page on a weighted chain of `height` blocks drawn under `rule`
/// (as posctl names it) and checks that it says the rule, re-checks every
/// block's draw here, and refuses block `height` once its stored weight (and
/// `why`, JS altering the round's first candidate) is altered.
fn the_page_rechecks_a_weighted_chain(
    http: std::net::SocketAddr,
    height: u64,
    rule: &str,
    why: &str,
) -> Browser {
    let mut b = Browser::start(1280, 900);
    b.open(&format!("http://{http}/"));
    b.wait_for(
        "the chain's weighting rule",
        &format!("document.getElementById('s-rule').textContent === '{rule}'"),
    );
    b.wait_for(
        &format!("the chain up to block {height}"),
        &format!("{} !== null", block(height)),
    );
    for index in 1..=height {
        b.eval(&format!("explain({index})"));
        let v = verdict(&mut b, index);
        assert!(v.contains("matches") && v.contains("weights"), "{v}");
    }
    let name = rule.split(' ').next().unwrap();
    let shown = b.eval("document.getElementById('draw').textContent");
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains(&format!("posd-lottery-v2/{name}")),
        "{shown}"
    );
    assert!(shown.contains("Weights. The chain's rule is"), "{shown}");

    // A stored weight that was altered does not pass, nor one that is no
    // number, nor a reason.
    let c = "round.candidates[0]";
    let heavier = tamper(
        &mut b,
        height,
        &format!("{c}.weight = String(BigInt({c}.weight) + 1n)"),
    );
    let says = format!("✗ Block {height}'s draw does not match: weight of ");
    assert!(heavier.starts_with(&says), "{heavier}");
    let malformed = tamper(&mut b, height, &format!("{c}.weight = 'heavy'"));
    let says = format!("✗ cannot re-check block {height}'s draw: the stored round holds a number");
    assert!(malformed.starts_with(&says), "{malformed}");
    let (field, says) = why.split_once(" => ").unwrap();
    let older = tamper(&mut b, height, &format!("{c}.{field} += 1"));
    assert!(older.contains(says), "{older}");
    b
}

/// The open round's chances, once `rows` proposals are shown: they add up to
/// 100%, and each row names its weight's reason (one of `whys`).
fn chances_by_weight(b: &mut Browser, rows: usize, whys: &[&str]) {
    let got = b.wait_for(
        "the open round's proposals",
        &format!(
            "(rows => rows.length === {rows} && rows)([...document.querySelectorAll('#round tbody tr')]\
             .map(r => [r.children[3].textContent, r.lastChild.textContent]))"
        ),
    );
    let mut total = 0.0;
    for row in got.as_array().unwrap() {
        let weight = row[0].as_str().unwrap();
        assert!(whys.iter().any(|why| weight.contains(why)), "{got}");
        total += row[1]
            .as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse::<f64>()
            .unwrap();
    }
    assert!(
        (99.0..=101.0).contains(&total),
        "chances {got} add up to {total}%"
    );
}

/// posd with HTTP on, rounds closed by hand, under `rule` (its
/// `--lottery-weighting` flags; none: stake).
fn page_posd(dir: &std::path::Path, rule: &[&str]) -> Posd {
    let mut args = vec!["--round-interval", "1h", "--http-listen", "127.0.0.1:0"];
    args.extend(rule);
    Posd::start(posd_bin!(), dir, &args)
}

#[test]
#[ignore = "needs chromium"]
fn the_page_rechecks_stake_age_draws_from_the_rounds_before() {
    let dir = tempfile::tempdir().unwrap();
    let posd = page_posd(dir.path(), &pos_testkit::STAKE_AGE_3);
    // Some skip rounds, so ages differ and some reset on a win.
    let mut validators = chain_of(&posd, &[300, 200, 100, 50], 8);
    let mut b = the_page_rechecks_a_weighted_chain(
        posd.http(),
        8,
        "stake_age (age_window 3)",
        "age => age of ",
    );
    propose(&mut validators, 8);
    chances_by_weight(&mut b, 3, &["age "]);
    assert_eq!(b.errors(), Vec::<String>::new(), "the page reported errors");
}

#[test]
#[ignore = "needs chromium"]
fn the_page_rechecks_stake_work_draws_with_webcrypto() {
    let dir = tempfile::tempdir().unwrap();
    let posd = page_posd(dir.path(), &pos_testkit::STAKE_WORK_4_2);
    let mut validators = chain_of(&posd, &[100, 100, 100], 0);
    // After a first round of bare proposals, each round has one proposal
    // with work above the gate, one below it and one bare.
    let propose =
        |validators: &mut [(Client, String, String)], tip: Option<&Block>, round: usize| {
            for (i, (c, address, _)) in validators.iter_mut().enumerate() {
                let bpm = 60 + (round * 7 + i * 13) as u32 % 40;
                let address: Address = address.parse().unwrap();
                let line = match (tip, (round + i) % 3) {
                    (Some(tip), 0) => format!("{bpm} {}", mine(tip, &address, bpm, |z| z >= 5).0),
                    (Some(tip), 1) => format!("{bpm} {}", mine(tip, &address, bpm, |z| z < 4).0),
                    _ => bpm.to_string(),
                };
                c.send(&format!("{line}\n"));
                c.expect(&format!("proposal {bpm} for block {}, weight", round + 1));
            }
        };
    let mut tip = None;
    for round in 0..6 {
        propose(&mut validators, tip.as_ref(), round);
        tip = pos_testkit::admin::lottery_run(&posd.socket()).unwrap();
    }
    let mut b = the_page_rechecks_a_weighted_chain(
        posd.http(),
        6,
        "stake_work (work_bits 4, work_bonus_max 2)",
        "work_bits => work bits of ",
    );
    let shown = b.eval("document.getElementById('draw').textContent");
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("zero bits") && shown.contains("no nonce"),
        "{shown}"
    );
    propose(&mut validators, tip.as_ref(), 6);
    chances_by_weight(&mut b, 3, &["zero bits", "no nonce"]);
    assert_eq!(b.errors(), Vec::<String>::new(), "the page reported errors");
}
