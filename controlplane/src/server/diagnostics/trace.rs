//! What the control plane makes of a trace: the hops of every host put in path order, the
//! verdict (delivered, or dropped where and why), the path the desired state gives the
//! probe (a simulation of the VPC router, as ovn-trace does), and the findings where the
//! two disagree or a host applies a stale revision.

use std::net::Ipv4Addr;

use aegis_api::controlplane::v1::{
    object::Spec, ExpectedPath, HostHops, Kind, Port, RouteAction, TraceVerdict,
};
use aegis_api::dataplane::v1::TraceHop;
use ipnet::Ipv4Net;

use crate::model::state::DesiredState as State;

/// Orders hosts by their first hop (when the probe reached them) and drops empty ones.
pub fn path_order(mut hosts: Vec<HostHops>) -> Vec<HostHops> {
    hosts.retain(|h| !h.hops.is_empty());
    hosts.sort_by_key(|h| h.hops.first().map_or(u64::MAX, |x| x.unix_ns));
    hosts
}

/// The verdict: the first drop (a packet answered with an ICMP error is dropped there,
/// even though the error then reaches the sender), else the first delivery, else lost.
pub fn verdict(hosts: &[HostHops]) -> TraceVerdict {
    let all = || {
        hosts
            .iter()
            .flat_map(|h| h.hops.iter().map(move |x| (h, x)))
    };
    let first = |action: &str| {
        all()
            .filter(|(_, x)| x.action == action)
            .min_by_key(|(_, x)| x.unix_ns)
    };
    let from = |outcome: &str, (h, x): (&HostHops, &TraceHop)| TraceVerdict {
        outcome: outcome.into(),
        host: h.host.clone(),
        node: x.node.clone(),
        reason: x.reason.clone(),
        port: x.port.clone(),
        detail: x.detail.clone(),
        rule: x.rule.clone(),
    };
    if let Some(d) = first("dropped") {
        return from("dropped", d);
    }
    if let Some(d) = first("delivered") {
        return from("delivered", d);
    }
    if let Some(d) = first("consumed") {
        return from("delivered", d);
    }
    let last = all().max_by_key(|(_, x)| x.unix_ns);
    TraceVerdict {
        outcome: "lost".into(),
        host: last.map(|(h, _)| h.host.clone()).unwrap_or_default(),
        node: last.map(|(_, x)| x.node.clone()).unwrap_or_default(),
        detail: match last {
            Some((_, x)) => format!(
                "last seen {} at {}{}",
                x.action,
                x.node,
                if x.port.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", x.port)
                }
            ),
            None => "no hop recorded".into(),
        },
        ..Default::default()
    }
}

/// True once the hops hold an end: a delivery or a drop whose ICMP error (if any) arrived.
pub fn complete(hosts: &[HostHops]) -> bool {
    let all: Vec<&TraceHop> = hosts.iter().flat_map(|h| h.hops.iter()).collect();
    let delivered = all
        .iter()
        .any(|x| x.action == "delivered" || x.action == "consumed");
    let dropped = all.iter().any(|x| x.action == "dropped");
    let icmp_pending = all
        .iter()
        .any(|x| x.action == "dropped" && x.detail.contains("sent back"));
    if icmp_pending {
        return delivered || all.iter().filter(|x| x.action == "dropped").count() > 1;
    }
    delivered || dropped
}

fn port_spec(state: &State, name: &str) -> Option<Port> {
    match state.get(Kind::Port, name)?.spec.as_ref()? {
        Spec::Port(p) => Some(p.clone()),
        _ => None,
    }
}

