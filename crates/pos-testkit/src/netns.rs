//! A private network for partition tests (root only): one network namespace
//! per node, each with a veth into a bridge that lives in a namespace of its
//! own, addresses in 10.77.0.0/24. Nothing is added to the caller's
//! namespace, so no traffic ever leaves the namespaces made here, and
//! deleting the namespaces removes every link with them.
//!
//! Validators' ports stay on each namespace's loopback; the test reaches
//! them with [`Net::connect`], which opens the socket from inside that
//! namespace (a socket keeps the namespace it was made in). Admin sockets
//! are Unix sockets in the data dir: the file system is shared, so they
//! work from anywhere.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;

/// Every namespace made here starts with this, so a crashed run's leftovers
/// can be found and removed.
const PREFIX: &str = "posdt-";

/// Node namespaces and their bridge; removed on drop, even on panic.
pub struct Net {
    nodes: u64,
}

impl Net {
    /// Makes `nodes` namespaces (`posdt-1` …) on one bridge; node `i` has
    /// the address `10.77.0.i`. First removes what a crashed run left.
    pub fn new(nodes: u64) -> Net {
        remove_leftovers();
        let net = Net { nodes };
        let bridge = Net::bridge();
        ip(&["netns", "add", &bridge]);
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        for id in 1..=nodes {
            let ns = net.ns(id);
            let port = format!("n{id}");
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &bridge,
            ]);
            ip(&["-n", &bridge, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &bridge, "link", "set", &port, "up"]);
            let cidr = format!("{}/24", Net::addr(id));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    fn bridge() -> String {
        format!("{PREFIX}br")
    }

    /// Node `id`'s namespace.
    pub fn ns(&self, id: u64) -> String {
        assert!((1..=self.nodes).contains(&id), "no node {id}");
        format!("{PREFIX}{id}")
    }

    /// Node `id`'s address on the bridge.
    pub fn addr(id: u64) -> String {
        format!("10.77.0.{id}")
    }

    /// `bin` to run inside node `id`'s namespace (`ip netns exec`, which
    /// execs it: the child's pid is `bin`'s).
    pub fn command(&self, id: u64, bin: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(id)]).arg(bin);
        cmd
    }

    /// A TCP connection to `addr` opened from inside node `id`'s namespace.
    pub fn connect(&self, id: u64, addr: SocketAddr) -> TcpStream {
        let path = format!("/run/netns/{}", self.ns(id));
        // A thread of its own: setns changes only the calling thread.
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a namespace file we hold open; it affects this thread only.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr} in {path}: {e}"))
        })
        .join()
        .expect("connect thread")
    }

    /// Cuts the network between the nodes of `a` and those of `b` (both
    /// ways): blackhole routes, so each side still reaches its own members.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        self.routes("add", a, b);
    }

    /// Undoes [`Net::partition`] of the same sides.
    pub fn heal(&self, a: &[u64], b: &[u64]) {
        self.routes("del", a, b);
    }

    fn routes(&self, verb: &str, a: &[u64], b: &[u64]) {
        for (from, to) in a
            .iter()
            .flat_map(|x| b.iter().map(move |y| (*x, *y)))
            .flat_map(|(x, y)| [(x, y), (y, x)])
        {
            let dst = format!("{}/32", Net::addr(to));
            ip(&["-n", &self.ns(from), "route", verb, "blackhole", &dst]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        remove_leftovers();
    }
}

/// Deletes every namespace named with [`PREFIX`]; their links go with them.
fn remove_leftovers() {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list (iproute2)");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(PREFIX) {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs `ip ARGS`; panics with its error text when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
