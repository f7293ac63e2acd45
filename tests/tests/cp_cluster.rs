//! The control cluster under failure: three `aegis-controlplane` nodes in network namespaces on
//! a bridge, a client namespace writing through the cluster IP (see
//! [`aegis_lab::cpcluster`] for the topology).
//!
//! - `leader_kill`: `kill -9` the leader while the client writes in a loop. A new leader holds
//!   the cluster IP within the election timeout plus slack, the client's writes resume, every
//!   acknowledged write is present afterwards, and the killed node catches up after a restart.
//! - `leader_partition`: cut the leader's cable. The majority elects a new leader that takes the
//!   cluster IP; the old leader drops the IP within its lease and refuses writes; after the
//!   cable is back the cluster converges and no acknowledged write is lost.
//!
//! Each test builds its own lab (own namespaces), so they run in parallel. They need root and
//! the release binaries `aegis-controlplane` and `aegisctl`; without them they skip loudly, and
//! fail under CI=true. The nodes run with the daemon's default timing (heartbeat 50 ms,
//! election timeout 300–600 ms, lease 300 ms). The bounds asserted leave room for a loaded CI
//! machine; the measured figures are printed (`--nocapture`, or nextest's output on failure).

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::thread::sleep;
use std::time::{Duration, Instant};

use aegis_lab::cpcluster::{
    ping_reply_times, spawn_writers, unix_now, CpCluster, Timing, WriterSpec, Writes,
};
use aegis_lab::wait::{self, Poll};
use aegis_lab::{env, Bins};
use common::OrPanic;

/// From the leader's death (or isolation) to a new leader holding the cluster IP. An election
/// usually takes two rounds: openraft followers refuse votes for the maximum election timeout
/// (600 ms) after the last heartbeat, so a candidate that timed out earlier is turned down
/// once. Measured on an idle 2-CPU VM (docs/controlplane.md): median ~1.1 s, tail 1.9–3.4 s
/// when votes split; the bound leaves room for CI running other tests beside this one.
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);
/// From the leader's death to the client's next acknowledged write.
const WRITE_RESUME_BOUND: Duration = Duration::from_secs(7);
/// From the cut to the isolated leader dropping the cluster IP: its lease (300 ms) plus slack.
const DROP_BOUND: Duration = Duration::from_millis(1500);

/// A started 3-node cluster, or `None` when the test must skip.
fn cluster(test: &str, prefix: &str) -> Option<CpCluster> {
    if !env::lab_ready(test, &["ping", "stdbuf"]) {
        return None;
    }
    let bins = Bins::locate();
    if let Err(e) = bins.controlplane().and_then(|_| bins.aegisctl()) {
        env::skip_or_fail(test, &e.to_string());
        return None;
    }
    Some(CpCluster::start(prefix, &bins, 3, Timing::default()).or_panic("start the cluster"))
}

/// Starts `ping -D -i 0.02` of the cluster IP in the client (its log is read afterwards).
fn ping_monitor(c: &mut CpCluster) -> aegis_lab::ProcId {
    c.lab
        .spawn(
            CpCluster::CLIENT,
            "ping-vip",
            "stdbuf",
            &[
                "-oL",
                "ping",
                "-D",
                "-n",
                "-O",
                "-i",
                "0.02",
                "-W",
                "1",
                CpCluster::CLUSTER_IP,
            ],
        )
        .or_panic("ping monitor")
}

/// The longest gap between ping replies in the window [`from`, `from` + 10 s] (unix time).
fn longest_ping_gap(log: &str, from: f64) -> Duration {
    let t: Vec<f64> = ping_reply_times(log)
        .into_iter()
        .filter(|&x| x >= from - 1.0 && x <= from + 10.0)
        .collect();
    let gap = t.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    Duration::from_secs_f64(gap)
}

/// Polls every 10 ms until exactly one of `ids` has the cluster IP on its interface.
fn wait_one_holder(c: &CpCluster, ids: &[u64], limit: Duration) -> (u64, Instant) {
    wait::until(
        "one node to hold the cluster IP",
        limit,
        Duration::from_millis(10),
        || match c.cluster_ip_holders(ids) {
            Ok(h) if h.len() == 1 => Poll::Ready((h[0], Instant::now())),
            Ok(h) => Poll::Pending(format!("holders {h:?}")),
            Err(e) => Poll::Fail(e),
        },
    )
    .or_panic("cluster IP takeover")
}