/// The path the desired state gives a probe from port `from` to `dst`: the VPC router's
/// decision (a port's address, else the longest subnet or static route).
pub fn expected(state: &State, from: &str, dst: Ipv4Addr) -> ExpectedPath {
    let Some(src) = port_spec(state, from) else {
        return ExpectedPath {
            outcome: "unknown_port".into(),
            ..Default::default()
        };
    };
    let vpc = src.vpc.clone();
    let mut out = ExpectedPath {
        vpc: vpc.clone(),
        ..Default::default()
    };
    let ports = state.list(Kind::Port);
    for o in &ports {
        if let Some(Spec::Port(p)) = &o.spec {
            if p.vpc == vpc && p.ips.iter().any(|i| i.parse::<Ipv4Addr>() == Ok(dst)) {
                out.outcome = "deliver".into();
                out.port = o.name.clone();
                out.host = p.host.clone();
                out.via = format!("port {} has {dst}", o.name);
                return out;
            }
        }
    }
    // Longest match among the subnets and the static routes of the VPC.
    let mut best: Option<(u8, String, String)> = None;
    let mut consider = |len: u8, outcome: String, via: String| {
        if best.as_ref().is_none_or(|(l, _, _)| len > *l) {
            best = Some((len, outcome, via));
        }
    };
    for o in state.list(Kind::Subnet) {
        if let Some(Spec::Subnet(s)) = &o.spec {
            if s.vpc != vpc {
                continue;
            }
            if s.gateway_ip.parse::<Ipv4Addr>() == Ok(dst) {
                out.outcome = "router".into();
                out.via = format!("gateway of subnet {} (answered by the router)", o.name);
                return out;
            }
            if let Ok(net) = s.cidr.parse::<Ipv4Net>() {
                if net.contains(&dst) {
                    let via = format!("subnet {} {}", o.name, s.cidr);
                    consider(net.prefix_len(), "no_port".into(), via);
                }
            }
        }
    }
    for o in state.list(Kind::Route) {
        if let Some(Spec::Route(r)) = &o.spec {
            if r.vpc != vpc {
                continue;
            }
            let Ok(net) = r.prefix.parse::<Ipv4Net>() else {
                continue;
            };
            if !net.contains(&dst) {
                continue;
            }
            let via = format!("route {} {}", o.name, r.prefix);
            let outcome = match RouteAction::try_from(r.action).unwrap_or_default() {
                RouteAction::Blackhole => "blackhole".to_owned(),
                RouteAction::Unreachable => "unreachable".to_owned(),
                _ => {
                    let hop = r.next_hop.parse::<Ipv4Addr>().ok();
                    let target = ports.iter().find_map(|o| match &o.spec {
                        Some(Spec::Port(p))
                            if p.vpc == vpc
                                && hop.is_some_and(|h| {
                                    p.ips.iter().any(|i| i.parse::<Ipv4Addr>() == Ok(h))
                                }) =>
                        {
                            Some((o.name.clone(), p.host.clone()))
                        }
                        _ => None,
                    });
                    match target {
                        Some((port, host)) => {
                            let via = format!("{via} via {} (port {port})", r.next_hop);
                            consider(net.prefix_len(), format!("deliver:{port}:{host}"), via);
                            continue;
                        }
                        None => "next_hop_unknown".to_owned(),
                    }
                }
            };
            consider(net.prefix_len(), outcome, via);
        }
    }
    match best {
        Some((_, outcome, via)) => {
            out.via = via;
            if let Some(rest) = outcome.strip_prefix("deliver:") {
                let (port, host) = rest.split_once(':').unwrap_or((rest, ""));
                out.outcome = "deliver".into();
                out.port = port.into();
                out.host = host.into();
            } else {
                out.outcome = outcome;
            }
        }
        None => match gateway_of(state, &vpc, from) {
            Some((group, members, how)) => {
                out.outcome = "external".into();
                out.via = format!("gateway group {group}: {how}");
                out.gateways = members;
            }
            None => {
                out.outcome = "no_route".into();
                out.via = format!("no subnet or route of VPC {vpc} covers {dst}");
            }
        },
    }
    out
}

