//! Hostile and broken clients: posd keeps serving everyone else. After each
//! attack a fresh validator must still register within a second.

use pos_testkit::{force_round, posd_bin, Client, Posd};
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn assert_responsive(posd: &Posd) {
    let took = Client::registration_time(posd.addr);
    assert!(took < Duration::from_secs(1), "registration took {took:?}");
}

fn set_sockopt(s: &TcpStream, level: i32, name: i32, value: &[u8]) {
    // SAFETY: a plain setsockopt on a socket we own, with a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt");
}

/// A client whose kernel receive buffer is only `bytes` long.
fn small_window(posd: &Posd, bytes: i32) -> Client {
    let stream = TcpStream::connect(posd.addr).unwrap();
    set_sockopt(
        &stream,
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        &bytes.to_ne_bytes(),
    );
    Client {
        stream,
        buf: String::new(),
    }
}

#[test]
fn multi_megabyte_line_without_newline() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let mut c = posd.connect();
    c.expect("Enter token balance:");
    let chunk = vec![b'7'; 64 * 1024];
    for _ in 0..64 {
        // posd closes after the first KiB; later writes may fail, as they should.
        if c.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    assert!(c
        .expect_closed()
        .contains("error: line longer than 1024 bytes; closing"));
    assert_responsive(&posd);
}

#[test]
fn half_lines_then_silence_and_slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let mut silent: Vec<_> = (0..100).map(|_| posd.connect()).collect();
    for c in &mut silent {
        c.send("12");
    }
    let (mut v, _, _) = posd.validator(3);
    v.send("6");
    assert_responsive(&posd);
    // Slow typists: one byte at a time, 200 of them interleaved.
    let mut slow: Vec<_> = (0..200).map(|_| posd.connect()).collect();
    for byte in b"100\n" {
        for c in &mut slow {
            c.send_bytes(&[*byte]);
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_responsive(&posd);
    }
    for c in &mut slow {
        c.registration();
    }
}

#[test]
fn hundreds_of_abrupt_resets() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: viewing a plain C struct as bytes for setsockopt.
    let linger = unsafe {
        std::slice::from_raw_parts(
            (&linger as *const libc::linger).cast::<u8>(),
            std::mem::size_of::<libc::linger>(),
        )
    };
    for i in 0..400 {
        let mut s = TcpStream::connect(posd.addr).unwrap();
        set_sockopt(&s, libc::SOL_SOCKET, libc::SO_LINGER, linger);
        match i % 3 {
            0 => {}
            1 => s.write_all(b"10").unwrap(),
            _ => s.write_all(b"10\n72\n").unwrap(),
        }
        drop(s); // RST, not FIN
    }
    assert_responsive(&posd);
}

#[test]
fn a_client_that_never_reads_is_dropped_and_slows_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &["--round-interval", "1ms", "--write-timeout", "1s"],
    );
    // The deaf client: a tiny receive window, and it never reads again.
    let mut deaf = small_window(&posd, 1024);
    deaf.send("5\n");
    deaf.registration();

    let (mut proposer, _, _) = posd.validator(10);
    let start = Instant::now();
    let mut blocks = 0;
    while blocks < 1000 {
        proposer.send("70\n");
        proposer.next_block();
        blocks += 1;
    }
    let elapsed = start.elapsed();
    // posd let go of exactly the deaf client (its rounds never waited for it).
    let deaf_addr = deaf.stream.local_addr().unwrap();
    let log = posd.wait_log(&format!("dropped peer={deaf_addr}"));
    assert!(
        log.contains("client not reading for 1s") || log.contains("too slow to read announcements"),
        "{log}"
    );
    eprintln!("1000 blocks in {elapsed:?} with a deaf client attached");
    assert_responsive(&posd);
}

#[test]
fn emfile_on_accept_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start_limited(posd_bin!(), dir.path(), &[], 64);
    // Far more connections than posd has descriptors for.
    let flood: Vec<_> = (0..150)
        .filter_map(|_| TcpStream::connect(posd.addr).ok())
        .collect();
    posd.wait_log("accept failed; retrying shortly");
    drop(flood);
    // Descriptors come back as the flood's sessions end; posd recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let took = Client::registration_time(posd.addr);
        if took < Duration::from_secs(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "posd did not recover from EMFILE"
        );
    }
    assert_responsive(&posd);
}

