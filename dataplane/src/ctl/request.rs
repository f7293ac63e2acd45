//! Protobuf requests → typed backend arguments. Everything syntactic is checked here, so a
//! backend only ever sees well-formed values; each error names the request field.

use std::net::Ipv4Addr;

use aegis_api::dataplane::v1 as pb;
use pb::add_route_request::Target;

use super::backend::AdminError;
use super::cidr::Ipv4Cidr;
use super::types::{
    ConnQuery, ConnState, NatQuery, RouteSpec, RouteTarget, DEFAULT_CONNECTIONS_LIMIT,
    MAX_CONNECTIONS_LIMIT,
};

/// Validates an `AddRoute` request.
pub fn route_spec(req: pb::AddRouteRequest) -> Result<RouteSpec, AdminError> {
    let prefix = route_prefix(&req.prefix)?;
    let target = match req.target {
        None => {
            return Err(AdminError::invalid(
                "target",
                "one of via, port or discard is required",
            ))
        }
        Some(Target::Via(gw)) => RouteTarget::Via(gateway(&gw)?),
        Some(Target::Port(port)) => RouteTarget::Port(port_name(port)?),
        Some(Target::Discard(kind)) => match pb::RouteKind::try_from(kind) {
            Ok(pb::RouteKind::Blackhole) => RouteTarget::Blackhole,
            Ok(pb::RouteKind::Unreachable) => RouteTarget::Unreachable,
            _ => {
                return Err(AdminError::invalid(
                    "discard",
                    format!(
                        "route kind {kind} is not ROUTE_KIND_BLACKHOLE or ROUTE_KIND_UNREACHABLE"
                    ),
                ))
            }
        },
    };
    Ok(RouteSpec { prefix, target })
}

/// Parses a route prefix ("prefix" field): CIDR without host bits.
pub fn route_prefix(s: &str) -> Result<Ipv4Cidr, AdminError> {
    let cidr: Ipv4Cidr = s
        .parse()
        .map_err(|e| AdminError::invalid("prefix", format!("{s:?}: {e}")))?;
    if !cidr.is_network() {
        return Err(AdminError::invalid(
            "prefix",
            format!("{s:?} has host bits set (did you mean {}?)", cidr.network()),
        ));
    }
    Ok(cidr)
}

/// Parses a gateway ("via" field): a unicast address.
fn gateway(s: &str) -> Result<Ipv4Addr, AdminError> {
    let ip: Ipv4Addr = s
        .parse()
        .map_err(|_| AdminError::invalid("via", format!("{s:?} is not an IPv4 address")))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        return Err(AdminError::invalid(
            "via",
            format!("{ip} cannot be a gateway (not a unicast address)"),
        ));
    }
    Ok(ip)
}

/// Parses an interface address ("address" field): a unicast address with a prefix length
/// of at least 1 that is neither the network nor the broadcast address of its subnet.
pub fn interface_address(s: &str) -> Result<Ipv4Cidr, AdminError> {
    let cidr: Ipv4Cidr = s
        .parse()
        .map_err(|e| AdminError::invalid("address", format!("{s:?}: {e}")))?;
    let ip = cidr.addr();
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        return Err(AdminError::invalid(
            "address",
            format!("{ip} cannot be an interface address (not a unicast address)"),
        ));
    }
    if cidr.prefix_len() == 0 {
        return Err(AdminError::invalid(
            "address",
            format!("{s:?}: prefix length must be at least 1"),
        ));
    }
    if cidr.prefix_len() <= 30 && (cidr.is_network() || cidr.broadcast() == ip) {
        let what = if cidr.is_network() {
            "network"
        } else {
            "broadcast"
        };
        return Err(AdminError::invalid(
            "address",
            format!("{s:?} is the {what} address of its subnet"),
        ));
    }
    Ok(cidr)
}

/// Checks a port name ("port" field): non-empty.
pub fn port_name(s: String) -> Result<String, AdminError> {
    if s.is_empty() {
        return Err(AdminError::invalid("port", "a port name is required"));
    }
    Ok(s)
}

