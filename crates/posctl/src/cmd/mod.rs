//! One file per posctl subcommand.

pub mod block;
pub mod chain;
pub mod lottery;
pub mod status;
pub mod validators;