/// The gateway group a VM's traffic leaves the VPC by when no subnet or route of the VPC
/// covers the destination (the dataplanes' implicit default route): the group of the
/// VPC's source NAT rule, else the group of the port's floating IP. Returns the group, its
/// members, and how the VM's source is translated.
fn gateway_of(state: &State, vpc: &str, port: &str) -> Option<(String, Vec<String>, String)> {
    let group_members = |name: &str| -> Option<(String, Vec<String>)> {
        match state.get(Kind::GatewayGroup, name)?.spec.as_ref()? {
            Spec::GatewayGroup(g) => Some((
                name.to_string(),
                g.members.iter().map(|m| m.host.clone()).collect(),
            )),
            _ => None,
        }
    };
    let group_of_network = |net: &str| {
        state
            .list(Kind::GatewayGroup)
            .into_iter()
            .find_map(|o| match &o.spec {
                Some(Spec::GatewayGroup(g)) if g.external_network == net => Some(o.name.clone()),
                _ => None,
            })
    };
    let fip = state
        .list(Kind::FloatingIp)
        .into_iter()
        .find_map(|o| match &o.spec {
            Some(Spec::FloatingIp(f)) if f.port == port => Some(f.clone()),
            _ => None,
        });
    let snat = state
        .list(Kind::SnatRule)
        .into_iter()
        .find_map(|o| match &o.spec {
            Some(Spec::SnatRule(r)) if r.vpc == vpc => Some(r.clone()),
            _ => None,
        });
    // The VPC's group (what the dataplanes route by), then how this port is translated.
    let group = match (&snat, &fip) {
        (Some(r), _) => r.gateway_group.clone(),
        (None, Some(f)) => group_of_network(&f.external_network)?,
        (None, None) => {
            // Another port of the VPC with a floating IP also gives the VPC its group.
            let ports: Vec<String> = state
                .list(Kind::Port)
                .into_iter()
                .filter(|o| matches!(&o.spec, Some(Spec::Port(p)) if p.vpc == vpc))
                .map(|o| o.name.clone())
                .collect();
            state
                .list(Kind::FloatingIp)
                .into_iter()
                .find_map(|o| match &o.spec {
                    Some(Spec::FloatingIp(f)) if ports.contains(&f.port) => {
                        group_of_network(&f.external_network)
                    }
                    _ => None,
                })?
        }
    };
    let how = match (&fip, &snat) {
        (Some(f), _) => format!("floating IP {}", f.address),
        (None, Some(r)) => format!("source NAT to {}", r.external_address),
        (None, None) => "no source NAT rule or floating IP for this port".to_string(),
    };
    let (name, members) = group_members(&group)?;
    Some((name, members, how))
}

/// A gateway group's members, highest priority first, and its external network's gateway
/// address (where inbound traffic comes from); `None` if there is no such group.
pub fn group_entry(state: &State, group: &str) -> Option<(Vec<String>, String)> {
    let Spec::GatewayGroup(g) = state.get(Kind::GatewayGroup, group)?.spec.as_ref()? else {
        return None;
    };
    let mut members: Vec<_> = g.members.iter().collect();
    members.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.host.cmp(&b.host)));
    let gateway_ip = match state
        .get(Kind::ExternalNetwork, &g.external_network)
        .and_then(|o| o.spec.as_ref())
    {
        Some(Spec::ExternalNetwork(n)) => n.gateway_ip.clone(),
        _ => String::new(),
    };
    Some((
        members.into_iter().map(|m| m.host.clone()).collect(),
        gateway_ip,
    ))
}

/// The path the desired state gives a packet from the external network to `dst`: a
/// floating IP's port, else (a source NAT address) only replies of existing sessions.
pub fn expected_from_external(state: &State, dst: Ipv4Addr) -> ExpectedPath {
    let fip = state
        .list(Kind::FloatingIp)
        .into_iter()
        .find_map(|o| match &o.spec {
            Some(Spec::FloatingIp(f)) if f.address.parse::<Ipv4Addr>() == Ok(dst) => {
                Some((o.name.clone(), f.clone()))
            }
            _ => None,
        });
    let Some((name, f)) = fip else {
        return ExpectedPath {
            outcome: "no_session".into(),
            via: format!(
                "{dst} is no floating IP: only replies of sessions opened from inside are \
                 translated (the gateway itself answers the rest)"
            ),
            ..Default::default()
        };
    };
    match port_spec(state, &f.port) {
        Some(p) => ExpectedPath {
            outcome: "deliver".into(),
            port: f.port.clone(),
            host: p.host.clone(),
            via: format!("floating IP {name} {dst} of port {}", f.port),
            vpc: p.vpc.clone(),
            ..Default::default()
        },
        None => ExpectedPath {
            outcome: "unknown_port".into(),
            via: format!(
                "floating IP {name} names port {}, which does not exist",
                f.port
            ),
            ..Default::default()
        },
    }
}