/// Every acknowledged write is listed by `server` (asked from `host`); returns the count.
fn assert_all_present(c: &CpCluster, w: &Writes, host: &str, server: &str) -> usize {
    let names = c.vpc_names(host, server).or_panic("vpc list");
    let acked = w.acked_names();
    let missing: Vec<&String> = acked.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes missing on {server}: {missing:?}",
        missing.len()
    );
    names.len()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn cp_leader_kill_moves_the_cluster_ip_and_loses_no_acknowledged_write() {
    let Some(mut c) = cluster("cp_leader_kill", "cpkill") else {
        return;
    };
    let ids = c.ids();
    let old = c
        .wait_leader(&ids, None, Duration::from_secs(10))
        .or_panic("leader");
    assert_eq!(c.cluster_ip_holders(&ids).or_panic("holders"), vec![old]);
    let ping = ping_monitor(&mut c);

    let mut spec = WriterSpec::new(CpCluster::vip_endpoint(), 1);
    spec.attempt_timeout = Duration::from_secs(1);
    let stop = spec.stop.clone();
    let writers = spawn_writers(
        Some(c.netns_path(CpCluster::CLIENT).or_panic("netns")),
        spec,
    );
    sleep(Duration::from_millis(1500));

    let (killed_at, status) = c.kill9(old).or_panic("kill -9 the leader");
    let killed_unix = unix_now();
    assert_eq!(
        status.signal(),
        Some(9),
        "the leader did not die of SIGKILL"
    );
    let survivors: Vec<u64> = ids.iter().copied().filter(|&i| i != old).collect();
    let (holder, vip_at) = wait_one_holder(&c, &survivors, TAKEOVER_BOUND * 2);
    let new_mac = c.mac(holder).or_panic("mac");
    let arp_at = wait::until(
        "the client's ARP entry for the cluster IP to name the new holder",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || match c.client_cluster_ip_mac() {
            Ok(Some(m)) if m == new_mac => Poll::Ready(Instant::now()),
            Ok(m) => Poll::Pending(format!("{m:?}, want {new_mac}")),
            Err(e) => Poll::Fail(e),
        },
    )
    .or_panic("ARP");
    let new = c
        .wait_leader(&survivors, Some(old), Duration::from_secs(5))
        .or_panic("new leader");
    assert_eq!(holder, new, "the cluster IP is not on the new leader");
    sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writers.join().expect("writer thread").or_panic("writers");
    let ping_log = c.lab.stop(ping);

    // The killed leader's address stays in its kernel (nobody removes it on SIGKILL).
    let stale = c.has_cluster_ip(old).or_panic("addr");
    let takeover = vip_at - killed_at;
    let arp = arp_at - killed_at;
    let first = writes.first_ack_after(killed_at).unwrap_or_else(|| {
        panic!(
            "no write acknowledged after the kill:\n{}",
            writes.error_summary()
        )
    });
    let resume = first.finished - killed_at;
    let acked_after = writes
        .records
        .iter()
        .filter(|r| r.acked() && r.last_attempt > killed_at)
        .count();
    println!(
        "leader kill: node {old} killed; node {new} holds the cluster IP after {} ms, the client's \
         ARP names it after {} ms, first acknowledged write after {} ms; longest ping gap {} ms; \
         {} writes acknowledged ({acked_after} after the kill), {} failed attempts; stale \
         address left on the killed node: {stale}\nfailed attempts:\n{}",
        ms(takeover),
        ms(arp),
        ms(resume),
        ms(longest_ping_gap(&ping_log, killed_unix)),
        writes.acked_names().len(),
        writes.errors.len(),
        writes.error_summary()
    );
    assert!(writes.rejected().is_empty(), "{:?}", writes.rejected());
    assert!(
        takeover <= TAKEOVER_BOUND,
        "new leader took the cluster IP after {takeover:?}"
    );
    assert!(
        resume <= WRITE_RESUME_BOUND,
        "writes resumed after {resume:?}"
    );
    assert!(acked_after >= 5, "only {acked_after} writes after the kill");
    assert_all_present(&c, &writes, CpCluster::CLIENT, &CpCluster::vip_endpoint());
    assert!(!c.is_running(old), "the killed leader still runs");

    // The killed node comes back on its data dir (no --join) and catches up.
    c.start_node(old, false).or_panic("restart the killed node");
    let rev = c
        .wait_converged(&ids, Duration::from_secs(20))
        .or_panic("the restarted node catches up");
    let s = c.status_of(old).or_panic("status");
    assert_eq!(s.state, "follower", "{s:?}");
    assert_eq!(s.revision, rev);
    assert_all_present(
        &c,
        &writes,
        &CpCluster::host(old),
        &CpCluster::endpoint(old),
    );
    // It cleared the address it left behind at start.
    assert_eq!(c.cluster_ip_holders(&ids).or_panic("holders"), vec![new]);
    c.check_alive("end of test").or_panic("nodes");
}

