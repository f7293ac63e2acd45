//! A master's table and a backup's replica over a simulated underlay that loses 10 % of the
//! datagrams each way and reorders them (0–3 ms of delay each): with sessions added, updated
//! and deleted all along, a backup that joins late, a backup that restarts and a master that
//! restarts, the replica converges to the master's table. Forged and truncated datagrams
//! are refused, counted, and change nothing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use aegis_sessionsync::{
    wire, Key, NatKind, Op, Receiver, Record, Replica, Sender, SenderConfig, SessionKey,
};

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One direction of the underlay.
struct Wire {
    loss_percent: u64,
    in_flight: Vec<(Duration, Vec<u8>)>,
    sent: u64,
    lost: u64,
}

impl Wire {
    fn new(loss_percent: u64) -> Wire {
        Wire {
            loss_percent,
            in_flight: Vec::new(),
            sent: 0,
            lost: 0,
        }
    }
    fn send(&mut self, rng: &mut Rng, now: Duration, d: Vec<u8>) {
        self.sent += 1;
        if rng.below(100) < self.loss_percent {
            self.lost += 1;
            return;
        }
        let delay = Duration::from_micros(rng.below(3000));
        self.in_flight.push((now + delay, d));
    }
    fn arrived(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|(t, _)| *t <= now);
        self.in_flight = later;
        due.into_iter().map(|(_, d)| d).collect()
    }
}

fn key(i: u32) -> SessionKey {
    SessionKey {
        vpc: 100 + i % 3,
        proto: if i.is_multiple_of(5) { 17 } else { 6 },
        inside_ip: Ipv4Addr::from(0x0a01_0000 + (i % 4000)),
        inside_port: 10_000 + (i % 50_000) as u16,
        remote_ip: Ipv4Addr::from(0xc633_6400 + (i % 200)),
        remote_port: 443,
    }
}

fn record(i: u32, op: Op, state: u8) -> Record {
    Record {
        op,
        key: key(i),
        nat: match i % 3 {
            0 => NatKind::SnatEndpointDependent,
            1 => NatKind::SnatEndpointIndependent,
            _ => NatKind::FloatingIp,
        },
        outside_ip: Ipv4Addr::new(203, 0, 113, 10 + (i % 4) as u8),
        outside_port: 1024 + (i % 60_000) as u16,
        state,
        expires_in_ms: 7_200_000,
    }
}

struct Master {
    table: BTreeMap<SessionKey, Record>,
    sender: Sender,
    next_id: u32,
}

impl Master {
    fn new(epoch: u32, key: &Key, table: BTreeMap<SessionKey, Record>, next_id: u32) -> Master {
        let mut cfg = SenderConfig::new(7, 1, epoch);
        cfg.window = 64;
        Master {
            table,
            sender: Sender::new(cfg, key.clone()),
            next_id,
        }
    }

    /// A millisecond of traffic: new sessions, state changes, closes.
    fn churn(&mut self, rng: &mut Rng) {
        for _ in 0..20 {
            let r = record(self.next_id, Op::Add, 1);
            self.next_id += 1;
            self.table.insert(r.key, r);
            self.sender.push(r);
        }
        for _ in 0..10 {
            let id = rng.below(u64::from(self.next_id)) as u32;
            if let Some(r) = self.table.get_mut(&key(id)) {
                r.state = (r.state % 9) + 1;
                let mut u = *r;
                u.op = Op::Update;
                self.sender.push(u);
            }
        }
        for _ in 0..5 {
            let id = rng.below(u64::from(self.next_id)) as u32;
            if let Some(mut r) = self.table.remove(&key(id)) {
                r.op = Op::Delete;
                self.sender.push(r);
            }
        }
    }

    fn replica(&self) -> Replica {
        let mut r = Replica::new();
        for s in self.table.values() {
            r.apply(s);
        }
        r
    }
}

