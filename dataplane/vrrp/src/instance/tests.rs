use super::*;

const US: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PEER_LOW: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER_HIGH: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn config(version: Version, priority: u8, interval_cs: u16) -> Config {
    let mut c = Config::new("VI_1", 77, US, vec![VIP]);
    c.version = version;
    c.priority = priority;
    c.interval_cs = interval_cs;
    c
}

fn started(c: Config) -> Instance {
    let mut i = Instance::new(c).unwrap();
    i.start(Duration::ZERO);
    i
}

fn advert(i: &Instance, priority: u8) -> Repr {
    let mut r = i.advertisement(priority);
    r.priority = priority;
    r
}

fn drain(i: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| i.pop_action()).collect()
}

/// Polls at every deadline up to `until`; returns the time it became master, if it did.
fn run_until(i: &mut Instance, until: Duration) -> Option<Duration> {
    while let Some(t) = i.poll_at() {
        if t > until {
            break;
        }
        let before = i.state();
        i.poll(t);
        if before != State::Master && i.state() == State::Master {
            return Some(t);
        }
    }
    None
}

#[test]
fn backup_claims_after_three_intervals_plus_skew() {
    // keepalived defaults: priority 100, advert_int 1 → 3 s + 156/256 s.
    let mut b = started(config(Version::V2, 100, 100));
    assert_eq!(b.state(), State::Backup);
    assert_eq!(b.master_down_interval(), Duration::from_micros(3_609_375));
    assert_eq!(run_until(&mut b, ms(3_609)), None);
    assert_eq!(
        run_until(&mut b, ms(3_610)),
        Some(Duration::from_micros(3_609_375))
    );
    // v3 at 100 ms, priority 200: 300 ms + 56 × 100 ms / 256.
    let b = started(config(Version::V3, 200, 10));
    assert_eq!(b.master_down_interval(), Duration::from_micros(321_875));
}

#[test]
fn becoming_master_announces_after_the_transition_in_order() {
    let mut b = started(config(Version::V3, 100, 10));
    drain(&mut b);
    run_until(&mut b, ms(400)).unwrap();
    assert_eq!(
        drain(&mut b),
        [
            Action::Transition {
                from: State::Backup,
                to: State::Master,
                cause: Cause::MasterDown
            },
            Action::Advertise { priority: 100 },
            Action::GratuitousArp { count: 5 },
        ]
    );
    // Then one advertisement per interval.
    let t = b.poll_at().unwrap();
    b.poll(t);
    assert_eq!(drain(&mut b), [Action::Advertise { priority: 100 }]);
}

#[test]
fn the_owner_and_state_master_claim_at_start() {
    let i = started(config(Version::V2, OWNER_PRIORITY, 100));
    assert_eq!(i.state(), State::Master);
    let mut c = config(Version::V2, 150, 100);
    c.initial = Initial::Master;
    assert_eq!(started(c).state(), State::Master);
}

#[test]
fn a_master_yields_to_higher_priority_and_reasserts_over_lower() {
    let mut m = started(config(Version::V2, 255, 100));
    drain(&mut m);
    let now = ms(500);
    assert_eq!(
        m.receive(now, PEER_LOW, &advert(&m, 100)),
        Err(Discard::Lower)
    );
    assert_eq!(drain(&mut m), [Action::Advertise { priority: 255 }]);
    assert_eq!(m.state(), State::Master);

    let mut m = started(config(Version::V2, 150, 100));
    m.poll(ms(3700));
    assert_eq!(m.state(), State::Master);
    drain(&mut m);
    m.receive(ms(4000), PEER_LOW, &advert(&m, 200)).unwrap();
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.status().master, Some((PEER_LOW, 200)));
    assert_eq!(
        drain(&mut m),
        [Action::Transition {
            from: State::Master,
            to: State::Backup,
            cause: Cause::HigherPriority {
                from: PEER_LOW,
                priority: 200
            }
        }]
    );
}

#[test]
fn equal_priority_is_won_by_the_higher_address() {
    let mut m = started(config(Version::V3, 100, 10));
    run_until(&mut m, ms(400)).unwrap();
    assert_eq!(
        m.receive(ms(400), PEER_LOW, &advert(&m, 100)),
        Err(Discard::Lower)
    );
    assert_eq!(m.state(), State::Master);
    m.receive(ms(410), PEER_HIGH, &advert(&m, 100)).unwrap();
    assert_eq!(m.state(), State::Backup);
}

#[test]
fn a_backup_follows_a_live_master_and_claims_a_skew_after_priority_zero() {
    let mut b = started(config(Version::V2, 100, 100));
    // Adverts every second keep it backup for a long time.
    for s in 1..30u64 {
        b.receive(ms(s * 1000), PEER_HIGH, &advert(&b, 150))
            .unwrap();
        b.poll(ms(s * 1000 + 999));
        assert_eq!(b.state(), State::Backup);
    }
    b.receive(ms(30_000), PEER_HIGH, &advert(&b, STOP_PRIORITY))
        .unwrap();
    assert_eq!(b.stats().priority_zero_rx, 1);
    // Skew: 156/256 s.
    assert_eq!(
        b.poll_at(),
        Some(ms(30_000) + Duration::from_micros(609_375))
    );
    assert!(run_until(&mut b, ms(30_610)).is_some());
}

