//! aegis-pktgen: a DPDK traffic generator that measures rate, loss, reordering, latency and
//! outage gaps, and benchmark traffic for Aegis written to files.
//!
//! Live generator (`aegis-pktgen run`, see `docs/pktgen.md`):
//! - [`values`]: ranges, sizes and rates as written in profiles and flags.
//! - [`profile`]: the TOML traffic profile, flag overrides, defaults and checks.
//! - [`csum`]: Internet checksum arithmetic, full and incremental.
//! - [`stamp`]: the sequence number and TSC timestamp every packet carries.
//! - [`template`]: Ethernet/[VLAN]/IPv4/UDP|TCP-SYN/[Geneve] frames per flow and size.
//! - [`pacing`]: TSC-based rate control.
//! - [`histogram`]: log-linear latency histogram.
//! - [`tracker`]: loss, reordering, duplicates, latency and the longest gap on receive.
//! - [`report`]: the final summary as a table or JSON, and the live progress line.
//! - [`engine`]: the DPDK side: EAL, ports, tx and rx loops on lcores.
//!
//! Files for benchmarks (`aegis-pktgen pcap|routes`):
//! - [`net`]: MAC addresses and IPv4 prefixes as typed on the command line.
//! - [`rng`]: a small seeded generator, so every output is reproducible from `--seed`.
//! - [`packet`]: Ethernet/IPv4/UDP frames with valid checksums.
//! - [`routes`]: random route tables (Aegis routes files and l3fwd rule files) and reading
//!   the prefixes back from a routes file.
//! - [`flows`]: a flow mix whose destinations hit a route table, written as a pcap.
#![deny(unsafe_code)]

pub mod csum;
pub mod engine;
pub mod flows;
pub mod histogram;
pub mod net;
pub mod pacing;
pub mod packet;
pub mod profile;
pub mod report;
pub mod rng;
pub mod routes;
pub mod stamp;
pub mod template;
pub mod tracker;
pub mod values;
