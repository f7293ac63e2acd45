//! The worker's side of capture: the captures it runs ([`Taps`], changed only by
//! [`TapCommand`]s it takes from its queue between bursts) and the per-packet step of a
//! capture point ([`Taps::capture`]): run the filter, copy into the capture's ring.

use std::sync::Arc;

use arrayvec::ArrayVec;

use super::bpf::Program;
use super::ring::{CaptureRing, Point};
use crate::graph::NodeId;

/// Captures running at once on a dataplane.
pub const MAX_CAPTURES: usize = 4;
/// Ports a capture can select (the port masks are 64 bits).
pub const MAX_PORTS: usize = 64;

/// What one capture takes.
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    /// Ports whose received packets are captured (bit = port index).
    pub rx_ports: u64,
    /// Ports whose transmitted packets are captured.
    pub tx_ports: u64,
    /// Dropped packets too.
    pub drops: bool,
    /// Graph nodes whose input frames are captured (bit = [`NodeId`] as a number, see
    /// [`node_bit`]).
    pub nodes: u32,
    /// The filter (accept-all for no filter).
    pub filter: Program,
    /// Bytes kept per packet (at most [`super::RECORD_BYTES`]).
    pub snaplen: usize,
}

// Every node has a bit in the masks.
const _: () = assert!(NodeId::COUNT <= u32::BITS as usize);

/// The bit of `node` in [`CaptureSpec::nodes`] and [`Taps::nodes`].
#[inline(always)]
pub const fn node_bit(node: NodeId) -> u32 {
    1 << node as u32
}

/// A change to a worker's captures.
pub enum TapCommand {
    /// Start capture `id` into `ring`.
    Start {
        /// The capture's id.
        id: u64,
        /// What it takes.
        spec: Arc<CaptureSpec>,
        /// This worker's ring for it.
        ring: Arc<CaptureRing>,
    },
    /// Stop capture `id`.
    Stop {
        /// The capture's id.
        id: u64,
    },
}

struct Tap {
    id: u64,
    spec: Arc<CaptureSpec>,
    ring: Arc<CaptureRing>,
}

/// The captures a worker runs, with the union of what they select (checked per burst).
#[derive(Default)]
pub struct Taps {
    taps: ArrayVec<Tap, MAX_CAPTURES>,
    rx: u64,
    tx: u64,
    drops: bool,
    nodes: u32,
}

impl Taps {
    /// Applies a command (the worker calls this between bursts). A start beyond
    /// [`MAX_CAPTURES`] is ignored (the control side never sends one).
    pub fn apply(&mut self, cmd: TapCommand) {
        match cmd {
            TapCommand::Start { id, spec, ring } => {
                let _ = self.taps.try_push(Tap { id, spec, ring });
            }
            TapCommand::Stop { id } => self.taps.retain(|t| t.id != id),
        }
        self.rx = self.taps.iter().fold(0, |m, t| m | t.spec.rx_ports);
        self.tx = self.taps.iter().fold(0, |m, t| m | t.spec.tx_ports);
        self.drops = self.taps.iter().any(|t| t.spec.drops);
        self.nodes = self.taps.iter().fold(0, |m, t| m | t.spec.nodes);
    }

    /// True when some capture takes packets received on `port`.
    #[inline(always)]
    pub fn rx_on(&self, port: usize) -> bool {
        port < MAX_PORTS && (self.rx >> port) & 1 != 0
    }

    /// True when some capture takes packets transmitted on `port`.
    #[inline(always)]
    pub fn tx_on(&self, port: usize) -> bool {
        port < MAX_PORTS && (self.tx >> port) & 1 != 0
    }

    /// True when some capture takes dropped packets.
    #[inline(always)]
    pub fn drops_on(&self) -> bool {
        self.drops
    }