struct Sim {
    rng: Rng,
    to_backup: Wire,
    to_master: Wire,
    now: Duration,
}

impl Sim {
    /// One millisecond: the master sends, datagrams arrive, the backup acks.
    fn step(&mut self, m: &mut Master, b: &mut Receiver, replica: &mut Replica) {
        if m.sender.needs_bulk() {
            let all: Vec<Record> = m.table.values().copied().collect();
            m.sender.begin_bulk(all);
        }
        for d in m.sender.poll(self.now) {
            self.to_backup.send(&mut self.rng, self.now, d);
        }
        for d in self.to_backup.arrived(self.now) {
            b.receive(&d, replica).expect("authentic datagram");
        }
        for d in b.poll(self.now) {
            self.to_master.send(&mut self.rng, self.now, d);
        }
        for d in self.to_master.arrived(self.now) {
            m.sender.receive(&d).expect("authentic datagram");
        }
        self.now += Duration::from_millis(1);
    }

    /// Steps without new traffic until the replica equals the table (or `limit` passes).
    fn converge(
        &mut self,
        m: &mut Master,
        b: &mut Receiver,
        replica: &mut Replica,
        limit: Duration,
    ) -> Duration {
        let start = self.now;
        while self.now < start + limit {
            self.step(m, b, replica);
            if b.synced() && m.sender.lag() == 0 && replica.same_sessions(&m.replica()) {
                return self.now - start;
            }
        }
        panic!(
            "no convergence in {limit:?}: synced {}, lag {}, replica {} vs table {}\nsender {:?}\nreceiver {:?}",
            b.synced(),
            m.sender.lag(),
            replica.len(),
            m.table.len(),
            m.sender.stats(),
            b.stats()
        );
    }
}

#[test]
fn the_backup_converges_under_ten_percent_loss_through_restarts_of_either_side() {
    let key = Key::new(b"group 7 shared secret");
    let mut sim = Sim {
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        to_backup: Wire::new(10),
        to_master: Wire::new(10),
        now: Duration::ZERO,
    };
    let mut table = BTreeMap::new();
    for i in 0..5000 {
        let r = record(i, Op::Add, 3);
        table.insert(r.key, r);
    }
    let mut master = Master::new(1, &key, table, 5000);
    let mut backup = Receiver::new(7, 2, key.clone());
    let mut replica = Replica::new();

    // Traffic from the start; the backup joins with nothing and asks for a bulk resync.
    for _ in 0..500 {
        master.churn(&mut sim.rng);
        sim.step(&mut master, &mut backup, &mut replica);
    }
    assert!(
        backup.synced(),
        "bulk resync done under churn: {:?}",
        backup.stats()
    );

    // The backup restarts: a new receiver with an empty replica.
    backup = Receiver::new(7, 2, key.clone());
    replica = Replica::new();
    for _ in 0..500 {
        master.churn(&mut sim.rng);
        sim.step(&mut master, &mut backup, &mut replica);
    }
    assert!(backup.synced(), "resynced after its restart");

    // The master restarts (new epoch) with the same table, as after a failback.
    let table = master.table.clone();
    let next = master.next_id;
    master = Master::new(2, &key, table, next);
    for _ in 0..500 {
        master.churn(&mut sim.rng);
        sim.step(&mut master, &mut backup, &mut replica);
    }
    let took = sim.converge(
        &mut master,
        &mut backup,
        &mut replica,
        Duration::from_secs(5),
    );
    assert!(replica.same_sessions(&master.replica()));
    let s = master.sender.stats();
    let r = backup.stats();
    eprintln!(
        "converged {took:?} after the traffic stopped; {} sessions; sender {s:?}; receiver {r:?}; \
         lost {} of {} datagrams to the backup, {} of {} acks",
        replica.len(),
        sim.to_backup.lost,
        sim.to_backup.sent,
        sim.to_master.lost,
        sim.to_master.sent
    );
    assert!(s.resends > 0, "loss forced resends");
    assert!(r.out_of_order > 0, "reordering was exercised");
    assert!(r.bulk_completed >= 1);
    assert!(sim.to_backup.lost * 100 / sim.to_backup.sent >= 8);
}

