//! The NAT configuration workers read from the snapshot: which port is outside, the source
//! NAT rules and the floating IPs. Rules and floating IPs belong to a VPC (its VNI) when the
//! gateway serves VMs over the overlay, or to [`ROUTED_VPC`] (0) for the plain routed
//! gateway of host.toml's `[nat]`.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use aegis_sessionsync::NatKind;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::fib::Prefix;

/// The VPC (VNI) of the routed gateway's inside network: no overlay.
pub const ROUTED_VPC: u32 = 0;

/// The identity the next [`NatConfig::new`] gets.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Up to this many rules (or floating IPs), a packet's question is answered by reading
/// them all, which is cheaper than hashing; beyond it, from the hash maps.
const SCAN_MAX: usize = 8;

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

/// A control-plane NAT object left out because host.toml's `[nat]` already uses its
/// outside address ([`NatConfig::merged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatConflict {
    /// A floating IP on an address host.toml uses as a floating IP or source NAT address.
    FloatingIp(FloatingIp),
    /// A source NAT rule on an address that is one of host.toml's floating IPs.
    SnatRule(SnatRule),
}

impl std::fmt::Display for NatConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatConflict::FloatingIp(x) => write!(
                f,
                "the control plane's floating IP {} (to {} in VNI {}) is an outside address of host.toml's [nat]; left out",
                x.outside, x.inside, x.vpc
            ),
            NatConflict::SnatRule(r) => write!(
                f,
                "the control plane's source NAT rule to {} (for {} in VNI {}) is one of host.toml's floating IPs; left out",
                r.address, r.source, r.vpc
            ),
        }
    }
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
/// Built once per configuration change ([`NatConfig::new`]) and read by every packet. Up
/// to `SCAN_MAX` rules or floating IPs a packet reads them all; beyond, the per-packet
/// questions are answered from indexes built here — hash maps of the floating IPs and
/// outside addresses, and each VPC's source NAT rules in one run, most specific first — so
/// a gateway with thousands of floating IPs costs a packet what a gateway with ten does.
#[derive(Debug, Clone, Default)]
pub struct NatConfig {
    /// The outside (external network) port.
    pub outside_port: Option<u16>,
    /// Source NAT rules, grouped by VPC, each VPC's most specific source first.
    snat: Vec<SnatRule>,
    /// Floating IPs, as given.
    floating_ips: Vec<FloatingIp>,
    /// Every outside address: the source NAT addresses and the floating IPs' outside ones.
    outside: FxHashSet<u32>,
    /// Index into `floating_ips` by outside address (the first given wins).
    by_outside: FxHashMap<u32, usize>,
    /// Index into `floating_ips` by (VPC, inside address) (the first given wins).
    by_inside: FxHashMap<(u32, u32), usize>,
    /// The run of `snat` each VPC's rules occupy.
    snat_of_vpc: FxHashMap<u32, Range<usize>>,
    /// The VPCs with a source NAT rule or a floating IP.
    vpcs: FxHashSet<u32>,
    /// See [`NatConfig::id`].
    id: u64,
}

/// Two configurations are equal when they say the same (the indexes follow from it).
impl PartialEq for NatConfig {
    fn eq(&self, other: &Self) -> bool {
        self.outside_port == other.outside_port
            && self.snat == other.snat
            && self.floating_ips == other.floating_ips
    }
}

impl Eq for NatConfig {}

