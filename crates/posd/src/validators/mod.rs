//! The validator port: what `server` hands each accepted connection, and the
//! in-memory state those connections share.
//!
//! [`session`] speaks the `nc` protocol; [`line`] frames their bytes and
//! [`protocol`] says what each line means; [`seat`] is the socket a
//! session shares with the fan-out. [`connected`] (one live connection
//! per validator), [`slots`] (`max_connections`), [`ratelimit`]
//! (`registration_rate`), [`pending`] (this round's proposals) and
//! [`forget`] (the `forget_after` sweep).

pub mod connected;
pub mod forget;
pub mod line;
pub mod pending;
pub mod protocol;
pub mod ratelimit;
pub mod seat;
pub mod session;
pub mod slots;
