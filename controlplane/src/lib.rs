//! Aegis control plane. For now: `aegisctl`, the admin CLI, whose `dp` commands talk to a
//! dataplane's admin socket.
//!
//! - [`cli`]: the command line and its dispatch; [`dp`]: `aegisctl dp ...`.
//! - [`error`]: errors and exit codes; `table`: aligned text tables.
#![deny(unsafe_code)]

pub mod cli;
pub mod dp;
pub mod error;
mod table;
