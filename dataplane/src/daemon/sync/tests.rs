//! A master and a backup driver on one simulated link, each with its own NAT workers (a
//! [`NatTable`] per worker served through their [`SyncChannel`] the way the worker loop
//! serves it), the frames they send parsed back into datagrams the way `ip4-local` hands
//! them over.

use std::cell::RefCell;
use std::path::PathBuf;

use super::*;
use crate::nat::{InsideKey, NatTable, NatTimeouts, Translation};
use crate::state::{ForwardingConfig, PortConfig, StaticNeighbour};
use crate::sync::SyncDatagram;

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const SNAT: u32 = 0xc633_6401; // 198.51.100.1

#[derive(Default)]
struct Wire {
    sent: RefCell<Vec<(u16, Vec<u8>)>>,
}

impl VrrpIo for Wire {
    fn send(&self, port: u16, frame: Vec<u8>) -> bool {
        self.sent.borrow_mut().push((port, frame));
        true
    }
    fn link_up(&self, _port: u16) -> bool {
        true
    }
}

struct Gw {
    driver: SyncDriver,
    channel: Arc<SyncChannel>,
    /// Worker 0's NAT table.
    nat: NatTable,
    /// The tables of workers 1.. (none with one worker).
    others: Vec<NatTable>,
    tables: Tables,
    wire: Wire,
}

fn mac(ip: Ipv4Addr) -> [u8; 6] {
    [2, 0, 0, 0, 0, ip.octets()[3]]
}

fn gw(me: Ipv4Addr, peer: Ipv4Addr, key: &[u8]) -> Gw {
    gw_of(me, &[peer], key)
}

/// A gateway whose host.toml names `peers`.
fn gw_of(me: Ipv4Addr, peers: &[Ipv4Addr], key: &[u8]) -> Gw {
    gw_workers(me, peers, key, 1)
}

/// [`gw_of`] with `workers` NAT workers.
fn gw_workers(me: Ipv4Addr, peers: &[Ipv4Addr], key: &[u8], workers: usize) -> Gw {
    let tables = Tables::new(&ForwardingConfig {
        ports: vec![PortConfig {
            mac: Some(mac(me)),
            addresses: vec![format!("{me}/24").parse().unwrap()],
            ..PortConfig::new("sync0")
        }],
        routes: Vec::new(),
        neighbours: peers
            .iter()
            .map(|&p| StaticNeighbour {
                port: 0,
                ip: p,
                mac: mac(p),
            })
            .collect(),
    })
    .unwrap();
    let cfg = SyncConfig {
        port: 0,
        port_name: "sync0".into(),
        address: me,
        peers: peers.to_vec(),
        udp_port: crate::sync::DEFAULT_UDP_PORT,
        group: 7,
        key_file: PathBuf::from("key"),
        key: key.to_vec(),
        vrrp_instance: "VI_1".into(),
    };
    let channel = Arc::new(SyncChannel::new(cfg.udp_port, workers));
    let mut nats: Vec<NatTable> = (0..workers)
        .map(|w| {
            let mut nat = NatTable::new(4096, w, workers, NatTimeouts::default());
            nat.set_events(true);
            nat
        })
        .collect();
    let nat = nats.remove(0);
    Gw {
        driver: SyncDriver::new(cfg, channel.clone(), Duration::ZERO),
        channel,
        nat,
        others: nats,
        tables,
        wire: Wire::default(),
    }
}

impl Gw {
    /// One control-loop round and one poll of every worker.
    fn round(&mut self, now: Duration) {
        self.serve(now);
        self.driver.step(now, &mut self.tables, &self.wire);
        self.serve(now);
    }

    fn serve(&mut self, now: Duration) {
        let now = now.as_nanos() as u64;
        self.channel.serve(0, &mut self.nat, now);
        for (i, nat) in self.others.iter_mut().enumerate() {
            self.channel.serve(i + 1, nat, now);
        }
    }

