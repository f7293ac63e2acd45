//! Session sync between the gateways of a group: the master streams connection and NAT
//! mapping events (add, update, delete) to each backup over the underlay, so a backup that
//! takes over already knows every translation and no connection resets.
//!
//! - [`wire`]: the datagram (header, 32-byte session records with the NAT mapping —
//!   endpoint-dependent included — and an HMAC-SHA256 tag over all of it).
//! - [`stream`]: [`stream::Sender`] and [`stream::Receiver`]: sequenced, batched to the MTU,
//!   acknowledged, resent on loss, bulk resync when a backup joins, restarts or falls behind.
//! - [`replica`]: the backup's copy of the sessions.
//!
//! Sans-I/O and independent of DPDK: the gateway's control thread moves the datagrams (UDP
//! on the underlay) and feeds the replica into its NAT tables when it becomes master.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod replica;
pub mod stream;
pub mod wire;

pub use replica::{Change, Replica};
pub use stream::{Receiver, ReceiverStats, Sender, SenderConfig, SenderStats};
pub use wire::{Error, Key, NatKind, Op, Record, SessionKey};
