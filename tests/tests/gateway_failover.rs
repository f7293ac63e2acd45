//! A VRRP pair of Aegis gateways with NAT and session sync ([`GatewayPairLab`]) under live
//! traffic: h1 keeps a TCP connection to h2 through source NAT and h2 keeps one to h1's
//! floating IP, both exchanging a message every 10 ms, while 200 UDP flows hold more NAT
//! sessions. The master is killed with `kill -9`; the backup takes over with every session
//! (committed before it claims); the killed gateway is restarted, resyncs, and takes its
//! place back (failback only after its bulk resync). Neither connection may see a reset or
//! an error; the traffic gaps and the takeover time are printed.
//!
//! Needs root and the release binaries; skips loudly without them, fails under CI=true.

mod common;

use std::time::{Duration, Instant};

use aegis_lab::gateway::GatewayPairLab;
use aegis_lab::{streams, ProcId};
use common::OrPanic;
use serde_json::Value;

const UDP_FLOWS: u64 = 200;

fn json_line(log: &str) -> Value {
    streams::summary(log).or_panic("the client's summary")
}

fn wait_log(g: &mut GatewayPairLab, id: aegis_lab::ProcId, text: &str) {
    streams::wait_log(&mut g.lab, id, text).or_panic("log line");
}

/// The lab of `size` gateways, or `None` (a loud skip; a failure under CI=true) when this
/// machine cannot run it.
fn start(test: &str, tools: &[&str], prefix: &str, size: u8) -> Option<GatewayPairLab> {
    let bins = common::ready_bins(test, tools)?;
    Some(GatewayPairLab::start_group(prefix, bins, size).or_panic("start the gateways"))
}

/// Starts the echo server on `host` at ADDR PORT and waits until it listens.
fn echo_server(g: &mut GatewayPairLab, host: &str, name: &str, addr: &str, port: &str) -> ProcId {
    streams::echo_server(&mut g.lab, host, name, addr, port).or_panic("start an echo server")
}

/// Starts the streaming client on `host`: from `src` to `dst`:`port` for `seconds`.
fn stream_client(
    g: &mut GatewayPairLab,
    host: &str,
    name: &str,
    to: (&str, &str),
    src: &str,
    seconds: &str,
) -> ProcId {
    streams::stream_client(&mut g.lab, host, name, to, src, seconds)
        .or_panic("start a streaming client")
}

/// Opens `n` UDP flows from h1's source-NAT address to h2.
fn udp_flows(g: &GatewayPairLab, n: u64) {
    let to = (GatewayPairLab::H2_IP, "9999");
    streams::udp_flows(
        &g.lab,
        GatewayPairLab::H1,
        GatewayPairLab::H1_SNAT_SRC,
        to,
        n,
    )
    .or_panic("UDP flows");
}

fn sessions(v: &Value) -> u64 {
    v["sessions"].as_u64().unwrap_or(0)
}

/// Waits until the master (gw1) has at least `at_least` sessions, the backup (gw2) as many,
/// and nothing is unacknowledged; returns the number.
fn converged(g: &GatewayPairLab, at_least: u64, limit: Duration) -> u64 {
    converged_on(g, 0, &[1], at_least, limit)
}

