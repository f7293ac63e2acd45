//! Interop with a real keepalived (the Debian package) on one link, same VRID: the higher
//! priority wins either way, keepalived accepts our advertisements and stays backup, and
//! stopping either side (SIGSTOP: silence; SIGTERM: priority 0) makes the other master
//! within 3 × interval + skew (SIGTERM: within the skew). Each test prints the takeover
//! times it measured (`--no-capture` shows them; docs/vrrp.md records them).
//!
//! Needs root, `ip netns`, keepalived and the release binaries; skips loudly without them
//! and fails under CI=true.

mod common;

use std::time::Duration;

use aegis_lab::vrrp::{Side, VrrpLab};
use aegis_lab::{env, Bins};
use common::OrPanic;

/// What our polling adds to a measured takeover: a look costs an `ip` or `aegisctl` run
/// (a few ms, more on a loaded 2-core CI machine) and the dataplane's control loop ticks
/// every 5 ms.
const SLACK: Duration = Duration::from_millis(250);

const TOOLS: &[&str] = &["ping", "keepalived", "kill"];

fn lab(test: &str, prefix: &str, ours: Side, theirs: Side) -> Option<VrrpLab> {
    if !env::lab_ready(test, TOOLS) {
        return None;
    }
    let bins = Bins::locate();
    if let Err(e) = bins.dataplane().and_then(|_| bins.aegisctl()) {
        env::skip_or_fail(test, &e.to_string());
        return None;
    }
    Some(VrrpLab::start(prefix, bins, ours, theirs).or_panic("start the VRRP lab"))
}

fn dump_logs(l: &mut VrrpLab) -> String {
    format!(
        "--- dataplane log ---\n{}\n--- keepalived log ---\n{}",
        l.dataplane_log(),
        l.keepalived_log()
    )
}