#[test]
fn preempt_takes_over_from_a_lower_master_and_nopreempt_does_not() {
    let mut b = started(config(Version::V3, 200, 10));
    for k in 1..20u64 {
        assert_eq!(
            b.receive(ms(k * 100), PEER_LOW, &advert(&b, 100)),
            Err(Discard::Lower)
        );
        b.poll(ms(k * 100 + 50));
    }
    assert_eq!(b.state(), State::Master, "preempted the lower master");

    let mut c = config(Version::V3, 200, 10);
    c.preempt = false;
    let mut b = started(c);
    for k in 1..20u64 {
        b.receive(ms(k * 100), PEER_LOW, &advert(&b, 100)).unwrap();
        b.poll(ms(k * 100 + 50));
    }
    assert_eq!(b.state(), State::Backup, "nopreempt");
}

#[test]
fn preempt_delay_waits_that_long_after_start() {
    let mut c = config(Version::V3, 200, 10);
    c.preempt_delay = Duration::from_secs(1);
    let mut b = started(c);
    let mut took = None;
    for k in 1..40u64 {
        let _ = b.receive(ms(k * 100), PEER_LOW, &advert(&b, 100));
        b.poll(ms(k * 100 + 50));
        if b.state() == State::Master && took.is_none() {
            took = Some(k * 100 + 50);
        }
    }
    let took = took.expect("preempted after the delay");
    // Adverts stop being accepted at 1 s; the master-down interval (~322 ms) runs out then.
    assert!((1200..=1400).contains(&took), "took over at {took} ms");
}

#[test]
fn a_held_backup_follows_a_lower_master_until_released_but_replaces_a_dead_one() {
    let mut b = started(config(Version::V3, 200, 10));
    b.set_preempt_hold(true);
    for k in 1..20u64 {
        b.receive(ms(k * 100), PEER_LOW, &advert(&b, 100)).unwrap();
        b.poll(ms(k * 100 + 50));
    }
    assert_eq!(b.state(), State::Backup, "held: no failback");
    assert!(b.preempt_held());
    b.set_preempt_hold(false);
    for k in 20..30u64 {
        let _ = b.receive(ms(k * 100), PEER_LOW, &advert(&b, 100));
        b.poll(ms(k * 100 + 50));
    }
    assert_eq!(b.state(), State::Master, "released: it preempts");

    // Held, but the master goes silent: the master-down timer still fires.
    let mut b = started(config(Version::V3, 200, 10));
    b.set_preempt_hold(true);
    b.receive(ms(100), PEER_LOW, &advert(&b, 100)).unwrap();
    let down = ms(100) + b.master_down_interval();
    assert!(run_until(&mut b, down).is_some());
}

#[test]
fn a_held_backup_claims_a_dead_master_after_a_ready_lower_priority_one() {
    // 150 held (a spare, not synced) and 100 ready (the synced standby) hear the same last
    // advert of a master that then dies: the ready one claims first, and its advert
    // reaches the held one before its own timer runs out, so the held one stays BACKUP.
    let mut held = started(config(Version::V3, 150, 10));
    held.set_preempt_hold(true);
    let mut ready = started(config(Version::V3, 100, 10));
    held.receive(ms(100), PEER_HIGH, &advert(&held, 200))
        .unwrap();
    ready
        .receive(ms(100), PEER_HIGH, &advert(&ready, 200))
        .unwrap();
    let ready_at = run_until(&mut ready, ms(2000)).expect("the ready backup claims");
    let held_due = held.poll_at().expect("the held backup's timer runs");
    assert!(
        ready_at < held_due,
        "ready claims at {ready_at:?}, held is due at {held_due:?}"
    );
    // The new master's advert (priority 100) arrives: held does not preempt it.
    held.receive(ready_at, PEER_LOW, &advert(&held, 100))
        .unwrap();
    held.poll(held_due);
    assert_eq!(held.state(), State::Backup);
    // Without the hold the higher priority would have claimed first.
    let mut free = started(config(Version::V3, 150, 10));
    free.receive(ms(100), PEER_HIGH, &advert(&free, 200))
        .unwrap();
    assert!(free.poll_at().expect("timer") < ready_at);
}

#[test]
fn v3_backups_time_the_master_by_its_own_interval() {
    let mut b = started(config(Version::V3, 100, 100));
    let mut a = advert(&b, 150);
    a.interval_cs = 10;
    b.receive(ms(50), PEER_HIGH, &a).unwrap();
    assert_eq!(b.status().master_interval_cs, 10);
    assert_eq!(b.poll_at(), Some(ms(50) + Duration::from_micros(360_937)));
}