impl NatConfig {
    /// NAT on `outside_port` with these source NAT rules and floating IPs. Among the rules
    /// of one VPC whose sources contain an address, the most specific applies (the first
    /// given among equally specific ones); a floating IP wins over source NAT for its
    /// inside address. Nothing is rejected here: host.toml and the control plane's
    /// objects are validated where they are read.
    pub fn new(
        outside_port: Option<u16>,
        mut snat: Vec<SnatRule>,
        floating_ips: Vec<FloatingIp>,
    ) -> NatConfig {
        // Stable: equally specific rules of a VPC keep their order.
        snat.sort_by_key(|r| (r.vpc, std::cmp::Reverse(r.source.length())));
        let mut snat_of_vpc: FxHashMap<u32, Range<usize>> = FxHashMap::default();
        for (i, r) in snat.iter().enumerate() {
            snat_of_vpc.entry(r.vpc).or_insert(i..i).end = i + 1;
        }
        let mut by_outside = FxHashMap::default();
        let mut by_inside = FxHashMap::default();
        for (i, f) in floating_ips.iter().enumerate() {
            by_outside.entry(u32::from(f.outside)).or_insert(i);
            by_inside.entry((f.vpc, u32::from(f.inside))).or_insert(i);
        }
        let outside = snat
            .iter()
            .map(|r| u32::from(r.address))
            .chain(floating_ips.iter().map(|f| u32::from(f.outside)))
            .collect();
        let vpcs = snat
            .iter()
            .map(|r| r.vpc)
            .chain(floating_ips.iter().map(|f| f.vpc))
            .collect();
        NatConfig {
            id: NEXT_ID.fetch_add(1, Relaxed),
            outside_port,
            vpcs,
            snat,
            floating_ips,
            outside,
            by_outside,
            by_inside,
            snat_of_vpc,
        }
    }

    /// This configuration with `more` rules and floating IPs beside its own, on its outside
    /// port (else `more`'s). An outside address can have one owner: `more`'s floating IPs
    /// on one of this configuration's outside addresses, and `more`'s source NAT rules on
    /// one of its floating IPs, are left out and returned as conflicts (host.toml's NAT
    /// wins over the control plane's). Two source NAT rules may share an address.
    pub fn merged(&self, more: &NatConfig) -> (NatConfig, Vec<NatConflict>) {
        let mut conflicts = Vec::new();
        let mine = |ip: Ipv4Addr| {
            self.snat.iter().any(|r| r.address == ip)
                || self.floating_ips.iter().any(|f| f.outside == ip)
        };
        let floating: Vec<FloatingIp> = more
            .floating_ips
            .iter()
            .filter(|f| {
                let taken = mine(f.outside);
                if taken {
                    conflicts.push(NatConflict::FloatingIp(**f));
                }
                !taken
            })
            .copied()
            .collect();
        let snat: Vec<SnatRule> = more
            .snat
            .iter()
            .filter(|r| {
                let taken = self.floating_ips.iter().any(|f| f.outside == r.address);
                if taken {
                    conflicts.push(NatConflict::SnatRule(**r));
                }
                !taken
            })
            .copied()
            .collect();
        let cfg = NatConfig::new(
            self.outside_port.or(more.outside_port),
            self.snat.iter().chain(&snat).copied().collect(),
            self.floating_ips.iter().chain(&floating).copied().collect(),
        );
        (cfg, conflicts)
    }

    /// This configuration's identity: every [`NatConfig::new`] (and so every change) makes
    /// a new one, clones keep it, the default (no NAT) is 0. Workers compare it to the one
    /// they last checked their sessions against ([`super::NatTable::revoke`]) without
    /// holding on to the configuration itself.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The source NAT rules: grouped by VPC, each VPC's most specific source first.
    pub fn snat(&self) -> &[SnatRule] {
        &self.snat
    }

    /// The floating IPs, in the order given.
    pub fn floating_ips(&self) -> &[FloatingIp] {
        &self.floating_ips
    }

