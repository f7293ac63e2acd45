//! The `Capture` RPC: the request checked and turned into a [`CaptureQuery`] ([`query`]),
//! a capture started on the workers' hub for it ([`start`], which both backends call: port
//! and graph-node names resolved to the workers' masks, the pcapng interfaces named), and
//! the stream of events the control thread feeds from the workers' rings ([`stream`]):
//! `started`, then packets, `stats` about every second, and a last `stats` when the count or
//! the duration is reached or the dataplane shuts down. The client going away ends it too
//! (the capture stops on the workers when its session is dropped).

use std::time::Duration;

use aegis_api::dataplane::v1 as pb;
use tokio::sync::mpsc;

use super::backend::AdminError;
use super::pump::{Limits, Source};
use crate::capture::tap::node_bit;
use crate::capture::{
    CaptureError, CaptureHub, CaptureSession, CaptureSpec, Insn, Point, Program, RECORD_BYTES,
};
use crate::graph::NodeId;

/// How often the control thread drains the workers' rings.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Most packets taken from the rings per drain (the stream's channel paces the rest).
const DRAIN_MAX: usize = 1024;
/// Interface name of the drop path.
pub const DROP_INTERFACE: &str = "drop";
/// Prefix of a graph node's interface name (`node:ip4-forward`).
pub const NODE_INTERFACE_PREFIX: &str = "node:";

/// Which ports' traffic a capture takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    Rx,
    /// Transmitted.
    Tx,
    /// Both.
    Both,
    /// None (drops and/or graph nodes only).
    None,
}

/// A checked capture request.
#[derive(Debug, Clone)]
pub struct CaptureQuery {
    /// Port names; empty = every port.
    pub ports: Vec<String>,
    /// Port traffic taken.
    pub direction: Direction,
    /// Dropped packets too.
    pub drops: bool,
    /// Graph node names whose input is captured.
    pub nodes: Vec<String>,
    /// The validated filter.
    pub filter: Program,
    /// Bytes kept per packet (1..=2048).
    pub snaplen: usize,
    /// Stop after this many packets (0: no limit).
    pub count: u64,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// A started capture: the session and what its packets refer to.
pub struct CaptureStart {
    /// Host name of the dataplane.
    pub host: String,
    /// Interface names: the captured ports, then "drop" when drops are taken, then
    /// "node:NAME" for each captured graph node.
    pub interfaces: Vec<String>,
    /// Interface index of each port index (None: not captured).
    pub port_interface: Vec<Option<u32>>,
    /// Interface index of the drop path.
    pub drop_interface: Option<u32>,
    /// Interface index of each graph node (by [`NodeId`] number; None: not captured).
    pub node_interface: [Option<u32>; NodeId::COUNT],
    /// The dataplane's port names in index order (a node point's rx port).
    pub port_names: Vec<String>,
    /// The running capture.
    pub session: CaptureSession,
    /// What the client asked.
    pub query: CaptureQuery,
}

/// The dataplane's capture counters (metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Captures running.
    pub running: u64,
    /// Packets lost to full capture rings since start, every capture included.
    pub overflow: u64,
}

impl CaptureCounters {
    /// The counters of `hub`.
    pub fn of(hub: &CaptureHub) -> CaptureCounters {
        CaptureCounters {
            running: hub.running() as u64,
            overflow: hub.overflow_total(),
        }
    }
}

