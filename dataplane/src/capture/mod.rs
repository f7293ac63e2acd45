//! Packet capture: the workers copy packets that pass a capture's filter into their own
//! bounded rings, the control thread drains the rings and streams the packets to the
//! client (`aegisctl dp capture`, the `Capture` RPC).
//!
//! - `bpf.rs`: the classic-BPF interpreter the filters run in (compiled from tcpdump syntax
//!   by libpcap in `aegisctl`, validated here once);
//! - `ring.rs`: a worker's preallocated, lock-free record ring for one capture, with its
//!   overflow counter;
//! - `tap.rs`: the worker's side — the captures it runs ([`Taps`]) and the capture points:
//!   port rx (before `ethernet-input`), port tx (the tx burst), drops (with the
//!   [`DropReason`](crate::graph::DropReason)) and the input of any graph node (before the
//!   node runs, with the port the packet came in on);
//! - `hub.rs`: the control side — starting and stopping captures on every worker
//!   ([`CaptureHub`]) and reading what they captured ([`CaptureSession`]).
//!
//! Off by default, and then free: a worker checks a field of its [`Taps`] once per burst
//! and port (rx and tx), the dispatcher once per graph run (drops) and a node mask once per
//! node call (node points). A capture reaches
//! the workers as a [`TapCommand`] on a queue they serve between bursts.

pub mod bpf;
pub mod hub;
pub mod ring;
pub mod tap;

pub use bpf::{BpfError, Insn, Program};
pub use hub::{CaptureError, CaptureHub, CaptureSession};
pub use ring::{CaptureRing, Point, Record, RECORD_BYTES};
pub use tap::{CaptureSpec, TapCommand, Taps, MAX_CAPTURES};

#[cfg(test)]
mod tests;
