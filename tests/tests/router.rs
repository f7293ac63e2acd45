//! Topology tests of aegis-dataplane as a router between two Linux hosts:
//!
//! ```text
//! h1 10.0.1.2 ── [veth-h1 10.0.1.1] r1: aegis-dataplane [veth-h2 10.0.2.1] ── 10.0.2.2 h2
//! ```
//!
//! Each test builds its own [`RouterLab`] (own namespaces, own DPDK file prefix, own admin
//! socket), so tests run in parallel under nextest. They need root and the release binaries
//! (`cargo build --release --workspace --bins`, or `$AEGIS_BIN_DIR`); without them they skip
//! loudly, and fail under CI=true. `kernel_router.rs` runs the same checks with r1's Linux
//! kernel as the router, so a failure here that does not happen there is the dataplane's.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aegis_lab::ctl::DropCounters;
use aegis_lab::{frames, probe, RouterLab};
use common::OrPanic;

/// Drop reasons that background traffic (ARP refreshes between hosts and the dataplane) may
/// move at any time; every other counter must move only as a test expects.
const AMBIENT: &[&str] = &["arp_not_for_us"];

/// A started router lab with forwarding verified, or `None` when the test must skip.
fn router(test: &str, prefix: &str) -> Option<RouterLab> {
    let bins = common::ready_bins(test, common::TOOLS)?;
    let mut rl = RouterLab::start_with(prefix, bins).or_panic("start the router lab");
    rl.wait_forwarding(Duration::from_secs(20))
        .or_panic("h1 and h2 reach each other through the dataplane");
    Some(rl)
}

/// Counter changes between two snapshots (reasons missing from `before` count from zero).
fn deltas(before: &DropCounters, after: &DropCounters) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// Polls the drop counters until every reason in `want` moved by at least its amount since
/// `before` (or 10 s pass), then returns the deltas.
fn wait_for_drops(
    rl: &RouterLab,
    before: &DropCounters,
    want: &BTreeMap<&str, u64>,
) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = deltas(before, &rl.drop_counters().or_panic("show errors"));
        let done = want
            .iter()
            .all(|(r, n)| d.get(*r).copied().unwrap_or(0) >= *n);
        if done || Instant::now() >= deadline {
            // One more look after a pause lets stragglers (an unexpected extra drop) show up
            // before the caller compares.
            std::thread::sleep(Duration::from_millis(200));
            return deltas(before, &rl.drop_counters().or_panic("show errors"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ping_both_ways_and_the_router_itself() {
    let Some(mut rl) = router("ping_both_ways", "rping") else {
        return;
    };
    common::ping_both_ways(&rl.lab);
    common::router_answers_ping(&rl.lab);
    rl.check_alive("ping").or_panic("dataplane");
}

#[test]
fn tcp_transfer_of_4_mib_arrives_intact() {
    let Some(mut rl) = router("tcp_transfer", "rtcp") else {
        return;
    };
    common::tcp_transfer_4mib(&mut rl.lab);
    rl.check_alive("TCP transfer").or_panic("dataplane");
}

#[test]
fn traceroute_icmp_and_udp_show_the_dataplane_as_hop_one() {
    let Some(mut rl) = router("traceroute", "rtrace") else {
        return;
    };
    common::traceroute_two_hops(&rl.lab);
    rl.check_alive("traceroute").or_panic("dataplane");
}

#[test]
fn unroutable_destination_gets_unreachable_and_counts_no_route() {
    let Some(mut rl) = router("no_route", "rnoroute") else {
        return;
    };
    let before = rl.drop_counters().or_panic("show errors");
    common::unreachable_from_router(&rl.lab, "10.99.0.1", 3);
    let want = BTreeMap::from([("no_route", 3)]);
    let d = wait_for_drops(&rl, &before, &want);
    assert_eq!(d.get("no_route"), Some(&3), "deltas: {d:?}");
    rl.check_alive("no route").or_panic("dataplane");
}

#[test]
fn route_added_at_run_time_takes_effect_without_loss_on_other_flows() {
    let Some(mut rl) = router("runtime_route", "rroute") else {
        return;
    };
    let RouterLab { lab, ctl, .. } = &mut rl;
    let mut add = || {
        ctl.route_add(common::H3_NET, RouterLab::H2_IP)
            .or_panic("aegisctl route add");
        let routes = ctl.routes().or_panic("show routes");
        assert!(
            routes
                .iter()
                .any(|r| r.prefix == common::H3_NET && r.next_hop == RouterLab::H2_IP),
            "route not listed after add: {routes:?}"
        );
    };
    let mut del = || {
        ctl.route_del(common::H3_NET).or_panic("aegisctl route del");
        let routes = ctl.routes().or_panic("show routes");
        assert!(
            !routes.iter().any(|r| r.prefix == common::H3_NET),
            "route still listed after del: {routes:?}"
        );
    };
    common::runtime_route_change(lab, &mut add, &mut del);
    rl.check_alive("route changes").or_panic("dataplane");
}

#[test]
fn malformed_frames_are_dropped_with_their_reason_and_forwarding_survives() {
    let Some(mut rl) = router("bad_frames", "rbad") else {
        return;
    };
    let ep = rl.h1_endpoints().or_panic("MACs");
    let catalogue = ep.bad_frames();
    let copies = 3u64;
    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    let mut batch = Vec::new();
    for b in &catalogue {
        *want.entry(b.reason).or_default() += copies;
        for _ in 0..copies {
            batch.push(b.frame.clone());
        }
    }

    let before = rl.drop_counters().or_panic("show errors");
    frames::send(&rl.lab, RouterLab::H1, RouterLab::HOST_IF, &batch).or_panic("send frames");
    let d = wait_for_drops(&rl, &before, &want);

    let mut problems = Vec::new();
    for (reason, n) in &want {
        let got = d.get(*reason).copied().unwrap_or(0);
        if got != *n {
            let kinds: Vec<&str> = catalogue
                .iter()
                .filter(|b| b.reason == *reason)
                .map(|b| b.what)
                .collect();
            problems.push(format!(
                "{reason}: counted {got}, expected {n} (from: {})",
                kinds.join("; ")
            ));
        }
    }
    for (reason, got) in &d {
        if !want.contains_key(reason.as_str()) && !AMBIENT.contains(&reason.as_str()) {
            problems.push(format!("{reason}: counted {got}, expected no change"));
        }
    }
    assert!(
        problems.is_empty(),
        "drop counters:\n  {}\nall deltas: {d:?}",
        problems.join("\n  ")
    );

    rl.check_alive("malformed frames").or_panic("dataplane");
    let out = rl
        .lab
        .ping(RouterLab::H1, RouterLab::H2_IP, 3)
        .or_panic("ping");
    let text = common::stdout(&out);
    assert_eq!(
        probe::ping_summary(&text).map(|s| s.received),
        Some(3),
        "forwarding broken after malformed frames:\n{text}"
    );
}
