//! A ready-made pipeline on heap buffers — two ports, a few routes, resolved neighbours —
//! for unit tests, the fuzz target and the EAL-free benchmarks.

pub mod overlay;

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::buf::heap::HeapBuf;
use crate::buf::PacketBuf;
use crate::fib::Fib;
use crate::graph::{ControlEvent, DropReason, Graph, GraphEnv, WorkerStats};
use crate::state::snapshot::{Adjacency, Mac, PortView, Snapshot};

/// Test MAC.
pub const MAC0: Mac = [2, 0, 0, 0, 0, 1];
/// Test MAC.
pub const MAC1: Mac = [2, 0, 0, 0, 1, 1];
/// Test MAC.
pub const H1_MAC: Mac = [2, 0, 0, 0, 0, 2];
/// Test MAC.
pub const H2_MAC: Mac = [2, 0, 0, 0, 1, 2];
/// Test MAC.
pub const GW_MAC: Mac = [2, 0, 0, 0, 1, 9];

fn ip(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().unwrap())
}

/// Two ports: 10.0.1.1/24 on port 0 and 10.0.2.1/24 on port 1; 10.9.0.0/16 via
/// 10.0.2.9 (resolved), 10.8.0.0/16 via 10.0.2.8 (unresolved), a blackhole and an
/// unreachable; h1 (10.0.1.2) and h2 (10.0.2.2) resolved.
pub fn snapshot() -> Snapshot {
    let adjs = vec![
        Adjacency::Local,
        Adjacency::Attached { port: 0 },
        Adjacency::Attached { port: 1 },
        Adjacency::Gateway {
            port: 1,
            gw: "10.0.2.9".parse().unwrap(),
            mac: Some(GW_MAC),
        },
        Adjacency::Gateway {
            port: 1,
            gw: "10.0.2.8".parse().unwrap(),
            mac: None,
        },
        Adjacency::Blackhole,
        Adjacency::Unreachable,
    ];
    let mut fib = Fib::new();
    let mut add = |p: &str, len: u8, nh: u32| fib.insert(p.parse().unwrap(), len, nh).unwrap();
    add("10.0.1.1", 32, 0);
    add("10.0.2.1", 32, 0);
    add("10.0.1.0", 24, 1);
    add("10.0.2.0", 24, 2);
    add("10.9.0.0", 16, 3);
    add("10.8.0.0", 16, 4);
    add("10.66.0.0", 16, 5);
    add("10.77.0.0", 16, 6);
    let mut neigh = crate::state::snapshot::NeighbourMap::default();
    neigh.insert((0u16, ip("10.0.1.2")), H1_MAC);
    neigh.insert((1u16, ip("10.0.2.2")), H2_MAC);
    neigh.insert((1u16, ip("10.0.2.9")), GW_MAC);
    Snapshot {
        revision: 1,
        ports: vec![
            PortView {
                name: "eth0".into(),
                mac: MAC0,
                mtu: 1500,
                up: true,
                addrs: vec![("10.0.1.1".parse().unwrap(), 24)],
                vrrp: false,
                vmacs: Vec::new(),
            },
            PortView {
                name: "eth1".into(),
                mac: MAC1,
                mtu: 1500,
                up: true,
                addrs: vec![("10.0.2.1".parse().unwrap(), 24)],
                vrrp: false,
                vmacs: Vec::new(),
            },
        ]
        .into(),
        fib: Arc::new(fib),
        adjacencies: adjs.into(),
        neighbours: Arc::new(neigh),
        overlay: Default::default(),
        nat: Default::default(),
    }
}

/// A worker's graph on heap buffers with a fixed clock: frames in, frames out.
pub struct Pipeline {
    /// The graph.
    pub graph: Graph<HeapBuf>,
    /// Its environment (counters, queues).
    pub env: GraphEnv,
    /// The snapshot it reads.
    pub snap: Snapshot,
    /// The time it is given.
    pub now_ns: u64,
}

impl Pipeline {
    /// A pipeline over [`snapshot`].
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let stats = Arc::new(WorkerStats::default());
        let events = Arc::new(ArrayQueue::new(64));
        Pipeline {
            graph: Graph::new(2, stats.clone()),
            env: GraphEnv::new(stats, events),
            snap: snapshot(),
            now_ns: 1_000_000_000,
        }
    }

    /// Feeds frames in on `port`, runs the graph, returns what each port transmitted.
    pub fn run(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
        self.graph
            .input(port, frames.iter().map(|f| HeapBuf::from_bytes(f)));
        self.graph.run(&self.snap, self.now_ns, &mut self.env);
        self.graph
            .tx_frames()
            .iter_mut()
            .map(|f| f.drain(..).map(|b| b.data().to_vec()).collect())
            .collect()
    }

    /// Drops counted for `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.env.stats.drops_for(r)
    }

    /// Drops counted for every reason.
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }

    /// Events the graph reported to the control thread.
    pub fn events(&self) -> Vec<ControlEvent> {
        std::iter::from_fn(|| self.env.events.pop()).collect()
    }
}

impl Pipeline {
    /// Runs arbitrary frames through the graph (port = `port % 2`) and checks that every
    /// packet is accounted for: transmitted, dropped with a counted reason, consumed, or
    /// held. Returns the frames transmitted. Panics if a packet vanished: this is the
    /// invariant the fuzz target and the robustness tests check.
    pub fn run_accounted(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.env.stats.clone();
        let before = self.accounted();
        let held_before = self.graph.held();
        let out = self.run(port % 2, frames);
        let sent: u64 = out.iter().map(|p| p.len() as u64).sum();
        let after = self.accounted();
        let held = self.graph.held() as u64 - held_before as u64;
        let icmp = stats.icmp_sent.load(Relaxed) - before.2;
        assert_eq!(
            frames.len() as u64 + icmp,
            sent + (after.0 - before.0) + (after.1 - before.1) + held,
            "a packet was lost without a counted reason"
        );
        out
    }

    /// (drops, consumed, icmp_sent) so far.
    fn accounted(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.env.stats;
        (
            self.total_drops(),
            s.consumed.load(Relaxed),
            s.icmp_sent.load(Relaxed),
        )
    }
}

/// A small deterministic generator (xorshift64*) for tests and benchmarks: the same seed
/// gives the same tables and packets on every run, with no extra crate.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
