//! The HTTP port (SPEC §10) of a real posd: metrics, methods, bad requests,
//! server-sent events and limits. (That `/api/...` answers exactly what
//! `posctl --json` prints is checked with the posctl binary, in posctl's tests.)

use crate::weighting::mine;
use pos_core::weighting::work_weight;
use pos_testkit::http::{self, Events};
use pos_testkit::{force_round, Daemon, Posd, PATIENCE};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

/// A daemon with HTTP on, whose timer never fires: rounds happen when forced.
fn daemon(dir: &std::path::Path, extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec!["--round-interval", "1h", "--http-listen", "127.0.0.1:0"];
    args.extend(extra);
    let d = Daemon::start(dir, &args);
    let http = d.http.expect("http is on");
    (d, http)
}

/// `/metrics` as `series{labels} -> value`.
fn metrics(addr: SocketAddr) -> BTreeMap<String, f64> {
    let r = http::get(addr, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{r:?}"
    );
    r.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            (
                series.to_string(),
                value.parse().unwrap_or_else(|_| panic!("{l:?}")),
            )
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

#[test]
fn metrics_follow_rounds_slashings_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (d, addr) = daemon(dir.path(), &[]);
    let m = metrics(addr);
    for (series, want) in [
        ("posd_height", 0.0),
        ("posd_validators{status=\"active\"}", 0.0),
        ("posd_validators{status=\"slashed\"}", 0.0),
        ("posd_connections", 0.0),
        ("posd_pending_proposals", 0.0),
        ("posd_rounds_total{outcome=\"committed\"}", 0.0),
        ("posd_rounds_total{outcome=\"no_candidates\"}", 0.0),
        ("posd_rounds_total{outcome=\"failed\"}", 0.0),
        ("posd_slashings_total", 0.0),
        ("posd_http_connections", 1.0),
        ("posd_round_interval_seconds", 3600.0),
        ("posd_disk_reserve_bytes", 64.0 * 1024.0 * 1024.0),
    ] {
        assert_eq!(value(&m, series), want, "{series}");
    }
    assert!(value(&m, "posd_disk_free_bytes") > 0.0);
    let genesis = value(&m, "posd_tip_timestamp_seconds");
    let commits = value(&m, "posd_commit_seconds_count");

    force_round(&d.socket);
    let (mut a, _, _) = d.validator(300);
    let (mut b, _, _) = d.validator(100);
    a.send("70\n");
    a.expect("proposal 70");
    let m = metrics(addr);
    assert_eq!(
        value(&m, "posd_rounds_total{outcome=\"no_candidates\"}"),
        1.0
    );
    assert_eq!(value(&m, "posd_pending_proposals"), 1.0);
    assert_eq!(value(&m, "posd_connections"), 2.0);
    assert_eq!(value(&m, "posd_validators{status=\"active\"}"), 2.0);

    b.send("72.5\n");
    b.expect_closed();
    force_round(&d.socket);
    let m = metrics(addr);
    assert_eq!(value(&m, "posd_height"), 1.0);
    assert!(value(&m, "posd_tip_timestamp_seconds") >= genesis);
    assert_eq!(value(&m, "posd_rounds_total{outcome=\"committed\"}"), 1.0);
    assert_eq!(value(&m, "posd_slashings_total"), 1.0);
    assert_eq!(value(&m, "posd_validators{status=\"slashed\"}"), 1.0);
    assert_eq!(value(&m, "posd_pending_proposals"), 0.0);
    // Registrations, the first proposal, the slashing and the round each
    // took a group commit, and every commit lands in a bucket.
    let after = value(&m, "posd_commit_seconds_count");
    assert!(after >= commits + 4.0, "{commits} -> {after}");
    assert_eq!(value(&m, "posd_commit_seconds_bucket{le=\"+Inf\"}"), after);
    assert!(value(&m, "posd_commit_seconds_sum") > 0.0);
}

#[test]
fn anything_but_get_or_head_is_405() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    for (method, path) in [
        ("POST", "/api/status"),
        ("PUT", "/metrics"),
        ("DELETE", "/api/validators"),
        ("PATCH", "/"),
        ("OPTIONS", "/api/blocks"),
        ("POST", "/no/such/page"),
    ] {
        let r = http::request(addr, method, path, &[]);
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        let why = r.json()["error"].as_str().unwrap().to_string();
        assert!(why.contains("read-only"), "{why}");
    }
    let head = http::request(addr, "HEAD", "/api/status", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let page = http::get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some(), "{page:?}");
    assert!(
        page.body.contains("<script src=\"page.js\""),
        "{}",
        page.body
    );
    for asset in ["/page.js", "/page.css"] {
        assert_eq!(http::get(addr, asset).status, 200, "{asset}");
    }
}