/// The MAC ka's neighbour table has for the virtual address.
fn vip_mac_seen_by_ka(l: &VrrpLab) -> String {
    let out = l
        .lab
        .ip(VrrpLab::KA, &["neigh", "show", VrrpLab::VIP])
        .or_panic("ip neigh");
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

fn ping_vip_answered_by_us(l: &VrrpLab) {
    l.lab
        .wait_ping(VrrpLab::KA, VrrpLab::VIP, Duration::from_secs(5))
        .or_panic("ka pings the virtual address");
    let ours = l.lab.mac(VrrpLab::GW, VrrpLab::GW_IF).or_panic("gw mac");
    assert_eq!(
        vip_mac_seen_by_ka(l),
        ours.to_lowercase(),
        "the virtual address resolves to the gateway's port"
    );
}

/// After the master (advertising every `master_ms`) fell silent: waits until `claimed`,
/// prints the time, and checks it against `backup`'s master-down interval. The stop lands
/// anywhere in the master's interval, so the silence seen is master-down minus up to one
/// interval.
fn takeover_after_silence(
    l: &VrrpLab,
    what: &str,
    backup: Side,
    master_ms: u32,
    claimed: impl FnMut(&VrrpLab) -> aegis_lab::Result<bool>,
) {
    let down = backup.master_down(master_ms);
    let took = l.time_until(what, down + SLACK * 4, claimed).or_panic(what);
    eprintln!(
        "{what}: {:.0} ms after SIGSTOP of the master (master-down {:.0} ms)",
        took.as_secs_f64() * 1000.0,
        down.as_secs_f64() * 1000.0
    );
    assert!(
        took + Duration::from_millis(u64::from(master_ms)) >= down - SLACK / 5
            && took <= down + SLACK,
        "{what}: after {took:?}, master-down is {down:?}"
    );
}

/// After the master sent priority 0: waits until `claimed` and checks that it took less
/// than three intervals (only the skew, never master-down, is that short).
fn takeover_after_priority_zero(
    l: &mut VrrpLab,
    what: &str,
    backup: Side,
    master_ms: u32,
    claimed: impl FnMut(&VrrpLab) -> aegis_lab::Result<bool>,
) {
    let skew = backup.skew(master_ms);
    let took = l
        .time_until(what, Duration::from_secs(3), claimed)
        .or_panic(what);
    eprintln!(
        "{what}: {:.0} ms after SIGTERM of the master (skew {:.0} ms)",
        took.as_secs_f64() * 1000.0,
        skew.as_secs_f64() * 1000.0
    );
    assert!(
        took < Duration::from_millis(3 * u64::from(master_ms)),
        "{what}: after priority 0 the backup waits the skew ({skew:?}), not master-down; took {took:?}\n{}",
        dump_logs(l)
    );
}

#[test]
fn aegis_with_higher_priority_wins_keepalived_stays_backup_and_takes_over_when_we_stop() {
    let ours = Side {
        priority: 200,
        interval_ms: 100,
    };
    let theirs = Side {
        priority: 100,
        interval_ms: 100,
    };
    let Some(mut l) = lab("aegis_with_higher_priority_wins", "vrka", ours, theirs) else {
        return;
    };
    l.time_until("we become master", Duration::from_secs(10), |l| {
        Ok(l.our_state()? == "MASTER")
    })
    .or_panic("master");
    // keepalived hears us and stays backup: for 2 s the address never appears on its side.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        assert!(
            !l.keepalived_master().or_panic("ka addr"),
            "keepalived claimed while we are master\n{}",
            dump_logs(&mut l)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(l.our_state().or_panic("state"), "MASTER");
    ping_vip_answered_by_us(&l);

    // SIGSTOP: we fall silent; keepalived claims after its master-down interval.
    let pid = l.dataplane_pid();
    l.kill("STOP", pid).or_panic("SIGSTOP the dataplane");
    takeover_after_silence(&l, "keepalived took over", theirs, ours.interval_ms, |l| {
        l.keepalived_master()
    });

    // SIGCONT: we have the higher priority and preempt.
    l.kill("CONT", pid).or_panic("SIGCONT");
    l.time_until("we take back", Duration::from_secs(5), |l| {
        Ok(l.our_state()? == "MASTER" && !l.keepalived_master()?)
    })
    .or_panic("we preempt keepalived again");

    // SIGTERM: we send priority 0; keepalived claims after the skew, not master-down.
    let before = l.our_instance().or_panic("show vrrp");
    assert!(before["adverts_tx"].as_u64().unwrap() > 10, "{before}");
    l.kill("TERM", pid).or_panic("SIGTERM");
    takeover_after_priority_zero(
        &mut l,
        "keepalived took over",
        theirs,
        ours.interval_ms,
        |l| l.keepalived_master(),
    );
    l.lab
        .proc(l.dataplane)
        .wait(Duration::from_secs(10))
        .or_panic("dataplane exits on SIGTERM");
    assert!(
        l.dataplane_log().contains("VRRP transition"),
        "transitions are logged"
    );
}

#[test]
fn keepalived_with_higher_priority_wins_and_we_take_over_when_it_stops() {
    let ours = Side {
        priority: 100,
        interval_ms: 100,
    };
    let theirs = Side {
        priority: 200,
        interval_ms: 100,
    };
    let Some(mut l) = lab("keepalived_with_higher_priority_wins", "vrkb", ours, theirs) else {
        return;
    };
    l.time_until("keepalived becomes master", Duration::from_secs(10), |l| {
        l.keepalived_master()
    })
    .or_panic("keepalived master");
    l.time_until("we follow keepalived", Duration::from_secs(5), |l| {
        let i = l.our_instance()?;
        Ok(i["state"] == "BACKUP"
            && i["master"] == VrrpLab::KA_IP
            && i["master_priority"] == 200
            && i["adverts_rx"].as_u64().unwrap_or(0) >= 5)
    })
    .or_panic("we are backup of keepalived");
    // The operator's table says the same.
    let table = l.ctl.text(&["show", "vrrp"]).or_panic("show vrrp");
    eprintln!("{table}");
    let row = table
        .lines()
        .find(|r| r.starts_with("VI_LAB "))
        .unwrap_or_else(|| panic!("no VI_LAB row in\n{table}"));
    for cell in [
        "ext0",
        "77",
        "100ms",
        "BACKUP",
        "10.77.0.1 (200)",
        "10.77.0.100/24",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }

    // SIGSTOP keepalived's VRRP process: we claim after our master-down interval.
    let vrrp_pid = l.keepalived_vrrp_pid().or_panic("keepalived vrrp pid");
    l.kill("STOP", vrrp_pid).or_panic("SIGSTOP keepalived");
    takeover_after_silence(&l, "aegis took over", ours, theirs.interval_ms, |l| {
        Ok(l.our_state()? == "MASTER")
    });
    let i = l.our_instance().or_panic("show vrrp");
    assert_eq!(i["last_cause"], "master down", "{i}");

    // SIGCONT: keepalived has the higher priority and takes the address back.
    l.kill("CONT", vrrp_pid).or_panic("SIGCONT keepalived");
    l.time_until("keepalived preempts", Duration::from_secs(5), |l| {
        Ok(l.our_state()? == "BACKUP")
    })
    .or_panic("we yield to keepalived");
    let i = l.our_instance().or_panic("show vrrp");
    assert!(
        i["last_cause"]
            .as_str()
            .unwrap_or("")
            .starts_with("higher priority master 10.77.0.1"),
        "{i}"
    );

    // SIGTERM keepalived: it sends priority 0; we claim after the skew.
    let parent = l.keepalived_pid();
    l.kill("TERM", parent).or_panic("SIGTERM keepalived");
    takeover_after_priority_zero(&mut l, "aegis took over", ours, theirs.interval_ms, |l| {
        Ok(l.our_state()? == "MASTER")
    });
    let i = l.our_instance().or_panic("show vrrp");
    assert!(i["priority_zero_rx"].as_u64().unwrap() >= 1, "{i}");
    // keepalived gave the address up; ka now reaches it at the gateway.
    l.lab
        .proc(l.keepalived)
        .wait(Duration::from_secs(10))
        .or_panic("keepalived exits");
    ping_vip_answered_by_us(&l);
}

#[test]
fn vrrp_v2_one_second_interval_interoperates_and_fails_over_in_master_down() {
    let ours = Side {
        priority: 100,
        interval_ms: 1000,
    };
    let theirs = Side {
        priority: 150,
        interval_ms: 1000,
    };
    let Some(l) = lab("vrrp_v2_one_second", "vrkc", ours, theirs) else {
        return;
    };
    l.time_until("keepalived becomes master", Duration::from_secs(15), |l| {
        l.keepalived_master()
    })
    .or_panic("keepalived master");
    l.time_until("we follow keepalived", Duration::from_secs(5), |l| {
        let i = l.our_instance()?;
        Ok(i["state"] == "BACKUP" && i["version"] == 2 && i["adverts_rx"].as_u64() >= Some(2))
    })
    .or_panic("we are backup of keepalived (v2)");
    let vrrp_pid = l.keepalived_vrrp_pid().or_panic("keepalived vrrp pid");
    l.kill("STOP", vrrp_pid).or_panic("SIGSTOP keepalived");
    takeover_after_silence(
        &l,
        "aegis (v2, 1 s) took over",
        ours,
        theirs.interval_ms,
        |l| Ok(l.our_state()? == "MASTER"),
    );
    l.kill("CONT", vrrp_pid).or_panic("SIGCONT keepalived");
    l.time_until("keepalived preempts", Duration::from_secs(5), |l| {
        Ok(l.our_state()? == "BACKUP")
    })
    .or_panic("we yield to keepalived");
}