/// The drop reasons a dataplane reports for each expected outcome other than delivery.
fn expected_reasons(outcome: &str) -> &'static [&'static str] {
    match outcome {
        "no_port" => &["vpc_no_port"],
        "no_route" => &["vpc_no_route"],
        "blackhole" => &["route_blackhole"],
        "unreachable" => &["route_unreachable"],
        "next_hop_unknown" => &["vpc_next_hop_unknown"],
        "no_session" => &[
            "local_unreachable",
            "local_icmp_ignored",
            "nat_inside_unknown",
        ],
        _ => &[],
    }
}

/// Where the actual trace departs from the expected path, and which hosts apply a stale
/// revision (`applied`: host → revision; only hosts that matter to this probe are named).
pub fn findings(
    expected: &ExpectedPath,
    verdict: &TraceVerdict,
    hosts: &[HostHops],
    desired: u64,
    applied: &[(String, u64)],
    from_host: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut relevant: Vec<&str> = vec![from_host];
    relevant.extend(hosts.iter().map(|h| h.host.as_str()));
    if !expected.host.is_empty() {
        relevant.push(&expected.host);
    }
    for (host, rev) in applied {
        if relevant.contains(&host.as_str()) && *rev < desired {
            out.push(format!(
                "host {host} applied revision {rev}, the desired state is at {desired}"
            ));
        }
    }
    let matches = match expected.outcome.as_str() {
        "deliver" => {
            verdict.outcome == "delivered" && verdict.host == expected.host
                || verdict.reason == "security_group_deny"
                || verdict.reason == "conntrack_invalid"
        }
        "router" => verdict.outcome == "delivered",
        "external" => {
            verdict.outcome == "delivered" && expected.gateways.contains(&verdict.host)
                || verdict.reason == "security_group_deny"
        }
        o => expected_reasons(o).contains(&verdict.reason.as_str()),
    };
    if !matches {
        let want = match expected.outcome.as_str() {
            "deliver" => format!(
                "delivery to port {} on host {} ({})",
                expected.port, expected.host, expected.via
            ),
            "external" => format!(
                "the external network through {} ({})",
                expected.gateways.join(" or "),
                expected.via
            ),
            o => format!("{o} ({})", expected.via),
        };
        let got = match verdict.outcome.as_str() {
            "dropped" => format!(
                "dropped on host {} at {} ({})",
                verdict.host, verdict.node, verdict.reason
            ),
            "delivered" => format!("delivered on host {} to {}", verdict.host, verdict.port),
            _ => format!("lost after host {} ({})", verdict.host, verdict.detail),
        };
        let first = if verdict.host.is_empty() {
            from_host
        } else {
            verdict.host.as_str()
        };
        out.push(format!(
            "the desired state expects {want}; the probe was {got}: the paths diverge on host {first}"
        ));
        if let Some((_, rev)) = applied.iter().find(|(h, _)| h == first) {
            if *rev < desired {
                out.push(format!(
                    "host {first} forwards with revision {rev}; the desired state is at {desired} — its state is stale"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use aegis_api::controlplane::v1::{
        ExternalNetwork, FloatingIp, GatewayGroup, GatewayMember, Host, HostRole, Object, SnatRule,
        Subnet, Vpc,
    };

    use super::*;
    use crate::model::state::Command;

    fn put(s: &mut State, name: &str, spec: Spec) {
        let object = Object {
            name: name.into(),
            spec: Some(spec),
            ..Object::default()
        };
        s.apply(&Command::Create { object })
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }

    /// Hosts c1 (compute), g1 and g2 (gateways); VPCs blue (with source NAT through gw)
    /// and red (none); ports b1 (blue, floating IP 203.0.113.20) and r1 (red).
    fn world() -> State {
        let mut s = State::new();
        let host = |role: HostRole| {
            Spec::Host(Host {
                role: role as i32,
                ..Host::default()
            })
        };
        put(&mut s, "c1", host(HostRole::Compute));
        put(&mut s, "g1", host(HostRole::Gateway));
        put(&mut s, "g2", host(HostRole::Gateway));
        for (name, vni) in [("blue", 100), ("red", 200)] {
            put(
                &mut s,
                name,
                Spec::Vpc(Vpc {
                    vni,
                    ..Vpc::default()
                }),
            );
        }
        for (name, vpc) in [("blue-a", "blue"), ("red-a", "red")] {
            let spec = Spec::Subnet(Subnet {
                vpc: vpc.into(),
                cidr: "10.1.1.0/24".into(),
                gateway_ip: "10.1.1.1".into(),
            });
            put(&mut s, name, spec);
        }
        for (name, vpc, mac) in [
            ("b1", "blue", "02:00:00:00:01:01"),
            ("r1", "red", "02:00:00:00:02:01"),
        ] {
            let spec = Spec::Port(Port {
                vpc: vpc.into(),
                subnet: format!("{vpc}-a"),
                mac: mac.into(),
                ips: vec!["10.1.1.11".into()],
                host: "c1".into(),
                device: format!("vm-{name}"),
                security_groups: vec![],
            });
            put(&mut s, name, spec);
        }
        let ext = Spec::ExternalNetwork(ExternalNetwork {
            cidr: "203.0.113.0/24".into(),
            gateway_ip: "203.0.113.1".into(),
            vlan: 0,
        });
        put(&mut s, "ext", ext);
        let member = |host: &str, priority| GatewayMember {
            host: host.into(),
            priority,
        };
        let group = Spec::GatewayGroup(GatewayGroup {
            external_network: "ext".into(),
            members: vec![member("g2", 100), member("g1", 200)],
            external_addresses: vec!["203.0.113.10".into()],
            vrid: 71,
            tunnel_address: "10.88.0.100".into(),
            ..Default::default()
        });
        put(&mut s, "gw", group);
        let snat = Spec::SnatRule(SnatRule {
            vpc: "blue".into(),
            subnet: String::new(),
            gateway_group: "gw".into(),
            external_address: "203.0.113.10".into(),
        });
        put(&mut s, "blue-out", snat);
        let fip = Spec::FloatingIp(FloatingIp {
            external_network: "ext".into(),
            address: "203.0.113.20".into(),
            port: "b1".into(),
            fixed_ip: String::new(),
        });
        put(&mut s, "b1-fip", fip);
        s
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_vpc_with_a_gateway_group_expects_the_outside_through_its_members() {
        let s = world();
        let e = expected(&s, "b1", ip("198.51.100.7"));
        assert_eq!(e.outcome, "external");
        assert_eq!(e.gateways, ["g2", "g1"]);
        assert!(e.via.contains("floating IP 203.0.113.20"), "{}", e.via);
        // A VPC without a gateway group has no route out.
        assert_eq!(expected(&s, "r1", ip("198.51.100.7")).outcome, "no_route");
        // Delivered on the MASTER (either member) matches; a drop on the source host does not.
        let delivered = TraceVerdict {
            outcome: "delivered".into(),
            host: "g1".into(),
            port: "ext0".into(),
            ..TraceVerdict::default()
        };
        assert!(findings(&e, &delivered, &[], 5, &[], "c1").is_empty());
        let dropped = TraceVerdict {
            outcome: "dropped".into(),
            host: "g1".into(),
            node: "gateway-output".into(),
            reason: "nat_no_rule".into(),
            ..TraceVerdict::default()
        };
        let f = findings(&e, &dropped, &[], 5, &[], "c1");
        assert!(f[0].contains("diverge on host g1"), "{f:?}");
    }

    #[test]
    fn from_outside_a_floating_ip_is_expected_at_its_port_and_members_by_priority() {
        let s = world();
        let (members, gw) = group_entry(&s, "gw").expect("group gw");
        assert_eq!(members, ["g1", "g2"], "highest priority first");
        assert_eq!(gw, "203.0.113.1");
        assert!(group_entry(&s, "nope").is_none());
        let e = expected_from_external(&s, ip("203.0.113.20"));
        assert_eq!(
            (e.outcome.as_str(), e.port.as_str(), e.host.as_str()),
            ("deliver", "b1", "c1")
        );
        assert_eq!(
            expected_from_external(&s, ip("203.0.113.10")).outcome,
            "no_session"
        );
    }
}