#[test]
fn forged_truncated_and_foreign_datagrams_are_refused_and_counted() {
    let key = Key::new(b"right");
    let mut sender = Sender::new(SenderConfig::new(7, 1, 1), key.clone());
    let mut backup = Receiver::new(7, 2, key.clone());
    let mut replica = Replica::new();
    // Sync one session properly.
    for d in backup.poll(Duration::ZERO) {
        sender.receive(&d).unwrap();
    }
    assert!(sender.needs_bulk());
    sender.begin_bulk([record(1, Op::Add, 3)]);
    for d in sender.poll(Duration::ZERO) {
        backup.receive(&d, &mut replica).unwrap();
    }
    assert!(backup.synced());
    assert_eq!(replica.len(), 1);

    // A forger without the key tries to delete it and to add one.
    let forged = Key::new(b"wrong");
    let h = wire::Header {
        kind: wire::Kind::Data,
        group: 7,
        sender: 1,
        epoch: 1,
        seq: 4,
        ack: 0,
    };
    let evil = wire::encode(
        &forged,
        &h,
        &[record(1, Op::Delete, 0), record(9, Op::Add, 3)],
    );
    assert_eq!(backup.receive(&evil, &mut replica), Err(wire::Error::Auth));
    let good = wire::encode(&key, &h, &[record(2, Op::Add, 3)]);
    assert_eq!(
        backup.receive(&good[..good.len() - 1], &mut replica),
        Err(wire::Error::Auth)
    );
    assert_eq!(
        backup.receive(&good[..20], &mut replica),
        Err(wire::Error::Truncated(20))
    );
    let mut replayed_other_group = h;
    replayed_other_group.group = 8;
    let other = wire::encode(&key, &replayed_other_group, &[record(3, Op::Add, 3)]);
    backup.receive(&other, &mut replica).unwrap();
    let s = backup.stats();
    assert_eq!(s.rejected[wire::Error::Auth.index()], 2);
    assert_eq!(s.rejected[wire::Error::Truncated(0).index()], 1);
    assert_eq!(s.wrong_group, 1);
    assert_eq!(replica.len(), 1, "nothing changed");
    assert!(replica.get(&key_of(1)).is_some());
    // The sender refuses forged acks the same way.
    let ack = wire::encode(
        &forged,
        &wire::Header {
            kind: wire::Kind::Ack,
            ..h
        },
        &[],
    );
    assert_eq!(sender.receive(&ack), Err(wire::Error::Auth));
    assert_eq!(sender.stats().rejected[wire::Error::Auth.index()], 1);
}

fn key_of(i: u32) -> SessionKey {
    key(i)
}

#[test]
fn a_backup_that_falls_too_far_behind_is_resynced_in_bulk() {
    let key = Key::new(b"k");
    let mut cfg = SenderConfig::new(7, 1, 1);
    cfg.max_backlog = 100;
    cfg.window = 2;
    let mut sender = Sender::new(cfg, key);
    for i in 0..1000 {
        sender.push(record(i, Op::Add, 1));
    }
    assert!(sender.needs_bulk());
    assert_eq!(sender.stats().backlog_overflows, 900);
    assert_eq!(sender.lag(), 100);
    sender.begin_bulk((0..1000).map(|i| record(i, Op::Add, 1)));
    assert!(!sender.needs_bulk());
    assert_eq!(sender.lag(), 1000);
    // Datagrams are filled to the MTU: 41 sessions in 1400 bytes.
    let out = sender.poll(Duration::ZERO);
    assert_eq!(out.len(), 2, "window of 2: BulkBegin and one data datagram");
    assert!(out[1].len() <= 1400 && out[1].len() > 1300);
}
