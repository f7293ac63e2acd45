//! Backend values → protobuf replies, including what the server computes on the way:
//! per-node ratios, the per-node and per-reason totals over all workers, and the VPC
//! filter of `ShowVpcs`.

use aegis_api::dataplane::v1 as pb;

use super::backend::AdminError;
use super::cidr::format_mac;
use super::types::{
    ConnectionInfo, DenialCount, InterfaceInfo, NeighbourInfo, NeighbourState, NodeRuntime,
    OverlayInfo, PollMode, PortLocation, RouteInfo, RouteKind, RouteOrigin, Status, SyncInfo,
    VpcInfo, VpcRouteTarget, VrrpInfo, WorkerConnections, WorkerErrors, WorkerNatSessions,
    WorkerRuntime,
};

/// `GetStatus` reply; `version` is the server's own.
pub fn status_reply(s: Status, version: &str) -> pb::GetStatusReply {
    pb::GetStatusReply {
        revision: s.revision,
        uptime_seconds: s.uptime.as_secs_f64(),
        version: version.to_string(),
        poll_mode: match s.poll_mode {
            PollMode::Busy => pb::PollMode::Busy,
            PollMode::Adaptive => pb::PollMode::Adaptive,
        } as i32,
        workers: s
            .workers
            .iter()
            .map(|w| pb::WorkerInfo {
                id: w.id,
                lcore: w.lcore,
            })
            .collect(),
        controlplane: s.controlplane.map(|c| pb::ControlPlaneStatus {
            servers: c.servers,
            host: c.host,
            connected: c.connected,
            applied_revision: c.applied_revision,
            apply_error: c.apply_error,
            received_revision: c.received_revision,
            from_cache: c.from_cache,
            nat_conflicts: c.nat_conflicts,
        }),
    }
}

/// `ShowInterfaces` reply.
pub fn interfaces_reply(ports: Vec<InterfaceInfo>) -> pb::ShowInterfacesReply {
    pb::ShowInterfacesReply {
        interfaces: ports.into_iter().map(interface).collect(),
    }
}

fn interface(p: InterfaceInfo) -> pb::Interface {
    let c = p.counters;
    pb::Interface {
        index: u32::from(p.index),
        name: p.name,
        devargs: p.devargs,
        mac: format_mac(&p.mac),
        mtu: u32::from(p.mtu),
        admin_up: p.admin_up,
        link_up: p.link_up,
        link_speed_mbps: p.link_speed_mbps,
        addresses: p.addresses.iter().map(ToString::to_string).collect(),
        counters: Some(pb::InterfaceCounters {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            rx_missed: c.rx_missed,
            rx_errors: c.rx_errors,
            tx_errors: c.tx_errors,
            rx_nombuf: c.rx_nombuf,
        }),
        endpoint: p.endpoint.unwrap_or_default(),
    }
}

/// `ShowRuntime` reply with ratios and per-node totals (first-seen node order).
pub fn runtime_reply(workers: Vec<WorkerRuntime>) -> pb::ShowRuntimeReply {
    let mut total: Vec<NodeRuntime> = Vec::new();
    for node in workers.iter().flat_map(|w| &w.nodes) {
        match total.iter_mut().find(|t| t.name == node.name) {
            Some(t) => {
                t.calls = t.calls.saturating_add(node.calls);
                t.vectors = t.vectors.saturating_add(node.vectors);
                t.clocks = t.clocks.saturating_add(node.clocks);
            }
            None => total.push(node.clone()),
        }
    }
    pb::ShowRuntimeReply {
        workers: workers
            .into_iter()
            .map(|w| pb::WorkerRuntime {
                id: w.id,
                lcore: w.lcore,
                polls: w.polls,
                idle_polls: w.idle_polls,
                sleeps: w.sleeps,
                nodes: w.nodes.into_iter().map(node_runtime).collect(),
                consumed: w.consumed,
                icmp_sent: w.icmp_sent,
                icmp_rate_limited: w.icmp_rate_limited,
                connections: w.connections,
                connection_capacity: w.connection_capacity,
                nat_sessions: w.nat_sessions,
                nat_sessions_revoked: w.nat_sessions_revoked,
            })
            .collect(),
        total: total.into_iter().map(node_runtime).collect(),
    }
}

