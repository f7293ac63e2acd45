//! Human tables and JSON for the control-plane commands.

use std::io::Write;

use aegis_api::controlplane::v1::{
    object::Spec, Direction, EventType, HostRole, Kind, ListHostsResponse, ListResponse, Member,
    Object, RouteAction, RuleAction, StatusResponse, WatchResponse, WriteResponse,
};
use serde::Serialize;

use super::Output;
use crate::error::CliError;
use crate::model::kind::{kind_name, kind_of};
use crate::table::{Align, Table};

/// Pretty JSON and a newline.
pub fn json<T: Serialize>(out: &mut dyn Write, v: &T) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

/// The answer to a write.
pub fn written(
    out: &mut dyn Write,
    output: Output,
    verb: &str,
    r: &WriteResponse,
) -> Result<(), CliError> {
    match output {
        Output::Json => json(out, r),
        Output::Table => {
            let (kind, name) = r
                .object
                .as_ref()
                .map_or(("object", ""), |o| (kind_name(kind_of(o)), o.name.as_str()));
            writeln!(out, "{kind} {name} {verb} (revision {})", r.revision)?;
            Ok(())
        }
    }
}

/// A gateway group's VRRP settings, defaults filled in: `v3 100ms unicast preempt`.
pub fn group_vrrp(g: &aegis_api::controlplane::v1::GatewayGroup) -> String {
    use aegis_api::controlplane::v1::VrrpTransport;
    let interval = match g.advert_interval_ms {
        0 => crate::model::validate::DEFAULT_ADVERT_INTERVAL_MS,
        ms => ms,
    };
    let transport = match VrrpTransport::try_from(g.vrrp_transport) {
        Ok(VrrpTransport::Unspecified) => "auto".to_owned(),
        Ok(VrrpTransport::Unicast) => "unicast".to_owned(),
        Ok(VrrpTransport::Multicast) => "multicast".to_owned(),
        Err(_) => format!("transport {}", g.vrrp_transport),
    };
    let preempt = if g.no_preempt {
        "nopreempt".to_owned()
    } else if g.preempt_delay_ms > 0 {
        format!("preempt after {}ms", g.preempt_delay_ms)
    } else {
        "preempt".to_owned()
    };
    format!(
        "v{} {interval}ms {transport} {preempt}",
        if g.vrrp_version == 0 {
            3
        } else {
            g.vrrp_version
        }
    )
}

fn role_name(role: i32) -> &'static str {
    match HostRole::try_from(role) {
        Ok(HostRole::Compute) => "compute",
        Ok(HostRole::Gateway) => "gateway",
        _ => "-",
    }
}

