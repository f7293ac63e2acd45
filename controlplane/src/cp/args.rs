//! Command-line arguments of the per-kind commands, and how `create` flags become an object.

use aegis_api::controlplane::v1::{
    object::Spec, Direction, ExternalNetwork, FloatingIp, GatewayGroup, GatewayMember, Host,
    HostAddress, HostNetwork, HostRole, Kind, Object, Port, Route, RouteAction, RuleAction,
    SecurityGroup, SecurityRule, SnatRule, Subnet, Vpc, VrrpTransport,
};
use clap::{Args, Subcommand};

use super::Output;
use crate::error::CliError;
use crate::model::kind::{kind_from_name, kind_name};

/// What to do with objects of one kind. (Parsed once per run: the size of `Create` does not
/// matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum ObjectCommand {
    /// Create one (the flags that apply depend on the kind; see docs/cli.md).
    Create(CreateArgs),
    /// Change one: the flags given replace those fields, the rest stays (gateway-group
    /// only; `--member HOST:PRIO` sets one member's priority or adds it, `--remove-member`
    /// removes one). Other kinds: `get -o json`, edit, `apply -f`.
    Update(CreateArgs),
    /// List them (`host list`: liveness, CPU, memory, links, applied revision).
    #[command(alias = "ls")]
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one.
    Get {
        /// Its name.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Delete one (refused while other objects refer to it).
    #[command(alias = "rm")]
    Delete {
        /// Its name.
        name: String,
        /// Only if it is still at this revision.
        #[arg(long, default_value_t = 0)]
        expected_revision: u64,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Flags of `create`, for every kind.
#[derive(Debug, Clone, Args, Default)]
pub struct CreateArgs {
    /// The object's name.
    pub name: String,
    /// host: compute or gateway.
    #[arg(long)]
    pub role: Option<String>,
    /// host: underlay (tunnel) IPv4 address.
    #[arg(long)]
    pub underlay: Option<String>,
    /// host: management IPv4 address.
    #[arg(long)]
    pub management: Option<String>,
    /// host: a dataplane port address, PORT=ADDRESS/LEN (repeatable).
    #[arg(long = "address")]
    pub addresses: Vec<String>,
    /// host: a monitored network, NAME=INTERFACE (repeatable).
    #[arg(long = "network")]
    pub networks: Vec<String>,
    /// vpc: VNI (1..16777215).
    #[arg(long)]
    pub vni: Option<u32>,
    /// vpc, security-group: free text.
    #[arg(long)]
    pub description: Option<String>,
    /// subnet, port, route, snat-rule: the VPC.
    #[arg(long)]
    pub vpc: Option<String>,
    /// subnet, external-network: prefix.
    #[arg(long)]
    pub cidr: Option<String>,
    /// subnet, external-network: gateway address.
    #[arg(long)]
    pub gateway: Option<String>,
    /// port, snat-rule: the subnet.
    #[arg(long)]
    pub subnet: Option<String>,
    /// port: MAC address.
    #[arg(long)]
    pub mac: Option<String>,
    /// port: an IPv4 address (repeatable).
    #[arg(long = "ip")]
    pub ips: Vec<String>,
    /// port: host it lives on; route: the host whose underlay table it belongs to.
    #[arg(long)]
    pub host: Option<String>,
    /// port: device on its host.
    #[arg(long)]
    pub device: Option<String>,
    /// port: a security group (repeatable).
    #[arg(long = "security-group", alias = "sg")]
    pub security_groups: Vec<String>,
    /// route: destination prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// route: next hop.
    #[arg(long)]
    pub via: Option<String>,
    /// route: drop silently.
    #[arg(long)]
    pub blackhole: bool,
    /// route: drop with ICMP unreachable.
    #[arg(long)]
    pub unreachable: bool,
    /// security-group: a rule, comma-separated key=value: id=,dir=ingress|egress,proto=,
    /// ports=N[-M],remote=CIDR|group=NAME,prio=N,action=allow|deny (repeatable).
    #[arg(long = "rule")]
    pub rules: Vec<String>,
    /// external-network: 802.1Q VLAN id.
    #[arg(long)]
    pub vlan: Option<u32>,
    /// gateway-group, floating-ip: the external network.
    #[arg(long)]
    pub external_network: Option<String>,
    /// gateway-group: a member, HOST:PRIORITY (repeatable).
    #[arg(long = "member")]
    pub members: Vec<String>,
    /// gateway-group (repeatable), floating-ip, snat-rule: external address.
    #[arg(long = "external-address")]
    pub external_addresses: Vec<String>,
    /// gateway-group: VRRP virtual router id.
    #[arg(long)]
    pub vrid: Option<u32>,
    /// gateway-group: tunnel address on the underlay.
    #[arg(long)]
    pub tunnel_address: Option<String>,
    /// gateway-group: how many standbys the master streams its sessions to (default 1).
    #[arg(long)]
    pub standbys: Option<u32>,
    /// gateway-group: VRRP advertisement interval, milliseconds (default 1000; VRRPv3:
    /// 10..40950 in steps of 10, VRRPv2: whole seconds).
    #[arg(long)]
    pub advert_interval_ms: Option<u32>,
    /// gateway-group: VRRP version, 2 or 3 (default 3).
    #[arg(long)]
    pub vrrp_version: Option<u32>,
    /// gateway-group: never take over from a live lower-priority master.
    #[arg(long)]
    pub no_preempt: bool,
    /// gateway-group (update): take over from a lower-priority master again (the default).
    #[arg(long)]
    pub preempt: bool,
    /// gateway-group: after a member starts, accept a lower-priority master this long.
    #[arg(long)]
    pub preempt_delay_ms: Option<u32>,
    /// gateway-group: how adverts reach the other members: auto (default: unicast on a link
    /// where every member's address is known, else multicast), unicast or multicast.
    #[arg(long)]
    pub vrrp_transport: Option<String>,
    /// gateway-group (update): a member to remove (repeatable).
    #[arg(long = "remove-member")]
    pub remove_members: Vec<String>,
    /// floating-ip: the port.
    #[arg(long)]
    pub port: Option<String>,
    /// floating-ip: one of the port's addresses.
    #[arg(long)]
    pub fixed_ip: Option<String>,
    /// snat-rule: the gateway group.
    #[arg(long)]
    pub gateway_group: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// Parses a kind name for clap.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    kind_from_name(s).ok_or_else(|| {
        format!("unknown kind {s:?}: host, vpc, subnet, port, route, security-group, external-network, gateway-group, floating-ip, snat-rule")
    })
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn split_pair<'a>(flag: &str, v: &'a str, sep: char) -> Result<(&'a str, &'a str), CliError> {
    v.split_once(sep)
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| usage(format!("--{flag} {v:?}: expected A{sep}B")))
}