/// [`converged`] for gateway `master` and the gateways `backups`.
fn converged_on(
    g: &GatewayPairLab,
    master: usize,
    backups: &[usize],
    at_least: u64,
    limit: Duration,
) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let m = g.sync(master).or_panic("master sync");
        let mut done = sessions(&m) >= at_least;
        let mut seen = Vec::new();
        for &b in backups {
            let v = g.sync(b).or_panic("backup sync");
            let addr = GatewayPairLab::sync_address(b);
            let lag = peer(&m, &addr)["lag"].as_u64().unwrap_or(u64::MAX);
            done &= sessions(&v) == sessions(&m) && lag == 0;
            seen.push(v);
        }
        if done {
            return sessions(&m);
        }
        assert!(
            Instant::now() < deadline,
            "the backups did not converge:\nmaster {m}\nbackups {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sync stream to `address` in a master's `show sync` (`Null` if it has none).
fn peer(m: &Value, address: &str) -> Value {
    m["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == address))
        .cloned()
        .unwrap_or_default()
}

fn refused(v: &Value, reason: &str) -> u64 {
    v["rejected"][reason].as_u64().unwrap_or(0)
}

#[test]
fn kill_9_of_the_master_gateway_keeps_every_connection_and_session() {
    let test = "kill_9_of_the_master_gateway_keeps_every_connection_and_session";
    let Some(mut g) = start(test, common::TOOLS, "gwfo", 2) else {
        return;
    };
    let (h1, h2) = (GatewayPairLab::H1, GatewayPairLab::H2);

    // Two long connections: h1 -> h2 through source NAT, h2 -> h1's floating IP.
    let srv_snat = echo_server(&mut g, h2, "echo-snat", GatewayPairLab::H2_IP, "5001");
    let srv_fip = echo_server(&mut g, h1, "echo-fip", GatewayPairLab::H1_FIP_SRC, "5002");
    // At a 1 s advertisement interval ($AEGIS_LAB_ADVERT_MS=1000) each takeover takes ~3.6 s.
    let advert = GatewayPairLab::advert_ms();
    let seconds = if advert >= 500 { "26" } else { "18" };
    let to_h2 = (GatewayPairLab::H2_IP, "5001");
    let to_fip = (GatewayPairLab::FLOATING_IP, "5002");
    let cli_snat = stream_client(
        &mut g,
        h1,
        "client-snat",
        to_h2,
        GatewayPairLab::H1_SNAT_SRC,
        seconds,
    );
    let cli_fip = stream_client(
        &mut g,
        h2,
        "client-fip",
        to_fip,
        GatewayPairLab::H2_IP,
        seconds,
    );
    let started = Instant::now();
    udp_flows(&g, UDP_FLOWS);

    // The backup has every session the master has, and nothing is unacknowledged.
    // Under load a few of the flows' first datagrams may be lost on the way in: at least
    // half of them, and exactly as many on the backup.
    let before = converged(&g, UDP_FLOWS / 2 + 2, Duration::from_secs(10));
    // The peer h2 sees for h1's connection is the NAT address; h1 sees h2 itself.
    wait_log(
        &mut g,
        srv_snat,
        &format!("peer {} ", GatewayPairLab::SNAT_IP),
    );
    wait_log(&mut g, srv_fip, &format!("peer {} ", GatewayPairLab::H2_IP));
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));

    // kill -9 of the master.
    let gw1_log = g.log(0);
    let killed = g.kill9(0).or_panic("kill -9 gw1");
    g.wait_state(
        1,
        "MASTER",
        Duration::from_millis(5000 + 4 * u64::from(advert)),
    )
    .or_panic("gw2 takes over");
    let takeover = killed.elapsed();
    let after = g.sync(1).or_panic("gw2 sync");
    assert_eq!(after["role"], "master", "{after}");
    let committed = after["last_commit_sessions"].as_u64().unwrap_or(0);
    assert!(
        committed >= before,
        "gw2 committed {committed} sessions before claiming, gw1 had {before}:\n{after}"
    );

    // gw1 comes back: it follows gw2 until its bulk resync completed, then takes over again.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(killed.elapsed()));
    g.start_gateway(0).or_panic("restart gw1");
    let failback = g
        .wait_state(
            0,
            "MASTER",
            Duration::from_millis(15_000 + 8 * u64::from(advert)),
        )
        .or_panic("gw1 takes its place back");
    let back = g.sync(0).or_panic("gw1 sync");
    let recommitted = back["last_commit_sessions"].as_u64().unwrap_or(0);
    assert!(
        recommitted >= before,
        "the restarted gw1 claimed with {recommitted} sessions, {before} existed:\n{back}"
    );
    let gw1_new_log = g.log(0);
    let resynced = gw1_new_log
        .find("bulk resync")
        .or(gw1_new_log.find("sessions committed"));
    assert!(resynced.is_some(), "gw1's log:\n{gw1_new_log}");

    // Both connections lived through both takeovers.
    for (id, what) in [
        (cli_snat, "h1 -> h2 via source NAT"),
        (cli_fip, "h2 -> h1's floating IP"),
    ] {
        g.lab
            .proc(id)
            .wait(Duration::from_secs(40))
            .or_panic("client finished");
        let log = g.lab.proc(id).log();
        let r = json_line(&log);
        assert_eq!(
            r["ok"],
            true,
            "{what}: {r}\nold gw1 log:\n{gw1_log}\ngw2 log:\n{}",
            g.log(1)
        );
        let gap = r["max_gap_ms"].as_f64().unwrap_or(f64::MAX);
        println!(
            "{what}: {} messages echoed, longest gap {gap:.0} ms",
            r["exchanged"]
        );
        assert!(r["exchanged"].as_u64().unwrap_or(0) > 500, "{what}: {r}");
        // TCP retransmits with a 200 ms minimum timeout doubling each time: an outage of
        // ~400 ms (master-down ~360 ms at 100 ms adverts) shows as a gap below ~1.4 s; at
        // 1 s adverts the master-down interval is ~3.6 s and the gap follows it.
        let limit = (3000.0_f64).max(8.0 * f64::from(advert) + 1000.0);
        assert!(gap < limit, "{what}: traffic gap {gap:.0} ms");
    }
    for (id, what) in [(srv_snat, "h2's server"), (srv_fip, "h1's server")] {
        g.lab
            .proc(id)
            .wait(Duration::from_secs(10))
            .or_panic("server finished");
        assert!(
            g.lab.proc(id).log().contains("closed cleanly"),
            "{what}: {}",
            g.lab.proc(id).log()
        );
    }
    println!(
        "takeover after kill -9: {} ms (VRRP {} ms adverts); failback after restart: {} ms; \
         sessions: {before} on gw1, {committed} committed by gw2, {recommitted} by gw1 on return",
        takeover.as_millis(),
        advert,
        failback.as_millis()
    );
    g.lab.teardown().or_panic("teardown");
}