    /// Worker `w`'s table.
    fn table(&mut self, w: usize) -> &mut NatTable {
        match w {
            0 => &mut self.nat,
            _ => &mut self.others[w - 1],
        }
    }

    /// The worker that owns the source NAT sessions of `k` (as the packet path finds it).
    fn owner(&self, k: &InsideKey) -> usize {
        let h = crate::nat::owner::snat_hash(k.vpc, k.proto, k.inside_ip, k.inside_port);
        crate::graph::owner_of_hash(h, 1 + self.others.len())
    }

    /// Sessions in every worker's table.
    fn total(&self) -> usize {
        self.nat.len() + self.others.iter().map(NatTable::len).sum::<usize>()
    }

    /// Opens the sessions of keys `0..n`, each in the worker that owns it.
    fn open(&mut self, n: u32, now: Duration) {
        for i in 0..n {
            let k = key(i);
            let w = self.owner(&k);
            self.table(w)
                .outbound(
                    &k,
                    Translation::Snat {
                        ip: SNAT,
                        endpoint_dependent: true,
                    },
                    now.as_nanos() as u64,
                )
                .unwrap();
        }
    }
}

fn key(i: u32) -> InsideKey {
    InsideKey {
        vpc: 0,
        proto: 6,
        inside_ip: 0x0a01_0000 + i,
        inside_port: 40000,
        remote_ip: 0xc000_0201,
        remote_port: 443,
    }
}

/// Moves the frames `from` sent to `to`'s datagram queue, checking each frame on the way
/// (addresses, ports, IPv4 and UDP checksums); returns how many.
fn carry(from: &Gw, to: &Gw, lose: impl Fn(usize) -> bool) -> usize {
    let frames = std::mem::take(&mut *from.wire.sent.borrow_mut());
    let mut n = 0;
    for (i, (port, f)) in frames.into_iter().enumerate() {
        assert_eq!(port, 0);
        assert_eq!(&f[0..6], &mac(to.driver.cfg.address));
        let ip = &f[14..34];
        assert!(checksum::verify(ip), "IPv4 header checksum");
        assert_eq!(&ip[16..20], &to.driver.cfg.address.octets());
        let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
        let udp_len = usize::from(u16::from_be_bytes([f[38], f[39]]));
        assert_eq!(udp_len, f.len() - 34);
        let mut pseudo = [0u8; 12];
        pseudo[0..8].copy_from_slice(&ip[12..20]);
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
        assert_eq!(
            checksum::fold(checksum::sum(&f[34..], checksum::sum(&pseudo, 0))),
            0xffff,
            "UDP checksum"
        );
        if lose(i) {
            continue;
        }
        to.channel
            .datagrams
            .push(SyncDatagram::new(src, &f[42..]).unwrap())
            .unwrap();
        n += 1;
    }
    n
}

fn run(
    a: &mut Gw,
    b: &mut Gw,
    from: Duration,
    rounds: u32,
    lose: impl Fn(usize) -> bool + Copy,
) -> Duration {
    let mut now = from;
    for _ in 0..rounds {
        now += Duration::from_millis(5);
        a.round(now);
        b.round(now);
        carry(a, b, lose);
        carry(b, a, lose);
    }
    now
}

