//! Conntrack hot-path benchmarks: (a) new connections per second into an empty 1M table,
//! (b) lookup + update of established connections in a 100k table, random order.
#![allow(missing_docs)] // criterion_group! defines an undocumented pub fn.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aegis_dataplane::conntrack::tcp::{ACK, SYN};
use aegis_dataplane::conntrack::{ConnTable, Flow, Timeouts, Update, PROTO_TCP};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// Xorshift64*: reproducible random flows.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` distinct TCP flows from random clients in a /16 to a few servers.
fn flows(n: usize, seed: u64) -> Vec<Flow> {
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.next();
        let f = Flow {
            zone: (r >> 60) as u16,
            proto: PROTO_TCP,
            src: 0x0a00_0000 | (r as u32 & 0xffff),
            dst: 0x0a01_0000 | ((r >> 16) as u32 & 0xf),
            sport: 1024 + ((r >> 20) as u16 % 60000),
            dport: [22, 80, 443, 5432][(r >> 40) as usize & 3],
        };
        if seen.insert(f) {
            out.push(f);
        }
    }
    out
}

fn inserts(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let flows = flows(N, 1);
    let mut group = c.benchmark_group("conntrack");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("insert_1M_from_empty", |b| {
        // Allocating (and writing) the 128 MiB table is construction, not the hot path.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut table = ConnTable::with_seed(N, Timeouts::default(), 7);
                let start = Instant::now();
                for (i, f) in flows.iter().enumerate() {
                    black_box(table.insert(f, SYN, 60, i as u64, 0).unwrap());
                }
                total += start.elapsed();
                assert_eq!(table.len(), N);
            }
            total
        })
    });
    group.finish();
}

fn lookups(c: &mut Criterion) {
    const N: usize = 100_000;
    const BATCH: usize = 1024;
    let flows = flows(N, 2);
    let mut table = ConnTable::with_seed(N, Timeouts::default(), 9);
    for f in &flows {
        table.insert(f, ACK, 60, 0, 0).unwrap();
    }
    // Random flows, half of them seen from the reply side.
    let mut rng = Rng(3);
    let picks: Vec<Flow> = (0..1 << 20)
        .map(|_| {
            let r = rng.next();
            let f = flows[(r % N as u64) as usize];
            if r >> 63 == 1 {
                f.reversed()
            } else {
                f
            }
        })
        .collect();
    let mut next = 0usize;
    let mut now = 1u64;
    let mut group = c.benchmark_group("conntrack");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("lookup_update_100k_established", |b| {
        b.iter_batched(
            || {
                next = (next + BATCH) % picks.len();
                now += 1000;
                (next, now)
            },
            |(start, now)| {
                for f in &picks[start..start + BATCH] {
                    let hit = table.lookup(f, now).unwrap();
                    let r = table.update(black_box(hit), ACK, 1400, now);
                    assert_eq!(r, Update::Ok);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, inserts, lookups);
criterion_main!(benches);
