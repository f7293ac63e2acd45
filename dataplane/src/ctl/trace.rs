//! Packet-trace probes over the admin API: the probe request checked and resolved against
//! the snapshot (which VM port, which source, which destination MAC), and hop records
//! turned into what `aegisctl trace` shows (node, action, port and rule names).

use std::net::Ipv4Addr;

use aegis_api::dataplane::v1 as pb;

use super::backend::AdminError;
use crate::overlay::{Location, ROUTER_MAC};
use crate::state::Snapshot;
use crate::trace::probe::{self, ProbeProto, ProbeSpec, DEFAULT_SIZE};
use crate::trace::record::SgCheck;
use crate::trace::store::StoredHop;
use crate::trace::{Action, Detail, PROBE_BIT};

/// A checked probe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeQuery {
    /// Port object name or DPDK port name.
    pub port: String,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Source (`None`: the port's first address).
    pub src: Option<Ipv4Addr>,
    /// Protocol.
    pub proto: ProbeProto,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TTL.
    pub ttl: u8,
    /// IPv4 total length.
    pub size: u16,
    /// Trace id (`None`: pick one).
    pub id: Option<u64>,
    /// Enter at the gateway's external port, from the external network.
    pub from_external: bool,
}

/// A probe ready to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedProbe {
    /// DPDK port index.
    pub port: u16,
    /// The frame.
    pub frame: Vec<u8>,
    /// What the caller is told.
    pub reply: pb::InjectProbeReply,
}

fn num<T: TryFrom<u32>>(v: u32, field: &'static str, default: T) -> Result<T, AdminError> {
    if v == 0 {
        return Ok(default);
    }
    T::try_from(v).map_err(|_| AdminError::invalid(field, format!("{v} is out of range")))
}

/// Checks an `InjectProbeRequest`.
pub fn probe_query(req: pb::InjectProbeRequest) -> Result<ProbeQuery, AdminError> {
    if req.port.is_empty() && !req.from_external {
        return Err(AdminError::invalid(
            "port",
            "the VM port to send from is required",
        ));
    }
    if req.src.is_empty() && req.from_external {
        return Err(AdminError::invalid(
            "src",
            "a probe from the external network needs its source address",
        ));
    }
    let ip = |s: &str, field| {
        s.parse::<Ipv4Addr>()
            .map_err(|_| AdminError::invalid(field, format!("{s:?} is not an IPv4 address")))
    };
    let dst = ip(&req.dst, "dst")?;
    let src = match req.src.as_str() {
        "" => None,
        s => Some(ip(s, "src")?),
    };
    let proto = match req.proto.as_str() {
        "" | "icmp" => ProbeProto::Icmp,
        "tcp" => ProbeProto::Tcp,
        "udp" => ProbeProto::Udp,
        other => {
            return Err(AdminError::invalid(
                "proto",
                format!("{other:?}: expected icmp, tcp or udp"),
            ))
        }
    };
    let (sport, dport) = match proto {
        ProbeProto::Icmp => (0, 0),
        _ => (
            num(req.sport, "sport", 33434u16)?,
            num(req.dport, "dport", 80u16)?,
        ),
    };
    Ok(ProbeQuery {
        port: req.port,
        dst,
        src,
        proto,
        sport,
        dport,
        ttl: num(req.ttl, "ttl", 64u8)?,
        size: num(req.size, "size", DEFAULT_SIZE.max(proto.min_size()))?,
        id: (req.trace_id != 0).then_some(req.trace_id | PROBE_BIT),
        from_external: req.from_external,
    })
}

/// The MAC a probe from the external network claims to come from (locally administered,
/// "ae" for Aegis, "ff" for external).
pub const EXTERNAL_PROBE_MAC: [u8; 6] = [0x02, 0xae, 0xff, 0x00, 0x00, 0x01];