fn node_runtime(n: NodeRuntime) -> pb::NodeRuntime {
    pb::NodeRuntime {
        vectors_per_call: ratio(n.vectors, n.calls),
        clocks_per_packet: ratio(n.clocks, n.vectors),
        name: n.name,
        calls: n.calls,
        vectors: n.vectors,
        clocks: n.clocks,
    }
}

/// `num / den`, 0 when `den` is 0.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// `ShowErrors` reply with per-reason totals (first-seen reason order).
pub fn errors_reply(workers: Vec<WorkerErrors>) -> pb::ShowErrorsReply {
    let mut total: Vec<pb::ErrorCounter> = Vec::new();
    for c in workers.iter().flat_map(|w| &w.counts) {
        match total.iter_mut().find(|t| t.reason == c.reason) {
            Some(t) => t.count = t.count.saturating_add(c.count),
            None => total.push(pb::ErrorCounter {
                reason: c.reason.clone(),
                description: c.description.clone(),
                count: c.count,
            }),
        }
    }
    pb::ShowErrorsReply {
        workers: workers
            .into_iter()
            .map(|w| pb::WorkerErrors {
                worker: w.worker,
                counters: w
                    .counts
                    .into_iter()
                    .map(|c| pb::ErrorCounter {
                        reason: c.reason,
                        description: c.description,
                        count: c.count,
                    })
                    .collect(),
            })
            .collect(),
        total,
    }
}

/// `ShowRoutes` reply.
pub fn routes_reply(routes: Vec<RouteInfo>) -> pb::ShowRoutesReply {
    pb::ShowRoutesReply {
        routes: routes.into_iter().map(route).collect(),
    }
}

fn route(r: RouteInfo) -> pb::Route {
    pb::Route {
        prefix: r.prefix.to_string(),
        kind: route_kind(r.kind) as i32,
        next_hop: r.next_hop.map(|ip| ip.to_string()).unwrap_or_default(),
        port: r.port.unwrap_or_default(),
        origin: match r.origin {
            RouteOrigin::Static => pb::RouteOrigin::Static,
            RouteOrigin::Connected => pb::RouteOrigin::Connected,
            RouteOrigin::ControlPlane => pb::RouteOrigin::Controlplane,
        } as i32,
    }
}

/// The wire value of a route kind.
pub fn route_kind(k: RouteKind) -> pb::RouteKind {
    match k {
        RouteKind::Local => pb::RouteKind::Local,
        RouteKind::Connected => pb::RouteKind::Connected,
        RouteKind::Gateway => pb::RouteKind::Gateway,
        RouteKind::Blackhole => pb::RouteKind::Blackhole,
        RouteKind::Unreachable => pb::RouteKind::Unreachable,
    }
}

/// `ShowNeighbours` reply.
pub fn neighbours_reply(neighbours: Vec<NeighbourInfo>) -> pb::ShowNeighboursReply {
    pb::ShowNeighboursReply {
        neighbours: neighbours.into_iter().map(neighbour).collect(),
    }
}

fn neighbour(n: NeighbourInfo) -> pb::Neighbour {
    pb::Neighbour {
        port: n.port,
        ip: n.ip.to_string(),
        mac: n.mac.as_ref().map(format_mac).unwrap_or_default(),
        state: match n.state {
            NeighbourState::Incomplete => pb::NeighbourState::Incomplete,
            NeighbourState::Reachable => pb::NeighbourState::Reachable,
            NeighbourState::Stale => pb::NeighbourState::Stale,
            NeighbourState::Failed => pb::NeighbourState::Failed,
            NeighbourState::Static => pb::NeighbourState::Static,
        } as i32,
        age_seconds: n.age.as_secs_f64(),
    }
}

