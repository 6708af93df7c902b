//! The admin socket against bad clients and a second posd.

use pos_proto::{decode, encode, Hello, Request, Response, Welcome, PROTOCOL_VERSION};
use pos_testkit::Daemon;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn read_frame(s: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

fn connect(socket: &Path) -> UnixStream {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn hello(s: &mut UnixStream, protocol: u32) -> Welcome {
    let h = Hello {
        protocol,
        client: "test".into(),
    };
    s.write_all(&frame(&encode(&h))).unwrap();
    decode(&read_frame(s)).unwrap()
}

/// posd still answers a well-behaved client.
fn still_serving(socket: &Path) {
    let mut s = connect(socket);
    assert!(matches!(
        hello(&mut s, PROTOCOL_VERSION),
        Welcome::Accepted { .. }
    ));
    s.write_all(&frame(&encode(&Request::Status))).unwrap();
    let r: Response = decode(&read_frame(&mut s)).unwrap();
    assert!(matches!(r, Response::Status(_)), "{r:?}");
}

#[test]
fn version_mismatch_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let mut s = connect(&d.socket);
    match hello(&mut s, PROTOCOL_VERSION + 1) {
        Welcome::Refused(why) => {
            assert!(why.contains(&format!("v{}", PROTOCOL_VERSION + 1)), "{why}");
            assert!(why.contains(&format!("v{PROTOCOL_VERSION}")), "{why}");
        }
        other => panic!("{other:?}"),
    }
    still_serving(&d.socket);
}

#[test]
fn garbage_and_oversized_frames_get_an_error_and_posd_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let cases: Vec<Vec<u8>> = vec![
        // Garbage instead of a hello.
        frame(&[0xff; 12]),
        // A length far over the cap.
        u32::MAX.to_be_bytes().to_vec(),
    ];
    for bytes in cases {
        let mut s = connect(&d.socket);
        s.write_all(&bytes).unwrap();
        let r: Response = decode(&read_frame(&mut s)).unwrap();
        assert!(matches!(r, Response::Error(_)), "{r:?}");
        let mut rest = vec![];
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "connection closed after the error");
    }
    // Garbage after a good handshake.
    let mut s = connect(&d.socket);
    hello(&mut s, PROTOCOL_VERSION);
    s.write_all(&frame(&[0x7f, 0x7f, 0x7f])).unwrap();
    let r: Response = decode(&read_frame(&mut s)).unwrap();
    assert!(
        matches!(r, Response::Error(ref e) if e.contains("undecodable")),
        "{r:?}"
    );
    // Half a frame, then hang up.
    let mut s = connect(&d.socket);
    s.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
    drop(s);
    still_serving(&d.socket);
}

#[test]
fn stale_socket_is_replaced_and_live_one_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    // A socket file nobody listens on, as a crashed posd leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let d = Daemon::start(dir.path(), &[]);
    still_serving(&d.socket);

    let other = tempfile::tempdir().unwrap();
    let config = posd::config::Config::from_argv([
        "posd",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        other.path().to_str().unwrap(),
        "--admin-socket",
        socket.to_str().unwrap(),
    ])
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            posd::run(
                config,
                listener,
                std::future::pending(),
                futures::stream::pending(),
            )
            .await
        })
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("another posd is answering on admin socket"),
        "{msg}"
    );
    assert!(msg.contains(&socket.display().to_string()), "{msg}");
    still_serving(&d.socket);
    d.stop().unwrap();
    assert!(!socket.exists(), "socket removed on exit");
}

/// What `posd::run` says when started with `--admin-socket path` (and `extra`
/// flags); gives up (and fails) if posd starts serving instead.
fn start_refused(data_dir: &Path, path: &Path, extra: &[&str]) -> String {
    let mut argv = vec![
        "posd",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--admin-socket",
        path.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let config = posd::config::Config::from_argv(argv).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        posd::run(
            config,
            listener,
            tokio::time::sleep(pos_testkit::PATIENCE),
            futures::stream::pending(),
        )
        .await
    });
    format!(
        "{:#}",
        result.expect_err("posd started on a path that is no socket")
    )
}

#[test]
fn only_a_stale_socket_is_removed_from_the_admin_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The config file itself, as a mistyped --admin-socket might name it.
    let config = dir.path().join("posd.toml");
    std::fs::write(&config, "round_interval = \"1h\"\n").unwrap();
    let config_arg = config.to_str().unwrap().to_string();
    let msg = start_refused(&data, &config, &["--config", &config_arg]);
    assert!(
        msg.contains(&config.display().to_string()) && msg.contains("a regular file"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "round_interval = \"1h\"\n"
    );

    let subdir = dir.path().join("sub");
    std::fs::create_dir(&subdir).unwrap();
    let msg = start_refused(&data, &subdir, &[]);
    assert!(msg.contains("a directory"), "{msg}");
    assert!(subdir.is_dir());

    // Symbolic links are never followed nor removed, dangling or not.
    let dangling = dir.path().join("dangling.sock");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let linked = dir.path().join("linked.sock");
    std::os::unix::fs::symlink(&config, &linked).unwrap();
    for link in [&dangling, &linked] {
        let msg = start_refused(&data, link, &[]);
        assert!(
            msg.contains(&link.display().to_string()) && msg.contains("a symbolic link"),
            "{msg}"
        );
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    }
    assert!(config.is_file());
}
