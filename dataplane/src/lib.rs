//! The Aegis forwarding engine.
//!
//! Where a packet goes, by folder:
//! - [`port`]: EAL, mempools and DPDK ports; packets enter with `rx_burst` here.
//! - [`worker`]: the per-lcore loop — rx burst → [`graph`] → tx burst, adaptive polling.
//! - [`graph`]: frames, node ids, the dispatcher and its per-node counters, [`graph::DropReason`].
//! - [`nodes`]: one file per node (ethernet input, ARP, IPv4 input/lookup/local/rewrite, ICMP
//!   errors) and [`nodes::overlay`] for the east-west path: VM port input, the VPC router,
//!   security groups, Geneve in and out.
//! - [`overlay`]: VPCs, subnets, ports and compiled security groups as workers read them;
//!   [`conntrack`]: the per-worker connection table; [`nat`]: gateway NAT sessions and
//!   packet translation (not in the graph yet).
//! - [`wire`]: header views over packet bytes.
//! - [`fib`]: the longest-prefix-match table; [`state`]: the snapshot workers read, the
//!   neighbour table and the control thread's tables.
//! - [`config`]: host.toml; [`ctl`]: the admin gRPC API and metrics.
//! - [`buf`]: the packet-buffer trait with a heap (tests, fuzzing) and an mbuf implementation.
#![deny(unsafe_code)]

pub mod buf;
pub mod capture;
pub mod config;
pub mod conntrack;
pub mod ctl;
pub mod daemon;
pub mod fib;
pub mod graph;
pub mod nat;
pub mod nodes;
pub mod overlay;
pub mod port;
pub mod state;
pub mod sync;
pub mod testkit;
pub mod trace;
pub mod wire;
pub mod worker;