/// The flags given, by name.
fn given(a: &CreateArgs) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut set = |name: &'static str, on: bool| {
        if on {
            v.push(name);
        }
    };
    set("role", a.role.is_some());
    set("underlay", a.underlay.is_some());
    set("management", a.management.is_some());
    set("address", !a.addresses.is_empty());
    set("network", !a.networks.is_empty());
    set("vni", a.vni.is_some());
    set("description", a.description.is_some());
    set("vpc", a.vpc.is_some());
    set("cidr", a.cidr.is_some());
    set("gateway", a.gateway.is_some());
    set("subnet", a.subnet.is_some());
    set("mac", a.mac.is_some());
    set("ip", !a.ips.is_empty());
    set("host", a.host.is_some());
    set("device", a.device.is_some());
    set("security-group", !a.security_groups.is_empty());
    set("prefix", a.prefix.is_some());
    set("via", a.via.is_some());
    set("blackhole", a.blackhole);
    set("unreachable", a.unreachable);
    set("rule", !a.rules.is_empty());
    set("vlan", a.vlan.is_some());
    set("external-network", a.external_network.is_some());
    set("member", !a.members.is_empty());
    set("external-address", !a.external_addresses.is_empty());
    set("vrid", a.vrid.is_some());
    set("tunnel-address", a.tunnel_address.is_some());
    set("standbys", a.standbys.is_some());
    set("advert-interval-ms", a.advert_interval_ms.is_some());
    set("vrrp-version", a.vrrp_version.is_some());
    set("no-preempt", a.no_preempt);
    set("preempt", a.preempt);
    set("preempt-delay-ms", a.preempt_delay_ms.is_some());
    set("vrrp-transport", a.vrrp_transport.is_some());
    set("remove-member", !a.remove_members.is_empty());
    set("port", a.port.is_some());
    set("fixed-ip", a.fixed_ip.is_some());
    set("gateway-group", a.gateway_group.is_some());
    v
}

