//! posd's `run()` in this process, on `127.0.0.1:0`, with a temp data dir.

use crate::Client;
use posd::config::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;

/// A posd running on its own runtime thread; stops (gracefully) on drop.
pub struct Daemon {
    pub addr: SocketAddr,
    pub socket: PathBuf,
    /// The HTTP listener's address, when started with `--http-listen`.
    pub http: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    /// Ends with `run()`'s result, its error as text.
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Daemon {
    /// Starts posd with `posd` + `args` as its command line (plus a data dir and port 0).
    pub fn start(data_dir: &Path, args: &[&str]) -> Daemon {
        let mut argv = vec!["posd".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        argv.push("--data-dir".into());
        argv.push(data_dir.display().to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        let config = Config::from_argv(argv).expect("valid test config");
        let socket = config.admin_socket.clone();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .map_err(|e| e.to_string())?;
                let node = posd::Node::open(config).map_err(|e| format!("{e:#}"))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                let _ = addr_tx.send((addr, node.http_addr()));
                let shutdown = async {
                    let _ = stopped.await;
                };
                node.serve(listener, shutdown, futures::stream::pending())
                    .await
                    .map_err(|e| format!("{e:#}"))
            })
        });
        let (addr, http) = addr_rx.recv().expect("posd thread started");
        // run() binds the admin socket right after opening the store; a stale
        // file may be there before, so wait until someone answers on it.
        let deadline = std::time::Instant::now() + crate::PATIENCE;
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "admin socket never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Daemon {
            addr,
            socket,
            http,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A new validator staking `stake`; returns (client, address, key).
    pub fn validator(&self, stake: u64) -> (Client, String, String) {
        Client::validator(self.addr, stake)
    }

    /// Graceful shutdown; returns what `run()` returned.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "posd thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
