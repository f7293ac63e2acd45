//! East-west pipeline on one core, heap buffers (no EAL), 64-byte inner frames, with 100k
//! established connections in the worker's table:
//! - `vm_to_geneve`: a VM's frame on host a → vm-input (port security) → vpc-route (L3,
//!   TTL, MACs) → security-group (established entry) → Geneve encap → underlay lookup and
//!   rewrite → underlay tx;
//! - `geneve_to_vm`: host b → ip4 input → Geneve decap → security-group (established
//!   ingress entry) → VM port tx.
//!
//! Each direction's frames are replayed once before measuring so that every flow is an
//! established connection; the table then holds 100k entries per host.
//! - `vm_to_geneve_new_connections`: the `vm_to_geneve` path where every packet is the
//!   first of a new flow (egress rules evaluated, an entry inserted): the connection setup
//!   rate of one core, 200k new connections per measured pass into an empty 262k table.
#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use std::hint::black_box;

use aegis_dataplane::buf::heap::HeapBuf;
use aegis_dataplane::graph::FRAME_CAP;
use aegis_dataplane::overlay::ROUTER_MAC;
use aegis_dataplane::testkit::overlay::{vm_frame, HostPipeline, B1_MAC};
use aegis_dataplane::wire::ipv4::PROTO_UDP;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const FLOWS: usize = 100_000;

fn flows() -> usize {
    std::env::var("EW_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FLOWS)
}

/// A 60-byte frame (64 on the wire with the FCS) of flow `i`, b1 → b2 through the router.
fn flow_frame(i: usize) -> Vec<u8> {
    let sport = 1024 + (i % 50_000) as u16;
    let dport = 1 + (i / 50_000) as u16;
    let mut udp = vec![0u8; 26];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&26u16.to_be_bytes());
    vm_frame(
        B1_MAC,
        ROUTER_MAC,
        "10.1.1.11",
        "10.1.1.12",
        PROTO_UDP,
        &udp,
    )
}

/// Runs every frame through `h` from `port` in frames of [`FRAME_CAP`]; returns what
/// came out of `out_port`.
fn replay(h: &mut HostPipeline, port: u16, frames: &[Vec<u8>], out_port: usize) -> Vec<Vec<u8>> {
    let mut sent = Vec::with_capacity(frames.len());
    for chunk in frames.chunks(FRAME_CAP) {
        let out = h.run(port, chunk);
        sent.extend(out[out_port].iter().cloned());
    }
    sent
}

fn bench(c: &mut Criterion) {
    let frames: Vec<Vec<u8>> = (0..flows()).map(flow_frame).collect();
    let mut a = HostPipeline::new("a", 1 << 18);
    let mut b = HostPipeline::new("b", 1 << 18);
    // Establish: every flow once through both hosts.
    let wire = replay(&mut a, 1, &frames, 0);
    assert_eq!(
        wire.len(),
        frames.len(),
        "host a encapsulates every flow: {:?}",
        a.drop_summary()
    );
    let delivered = replay(&mut b, 0, &wire, 1);
    assert_eq!(
        delivered.len(),
        frames.len(),
        "host b delivers every flow: {:?}",
        b.drop_summary()
    );
    assert_eq!(a.env.conntrack.len(), frames.len());
    assert_eq!(b.env.conntrack.len(), frames.len());

    let mut g = c.benchmark_group("eastwest");
    g.throughput(Throughput::Elements(FRAME_CAP as u64));
    let mut next = 0usize;
    g.bench_function("vm_to_geneve_est100k", |bch| {
        bch.iter_batched(
            || {
                next = (next + 7919 * FRAME_CAP) % (frames.len() - FRAME_CAP);
                frames[next..next + FRAME_CAP]
                    .iter()
                    .map(|f| HeapBuf::from_bytes(f))
                    .collect::<Vec<_>>()
            },
            |bufs| {
                a.graph.input(1, bufs);
                a.graph.run(&a.snap, a.now_ns, &mut a.env);
                black_box(std::mem::take(&mut a.graph.tx_frames()[0]))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("geneve_to_vm_est100k", |bch| {
        bch.iter_batched(
            || {
                next = (next + 7919 * FRAME_CAP) % (frames.len() - FRAME_CAP);
                wire[next..next + FRAME_CAP]
                    .iter()
                    .map(|f| HeapBuf::from_bytes(f))
                    .collect::<Vec<_>>()
            },
            |bufs| {
                b.graph.input(0, bufs);
                b.graph.run(&b.snap, b.now_ns, &mut b.env);
                black_box(std::mem::take(&mut b.graph.tx_frames()[1]))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    new_connections(c);
    let drops: u64 = a
        .drop_summary()
        .iter()
        .chain(b.drop_summary().iter())
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        drops,
        0,
        "a: {:?} b: {:?}",
        a.drop_summary(),
        b.drop_summary()
    );
    for (name, h) in [("host a", &a), ("host b", &b)] {
        let per_node: Vec<String> = aegis_dataplane::graph::RUNTIME_SLOTS
            .iter()
            .zip(h.env.stats.nodes.iter())
            .filter_map(|(n, c)| {
                let p = c.packets.load(std::sync::atomic::Ordering::Relaxed);
                let k = c.clocks.load(std::sync::atomic::Ordering::Relaxed);
                (p > 0).then(|| format!("{n} {:.0}", k as f64 / p as f64))
            })
            .collect();
        eprintln!("{name} clocks/packet by node: {}", per_node.join(", "));
    }
}

/// New connections per second through host a's whole egress path.
fn new_connections(c: &mut Criterion) {
    const NEW: usize = 200_000;
    // Flows 100k.. are not among the established ones above (and each is distinct).
    let frames: Vec<Vec<u8>> = (0..NEW).map(|i| flow_frame(FLOWS + i)).collect();
    let mut g = c.benchmark_group("eastwest");
    g.throughput(Throughput::Elements(NEW as u64));
    g.sample_size(10);
    g.bench_function("vm_to_geneve_new_connections", |bch| {
        bch.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                // A fresh host with an empty table; building it and the buffers is set-up.
                let mut a = HostPipeline::new("a", 1 << 18);
                let mut bufs: Vec<Vec<HeapBuf>> = frames
                    .chunks(FRAME_CAP)
                    .map(|ch| ch.iter().map(|f| HeapBuf::from_bytes(f)).collect())
                    .collect();
                let start = std::time::Instant::now();
                let mut sent = 0;
                for chunk in bufs.iter_mut() {
                    a.graph.input(1, chunk.drain(..));
                    a.graph.run(&a.snap, a.now_ns, &mut a.env);
                    sent += std::mem::take(&mut a.graph.tx_frames()[0]).len();
                }
                total += start.elapsed();
                assert_eq!(
                    sent,
                    NEW,
                    "every new flow encapsulated: {:?}",
                    a.drop_summary()
                );
                assert_eq!(a.env.conntrack.len(), NEW);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