/// Builds the probe `q` asks for as the external network would send it to this gateway:
/// to the external port's MAC, for `q.dst`, which must be an address the port holds here
/// (a NAT address or floating IP while this gateway is its group's VRRP master).
pub fn prepare_external(
    snap: &Snapshot,
    q: &ProbeQuery,
    fresh_id: u64,
) -> Result<PreparedProbe, AdminError> {
    let Some(outside) = snap.nat.outside_port else {
        return Err(AdminError::not_found(
            "from_external",
            "this dataplane is no gateway (no [nat] outside_port)",
        ));
    };
    let Some(pv) = snap.ports.get(usize::from(outside)) else {
        return Err(AdminError::Internal("the outside port is missing".into()));
    };
    if !snap.is_local_on(outside, q.dst) {
        return Err(AdminError::not_found(
            "dst",
            format!(
                "{} is not an address of {} here (is this gateway its group's VRRP master?)",
                q.dst, pv.name
            ),
        ));
    }
    let src = q.src.ok_or_else(|| {
        AdminError::invalid("src", "a probe from the external network needs its source")
    })?;
    let id = q.id.unwrap_or(fresh_id | PROBE_BIT);
    let frame = build_frame(q, id, (EXTERNAL_PROBE_MAC, pv.mac), src)?;
    Ok(PreparedProbe {
        port: outside,
        frame,
        reply: pb::InjectProbeReply {
            trace_id: id,
            port: pv.name.clone(),
            endpoint: "external".into(),
            src: src.to_string(),
            dst_mac: mac_string(&pv.mac),
            applied_revision: snap.overlay.revision,
        },
    })
}

/// The frame of probe `q` with trace id `id`, Ethernet (source, destination) `macs`, from
/// `src`.
fn build_frame(
    q: &ProbeQuery,
    id: u64,
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
) -> Result<Vec<u8>, AdminError> {
    let spec = ProbeSpec {
        id,
        src_mac,
        dst_mac,
        src,
        dst: q.dst,
        proto: q.proto,
        sport: q.sport,
        dport: q.dport,
        ttl: q.ttl,
        size: q.size,
    };
    probe::build(&spec).map_err(|err| {
        let field = match err {
            probe::ProbeError::Size { .. } => "size",
            probe::ProbeError::Ttl => "ttl",
        };
        AdminError::invalid(field, err.to_string())
    })
}

/// Builds the probe `q` asks for from what `snap` knows of the port: its MAC and address,
/// and the MAC its VM would send to (a port of the same subnet, else the router's).
pub fn prepare(
    snap: &Snapshot,
    q: &ProbeQuery,
    fresh_id: u64,
) -> Result<PreparedProbe, AdminError> {
    if q.from_external {
        return prepare_external(snap, q, fresh_id);
    }
    let ov = &*snap.overlay;
    let by_name = ov
        .endpoints
        .iter()
        .position(|e| e.name == q.port && matches!(e.at, Location::Local(_)));
    let by_device = || {
        let i = snap.ports.iter().position(|p| p.name == q.port)?;
        ov.local_endpoint(i as u16).map(|e| e as usize)
    };
    let Some(idx) = by_name.or_else(by_device) else {
        let elsewhere = ov.endpoints.iter().any(|e| e.name == q.port);
        let msg = if elsewhere {
            format!("port {} is not on this host", q.port)
        } else {
            format!(
                "no VM port {} on this host (neither a Port object nor a bound DPDK port)",
                q.port
            )
        };
        return Err(AdminError::not_found("port", msg));
    };
    let e = &ov.endpoints[idx];
    let Location::Local(dpdk) = e.at else {
        return Err(AdminError::not_found(
            "port",
            format!("port {} is not on this host", q.port),
        ));
    };
    let src = match q.src {
        Some(s) => s,
        None => match e.ips.first() {
            Some(&a) => Ipv4Addr::from(a),
            None => {
                return Err(AdminError::invalid(
                    "src",
                    format!("port {} has no address; give --src", e.name),
                ))
            }
        },
    };
    let dst = u32::from(q.dst);
    let same_subnet = ov
        .vpcs
        .get(usize::from(e.vpc))
        .and_then(|v| v.subnets.get(usize::from(e.subnet)))
        .is_some_and(|s| s.prefix.contains_bits(dst));
    let dst_mac = match ov.endpoint_by_ip(e.vpc, dst) {
        Some(d) if same_subnet => ov.endpoints[d as usize].mac,
        _ => ROUTER_MAC,
    };
    let id = q.id.unwrap_or(fresh_id | PROBE_BIT);
    let frame = build_frame(q, id, (e.mac, dst_mac), src)?;
    let port_name = snap
        .ports
        .get(usize::from(dpdk))
        .map(|p| p.name.clone())
        .unwrap_or_default();
    Ok(PreparedProbe {
        port: dpdk,
        frame,
        reply: pb::InjectProbeReply {
            trace_id: id,
            port: port_name,
            endpoint: e.name.clone(),
            src: src.to_string(),
            dst_mac: mac_string(&dst_mac),
            applied_revision: ov.revision,
        },
    })
}