    /// True if NAT is configured.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.outside_port.is_some()
    }

    /// True if `ip` is one of the outside addresses (a SNAT address or a floating IP).
    #[inline]
    pub fn is_outside_address(&self, ip: u32) -> bool {
        if self.snat.len() + self.floating_ips.len() <= SCAN_MAX {
            self.snat.iter().any(|r| u32::from(r.address) == ip)
                || self.floating_ips.iter().any(|f| u32::from(f.outside) == ip)
        } else {
            self.outside.contains(&ip)
        }
    }

    /// True if some source NAT rule or floating IP belongs to VPC `vpc`.
    pub fn has_rules_for(&self, vpc: u32) -> bool {
        self.vpcs.contains(&vpc)
    }

    /// The floating IP whose outside address is `ip`.
    #[inline]
    pub fn floating_by_outside(&self, ip: u32) -> Option<&FloatingIp> {
        if self.floating_ips.len() <= SCAN_MAX {
            return self
                .floating_ips
                .iter()
                .find(|f| u32::from(f.outside) == ip);
        }
        self.by_outside
            .get(&ip)
            .and_then(|&i| self.floating_ips.get(i))
    }

    /// True if this configuration still grants a session its outside address: a floating
    /// IP session's floating IP still maps that outside address to its inside one, a source
    /// NAT session's VPC still has a rule covering its inside address with that outside
    /// address. A session whose grant is gone is revoked ([`super::NatTable::revoke`]).
    /// A rule that merely stopped being the one that applies (a more specific rule or a
    /// floating IP added since) does not revoke: the connection keeps its mapping until it
    /// ends, as conntrack keeps a NAT mapping after a rule change.
    pub fn grants(&self, vpc: u32, inside_ip: u32, kind: NatKind, outside_ip: u32) -> bool {
        if self.outside_port.is_none() {
            return false;
        }
        if kind == NatKind::FloatingIp {
            return self
                .floating_by_outside(outside_ip)
                .is_some_and(|f| f.vpc == vpc && u32::from(f.inside) == inside_ip);
        }
        let rules = match self.snat_of_vpc.get(&vpc) {
            Some(r) => self.snat.get(r.clone()).unwrap_or_default(),
            None => return false,
        };
        rules.iter().any(|r| {
            u32::from(r.address) == outside_ip && r.source.contains(Ipv4Addr::from(inside_ip))
        })
    }

    /// How an inside source of VPC `vpc` leaves: its floating IP, else the most specific
    /// SNAT rule.
    #[inline]
    pub fn translation_for(&self, vpc: u32, src: u32) -> Option<super::Translation> {
        let floating = if self.floating_ips.len() <= SCAN_MAX {
            self.floating_ips
                .iter()
                .find(|f| f.vpc == vpc && u32::from(f.inside) == src)
        } else {
            self.by_inside
                .get(&(vpc, src))
                .and_then(|&i| self.floating_ips.get(i))
        };
        if let Some(f) = floating {
            return Some(super::Translation::FloatingIp {
                ip: u32::from(f.outside),
            });
        }
        // The rules are grouped by VPC, most specific first: the first match is the one.
        let rules = if self.snat.len() <= SCAN_MAX {
            &self.snat[..]
        } else {
            self.snat.get(self.snat_of_vpc.get(&vpc)?.clone())?
        };
        rules
            .iter()
            .find(|r| r.vpc == vpc && r.source.contains(Ipv4Addr::from(src)))
            .map(|r| super::Translation::Snat {
                ip: u32::from(r.address),
                endpoint_dependent: r.endpoint_dependent,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::table::splitmix64;
    use crate::nat::Translation;

    /// What the indexes must answer: the plain reading of the rules in the order given
    /// (every rule looked at; the first given among equally specific ones).
    fn expected(
        snat: &[SnatRule],
        floating_ips: &[FloatingIp],
        vpc: u32,
        src: u32,
    ) -> Option<Translation> {
        if let Some(f) = floating_ips
            .iter()
            .find(|f| f.vpc == vpc && u32::from(f.inside) == src)
        {
            return Some(Translation::FloatingIp {
                ip: u32::from(f.outside),
            });
        }
        let best = snat
            .iter()
            .filter(|r| r.vpc == vpc && r.source.contains(Ipv4Addr::from(src)))
            .map(|r| r.source.length())
            .max()?;
        let r = snat.iter().find(|r| {
            r.vpc == vpc && r.source.length() == best && r.source.contains(Ipv4Addr::from(src))
        })?;
        Some(Translation::Snat {
            ip: u32::from(r.address),
            endpoint_dependent: r.endpoint_dependent,
        })
    }

    /// Random configurations of 3 VPCs with overlapping sources (10.0.0.0/8 split at
    /// lengths 8 to 24) and floating IPs, checked against the plain reading for addresses
    /// inside and outside every rule.
    #[test]
    fn the_indexes_answer_as_reading_every_rule_would() {
        let mut seed = 7;
        for round in 0..200 {
            let mut rnd = |n: u64| splitmix64(&mut seed) % n;
            let mut snat = Vec::new();
            for _ in 0..rnd(30) {
                let len = 8 + rnd(17) as u8;
                let base = 0x0a00_0000 | (rnd(1 << 24) as u32);
                let net = base & (u32::MAX << (32 - len));
                snat.push(SnatRule {
                    vpc: rnd(3) as u32,
                    source: Prefix::new(Ipv4Addr::from(net), len).unwrap(),
                    address: Ipv4Addr::from(0xcb00_7100 | rnd(8) as u32),
                    endpoint_dependent: rnd(2) == 0,
                });
            }
            let mut floating_ips = Vec::new();
            for _ in 0..rnd(40) {
                floating_ips.push(FloatingIp {
                    vpc: rnd(3) as u32,
                    inside: Ipv4Addr::from(0x0a00_0000 | rnd(64) as u32),
                    outside: Ipv4Addr::from(0xc633_6400 | rnd(64) as u32),
                });
            }
            let given = (snat.clone(), floating_ips.clone());
            let cfg = NatConfig::new(Some(1), snat, floating_ips);
            assert_eq!(
                cfg.floating_ips(),
                &given.1[..],
                "floating IPs kept as given"
            );
            let mut sorted = cfg.snat().to_vec();
            let mut original = given.0.clone();
            sorted.sort_by_key(|r| (r.vpc, r.source, u32::from(r.address), r.endpoint_dependent));
            original.sort_by_key(|r| (r.vpc, r.source, u32::from(r.address), r.endpoint_dependent));
            assert_eq!(sorted, original, "every rule kept");
            for _ in 0..200 {
                let vpc = rnd(4) as u32;
                let src = match rnd(3) {
                    0 => 0x0a00_0000 | rnd(64) as u32,
                    1 => 0x0a00_0000 | rnd(1 << 24) as u32,
                    _ => rnd(1 << 32) as u32,
                };
                assert_eq!(
                    cfg.translation_for(vpc, src),
                    expected(&given.0, &given.1, vpc, src),
                    "round {round}: vpc {vpc} src {}",
                    Ipv4Addr::from(src)
                );
                let out = 0xc633_6400 | rnd(80) as u32;
                let out = if rnd(4) == 0 {
                    0xcb00_7100 | rnd(10) as u32
                } else {
                    out
                };
                assert_eq!(
                    cfg.is_outside_address(out),
                    given.0.iter().any(|r| u32::from(r.address) == out)
                        || given.1.iter().any(|f| u32::from(f.outside) == out)
                );
                assert_eq!(
                    cfg.floating_by_outside(out),
                    given.1.iter().find(|f| u32::from(f.outside) == out)
                );
                assert_eq!(
                    cfg.has_rules_for(vpc),
                    given.0.iter().any(|r| r.vpc == vpc) || given.1.iter().any(|f| f.vpc == vpc)
                );
            }
        }
    }

    #[test]
    fn merging_keeps_both_sides_rules_and_the_first_outside_port() {
        let rule = |vpc, net: &str, a: [u8; 4]| SnatRule {
            vpc,
            source: net.parse().unwrap(),
            address: Ipv4Addr::from(a),
            endpoint_dependent: true,
        };
        let local = NatConfig::new(
            Some(2),
            vec![rule(0, "10.0.0.0/8", [203, 0, 113, 1])],
            vec![],
        );
        let cp = NatConfig::new(
            Some(5),
            vec![rule(7, "10.1.0.0/16", [203, 0, 113, 2])],
            vec![FloatingIp {
                vpc: 7,
                inside: Ipv4Addr::new(10, 1, 0, 9),
                outside: Ipv4Addr::new(203, 0, 113, 9),
            }],
        );
        let (m, conflicts) = local.merged(&cp);
        assert!(conflicts.is_empty());
        assert_eq!(m.outside_port, Some(2));
        assert_eq!(NatConfig::default().merged(&cp).0.outside_port, Some(5));
        assert_eq!(m.snat().len(), 2);
        assert!(m.is_outside_address(u32::from(Ipv4Addr::new(203, 0, 113, 9))));
        assert_eq!(
            m.translation_for(7, u32::from(Ipv4Addr::new(10, 1, 0, 9))),
            Some(Translation::FloatingIp {
                ip: u32::from(Ipv4Addr::new(203, 0, 113, 9))
            })
        );
        assert_eq!(
            m.translation_for(0, u32::from(Ipv4Addr::new(10, 1, 0, 9))),
            Some(Translation::Snat {
                ip: u32::from(Ipv4Addr::new(203, 0, 113, 1)),
                endpoint_dependent: true
            })
        );
        assert_eq!(
            m.translation_for(7, u32::from(Ipv4Addr::new(10, 2, 0, 1))),
            None
        );
        assert_ne!(m, local);
        assert_eq!(m, local.merged(&cp).0);
    }

    #[test]
    fn control_plane_objects_on_host_toml_outside_addresses_are_left_out_and_reported() {
        let a = |x: u8| Ipv4Addr::new(203, 0, 113, x);
        let rule = |vpc, net: &str, address| SnatRule {
            vpc,
            source: net.parse().unwrap(),
            address,
            endpoint_dependent: true,
        };
        let fip = |vpc, inside: [u8; 4], outside| FloatingIp {
            vpc,
            inside: Ipv4Addr::from(inside),
            outside,
        };
        let local = NatConfig::new(
            Some(2),
            vec![rule(ROUTED_VPC, "198.18.0.0/15", a(1))],
            vec![fip(ROUTED_VPC, [198, 18, 0, 9], a(9))],
        );
        let clash_snat_addr = fip(7, [10, 1, 0, 5], a(1));
        let clash_fip = fip(7, [10, 1, 0, 6], a(9));
        let fine_fip = fip(7, [10, 1, 0, 7], a(20));
        let clash_rule = rule(7, "10.1.0.0/16", a(9));
        let shared_rule = rule(7, "10.2.0.0/16", a(1));
        let cp = NatConfig::new(
            Some(2),
            vec![clash_rule, shared_rule],
            vec![clash_snat_addr, clash_fip, fine_fip],
        );
        let (m, conflicts) = local.merged(&cp);
        assert_eq!(
            conflicts,
            [
                NatConflict::FloatingIp(clash_snat_addr),
                NatConflict::FloatingIp(clash_fip),
                NatConflict::SnatRule(clash_rule),
            ]
        );
        assert!(conflicts[0].to_string().contains("203.0.113.1"));
        // host.toml's floating IP keeps its address, inbound and outbound.
        let f = m.floating_by_outside(u32::from(a(9))).unwrap();
        assert_eq!(
            (f.vpc, f.inside),
            (ROUTED_VPC, Ipv4Addr::new(198, 18, 0, 9))
        );
        assert!(m.floating_by_outside(u32::from(a(1))).is_none());
        assert_eq!(
            m.floating_ips().len(),
            2,
            "host.toml's and the one without a clash"
        );
        // A source NAT address may be shared; the clashing rule's sources have no rule.
        assert_eq!(
            m.translation_for(7, u32::from(Ipv4Addr::new(10, 2, 0, 1))),
            Some(Translation::Snat {
                ip: u32::from(a(1)),
                endpoint_dependent: true
            })
        );
        assert_eq!(
            m.translation_for(7, u32::from(Ipv4Addr::new(10, 1, 0, 1))),
            None
        );
        assert!(m.grants(
            ROUTED_VPC,
            u32::from(Ipv4Addr::new(198, 18, 0, 9)),
            NatKind::FloatingIp,
            u32::from(a(9))
        ));
    }
}