/// An optional IPv4 address ("" = any) of field `ip`.
fn optional_ip(s: &str) -> Result<Option<Ipv4Addr>, AdminError> {
    match s {
        "" => Ok(None),
        s => s
            .parse::<Ipv4Addr>()
            .map(Some)
            .map_err(|_| AdminError::invalid("ip", format!("{s:?} is not an IPv4 address"))),
    }
}

/// An optional IP protocol by name or number ("" = any) of field `protocol`.
fn optional_protocol(s: &str) -> Result<Option<u8>, AdminError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "" => None,
        "tcp" => Some(crate::conntrack::PROTO_TCP),
        "udp" => Some(crate::conntrack::PROTO_UDP),
        "icmp" => Some(crate::conntrack::PROTO_ICMP),
        s => Some(s.parse::<u8>().map_err(|_| {
            AdminError::invalid(
                "protocol",
                format!("{s:?}: expected tcp, udp, icmp or a number 0..255"),
            )
        })?),
    })
}

/// A reply limit: 0 is the default, more than [`MAX_CONNECTIONS_LIMIT`] is refused.
fn limit(n: u32) -> Result<usize, AdminError> {
    match n as usize {
        0 => Ok(DEFAULT_CONNECTIONS_LIMIT),
        n if n > MAX_CONNECTIONS_LIMIT => Err(AdminError::invalid(
            "limit",
            format!("{n}: at most {MAX_CONNECTIONS_LIMIT}"),
        )),
        n => Ok(n),
    }
}

/// Parses a `ShowNatSessions` request (the VPC name is resolved by the backend).
pub fn nat_query(req: pb::ShowNatSessionsRequest) -> Result<NatQuery, AdminError> {
    Ok(NatQuery {
        vpc: (!req.vpc.is_empty()).then_some(req.vpc),
        ip: optional_ip(&req.ip)?,
        protocol: optional_protocol(&req.protocol)?,
        limit: limit(req.limit)?,
    })
}

