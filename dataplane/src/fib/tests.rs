//! FIB tests: edge cases, then randomized cross-checks against a linear-scan reference.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::*;

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.u32() % n
    }
}

/// Reference: longest match by scanning every route.
fn reference(routes: &BTreeMap<Prefix, u32>, dst: u32) -> Option<u32> {
    routes
        .iter()
        .filter(|(p, _)| p.contains_bits(dst))
        .max_by_key(|(p, _)| p.length())
        .map(|(_, &nh)| nh)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn at(fib: &Fib, s: &str) -> Option<u32> {
    fib.lookup(u32::from(ip(s)))
}

/// Checks every interesting destination (each route's edges and their neighbours, plus
/// random ones) against the reference, singly and in bulk, and the tbl8 accounting.
fn check(fib: &Fib, model: &BTreeMap<Prefix, u32>, rng: &mut Rng, random: usize) {
    let mut dsts: Vec<u32> = (0..random).map(|_| rng.u32()).collect();
    for p in model.keys() {
        dsts.extend([
            p.first(),
            p.last(),
            p.first().wrapping_sub(1),
            p.last().wrapping_add(1),
            p.first() | (rng.u32() & !Prefix::mask(p.length())),
        ]);
    }
    let mut out = vec![0; dsts.len()];
    fib.lookup_bulk(&dsts, &mut out);
    for (&d, &bulk) in dsts.iter().zip(&out) {
        let want = reference(model, d);
        assert_eq!(fib.lookup(d), want, "lookup {}", Ipv4Addr::from(d));
        assert_eq!(
            bulk,
            want.unwrap_or(Fib::MISS),
            "bulk {}",
            Ipv4Addr::from(d)
        );
    }
    assert_eq!(fib.len(), model.len());
    let got: Vec<_> = fib.routes().collect();
    let want: Vec<_> = model
        .iter()
        .map(|(p, &nh)| (p.addr(), p.length(), nh))
        .collect();
    assert_eq!(got, want, "routes() differs from the model");
    let split: BTreeSet<u32> = model
        .keys()
        .filter(|p| p.length() > 24)
        .map(|p| p.bits() >> 8)
        .collect();
    assert_eq!(
        fib.tbl8_groups() as usize,
        split.len(),
        "tbl8 groups leaked"
    );
}

/// A random prefix: mostly fresh, sometimes nested inside an existing one, with lengths
/// spread over 0..=32 and extra weight on /24, /32 and the boundary around 24.
fn random_prefix(rng: &mut Rng, model: &BTreeMap<Prefix, u32>) -> Prefix {
    let len = match rng.below(10) {
        0 => 32,
        1 => 24,
        2 => 23 + rng.below(4) as u8,
        _ => rng.below(33) as u8,
    };
    let base = if !model.is_empty() && rng.below(3) == 0 {
        // Nest inside (or around) an existing route.
        let n = rng.below(model.len() as u32) as usize;
        let parent = model.keys().nth(n).unwrap();
        parent.first() | (rng.u32() & !Prefix::mask(parent.length()))
    } else {
        rng.u32()
    };
    Prefix::truncate(Ipv4Addr::from(base), len).unwrap()
}

#[test]
fn empty_table_misses() {
    let fib = Fib::new();
    assert!(fib.is_empty());
    assert_eq!(at(&fib, "1.2.3.4"), None);
    let mut out = [0; 3];
    fib.lookup_bulk(&[0, 1, u32::MAX], &mut out);
    assert_eq!(out, [Fib::MISS; 3]);
}

#[test]
fn default_route_and_host_routes() {
    let mut fib = Fib::new();
    fib.insert(ip("0.0.0.0"), 0, 7).unwrap();
    fib.insert(ip("255.255.255.255"), 32, 9).unwrap();
    fib.insert(ip("0.0.0.0"), 32, 8).unwrap();
    assert_eq!(at(&fib, "0.0.0.0"), Some(8));
    assert_eq!(at(&fib, "0.0.0.1"), Some(7));
    assert_eq!(at(&fib, "255.255.255.254"), Some(7));
    assert_eq!(at(&fib, "255.255.255.255"), Some(9));
    assert_eq!(fib.remove(ip("0.0.0.0"), 0), Ok(7));
    assert_eq!(at(&fib, "0.0.0.1"), None);
    assert_eq!(at(&fib, "0.0.0.0"), Some(8));
    assert_eq!(fib.tbl8_groups(), 2);
    fib.remove(ip("0.0.0.0"), 32).unwrap();
    fib.remove(ip("255.255.255.255"), 32).unwrap();
    assert_eq!(fib.tbl8_groups(), 0);
    assert_eq!(at(&fib, "0.0.0.0"), None);
    assert!(fib.is_empty());
}

#[test]
fn nested_prefixes_and_deletes_refill_from_less_specific() {
    let mut fib = Fib::new();
    fib.insert(ip("10.0.0.0"), 8, 1).unwrap();
    fib.insert(ip("10.1.0.0"), 16, 2).unwrap();
    fib.insert(ip("10.1.2.0"), 24, 3).unwrap();
    fib.insert(ip("10.1.2.128"), 25, 4).unwrap();
    fib.insert(ip("10.1.2.200"), 32, 5).unwrap();
    assert_eq!(at(&fib, "10.9.9.9"), Some(1));
    assert_eq!(at(&fib, "10.1.9.9"), Some(2));
    assert_eq!(at(&fib, "10.1.2.1"), Some(3));
    assert_eq!(at(&fib, "10.1.2.129"), Some(4));
    assert_eq!(at(&fib, "10.1.2.200"), Some(5));
    // Remove the middle /24: its exposed part falls back to the /16, the /25 stays.
    assert_eq!(fib.remove(ip("10.1.2.0"), 24), Ok(3));
    assert_eq!(at(&fib, "10.1.2.1"), Some(2));
    assert_eq!(at(&fib, "10.1.2.129"), Some(4));
    assert_eq!(at(&fib, "10.1.2.200"), Some(5));
    // Replace the /16 while the /25 and /32 sit inside it.
    fib.insert(ip("10.1.0.0"), 16, 6).unwrap();
    assert_eq!(at(&fib, "10.1.2.1"), Some(6));
    assert_eq!(at(&fib, "10.1.2.200"), Some(5));
    fib.remove(ip("10.1.2.128"), 25).unwrap();
    assert_eq!(at(&fib, "10.1.2.129"), Some(6));
    assert_eq!(at(&fib, "10.1.2.200"), Some(5));
    assert_eq!(fib.tbl8_groups(), 1);
    fib.remove(ip("10.1.2.200"), 32).unwrap();
    assert_eq!(fib.tbl8_groups(), 0);
    assert_eq!(at(&fib, "10.1.2.200"), Some(6));
    fib.remove(ip("10.1.0.0"), 16).unwrap();
    assert_eq!(at(&fib, "10.1.2.200"), Some(1));
}

#[test]
fn short_route_inserted_after_long_ones_keeps_them() {
    let mut fib = Fib::new();
    fib.insert(ip("192.168.1.64"), 26, 1).unwrap();
    fib.insert(ip("192.168.0.0"), 24, 2).unwrap();
    fib.insert(ip("192.0.0.0"), 8, 3).unwrap();
    assert_eq!(at(&fib, "192.168.1.63"), Some(3));
    assert_eq!(at(&fib, "192.168.1.64"), Some(1));
    assert_eq!(at(&fib, "192.168.1.128"), Some(3));
    assert_eq!(at(&fib, "192.168.0.9"), Some(2));
    assert_eq!(at(&fib, "193.0.0.0"), None);
}

#[test]
fn rejects_bad_input_without_changing_anything() {
    let mut fib = Fib::new();
    fib.insert(ip("10.0.0.0"), 8, 1).unwrap();
    let err = fib.insert(ip("10.0.0.1"), 8, 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "prefix 10.0.0.1/8 has host bits set (the network is 10.0.0.0/8)"
    );
    assert!(matches!(
        fib.insert(ip("10.0.0.0"), 33, 2),
        Err(FibError::BadLength { len: 33, .. })
    ));
    assert!(matches!(
        fib.insert(ip("10.0.0.0"), 8, Fib::MISS),
        Err(FibError::NextHopRange { .. })
    ));
    assert_eq!(
        fib.remove(ip("10.0.0.0"), 9).unwrap_err().to_string(),
        "no route for 10.0.0.0/9"
    );
    assert_eq!(fib.len(), 1);
    assert_eq!(at(&fib, "10.200.0.0"), Some(1));
    // The largest next hop is accepted and at least 2^20 distinct ones fit.
    fib.insert(ip("11.0.0.0"), 8, Fib::MAX_NEXT_HOP).unwrap();
    assert_eq!(at(&fib, "11.0.0.0"), Some(Fib::MAX_NEXT_HOP));
}

#[test]
fn tbl8_exhaustion_is_atomic_and_groups_are_reused() {
    let mut fib = Fib::with_tbl8_groups(2);
    fib.insert(ip("10.0.0.0"), 25, 1).unwrap();
    fib.insert(ip("10.0.0.128"), 25, 2).unwrap(); // same /24, same group
    fib.insert(ip("10.0.1.0"), 32, 3).unwrap();
    let p = Prefix::new(ip("10.0.2.0"), 26).unwrap();
    assert!(!fib.has_room_for(&p));
    let err = fib.insert(ip("10.0.2.0"), 26, 4).unwrap_err();
    assert!(
        matches!(err, FibError::Tbl8Exhausted { limit: 2, .. }),
        "{err}"
    );
    assert_eq!(fib.len(), 3);
    assert_eq!(at(&fib, "10.0.2.0"), None);
    fib.remove(ip("10.0.1.0"), 32).unwrap();
    assert!(fib.has_room_for(&p));
    fib.insert(ip("10.0.2.0"), 26, 4).unwrap();
    assert_eq!(at(&fib, "10.0.2.1"), Some(4));
    assert_eq!(at(&fib, "10.0.1.0"), None);
}

#[test]
fn clones_are_independent() {
    let mut a = Fib::new();
    a.insert(ip("10.0.0.0"), 8, 1).unwrap();
    a.insert(ip("10.0.0.0"), 30, 2).unwrap();
    let mut b = a.clone();
    b.insert(ip("10.0.0.0"), 8, 3).unwrap();
    b.insert(ip("10.0.0.0"), 31, 4).unwrap();
    b.remove(ip("10.0.0.0"), 30).unwrap();
    b.insert(ip("0.0.0.0"), 0, 5).unwrap();
    assert_eq!(at(&a, "10.1.0.0"), Some(1));
    assert_eq!(at(&a, "10.0.0.1"), Some(2));
    assert_eq!(at(&a, "10.0.0.2"), Some(2));
    assert_eq!(at(&a, "99.0.0.0"), None);
    assert_eq!(at(&b, "10.1.0.0"), Some(3));
    assert_eq!(at(&b, "10.0.0.1"), Some(4));
    assert_eq!(at(&b, "10.0.0.2"), Some(3));
    assert_eq!(at(&b, "99.0.0.0"), Some(5));
}

#[test]
fn routes_are_sorted() {
    let mut fib = Fib::new();
    for (p, l) in [
        ("10.1.0.0", 16),
        ("0.0.0.0", 0),
        ("10.0.0.0", 8),
        ("9.0.0.0", 8),
    ] {
        fib.insert(ip(p), l, u32::from(l)).unwrap();
    }
    let got: Vec<_> = fib.routes().map(|(p, l, _)| format!("{p}/{l}")).collect();
    assert_eq!(got, ["0.0.0.0/0", "9.0.0.0/8", "10.0.0.0/8", "10.1.0.0/16"]);
}

#[test]
fn random_tables_match_reference() {
    for seed in 1..=4u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut fib = Fib::new();
        let mut model = BTreeMap::new();
        for round in 0..3 {
            // Grow: add (or replace) routes.
            for _ in 0..700 {
                let p = random_prefix(&mut rng, &model);
                let nh = rng.below(1 << 20);
                fib.insert_prefix(p, nh).unwrap();
                model.insert(p, nh);
            }
            check(&fib, &model, &mut rng, 2000);
            // Shrink: delete a random third, keeping a clone to prove copy-on-write.
            let before = fib.clone();
            let before_model = model.clone();
            let keys: Vec<Prefix> = model.keys().copied().collect();
            for p in keys {
                if rng.below(3) == 0 {
                    assert_eq!(fib.remove_prefix(p), Ok(model.remove(&p).unwrap()));
                }
            }
            check(&fib, &model, &mut rng, 2000);
            if round == 0 {
                check(&before, &before_model, &mut rng, 500);
            }
        }
        // Empty it completely: every entry must be a miss again and no group left.
        let keys: Vec<Prefix> = model.keys().copied().collect();
        for p in keys {
            fib.remove_prefix(p).unwrap();
        }
        model.clear();
        check(&fib, &model, &mut rng, 2000);
    }
}
