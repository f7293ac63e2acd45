//! Sans-I/O VRRP for Aegis gateways, keepalived-compatible on the wire.
//!
//! - [`wire`]: the VRRP advertisement itself, v2 (RFC 3768) and v3 (RFC 5798, IPv4), as a
//!   checked view over bytes ([`wire::Packet`]) and a parsed value ([`wire::Repr`]).
//! - [`envelope`]: the Ethernet and IPv4 headers around it (TTL 255, protocol 112, the
//!   224.0.0.18 group), the virtual MAC, and gratuitous ARP for a virtual address.
//!
//! Not here yet (issue 5): the per-instance state machine, sync groups and the
//! keepalived.conf importer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envelope;
pub mod wire;