/// The filter program a client compiled (validated, see [`crate::capture::bpf`]); an
/// empty one takes every packet. `filter` is the user's text, for the error message.
pub fn program(filter: &str, insns: &[pb::BpfInstruction]) -> Result<Program, AdminError> {
    if insns.is_empty() {
        return Ok(Program::accept_all());
    }
    let insns = insns
        .iter()
        .map(|i| {
            let code = u16::try_from(i.code).ok()?;
            let jt = u8::try_from(i.jt).ok()?;
            let jf = u8::try_from(i.jf).ok()?;
            Some(Insn::new(code, jt, jf, i.k))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| AdminError::invalid("program", "an instruction field is too large"))?;
    Program::new(insns)
        .map_err(|e| AdminError::invalid("program", format!("filter {filter:?}: {e}")))
}

/// A stream's time limit in seconds (0: none).
pub fn duration(d: f64) -> Result<Option<Duration>, AdminError> {
    if d == 0.0 {
        Ok(None)
    } else if d.is_finite() && d > 0.0 && d < 1e9 {
        Ok(Some(Duration::from_secs_f64(d)))
    } else {
        Err(AdminError::invalid(
            "duration_seconds",
            format!("{d} is not a positive number of seconds"),
        ))
    }
}

/// Checks a `Capture` request: the direction, the filter program (validated, see
/// [`crate::capture::bpf`]), the snap length.
pub fn query(req: pb::CaptureRequest) -> Result<CaptureQuery, AdminError> {
    let direction = match pb::CaptureDirection::try_from(req.direction) {
        Ok(pb::CaptureDirection::Unspecified | pb::CaptureDirection::Both) => Direction::Both,
        Ok(pb::CaptureDirection::Rx) => Direction::Rx,
        Ok(pb::CaptureDirection::Tx) => Direction::Tx,
        Ok(pb::CaptureDirection::None) => Direction::None,
        Err(_) => {
            return Err(AdminError::invalid(
                "direction",
                format!("unknown capture direction {}", req.direction),
            ))
        }
    };
    if direction == Direction::None && !req.drops && req.nodes.is_empty() {
        return Err(AdminError::invalid(
            "direction",
            "a capture of no port traffic must take drops or graph nodes",
        ));
    }
    let filter = program(&req.filter, &req.program)?;
    let snaplen = match req.snaplen {
        0 => RECORD_BYTES,
        n if n as usize <= RECORD_BYTES => n as usize,
        n => {
            return Err(AdminError::invalid(
                "snaplen",
                format!("{n} is more than the {RECORD_BYTES} bytes the dataplane keeps"),
            ))
        }
    };
    let duration = duration(req.duration_seconds)?;
    Ok(CaptureQuery {
        ports: req.ports,
        direction,
        drops: req.drops,
        nodes: req.nodes,
        filter,
        snaplen,
        count: req.count,
        duration,
    })
}

/// The graph node named `name` (as `show runtime` prints it).
pub fn node_by_name(name: &str) -> Option<NodeId> {
    NodeId::ALL.into_iter().find(|n| n.name() == name)
}

/// Starts `query` on `hub` for a dataplane named `host` whose ports, in index order, are
/// `ports`. `NotFound` (field "ports" or "nodes") for a name that is no port or no graph
/// node; the message lists the valid names.
pub fn start(
    hub: &std::sync::Arc<CaptureHub>,
    host: String,
    ports: &[String],
    query: CaptureQuery,
) -> Result<CaptureStart, AdminError> {
    let mut selected = vec![query.ports.is_empty(); ports.len()];
    for name in &query.ports {
        match ports.iter().position(|p| p == name) {
            Some(i) => selected[i] = true,
            None => {
                return Err(AdminError::not_found(
                    "ports",
                    format!("no port {name:?} (ports: {})", ports.join(", ")),
                ))
            }
        }
    }
    let mut interfaces = Vec::new();
    let mut port_interface = vec![None; ports.len()];
    let (mut rx, mut tx) = (0u64, 0u64);
    if query.direction != Direction::None {
        for (i, name) in ports.iter().enumerate() {
            if !selected[i] {
                continue;
            }
            if i >= crate::capture::tap::MAX_PORTS {
                return Err(AdminError::invalid(
                    "ports",
                    format!("port {name:?}: capture covers the first 64 ports only"),
                ));
            }
            port_interface[i] = Some(interfaces.len() as u32);
            interfaces.push(name.clone());
            if matches!(query.direction, Direction::Rx | Direction::Both) {
                rx |= 1 << i;
            }
            if matches!(query.direction, Direction::Tx | Direction::Both) {
                tx |= 1 << i;
            }
        }
    }
    let drop_interface = query.drops.then(|| {
        interfaces.push(DROP_INTERFACE.to_string());
        interfaces.len() as u32 - 1
    });
    let mut node_interface = [None; NodeId::COUNT];
    let mut nodes = 0u32;
    for name in &query.nodes {
        let Some(node) = node_by_name(name) else {
            let all: Vec<&str> = NodeId::ALL.iter().map(|n| n.name()).collect();
            return Err(AdminError::not_found(
                "nodes",
                format!("no graph node {name:?} (nodes: {})", all.join(", ")),
            ));
        };
        if nodes & node_bit(node) == 0 {
            nodes |= node_bit(node);
            node_interface[node as usize] = Some(interfaces.len() as u32);
            interfaces.push(format!("{NODE_INTERFACE_PREFIX}{name}"));
        }
    }
    let spec = CaptureSpec {
        rx_ports: rx,
        tx_ports: tx,
        drops: query.drops,
        nodes,
        filter: query.filter.clone(),
        snaplen: query.snaplen,
    };
    let session = hub.start(spec).map_err(|e| match e {
        CaptureError::TooMany => AdminError::invalid("capture", e.to_string()),
        CaptureError::Busy(_) | CaptureError::Closed => AdminError::Internal(e.to_string()),
    })?;
    Ok(CaptureStart {
        host,
        interfaces,
        port_interface,
        drop_interface,
        node_interface,
        port_names: ports.to_vec(),
        session,
        query,
    })
}

/// The host name to put in captures when the dataplane has no control-plane one.
pub fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

type Events = mpsc::Sender<Result<pb::CaptureEvent, tonic::Status>>;

fn event(e: pb::capture_event::Event) -> pb::CaptureEvent {
    pb::CaptureEvent { event: Some(e) }
}

/// Feeds `tx` from the capture until the count or the duration is reached, the dataplane
/// shuts down or the client goes away; the capture stops when this returns.
pub async fn stream(start: CaptureStart, tx: Events) {
    let started = event(pb::capture_event::Event::Started(pb::CaptureStarted {
        host: start.host.clone(),
        interfaces: start.interfaces.clone(),
        snaplen: start.query.snaplen as u32,
    }));
    let limits = Limits {
        count: start.query.count,
        duration: start.query.duration,
    };
    super::pump::pump(tx, started, start, limits, DRAIN_EVERY, DRAIN_MAX).await;
}

impl Source for CaptureStart {
    type Event = pb::CaptureEvent;

    fn take(&mut self, max: usize) -> Vec<pb::CaptureEvent> {
        let start = &*self;
        let mut batch = Vec::new();
        start.session.drain(max, |worker, r, wall_ns| {
            let port_interface = || {
                start
                    .port_interface
                    .get(usize::from(r.port))
                    .copied()
                    .flatten()
            };
            let (interface, point, reason, node) = match r.point {
                Point::Rx => (port_interface(), pb::CapturePoint::Rx, "", ""),
                Point::Tx => (port_interface(), pb::CapturePoint::Tx, "", ""),
                Point::Drop(why) => (start.drop_interface, pb::CapturePoint::Drop, why.name(), ""),
                Point::Node(id) => (
                    start.node_interface[id as usize],
                    pb::CapturePoint::Node,
                    "",
                    id.name(),
                ),
            };
            let rx_port = match r.point {
                Point::Node(_) => start.port_names.get(usize::from(r.port)),
                _ => None,
            };
            // A packet of another capture's port cannot be here (each has its own rings).
            if let Some(interface) = interface {
                batch.push(event(pb::capture_event::Event::Packet(
                    pb::CapturedPacket {
                        interface,
                        point: point as i32,
                        drop_reason: reason.to_string(),
                        timestamp_ns: wall_ns,
                        original_length: r.wire_len,
                        data: r.bytes().to_vec(),
                        worker: worker as u32,
                        node: node.to_string(),
                        rx_port: rx_port.cloned().unwrap_or_default(),
                    },
                )));
            }
        });
        batch
    }

    fn closed(&self) -> bool {
        self.session.closed()
    }

    fn stats(&self, _sent: u64, last: bool, reason: &str) -> pb::CaptureEvent {
        let s = &self.session;
        event(pb::capture_event::Event::Stats(pb::CaptureStats {
            captured: s.captured(),
            overflow: s.overflow(),
            last,
            reason: reason.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::Clock;

    fn request(ports: &[&str], nodes: &[&str], direction: pb::CaptureDirection) -> CaptureQuery {
        query(pb::CaptureRequest {
            ports: ports.iter().map(|p| p.to_string()).collect(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            direction: direction as i32,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn nodes_become_interfaces_and_the_workers_mask() {
        let q = CaptureHub::queue();
        let hub = CaptureHub::new(vec![q.clone()], Clock::monotonic());
        let ports = ["eth0".to_string(), "eth1".to_string()];
        let nodes = ["security-group", "ip4-forward", "security-group"];
        let query = request(&["eth1"], &nodes, pb::CaptureDirection::Rx);
        let s = start(&hub, "r1".into(), &ports, query).unwrap();
        assert_eq!(
            s.interfaces,
            ["eth1", "node:security-group", "node:ip4-forward"]
        );
        assert_eq!(s.port_interface, [None, Some(0)]);
        assert_eq!(s.node_interface[NodeId::SecurityGroup as usize], Some(1));
        assert_eq!(s.node_interface[NodeId::Ip4Forward as usize], Some(2));
        assert_eq!(s.node_interface.iter().flatten().count(), 2);
        let mut taps = crate::capture::Taps::default();
        while let Some(c) = q.pop() {
            taps.apply(c);
        }
        let want = node_bit(NodeId::SecurityGroup) | node_bit(NodeId::Ip4Forward);
        assert_eq!(taps.nodes(), want);
        assert!(taps.rx_on(1) && !taps.rx_on(0) && !taps.tx_on(1) && !taps.drops_on());
    }

    #[test]
    fn unknown_nodes_are_refused_with_the_valid_names() {
        let hub = CaptureHub::new(vec![CaptureHub::queue()], Clock::monotonic());
        let query = request(&[], &["ip4-nowhere"], pb::CaptureDirection::None);
        let e = start(&hub, "r1".into(), &[], query).err().unwrap();
        assert!(matches!(e, AdminError::NotFound { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("no graph node \"ip4-nowhere\"")
                && msg.contains("ethernet-input, vm-input")
                && msg.contains("ip4-icmp-error"),
            "{msg}"
        );
        assert_eq!(hub.running(), 0, "nothing started");
    }

    #[test]
    fn a_capture_of_no_port_traffic_takes_drops_or_nodes() {
        let none = pb::CaptureDirection::None as i32;
        let bare = pb::CaptureRequest {
            direction: none,
            ..Default::default()
        };
        assert!(query(bare.clone()).is_err());
        let nodes = pb::CaptureRequest {
            nodes: vec!["vm-input".into()],
            ..bare.clone()
        };
        assert_eq!(query(nodes).unwrap().nodes, ["vm-input"]);
        let drops = pb::CaptureRequest {
            drops: true,
            ..bare
        };
        assert!(query(drops).is_ok());
    }
}