/// `ShowNatSessions` reply.
pub fn nat_sessions_reply(workers: Vec<WorkerNatSessions>) -> pb::ShowNatSessionsReply {
    pb::ShowNatSessionsReply {
        workers: workers
            .into_iter()
            .map(|w| pb::WorkerNatSessions {
                worker: w.worker,
                enabled: w.enabled,
                entries: w.entries,
                capacity: w.capacity,
                matched: w.matched,
                sessions: w
                    .sessions
                    .into_iter()
                    .map(|s| pb::NatSession {
                        vpc: s.vpc.unwrap_or_default(),
                        vni: s.vni,
                        protocol: u32::from(s.protocol),
                        inside_ip: s.inside.0.to_string(),
                        inside_port: u32::from(s.inside.1),
                        outside_ip: s.outside.0.to_string(),
                        outside_port: u32::from(s.outside.1),
                        remote_ip: s.remote.0.to_string(),
                        remote_port: u32::from(s.remote.1),
                        kind: s.kind.to_string(),
                        state: s.state.to_string(),
                        expires_ms: s.expires.as_millis() as u64,
                    })
                    .collect(),
                error: w.error.unwrap_or_default(),
            })
            .collect(),
    }
}

/// `ShowConnections` reply.
pub fn connections_reply(workers: Vec<WorkerConnections>) -> pb::ShowConnectionsReply {
    pb::ShowConnectionsReply {
        workers: workers
            .into_iter()
            .map(|w| pb::WorkerConnections {
                worker: w.worker,
                entries: w.entries,
                capacity: w.capacity,
                matched: w.matched,
                connections: w.connections.into_iter().map(connection).collect(),
                error: w.error.unwrap_or_default(),
            })
            .collect(),
    }
}

fn connection(c: ConnectionInfo) -> pb::Connection {
    pb::Connection {
        port: c.port,
        endpoint: c.endpoint.unwrap_or_default(),
        protocol: u32::from(c.protocol),
        src_ip: c.src.to_string(),
        src_port: u32::from(c.src_port),
        dst_ip: c.dst.to_string(),
        dst_port: u32::from(c.dst_port),
        state: c.state.name().to_string(),
        expires_seconds: c.expires.as_secs_f64(),
        packets_orig: c.packets[0],
        packets_reply: c.packets[1],
        bytes_orig: c.bytes[0],
        bytes_reply: c.bytes[1],
    }
}

/// `ShowVpcs` reply: every VPC, or only the one named `vpc` (`NotFound` if there is none).
pub fn vpcs_reply(o: OverlayInfo, vpc: &str) -> Result<pb::ShowVpcsReply, AdminError> {
    let vpcs: Vec<VpcInfo> = if vpc.is_empty() {
        o.vpcs
    } else {
        let one: Vec<VpcInfo> = o.vpcs.into_iter().filter(|v| v.name == vpc).collect();
        if one.is_empty() {
            return Err(AdminError::not_found(
                "vpc",
                format!("this host knows no VPC named {vpc:?}"),
            ));
        }
        one
    };
    Ok(pb::ShowVpcsReply {
        revision: o.revision,
        underlay_ip: o.underlay_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        mtu: u32::from(o.mtu),
        vpcs: vpcs.into_iter().map(vpc_reply).collect(),
    })
}