    /// The graph nodes some capture takes (bits as [`node_bit`]); the dispatcher reads it
    /// once per graph run and tests it once per node call.
    #[inline(always)]
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// True when no capture runs.
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// Offers a packet seen at `point` on `port` (for a node point: the port it came in on)
    /// at `now_ns` to every capture that takes it; each one that takes it and whose filter accepts it records it.
    #[inline]
    pub fn capture(&self, point: Point, port: u16, data: &[u8], now_ns: u64) {
        let bit = 1u64.checked_shl(u32::from(port)).unwrap_or(0);
        for t in &self.taps {
            let wanted = match point {
                Point::Rx => t.spec.rx_ports & bit != 0,
                Point::Tx => t.spec.tx_ports & bit != 0,
                Point::Drop(_) => t.spec.drops,
                Point::Node(n) => t.spec.nodes & node_bit(n) != 0,
            };
            if !wanted {
                continue;
            }
            let wire_len = data.len() as u32;
            let keep = t.spec.filter.run(data, wire_len) as usize;
            if keep == 0 {
                continue;
            }
            t.ring.record(
                now_ns,
                port,
                point,
                data,
                wire_len,
                keep.min(t.spec.snaplen),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::bpf::Insn;
    use crate::graph::DropReason;

    fn spec(rx: u64, tx: u64, drops: bool, filter: Program) -> Arc<CaptureSpec> {
        Arc::new(CaptureSpec {
            rx_ports: rx,
            tx_ports: tx,
            drops,
            nodes: 0,
            filter,
            snaplen: 100,
        })
    }

    #[test]
    fn points_ports_and_filters_select() {
        let mut taps = Taps::default();
        assert!(!taps.rx_on(0) && !taps.drops_on() && taps.is_empty());
        let all = Arc::new(CaptureRing::new(16));
        // ret #0 unless the frame is longer than 10 bytes (ld len; jgt #10).
        let long_only = Program::new(vec![
            Insn::new(0x80, 0, 0, 0),
            Insn::new(0x25, 0, 1, 10),
            Insn::new(0x06, 0, 0, 4),
            Insn::new(0x06, 0, 0, 0),
        ])
        .unwrap();
        let long = Arc::new(CaptureRing::new(16));
        taps.apply(TapCommand::Start {
            id: 1,
            spec: spec(0b01, 0b10, false, Program::accept_all()),
            ring: all.clone(),
        });
        taps.apply(TapCommand::Start {
            id: 2,
            spec: spec(0b10, 0, true, long_only),
            ring: long.clone(),
        });
        assert!(taps.rx_on(0) && taps.rx_on(1) && taps.tx_on(1) && !taps.tx_on(0));
        assert!(taps.drops_on() && !taps.rx_on(2) && !taps.rx_on(99));
        let pkt = [1u8; 50];
        taps.capture(Point::Rx, 0, &pkt, 1);
        taps.capture(Point::Rx, 1, &pkt, 2);
        taps.capture(Point::Rx, 1, &pkt[..5], 3);
        taps.capture(Point::Tx, 1, &pkt, 4);
        taps.capture(Point::Drop(DropReason::NoRoute), u16::MAX, &pkt, 5);
        let mut a = Vec::new();
        all.drain(99, |r| a.push((r.ts_ns, r.point, r.len)));
        assert_eq!(a, vec![(1, Point::Rx, 50), (4, Point::Tx, 50)]);
        let mut b = Vec::new();
        long.drain(99, |r| b.push((r.ts_ns, r.point, r.len)));
        // The filter's return value (4) bounds the bytes kept.
        assert_eq!(
            b,
            vec![(2, Point::Rx, 4), (5, Point::Drop(DropReason::NoRoute), 4)]
        );
        taps.apply(TapCommand::Stop { id: 2 });
        assert!(!taps.rx_on(1) && !taps.drops_on() && taps.rx_on(0));
        taps.apply(TapCommand::Stop { id: 1 });
        assert!(taps.is_empty() && !taps.rx_on(0) && !taps.tx_on(1));
    }

    #[test]
    fn node_points_select_by_node() {
        let mut taps = Taps::default();
        assert_eq!(taps.nodes(), 0);
        let fwd = Arc::new(CaptureRing::new(16));
        let sg = Arc::new(CaptureRing::new(16));
        let node_spec = |nodes| {
            Arc::new(CaptureSpec {
                rx_ports: 0,
                tx_ports: 0,
                drops: false,
                nodes,
                filter: Program::accept_all(),
                snaplen: 100,
            })
        };
        taps.apply(TapCommand::Start {
            id: 1,
            spec: node_spec(node_bit(NodeId::Ip4Forward)),
            ring: fwd.clone(),
        });
        taps.apply(TapCommand::Start {
            id: 2,
            spec: node_spec(node_bit(NodeId::SecurityGroup) | node_bit(NodeId::Ip4Forward)),
            ring: sg.clone(),
        });
        assert_eq!(
            taps.nodes(),
            node_bit(NodeId::Ip4Forward) | node_bit(NodeId::SecurityGroup)
        );
        // Node captures take no port or drop traffic.
        assert!(!taps.rx_on(0) && !taps.tx_on(0) && !taps.drops_on());
        let pkt = [3u8; 40];
        taps.capture(Point::Node(NodeId::Ip4Forward), 2, &pkt, 1);
        taps.capture(Point::Node(NodeId::SecurityGroup), 1, &pkt, 2);
        taps.capture(Point::Node(NodeId::EthInput), 0, &pkt, 3);
        taps.capture(Point::Rx, 0, &pkt, 4);
        let mut a = Vec::new();
        fwd.drain(99, |r| a.push((r.ts_ns, r.point, r.port)));
        assert_eq!(a, vec![(1, Point::Node(NodeId::Ip4Forward), 2)]);
        let mut b = Vec::new();
        sg.drain(99, |r| b.push((r.ts_ns, r.point, r.port)));
        assert_eq!(
            b,
            vec![
                (1, Point::Node(NodeId::Ip4Forward), 2),
                (2, Point::Node(NodeId::SecurityGroup), 1)
            ]
        );
        taps.apply(TapCommand::Stop { id: 2 });
        assert_eq!(taps.nodes(), node_bit(NodeId::Ip4Forward));
        taps.apply(TapCommand::Stop { id: 1 });
        assert_eq!(taps.nodes(), 0);
    }
}