/// A one-line description of an object's spec.
pub fn summary(o: &Object) -> String {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    match &o.spec {
        Some(Spec::Host(h)) => format!(
            "role={} underlay={} management={} addresses=[{}] networks=[{}]",
            role_name(h.role),
            or_dash(&h.underlay_address),
            or_dash(&h.management_address),
            h.addresses
                .iter()
                .map(|a| format!("{}={}", a.port, a.address))
                .collect::<Vec<_>>()
                .join(" "),
            h.networks
                .iter()
                .map(|n| format!("{}={}", n.name, n.interface))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(Spec::Vpc(v)) => format!("vni={} {}", v.vni, v.description),
        Some(Spec::Subnet(s)) => format!("vpc={} cidr={} gateway={}", s.vpc, s.cidr, s.gateway_ip),
        Some(Spec::Port(p)) => format!(
            "vpc={} subnet={} mac={} ips={} host={} device={} groups=[{}]",
            p.vpc,
            p.subnet,
            p.mac,
            p.ips.join(","),
            or_dash(&p.host),
            or_dash(&p.device),
            p.security_groups.join(" ")
        ),
        Some(Spec::Route(r)) => {
            let scope = if r.vpc.is_empty() {
                format!("host={}", r.host)
            } else {
                format!("vpc={}", r.vpc)
            };
            let target = match RouteAction::try_from(r.action) {
                Ok(RouteAction::Blackhole) => "blackhole".to_owned(),
                Ok(RouteAction::Unreachable) => "unreachable".to_owned(),
                _ => format!("via {}", r.next_hop),
            };
            format!("{scope} {} {target}", r.prefix)
        }
        Some(Spec::SecurityGroup(g)) => g
            .rules
            .iter()
            .map(|r| {
                format!(
                    "{}:{}/{}/{}{}/{}/p{}/{}",
                    r.id,
                    if r.direction == Direction::Ingress as i32 {
                        "in"
                    } else {
                        "out"
                    },
                    r.protocol,
                    if r.port_min == 0 {
                        "*".to_owned()
                    } else {
                        format!("{}-{}", r.port_min, r.port_max)
                    },
                    "",
                    if !r.remote_group.is_empty() {
                        format!("group {}", r.remote_group)
                    } else if r.remote_cidr.is_empty() {
                        "any".to_owned()
                    } else {
                        r.remote_cidr.clone()
                    },
                    r.priority,
                    if r.action == RuleAction::Deny as i32 {
                        "deny"
                    } else {
                        "allow"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(Spec::ExternalNetwork(e)) => {
            format!("cidr={} gateway={} vlan={}", e.cidr, e.gateway_ip, e.vlan)
        }
        Some(Spec::GatewayGroup(g)) => format!(
            "external-network={} vrid={} vrrp=[{}] members=[{}] addresses=[{}] tunnel={} standbys={} sync=[{}]",
            g.external_network,
            g.vrid,
            group_vrrp(g),
            g.members
                .iter()
                .map(|m| format!("{}:{}", m.host, m.priority))
                .collect::<Vec<_>>()
                .join(" "),
            g.external_addresses.join(" "),
            or_dash(&g.tunnel_address),
            g.standby_count.max(1),
            g.sync_assignment
                .as_ref()
                .map(|a| format!("{} gen {}", a.members.join(" "), a.generation))
                .unwrap_or_else(|| "not chosen yet".into())
        ),
        Some(Spec::FloatingIp(f)) => format!(
            "{} -> port {} {} (external-network {})",
            f.address,
            f.port,
            or_dash(&f.fixed_ip),
            f.external_network
        ),
        Some(Spec::SnatRule(s)) => format!(
            "vpc={} subnet={} -> {} via gateway-group {}",
            s.vpc,
            or_dash(&s.subnet),
            s.external_address,
            s.gateway_group
        ),
        None => String::new(),
    }
}

/// A list of objects.
pub fn list(
    out: &mut dyn Write,
    output: Output,
    kind: Kind,
    r: &ListResponse,
) -> Result<(), CliError> {
    if output == Output::Json {
        return json(out, r);
    }
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("REVISION", Align::Right),
        ("SPEC", Align::Left),
    ]);
    for o in &r.objects {
        t.row(vec![
            o.name.clone(),
            o.modified_revision.to_string(),
            summary(o),
        ]);
    }
    if t.is_empty() {
        writeln!(out, "no {} (revision {})", kind_name(kind), r.revision)?;
    } else {
        t.write(out, 0)?;
    }
    Ok(())
}

/// One object, field by field.
pub fn object_detail(out: &mut dyn Write, o: Option<&Object>) -> Result<(), CliError> {
    let Some(o) = o else {
        return Ok(());
    };
    writeln!(out, "{} {}", kind_name(kind_of(o)), o.name)?;
    writeln!(
        out,
        "  created at revision {}, modified at {}",
        o.created_revision, o.modified_revision
    )?;
    writeln!(out, "  {}", summary(o))?;
    Ok(())
}

/// The monitoring table: every host with liveness, load, links, applied revision and the
/// dataplane's diagnostics address.
pub fn host_table(
    out: &mut dyn Write,
    hosts: &[Object],
    status: Option<&ListHostsResponse>,
) -> Result<(), CliError> {
    let mut networks: Vec<String> = Vec::new();
    for h in hosts {
        if let Some(Spec::Host(spec)) = &h.spec {
            for n in &spec.networks {
                if !networks.contains(&n.name) {
                    networks.push(n.name.clone());
                }
            }
        }
    }
    let mut t = Table::new(&[
        ("NODE", Align::Left),
        ("ROLE", Align::Left),
        ("STATE", Align::Left),
        ("CPU%", Align::Right),
        ("MEM%", Align::Right),
        ("APPLIED", Align::Right),
        ("LAST SEEN", Align::Right),
        ("DIAG", Align::Left),
        ("NETWORKS", Align::Left),
    ]);
    for h in hosts {
        let role = match &h.spec {
            Some(Spec::Host(spec)) => role_name(spec.role),
            _ => "-",
        };
        let s = status.and_then(|s| s.hosts.iter().find(|x| x.name == h.name));
        let mut row = vec![h.name.clone(), role.to_owned()];
        match s {
            Some(s) if !s.never_seen => {
                row.push(if s.alive { "up" } else { "DOWN" }.to_owned());
                row.push(format!("{:.1}", s.cpu_percent));
                row.push(format!("{:.1}", s.memory_percent));
                let stale = s.applied_revision < h.modified_revision;
                row.push(format!(
                    "{}{}",
                    s.applied_revision,
                    if stale { "*" } else { "" }
                ));
                row.push(format!("{:.1}s", s.last_seen_ms_ago as f64 / 1000.0));
                row.push(if s.diag_address.is_empty() {
                    "-".to_owned()
                } else {
                    s.diag_address.clone()
                });
                let nets: Vec<String> = networks
                    .iter()
                    .filter_map(|n| {
                        let link = s.links.iter().find(|l| &l.network == n)?;
                        Some(format!(
                            "{n} {}",
                            if link.up && link.present {
                                "✓"
                            } else {
                                "✗"
                            }
                        ))
                    })
                    .collect();
                row.push(nets.join("  "));
                if !s.apply_error.is_empty() {
                    let last = row.len() - 1;
                    row[last] = format!("{}  apply error: {}", row[last], s.apply_error);
                }
                for w in &s.warnings {
                    let last = row.len() - 1;
                    row[last] = format!("{}  warning: {w}", row[last]);
                }
            }
            Some(_) => row.extend([
                "never seen".to_owned(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                String::new(),
            ]),
            None => row.extend([
                "unknown".to_owned(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                String::new(),
            ]),
        }
        t.row(row);
    }
    if t.is_empty() {
        writeln!(out, "no hosts")?;
        return Ok(());
    }
    t.write(out, 0)?;
    if let Some(s) = status {
        writeln!(
            out,
            "revision {}; a host is DOWN after {:.1}s without a heartbeat",
            s.revision,
            s.down_after_ms as f64 / 1000.0
        )?;
    } else {
        writeln!(out, "(liveness unavailable: no leader)")?;
    }
    Ok(())
}

/// One watch message.
pub fn watch_message(
    out: &mut dyn Write,
    output: Output,
    m: &WatchResponse,
) -> Result<(), CliError> {
    if output == Output::Json {
        serde_json::to_writer(&mut *out, m)?;
        writeln!(out)?;
        return Ok(());
    }
    if m.resync {
        writeln!(
            out,
            "resync at revision {}: {} objects",
            m.revision,
            m.objects.len()
        )?;
        for o in &m.objects {
            writeln!(
                out,
                "  {} {}: {}",
                kind_name(kind_of(o)),
                o.name,
                summary(o)
            )?;
        }
    } else if m.events.is_empty() {
        writeln!(out, "progress: revision {}", m.revision)?;
    }
    for e in &m.events {
        let ty = if e.r#type == EventType::Delete as i32 {
            "DELETE"
        } else {
            "PUT"
        };
        let (kind, name, text) = e
            .object
            .as_ref()
            .map_or(("object", "", String::new()), |o| {
                (kind_name(kind_of(o)), o.name.as_str(), summary(o))
            });
        writeln!(out, "{:>6} {ty:<6} {kind} {name}: {text}", e.revision)?;
    }
    Ok(())
}

/// The cluster view of a node.
pub fn cluster_status(out: &mut dyn Write, s: &StatusResponse) -> Result<(), CliError> {
    writeln!(out, "node {} is {} (term {})", s.node_id, s.state, s.term)?;
    if s.leader_id != 0 {
        writeln!(out, "leader: node {} at {}", s.leader_id, s.leader_address)?;
    } else {
        writeln!(out, "leader: none")?;
    }
    writeln!(
        out,
        "log: last index {}, applied {}; desired-state revision {}",
        s.last_log_index, s.last_applied_index, s.revision
    )?;
    if !s.cluster_ip.is_empty() {
        writeln!(
            out,
            "cluster IP {}: {}",
            s.cluster_ip,
            if s.holds_cluster_ip {
                "held by this node"
            } else {
                "not held by this node"
            }
        )?;
    }
    members(out, &s.members)
}

/// Cluster members.
pub fn members(out: &mut dyn Write, members: &[Member]) -> Result<(), CliError> {
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("ADDRESS", Align::Left),
        ("VOTER", Align::Left),
        ("MATCHED", Align::Right),
    ]);
    for m in members {
        t.row(vec![
            m.id.to_string(),
            m.address.clone(),
            if m.voter { "yes" } else { "learner" }.to_owned(),
            m.matched_index.to_string(),
        ]);
    }
    t.write(out, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_api::controlplane::v1::{Host, HostNetwork, HostStatus, LinkStatus};

    fn host(name: &str, role: HostRole) -> Object {
        Object {
            name: name.into(),
            spec: Some(Spec::Host(Host {
                role: role as i32,
                networks: vec![HostNetwork {
                    name: "underlay".into(),
                    interface: "ul0".into(),
                }],
                ..Host::default()
            })),
            ..Object::default()
        }
    }

    /// `host list`: a live host's load, revision and links, with its apply error and each
    /// warning of its heartbeat on its line; a host never heard from says so.
    #[test]
    fn host_table_shows_apply_errors_and_warnings() {
        let hosts = [
            host("gw1", HostRole::Gateway),
            host("c1", HostRole::Compute),
        ];
        let status = ListHostsResponse {
            hosts: vec![
                HostStatus {
                    name: "gw1".into(),
                    alive: true,
                    applied_revision: 9,
                    cpu_percent: 3.25,
                    last_seen_ms_ago: 400,
                    links: vec![LinkStatus {
                        network: "underlay".into(),
                        interface: "ul0".into(),
                        up: true,
                        present: true,
                    }],
                    warnings: vec![
                        "NAT conflict floating IP fip1 clashes".into(),
                        "NAT conflict source NAT rule s1 clashes".into(),
                    ],
                    ..HostStatus::default()
                },
                HostStatus {
                    name: "c1".into(),
                    never_seen: true,
                    ..HostStatus::default()
                },
            ],
            revision: 9,
            down_after_ms: 3000,
        };
        let mut out = Vec::new();
        host_table(&mut out, &hosts, Some(&status)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let gw = text.lines().find(|l| l.starts_with("gw1")).expect(&text);
        for part in [
            " up ",
            "3.2",
            " 9 ",
            "0.4s",
            "underlay ✓",
            "  warning: NAT conflict floating IP fip1 clashes",
            "  warning: NAT conflict source NAT rule s1 clashes",
        ] {
            assert!(gw.contains(part), "{part:?} not in {gw:?}");
        }
        assert!(!gw.contains("apply error"), "{gw}");
        let c1 = text.lines().find(|l| l.starts_with("c1")).expect(&text);
        assert!(c1.contains("never seen"), "{c1}");
        assert!(text.contains("a host is DOWN after 3.0s"), "{text}");

        let mut failing = status.clone();
        failing.hosts[0].apply_error = "revision 9: port b1 on a missing device".into();
        failing.hosts[0].warnings.clear();
        let mut out = Vec::new();
        host_table(&mut out, &hosts, Some(&failing)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("  apply error: revision 9: port b1 on a missing device"),
            "{text}"
        );
        assert!(!text.contains("warning"), "{text}");
    }
}
