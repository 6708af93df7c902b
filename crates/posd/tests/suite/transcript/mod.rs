//! The command transcripts of the README and docs/, run against a real
//! posd so they cannot drift from what posd prints. A block is checked when the line before its
//! fence is a `<!-- transcript ... -->` comment; the checked blocks of a file
//! run in order against one posd (`--round-interval 1h`, HTTP on, data in
//! `./posd-data` of a temp dir, posd and posctl on `PATH`), each `$ ` line a
//! command and the lines under it what it printed (stdout and stderr).
//! Hashes, times, durations, sizes and the pid match by shape (see
//! [`pattern`]); `nc` is played by [`nc`]. After a change to what posd
//! prints, `POSD_TRANSCRIPTS=overwrite cargo test -p posd --test suite --
//! transcript` writes the real output into the file.

mod nc;
mod pattern;

use pattern::Bindings;
use pos_testkit::{posd_bin, Posd};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the transcripts say posd listens (the test's posd has its own ports).
const SHOWN_LISTEN: &str = "127.0.0.1:9000";
const SHOWN_HTTP: &str = "127.0.0.1:9080";

/// One checked block: its lines' range in the file, then (command, output) pairs.
struct Block {
    lines: std::ops::Range<usize>,
    steps: Vec<(String, String)>,
}

fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !(lines[i].starts_with("<!-- transcript") && lines.get(i + 1) == Some(&"```text")) {
            i += 1;
            continue;
        }
        let start = i + 2;
        let end = start
            + lines[start..]
                .iter()
                .position(|l| *l == "```")
                .expect("transcript block has no closing fence");
        let mut steps: Vec<(String, String)> = Vec::new();
        for line in &lines[start..end] {
            match (line.strip_prefix("$ "), steps.last_mut()) {
                (Some(command), _) => steps.push((command.to_string(), String::new())),
                (None, Some((_, output))) => {
                    output.push_str(line);
                    output.push('\n');
                }
                (None, None) => panic!("transcript block at line {start} does not start with `$ `"),
            }
        }
        found.push(Block {
            lines: start..end,
            steps,
        });
        i = end;
    }
    found
}

/// Runs `file`'s checked blocks; returns the failures (or, when
/// overwriting, rewrites the file with what posd printed).
fn run_file(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    if blocks(&text).is_empty() {
        return Vec::new();
    }
    let overwrite = std::env::var("POSD_TRANSCRIPTS").as_deref() == Ok("overwrite");
    let dir = tempfile::tempdir().unwrap();
    let bin = posd_bin!();
    let tools = bin.parent().unwrap().to_path_buf();
    assert!(
        tools.join("posctl").exists(),
        "no posctl beside {}: run `cargo test --workspace` (or `cargo build --bin posctl`) first",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir.path());
    let args = ["--round-interval", "1h", "--http-listen", "127.0.0.1:0"];
    let posd = Posd::spawn(cmd, Path::new("./posd-data"), &args, &[]);
    let socket = dir.path().join("posd-data/admin.sock");
    let (listen, http) = (posd.addr.to_string(), posd.http().to_string());
    let as_real = |text: &str| {
        text.replace(SHOWN_LISTEN, &listen)
            .replace(SHOWN_HTTP, &http)
    };
    let as_shown = |text: &str| {
        text.replace(&listen, SHOWN_LISTEN)
            .replace(&http, SHOWN_HTTP)
    };

    let mut bindings = Bindings::default();
    let mut failures = Vec::new();
    let mut rewrites = Vec::new();
    for block in blocks(&text) {
        let mut written = Vec::new();
        let mut whole = true;
        for (shown_command, shown) in &block.steps {
            let command = as_real(&bindings.apply(shown_command));
            let real = match nc::Input::of(&command) {
                Some(input) => nc::session(&input, shown, posd.addr, &socket),
                None if missing_tool(&command).is_some() => {
                    let tool = missing_tool(&command).unwrap();
                    eprintln!("transcript {}: SKIPPED `{command}` and the rest of its block: no {tool} here", file.display());
                    whole = false;
                    break;
                }
                None => shell(&command, dir.path(), &tools),
            };
            // Overwriting keeps what still matches, so a diff shows what changed.
            if let Err(why) = pattern::check(&as_real(shown), &real, &mut bindings) {
                failures.push(format!(
                    "{}, the block at line {}: `$ {shown_command}`: {why}",
                    file.display(),
                    block.lines.start + 1
                ));
                written.push(format!("$ {}", as_shown(&command)));
                written.extend(as_shown(&real).lines().map(String::from));
            } else {
                written.push(format!("$ {shown_command}"));
                written.extend(shown.lines().map(String::from));
            }
        }
        if whole {
            rewrites.push((block.lines, written));
        }
    }
    if overwrite {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        for (range, written) in rewrites.into_iter().rev() {
            lines.splice(range, written);
        }
        std::fs::write(file, lines.join("\n") + "\n").unwrap();
        return Vec::new();
    }
    failures
}

/// A tool `command` calls that this machine lacks (they are few and named here).
fn missing_tool(command: &str) -> Option<&'static str> {
    ["jq", "curl"].into_iter().find(|tool| {
        command.split_whitespace().any(|w| w == *tool)
            && !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success()
    })
}

/// `command` run by sh in `dir` with posd and posctl (from `tools`) first on
/// PATH and posctl pointed at this posd; stdout and stderr as one text.
fn shell(command: &str, dir: &Path, tools: &Path) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![PathBuf::from(tools)];
    paths.extend(std::env::split_paths(&path));
    let out = Command::new("sh")
        .args(["-c", &format!("exec 2>&1\n{command}")])
        .current_dir(dir)
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("POSD_SOCKET", "./posd-data/admin.sock")
        .output()
        .expect("run sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The repository's top directory.
fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn readme() {
    let failures = run_file(&top().join("README.md"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Each of docs/*.md with checked blocks, against a posd of its own.
#[test]
fn docs() {
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(top().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            failures.extend(run_file(&path));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
