//! The live page (SPEC §10) in a real browser: headless Chromium from the
//! Debian packages (CI installs it and runs the ignored tests as root).

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

/// The page's verdict on block 5 when `change` (JS on `round`) alters the
/// stored round it reads.
fn tamper(b: &mut Browser, change: &str) -> String {
    let js = format!(
        "(async () => {{
            const real = window.fetch;
            window.fetch = async (url) => {{
                const r = await real(url);
                if (String(url) !== 'api/rounds/5') return r;
                const round = await r.json();
                {change};
                return new Response(JSON.stringify(round));
            }};
            try {{ await explain(5); }} finally {{ window.fetch = real; }}
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
    let args = ["--round-interval", "1h", "--http-listen", "127.0.0.1:0"];
    let posd = Posd::start(posd_bin!(), dir.path(), &args);
    let http = posd.http();
    // A chain worth looking at: four validators, twelve blocks, one slashing.
    let mut validators: Vec<_> = [500, 300, 150, 50]
        .into_iter()
        .map(|stake| posd.validator(stake))
        .collect();
    for round in 0..12 {
        propose(&mut validators, round);
        force_round(&posd.socket());
    }
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
    let tampered = tamper(&mut b, "round.ticket = String(BigInt(round.ticket) + 1n)");
    assert!(
        tampered.starts_with("✗ Block 5's draw does not match: ticket"),
        "{tampered}"
    );
    let forged = tamper(
        &mut b,
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
