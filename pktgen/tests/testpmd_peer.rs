//! `aegis-pktgen` → `dpdk-testpmd` (io forwarding) → `aegis-pktgen` over memif: counts,
//! loss, latency, pacing accuracy and gap detection against a real DPDK peer.
//!
//! Each test has its own testpmd: DPDK 22.11's memif server can crash when its client
//! disconnects (it keeps polling the unmapped rings), so a testpmd serves one generator run
//! and is killed afterwards.

mod support;

use std::time::Duration;

use support::{num, peer_available, pktgen_json, PeerLock, TempDir, Testpmd};

#[test]
fn low_rate_loop_has_zero_loss_and_reports_latency() {
    if !peer_available("low_rate_loop_has_zero_loss_and_reports_latency") {
        return;
    }
    let _lock = PeerLock::acquire();
    let dir = TempDir::new("loop");
    let tp = Testpmd::start("loop", dir.path());
    let s = pktgen_json(
        "loop",
        &tp,
        &[
            "--rate",
            "20kpps",
            "--duration",
            "3",
            "--flows",
            "16",
            "--dst-ip",
            "10.0.0.0/28",
        ],
    );
    let tx = num(&s, &["tx", "packets"]);
    let rx = num(&s, &["rx", "unique_packets"]);
    eprintln!("{s:#}");
    assert!(tx > 50_000.0, "3 s at 20 kpps sent only {tx}");
    assert_eq!(rx, tx, "every packet came back");
    assert_eq!(num(&s, &["rx", "packets"]), tx, "no duplicates");
    assert_eq!(num(&s, &["lost_packets"]), 0.0);
    assert_eq!(num(&s, &["duplicate_packets"]), 0.0);
    assert_eq!(num(&s, &["reordered_packets"]), 0.0);
    assert_eq!(num(&s, &["latency_ns", "samples"]), rx);
    let (min, p50, p99, max) = (
        num(&s, &["latency_ns", "min"]),
        num(&s, &["latency_ns", "p50"]),
        num(&s, &["latency_ns", "p99"]),
        num(&s, &["latency_ns", "max"]),
    );
    assert!(
        min > 0.0 && min <= p50 && p50 <= p99 && p99 <= max,
        "{min} {p50} {p99} {max}"
    );
    assert!(
        p50 < 10_000_000.0,
        "median latency through testpmd {p50} ns is absurd"
    );
}

#[test]
fn pacing_is_within_five_percent() {
    if !peer_available("pacing_is_within_five_percent") {
        return;
    }
    let _lock = PeerLock::acquire();
    let dir = TempDir::new("pace");
    let tp = Testpmd::start("pace", dir.path());
    let s = pktgen_json("pace", &tp, &["--rate", "100kpps", "--duration", "3"]);
    let pps = num(&s, &["tx", "pps"]);
    eprintln!("{s:#}");
    assert!(
        (pps / 100_000.0 - 1.0).abs() < 0.05,
        "asked 100 kpps, sent {pps:.0} pps"
    );
    let rx_pps = num(&s, &["rx", "pps"]);
    assert!(
        (rx_pps / 100_000.0 - 1.0).abs() < 0.05,
        "asked 100 kpps, received {rx_pps:.0} pps"
    );
}

#[test]
fn a_300_ms_forwarding_stop_is_reported_as_a_300_ms_gap() {
    if !peer_available("a_300_ms_forwarding_stop_is_reported_as_a_300_ms_gap") {
        return;
    }
    let _lock = PeerLock::acquire();
    let dir = TempDir::new("gap");
    let tp = Testpmd::start("gap", dir.path());
    let s = std::thread::scope(|scope| {
        let run = scope.spawn(|| pktgen_json("gap", &tp, &["--rate", "50kpps", "--duration", "5"]));
        // The generator needs about a second to start; stop the peer 2.5 s in, mid-run.
        std::thread::sleep(Duration::from_millis(2500));
        tp.signal("STOP");
        std::thread::sleep(Duration::from_millis(300));
        tp.signal("CONT");
        run.join().expect("generator thread")
    });
    eprintln!("{s:#}");
    let gap = num(&s, &["longest_gap_ms"]);
    // The stop is 300 ms; scheduling on a loaded 2-CPU VM adds a little on either side
    // (kill(1) is a process start each way).
    assert!(
        (250.0..=600.0).contains(&gap),
        "longest gap {gap} ms for a 300 ms stop"
    );
    let at = num(&s, &["longest_gap", "start_s"]);
    assert!(
        (0.5..=3.5).contains(&at),
        "the gap began at {at} s, not mid-run"
    );
    // While testpmd is stopped the memif ring fills and the generator's port backs up:
    // the packets are delayed or given up at the sender, never counted as received twice.
    assert_eq!(num(&s, &["duplicate_packets"]), 0.0);
}