#[test]
fn the_backups_nat_table_follows_the_master_and_commit_waits_for_the_worker() {
    let mut a = gw(A, B, b"0123456789abcdef-group-7");
    let mut b = gw(B, A, b"0123456789abcdef-group-7");
    a.driver.set_master(true, Duration::ZERO);
    // Sessions before the backup is heard from: they travel in the bulk resync.
    a.open(300, Duration::ZERO);
    let now = run(&mut a, &mut b, Duration::ZERO, 20, |_| false);
    assert!(b.driver.synced(), "bulk resync completed");
    assert_eq!(b.nat.len(), 300);
    // Live events after the bulk, some datagrams lost on the way.
    a.open(1000, now);
    let now = run(&mut a, &mut b, now, 40, |i| i % 7 == 3);
    assert_eq!(b.driver.sessions.len(), a.driver.sessions.len());
    assert_eq!(b.nat.len(), a.nat.len());
    let k = key(999);
    let (ma, mb) = (
        a.nat.get_inside(&k, now.as_nanos() as u64).unwrap(),
        b.nat.get_inside(&k, now.as_nanos() as u64).unwrap(),
    );
    assert_eq!(
        (ma.outside_ip, ma.outside_port),
        (mb.outside_ip, mb.outside_port)
    );
    let info = a.driver.info(now);
    assert_eq!(info.role, "master");
    assert_eq!(info.peers[0].lag, 0, "everything acknowledged");
    assert!(info.peers[0].resends > 0, "lost datagrams were resent");
    let binfo = b.driver.info(now);
    assert_eq!((binfo.master, binfo.synced), (Some(A), true));

    // A datagram waiting when the master dies is applied and installed before the claim.
    a.open(1001, now);
    a.round(now + Duration::from_millis(5));
    assert!(carry(&a, &b, |_| false) > 0);
    let before = b.nat.len();
    let channel = b.channel.clone();
    let mut nat = std::mem::replace(&mut b.nat, NatTable::new(1, 0, 1, NatTimeouts::default()));
    let worker = std::thread::spawn(move || {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            channel.serve(0, &mut nat, 1);
            std::thread::sleep(Duration::from_micros(50));
        }
        nat
    });
    assert_eq!(b.channel.claims.load(Relaxed), 0);
    let (sessions, _waited) = b.driver.commit();
    assert_eq!(sessions, 1001);
    assert!(b.channel.installed.load(Relaxed) >= b.driver.pushed);
    // The workers check what was installed against this gateway's configuration once it
    // is current; a configuration that is not waits, and is checked when it becomes so,
    // if this gateway is still master.
    b.driver.check_claim(true);
    assert_eq!(b.channel.claims.load(Relaxed), 1);
    b.driver.check_claim(false);
    b.driver.settle(false);
    assert_eq!(b.channel.claims.load(Relaxed), 1, "not yet current");
    b.driver.set_master(true, now);
    b.driver.settle(true);
    assert_eq!(b.channel.claims.load(Relaxed), 2, "checked once current");
    b.driver.settle(true);
    assert_eq!(b.channel.claims.load(Relaxed), 2, "once");
    b.driver.check_claim(false);
    b.driver.set_master(false, now);
    b.driver.settle(true);
    assert_eq!(
        b.channel.claims.load(Relaxed),
        2,
        "no longer master: nothing to check"
    );
    b.nat = worker.join().unwrap();
    assert_eq!(b.nat.len(), before + 1);
    assert_eq!(b.driver.info(now).last_commit.map(|c| c.0), Some(1001));
}

#[test]
fn a_returning_gateway_resyncs_from_the_new_master() {
    let mut a = gw(A, B, b"0123456789abcdef-group-7");
    let mut b = gw(B, A, b"0123456789abcdef-group-7");
    a.driver.set_master(true, Duration::ZERO);
    a.open(50, Duration::ZERO);
    let now = run(&mut a, &mut b, Duration::ZERO, 10, |_| false);
    // a fails, b takes over and serves new sessions; a comes back as backup.
    b.driver.commit();
    b.driver.set_master(true, now);
    a.driver.set_master(false, now);
    assert!(
        !a.driver.synced(),
        "a must not preempt before it has resynced"
    );
    b.open(20, now); // keys 0..20 exist already: they are b's installed sessions
    let now = run(&mut a, &mut b, now, 10, |_| false);
    assert!(a.driver.synced());
    assert_eq!(a.driver.sessions.len(), 50);
    assert_eq!(a.nat.len(), 50);
    assert!(a.driver.info(now).rejected.iter().all(|(_, n)| *n == 0));
}

