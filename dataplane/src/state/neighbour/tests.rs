//! Neighbour table tests on a virtual clock.

use super::*;

const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0xb];

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, last)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn actions(t: &mut NeighbourTable) -> Vec<NeighbourAction> {
    std::iter::from_fn(|| t.poll_action()).collect()
}

fn probe(port: u16, last: u8) -> NeighbourAction {
    NeighbourAction::SendArpRequest {
        port,
        target_ip: ip(last),
    }
}

fn state(t: &NeighbourTable, port: u16, last: u8, now: Duration) -> Option<NeighbourState> {
    t.entries(now)
        .find(|e| e.port == port && e.ip == ip(last))
        .map(|e| e.state)
}

#[test]
fn unanswered_request_probes_three_times_then_fails_then_retries() {
    let mut t = NeighbourTable::default();
    t.request(0, ip(2), secs(0));
    t.request(0, ip(2), secs(0)); // already resolving: no second probe
    assert_eq!(actions(&mut t), [probe(0, 2)]);
    assert_eq!(
        state(&t, 0, 2, secs(0)),
        Some(NeighbourState::Incomplete { probes: 1 })
    );
    assert_eq!(t.poll_timeout(), Some(secs(1)));

    t.tick(Duration::from_millis(999));
    assert!(actions(&mut t).is_empty());
    t.tick(secs(1));
    t.tick(secs(2));
    assert_eq!(actions(&mut t), [probe(0, 2), probe(0, 2)]);
    assert_eq!(
        state(&t, 0, 2, secs(2)),
        Some(NeighbourState::Incomplete { probes: 3 })
    );
    t.tick(secs(3));
    assert!(actions(&mut t).is_empty());
    assert_eq!(state(&t, 0, 2, secs(3)), Some(NeighbourState::Failed));
    assert_eq!(t.generation(), 0, "nothing was ever resolved");

    // Requests during the hold time are ignored; after it the entry goes away.
    t.request(0, ip(2), secs(5));
    assert!(actions(&mut t).is_empty());
    t.tick(secs(13));
    assert_eq!(state(&t, 0, 2, secs(13)), None);
    t.request(0, ip(2), secs(14));
    assert_eq!(actions(&mut t), [probe(0, 2)]);
}

#[test]
fn reply_resolves_then_ages_to_stale_then_is_collected() {
    let mut t = NeighbourTable::default();
    t.request(1, ip(2), secs(0));
    actions(&mut t);
    assert!(t.learn(1, ip(2), MAC_A, secs(0), true));
    assert_eq!(t.generation(), 1);
    assert_eq!(t.lookup(1, ip(2)), Some(MAC_A));
    assert_eq!(t.resolved().collect::<Vec<_>>(), [(1, ip(2), MAC_A)]);
    t.tick(secs(5)); // the old probe timer must not fire any more
    assert!(actions(&mut t).is_empty());

    t.tick(secs(30));
    assert_eq!(state(&t, 1, 2, secs(30)), Some(NeighbourState::Stale));
    assert_eq!(
        t.lookup(1, ip(2)),
        Some(MAC_A),
        "stale entries are still used"
    );
    assert_eq!(t.generation(), 1, "stale keeps the MAC: no republish");
    assert!(
        actions(&mut t).is_empty(),
        "unpinned entries are not refreshed"
    );

    t.tick(secs(89));
    assert!(t.lookup(1, ip(2)).is_some());
    t.tick(secs(90));
    assert!(t.is_empty());
    assert_eq!(t.generation(), 2);
}

#[test]
fn a_new_reply_restarts_the_reachable_timer() {
    let mut t = NeighbourTable::default();
    t.learn(0, ip(2), MAC_A, secs(0), true);
    assert!(
        !t.learn(0, ip(2), MAC_A, secs(20), true),
        "same MAC: no change"
    );
    t.tick(secs(30));
    assert_eq!(state(&t, 0, 2, secs(30)), Some(NeighbourState::Reachable));
    let info = t.entries(secs(30)).next().unwrap();
    assert_eq!(info.age, secs(10));
    t.tick(secs(50));
    assert_eq!(state(&t, 0, 2, secs(50)), Some(NeighbourState::Stale));
}

#[test]
fn unsolicited_arp_is_usable_but_not_a_confirmation() {
    let mut t = NeighbourTable::default();
    assert!(t.learn(0, ip(3), MAC_A, secs(0), false));
    assert_eq!(state(&t, 0, 3, secs(0)), Some(NeighbourState::Stale));
    assert_eq!(t.lookup(0, ip(3)), Some(MAC_A));

    t.learn(0, ip(3), MAC_A, secs(1), true);
    assert_eq!(state(&t, 0, 3, secs(1)), Some(NeighbourState::Reachable));
    // Same MAC again unsolicited: nothing changes.
    assert!(!t.learn(0, ip(3), MAC_A, secs(2), false));
    assert_eq!(state(&t, 0, 3, secs(2)), Some(NeighbourState::Reachable));
    // The MAC moved (e.g. failover): take it, but as stale.
    let g = t.generation();
    assert!(t.learn(0, ip(3), MAC_B, secs(3), false));
    assert_eq!(t.generation(), g + 1);
    assert_eq!(t.lookup(0, ip(3)), Some(MAC_B));
    assert_eq!(state(&t, 0, 3, secs(3)), Some(NeighbourState::Stale));
}