#[test]
fn cp_partitioned_leader_drops_the_cluster_ip_refuses_writes_and_rejoins() {
    let Some(mut c) = cluster("cp_partition", "cppart") else {
        return;
    };
    let ids = c.ids();
    let old = c
        .wait_leader(&ids, None, Duration::from_secs(10))
        .or_panic("leader");

    let mut spec = WriterSpec::new(CpCluster::vip_endpoint(), 1);
    spec.attempt_timeout = Duration::from_secs(1);
    let next_vni = spec.next_vni.clone();
    let stop = spec.stop.clone();
    let writers = spawn_writers(
        Some(c.netns_path(CpCluster::CLIENT).or_panic("netns")),
        spec,
    );
    sleep(Duration::from_millis(1500));

    let cut_at = Instant::now();
    c.cable(old, false).or_panic("cut the leader's cable");
    let majority: Vec<u64> = ids.iter().copied().filter(|&i| i != old).collect();

    // The isolated leader drops the cluster IP once its lease runs out.
    let dropped_at = wait::until(
        "the isolated leader to drop the cluster IP",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || match c.has_cluster_ip(old) {
            Ok(false) => Poll::Ready(Instant::now()),
            Ok(true) => Poll::Pending("still there".into()),
            Err(e) => Poll::Fail(e),
        },
    )
    .or_panic("drop");
    let (holder, vip_at) = wait_one_holder(&c, &majority, TAKEOVER_BOUND * 2);
    let new = c
        .wait_leader(&majority, Some(old), Duration::from_secs(5))
        .or_panic("new leader of the majority");
    assert_eq!(holder, new, "the cluster IP is not on the new leader");
    c.lab
        .wait_ping(
            CpCluster::CLIENT,
            CpCluster::CLUSTER_IP,
            Duration::from_secs(5),
        )
        .or_panic("the cluster IP answers from the new leader");

    // A write to the isolated node itself (from its own namespace) is refused.
    let refused_vni = next_vni.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let refused_name = format!("v{refused_vni}");
    let out = c
        .ctl(
            &CpCluster::host(old),
            &CpCluster::endpoint(old),
            &[
                "vpc",
                "create",
                &refused_name,
                "--vni",
                &refused_vni.to_string(),
            ],
        )
        .or_panic("aegisctl on the isolated node");
    let old_status = c.status_of(old).or_panic("status of the isolated node");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the isolated node did not refuse the write as UNAVAILABLE: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!old_status.holds_cluster_ip, "{old_status:?}");

    sleep(Duration::from_millis(1500));
    c.cable(old, true).or_panic("restore the cable");
    let healed_at = Instant::now();
    sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writers.join().expect("writer thread").or_panic("writers");

    let rev = c
        .wait_converged(&ids, Duration::from_secs(20))
        .or_panic("the cluster converges after healing");
    let converged = healed_at.elapsed();
    let s = c.status_of(old).or_panic("status");
    assert_ne!(s.state, "leader", "the old leader still leads: {s:?}");
    let leader = s.leader_id;
    let first = writes.first_ack_after(cut_at);
    println!(
        "partition: node {old} cut off; it dropped the cluster IP after {} ms (state then: {}); \
         node {new} holds it after {} ms; first acknowledged write after {:?} ms; converged at \
         revision {rev} within {} ms of healing; {} writes acknowledged, {} failed attempts:\n{}",
        ms(dropped_at - cut_at),
        old_status.state,
        ms(vip_at - cut_at),
        first.map(|r| ms(r.finished - cut_at)),
        ms(converged),
        writes.acked_names().len(),
        writes.errors.len(),
        writes.error_summary()
    );
    assert!(writes.rejected().is_empty(), "{:?}", writes.rejected());
    assert!(
        dropped_at - cut_at <= DROP_BOUND,
        "the isolated leader kept the cluster IP for {:?}",
        dropped_at - cut_at
    );
    assert!(
        vip_at - cut_at <= TAKEOVER_BOUND,
        "the majority's leader took the cluster IP after {:?}",
        vip_at - cut_at
    );
    let first = first.expect("no write acknowledged after the cut");
    assert!(
        first.finished - cut_at <= WRITE_RESUME_BOUND,
        "writes resumed after {:?}",
        first.finished - cut_at
    );
    let mut lists = Vec::new();
    for id in &ids {
        let names: BTreeSet<String> = c
            .vpc_names(&CpCluster::host(*id), &CpCluster::endpoint(*id))
            .or_panic("vpc list");
        let missing: Vec<String> = writes.acked_names().difference(&names).cloned().collect();
        assert!(
            missing.is_empty(),
            "node {id}: acknowledged writes missing: {missing:?}"
        );
        assert!(
            !names.contains(&refused_name),
            "the refused write {refused_name} was applied"
        );
        lists.push(names);
    }
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "nodes disagree");
    assert_eq!(
        c.cluster_ip_holders(&ids).or_panic("holders"),
        vec![leader],
        "after healing exactly the leader holds the cluster IP"
    );
    c.check_alive("end of test").or_panic("nodes");
}