fn allowed(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Host => &["role", "underlay", "management", "address", "network"],
        Kind::Vpc => &["vni", "description"],
        Kind::Subnet => &["vpc", "cidr", "gateway"],
        Kind::Port => &[
            "vpc",
            "subnet",
            "mac",
            "ip",
            "host",
            "device",
            "security-group",
        ],
        Kind::Route => &["vpc", "host", "prefix", "via", "blackhole", "unreachable"],
        Kind::SecurityGroup => &["rule", "description"],
        Kind::ExternalNetwork => &["cidr", "gateway", "vlan"],
        Kind::GatewayGroup => &[
            "external-network",
            "member",
            "external-address",
            "vrid",
            "tunnel-address",
            "standbys",
            "advert-interval-ms",
            "vrrp-version",
            "no-preempt",
            "preempt-delay-ms",
            "vrrp-transport",
        ],
        Kind::FloatingIp => &["external-network", "external-address", "port", "fixed-ip"],
        Kind::SnatRule => &["vpc", "subnet", "gateway-group", "external-address"],
        Kind::Unspecified => &[],
    }
}

fn one(flag: &str, v: &[String]) -> Result<String, CliError> {
    match v {
        [] => Ok(String::new()),
        [x] => Ok(x.clone()),
        _ => Err(usage(format!("--{flag} is given once for this kind"))),
    }
}

/// Builds the object `create` asks for. The server validates values; this only checks the
/// flags fit the kind and the A=B / A:B forms.
pub fn object_from(kind: Kind, a: &CreateArgs) -> Result<Object, CliError> {
    let wrong: Vec<_> = given(a)
        .into_iter()
        .filter(|f| !allowed(kind).contains(f))
        .collect();
    if !wrong.is_empty() {
        return Err(usage(format!(
            "{} create does not take --{} (it takes --{})",
            kind_name(kind),
            wrong.join(", --"),
            allowed(kind).join(", --")
        )));
    }
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let spec = match kind {
        Kind::Host => {
            let role = match a.role.as_deref() {
                Some("compute") => HostRole::Compute,
                Some("gateway") => HostRole::Gateway,
                Some(r) => return Err(usage(format!("--role {r:?}: compute or gateway"))),
                None => return Err(usage("--role compute|gateway is required")),
            };
            let mut addresses = Vec::new();
            for v in &a.addresses {
                let (port, address) = split_pair("address", v, '=')?;
                addresses.push(HostAddress {
                    port: port.into(),
                    address: address.into(),
                });
            }
            let mut networks = Vec::new();
            for v in &a.networks {
                let (name, interface) = split_pair("network", v, '=')?;
                networks.push(HostNetwork {
                    name: name.into(),
                    interface: interface.into(),
                });
            }
            Spec::Host(Host {
                role: role as i32,
                underlay_address: s(&a.underlay),
                management_address: s(&a.management),
                addresses,
                networks,
            })
        }
        Kind::Vpc => Spec::Vpc(Vpc {
            vni: a.vni.ok_or_else(|| usage("--vni is required"))?,
            description: s(&a.description),
        }),
        Kind::Subnet => Spec::Subnet(Subnet {
            vpc: s(&a.vpc),
            cidr: s(&a.cidr),
            gateway_ip: s(&a.gateway),
        }),
        Kind::Port => Spec::Port(Port {
            vpc: s(&a.vpc),
            subnet: s(&a.subnet),
            mac: s(&a.mac),
            ips: a.ips.clone(),
            host: s(&a.host),
            device: s(&a.device),
            security_groups: a.security_groups.clone(),
        }),
        Kind::Route => {
            let action = match (a.via.is_some(), a.blackhole, a.unreachable) {
                (true, false, false) => RouteAction::Forward,
                (false, true, false) => RouteAction::Blackhole,
                (false, false, true) => RouteAction::Unreachable,
                _ => {
                    return Err(usage(
                        "give exactly one of --via NEXT_HOP, --blackhole, --unreachable",
                    ))
                }
            };
            Spec::Route(Route {
                vpc: s(&a.vpc),
                host: s(&a.host),
                prefix: s(&a.prefix),
                next_hop: s(&a.via),
                action: action as i32,
            })
        }
        Kind::SecurityGroup => Spec::SecurityGroup(SecurityGroup {
            rules: a
                .rules
                .iter()
                .map(|r| parse_rule(r))
                .collect::<Result<_, _>>()?,
            description: s(&a.description),
        }),
        Kind::ExternalNetwork => Spec::ExternalNetwork(ExternalNetwork {
            cidr: s(&a.cidr),
            gateway_ip: s(&a.gateway),
            vlan: a.vlan.unwrap_or(0),
        }),
        Kind::GatewayGroup => {
            let mut g = GatewayGroup::default();
            for m in &a.members {
                g.members.push(member(m)?);
            }
            g.external_network = s(&a.external_network);
            g.external_addresses = a.external_addresses.clone();
            g.vrid = a.vrid.unwrap_or(0);
            g.tunnel_address = s(&a.tunnel_address);
            g.standby_count = a.standbys.unwrap_or(0);
            set_group_vrrp(&mut g, a)?;
            Spec::GatewayGroup(g)
        }
        Kind::FloatingIp => Spec::FloatingIp(FloatingIp {
            external_network: s(&a.external_network),
            address: one("external-address", &a.external_addresses)?,
            port: s(&a.port),
            fixed_ip: s(&a.fixed_ip),
        }),
        Kind::SnatRule => Spec::SnatRule(SnatRule {
            vpc: s(&a.vpc),
            subnet: s(&a.subnet),
            gateway_group: s(&a.gateway_group),
            external_address: one("external-address", &a.external_addresses)?,
        }),
        Kind::Unspecified => return Err(usage("no kind")),
    };
    Ok(Object {
        name: a.name.clone(),
        spec: Some(spec),
        ..Object::default()
    })
}