#[test]
fn bad_requests_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    for (path, status, says) in [
        ("/api/blocks?from=x", 400, "from"),
        ("/api/blocks?form=1", 400, "form"),
        ("/api/blocks/xyz", 400, "expected a block index"),
        ("/api/blocks/99", 404, "no block at index 99"),
        (
            "/api/blocks/abcdef",
            404,
            "no block hash starts with abcdef",
        ),
        ("/api/rounds/0", 404, "genesis"),
        ("/api/rounds/1", 404, "no lottery round stored for block 1"),
        ("/api/rounds/one", 400, "expected a block index"),
        ("/api/validators/xyz", 400, "expected a validator address"),
        (
            "/api/validators/abcd",
            404,
            "no validator address starts with abcd",
        ),
        ("/api/validators?status=bogus", 400, "status"),
        ("/api/validators?limit=x", 400, "limit"),
        ("/api/events?after=-1", 400, "after"),
        ("/no/such/page", 404, "no such page: /no/such/page"),
    ] {
        let r = http::get(addr, path);
        assert_eq!(r.status, status, "{path}: {r:?}");
        let why = r.json()["error"].as_str().unwrap().to_string();
        assert!(why.contains(says), "{path}: {why}");
    }
    let r = http::request(addr, "GET", "/api/events", &[("last-event-id", "x")]);
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn events_bring_every_block_once_and_slashings() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--round-interval", "1h", "--http-listen", "127.0.0.1:0"];
    let mut d = Posd::start(pos_testkit::posd_bin!(), dir.path(), &args);
    let addr = d.http();
    let mut live = Events::open(addr, "/api/events", &[]);
    let (mut a, address_a, _) = d.validator(300);
    let (mut b, address_b, _) = d.validator(100);
    a.send("70\n");
    a.expect("proposal 70");
    force_round(&d.socket());
    let block = live.next_event();
    assert_eq!(
        (block.event.as_str(), block.id.as_deref()),
        ("block", Some("1"))
    );
    assert_eq!(block.json(), http::get(addr, "/api/blocks/1").json());
    assert_eq!(block.json()["Validator"], address_a.as_str());

    b.send("72.5\n");
    b.expect_closed();
    let slashing = live.next_event();
    assert_eq!(slashing.event, "slashing");
    let slashed = slashing.json();
    assert_eq!(slashed["address"], address_b.as_str());
    assert_eq!(slashed["status"], "slashed");

    // A reader coming back (EventSource sends Last-Event-ID) or starting
    // after a block it has gets what followed, from the chain.
    let mut back = Events::open(addr, "/api/events", &[("last-event-id", "0")]);
    let mut after = Events::open(addr, "/api/events?after=0", &[]);
    for stream in [&mut back, &mut after] {
        assert_eq!(stream.next_event(), block);
    }
    a.send("71\n");
    a.expect("proposal 71");
    force_round(&d.socket());
    for stream in [&mut live, &mut back, &mut after] {
        let next = stream.next_event();
        assert_eq!(next.id.as_deref(), Some("2"), "{next:?}");
    }
    // The page reads a large validator set only in part.
    let all = http::get(addr, "/api/validators?status=all").json_lines();
    let first = http::get(addr, "/api/validators?status=all&limit=1").json_lines();
    assert_eq!((all.len(), first), (2, vec![all[0].clone()]));
    // Open streams end with posd, which stops cleanly and in time.
    assert!(d.terminate().success());
    let log = d.log();
    assert!(!log.contains("did not close in time"), "{log}");
}

/// Reads until posd closes the connection; panics if it does not in time.
fn closed_by_posd(mut s: TcpStream) {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = vec![];
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("posd kept a silent connection open: {e}"),
    }
}

#[test]
fn silent_connections_are_closed_after_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &["--write-timeout", "300ms"]);
    let start = Instant::now();
    closed_by_posd(TcpStream::connect(addr).unwrap());
    // Half a request is as silent as none.
    let mut half = TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut half, b"GET /api/status HTTP/1.1\r\nhost: x\r\n").unwrap();
    closed_by_posd(half);
    assert!(start.elapsed() < PATIENCE);
}