fn mac_string(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn prefix_string(prefix: u32, len: u8) -> String {
    format!("{}/{len}", Ipv4Addr::from(prefix))
}

/// One stored hop as the API shows it; names come from `snap` (the current snapshot).
pub fn hop_view(h: &StoredHop, snap: &Snapshot) -> pb::TraceHop {
    let r = &h.record;
    let ov = &*snap.overlay;
    let port_name = |p: u16| {
        snap.ports
            .get(usize::from(p))
            .map_or_else(|| format!("port{p}"), |v| v.name.clone())
    };
    let mut hop = pb::TraceHop {
        unix_ns: h.unix_ns,
        worker: u32::from(r.worker),
        seq: u32::from(r.seq),
        node: r.node.name().to_owned(),
        revision: r.revision,
        ..Default::default()
    };
    let (action, port) = match r.action {
        Action::Injected { port } => ("injected", Some(port)),
        Action::Watched { port } => ("received", Some(port)),
        Action::Received { port, from, vni } => {
            hop.peer = Ipv4Addr::from(from).to_string();
            hop.detail = format!("Geneve VNI {vni} from {}", hop.peer);
            ("received", Some(port))
        }
        Action::Next(n) => {
            hop.next_node = n.name().to_owned();
            ("forwarded", None)
        }
        Action::Transmitted { port } => ("transmitted", Some(port)),
        Action::Delivered { port } => ("delivered", Some(port)),
        Action::Dropped(reason) => {
            hop.reason = reason.name().to_owned();
            ("dropped", None)
        }
        Action::Consumed => ("consumed", None),
        Action::Held { port, ip } => {
            hop.detail = format!("waiting for the MAC of {}", Ipv4Addr::from(ip));
            ("held", Some(port))
        }
        Action::HandedOff { worker } => {
            hop.detail = format!("to worker {worker}, which owns the flow");
            ("handed_off", None)
        }
    };
    hop.action = action.to_owned();
    if let Some(p) = port {
        hop.port = port_name(p);
    }
    let detail = match r.detail {
        Detail::None => String::new(),
        Detail::Packet(p) => format!("watch matched: {}", p.describe()),
        Detail::VpcRoute { vpc, prefix, len } => {
            let vpc = ov
                .vpcs
                .get(usize::from(vpc))
                .map_or("?", |v| v.name.as_str());
            format!("route {} in VPC {vpc}", prefix_string(prefix, len))
        }
        Detail::Endpoint { endpoint } => match ov.endpoint(endpoint) {
            Some(e) => format!("to port {}", e.name),
            None => format!("to endpoint {endpoint}"),
        },
        Detail::Security { egress, ingress } => {
            let mut parts = Vec::new();
            for (dir, c) in [("egress", egress), ("ingress", ingress)] {
                let text = match c {
                    SgCheck::NotChecked => continue,
                    SgCheck::Connection => "established connection".to_owned(),
                    SgCheck::Related => "related to a connection".to_owned(),
                    SgCheck::Refused => "refused by the connection tracker".to_owned(),
                    SgCheck::Rule { slot, allow } => {
                        let name = ov.counters.name(slot).unwrap_or("(rule removed)");
                        if !allow || hop.rule.is_empty() {
                            hop.rule = name.to_owned();
                        }
                        format!("{} by {name}", if allow { "allow" } else { "deny" })
                    }
                };
                parts.push(format!("{dir} {text}"));
            }
            parts.join(", ")
        }
        Detail::Encap { remote, vni } => {
            hop.peer = Ipv4Addr::from(remote).to_string();
            format!("Geneve VNI {vni} to {}", hop.peer)
        }
        Detail::IcmpError {
            msg_type,
            code,
            mtu,
        } => match (msg_type, code) {
            (11, _) => "ICMP time exceeded sent back".to_owned(),
            (3, 4) => format!("ICMP fragmentation needed (MTU {mtu}) sent back"),
            (3, 0) => "ICMP net unreachable sent back".to_owned(),
            (3, 1) => "ICMP host unreachable sent back".to_owned(),
            (t, c) => format!("ICMP type {t} code {c} sent back"),
        },
        Detail::Nat {
            from_ip,
            from_port,
            to_ip,
            to_port,
        } => format!(
            "NAT {}:{from_port} -> {}:{to_port}",
            Ipv4Addr::from(from_ip),
            Ipv4Addr::from(to_ip)
        ),
    };
    if !detail.is_empty() {
        hop.detail = if hop.detail.is_empty() {
            detail
        } else {
            format!("{}; {detail}", hop.detail)
        };
    }
    hop
}