/// `HOST:PRIORITY`.
fn member(m: &str) -> Result<GatewayMember, CliError> {
    let (host, prio) = split_pair("member", m, ':')?;
    Ok(GatewayMember {
        host: host.into(),
        priority: prio
            .parse()
            .map_err(|_| usage(format!("--member {m:?}: the priority is a number")))?,
    })
}

/// The VRRP flags of a gateway group given in `a`, onto `g`.
fn set_group_vrrp(g: &mut GatewayGroup, a: &CreateArgs) -> Result<(), CliError> {
    if let Some(ms) = a.advert_interval_ms {
        g.advert_interval_ms = ms;
    }
    if let Some(v) = a.vrrp_version {
        g.vrrp_version = v;
    }
    match (a.no_preempt, a.preempt) {
        (true, true) => return Err(usage("give one of --preempt and --no-preempt")),
        (true, false) => g.no_preempt = true,
        (false, true) => g.no_preempt = false,
        (false, false) => {}
    }
    if let Some(ms) = a.preempt_delay_ms {
        g.preempt_delay_ms = ms;
    }
    if let Some(t) = &a.vrrp_transport {
        g.vrrp_transport = match t.as_str() {
            "auto" => VrrpTransport::Unspecified,
            "unicast" => VrrpTransport::Unicast,
            "multicast" => VrrpTransport::Multicast,
            other => {
                return Err(usage(format!(
                    "--vrrp-transport {other:?}: auto, unicast or multicast"
                )))
            }
        } as i32;
    }
    Ok(())
}

