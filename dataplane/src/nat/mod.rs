//! NAT for gateways (north-south), per worker and lock-free: [`table`] holds a worker's
//! sessions (source NAT endpoint-independent or endpoint-dependent, floating IPs, TCP-aware
//! timeouts, found through two compact prefetchable indexes in `index`, the session-sync
//! events a master streams to its backups, and the install path a backup uses when it
//! takes over); [`ports`] partitions outside ports among workers so a
//! reply finds its worker by destination port; [`translate`] rewrites packets in place with
//! incremental checksums, ICMP errors included (their embedded packet is translated back).
//!
//! [`node`] is where `ip4-forward` and `gateway-output` call in (the routed gateway: an
//! inside port and an outside port, configured by host.toml's `[nat]`, [`config`]; and the
//! gateway of VMs over the overlay). With several workers each session belongs to one of
//! them, found from the packet alone ([`owner`]); a packet another worker owns is handed to
//! it before the session lookup.

pub mod config;
mod index;
pub mod node;
pub mod owner;
pub mod ports;
pub mod table;
pub mod translate;

pub use config::{FloatingIp, NatConfig, NatConflict, SnatRule, ROUTED_VPC};
pub use table::{
    InsideKey, NatError, NatTable, NatTimeouts, OutsideKey, Session, TcpPhase, Translation, NO_HINT,
};

#[cfg(test)]
mod tests;