fn vpc_reply(v: VpcInfo) -> pb::Vpc {
    pb::Vpc {
        name: v.name,
        vni: v.vni,
        subnets: v
            .subnets
            .into_iter()
            .map(|s| pb::VpcSubnet {
                name: s.name,
                cidr: s.cidr.to_string(),
                gateway: s.gateway.to_string(),
            })
            .collect(),
        routes: v
            .routes
            .into_iter()
            .map(|r| {
                let (kind, port) = match r.target {
                    VpcRouteTarget::Port(p) => (pb::VpcRouteKind::Port, p),
                    VpcRouteTarget::NextHopUnknown => (pb::VpcRouteKind::NextHopUnknown, "".into()),
                    VpcRouteTarget::Blackhole => (pb::VpcRouteKind::Blackhole, "".into()),
                    VpcRouteTarget::Unreachable => (pb::VpcRouteKind::Unreachable, "".into()),
                };
                pb::VpcRoute {
                    prefix: r.prefix.to_string(),
                    kind: kind as i32,
                    port,
                }
            })
            .collect(),
        ports: v
            .ports
            .into_iter()
            .map(|p| {
                let (location, device, host_ip) = match p.location {
                    PortLocation::Local(dev) => (pb::PortLocation::Local, dev, String::new()),
                    PortLocation::Remote(ip) => {
                        (pb::PortLocation::Remote, String::new(), ip.to_string())
                    }
                    PortLocation::Unplaced => {
                        (pb::PortLocation::Unplaced, String::new(), String::new())
                    }
                };
                pb::VpcPort {
                    name: p.name,
                    subnet: p.subnet,
                    mac: format_mac(&p.mac),
                    ips: p.ips.iter().map(ToString::to_string).collect(),
                    location: location as i32,
                    device,
                    host_ip,
                }
            })
            .collect(),
    }
}

/// `ShowSecurityDenials` reply.
pub fn denials_reply(denials: Vec<DenialCount>) -> pb::ShowSecurityDenialsReply {
    pb::ShowSecurityDenialsReply {
        denials: denials
            .into_iter()
            .map(|d| pb::SecurityDenial {
                rule: d.rule,
                count: d.count,
            })
            .collect(),
    }
}

/// `ShowVrrp` reply.
pub fn vrrp_reply(info: VrrpInfo) -> pb::ShowVrrpReply {
    let named = |v: Vec<(String, u64)>| {
        v.into_iter()
            .map(|(name, count)| pb::NamedCount { name, count })
            .collect()
    };
    pb::ShowVrrpReply {
        instances: info
            .instances
            .into_iter()
            .map(|i| pb::VrrpInstance {
                name: i.name,
                port: i.port,
                vrid: u32::from(i.vrid),
                version: u32::from(i.version),
                state: i.state,
                priority: u32::from(i.priority),
                effective_priority: u32::from(i.effective_priority),
                interval_ms: i.interval.as_millis() as u32,
                preempt: i.preempt,
                addresses: i.addresses.iter().map(|a| a.to_string()).collect(),
                master: i.master.map(|m| m.to_string()).unwrap_or_default(),
                master_priority: u32::from(i.master_priority),
                in_state_ms: i.in_state.as_millis() as u64,
                last_cause: i.last_cause,
                transitions: i.transitions,
                became_master: i.became_master,
                adverts_rx: i.adverts_rx,
                adverts_tx: i.adverts_tx,
                priority_zero_rx: i.priority_zero_rx,
                priority_zero_tx: i.priority_zero_tx,
                discards: named(i.discards),
                sync_group: i.sync_group.unwrap_or_default(),
                source: i.source,
                peers: i.peers.iter().map(|p| p.to_string()).collect(),
            })
            .collect(),
        rx_errors: named(info.rx_errors),
        problems: info.problems,
    }
}

