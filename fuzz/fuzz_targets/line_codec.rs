//! Validator input: arbitrary bytes, split at arbitrary points, through the
//! line codec and the protocol grammar at both prompts. Must never panic,
//! never yield a line over the cap, and must not depend on how bytes arrive.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use posd::line::{Line, LineCodec};
use posd::protocol::{parse, Limits, Prompt};
use tokio_util::codec::Decoder;

const MAX: usize = 64;

/// Decodes `data` fed in pieces of the given sizes; returns lines and whether it ended in error.
fn run(data: &[u8], pieces: &[usize]) -> (Vec<Line>, bool) {
    let mut codec = LineCodec::new(MAX);
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    let mut rest = data;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => break,
                Err(_) => return (lines, true),
            }
            assert!(buf.len() <= MAX + 1 + data.len());
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => return (lines, false),
            Err(_) => return (lines, true),
        }
    }
}

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, split) = input;
    let pieces: Vec<usize> = split.iter().map(|&b| b as usize + 1).collect();
    let (lines, failed) = run(&data, &pieces);
    let (whole, whole_failed) = run(&data, &[data.len().max(1)]);
    assert_eq!(lines, whole, "chunking changed the lines");
    assert_eq!(failed, whole_failed);
    let limits = Limits { max_stake: 1000, max_bpm: 1000 };
    for line in &lines {
        if let Line::Text(t) = line {
            assert!(t.len() <= MAX && !t.contains('\n') && !t.contains('\0'));
        }
        let _ = parse(Prompt::Stake, line, limits);
        let _ = parse(Prompt::Bpm, line, limits);
    }
});
