//! aegis-pktgen: benchmark traffic for Aegis, written to files.
//!
//! - [`net`]: MAC addresses and IPv4 prefixes as typed on the command line.
//! - [`rng`]: a small seeded generator, so every output is reproducible from `--seed`.
//! - [`packet`]: Ethernet/IPv4/UDP frames with valid checksums.
//! - [`routes`]: random route tables (Aegis routes files and l3fwd rule files) and reading
//!   the prefixes back from a routes file.
//! - [`flows`]: a flow mix whose destinations hit a route table, written as a pcap.
#![deny(unsafe_code)]

pub mod flows;
pub mod net;
pub mod packet;
pub mod rng;
pub mod routes;