#[test]
fn forged_and_foreign_datagrams_are_counted_and_change_nothing() {
    let mut a = gw(A, B, b"0123456789abcdef-group-7");
    let mut b = gw(B, A, b"another key, not the group's");
    a.driver.set_master(true, Duration::ZERO);
    a.open(10, Duration::ZERO);
    let now = run(&mut a, &mut b, Duration::ZERO, 10, |_| false);
    assert!(!b.driver.synced());
    assert_eq!(b.nat.len(), 0);
    let auth = |g: &Gw| {
        g.driver
            .info(now)
            .rejected
            .iter()
            .find(|(n, _)| n == "auth")
            .map_or(0, |x| x.1)
    };
    assert!(auth(&b) > 0, "the backup refused the master's datagrams");
    assert!(auth(&a) > 0, "the master refused the backup's requests");
    // Truncated, and from an address that is no peer.
    b.channel
        .datagrams
        .push(SyncDatagram::new(u32::from(A), b"AGS1").unwrap())
        .unwrap();
    b.channel
        .datagrams
        .push(SyncDatagram::new(u32::from(Ipv4Addr::new(10, 9, 0, 66)), b"AGS1").unwrap())
        .unwrap();
    b.round(now);
    let info = b.driver.info(now);
    assert_eq!(info.rx_unknown_peer, 1);
    assert_eq!(
        info.rejected
            .iter()
            .find(|(n, _)| n == "truncated")
            .map(|x| x.1),
        Some(1)
    );
    assert_eq!(b.nat.len(), 0);
}

#[test]
fn an_unresolved_peer_is_resolved_not_sent_to() {
    let mut a = gw(A, B, b"0123456789abcdef-group-7");
    // Forget the static neighbour: a fresh table without it.
    a.tables = Tables::new(&ForwardingConfig {
        ports: vec![PortConfig {
            mac: Some(mac(A)),
            addresses: vec![format!("{A}/24").parse().unwrap()],
            ..PortConfig::new("sync0")
        }],
        routes: Vec::new(),
        neighbours: Vec::new(),
    })
    .unwrap();
    a.round(Duration::from_millis(5)); // backup: a resync request to every peer
    assert!(a.wire.sent.borrow().is_empty());
    assert_eq!(a.driver.info(Duration::ZERO).tx_unresolved, 1);
    assert!(
        std::iter::from_fn(|| a.tables.poll_action()).count() > 0,
        "an ARP request was asked for"
    );
}

const C: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 3);

/// Delivers what `from` sent to whichever of `to` it is addressed to (frames to a
/// gateway not in `to` are lost, as to a dead host); returns how many frames went to each.
fn deliver(from: &Gw, to: &[&Gw]) -> Vec<usize> {
    let frames = std::mem::take(&mut *from.wire.sent.borrow_mut());
    let mut n = vec![0; to.len()];
    for (_, f) in frames {
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        let src = u32::from_be_bytes([f[26], f[27], f[28], f[29]]);
        if let Some(i) = to.iter().position(|g| g.driver.cfg.address == dst) {
            to[i]
                .channel
                .datagrams
                .push(SyncDatagram::new(src, &f[42..]).unwrap())
                .unwrap();
            n[i] += 1;
        }
    }
    n
}

/// The control plane's assignment of `chosen` among members A, B and C, as `me` gets it.
fn assigned(me: Ipv4Addr, chosen: &[Ipv4Addr], generation: u64) -> SyncPeers {
    SyncPeers {
        members: [A, B, C].into_iter().filter(|&m| m != me).collect(),
        stream_to: chosen.iter().copied().filter(|&m| m != me).collect(),
        spare: !chosen.contains(&me),
        generation,
    }
}

