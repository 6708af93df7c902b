//! The admin protocol between posd and posctl, over a Unix socket.
//!
//! - [`frame`]: u32 big-endian length + bincode body, with a size cap.
//! - [`message`]: the handshake and the request/response enums.
//! - [`client`]: connect, handshake and ask, for posctl and the load tool.
//! - [`peer`]: traffic between the nodes of a cluster (handshake, Raft, forwarded writes).
//! - [`seal`]: the Noise session that encrypts and authenticates those links.
//! - [`json`]: the JSON objects `posctl --json` prints and posd's HTTP API serves.
//! - [`text`]: counts in the sentences both programs print.
//!
//! A connection starts with [`message::Hello`] from the client and
//! [`message::Welcome`] (or an error) from the server; then the client sends
//! requests, each answered by one response or a stream ending in `End`.
//! Enum variants are only ever appended, so old frames keep their meaning.

pub mod client;
pub mod frame;
pub mod json;
pub mod message;
pub mod peer;
pub mod seal;
pub mod text;

pub use client::{Client, ClientError};
pub use frame::{decode, encode, read_frame, write_frame, ProtoError, MAX_FRAME};
pub use message::*;
