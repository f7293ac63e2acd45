//! The NAT configuration workers read from the snapshot: which port is outside, the source
//! NAT rules and the floating IPs. Rules and floating IPs belong to a VPC (its VNI) when the
//! gateway serves VMs over the overlay, or to [`ROUTED_VPC`] (0) for the plain routed
//! gateway of host.toml's `[nat]`.

use std::net::Ipv4Addr;

use crate::fib::Prefix;

/// The VPC (VNI) of the routed gateway's inside network: no overlay.
pub const ROUTED_VPC: u32 = 0;

/// Source NAT for a range of inside sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnatRule {
    /// VNI of the VPC the sources are in ([`ROUTED_VPC`]: the routed inside port).
    pub vpc: u32,
    /// Inside sources it applies to.
    pub source: Prefix,
    /// The outside address they leave from.
    pub address: Ipv4Addr,
    /// A new outside port per remote (true) or one per inside endpoint.
    pub endpoint_dependent: bool,
}

/// A floating IP: 1:1 NAT between an inside address and an outside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloatingIp {
    /// VNI of the VM's VPC ([`ROUTED_VPC`]: the routed inside port).
    pub vpc: u32,
    /// The VM's address.
    pub inside: Ipv4Addr,
    /// Its public address.
    pub outside: Ipv4Addr,
}

/// NAT on this dataplane; `outside_port: None` means NAT is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// The outside (external network) port.
    pub outside_port: Option<u16>,
    /// Source NAT rules, most specific source first.
    pub snat: Vec<SnatRule>,
    /// Floating IPs (they win over source NAT for their inside address).
    pub floating_ips: Vec<FloatingIp>,
}

impl NatConfig {
    /// True if NAT is configured.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.outside_port.is_some()
    }

    /// True if `ip` is one of the outside addresses (a SNAT address or a floating IP).
    #[inline]
    pub fn is_outside_address(&self, ip: u32) -> bool {
        self.snat.iter().any(|r| u32::from(r.address) == ip)
            || self.floating_ips.iter().any(|f| u32::from(f.outside) == ip)
    }

    /// True if some source NAT rule or floating IP belongs to VPC `vpc`.
    pub fn has_rules_for(&self, vpc: u32) -> bool {
        self.snat.iter().any(|r| r.vpc == vpc) || self.floating_ips.iter().any(|f| f.vpc == vpc)
    }

    /// The floating IP whose outside address is `ip`.
    pub fn floating_by_outside(&self, ip: u32) -> Option<&FloatingIp> {
        self.floating_ips
            .iter()
            .find(|f| u32::from(f.outside) == ip)
    }

    /// How an inside source of VPC `vpc` leaves: its floating IP, else the most specific
    /// SNAT rule.
    #[inline]
    pub fn translation_for(&self, vpc: u32, src: u32) -> Option<super::Translation> {
        if let Some(f) = self
            .floating_ips
            .iter()
            .find(|f| f.vpc == vpc && u32::from(f.inside) == src)
        {
            return Some(super::Translation::FloatingIp {
                ip: u32::from(f.outside),
            });
        }
        self.snat
            .iter()
            .filter(|r| r.vpc == vpc && r.source.contains(Ipv4Addr::from(src)))
            .max_by_key(|r| r.source.length())
            .map(|r| super::Translation::Snat {
                ip: u32::from(r.address),
                endpoint_dependent: r.endpoint_dependent,
            })
    }
}
