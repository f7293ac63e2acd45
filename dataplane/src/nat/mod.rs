//! NAT for gateways (north-south), per worker and lock-free: [`table`] holds a worker's
//! sessions (source NAT endpoint-independent or endpoint-dependent, floating IPs, TCP-aware
//! timeouts, the session-sync events a master streams to its backups, and the install path a
//! backup uses when it takes over); [`ports`] partitions outside ports among workers so a
//! reply finds its worker by destination port; [`translate`] rewrites packets in place with
//! incremental checksums, ICMP errors included (their embedded packet is translated back).
//!
//! Not yet wired into the forwarding graph (issue 5): the gateway nodes that call this on
//! the external port and on traffic from the overlay, and the control-plane objects
//! (ExternalNetwork, SnatRule, FloatingIp) that configure it.

pub mod ports;
pub mod table;
pub mod translate;

pub use table::{
    InsideKey, NatError, NatTable, NatTimeouts, OutsideKey, Session, TcpPhase, Translation,
};

#[cfg(test)]
mod tests;
