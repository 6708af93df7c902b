//! Splitting a validator's byte stream into lines, without trusting it.
//!
//! Unlike tokio-util's `LinesCodec`, a line that is not UTF-8 or holds a NUL
//! byte is a recoverable item (the client gets an `error:` and may go on),
//! and only an over-long line ends the stream.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// One line as received, `\n` and a trailing `\r` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// The bytes were not text; the reason says why, for the `error:` reply.
    Invalid(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Line decoder with a hard length cap, so a client cannot grow our buffer.
#[derive(Debug)]
pub struct LineCodec {
    max: usize,
    /// Bytes of the buffer already searched for `\n`, so a slow line is not rescanned.
    scanned: usize,
}

impl LineCodec {
    pub fn new(max_line_bytes: usize) -> Self {
        LineCodec {
            max: max_line_bytes,
            scanned: 0,
        }
    }
}

fn classify(mut raw: &[u8]) -> Line {
    if let [rest @ .., b'\r'] = raw {
        raw = rest;
    }
    if raw.contains(&0) {
        return Line::Invalid("line contains a NUL byte");
    }
    match std::str::from_utf8(raw) {
        Ok(s) => Line::Text(s.to_owned()),
        Err(_) => Line::Invalid("line is not valid UTF-8"),
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LineError> {
        // The limit counts the content: `max` bytes, then `\r\n` at most.
        let limit = buf.len().min(self.max + 2);
        match buf[self.scanned..limit].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let end = self.scanned + pos;
                let content = match buf[..end] {
                    [.., b'\r'] => end - 1,
                    _ => end,
                };
                if content > self.max {
                    return Err(LineError::TooLong(self.max));
                }
                let line = buf.split_to(end + 1);
                self.scanned = 0;
                Ok(Some(classify(&line[..end])))
            }
            // Only a `\r` may follow `max` bytes, and only `\n` after that.
            None if buf.len() > self.max + 1
                || (buf.len() == self.max + 1 && buf[self.max] != b'\r') =>
            {
                Err(LineError::TooLong(self.max))
            }
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LineError> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            // A last line without `\n` (e.g. `printf 100 | nc`) still counts.
            None if !buf.is_empty() => {
                let rest = buf.split();
                self.scanned = 0;
                Ok(Some(classify(&rest)))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], max: usize) -> (Vec<Line>, Option<String>) {
        let mut codec = LineCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = vec![];
        // Feed one byte at a time: splits must not matter.
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(l)) => out.push(l),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e.to_string())),
                }
            }
        }
        while let Some(l) = codec.decode_eof(&mut buf).unwrap() {
            out.push(l);
        }
        (out, None)
    }

    fn text(s: &str) -> Line {
        Line::Text(s.into())
    }

    #[test]
    fn splits_lines_and_strips_cr() {
        let (lines, err) = decode_all(b"100\r\n72\n\nlast", 16);
        assert_eq!(lines, vec![text("100"), text("72"), text(""), text("last")]);
        assert!(err.is_none());
    }

    #[test]
    fn bad_bytes_are_recoverable() {
        let (lines, err) = decode_all(b"\xff\xfe\na\0b\nok\n", 16);
        assert_eq!(
            lines,
            vec![
                Line::Invalid("line is not valid UTF-8"),
                Line::Invalid("line contains a NUL byte"),
                text("ok")
            ]
        );
        assert!(err.is_none());
    }

    #[test]
    fn the_limit_counts_the_content_without_cr_lf() {
        let (lines, err) = decode_all(b"12345678\n12345678\r\n123456789\n", 8);
        assert_eq!(lines, vec![text("12345678"), text("12345678")]);
        assert_eq!(err.as_deref(), Some("line longer than 8 bytes"));
        for over in [&b"123456789\r\n"[..], b"12345678\r\r\n", b"12345678x"] {
            let (lines, err) = decode_all(over, 8);
            assert!(lines.is_empty() && err.is_some(), "{over:?}");
        }
        // A last line without `\n` may end in the `\r` of a `\r\n` cut short.
        assert_eq!(decode_all(b"12345678\r", 8).0, vec![text("12345678")]);
        // Without a newline the cap applies too, so the buffer stays bounded.
        let (_, err) = decode_all(&[b'x'; 100], 8);
        assert!(err.is_some());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn decode_in(data: &[u8], piece: usize, max: usize) -> (Vec<Line>, bool) {
        let mut codec = LineCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = vec![];
        for chunk in data.chunks(piece) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(l)) => out.push(l),
                    Ok(None) => break,
                    Err(_) => return (out, true),
                }
            }
        }
        while let Ok(Some(l)) = codec.decode_eof(&mut buf) {
            out.push(l);
        }
        (out, false)
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_lines(
            data in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), any::<u8>()], 0..600),
            piece in 1usize..50,
            max in 16usize..80,
        ) {
            let (lines, failed) = decode_in(&data, piece, max);
            prop_assert_eq!(decode_in(&data, data.len().max(1), max), (lines.clone(), failed));
            for l in lines {
                if let Line::Text(t) = l {
                    prop_assert!(t.len() <= max && !t.contains('\n') && !t.contains('\0'));
                }
            }
        }
    }
}
