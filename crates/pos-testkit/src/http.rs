//! posd's HTTP port as curl would use it: HTTP/1.1 over a plain socket,
//! blocking, with chunked bodies and server-sent events decoded.

use crate::PATIENCE;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// An answer: status, headers (names lowercase) and the whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as one JSON value; panics showing it if it is not one.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The body as JSON lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect()
    }
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

/// `method path` with extra headers; the connection closes after the answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut reader = send(addr, method, path, headers);
    let (status, headers) = head(&mut reader);
    let mut body = String::new();
    if method != "HEAD" {
        body_of(reader, &headers)
            .read_to_string(&mut body)
            .unwrap_or_else(|e| panic!("{method} {path}: body: {e}"));
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Connects and sends a request with an empty body.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" || method == "PUT" {
        text.push_str("content-length: 0\r\n");
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    BufReader::new(stream)
}

/// Reads the status line and headers.
fn head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line: {line:?}"));
    let mut headers = vec![];
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            return (status, headers);
        }
        let (k, v) = line.split_once(':').expect("a header");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

/// The body's bytes, however the headers say they are framed.
fn body_of(reader: BufReader<TcpStream>, headers: &[(String, String)]) -> Box<dyn Read> {
    let has = |k: &str, v: &str| headers.iter().any(|(hk, hv)| hk == k && hv == v);
    if has("transfer-encoding", "chunked") {
        return Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        });
    }
    match headers.iter().find(|(k, _)| k == "content-length") {
        Some((_, n)) => Box::new(reader.take(n.parse().expect("a length"))),
        None => Box::new(reader),
    }
}

/// Decodes `transfer-encoding: chunked`; a body cut short is an error.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let cut = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body cut short");
        if self.left == 0 {
            if self.done {
                return Ok(0);
            }
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Err(cut());
            }
            let size = line.trim_end().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if self.left == 0 {
                self.done = true;
                // Trailers, then the empty line.
                while line.trim_end() != "" || line.is_empty() {
                    line.clear();
                    if self.inner.read_line(&mut line)? == 0 {
                        return Err(cut());
                    }
                }
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(cut());
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// An open `text/event-stream`.
pub struct Events {
    reader: BufReader<Box<dyn Read>>,
}

impl Events {
    /// `GET path` with extra headers; panics unless it is a 200 event stream.
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Events {
        let mut reader = send(addr, "GET", path, headers);
        let (status, headers) = head(&mut reader);
        assert_eq!(status, 200, "GET {path}: {headers:?}");
        let kind = headers.iter().find(|(k, _)| k == "content-type");
        assert!(
            kind.is_some_and(|(_, v)| v.starts_with("text/event-stream")),
            "{headers:?}"
        );
        Events {
            reader: BufReader::new(body_of(reader, &headers)),
        }
    }

    /// The next event (comments skipped); panics if none comes in time.
    pub fn next_event(&mut self) -> Event {
        let mut event = Event {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        let mut seen = false;
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("no event in time: {e}"));
            assert!(n > 0, "event stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if seen {
                    return event;
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "" => continue,
                "event" => event.event = value.into(),
                "id" => event.id = Some(value.into()),
                "data" if event.data.is_empty() => event.data = value.into(),
                "data" => event.data = format!("{}\n{value}", event.data),
                _ => {}
            }
            seen = true;
        }
    }
}
