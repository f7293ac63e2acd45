//! A backup that stops answering (dead, paused, cut off) is probed with the oldest
//! datagram now and then instead of being sent the whole window every resend timeout; when
//! it answers again the stream recovers at full speed and the replica converges.

use std::net::Ipv4Addr;
use std::time::Duration;

use aegis_sessionsync::stream::{PROBE_RTOS, SILENT_RTOS};
use aegis_sessionsync::{
    Key, NatKind, Op, Receiver, Record, Replica, Sender, SenderConfig, SessionKey,
};

fn record(i: u32) -> Record {
    Record {
        op: Op::Add,
        key: SessionKey {
            vpc: 0,
            proto: 17,
            inside_ip: Ipv4Addr::from(0x0a00_0000 + i),
            inside_port: 1000,
            remote_ip: Ipv4Addr::new(192, 0, 2, 1),
            remote_port: 53,
        },
        nat: NatKind::SnatEndpointDependent,
        outside_ip: Ipv4Addr::new(198, 51, 100, 1),
        outside_port: 20000,
        state: 0,
        expires_in_ms: 300_000,
    }
}

#[test]
fn a_silent_backup_is_probed_not_flooded_and_recovers() {
    let key = Key::new(b"sixteen bytes at least");
    let cfg = SenderConfig::new(1, 1, 7);
    let rto = cfg.rto;
    let mut master = Sender::new(cfg, key.clone());
    let mut backup = Receiver::new(1, 2, key);
    let mut replica = Replica::new();
    let ms = Duration::from_millis;
    let mut now = Duration::ZERO;
    // Join: resync request, bulk of nothing, acks.
    for _ in 0..5 {
        now += ms(1);
        for d in backup.poll(now) {
            master.receive(&d).unwrap();
        }
        if master.needs_bulk() {
            master.begin_bulk(std::iter::empty());
        }
        for d in master.poll(now) {
            backup.receive(&d, &mut replica).unwrap();
        }
    }
    assert!(backup.synced());

    // The backup goes silent while 20 000 events are queued: a full window goes out once.
    for i in 0..20_000 {
        master.push(record(i));
    }
    let mut sent = 0;
    let silence = ms(2000);
    let until = now + silence;
    while now < until {
        now += ms(1);
        sent += master.poll(now).len();
    }
    let window = 256;
    let probes = (silence.as_millis() / (rto * PROBE_RTOS).as_millis()) as usize;
    // The window, its resends until the backup counts as silent, then one probe at a time.
    let bound = window + window * SILENT_RTOS as usize + probes + 1;
    assert!(
        sent <= bound,
        "{sent} datagrams to a silent backup in {silence:?} (bound {bound})"
    );
    assert!(master.stats().probing);

    // It answers again: everything arrives.
    for _ in 0..2000 {
        now += ms(1);
        for d in master.poll(now) {
            backup.receive(&d, &mut replica).unwrap();
        }
        for d in backup.poll(now) {
            master.receive(&d).unwrap();
        }
        if master.lag() == 0 {
            break;
        }
    }
    assert_eq!(master.lag(), 0);
    assert!(!master.stats().probing);
    assert_eq!(replica.len(), 20_000);
}
