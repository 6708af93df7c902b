//! Headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands go in on fd 3, answers and events
//! come out on fd 4, each a JSON message ended by a NUL byte). No port, no
//! WebSocket: nothing else on the machine can talk to it.

use crate::PATIENCE;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// One headless Chromium with one page; killed on drop.
pub struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Exceptions and console errors the page reported so far.
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

/// A pipe whose ends close on exec (the child gets its end by dup2).
fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    /// Starts `chromium` (or `$CHROMIUM`) with a fresh profile and a blank page.
    pub fn start(width: u32, height: u32) -> Browser {
        let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = tempfile::tempdir().unwrap();
        let (child_reads, we_write) = pipe();
        let (we_read, child_writes) = pipe();
        let mut cmd = Command::new(&program);
        cmd.args([
            "--headless",
            "--remote-debugging-pipe",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.path().display()));
        // Chromium's sandbox refuses to run as root (as CI does).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--no-sandbox");
        }
        cmd.arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way first, so that dup2 cannot clobber one with the other.
                let r = libc::fcntl(child_reads, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(child_writes, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {program} (install the chromium package, or set CHROMIUM): {e}")
        });
        // SAFETY: each descriptor is ours alone; the child has its copies.
        let (commands, answers) = unsafe {
            libc::close(child_reads);
            libc::close(child_writes);
            (File::from_raw_fd(we_write), File::from_raw_fd(we_read))
        };
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            for message in BufReader::new(answers).split(0).map_while(Result::ok) {
                match serde_json::from_slice(&message) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(e) => panic!("chromium sent no JSON ({e}): {message:?}"),
                }
            }
        });
        let mut browser = Browser {
            child,
            commands,
            messages,
            next_id: 0,
            session: String::new(),
            errors: vec![],
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let attach = json!({"targetId": target["targetId"], "flatten": true});
        let session = browser.call("Target.attachToTarget", attach);
        browser.session = session["sessionId"].as_str().unwrap().to_string();
        browser.call("Runtime.enable", json!({}));
        browser.call("Page.enable", json!({}));
        browser
    }

    /// Sends a command (to the page once attached) and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("chromium went away: {e}"));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method} in time"));
            if m["id"] == json!(id) {
                if let Some(e) = m.get("error") {
                    panic!("{method}: {e}");
                }
                return m["result"].clone();
            }
            self.note(&m);
        }
    }

    /// Keeps what the page reported as going wrong.
    fn note(&mut self, event: &Value) {
        let p = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let d = &p["exceptionDetails"];
                self.errors
                    .push(format!("{} {}", d["text"], d["exception"]["description"]));
            }
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                self.errors.push(p["args"].to_string());
            }
            _ => {}
        }
    }

    /// Loads `url` and waits until it has loaded.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for("the page to load", "document.readyState === 'complete'");
    }

    /// Evaluates `js` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let r = self.call("Runtime.evaluate", params);
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `js` until it is truthy and returns that value; panics
    /// naming `what` when it does not become so in time.
    pub fn wait_for(&mut self, what: &str, js: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(js);
            if !matches!(v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0) {
                return v;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "waited in vain for {what}; page errors: {:?}",
                self.errors
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the page reported as exceptions or console errors so far.
    pub fn errors(&mut self) -> Vec<String> {
        while let Ok(m) = self.messages.try_recv() {
            self.note(&m);
        }
        self.errors.clone()
    }

    /// Saves the whole page as a PNG, as wide as the window.
    pub fn screenshot(&mut self, path: &Path) {
        let height = self.eval("Math.ceil(document.body.getBoundingClientRect().height)");
        let width = self.eval("window.innerWidth");
        let size =
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        self.call("Emulation.setDeviceMetricsOverride", size);
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        self.call("Emulation.clearDeviceMetricsOverride", json!({}));
        let png = base64(shot["data"].as_str().expect("image data"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (as DevTools sends images) to bytes.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:?}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|q| {
            let n = q
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
            n.to_be_bytes()[1..q.len()].to_vec()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_every_padding() {
        assert_eq!(super::base64("cG9zZA=="), b"posd");
        assert_eq!(super::base64("cG9zZDE="), b"posd1");
        assert_eq!(super::base64("cG9zZDEy"), b"posd12");
        assert_eq!(super::base64(""), b"");
    }
}
