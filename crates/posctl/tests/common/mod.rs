//! Running the posctl binary in the tests.
#![allow(dead_code)] // Each test file uses some of these.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

pub fn posctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run posctl")
}

/// Runs posctl, expects exit 0, returns stdout.
pub fn ok(socket: &Path, args: &[&str]) -> String {
    let out = posctl(socket, args);
    assert!(
        out.status.success(),
        "posctl {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs posctl, expects exit `code`, returns stderr.
pub fn fails(socket: &Path, args: &[&str], code: i32) -> String {
    let out = posctl(socket, args);
    assert_eq!(out.status.code(), Some(code), "posctl {args:?}");
    String::from_utf8(out.stderr).unwrap()
}

pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect()
}