/// Closes a round now through the admin socket, as `posctl lottery run` does.
fn lottery_run(posd: &Posd) -> Result<pos_proto::LotteryOutcome, String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut admin = pos_proto::Client::connect(&posd.socket(), "test")
            .await
            .map_err(|e| e.to_string())?;
        match admin.ask(&pos_proto::Request::LotteryRun).await {
            Ok(pos_proto::Response::Lottery(outcome)) => Ok(outcome),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    })
}

fn winner_of(outcome: pos_proto::LotteryOutcome) -> String {
    match outcome {
        pos_proto::LotteryOutcome::Committed { block, .. } => block.validator.unwrap().to_string(),
        other => panic!("no block: {other:?}"),
    }
}

#[test]
fn largest_stake_and_reward_accepted_never_veto_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &[
            "--round-interval",
            "1day",
            "--max-stake",
            "1000000000000000",
            "--block-reward",
            "1000000",
        ],
    );
    let (mut whale, _, _) = posd.validator(1_000_000_000_000_000);
    let mut small: Vec<_> = (0..3).map(|_| posd.validator(1).0).collect();
    for round in 0..20 {
        whale.send("70\n");
        for s in &mut small {
            s.send("71\n");
        }
        for c in small.iter_mut().chain([&mut whale]) {
            c.send("status\n");
            c.expect("candidates: ");
        }
        let outcome = lottery_run(&posd).unwrap_or_else(|e| panic!("round {round}: {e}"));
        winner_of(outcome);
    }
}

#[test]
fn a_balance_that_cannot_take_the_reward_vetoes_no_round() {
    let dir = tempfile::tempdir().unwrap();
    // A validator at u64::MAX, as an older posd (which took any max_stake) could leave.
    let key = pos_core::ValidatorKey([7; 32]);
    {
        let store = pos_store::Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
        store
            .apply(&pos_core::Command::Register {
                address: key.address(),
                stake: u64::MAX,
                max_stake: u64::MAX,
                max_validators: u64::MAX,
                at_ms: 0,
            })
            .unwrap()
            .unwrap();
        store.flush().unwrap();
    }
    let posd = Posd::start(posd_bin!(), dir.path(), &["--round-interval", "1day"]);
    let mut whale = posd.connect();
    whale.expect("Enter token balance:");
    whale.send(&format!("resume {}\n", key.to_hex()));
    whale.expect("resumed");
    let (mut small, small_addr, _) = posd.validator(1);
    for _ in 0..3 {
        whale.send("70\n");
        small.send("80\n");
        for c in [&mut whale, &mut small] {
            c.send("status\n");
            c.expect("candidates: ");
        }
        // The whale cannot take another reward, so it is no candidate; the round goes on.
        assert_eq!(winner_of(lottery_run(&posd).unwrap()), small_addr);
    }
    posd.wait_log("cannot take the block reward");
}

#[test]
fn silent_connections_are_shed_so_a_validator_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &["--max-connections", "100"]);
    let mut silent: Vec<_> = (0..100)
        .map(|_| {
            let mut c = posd.connect();
            c.expect("Enter token balance:");
            c
        })
        .collect();
    // The limit is full of connections that never staked: an honest validator
    // still registers, because the oldest of them makes room and is told why.
    let (_v, _, _) = posd.validator(5);
    assert!(
        silent[0]
            .expect_closed()
            .contains("error: connection limit reached"),
        "the oldest silent connection is shed"
    );
    // An attacker who keeps reconnecting keeps nobody out either.
    let mut validators = vec![];
    for _ in 0..10 {
        let mut c = posd.connect();
        c.expect("Enter token balance:");
        silent.push(c);
        validators.push(posd.validator(1));
    }
    // The newest silent connections survive: only the oldest are shed.
    silent.last_mut().unwrap().send("help\n");
    silent.last_mut().unwrap().expect("resume <key>");
}