#[test]
fn a_standby_chosen_by_the_control_plane_gets_a_bulk_resync_and_spares_are_not_streamed_to() {
    let k = b"0123456789abcdef-group-7";
    let mut a = gw_of(A, &[B, C], k);
    let mut b = gw_of(B, &[A, C], k);
    let mut c = gw_of(C, &[A, B], k);
    // Generation 1: A (master) and B hold the sessions, C is a spare.
    for g in [&mut a, &mut b, &mut c] {
        let me = g.driver.cfg.address;
        g.driver.apply_peers(Some(&assigned(me, &[A, B], 1)));
    }
    a.driver.set_master(true, Duration::ZERO);
    a.open(200, Duration::ZERO);
    let mut now = Duration::ZERO;
    let mut to_c = 0;
    for _ in 0..30 {
        now += Duration::from_millis(5);
        for g in [&mut a, &mut b, &mut c] {
            g.round(now);
        }
        to_c += deliver(&a, &[&b, &c])[1];
        deliver(&b, &[&a, &c]);
        assert_eq!(deliver(&c, &[&a, &b]), [0, 0], "a spare asks nobody");
    }
    assert_eq!(to_c, 0, "nobody streams to a spare");
    assert!(b.driver.synced() && !c.driver.synced());
    assert_eq!(b.nat.len(), 200);
    let info = a.driver.info(now);
    assert_eq!(info.stream_to, [B]);
    assert_eq!(
        info.peers.iter().map(|p| p.address).collect::<Vec<_>>(),
        [B]
    );
    assert!(c.driver.info(now).spare);

    // B dies; generation 2 chooses C: the master streams to C at once, a bulk resync
    // brings it to the master's 200 sessions, plus the ones opened meanwhile.
    a.driver.apply_peers(Some(&assigned(A, &[A, C], 2)));
    c.driver.apply_peers(Some(&assigned(C, &[A, C], 2)));
    a.open(230, now);
    for _ in 0..30 {
        now += Duration::from_millis(5);
        a.round(now);
        c.round(now);
        deliver(&a, &[&c]);
        deliver(&c, &[&a]);
    }
    assert!(
        c.driver.synced(),
        "the new standby completed its bulk resync"
    );
    assert_eq!((c.driver.sessions.len(), c.nat.len()), (230, 230));
    let info = a.driver.info(now);
    assert_eq!(
        info.peers.iter().map(|p| p.address).collect::<Vec<_>>(),
        [C]
    );
    assert_eq!(info.peers[0].bulk_resyncs, 1);
    assert_eq!(info.peers[0].lag, 0);
    assert_eq!(
        (info.peer_changes, info.peers_from.as_str()),
        (2, "control plane (generation 2)")
    );
    // The same choice again changes nothing; back to host.toml without a choice.
    a.driver.apply_peers(Some(&assigned(A, &[A, C], 2)));
    assert_eq!(a.driver.info(now).peer_changes, 2);
    a.driver.apply_peers(None);
    let info = a.driver.info(now);
    assert_eq!(
        (info.stream_to.as_slice(), info.peers_from.as_str()),
        (&[B, C][..], "host.toml")
    );
}