/// The object `update` writes: `current` with the fields whose flags `a` gives replaced
/// (gateway-group only). The leader's `sync_assignment` is left out so the stored one is
/// kept.
pub fn merge_update(kind: Kind, current: Object, a: &CreateArgs) -> Result<Object, CliError> {
    let updatable: &[&str] = match kind {
        Kind::GatewayGroup => &[
            "external-network",
            "member",
            "remove-member",
            "external-address",
            "vrid",
            "tunnel-address",
            "standbys",
            "advert-interval-ms",
            "vrrp-version",
            "no-preempt",
            "preempt",
            "preempt-delay-ms",
            "vrrp-transport",
        ],
        _ => {
            return Err(usage(format!(
                "{} update is not built: update takes gateway-group; for other kinds, \
                 `get NAME -o json`, edit, `apply -f`",
                kind_name(kind)
            )))
        }
    };
    let flags = given(a);
    let wrong: Vec<_> = flags.iter().filter(|f| !updatable.contains(f)).collect();
    if !wrong.is_empty() {
        return Err(usage(format!(
            "{} update does not take --{} (it takes --{})",
            kind_name(kind),
            wrong
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", --"),
            updatable.join(", --")
        )));
    }
    if flags.is_empty() {
        return Err(usage("nothing to change: give at least one flag"));
    }
    let mut object = current;
    let Some(Spec::GatewayGroup(g)) = object.spec.as_mut() else {
        return Err(usage(format!("{} is not a gateway group", object.name)));
    };
    if let Some(n) = &a.external_network {
        g.external_network = n.clone();
    }
    for m in &a.members {
        let m = member(m)?;
        match g.members.iter_mut().find(|x| x.host == m.host) {
            Some(x) => x.priority = m.priority,
            None => g.members.push(m),
        }
    }
    for h in &a.remove_members {
        let before = g.members.len();
        g.members.retain(|m| &m.host != h);
        if g.members.len() == before {
            return Err(usage(format!(
                "--remove-member {h}: not a member of the group"
            )));
        }
    }
    if !a.external_addresses.is_empty() {
        g.external_addresses = a.external_addresses.clone();
    }
    if let Some(v) = a.vrid {
        g.vrid = v;
    }
    if let Some(t) = &a.tunnel_address {
        g.tunnel_address = t.clone();
    }
    if let Some(n) = a.standbys {
        g.standby_count = n;
    }
    set_group_vrrp(g, a)?;
    g.sync_assignment = None;
    Ok(object)
}

