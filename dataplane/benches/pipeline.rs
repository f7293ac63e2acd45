//! The whole IPv4 forwarding graph on heap buffers (no EAL, no I/O): 256-packet frames of
//! 64-byte UDP packets to random destinations over 100k routes via one resolved gateway —
//! ethernet-input and ip4-forward (checks, lookup, rewrite). Reports time per frame; divide by
//! 256 for ns/packet. The DPDK end-to-end comparison with l3fwd is scripts/bench.sh.
//!
//! `nat_snat_frame_256`: the same routing with source NAT on the egress port (endpoint-
//! dependent), 256 established UDP sessions: session lookup, translation with incremental
//! checksums, then the forward.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use aegis_dataplane::buf::heap::HeapBuf;
use aegis_dataplane::fib::Fib;
use aegis_dataplane::graph::{Graph, GraphEnv, WorkerStats, FRAME_CAP};
use aegis_dataplane::nat::{FloatingIp, NatConfig, NatTable, NatTimeouts, SnatRule};
use aegis_dataplane::state::snapshot::{Adjacency, PortView, Snapshot};
use aegis_dataplane::testkit::Rng;
use aegis_dataplane::wire::ipv4;
use criterion::{criterion_group, criterion_main, BatchSize, Bencher, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;

const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn snapshot(routes: &[(u32, u8)]) -> Snapshot {
    let mut fib = Fib::new();
    for (p, l) in routes {
        fib.insert(Ipv4Addr::from(*p), *l, 0).expect("valid route");
    }
    let port = |name: &str, mac, addr: &str| PortView {
        name: name.into(),
        mac,
        mtu: 1500,
        up: true,
        addrs: vec![(addr.parse().unwrap(), 24)],
        vrrp: false,
        vmacs: Vec::new(),
    };
    Snapshot {
        revision: 1,
        ports: vec![
            port("in", PORT_MAC, "192.168.1.1"),
            port("out", [2, 0, 0, 0, 1, 1], "192.168.2.1"),
        ]
        .into(),
        fib: Arc::new(fib),
        adjacencies: vec![Adjacency::Gateway {
            port: 1,
            gw: "192.168.2.2".parse().unwrap(),
            mac: Some([2, 0, 0, 0, 2, 2]),
        }]
        .into(),
        neighbours: Arc::new(Default::default()),
        overlay: Default::default(),
        nat: Default::default(),
    }
}

fn frame(dst: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&PORT_MAC);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4::emit_header(&mut f[14..], 46, 1, 64, ipv4::PROTO_UDP, 0xc0a8_0102, dst);
    f
}

/// Measures one pass of the graph over `frames` (fresh heap buffers each time, made
/// outside the measurement) with snapshot `snap` at time `now_ns`.
fn run_frames(
    b: &mut Bencher<'_>,
    graph: &mut Graph<HeapBuf>,
    env: &mut GraphEnv,
    snap: &Snapshot,
    frames: &[Vec<u8>],
    now_ns: u64,
) {
    b.iter_batched(
        || {
            frames
                .iter()
                .map(|f| HeapBuf::from_bytes(f))
                .collect::<Vec<_>>()
        },
        |bufs| {
            graph.input(0, bufs);
            graph.run(snap, now_ns, env);
            // Returned, so freeing the buffers happens outside the measurement.
            black_box(std::mem::take(&mut graph.tx_frames()[1]))
        },
        BatchSize::SmallInput,
    )
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut routes = Vec::new();
    while routes.len() < 100_000 {
        let len = 8 + (rng.next_u32() % 17) as u8;
        let mask = u32::MAX << (32 - u32::from(len));
        routes.push((rng.next_u32() & mask, len));
    }
    routes.sort();
    routes.dedup();
    let snap = snapshot(&routes);
    let frames: Vec<Vec<u8>> = (0..FRAME_CAP)
        .map(|_| {
            let (p, l) = routes[rng.next_u32() as usize % routes.len()];
            frame(p | (rng.next_u32() >> l))
        })
        .collect();
    let stats = Arc::new(WorkerStats::default());
    let mut env = GraphEnv::new(stats.clone(), Arc::new(ArrayQueue::new(16)));
    let mut graph: Graph<HeapBuf> = Graph::new(2, stats.clone());

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(FRAME_CAP as u64));
    g.bench_function("ip4_forward_frame_256", |b| {
        run_frames(b, &mut graph, &mut env, &snap, &frames, 0)
    });

    // Source NAT on port 1: 256 flows from 192.168.1.2, each its own source port.
    let mut nat_snap = snapshot(&routes);
    nat_snap.nat = Arc::new(NatConfig::new(
        Some(1),
        vec![SnatRule {
            vpc: aegis_dataplane::nat::ROUTED_VPC,
            source: "192.168.1.0/24".parse().expect("prefix"),
            address: Ipv4Addr::new(192, 168, 2, 1),
            endpoint_dependent: true,
        }],
        Vec::new(),
    ));
    let nat_frames: Vec<Vec<u8>> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut f = f.clone();
            f[34..36].copy_from_slice(&(20_000 + i as u16).to_be_bytes());
            f[36..38].copy_from_slice(&53u16.to_be_bytes());
            f[38..40].copy_from_slice(&26u16.to_be_bytes());
            f
        })
        .collect();
    env.nat = Some(NatTable::new(1 << 16, 0, 1, NatTimeouts::default()));
    g.bench_function("nat_snat_frame_256", |b| {
        run_frames(b, &mut graph, &mut env, &nat_snap, &nat_frames, 1_000)
    });
    // The same traffic on a gateway that also serves 4,096 floating IPs (none of them on
    // this traffic's path): what a packet costs must not grow with the configuration.
    let mut fip_snap = nat_snap.clone();
    fip_snap.nat = Arc::new(NatConfig::new(
        Some(1),
        nat_snap.nat.snat().to_vec(),
        (0..4096u32)
            .map(|i| FloatingIp {
                vpc: aegis_dataplane::nat::ROUTED_VPC,
                inside: Ipv4Addr::from(0x0a00_0000 + i),
                outside: Ipv4Addr::from(0xc0a8_1000 + i),
            })
            .collect(),
    ));
    g.bench_function("nat_snat_frame_256_beside_4096_floating_ips", |b| {
        run_frames(b, &mut graph, &mut env, &fip_snap, &nat_frames, 1_000)
    });
    let nat = env.nat.as_ref().expect("table");
    // Random destinations include martians (dropped by the input checks): not every flow
    // reaches NAT, but none that does is refused.
    use aegis_dataplane::graph::DropReason;
    assert!(nat.len() > FRAME_CAP / 2, "{} sessions", nat.len());
    for r in [
        DropReason::NatFull,
        DropReason::NatNoPort,
        DropReason::NatUntranslatable,
    ] {
        assert_eq!(stats.drops_for(r), 0, "{r}");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