/// Validates a `ShowConnections` request: every filter optional (empty), the limit
/// defaulted and bounded.
pub fn connection_query(req: pb::ShowConnectionsRequest) -> Result<ConnQuery, AdminError> {
    let ip = optional_ip(&req.ip)?;
    let protocol = optional_protocol(&req.protocol)?;
    let state = match req.state.as_str() {
        "" => None,
        s => Some(
            ConnState::ALL
                .iter()
                .copied()
                .find(|c| c.name() == s)
                .ok_or_else(|| {
                    let names: Vec<&str> = ConnState::ALL.iter().map(|c| c.name()).collect();
                    AdminError::invalid(
                        "state",
                        format!("{s:?}: expected one of {}", names.join(", ")),
                    )
                })?,
        ),
    };
    let limit = limit(req.limit)?;
    Ok(ConnQuery {
        port: (!req.port.is_empty()).then_some(req.port),
        ip,
        protocol,
        state,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: AdminError) -> &'static str {
        match e {
            AdminError::InvalidArgument { field, .. } => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn add(prefix: &str, target: Option<Target>) -> Result<RouteSpec, AdminError> {
        route_spec(pb::AddRouteRequest {
            prefix: prefix.into(),
            target,
        })
    }

    #[test]
    fn route_targets() {
        let spec = add("10.9.0.0/16", Some(Target::Via("10.0.1.2".into()))).unwrap();
        assert_eq!(spec.prefix.to_string(), "10.9.0.0/16");
        assert_eq!(spec.target, RouteTarget::Via(Ipv4Addr::new(10, 0, 1, 2)));
        let spec = add("0.0.0.0/0", Some(Target::Port("eth0".into()))).unwrap();
        assert_eq!(spec.target, RouteTarget::Port("eth0".into()));
        let bh = Some(Target::Discard(pb::RouteKind::Blackhole as i32));
        assert_eq!(
            add("192.0.2.0/24", bh).unwrap().target,
            RouteTarget::Blackhole
        );
        let un = Some(Target::Discard(pb::RouteKind::Unreachable as i32));
        assert_eq!(
            add("192.0.2.0/24", un).unwrap().target,
            RouteTarget::Unreachable
        );
    }

    #[test]
    fn route_errors_name_the_field() {
        let via = |s: &str| Some(Target::Via(s.into()));
        assert_eq!(
            field(add("10.9.0.1/16", via("10.0.1.2")).unwrap_err()),
            "prefix"
        );
        let e = add("10.9.0.1/16", via("10.0.1.2")).unwrap_err();
        assert!(e.to_string().contains("did you mean 10.9.0.0/16"), "{e}");
        assert_eq!(
            field(add("10.9.0.0", via("10.0.1.2")).unwrap_err()),
            "prefix"
        );
        assert_eq!(field(add("10.9.0.0/16", via("10.0.1")).unwrap_err()), "via");
        assert_eq!(
            field(add("10.9.0.0/16", via("224.0.0.1")).unwrap_err()),
            "via"
        );
        assert_eq!(
            field(add("10.9.0.0/16", via("0.0.0.0")).unwrap_err()),
            "via"
        );
        assert_eq!(field(add("10.9.0.0/16", None).unwrap_err()), "target");
        let port = Some(Target::Port(String::new()));
        assert_eq!(field(add("10.9.0.0/16", port).unwrap_err()), "port");
        for kind in [pb::RouteKind::Gateway as i32, 99] {
            let t = Some(Target::Discard(kind));
            assert_eq!(field(add("10.9.0.0/16", t).unwrap_err()), "discard");
        }
    }

    #[test]
    fn connection_queries() {
        let q = connection_query(pb::ShowConnectionsRequest::default()).unwrap();
        assert_eq!(q, ConnQuery::all());
        let q = connection_query(pb::ShowConnectionsRequest {
            port: "vm1".into(),
            ip: "10.1.1.11".into(),
            protocol: "TCP".into(),
            state: "tcp_established".into(),
            limit: 5,
        })
        .unwrap();
        assert_eq!(q.port.as_deref(), Some("vm1"));
        assert_eq!(q.ip, Some(Ipv4Addr::new(10, 1, 1, 11)));
        assert_eq!(
            (q.protocol, q.state, q.limit),
            (Some(6), Some(ConnState::TcpEstablished), 5)
        );
        let proto = |p: &str| {
            connection_query(pb::ShowConnectionsRequest {
                protocol: p.into(),
                ..Default::default()
            })
        };
        assert_eq!(proto("icmp").unwrap().protocol, Some(1));
        assert_eq!(proto("udp").unwrap().protocol, Some(17));
        assert_eq!(proto("47").unwrap().protocol, Some(47));
        assert_eq!(field(proto("256").unwrap_err()), "protocol");
        assert_eq!(field(proto("sctp").unwrap_err()), "protocol");
        let bad = |req: pb::ShowConnectionsRequest| field(connection_query(req).unwrap_err());
        let req = pb::ShowConnectionsRequest::default;
        assert_eq!(
            bad(pb::ShowConnectionsRequest {
                ip: "10.1.1".into(),
                ..req()
            }),
            "ip"
        );
        let e = connection_query(pb::ShowConnectionsRequest {
            state: "established".into(),
            ..req()
        })
        .unwrap_err();
        assert!(e.to_string().contains("tcp_established"), "{e}");
        assert_eq!(
            bad(pb::ShowConnectionsRequest {
                limit: 20_001,
                ..req()
            }),
            "limit"
        );
    }

    #[test]
    fn interface_addresses() {
        assert_eq!(
            interface_address("10.0.1.1/24").unwrap().to_string(),
            "10.0.1.1/24"
        );
        assert!(interface_address("10.0.1.0/31").is_ok());
        assert!(interface_address("10.0.1.7/32").is_ok());
        for bad in [
            "10.0.1.1",
            "10.0.1.0/24",
            "10.0.1.255/24",
            "224.0.0.5/24",
            "0.0.0.0/8",
            "127.0.0.1/8",
            "10.0.0.1/0",
            "10.0.0.1/40",
        ] {
            assert_eq!(
                field(interface_address(bad).unwrap_err()),
                "address",
                "{bad}"
            );
        }
    }
}