/// Parses `id=web,dir=ingress,proto=tcp,ports=80-443,remote=0.0.0.0/0,prio=10,action=allow`.
pub fn parse_rule(text: &str) -> Result<SecurityRule, CliError> {
    let bad = |m: String| usage(format!("--rule {text:?}: {m}"));
    let mut rule = SecurityRule {
        protocol: "any".into(),
        ..SecurityRule::default()
    };
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
        match k {
            "id" => rule.id = v.into(),
            "dir" | "direction" => {
                rule.direction = match v {
                    "ingress" | "in" => Direction::Ingress as i32,
                    "egress" | "out" => Direction::Egress as i32,
                    _ => return Err(bad(format!("dir {v:?}: ingress or egress"))),
                }
            }
            "proto" | "protocol" => rule.protocol = v.into(),
            "ports" | "port" => {
                let (lo, hi) = v.split_once('-').unwrap_or((v, v));
                let n = |x: &str| {
                    x.parse::<u32>()
                        .map_err(|_| bad(format!("ports {v:?}: N or N-M")))
                };
                rule.port_min = n(lo)?;
                rule.port_max = n(hi)?;
            }
            "remote" | "cidr" => rule.remote_cidr = v.into(),
            "group" => rule.remote_group = v.into(),
            "prio" | "priority" => {
                rule.priority = v
                    .parse()
                    .map_err(|_| bad(format!("prio {v:?} is not a number")))?;
            }
            "action" => {
                rule.action = match v {
                    "allow" => RuleAction::Allow as i32,
                    "deny" => RuleAction::Deny as i32,
                    _ => return Err(bad(format!("action {v:?}: allow or deny"))),
                }
            }
            _ => {
                return Err(bad(format!(
                    "unknown key {k:?} (id, dir, proto, ports, remote, group, prio, action)"
                )))
            }
        }
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let r = parse_rule(
            "id=web,dir=ingress,proto=tcp,ports=80-443,remote=0.0.0.0/0,prio=10,action=deny",
        )
        .unwrap();
        assert_eq!(r.id, "web");
        assert_eq!(r.direction, Direction::Ingress as i32);
        assert_eq!((r.port_min, r.port_max), (80, 443));
        assert_eq!(r.action, RuleAction::Deny as i32);
        assert_eq!(parse_rule("id=a,ports=22").unwrap().port_max, 22);
        for bad in [
            "id",
            "id=a,dir=up",
            "id=a,ports=x",
            "id=a,colour=red",
            "id=a,action=maybe",
        ] {
            assert!(parse_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateway_group_vrrp_flags_create_and_update() {
        let a = CreateArgs {
            name: "gw".into(),
            external_network: Some("ext".into()),
            members: vec!["g1:200".into(), "g2:100".into()],
            external_addresses: vec!["203.0.113.10".into()],
            vrid: Some(71),
            advert_interval_ms: Some(100),
            no_preempt: true,
            vrrp_transport: Some("unicast".into()),
            ..CreateArgs::default()
        };
        let o = object_from(Kind::GatewayGroup, &a).unwrap();
        let Some(Spec::GatewayGroup(g)) = &o.spec else {
            panic!()
        };
        assert_eq!(
            (
                g.advert_interval_ms,
                g.vrrp_version,
                g.no_preempt,
                g.vrrp_transport
            ),
            (100, 0, true, VrrpTransport::Unicast as i32)
        );
        let mut stored = o.clone();
        if let Some(Spec::GatewayGroup(g)) = &mut stored.spec {
            g.sync_assignment = Some(Default::default());
        }
        // update: g2's priority changes, the rest stays; the leader's choice is left out.
        let u = CreateArgs {
            name: "gw".into(),
            members: vec!["g2:250".into()],
            preempt: true,
            ..CreateArgs::default()
        };
        let o = merge_update(Kind::GatewayGroup, stored.clone(), &u).unwrap();
        let Some(Spec::GatewayGroup(g)) = &o.spec else {
            panic!()
        };
        let members: Vec<(&str, u32)> = g
            .members
            .iter()
            .map(|m| (m.host.as_str(), m.priority))
            .collect();
        assert_eq!(members, [("g1", 200), ("g2", 250)]);
        assert!(!g.no_preempt);
        assert_eq!((g.vrid, g.advert_interval_ms), (71, 100));
        assert!(g.sync_assignment.is_none());
        let u = CreateArgs {
            remove_members: vec!["g9".into()],
            ..CreateArgs::default()
        };
        assert!(merge_update(Kind::GatewayGroup, stored.clone(), &u).is_err());
        let u = CreateArgs {
            vrrp_transport: Some("broadcast".into()),
            ..CreateArgs::default()
        };
        assert!(merge_update(Kind::GatewayGroup, stored.clone(), &u)
            .unwrap_err()
            .to_string()
            .contains("auto, unicast or multicast"));
        assert!(merge_update(Kind::GatewayGroup, stored.clone(), &CreateArgs::default()).is_err());
        let u = CreateArgs {
            cidr: Some("10.0.0.0/24".into()),
            ..CreateArgs::default()
        };
        assert!(merge_update(Kind::GatewayGroup, stored.clone(), &u).is_err());
        assert!(merge_update(Kind::Vpc, stored, &u).is_err());
        // --remove-member and --preempt are update flags.
        let a = CreateArgs { preempt: true, ..a };
        assert!(object_from(Kind::GatewayGroup, &a).is_err());
    }

    #[test]
    fn flags_must_fit_the_kind() {
        let a = CreateArgs {
            name: "blue".into(),
            vni: Some(10),
            cidr: Some("10.0.0.0/24".into()),
            ..CreateArgs::default()
        };
        let e = object_from(Kind::Vpc, &a).unwrap_err().to_string();
        assert!(e.contains("--cidr"), "{e}");
        let a = CreateArgs {
            name: "r".into(),
            host: Some("c1".into()),
            prefix: Some("10.9.0.0/16".into()),
            ..CreateArgs::default()
        };
        assert!(
            object_from(Kind::Route, &a).is_err(),
            "needs --via or --blackhole"
        );
        let a = CreateArgs {
            name: "c1".into(),
            role: Some("compute".into()),
            addresses: vec!["p0=10.0.1.1/24".into()],
            networks: vec!["management=eth0".into()],
            ..CreateArgs::default()
        };
        let o = object_from(Kind::Host, &a).unwrap();
        let Some(Spec::Host(h)) = o.spec else {
            panic!()
        };
        assert_eq!(h.addresses[0].port, "p0");
        assert_eq!(h.networks[0].interface, "eth0");
        let a = CreateArgs {
            name: "c1".into(),
            role: Some("compute".into()),
            addresses: vec!["p0".into()],
            ..CreateArgs::default()
        };
        assert!(object_from(Kind::Host, &a).is_err());
    }
}
