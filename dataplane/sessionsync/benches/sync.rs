//! Sync throughput on one core: events pushed on the master, batched, signed, decoded,
//! verified and applied to the backup's replica, and the acks back — the whole path but the
//! UDP sockets. `cargo bench -p aegis-sessionsync` (events/s = elements/s).

use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use aegis_sessionsync::{
    Key, NatKind, Op, Receiver, Record, Replica, Sender, SenderConfig, SessionKey,
};

const BATCH: u32 = 10_000;

fn record(i: u32) -> Record {
    Record {
        op: if i.is_multiple_of(4) {
            Op::Update
        } else {
            Op::Add
        },
        key: SessionKey {
            vpc: 100,
            proto: 6,
            inside_ip: Ipv4Addr::from(0x0a01_0000 + (i % 65_536)),
            inside_port: 10_000 + (i % 50_000) as u16,
            remote_ip: Ipv4Addr::new(198, 51, 100, 7),
            remote_port: 443,
        },
        nat: NatKind::SnatEndpointDependent,
        outside_ip: Ipv4Addr::new(203, 0, 113, 10),
        outside_port: 1024 + (i % 60_000) as u16,
        state: 3,
        expires_in_ms: 7_200_000,
    }
}

fn sync(c: &mut Criterion) {
    let key = Key::new(b"bench key");
    let mut cfg = SenderConfig::new(1, 1, 1);
    cfg.window = 1024;
    let mut sender = Sender::new(cfg, key.clone());
    let mut receiver = Receiver::new(1, 2, key);
    let mut replica = Replica::new();
    let now = Duration::ZERO;
    for d in receiver.poll(now) {
        sender.receive(&d).unwrap();
    }
    sender.begin_bulk(std::iter::empty());
    let mut g = c.benchmark_group("sessionsync");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    let mut n = 0u32;
    g.bench_function("events_master_to_backup", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                sender.push(record(n));
                n = n.wrapping_add(1);
            }
            while sender.lag() > 0 {
                for d in sender.poll(now) {
                    receiver.receive(&d, &mut replica).unwrap();
                }
                for d in receiver.poll(now) {
                    sender.receive(&d).unwrap();
                }
            }
        })
    });
    g.finish();
    assert!(receiver.synced());
}

criterion_group!(benches, sync);
criterion_main!(benches);