#[test]
fn an_idle_limit_lets_go_of_silent_validators() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &["--idle-timeout", "2s", "--round-interval", "1day"],
    );
    let (mut idle, _, _) = posd.validator(5);
    let (mut busy, _, _) = posd.validator(5);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        busy.send("status\n");
        busy.expect("Enter a new BPM:");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        idle.expect_closed()
            .contains("error: nothing received for 2s (idle_timeout); closing"),
        "the idle validator is let go"
    );
    busy.send("balance\n");
    busy.expect("balance: 5 tokens");
}

/// posd's end of the TCP connection whose client end is `client`, as
/// /proc/net/tcp lists it: (timer kind, ticks until it fires).
fn server_side_timer(
    server: std::net::SocketAddr,
    client: std::net::SocketAddr,
) -> Option<(u8, u64)> {
    let hex = |a: std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) => {
            format!("{:08X}:{:04X}", u32::from_ne_bytes(ip.octets()), a.port())
        }
        ip => panic!("{ip} is not IPv4"),
    };
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[1] != local || f[2] != remote {
            return None;
        }
        let (kind, when) = f[5].split_once(':')?;
        Some((
            u8::from_str_radix(kind, 16).ok()?,
            u64::from_str_radix(when, 16).ok()?,
        ))
    })
}

#[test]
fn validator_connections_have_tcp_keepalive() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let mut c = posd.connect();
    c.expect("Enter token balance:");
    let client = c.stream.local_addr().unwrap();
    // Timer kind 2 on an established socket is the keepalive timer; it fires
    // within 60 s (6,000 ticks of 10 ms), not after the system's 2 h default.
    let start = Instant::now();
    loop {
        let timer = server_side_timer(posd.addr, client);
        if let Some((2, when)) = timer {
            assert!(when <= 6_000, "keepalive in {when} ticks");
            break;
        }
        assert!(
            start.elapsed() < pos_testkit::PATIENCE,
            "no keepalive timer on posd's socket: {timer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The validators one slashing line accounts for: 1 for `slashed validator: ...`,
/// N for the summary `slashed: N validators, ...`; `None` for other lines.
fn slashings_in(line: &str) -> Option<u64> {
    if line.starts_with("slashed validator: ") {
        return Some(1);
    }
    let n = line.strip_prefix("slashed: ")?;
    let (n, rest) = n.split_once(' ')?;
    assert_eq!(
        rest, "validators, see posctl validators --status slashed",
        "{line}"
    );
    n.parse().ok()
}

#[test]
fn a_slashing_flood_is_summarised_and_drops_no_honest_reader() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &["--round-interval", "1h", "--write-timeout", "1s"],
    );
    // An honest validator with a small receive window that reads only now and then.
    let mut honest = small_window(&posd, 2048);
    honest.send("10\n");
    let (address, _) = honest.registration();
    honest.send("70\n");
    honest.expect("Enter a new BPM:");

    const FLOOD: u64 = 300;
    let start = Instant::now();
    let floods: Vec<_> = (0..30)
        .map(|_| {
            let addr = posd.addr;
            std::thread::spawn(move || {
                for _ in 0..FLOOD / 30 {
                    let mut c = Client::connect(addr);
                    c.send("1\n72.5\n");
                    let out = c.expect_closed();
                    assert!(out.contains("slashed: 1 token forfeited"), "{out}");
                }
            })
        })
        .collect();
    for f in floods {
        f.join().unwrap();
    }
    // Longer than write_timeout without reading.
    std::thread::sleep(Duration::from_secs(2));
    let (mut lines, mut slashed) = (0, 0);
    while slashed < FLOOD {
        let line = honest.expect("\n");
        if let Some(n) = slashings_in(line.trim_start_matches("Enter a new BPM:").trim()) {
            lines += 1;
            slashed += n;
        }
    }
    let secs = start.elapsed().as_secs();
    eprintln!("{FLOOD} slashings reached the honest reader in {lines} lines over {secs}s");
    assert_eq!(slashed, FLOOD);
    // A few single lines, then at most one summary per second.
    assert!(lines <= 3 + secs + 1, "{lines} slashing lines in {secs}s");
    force_round(&posd.socket());
    let (winner, block) = honest.next_block();
    assert_eq!(
        (winner.as_str(), block["BPM"].as_u64()),
        (address.as_str(), Some(70))
    );
}