/// With two workers per gateway: the master's stream carries the sessions of both of its
/// workers' tables, and the backup installs each session into the worker that owns it (the
/// same worker as on the master, so replies and new packets find it after a takeover);
/// commit before claim waits for both workers.
#[test]
fn with_two_workers_the_master_streams_both_tables_and_the_backup_installs_each_in_its_owner() {
    let k = b"0123456789abcdef-group-7";
    let mut a = gw_workers(A, &[B], k, 2);
    let mut b = gw_workers(B, &[A], k, 2);
    a.driver.set_master(true, Duration::ZERO);
    a.open(300, Duration::ZERO);
    let (a0, a1) = (a.nat.len(), a.others[0].len());
    assert!(a0 > 50 && a1 > 50, "sessions on both workers: {a0} + {a1}");
    let now = run(&mut a, &mut b, Duration::ZERO, 20, |_| false);
    assert_eq!(
        a.driver.sessions.len(),
        300,
        "the master's map has both tables"
    );
    assert!(b.driver.synced());
    assert_eq!((b.nat.len(), b.others[0].len()), (a0, a1));
    // Live events from both workers, some datagrams lost.
    a.open(800, now);
    let now = run(&mut a, &mut b, now, 40, |i| i % 5 == 2);
    assert_eq!(a.driver.sessions.len(), 800);
    assert_eq!(b.driver.sessions.len(), 800);
    assert_eq!(b.channel.install_failed.load(Relaxed), 0);
    let t = now.as_nanos() as u64;
    for i in 0..800 {
        let k = key(i);
        let w = a.owner(&k);
        let ma = a.table(w).get_inside(&k, t).map(|s| s.outside_port);
        let mb = b.table(w).get_inside(&k, t).map(|s| s.outside_port);
        assert!(ma.is_some(), "key {i} on the master's worker {w}");
        assert_eq!(
            ma, mb,
            "key {i}: the backup's worker {w} has the master's mapping"
        );
        assert!(
            b.table(1 - w).get_inside(&k, t).is_none(),
            "key {i} in one worker only"
        );
        assert_eq!(crate::nat::ports::owner(mb.unwrap(), 2), Some(w));
    }
    assert_eq!(b.total(), 800);

    // A removal on the master (an expiry) reaches the backup's owning worker.
    let gone = key(7);
    let w = a.owner(&gone);
    let sk = a.table(w).get_inside(&gone, t).unwrap().record(
        aegis_sessionsync::Op::Delete,
        t,
        &NatTimeouts::default(),
    );
    assert!(a.table(w).remove_key(&sk.key, t));
    let now = run(&mut a, &mut b, now, 10, |_| false);
    assert!(b
        .table(w)
        .get_inside(&gone, now.as_nanos() as u64)
        .is_none());
    assert_eq!(b.total(), 799);

    // Commit before claim waits for both workers, each serving its own queue.
    a.open(805, now);
    a.round(now + Duration::from_millis(5));
    assert!(carry(&a, &b, |_| false) > 0);
    let channel = b.channel.clone();
    let mut tables = vec![
        std::mem::replace(&mut b.nat, NatTable::new(1, 0, 1, NatTimeouts::default())),
        b.others.remove(0),
    ];
    let workers: Vec<_> = tables
        .drain(..)
        .enumerate()
        .map(|(w, mut nat)| {
            let channel = channel.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(2) {
                    channel.serve(w, &mut nat, 1);
                    std::thread::sleep(Duration::from_micros(50));
                }
                nat
            })
        })
        .collect();
    let (sessions, _) = b.driver.commit();
    // Keys 800..805 and key 7 again.
    assert_eq!(sessions, 805);
    assert!(b.channel.installed.load(Relaxed) >= b.driver.pushed);
    let mut back: Vec<NatTable> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    b.others.push(back.pop().unwrap());
    b.nat = back.pop().unwrap();
    assert_eq!(b.total(), 805);
}

/// A backup running more workers than its master cannot place every source NAT session
/// (the master allocated ports from its own slices): what lands outside the owning worker's
/// slice is refused and counted, never installed where replies would not find it.
#[test]
fn sessions_outside_the_owning_workers_port_slice_are_refused_and_counted() {
    let k = b"0123456789abcdef-group-7";
    let mut a = gw_workers(A, &[B], k, 1);
    let mut b = gw_workers(B, &[A], k, 2);
    a.driver.set_master(true, Duration::ZERO);
    a.open(200, Duration::ZERO);
    run(&mut a, &mut b, Duration::ZERO, 20, |_| false);
    assert!(b.driver.synced());
    let failed = b.channel.install_failed.load(Relaxed);
    assert!(
        failed > 0,
        "some sessions hash to worker 1 with a port of worker 0's slice"
    );
    // Worker 0 holds the sessions it owns; every other one was refused (at least once:
    // a session can arrive in the bulk and again as a live event).
    let mine = (0..200).filter(|&i| b.owner(&key(i)) == 0).count();
    assert_eq!((b.nat.len(), b.others[0].len()), (mine, 0));
    assert!(failed >= (200 - mine) as u64, "{failed} refused");
    assert!(b.driver.info(Duration::ZERO).installs_failed == failed);
}
