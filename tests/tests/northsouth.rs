//! North-south in the full lab ([`NorthSouthLab`]): VMs on compute hosts reach a host on
//! the external network through a VRRP pair of Aegis gateways over the overlay, all of it
//! declared in the control plane (ExternalNetwork, GatewayGroup, SnatRule, FloatingIp).
//!
//! - b3 (VPC blue) keeps a TCP connection to x1 through source NAT, x1 keeps one to b1's
//!   floating IP, 100 UDP flows from b4 add NAT sessions; b3 reaches b1 by its floating IP
//!   (hairpinning); VPC red, with no gateway, reaches nothing outside; x1's 1500-byte ping
//!   with DF to the floating IP is answered with fragmentation needed, MTU 1450.
//! - `kill -9` of the master gateway: the compute hosts' path follows the tunnel address to
//!   the backup (VRRP, gratuitous ARP); both connections survive with no reset, the gaps
//!   and the takeover time are printed, and the backup committed every session before it
//!   claimed.
//!
//! - the gateways run VRRP from the control plane's GatewayGroup alone (no keepalived.conf):
//!   each builds `gw-tunnel` and `gw-external` with its member priority; after the kill,
//!   the restarted g1 takes the group back (priority 200 over 100), then `aegisctl
//!   gateway-group update gw --member g2:250` moves mastership to g2 at run time — no
//!   restart, one transition per instance on each side — and b3 still reaches x1.
//!
//! - standby death and re-selection in a group of three: the control plane chose g1 and g2
//!   (g3 a spare, streamed nothing); `kill -9` of the standby g2: once its host stops
//!   heartbeating the leader chooses g3, g1 bulk-resyncs it to its own session count, and
//!   `aegisctl gateway status` says redundant again; the time from the kill is printed.
//!
//! Needs root and the release binaries; skips loudly without them, fails under CI=true.

mod common;

use std::time::{Duration, Instant};

use aegis_lab::northsouth::{
    advert_ms, gateway_external, gateway_underlay, NorthSouthLab, EXTERNAL_HOST, EXTERNAL_IP,
    FLOATING_IP, GROUP, PUBLIC_PORT, SNAT_IP, TUNNEL_IP,
};
use aegis_lab::{streams, ProcId};
use common::{has_hop, hosts, verdict, OrPanic};
use serde_json::Value;

fn sessions(v: &Value) -> u64 {
    v["sessions"].as_u64().unwrap_or(0)
}

