//! Sans-I/O VRRP for Aegis gateways, keepalived-compatible on the wire.
//!
//! - [`wire`]: the VRRP advertisement itself, v2 (RFC 3768) and v3 (RFC 5798, IPv4), as a
//!   checked view over bytes ([`wire::Packet`]) and a parsed value ([`wire::Repr`]).
//! - [`envelope`]: the Ethernet and IPv4 headers around it (TTL 255, protocol 112, the
//!   224.0.0.18 group), the virtual MAC, and gratuitous ARP for a virtual address.
//!
//! - [`instance`]: one virtual router's state machine (RFC 3768 / RFC 5798 §6.4), driven by
//!   the caller's clock and returning [`instance::Action`]s.
//! - [`group`]: a set of instances and their sync groups.
//! - [`keepalived`]: `vrrp_instance` / `vrrp_sync_group` blocks of a keepalived.conf.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envelope;
pub mod group;
pub mod instance;
pub mod keepalived;
pub mod wire;