/// `ShowSync` reply (`None`: the host runs no session sync).
pub fn sync_reply(info: Option<SyncInfo>) -> pb::ShowSyncReply {
    let Some(i) = info else {
        return pb::ShowSyncReply::default();
    };
    let addr = |a: Option<std::net::Ipv4Addr>| a.map(|a| a.to_string()).unwrap_or_default();
    pb::ShowSyncReply {
        configured: true,
        role: i.role,
        group: i.group,
        address: addr(i.address),
        udp_port: u32::from(i.udp_port),
        vrrp_instance: i.vrrp_instance,
        in_role_ms: i.in_role.as_millis() as u64,
        role_changes: i.role_changes,
        peers_from: i.peers_from,
        stream_to: i.stream_to.iter().map(ToString::to_string).collect(),
        spare: i.spare,
        peer_changes: i.peer_changes,
        sessions: i.sessions,
        synced: i.synced,
        master: addr(i.master),
        peers: i
            .peers
            .into_iter()
            .map(|p| pb::SyncPeer {
                address: p.address.to_string(),
                lag: p.lag,
                oldest_unacked_ms: p.oldest_unacked.map_or(0, |d| d.as_millis() as u64),
                events: p.events,
                datagrams: p.datagrams,
                resends: p.resends,
                acks: p.acks,
                bulk_resyncs: p.bulk_resyncs,
                bulk_sessions: p.bulk_sessions,
            })
            .collect(),
        applied: i.applied,
        events_applied: i.events_applied,
        duplicates: i.duplicates,
        out_of_order: i.out_of_order,
        bulk_completed: i.bulk_completed,
        resync_requests: i.resync_requests,
        installs_pushed: i.installs_pushed,
        installs_done: i.installs_done,
        installs_failed: i.installs_failed,
        events_lost: i.events_lost,
        tx_datagrams: i.tx_datagrams,
        rx_datagrams: i.rx_datagrams,
        tx_unresolved: i.tx_unresolved,
        tx_queue_full: i.tx_queue_full,
        rx_unknown_peer: i.rx_unknown_peer,
        rejected: i
            .rejected
            .into_iter()
            .map(|(name, count)| pb::NamedCount { name, count })
            .collect(),
        has_last_commit: i.last_commit.is_some(),
        last_commit_sessions: i.last_commit.map_or(0, |c| c.0),
        last_commit_us: i.last_commit.map_or(0, |c| c.1.as_micros() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::types::ErrorCount;

    fn node(name: &str, calls: u64, vectors: u64, clocks: u64) -> NodeRuntime {
        NodeRuntime {
            name: name.into(),
            calls,
            vectors,
            clocks,
        }
    }

    #[test]
    fn runtime_totals_and_ratios() {
        let w = |id, nodes| WorkerRuntime {
            id,
            lcore: id + 1,
            polls: 10,
            idle_polls: 4,
            sleeps: 1,
            nodes,
            consumed: 2,
            icmp_sent: 3,
            icmp_rate_limited: 4,
            connections: 5,
            connection_capacity: 7,
            nat_sessions: 8,
            nat_sessions_revoked: 9,
        };
        let reply = runtime_reply(vec![
            w(0, vec![node("a", 2, 64, 6400), node("b", 0, 0, 0)]),
            w(1, vec![node("a", 2, 32, 3200), node("c", 1, 1, 50)]),
        ]);
        assert_eq!(reply.workers.len(), 2);
        let w0 = &reply.workers[0];
        assert_eq!((w0.consumed, w0.icmp_sent, w0.icmp_rate_limited), (2, 3, 4));
        let a0 = &reply.workers[0].nodes[0];
        assert_eq!((a0.vectors_per_call, a0.clocks_per_packet), (32.0, 100.0));
        let b0 = &reply.workers[0].nodes[1];
        assert_eq!((b0.vectors_per_call, b0.clocks_per_packet), (0.0, 0.0));
        let names: Vec<_> = reply.total.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = &reply.total[0];
        assert_eq!((a.calls, a.vectors, a.clocks), (4, 96, 9600));
        assert_eq!((a.vectors_per_call, a.clocks_per_packet), (24.0, 100.0));
    }

    #[test]
    fn error_totals() {
        let c = |reason: &str, count| ErrorCount {
            reason: reason.into(),
            description: format!("{reason} happened"),
            count,
        };
        let reply = errors_reply(vec![
            WorkerErrors {
                worker: 0,
                counts: vec![c("no_route", 3), c("port_down", 0)],
            },
            WorkerErrors {
                worker: 1,
                counts: vec![c("no_route", 4), c("port_down", 2)],
            },
        ]);
        let totals: Vec<_> = reply
            .total
            .iter()
            .map(|t| (t.reason.as_str(), t.count))
            .collect();
        assert_eq!(totals, [("no_route", 7), ("port_down", 2)]);
        assert_eq!(reply.total[0].description, "no_route happened");
        assert_eq!(reply.workers[1].counters[1].count, 2);
    }
}