/// Sends one UDP datagram to DST:PORT claiming to come from SRC (a raw socket: the source
/// is a peer gateway's address), with the payload given in hex.
const SPOOF_UDP_PY: &str = r#"
import socket, struct, sys
src, dst, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + udp, (dst, 0))
print("sent", flush=True)
"#;

/// Drops `percent` % of the sync datagrams (UDP to port 6082) the switch forwards, in
/// both directions, and nothing else (VRRP and the data path are spared). nftables'
/// bridge family with a random number per packet: this machine's kernel has no `netem`
/// qdisc. Returns the rule's drop counter afterwards through [`sync_dropped`].
fn sync_loss(g: &GatewayPairLab, percent: u32) {
    let rules = format!(
        "table bridge aegislab {{\n  chain syncloss {{\n    type filter hook forward priority 0;\n    \
         udp dport 6082 numgen random mod 100 < {percent} counter drop\n  }}\n}}\n"
    );
    let path = g.lab.path("syncloss.nft");
    std::fs::write(&path, rules).or_panic("write the nftables rules");
    g.lab
        .exec_ok(GatewayPairLab::SW, "nft", &["-f", &path.to_string_lossy()])
        .or_panic("nft on the switch");
}

/// Sync datagrams the loss rule dropped.
fn sync_dropped(g: &GatewayPairLab) -> u64 {
    let out = g
        .lab
        .exec_ok(
            GatewayPairLab::SW,
            "nft",
            &["list", "chain", "bridge", "aegislab", "syncloss"],
        )
        .or_panic("nft list");
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in:\n{out}"))
}

#[test]
fn sync_converges_under_10_percent_loss_and_refuses_forged_datagrams() {
    let test = "sync_converges_under_10_percent_loss_and_refuses_forged_datagrams";
    let Some(g) = start(test, &["python3", "nft"], "gwloss", 2) else {
        return;
    };
    // 10 % of the sync datagrams lost each way (the data path and VRRP untouched).
    sync_loss(&g, 10);
    let flows = 3000u64;
    udp_flows(&g, flows);
    let sessions = converged(&g, flows / 2, Duration::from_secs(20));
    let m = g.sync(0).or_panic("gw1 sync");
    let resends = m["peers"][0]["resends"].as_u64().unwrap_or(0);
    let dropped = sync_dropped(&g);
    println!(
        "{sessions} sessions converged under 10 % loss: {dropped} sync datagrams dropped, \
         the master resent {resends}"
    );
    assert!(dropped > 0 && resends > 0, "no loss happened? {m}");

    // A forged datagram (right header, wrong tag) and a truncated one, both from gw1's
    // address: refused and counted, nothing changes. The loss rule goes first: it would
    // drop each of them one time in ten.
    g.lab
        .exec_ok(
            GatewayPairLab::SW,
            "nft",
            &["delete", "table", "bridge", "aegislab"],
        )
        .or_panic("remove the loss rule");
    let before = g.sync(1).or_panic("gw2 sync");
    let mut forged = b"AGS1".to_vec();
    forged.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 1]); // data, one record, group 1
    forged.resize(36 + 32 + 32, 0x5a);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for payload in [hex(&forged), hex(b"AGS1\x01")] {
        g.lab
            .exec_ok(
                GatewayPairLab::H1,
                "python3",
                &[
                    "-c",
                    SPOOF_UDP_PY,
                    "10.60.0.2",
                    "10.60.0.3",
                    "6082",
                    &payload,
                ],
            )
            .or_panic("forged datagram");
    }
    let after = aegis_lab::wait::until(
        "gw2 counts the forged datagrams",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || match g.sync(1) {
            Ok(v)
                if refused(&v, "auth") > refused(&before, "auth")
                    && refused(&v, "truncated") > refused(&before, "truncated") =>
            {
                aegis_lab::wait::Poll::Ready(v)
            }
            Ok(v) => aegis_lab::wait::Poll::Pending(v.to_string()),
            Err(e) => aegis_lab::wait::Poll::Pending(e.to_string()),
        },
    )
    .or_panic("forged datagrams refused");
    assert_eq!(self::sessions(&after), sessions, "{after}");
    assert_eq!(after["synced"], true);
    g.lab.teardown().or_panic("teardown");
}