#[test]
fn static_entries_are_not_aged_or_overwritten() {
    let mut t = NeighbourTable::default();
    t.learn(0, ip(4), MAC_A, secs(0), true);
    t.add_static(0, ip(4), MAC_B);
    assert_eq!(t.generation(), 2);
    assert!(!t.learn(0, ip(4), MAC_A, secs(1), true));
    t.tick(secs(100_000));
    assert_eq!(t.lookup(0, ip(4)), Some(MAC_B));
    assert_eq!(state(&t, 0, 4, secs(0)), Some(NeighbourState::Static));
    assert_eq!(t.poll_timeout(), None);
    t.flush_port(0);
    assert_eq!(
        t.lookup(0, ip(4)),
        Some(MAC_B),
        "flush keeps static entries"
    );
    assert!(t.remove(0, ip(4)));
    assert!(!t.remove(0, ip(4)));
    assert!(t.is_empty());
    assert_eq!(t.generation(), 3);
}

#[test]
fn pinned_gateways_are_resolved_refreshed_and_retried() {
    let mut t = NeighbourTable::default();
    t.pin(0, ip(1));
    assert_eq!(t.poll_timeout(), Some(Duration::ZERO));
    t.tick(secs(0));
    assert_eq!(actions(&mut t), [probe(0, 1)]);

    // Never answers: fails, then starts again after the hold time instead of vanishing.
    t.tick(secs(1));
    t.tick(secs(2));
    t.tick(secs(3));
    assert_eq!(state(&t, 0, 1, secs(3)), Some(NeighbourState::Failed));
    actions(&mut t);
    t.tick(secs(13));
    assert_eq!(actions(&mut t), [probe(0, 1)]);

    // Answers: reachable; when it goes stale it is probed, and not collected.
    t.learn(0, ip(1), MAC_A, secs(14), true);
    t.tick(secs(44));
    assert_eq!(state(&t, 0, 1, secs(44)), Some(NeighbourState::Stale));
    assert_eq!(actions(&mut t), [probe(0, 1)]);
    t.tick(secs(74));
    assert_eq!(actions(&mut t), [probe(0, 1)]);
    t.tick(secs(1000));
    assert_eq!(t.lookup(0, ip(1)), Some(MAC_A));

    // Pins are counted; once the last goes, the stale entry is collected.
    t.pin(0, ip(1));
    t.unpin(0, ip(1));
    t.tick(secs(1030));
    assert!(t.entries(secs(1030)).next().unwrap().pinned);
    t.unpin(0, ip(1));
    actions(&mut t);
    t.tick(secs(1059));
    assert!(t.lookup(0, ip(1)).is_some());
    // Stale for long already: collected at its next timer, without another probe.
    t.tick(secs(1060));
    assert!(t.is_empty());
    assert!(actions(&mut t).is_empty());
}

#[test]
fn capacity_limits_dynamic_entries_only() {
    let mut t = NeighbourTable::new(NeighbourConfig {
        max_entries: 2,
        ..NeighbourConfig::default()
    });
    t.request(0, ip(1), secs(0));
    t.learn(0, ip(2), MAC_A, secs(0), false);
    t.request(0, ip(3), secs(0));
    assert!(!t.learn(0, ip(4), MAC_A, secs(0), true));
    t.add_static(0, ip(5), MAC_B);
    assert_eq!(t.len(), 3);
    assert_eq!(actions(&mut t), [probe(0, 1)]);
    // Freeing a slot lets new addresses in again.
    assert!(t.remove(0, ip(2)));
    t.request(0, ip(3), secs(1));
    assert_eq!(actions(&mut t), [probe(0, 3)]);
}

#[test]
fn flush_port_and_poll_timeout() {
    let mut t = NeighbourTable::default();
    t.learn(0, ip(1), MAC_A, secs(0), true);
    t.learn(1, ip(1), MAC_A, secs(0), true);
    t.request(1, ip(2), secs(5));
    assert_eq!(t.poll_timeout(), Some(secs(6)));
    t.flush_port(1);
    assert_eq!(t.resolved().count(), 1);
    assert_eq!(t.poll_timeout(), Some(secs(30)));
    t.request(1, ip(2), secs(6));
    assert_eq!(actions(&mut t), [probe(1, 2), probe(1, 2)]);
}
