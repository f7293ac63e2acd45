//! The NAT configuration workers read from the snapshot: which port is outside, the source
//! NAT rules and the floating IPs. Rules and floating IPs belong to a VPC (its VNI) when the
//! gateway serves VMs over the overlay, or to [`ROUTED_VPC`] (0) for the plain routed
//! gateway of host.toml's `[nat]`.

use std::net::Ipv4Addr;

use rustc_hash::{FxHashMap, FxHashSet};

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
///
/// Workers ask it per packet which outside addresses are ours and how a source leaves.
/// [`NatConfig::indexed`] (which the snapshot builder applies) adds hash indexes for that,
/// so the cost does not grow with the number of floating IPs; a configuration without them
/// (tests, or fields changed afterwards) scans the lists, with the same answers.
#[derive(Debug, Clone, Default)]
pub struct NatConfig {
    /// The outside (external network) port.
    pub outside_port: Option<u16>,
    /// Source NAT rules, most specific source first.
    pub snat: Vec<SnatRule>,
    /// Floating IPs (they win over source NAT for their inside address).
    pub floating_ips: Vec<FloatingIp>,
    /// Hash indexes over `snat` and `floating_ips` ([`NatConfig::indexed`]).
    index: Option<Box<NatIndex>>,
}

/// Up to this many rules and floating IPs together, lookups scan the lists.
const SCAN_MAX: usize = 8;

/// The per-packet lookups of a [`NatConfig`] as hash indexes (first entry wins, as in the
/// scans).
#[derive(Debug, Clone, Default)]
struct NatIndex {
    /// Every SNAT address and floating IP outside address.
    outside_addresses: FxHashSet<u32>,
    /// `(vpc, inside)` → position in `floating_ips`.
    floating_by_inside: FxHashMap<(u32, u32), usize>,
    /// Outside address → position in `floating_ips`.
    floating_by_outside: FxHashMap<u32, usize>,
    /// VPCs with a rule or a floating IP.
    vpcs: FxHashSet<u32>,
    /// Lengths of `snat` and `floating_ips` when built.
    lens: (usize, usize),
}

/// Equal when the configuration is (the indexes follow from it).
impl PartialEq for NatConfig {
    fn eq(&self, other: &Self) -> bool {
        self.outside_port == other.outside_port
            && self.snat == other.snat
            && self.floating_ips == other.floating_ips
    }
}

impl Eq for NatConfig {}

impl NatConfig {
    /// A configuration without indexes (see [`NatConfig::indexed`]).
    pub fn new(
        outside_port: Option<u16>,
        snat: Vec<SnatRule>,
        floating_ips: Vec<FloatingIp>,
    ) -> NatConfig {
        NatConfig {
            outside_port,
            snat,
            floating_ips,
            index: None,
        }
    }

    /// The same configuration with hash indexes for the per-packet lookups. Changing a
    /// field afterwards drops them (the lists are then scanned again).
    pub fn indexed(mut self) -> NatConfig {
        let mut ix = NatIndex::default();
        for r in &self.snat {
            ix.outside_addresses.insert(u32::from(r.address));
            ix.vpcs.insert(r.vpc);
        }
        for (i, f) in self.floating_ips.iter().enumerate() {
            ix.outside_addresses.insert(u32::from(f.outside));
            ix.vpcs.insert(f.vpc);
            ix.floating_by_inside
                .entry((f.vpc, u32::from(f.inside)))
                .or_insert(i);
            ix.floating_by_outside
                .entry(u32::from(f.outside))
                .or_insert(i);
        }
        ix.lens = (self.snat.len(), self.floating_ips.len());
        self.index = Some(Box::new(ix));
        self
    }

    /// The indexes, unless the lists were grown or shrunk since they were built (then the
    /// lists are scanned). Same lengths do not prove the same contents: the fields are
    /// meant to be set before [`NatConfig::indexed`], and this only catches a push after.
    /// Short lists are scanned anyway: a few compares cost less than hashing.
    #[inline]
    fn index(&self) -> Option<&NatIndex> {
        if self.snat.len() + self.floating_ips.len() <= SCAN_MAX {
            return None;
        }
        self.index
            .as_deref()
            .filter(|ix| ix.lens == (self.snat.len(), self.floating_ips.len()))
    }

    /// True if NAT is configured.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.outside_port.is_some()
    }

    /// True if `ip` is one of the outside addresses (a SNAT address or a floating IP).
    pub fn is_outside_address(&self, ip: u32) -> bool {
        if let Some(ix) = self.index() {
            return ix.outside_addresses.contains(&ip);
        }
        self.snat.iter().any(|r| u32::from(r.address) == ip)
            || self.floating_ips.iter().any(|f| u32::from(f.outside) == ip)
    }

    /// True if some source NAT rule or floating IP belongs to VPC `vpc`.
    pub fn has_rules_for(&self, vpc: u32) -> bool {
        if let Some(ix) = self.index() {
            return ix.vpcs.contains(&vpc);
        }
        self.snat.iter().any(|r| r.vpc == vpc) || self.floating_ips.iter().any(|f| f.vpc == vpc)
    }

    /// The floating IP whose outside address is `ip`.
    pub fn floating_by_outside(&self, ip: u32) -> Option<&FloatingIp> {
        if let Some(ix) = self.index() {
            return ix
                .floating_by_outside
                .get(&ip)
                .and_then(|&i| self.floating_ips.get(i));
        }
        self.floating_ips
            .iter()
            .find(|f| u32::from(f.outside) == ip)
    }

    /// The floating IP of inside address `src` in VPC `vpc`.
    fn floating_by_inside(&self, vpc: u32, src: u32) -> Option<&FloatingIp> {
        if let Some(ix) = self.index() {
            return ix
                .floating_by_inside
                .get(&(vpc, src))
                .and_then(|&i| self.floating_ips.get(i));
        }
        self.floating_ips
            .iter()
            .find(|f| f.vpc == vpc && u32::from(f.inside) == src)
    }

    /// How an inside source of VPC `vpc` leaves: its floating IP, else the most specific
    /// SNAT rule.
    pub fn translation_for(&self, vpc: u32, src: u32) -> Option<super::Translation> {
        if let Some(f) = self.floating_by_inside(vpc, src) {
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