#[test]
fn a_group_of_three_stays_redundant_when_a_backup_dies() {
    let test = "a_group_of_three_stays_redundant_when_a_backup_dies";
    let Some(mut g) = start(test, common::TOOLS, "gw3", 3) else {
        return;
    };
    let (h1, h2) = (GatewayPairLab::H1, GatewayPairLab::H2);
    let srv = echo_server(&mut g, h2, "echo-snat", GatewayPairLab::H2_IP, "5001");
    let to_h2 = (GatewayPairLab::H2_IP, "5001");
    let cli = stream_client(
        &mut g,
        h1,
        "client-snat",
        to_h2,
        GatewayPairLab::H1_SNAT_SRC,
        "10",
    );
    udp_flows(&g, 100);
    let first = converged_on(&g, 0, &[1, 2], 51, Duration::from_secs(10));

    // The first backup dies: the master goes on streaming to the third, which stays complete.
    g.kill9(1).or_panic("kill -9 gw2");
    // Events pushed from here on cannot be acknowledged by gw2. (Counting events, not
    // sessions: a session refresh between the convergence above and the kill is an event
    // gw2 may still have acknowledged, and a second-batch flow that reuses a first-batch
    // source port is no new session.)
    let pushed_before = peer(&g.sync(0).or_panic("gw1 sync"), "10.60.0.3")["events"]
        .as_u64()
        .unwrap_or(0);
    udp_flows(&g, 100);
    let second = converged_on(&g, 0, &[2], first + 50, Duration::from_secs(10));
    let m = g.sync(0).or_panic("gw1 sync");
    let dead = peer(&m, "10.60.0.3");
    let pushed_since = dead["events"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(pushed_before);
    let dead_lag = dead["lag"].as_u64().unwrap_or(0);
    assert!(
        pushed_since >= 50 && dead_lag >= pushed_since,
        "gw2's lag grows by the {pushed_since} events pushed since its death: {m}"
    );

    // The master dies too: gw3 takes over with every session, the connection goes on.
    let killed = g.kill9(0).or_panic("kill -9 gw1");
    g.wait_state(2, "MASTER", Duration::from_secs(5))
        .or_panic("gw3 takes over");
    let takeover = killed.elapsed();
    let s = g.sync(2).or_panic("gw3 sync");
    let committed = s["last_commit_sessions"].as_u64().unwrap_or(0);
    assert!(
        committed >= second,
        "gw3 committed {committed} of {second}: {s}"
    );
    g.lab
        .proc(cli)
        .wait(Duration::from_secs(30))
        .or_panic("client finished");
    let r = json_line(&g.lab.proc(cli).log());
    assert_eq!(r["ok"], true, "{r}\ngw3 log:\n{}", g.log(2));
    g.lab
        .proc(srv)
        .wait(Duration::from_secs(10))
        .or_panic("server finished");
    wait_log(&mut g, srv, "closed cleanly");
    println!(
        "group of 3: {first} sessions on all, {second} after gw2 died (gw3 complete; gw2 lags \
         {dead_lag} events, {pushed_since} pushed since its death); gw3 master {} ms after \
         kill -9 of gw1 with {committed} sessions; longest gap {:.0} ms",
        takeover.as_millis(),
        r["max_gap_ms"].as_f64().unwrap_or(0.0)
    );
    g.lab.teardown().or_panic("teardown");
}

/// The pair with two dataplane workers per gateway: NAT spreads over both (each session on
/// the worker that owns it, packets received by the other handed to it), session sync
/// streams both workers' tables and installs each session into its owner on the backup.
/// Traffic through source NAT and the floating IP works, and a `kill -9` of the master
/// keeps both connections.
#[test]
fn with_two_workers_per_gateway_nat_and_a_kill_9_takeover_keep_every_connection() {
    let test = "with_two_workers_per_gateway_nat_and_a_kill_9_takeover_keep_every_connection";
    let Some(bins) = common::ready_bins(test, common::TOOLS) else {
        return;
    };
    let mut g = GatewayPairLab::start_with_workers("gw2w", bins, 2, 2)
        .or_panic("start the two-worker gateways");
    for i in 0..2 {
        let e = g.gws[i]
            .ctl
            .json(&["show", "errors"])
            .or_panic("show errors");
        let workers = e["workers"].as_array().map_or(0, Vec::len);
        assert_eq!(workers, 2, "gw{} runs two workers: {e}", i + 1);
    }
    let (h1, h2) = (GatewayPairLab::H1, GatewayPairLab::H2);
    let srv_snat = echo_server(&mut g, h2, "echo-snat", GatewayPairLab::H2_IP, "5001");
    let srv_fip = echo_server(&mut g, h1, "echo-fip", GatewayPairLab::H1_FIP_SRC, "5002");
    let seconds = "9";
    let cli_snat = stream_client(
        &mut g,
        h1,
        "client-snat",
        (GatewayPairLab::H2_IP, "5001"),
        GatewayPairLab::H1_SNAT_SRC,
        seconds,
    );
    let cli_fip = stream_client(
        &mut g,
        h2,
        "client-fip",
        (GatewayPairLab::FLOATING_IP, "5002"),
        GatewayPairLab::H2_IP,
        seconds,
    );
    let started = Instant::now();
    udp_flows(&g, UDP_FLOWS);
    let before = converged(&g, UDP_FLOWS / 2 + 2, Duration::from_secs(10));
    wait_log(
        &mut g,
        srv_snat,
        &format!("peer {} ", GatewayPairLab::SNAT_IP),
    );
    wait_log(&mut g, srv_fip, &format!("peer {} ", GatewayPairLab::H2_IP));
    let backup = g.sync(1).or_panic("gw2 sync");
    assert_eq!(backup["installs_failed"].as_u64(), Some(0), "{backup}");
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));

    let gw1_log = g.log(0);
    let killed = g.kill9(0).or_panic("kill -9 gw1");
    g.wait_state(1, "MASTER", Duration::from_secs(5))
        .or_panic("gw2 takes over");
    let takeover = killed.elapsed();
    let after = g.sync(1).or_panic("gw2 sync");
    let committed = after["last_commit_sessions"].as_u64().unwrap_or(0);
    assert!(
        committed >= before,
        "gw2 committed {committed} sessions before claiming, gw1 had {before}:\n{after}"
    );
    for (id, what) in [
        (cli_snat, "h1 -> h2 via source NAT"),
        (cli_fip, "h2 -> h1's floating IP"),
    ] {
        g.lab
            .proc(id)
            .wait(Duration::from_secs(30))
            .or_panic("client finished");
        let r = json_line(&g.lab.proc(id).log());
        assert_eq!(
            r["ok"],
            true,
            "{what}: {r}\nold gw1 log:\n{gw1_log}\ngw2 log:\n{}",
            g.log(1)
        );
        let gap = r["max_gap_ms"].as_f64().unwrap_or(f64::MAX);
        println!(
            "two workers, {what}: {} messages echoed, longest gap {gap:.0} ms",
            r["exchanged"]
        );
        assert!(r["exchanged"].as_u64().unwrap_or(0) > 200, "{what}: {r}");
        assert!(gap < 3000.0, "{what}: traffic gap {gap:.0} ms");
    }
    let drops = g.gws[1].ctl.drop_counters().or_panic("gw2 drops");
    assert_eq!(
        drops.get("handoff_full").copied().unwrap_or(0),
        0,
        "{drops:?}"
    );
    println!(
        "two workers per gateway: takeover after kill -9 {} ms, {before} sessions on gw1, \
         {committed} committed by gw2",
        takeover.as_millis()
    );
    g.lab.teardown().or_panic("teardown");
}
