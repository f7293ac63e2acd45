//! NAT session table hot path, the table alone (no packets): established sessions looked up
//! and refreshed in frames of 32 in random order, the way `ip4-forward` and `gateway-output`
//! use it — each frame's index lines and sessions prefetched first (the second stage gives
//! each key the slot its session probably is in), then every packet's
//! `outbound_touch_hinted` (inside → outside) or `find_outside_hinted` + `touch_at`
//! (outside → inside), starting at that slot.
//! Two shapes: 1,024 live sessions in a table sized for 262,144 (what `scripts/bench.sh`
//! replays), and 100,000 live sessions (a busy gateway: the lookups miss the caches).
//! Also the pass a worker makes over its sessions after a NAT configuration change
//! (`revoke`, in the worker's slices of 1,024 slots), with a configuration that still grants
//! every session: what any change costs, with 100,000 sessions.
#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use std::hint::black_box;

use aegis_dataplane::nat::{
    InsideKey, NatConfig, NatTable, NatTimeouts, OutsideKey, SnatRule, Translation,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Packets per frame.
const FRAME: usize = 32;
/// Table capacity (the dataplane's default `connections`).
const CAPACITY: usize = 262_144;

/// Xorshift64*: reproducible random keys and order.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A table with `n` established UDP sessions (endpoint-dependent source NAT to 192.0.2.1),
/// their inside and outside keys, and an access order of `4 * n` random picks.
fn table(n: usize) -> (NatTable, Vec<InsideKey>, Vec<OutsideKey>, Vec<u32>) {
    let mut t = NatTable::new(CAPACITY, 0, 1, NatTimeouts::default()).without_events();
    let mut rng = Rng(7);
    let tr = Translation::Snat {
        ip: 0xc000_0201,
        endpoint_dependent: true,
    };
    let mut inside = Vec::with_capacity(n);
    let mut outside = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    while inside.len() < n {
        let r = rng.next();
        let k = InsideKey {
            vpc: 100,
            proto: 17,
            inside_ip: 0x0a01_0000 | (r as u32 & 0xffff),
            inside_port: 1024 + (r >> 16) as u16 % 60000,
            remote_ip: 0xc633_6400 | ((r >> 32) as u32 & 0xff),
            remote_port: 443,
        };
        if !seen.insert(k) {
            continue;
        }
        let (ip, port) = t.outbound_touch(&k, tr, 0, 1).expect("room");
        inside.push(k);
        outside.push(OutsideKey {
            proto: 17,
            outside_ip: ip,
            outside_port: port,
            remote_ip: k.remote_ip,
            remote_port: k.remote_port,
        });
    }
    let order = (0..4 * n).map(|_| (rng.next() % n as u64) as u32).collect();
    (t, inside, outside, order)
}

fn established(c: &mut Criterion) {
    let tr = Translation::Snat {
        ip: 0xc000_0201,
        endpoint_dependent: true,
    };
    let mut group = c.benchmark_group("nat");
    for (n, name) in [(1_024, "1k_of_262k"), (100_000, "100k_of_262k")] {
        let (mut t, inside, outside, order) = table(n);
        group.throughput(Throughput::Elements(order.len() as u64));
        group.bench_function(format!("outbound_{name}"), |b| {
            b.iter(|| {
                for frame in order.chunks(FRAME) {
                    let mut hints = [0u64; FRAME];
                    for (h, &i) in hints.iter_mut().zip(frame) {
                        *h = t.prefetch_inside(&inside[i as usize]);
                    }
                    for h in &mut hints[..frame.len()] {
                        *h = u64::from(t.prefetch_session(false, *h));
                    }
                    for (&h, &i) in hints.iter().zip(frame) {
                        let k = &inside[i as usize];
                        black_box(t.outbound_touch_hinted(k, h as u32, tr, 0, 2).ok());
                    }
                }
            })
        });
        group.bench_function(format!("inbound_{name}"), |b| {
            b.iter(|| {
                for frame in order.chunks(FRAME) {
                    let mut hints = [0u64; FRAME];
                    for (h, &i) in hints.iter_mut().zip(frame) {
                        *h = t.prefetch_outside(&outside[i as usize]);
                    }
                    for h in &mut hints[..frame.len()] {
                        *h = u64::from(t.prefetch_session(true, *h));
                    }
                    for (&h, &i) in hints.iter().zip(frame) {
                        let k = &outside[i as usize];
                        if let Some((slot, _)) = t.find_outside_hinted(k, h as u32, 2) {
                            black_box(t.touch_at(slot, true, 0, 2));
                        }
                    }
                }
            })
        });
        assert_eq!(t.len(), n, "no session lost");
    }
    group.finish();
}

fn revocation_pass(c: &mut Criterion) {
    let (mut t, _, _, _) = table(100_000);
    let cfg = NatConfig::new(
        Some(1),
        vec![SnatRule {
            vpc: 100,
            source: "10.1.0.0/16".parse().expect("prefix"),
            address: std::net::Ipv4Addr::from(0xc000_0201),
            endpoint_dependent: true,
        }],
        Vec::new(),
    );
    let mut group = c.benchmark_group("nat");
    group.throughput(Throughput::Elements(t.len() as u64));
    group.bench_function("revoke_pass_100k_sessions_all_kept", |b| {
        b.iter(|| {
            let end = t.high_water();
            let mut removed = 0;
            for start in (0..end).step_by(1024) {
                removed += t.revoke(&cfg, start..(start + 1024).min(end), 2);
            }
            black_box(removed)
        })
    });
    assert_eq!(t.len(), 100_000, "every session still granted");
    group.finish();
}

criterion_group!(benches, established, revocation_pass);
criterion_main!(benches);