#[test]
fn beyond_the_connection_limit_newcomers_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    let limit = 256; // docs/HTTP.md
    let mut held: Vec<TcpStream> = (0..limit)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let r = http::get(addr, "/api/status");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("too many HTTP connections"));
    assert_eq!(r.header("retry-after"), Some("1"));
    // One leaves: there is room again (once posd has seen it go).
    held.pop();
    let start = Instant::now();
    while http::get(addr, "/api/status").status != 200 {
        assert!(
            start.elapsed() < PATIENCE,
            "no room after a connection closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn http_is_off_unless_configured_and_a_taken_port_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    assert_eq!(d.http, None);
    drop(d);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(pos_testkit::posd_bin!())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            &port,
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {port} (http_listen)")),
        "{err}"
    );
    // The binary says where it serves, for people and for tests.
    let p = Posd::start(
        pos_testkit::posd_bin!(),
        dir.path(),
        &["--http-listen", "127.0.0.1:0"],
    );
    assert_eq!(http::get(p.http(), "/api/status").json()["height"], 0);
}

/// `/api/round`: the open round as the page reads it.
fn open_round(http: SocketAddr) -> serde_json::Value {
    let r = http::get(http, "/api/round");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

/// The page's "chance this round" is by weight: `/api/round` says the
/// chain's rule, each candidate's weight and why, and the total weight.
#[test]
fn the_open_round_weighs_by_the_chains_rule() {
    let root = tempfile::tempdir().unwrap();

    // stake: weight = stake, said by the totals; candidates stay as they were.
    let (d, http) = daemon(&root.path().join("stake"), &[]);
    let (mut a, _, _) = d.validator(10);
    a.propose(70);
    let r = open_round(http);
    assert_eq!(
        (&r["weighting"], &r["total_weight"], &r["total_stake"]),
        (&json!("stake"), &json!("10"), &json!("10"))
    );
    assert_eq!(r["candidates"][0].get("weight"), None, "{r}");
    drop(d);

    // stake_age: the loser of round 1 proposes again at age 1.
    let age = pos_testkit::STAKE_AGE_3;
    let (d, http) = daemon(&root.path().join("age"), &age);
    let (mut a, a_addr, _) = d.validator(10);
    let (mut b, _, _) = d.validator(10);
    a.propose(70);
    b.propose(71);
    let won = pos_testkit::admin::lottery_run(&d.socket).unwrap().unwrap();
    a.propose(72);
    b.propose(73);
    let r = open_round(http);
    let a_won = won.validator.unwrap().to_string() == a_addr;
    for c in r["candidates"].as_array().unwrap() {
        let winner = (c["address"] == json!(a_addr)) == a_won;
        let (stake, age) = if winner { (11, 0) } else { (10, 1) };
        assert_eq!(c["stake"], json!(stake), "{r}");
        assert_eq!(c["age"], json!(age), "{r}");
        assert_eq!(c["weight"], json!((stake * (1 + age)).to_string()), "{r}");
    }
    assert_eq!(
        (&r["weighting"], &r["total_weight"], &r["total_stake"]),
        (&json!("stake_age"), &json!("31"), &json!("21"))
    );
    drop(d);

    // stake_work: the nonce each proposal carries now.
    let work = pos_testkit::STAKE_WORK_4_2;
    let (d, http) = daemon(&root.path().join("work"), &work);
    let (mut a, a_addr, _) = d.validator(10);
    let (mut b, _, _) = d.validator(10);
    // a alone proposes for block 1, wins it and its reward: stake 11.
    a.propose(70);
    let tip = pos_testkit::admin::lottery_run(&d.socket).unwrap().unwrap();
    let (nonce, z) = mine(&tip, &a_addr.parse().unwrap(), 72, |z| z >= 5);
    a.send(&format!("72 {nonce}\n"));
    a.expect("proposal 72 for block 2, weight");
    b.propose(73);
    let r = open_round(http);
    let weight = work_weight(11, z, 4, 2);
    let (a, b): (Vec<_>, Vec<_>) = r["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|c| c["address"] == json!(a_addr));
    let (a, b) = (a[0], b[0]);
    assert_eq!(
        (&a["weight"], &a["work_bits"], &a["nonce"]),
        (
            &json!(weight.to_string()),
            &json!(z),
            &json!(nonce.to_string())
        )
    );
    assert_eq!(
        (&b["weight"], &b["work_bits"], &b["nonce"]),
        (&json!("10"), &json!(0), &json!(null))
    );
    assert_eq!(r["weighting"], json!("stake_work"));
    assert_eq!(r["total_weight"], json!((weight + 10).to_string()));
}
