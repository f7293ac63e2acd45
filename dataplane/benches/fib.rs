//! Bulk longest-prefix-match lookups (bursts of 32) over a table of 100k random routes with
//! lengths 8..=32 (a third of them longer than /24, so many destinations take the tbl8
//! hop), for destination sets of several sizes.

use std::hint::black_box;
use std::net::Ipv4Addr;

use aegis_dataplane::fib::Fib;
use aegis_dataplane::testkit::Rng;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn table(routes: usize, rng: &mut Rng) -> Fib {
    let mut fib = Fib::new();
    while fib.len() < routes {
        let len = 8 + (rng.next_u32() % 25) as u8;
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        let prefix = Ipv4Addr::from(rng.next_u32() & mask);
        let nh = rng.next_u32() % (1 << 20);
        fib.insert(prefix, len, nh).expect("valid route");
    }
    fib
}

fn bench_lookup(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let fib = table(100_000, &mut rng);
    let mut group = c.benchmark_group("fib_lookup_bulk");
    for &(name, flows) in &[("random", 1 << 20), ("flows_4k", 4096), ("flows_256", 256)] {
        // "random": a million destinations, nearly every lookup misses the caches and the
        // TLB (the tables span 64 MiB), the worst case. "flows_N": N distinct destinations,
        // like a traffic mix of N flows.
        let pool: Vec<u32> = (0..flows).map(|_| rng.next_u32()).collect();
        let dsts: Vec<u32> = (0..(1 << 16))
            .map(|_| pool[(rng.next_u32() as usize) % pool.len()])
            .collect();
        let mut out = vec![0u32; 32];
        group.throughput(Throughput::Elements(32));
        group.bench_with_input(BenchmarkId::new("burst32", name), &dsts, |b, dsts| {
            let mut i = 0;
            b.iter(|| {
                let burst = &dsts[i..i + 32];
                i = (i + 32) % dsts.len();
                fib.lookup_bulk(black_box(burst), &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
