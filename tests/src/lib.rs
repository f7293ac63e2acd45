//! `aegis-lab`: builds small networks on one Linux machine out of network namespaces and veth
//! pairs, runs daemons inside them and tears everything down again, so topology tests and the
//! demo can exercise real Aegis processes against the real Linux stack.
//!
//! What lives where:
//! - [`lab`]: [`Lab`] — hosts (namespaces), links (veth pairs), addresses, routes, sysctls,
//!   commands and daemons, and teardown in `Drop` (also when a test panics).
//! - [`names`]: unique, parseable names for labs and namespaces; interface-name validation.
//! - [`process`]: a daemon started in a namespace, its log file, SIGTERM-then-SIGKILL stop.
//! - [`wait`]: polling with a deadline (sockets, pings, counters).
//! - [`env`]: is this machine able to run a lab (root, `ip netns`)? Loud skip, or failure
//!   under `CI=true`.
//! - [`cleanup`]: removal of leftovers of labs whose owning process died (`aegis-lab cleanup`).
//! - [`router`]: [`RouterLab`], the h1 — r1 (aegis-dataplane) — h2 topology; [`hosttoml`]
//!   writes its `host.toml`; [`bins`] finds the Aegis binaries.
//! - [`eastwest`]: [`EastWestLab`], three compute hosts (dataplanes fed by a control plane)
//!   on an underlay bridge, and VMs in two VPCs with overlapping addresses.
//! - [`vrrp`]: [`vrrp::VrrpLab`], an Aegis gateway and a real keepalived on one link.
//! - [`gateway`]: [`gateway::GatewayPairLab`], two Aegis gateways (VRRP, NAT, session sync)
//!   between an inside and an external host.
//! - [`kernelgw`]: [`kernelgw::KernelGatewayLab`], the same topology with two Linux kernel
//!   gateways (nftables NAT, keepalived, conntrackd) to compare failovers with.
//! - [`ctl`]: runs `aegisctl` and reads its `--output json` (the one place that knows its shape).
//! - [`frames`]: hand-built Ethernet frames (good and deliberately bad) and a sender.
//! - [`probe`]: parsers for `ping` and `traceroute` output; TCP transfer check.
//! - [`streams`]: long-lived TCP echo streams and UDP flows for failover tests.
//! - [`northsouth`]: [`northsouth::NorthSouthLab`], the east-west lab plus a gateway pair
//!   (fed by the same control plane) and a host on the external network.
//!
//! # Why `ip` (iproute2) through `std::process::Command` and not rtnetlink
//! Every step is the exact command an operator would type (`ip -n NS addr add ...`), so a
//! failing step prints a command line that can be pasted into a shell to reproduce it, and the
//! lab needs no async runtime. rtnetlink would need tokio and `setns(2)` juggling per thread
//! (namespaces are per thread, and `unsafe` for the raw call) for no gain: labs are built once
//! per test and take milliseconds either way. Running a command *inside* a namespace also needs
//! `ip netns exec` (it remounts `/sys` for the namespace, which DPDK's `net_af_packet` reads).
#![deny(unsafe_code)]

pub mod bins;
pub mod cleanup;
pub mod cmd;
pub mod cpcluster;
pub mod ctl;
pub mod eastwest;
pub mod env;
pub mod error;
pub mod frames;
pub mod gateway;
pub mod hosttoml;
pub mod kernelgw;
pub mod lab;
pub mod names;
pub mod northsouth;
pub mod probe;
pub mod process;
pub mod router;
pub mod streams;
pub mod vrrp;
pub mod wait;

pub use bins::Bins;
pub use eastwest::EastWestLab;
pub use error::{LabError, Result};
pub use lab::{Lab, ProcId};
pub use router::RouterLab;
