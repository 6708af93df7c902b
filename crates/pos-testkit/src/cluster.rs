//! Several posd processes as one cluster on loopback (SPEC §9): each node a
//! child process with its own data dir, cluster port and admin socket.

use crate::admin::ask;
use crate::{Posd, PATIENCE};
use pos_proto::{ClusterInfo, Request, Response};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A temp dir with the cluster's shared secret (mode 0600) and every node's data dir.
pub struct ClusterDir {
    pub dir: tempfile::TempDir,
    pub secret: PathBuf,
    /// Every node's `--election-timeout` (300ms unless a test needs the default's).
    pub election_timeout: String,
}

impl ClusterDir {
    pub fn new() -> ClusterDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("cluster.secret");
        std::fs::write(&secret, "a test secret of forty characters, no more\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        ClusterDir {
            dir,
            secret,
            election_timeout: "300ms".into(),
        }
    }

    /// [`ClusterDir::new`] for nodes with `--election-timeout` `timeout`.
    pub fn with_election_timeout(timeout: &str) -> ClusterDir {
        ClusterDir {
            election_timeout: timeout.into(),
            ..ClusterDir::new()
        }
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    /// Starts node `id` (cluster port on 127.0.0.1:0) with extra flags.
    pub fn start(&self, bin: &Path, id: u64, args: &[&str]) -> Node {
        self.start_at(bin, id, "127.0.0.1:0", args)
    }

    /// Starts node `id` with its cluster port at `cluster_listen`.
    pub fn start_at(&self, bin: &Path, id: u64, cluster_listen: &str, args: &[&str]) -> Node {
        self.start_cmd(Command::new(bin), id, cluster_listen, args)
    }

    /// [`ClusterDir::start_at`] from a prepared `cmd` running posd (e.g. in
    /// a network namespace).
    pub fn start_cmd(&self, cmd: Command, id: u64, cluster_listen: &str, args: &[&str]) -> Node {
        let id_text = id.to_string();
        let secret = self.secret.to_str().unwrap();
        let mut all = vec![
            "--node-id",
            &id_text,
            "--cluster-listen",
            cluster_listen,
            "--cluster-secret-file",
            secret,
            "--election-timeout",
            &self.election_timeout,
            "--registration-rate",
            "0",
        ];
        all.extend_from_slice(args);
        let posd = Posd::spawn(cmd, &self.data_dir(id), &all, &[]);
        const SAYS: &str = "cluster_listen=";
        let log = posd.wait_log(SAYS);
        let rest = &log[log.find(SAYS).unwrap() + SAYS.len()..];
        let addr = rest.split_whitespace().next().unwrap().to_string();
        // The admin socket is bound by then.
        posd.wait_log("posd ready");
        Node { id, posd, addr }
    }
}

impl Default for ClusterDir {
    fn default() -> Self {
        ClusterDir::new()
    }
}

/// One cluster node: its process and the address other nodes reach it at.
pub struct Node {
    pub id: u64,
    pub posd: Posd,
    pub addr: String,
}

impl Node {
    pub fn ask(&self, request: &Request) -> Result<Response, String> {
        ask(&self.posd.socket(), request)
    }

    /// `posctl cluster <request>`: the node's view afterwards, or its error.
    pub fn cluster(&self, request: &Request) -> Result<ClusterInfo, String> {
        match self.ask(request)? {
            Response::Cluster(info) => Ok(info),
            Response::Error(e) => Err(e),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    pub fn status(&self) -> ClusterInfo {
        self.cluster(&Request::ClusterStatus)
            .expect("cluster status")
    }

    pub fn init(&self) -> ClusterInfo {
        self.cluster(&Request::ClusterInit).expect("cluster init")
    }

    /// Adds `other` through this node (the leader).
    pub fn add(&self, other: &Node) -> ClusterInfo {
        self.cluster(&Request::ClusterAdd {
            node_id: other.id,
            addr: other.addr.clone(),
        })
        .unwrap_or_else(|e| {
            panic!(
                "cannot add node {}: {e}\nleader's log:\n{}\njoiner's log:\n{}",
                other.id,
                self.posd.log(),
                other.posd.log()
            )
        })
    }
}

impl Drop for Node {
    /// A failing test shows what each node logged.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- node {} logged:\n{}", self.id, self.posd.log());
        }
    }
}

/// Polls `check` until it returns `Some`, for up to `PATIENCE`.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The leader's id once every node in `nodes` agrees on one.
pub fn agreed_leader(nodes: &[&Node]) -> u64 {
    eventually("one leader all nodes agree on", || {
        let leaders: Vec<Option<u64>> = nodes.iter().map(|n| n.status().leader_id).collect();
        let first = leaders[0]?;
        leaders.iter().all(|l| *l == Some(first)).then_some(first)
    })
}