#[test]
fn v2_refuses_another_interval_another_password_and_its_own_adverts() {
    let mut c = config(Version::V2, 100, 100);
    c.auth_pass = Some(*b"secret\0\0");
    let mut b = started(c);
    let good = advert(&b, 150);
    let mut other_interval = good.clone();
    other_interval.interval_cs = 200;
    assert_eq!(
        b.receive(ms(1), PEER_HIGH, &other_interval),
        Err(Discard::Interval)
    );
    let mut bad_pass = good.clone();
    bad_pass.auth_data = *b"wrong\0\0\0";
    assert_eq!(b.receive(ms(2), PEER_HIGH, &bad_pass), Err(Discard::Auth));
    let mut no_auth = good.clone();
    no_auth.auth_type = AuthType::None;
    assert_eq!(b.receive(ms(3), PEER_HIGH, &no_auth), Err(Discard::Auth));
    assert_eq!(b.receive(ms(4), US, &good), Err(Discard::Own));
    let mut other_vrid = good.clone();
    other_vrid.vrid = 78;
    assert_eq!(b.receive(ms(5), PEER_HIGH, &other_vrid), Err(Discard::Vrid));
    let mut v3 = good.clone();
    v3.version = Version::V3;
    assert_eq!(b.receive(ms(6), PEER_HIGH, &v3), Err(Discard::Version));
    b.receive(ms(7), PEER_HIGH, &good).unwrap();
    assert_eq!(b.stats().adverts_rx, 1);
    assert_eq!(b.stats().discards.iter().sum::<u64>(), 6);
}

#[test]
fn shutdown_and_fault_send_priority_zero_from_master() {
    let mut m = started(config(Version::V2, OWNER_PRIORITY, 100));
    drain(&mut m);
    m.shutdown(ms(10));
    assert_eq!(
        drain(&mut m),
        [
            Action::Advertise { priority: 0 },
            Action::Transition {
                from: State::Master,
                to: State::Init,
                cause: Cause::Shutdown
            }
        ]
    );
    assert_eq!(m.poll_at(), None);

    let mut m = started(config(Version::V2, OWNER_PRIORITY, 100));
    drain(&mut m);
    m.set_fault(ms(10), true);
    assert_eq!(m.state(), State::Fault);
    assert_eq!(drain(&mut m)[0], Action::Advertise { priority: 0 });
    assert_eq!(
        m.receive(ms(20), PEER_LOW, &advert(&m, 100)),
        Err(Discard::NotListening)
    );
    m.set_fault(ms(30), false);
    assert_eq!(m.state(), State::Master, "the owner reclaims");

    let mut b = started(config(Version::V2, 100, 100));
    b.set_fault(ms(10), true);
    b.poll(ms(60_000));
    assert_eq!(b.state(), State::Fault, "no timer runs in FAULT");
    b.set_fault(ms(60_000), false);
    assert_eq!(b.state(), State::Backup);
    assert!(run_until(&mut b, ms(63_610)).is_some());
}

#[test]
fn tracking_lowers_the_advertised_priority() {
    let mut m = started(config(Version::V3, 150, 10));
    run_until(&mut m, ms(400)).unwrap();
    drain(&mut m);
    m.set_priority_adjust(-60);
    assert_eq!(m.effective_priority(), 90);
    let t = m.poll_at().unwrap();
    m.poll(t);
    assert_eq!(drain(&mut m), [Action::Advertise { priority: 90 }]);
    // A backup of 100 now preempts it: the master yields when it hears 100 > 90.
    m.receive(t, PEER_LOW, &advert(&m, 100)).unwrap();
    assert_eq!(m.state(), State::Backup);
    m.set_priority_adjust(-500);
    assert_eq!(m.effective_priority(), 1, "never below 1");
    m.set_priority_adjust(200);
    assert_eq!(m.effective_priority(), 254, "never 255 by adjustment");
}

#[test]
fn gratuitous_arp_repeats_after_the_delay_then_every_refresh() {
    let mut c = config(Version::V3, OWNER_PRIORITY, 100);
    c.garp_delay = Some(Duration::from_secs(5));
    c.garp_refresh = Some(Duration::from_secs(60));
    c.garp_repeat = 3;
    let mut m = started(c);
    let mut garps = Vec::new();
    while let Some(t) = m.poll_at() {
        if t > Duration::from_secs(200) {
            break;
        }
        m.poll(t);
        for a in drain(&mut m) {
            if let Action::GratuitousArp { count } = a {
                garps.push((t.as_secs(), count));
            }
        }
    }
    // The burst at start was popped by drain() on the first poll too.
    assert_eq!(garps, [(1, 3), (5, 3), (65, 3), (125, 3), (185, 3)]);
}

#[test]
fn configs_are_checked() {
    let mut c = config(Version::V2, 100, 150);
    assert!(matches!(c.validate(), Err(ConfigError::Interval(150, _))));
    c.interval_cs = 100;
    c.priority = 0;
    assert_eq!(c.validate(), Err(ConfigError::Priority));
    let mut c = config(Version::V3, 100, 5000);
    assert!(c.validate().is_err());
    c.interval_cs = 5;
    c.auth_pass = Some([0; 8]);
    assert_eq!(c.validate(), Err(ConfigError::AuthV3));
    c.auth_pass = None;
    c.addresses.clear();
    assert_eq!(c.validate(), Err(ConfigError::NoAddresses));
}