/// Waits until g1 has at least `at_least` sessions, g2 as many, nothing unacknowledged.
fn converged(ns: &NorthSouthLab, at_least: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let m = ns.sync(0).or_panic("g1 sync");
        let b = ns.sync(1).or_panic("g2 sync");
        let lag = m["peers"][0]["lag"].as_u64().unwrap_or(u64::MAX);
        if sessions(&m) >= at_least && sessions(&b) == sessions(&m) && lag == 0 {
            return sessions(&m);
        }
        assert!(
            Instant::now() < deadline,
            "g2 did not converge to g1:\ng1 {m}\ng2 {b}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `aegisctl gateway status gw -o json`: the group's entry.
fn group_status(ns: &NorthSouthLab) -> Value {
    let v = ns
        .ew
        .cp_json(&["gateway", "status", GROUP])
        .or_panic("aegisctl gateway status");
    v["groups"][0].clone()
}

/// Polls `gateway status` until `ready` holds for the group; returns it.
fn wait_status(
    ns: &NorthSouthLab,
    what: &str,
    limit: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = group_status(ns);
        if ready(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}:\n{s:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (host, sync_role) of each member, highest priority first.
fn sync_roles(status: &Value) -> Vec<(String, String)> {
    status["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["host"].as_str().unwrap_or("").to_owned(),
                        m["sync_role"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Gateway `i`'s generated instances as (name, state, priority, transitions), by name.
fn instances(ns: &NorthSouthLab, i: usize) -> Vec<(String, String, u64, u64)> {
    let v = ns.vrrp(i).or_panic("show vrrp");
    let mut out: Vec<_> = v["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap_or("").to_owned(),
                        x["state"].as_str().unwrap_or("").to_owned(),
                        x["priority"].as_u64().unwrap_or(0),
                        x["transitions"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn finished_ok(ns: &mut NorthSouthLab, id: ProcId, what: &str) -> Value {
    ns.ew
        .lab
        .proc(id)
        .wait(Duration::from_secs(60))
        .or_panic("client finished");
    let r = streams::summary(&ns.ew.lab.proc(id).log()).or_panic("client summary");
    assert_eq!(r["ok"], true, "{what}: {r}\ng2 log:\n{}", ns.log(1));
    r
}

#[test]
fn vms_reach_the_outside_through_the_gateway_pair_and_a_kill_9_keeps_their_connections() {
    let test =
        "vms_reach_the_outside_through_the_gateway_pair_and_a_kill_9_keeps_their_connections";
    let Some(bins) = common::ready_bins(test, &["python3", "ping"]) else {
        return;
    };
    let mut ns = NorthSouthLab::start("nsfo", bins).or_panic("start the north-south lab");

    // The VRRP instances come from the GatewayGroup: a sync group of two instances with
    // the group's VRID, the member's priority and the other gateway as unicast peer.
    let v = ns.vrrp(0).or_panic("g1 show vrrp");
    let by_name = |name: &str| {
        v["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("g1 runs no {name}: {v:#}"))
    };
    let (tun, ext) = (by_name("gw-tunnel"), by_name("gw-external"));
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(2), "{v:#}");
    for (i, port, peer, address) in [
        (&tun, "ul0", gateway_underlay(1), format!("{TUNNEL_IP}/32")),
        (&ext, "ext0", gateway_external(1), format!("{SNAT_IP}/24")),
    ] {
        assert_eq!(i["port"], port, "{i:#}");
        assert_eq!(i["vrid"], 71, "{i:#}");
        assert_eq!(i["version"], 3, "{i:#}");
        assert_eq!(i["interval_ms"], u64::from(advert_ms()), "{i:#}");
        assert_eq!(i["priority"], 200, "{i:#}");
        assert_eq!(i["state"], "MASTER", "{i:#}");
        assert_eq!(i["peers"], serde_json::json!([peer]), "{i:#}");
        assert_eq!(i["sync_group"], format!("gateway-group:{GROUP}"), "{i:#}");
        assert_eq!(i["source"], format!("gateway-group {GROUP}"), "{i:#}");
        assert!(
            i["addresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| *x == address.as_str())),
            "{i:#}"
        );
    }
    assert_eq!(v["problems"], serde_json::json!([]), "{v:#}");
    println!(
        "g1 aegisctl dp show vrrp (built from the GatewayGroup):\n{}",
        ns.gws[0].ctl.text(&["show", "vrrp"]).or_panic("show vrrp")
    );
    println!(
        "aegisctl get gateway-group {GROUP}:\n{}",
        ns.ew
            .cp(&["gateway-group", "get", GROUP])
            .or_panic("get gateway-group")
    );

    // VPC red has no gateway group: nothing outside is reachable (net unreachable).
    let red = ns.ew.ping("r1", EXTERNAL_IP, 2).or_panic("ping from r1");
    assert!(!red.status.success(), "red reached the outside");
    // Hairpinning: b3 reaches b1 by its floating IP through the gateway.
    ns.ew
        .wait_ping("b3", FLOATING_IP, Duration::from_secs(10))
        .or_panic("b3 pings b1's floating IP");
    // From outside, a packet too big for the overlay gets fragmentation needed with the VM
    // MTU from the gateway: path-MTU discovery works through the floating IP.
    let big = ns
        .ew
        .lab
        .exec(
            EXTERNAL_HOST,
            "ping",
            &[
                "-n",
                "-c",
                "1",
                "-W",
                "2",
                "-M",
                "do",
                "-s",
                "1472",
                FLOATING_IP,
            ],
        )
        .or_panic("a 1500-byte ping from x1");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&big.stdout),
        String::from_utf8_lossy(&big.stderr)
    );
    assert!(
        said.contains(&format!("mtu = {}", aegis_lab::eastwest::VM_MTU)),
        "x1 is told the overlay MTU:\n{said}"
    );

    // Traces: a VM to the outside, the outside to a floating IP, and VPC red (no gateway).
    let t = ns
        .ew
        .cp_json(&[
            "trace",
            "--from",
            "b3",
            "--dst",
            EXTERNAL_IP,
            "--proto",
            "tcp",
            "--dport",
            "5001",
        ])
        .or_panic("trace b3 -> x1");
    assert_eq!(verdict(&t), ("delivered", "g1", ""), "{t:#}");
    assert_eq!(hosts(&t), ["c1", "g1"], "{t:#}");
    assert!(has_hop(&t, "g1", "geneve-input", "forwarded"), "{t:#}");
    assert!(has_hop(&t, "g1", "gateway-output", "delivered"), "{t:#}");
    assert_eq!(t["expected"]["outcome"], "external", "{t:#}");
    assert_eq!(t["findings"], serde_json::json!([]), "{t:#}");
    let t = ns
        .ew
        .cp_json(&[
            "trace",
            "--from-external",
            GROUP,
            "--dst",
            FLOATING_IP,
            "--proto",
            "tcp",
            "--dport",
            PUBLIC_PORT,
        ])
        .or_panic("trace from outside to b1's floating IP");
    assert_eq!(verdict(&t), ("delivered", "c1", ""), "{t:#}");
    assert_eq!(hosts(&t), ["g1", "c1"], "{t:#}");
    assert_eq!(t["expected"]["outcome"], "deliver", "{t:#}");
    assert_eq!(t["findings"], serde_json::json!([]), "{t:#}");
    println!(
        "aegisctl trace --from-external {GROUP} --dst {FLOATING_IP}:\n{}",
        ns.ew
            .cp(&["trace", "--from-external", GROUP, "--dst", FLOATING_IP])
            .or_panic("trace table")
    );
    let t = ns
        .ew
        .cp_json(&["trace", "--from", "r1", "--dst", EXTERNAL_IP])
        .or_panic("trace r1 -> x1");
    assert_eq!(verdict(&t), ("dropped", "c2", "vpc_no_route"), "{t:#}");

    // Two long connections: b3 -> x1 through source NAT, x1 -> b1's floating IP.
    let lab = &mut ns.ew.lab;
    let srv_snat = streams::echo_server(lab, EXTERNAL_HOST, "echo-snat", EXTERNAL_IP, "5001")
        .or_panic("x1's server");
    let srv_fip = streams::echo_server(lab, "b1", "echo-fip", "10.1.1.11", PUBLIC_PORT)
        .or_panic("b1's server");
    let seconds = if advert_ms() >= 500 { "24" } else { "16" };
    let cli_snat = streams::stream_client(
        lab,
        "b3",
        "client-snat",
        (EXTERNAL_IP, "5001"),
        "10.1.2.13",
        seconds,
    )
    .or_panic("b3's client");
    let cli_fip = streams::stream_client(
        lab,
        EXTERNAL_HOST,
        "client-fip",
        (FLOATING_IP, PUBLIC_PORT),
        EXTERNAL_IP,
        seconds,
    )
    .or_panic("x1's client");
    let started = Instant::now();
    streams::udp_flows(lab, "b4", "10.1.2.14", (EXTERNAL_IP, "9999"), 100).or_panic("UDP flows");
    // x1 sees blue's SNAT address; b1 sees x1 itself.
    streams::wait_log(lab, srv_snat, &format!("peer {SNAT_IP} "))
        .or_panic("x1 sees the SNAT address");
    streams::wait_log(lab, srv_fip, &format!("peer {EXTERNAL_IP} ")).or_panic("b1 sees x1");
    let before = converged(&ns, 50, Duration::from_secs(15));
    // The control plane sees the group redundant: g1 MASTER, g2 a synced BACKUP.
    let status = group_status(&ns);
    assert_eq!(status["masters"], serde_json::json!(["g1"]), "{status}");
    assert_eq!(status["redundant"], true, "{status}");
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));

    // kill -9 of the master gateway.
    // Timed from the signal: the process's exit takes tens of milliseconds, and g2's
    // master-down timer runs from g1's last advert.
    let killed = ns.kill9(0).or_panic("kill -9 g1");
    let after_exit = ns
        .wait_state(
            1,
            "MASTER",
            Duration::from_millis(5000 + 4 * u64::from(advert_ms())),
        )
        .or_panic("g2 takes over");
    let takeover = killed.elapsed();
    let after = ns.sync(1).or_panic("g2 sync");
    let committed = after["last_commit_sessions"].as_u64().unwrap_or(0);
    assert!(
        committed >= before,
        "g2 committed {committed} sessions before claiming, g1 had {before}:\n{after}"
    );

    // g2 is MASTER alone and the group is no longer redundant (g1 cannot be asked).
    let status = group_status(&ns);
    assert_eq!(status["masters"], serde_json::json!(["g2"]), "{status}");
    assert_eq!(status["redundant"], false, "{status}");
    println!(
        "aegisctl gateway status after the kill:\n{}",
        ns.ew
            .cp(&["gateway", "status", GROUP])
            .or_panic("gateway status")
    );
    let mut gaps = Vec::new();
    for (id, what) in [
        (cli_snat, "b3 -> x1 via source NAT"),
        (cli_fip, "x1 -> b1's floating IP"),
    ] {
        let r = finished_ok(&mut ns, id, what);
        let gap = r["max_gap_ms"].as_f64().unwrap_or(f64::MAX);
        println!(
            "{what}: {} messages echoed, longest gap {gap:.0} ms",
            r["exchanged"]
        );
        assert!(r["exchanged"].as_u64().unwrap_or(0) > 400, "{what}: {r}");
        // The outage is the master-down interval (3 x advert + skew) plus TCP's doubling
        // retransmission timer: well under 3 s at 100 ms adverts.
        let limit = (3000.0_f64).max(8.0 * f64::from(advert_ms()) + 1000.0);
        assert!(gap < limit, "{what}: traffic gap {gap:.0} ms");
        gaps.push(gap);
    }
    for (id, what) in [(srv_snat, "x1's server"), (srv_fip, "b1's server")] {
        ns.ew
            .lab
            .proc(id)
            .wait(Duration::from_secs(10))
            .or_panic("server finished");
        let log = ns.ew.lab.proc(id).log();
        assert!(log.contains("closed cleanly"), "{what}: {log}");
    }
    println!(
        "north-south takeover after kill -9: g2 MASTER {} ms after the signal (VRRP {} ms \
         adverts; {} ms after g1's process was gone); sessions: {before} on g1, {committed} \
         committed by g2; longest gaps {:.0} / {:.0} ms",
        takeover.as_millis(),
        advert_ms(),
        after_exit.as_millis(),
        gaps[0],
        gaps[1]
    );

    // g1 restarted: its VRRP comes back from the control plane alone; once resynced it
    // takes the group back (priority 200 over 100).
    ns.start_gateway(0).or_panic("restart g1");
    ns.wait_state(0, "MASTER", Duration::from_secs(30))
        .or_panic("the restarted g1 takes the group back");
    ns.wait_state(1, "BACKUP", Duration::from_secs(5))
        .or_panic("g2 backs off");
    ns.wait_synced(1, Duration::from_secs(10))
        .or_panic("g2 synced");
    let g1_before = instances(&ns, 0);
    let g2_before = instances(&ns, 1);
    let (g1_proc, g2_proc) = (ns.gws[0].proc, ns.gws[1].proc);

    // The operator raises g2 above g1 through the control plane: g2 preempts at run time.
    let changed = Instant::now();
    println!(
        "{}",
        ns.ew
            .cp(&["gateway-group", "update", GROUP, "--member", "g2:250"])
            .or_panic("aegisctl gateway-group update")
    );
    let moved = ns
        .wait_state(1, "MASTER", Duration::from_secs(10))
        .or_panic("g2 preempts g1 after its priority was raised");
    ns.wait_state(0, "BACKUP", Duration::from_secs(5))
        .or_panic("g1 backs off");
    let since_update = changed.elapsed().min(moved + Duration::from_millis(50));
    assert_eq!(
        (ns.gws[0].proc, ns.gws[1].proc),
        (g1_proc, g2_proc),
        "no restart"
    );
    let (g1_after, g2_after) = (instances(&ns, 0), instances(&ns, 1));
    for ((b, a), prio) in g2_before.iter().zip(&g2_after).map(|x| (x, 250)) {
        assert_eq!(
            (&a.0, a.1.as_str(), a.2, a.3),
            (&b.0, "MASTER", prio, b.3 + 1),
            "g2: one transition per instance, the new priority in force: {g2_after:?}"
        );
    }
    for (b, a) in g1_before.iter().zip(&g1_after) {
        assert_eq!(
            (&a.0, a.1.as_str(), a.2, a.3),
            (&b.0, "BACKUP", 200, b.3 + 1),
            "g1: unchanged configuration, one transition per instance: {g1_after:?}"
        );
    }
    let status = wait_status(&ns, "g2 master", Duration::from_secs(10), |s| {
        s["masters"] == serde_json::json!(["g2"])
    });
    let problems = status["problems"].to_string();
    assert!(
        !problems.contains("configured in its instance"),
        "{status:#}"
    );
    assert_eq!(status["members"][0]["host"], "g2", "{status:#}");
    assert_eq!(status["members"][0]["priority"], 250, "{status:#}");
    ns.ew
        .wait_ping("b3", EXTERNAL_IP, Duration::from_secs(10))
        .or_panic("b3 reaches x1 through g2");
    println!(
        "aegisctl gateway status after the priority change:\n{}",
        ns.ew
            .cp(&["gateway", "status", GROUP])
            .or_panic("gateway status")
    );
    println!(
        "priority change through the control plane: g2 MASTER {} ms after `aegisctl \
         gateway-group update` (polled {} ms), no restart",
        moved.as_millis(),
        since_update.as_millis()
    );

    // The floating IP deleted through the control plane: the master revokes its sessions
    // (the one x1's ping just opened among them) instead of keeping them until they time
    // out, and its gauge of sessions falls with them.
    let nat = |ns: &NorthSouthLab| -> (u64, u64) {
        let v = ns.gws[1]
            .ctl
            .json(&["show", "runtime"])
            .or_panic("g2 show runtime");
        let sum = |field: &str| {
            v["workers"]
                .as_array()
                .map_or(0, |ws| ws.iter().filter_map(|w| w[field].as_u64()).sum())
        };
        (sum("nat_sessions"), sum("nat_sessions_revoked"))
    };
    ns.ew
        .lab
        .exec(
            EXTERNAL_HOST,
            "ping",
            &["-n", "-c", "1", "-W", "2", FLOATING_IP],
        )
        .or_panic("x1 pings b1's floating IP");
    let (sessions, revoked_before) = nat(&ns);
    assert!(sessions > 0, "g2 holds NAT sessions");
    // g2 checked the sessions it took over against its own configuration when it claimed:
    // the pair's configuration is the same, so none was revoked.
    assert_eq!(revoked_before, 0, "g2 revoked sessions at its claim");
    let floating = |ns: &NorthSouthLab| -> u64 {
        let v = ns.gws[1]
            .ctl
            .json(&["show", "nat-sessions", "--ip", FLOATING_IP])
            .or_panic("g2 show nat-sessions");
        // Its own sessions (a hairpin's source NAT session has it as remote address).
        v["workers"].as_array().map_or(0, |ws| {
            ws.iter()
                .flat_map(|w| w["sessions"].as_array().cloned().unwrap_or_default())
                .filter(|x| x["kind"] == "floating-ip" && x["outside_ip"] == FLOATING_IP)
                .count() as u64
        })
    };
    assert!(floating(&ns) > 0, "g2 lists the floating IP's sessions");
    println!(
        "g2 aegisctl dp show nat-sessions --ip {FLOATING_IP}:\n{}",
        ns.gws[1]
            .ctl
            .text(&["show", "nat-sessions", "--ip", FLOATING_IP])
            .or_panic("show nat-sessions")
    );
    let backup_before = self::sessions(&ns.sync(0).or_panic("g1 sync"));
    let deleted = Instant::now();
    ns.ew
        .cp(&["floating-ip", "delete", "b1-fip"])
        .or_panic("aegisctl floating-ip delete");
    let revoked = loop {
        let (now_sessions, revoked) = nat(&ns);
        if revoked > revoked_before && now_sessions < sessions {
            break revoked - revoked_before;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(5),
            "g2 did not revoke the floating IP's sessions: {sessions} sessions, revoked {revoked}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "floating IP deleted: g2 revoked {revoked} of its {sessions} NAT sessions within {} ms \
         of `aegisctl floating-ip delete` (polled every 50 ms)",
        deleted.elapsed().as_millis()
    );
    assert_eq!(
        floating(&ns),
        0,
        "no session of the deleted floating IP is left"
    );
    // The revocations reached the backup as sync deletes: g1 holds what g2 holds.
    loop {
        let (m, b) = (
            ns.sync(1).or_panic("g2 sync"),
            ns.sync(0).or_panic("g1 sync"),
        );
        let (m, b) = (self::sessions(&m), self::sessions(&b));
        if b == m && b < backup_before {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "g1 kept the revoked sessions: {b} sessions (was {backup_before}), g2 {m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ns.ew.lab.teardown().or_panic("teardown");
}

#[test]
fn standby_death_and_reselection_in_a_group_of_3() {
    let test = "standby_death_and_reselection_in_a_group_of_3";
    let Some(bins) = common::ready_bins(test, &["python3", "ping"]) else {
        return;
    };
    let mut ns = NorthSouthLab::start_with_gateways("nssb", bins, 3)
        .or_panic("start the north-south lab with three gateways");
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };

    // The control plane chose g1 and g2 by priority; g3 is a spare.
    let status = wait_status(
        &ns,
        "g1 and g2 chosen, redundant",
        Duration::from_secs(20),
        |s| s["sync_members"] == serde_json::json!(["g1", "g2"]) && s["redundant"] == true,
    );
    assert_eq!(
        sync_roles(&status),
        pairs(&[("g1", "master"), ("g2", "standby"), ("g3", "spare")]),
        "{status:#}"
    );
    let generation = status["sync_generation"].as_u64().unwrap_or(0);
    assert!(generation >= 1, "{status:#}");

    // Sessions: 100 UDP flows from b4 through blue's source NAT. They are one datagram each,
    // sent at once: the path is warmed first (b4's gateway, the compute host's underlay
    // neighbour for the group's tunnel address, the gateway's neighbour x1), or all but the
    // few each unresolved next hop may park would be dropped (as by Linux's unres_qlen).
    ns.ew
        .wait_ping("b4", EXTERNAL_IP, Duration::from_secs(10))
        .or_panic("b4 reaches x1 before its flows");
    streams::udp_flows(&ns.ew.lab, "b4", "10.1.2.14", (EXTERNAL_IP, "9999"), 100)
        .or_panic("UDP flows");
    let before = converged(&ns, 100, Duration::from_secs(15));
    let spare = ns.sync(2).or_panic("g3 sync");
    assert_eq!(spare["spare"], true, "{spare}");
    assert_eq!(sessions(&spare), 0, "nobody streams to a spare: {spare}");
    let master = ns.sync(0).or_panic("g1 sync");
    let streamed: Vec<&str> = master["peers"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["address"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        streamed,
        [gateway_underlay(1)],
        "g1 streams to g2 only: {master}"
    );
    println!(
        "before the kill:\n{}",
        ns.ew
            .cp(&["gateway", "status", GROUP])
            .or_panic("gateway status")
    );

    // kill -9 of the standby.
    let killed = ns.kill9(1).or_panic("kill -9 g2");
    let status = wait_status(&ns, "g3 chosen", Duration::from_secs(15), |s| {
        s["sync_members"] == serde_json::json!(["g1", "g3"])
    });
    let chosen = killed.elapsed();
    assert!(
        status["sync_reason"].as_str().unwrap_or("").contains("g2"),
        "{status:#}"
    );
    assert!(
        status["sync_generation"].as_u64().unwrap_or(0) > generation,
        "{status:#}"
    );
    let status = wait_status(&ns, "redundant again", Duration::from_secs(15), |s| {
        s["redundant"] == true
    });
    let redundant = killed.elapsed();
    assert_eq!(status["masters"], serde_json::json!(["g1"]), "{status:#}");
    let roles = sync_roles(&status);
    assert_eq!(
        (&roles[0], &roles[2]),
        (
            &pairs(&[("g1", "master")])[0],
            &pairs(&[("g3", "standby")])[0]
        ),
        "{status:#}"
    );
    // g3 holds every session of g1, nothing unacknowledged; g1 streams to g3 only.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (m, b) = loop {
        let m = ns.sync(0).or_panic("g1 sync");
        let b = ns.sync(2).or_panic("g3 sync");
        let lag = m["peers"][0]["lag"].as_u64().unwrap_or(u64::MAX);
        if sessions(&b) == sessions(&m) && lag == 0 && b["synced"] == true {
            break (m, b);
        }
        assert!(
            Instant::now() < deadline,
            "g3 did not converge to g1:\ng1 {m}\ng3 {b}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        sessions(&b) >= before,
        "g3 has {} of {before}",
        sessions(&b)
    );
    assert_eq!(m["peers"].as_array().map(Vec::len), Some(1), "{m}");
    assert_eq!(m["peers"][0]["address"], gateway_underlay(2), "{m}");
    assert!(
        m["peers"][0]["bulk_resyncs"].as_u64().unwrap_or(0) >= 1,
        "{m}"
    );
    assert_eq!(b["spare"], false, "{b}");
    assert_eq!(ns.state(0).or_panic("g1 state"), "MASTER");
    ns.ew
        .wait_ping("b3", EXTERNAL_IP, Duration::from_secs(10))
        .or_panic("b3 still reaches x1");
    println!(
        "after the re-selection:\n{}",
        ns.ew
            .cp(&["gateway", "status", GROUP])
            .or_panic("gateway status")
    );
    let down_after_ms = ns.ew.cp_json(&["host", "list"]).or_panic("host list")["down_after_ms"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "standby re-selection after kill -9 of g2: g3 chosen {} ms after the kill \
         (host down after {} ms without heartbeats), group redundant again after {} ms; \
         sessions: {before} on g1 before, {} bulk-synced to g3 ({} on g1)",
        chosen.as_millis(),
        down_after_ms,
        redundant.as_millis(),
        sessions(&b),
        sessions(&m)
    );
    ns.ew.lab.teardown().or_panic("teardown");
}
