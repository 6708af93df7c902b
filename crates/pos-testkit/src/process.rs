//! The posd binary as a child process, so tests can SIGKILL and restart it.

use crate::{Client, PATIENCE};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A running posd process.
pub struct Posd {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Everything posd logged so far.
    pub log: Arc<Mutex<String>>,
}

impl Posd {
    /// Starts the posd binary `bin` on `127.0.0.1:0` with `data_dir` and
    /// extra flags; waits until it listens.
    pub fn start(bin: &Path, data_dir: &Path, args: &[&str]) -> Posd {
        Posd::start_env(bin, data_dir, args, &[])
    }

    /// [`Posd::start`] with extra environment variables.
    pub fn start_env(bin: &Path, data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Posd {
        Posd::spawn(Command::new(bin), data_dir, args, env)
    }

    /// [`Posd::start`] with at most `nofile` open files (RLIMIT_NOFILE).
    pub fn start_limited(bin: &Path, data_dir: &Path, args: &[&str], nofile: u64) -> Posd {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(bin);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Posd::spawn(cmd, data_dir, args, &[])
    }

    /// [`Posd::start_env`] from a prepared `cmd` (posd's binary, e.g. with a `pre_exec`).
    pub fn spawn(mut cmd: Command, data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Posd {
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn posd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            // Drain stderr for the whole life of the process so posd never blocks on it.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("posd listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("posd did not start:\n{}", log.lock().unwrap());
            }
        };
        Posd {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A new validator staking `stake`; returns it at the BPM prompt.
    pub fn validator(&self, stake: u64) -> (Client, String, String) {
        Client::validator(self.addr, stake)
    }

    /// The HTTP listener's address, from its log line (started with `--http-listen`).
    pub fn http(&self) -> SocketAddr {
        const SAYS: &str = "http listening on http://";
        let log = self.wait_log(SAYS);
        let rest = &log[log.find(SAYS).unwrap() + SAYS.len()..];
        let addr = rest.split('/').next().unwrap();
        addr.parse()
            .unwrap_or_else(|_| panic!("no address in {rest:?}"))
    }

    /// The admin socket's default path in this data directory.
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGSTOP: the process is frozen (a paused VM, a long stall) until [`Posd::thaw`].
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Posd::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().unwrap()
    }

    /// Waits until the log contains `needle`; returns the whole log.
    pub fn wait_log(&self, needle: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "log never showed {needle:?}:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Posd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
