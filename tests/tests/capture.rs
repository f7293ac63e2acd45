//! Packet capture on a running dataplane (`aegisctl dp capture`), in the h1 — r1 — h2 lab of
//! [`RouterLab`]: a port capture with a tcpdump filter written as pcapng and read back with
//! tshark (only ICMP, interface named `HOST/PORT`), a concurrent one-line-per-packet JSON
//! capture on the other port, a drop capture that carries the drop reason, and captures at
//! graph nodes (`--node`: the node's input, before it runs, filtered, with the rx port; an
//! unknown node refused). Root and the release binaries are needed; without them the tests
//! skip loudly, and fail under CI=true.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aegis_lab::{frames, RouterLab};
use common::OrPanic;

/// A started router lab with forwarding verified, or `None` when the test must skip.
fn router(test: &str, prefix: &str) -> Option<RouterLab> {
    let mut tools = common::TOOLS.to_vec();
    tools.push("tshark");
    let bins = common::ready_bins(test, &tools)?;
    let mut rl = RouterLab::start_with(prefix, bins).or_panic("start the router lab");
    rl.wait_forwarding(Duration::from_secs(20))
        .or_panic("h1 and h2 reach each other through the dataplane");
    Some(rl)
}

/// The host name the dataplane puts in captures (it runs without a control plane).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_panic("hostname")
        .trim()
        .to_string()
}

/// Starts `aegisctl dp [json] capture ARGS` in r1 as process `name`.
fn start_capture(rl: &mut RouterLab, name: &str, json: bool, args: &[&str]) -> aegis_lab::ProcId {
    let mut rest = vec!["capture"];
    rest.extend_from_slice(args);
    let argv = rl.ctl.argv(json, &rest);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let bin = rl.bins.aegisctl().or_panic("aegisctl");
    rl.lab
        .spawn(RouterLab::R1, name, &bin.to_string_lossy(), &argv)
        .or_panic("start aegisctl dp capture")
}

/// Runs `traffic` every 300 ms until every capture in `ids` has exited (at most 30 s), then
/// checks that each exited 0 and returns their logs.
fn drive_until_done(
    rl: &mut RouterLab,
    ids: &[aegis_lab::ProcId],
    mut traffic: impl FnMut(&RouterLab),
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids.iter().any(|id| rl.lab.proc(*id).is_running()) {
        assert!(
            Instant::now() < deadline,
            "captures still running after 30 s:\n{}",
            ids.iter()
                .map(|id| rl.lab.proc(*id).log_tail(10))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        traffic(rl);
        std::thread::sleep(Duration::from_millis(300));
    }
    ids.iter()
        .map(|id| {
            let p = rl.lab.proc(*id);
            let status = p.exit_status().expect("exited");
            let log = p.log();
            assert!(status.success(), "{} failed ({status}):\n{log}", p.name());
            log
        })
        .collect()
}

/// Packets tshark reads from a file that may still be growing (0 while unreadable).
fn tshark_count(file: &Path) -> usize {
    Command::new("tshark")
        .arg("-r")
        .arg(file)
        .output()
        .map_or(0, |o| String::from_utf8_lossy(&o.stdout).lines().count())
}

/// A UDP datagram from h1 to h2 (through r1), as a frame h1 sends.
fn udp_frame(rl: &RouterLab) -> Vec<u8> {
    let ep = rl.h1_endpoints().or_panic("MACs");
    let mut udp = vec![0x9c, 0x40, 0x17, 0xc1, 0, 16, 0, 0];
    udp.extend_from_slice(b"capture!");
    let ip = frames::ipv4(ep.src_ip, ep.dst_ip, 64, 17, &udp);
    frames::ethernet(ep.dst_mac, ep.src_mac, frames::ETH_IPV4, &ip)
}

#[test]
fn port_capture_with_a_tcpdump_filter_writes_pcapng_tshark_reads() {
    let Some(mut rl) = router("capture_port", "rcapp") else {
        return;
    };
    let host = host_name();
    let file = rl.lab.path("icmp.pcapng");
    let file_arg = file.to_string_lossy().into_owned();
    let pcap = start_capture(
        &mut rl,
        "cap-icmp",
        false,
        &[
            "--port",
            RouterLab::R1_H1_IF,
            "--filter",
            "icmp",
            "-c",
            "6",
            "-w",
            &file_arg,
        ],
    );
    let lines = start_capture(
        &mut rl,
        "cap-json",
        true,
        &[
            "--port",
            RouterLab::R1_H2_IF,
            "--direction",
            "tx",
            "-f",
            "icmp[icmptype] = icmp-echo",
            "-c",
            "3",
        ],
    );
    let udp = udp_frame(&rl);
    let logs = drive_until_done(&mut rl, &[pcap, lines], |rl| {
        frames::send(
            &rl.lab,
            RouterLab::H1,
            RouterLab::HOST_IF,
            std::slice::from_ref(&udp),
        )
        .or_panic("send UDP");
        rl.lab
            .ping(RouterLab::H1, RouterLab::H2_IP, 1)
            .or_panic("ping");
    });
    assert!(logs[0].contains("6 packets captured"), "{}", logs[0]);

    // The pcapng file: exactly 6 packets, all ICMP on HOST/veth-h1, echo requests coming
    // in and replies going out, no UDP although UDP crossed the port all along (h2's port
    // unreachable errors about it are ICMP, and may be among them).
    let rows = common::tshark_fields(
        &file,
        &[
            "frame.interface_name",
            "ip.proto",
            "icmp.type",
            "frame.protocols",
        ],
    );
    assert_eq!(rows.len(), 6, "tshark rows: {rows:?}");
    let iface = format!("{host}/{}", RouterLab::R1_H1_IF);
    for r in &rows {
        assert_eq!(r[0], iface, "interface name: {rows:?}");
        assert_eq!(r[1], "1", "only ICMP: {rows:?}");
        assert!(
            r[3].starts_with("eth:ethertype:ip:icmp"),
            "only ICMP: {rows:?}"
        );
    }
    assert!(rows.iter().any(|r| r[2] == "8") && rows.iter().any(|r| r[2] == "0"));

    // The JSON lines: echo requests leaving towards h2.
    let packets: Vec<serde_json::Value> = logs[1]
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).or_panic("JSON line"))
        .collect();
    assert_eq!(packets.len(), 3, "{}", logs[1]);
    for p in &packets {
        assert_eq!(p["interface"], format!("{host}/{}", RouterLab::R1_H2_IF));
        assert_eq!(p["point"], "tx");
        let s = p["summary"].as_str().unwrap_or_default();
        assert!(
            s.contains("ICMP echo request") && s.contains("ttl 63"),
            "{p}"
        );
    }
    rl.check_alive("captures").or_panic("dataplane");
}

#[test]
fn drop_capture_carries_the_drop_reason() {
    let Some(mut rl) = router("capture_drops", "rcapd") else {
        return;
    };
    let host = host_name();
    let aegisctl = rl.bins.aegisctl().or_panic("aegisctl");

    // A bad filter: libpcap's message, usage exit code, nothing started.
    let bad = Command::new(&aegisctl)
        .args(
            rl.ctl
                .argv(false, &["capture", "-f", "tcp prot 80", "-c", "1"]),
        )
        .output()
        .or_panic("aegisctl");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");

    let ep = rl.h1_endpoints().or_panic("MACs");
    let bad_sum = ep
        .bad_frames()
        .into_iter()
        .find(|b| b.reason == "ip4_bad_checksum")
        .expect("a bad-checksum frame in the catalogue");
    let file = rl.lab.path("drops.pcapng");
    let file_arg = file.to_string_lossy().into_owned();
    let id = start_capture(
        &mut rl,
        "cap-drops",
        false,
        &["--drops", "-f", "icmp", "-c", "2", "-w", &file_arg],
    );
    let logs = drive_until_done(&mut rl, &[id], |rl| {
        frames::send(
            &rl.lab,
            RouterLab::H1,
            RouterLab::HOST_IF,
            std::slice::from_ref(&bad_sum.frame),
        )
        .or_panic("send a bad frame");
        // Forwarded pings are not drops: they must not appear.
        rl.lab
            .ping(RouterLab::H1, RouterLab::H2_IP, 1)
            .or_panic("ping");
    });
    assert!(logs[0].contains("2 packets captured"), "{}", logs[0]);
    let rows = common::tshark_fields(&file, &["frame.interface_name", "frame.len", "ip.checksum"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r[0], format!("{host}/drop"));
        assert_eq!(r[1], bad_sum.frame.len().to_string());
    }
    // The reason is each packet's comment.
    let comments = common::tshark_fields(&file, &["frame.comment"]);
    assert_eq!(
        comments,
        vec![vec!["drop: ip4_bad_checksum".to_string()]; 2],
        "packet comments"
    );
    rl.check_alive("drop capture").or_panic("dataplane");
}

#[test]
fn a_capture_ends_cleanly_when_the_dataplane_stops() {
    let Some(mut rl) = router("capture_sigterm", "rcaps") else {
        return;
    };
    let file = rl.lab.path("until-stop.pcapng");
    let file_arg = file.to_string_lossy().into_owned();
    let id = start_capture(
        &mut rl,
        "cap-stop",
        false,
        &["--port", RouterLab::R1_H2_IF, "-f", "icmp", "-w", &file_arg],
    );
    // Packets flow into the capture (aegisctl flushes the file as they come) until the
    // dataplane gets SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tshark_count(&file) < 2 {
        assert!(Instant::now() < deadline, "no packets captured");
        rl.lab
            .ping(RouterLab::H1, RouterLab::H2_IP, 1)
            .or_panic("ping");
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = rl.lab.stop(rl.dataplane);
    let status = rl
        .lab
        .proc(id)
        .wait(Duration::from_secs(10))
        .or_panic("the capture ends with the dataplane");
    let out = rl.lab.proc(id).log();
    assert!(status.success(), "{out}\n--- dataplane:\n{log}");
    assert!(
        out.contains("packets captured") && out.contains("(the dataplane shut down)"),
        "{out}"
    );
    // The file is complete: tshark reads every packet of it.
    let rows = common::tshark_fields(&file, &["frame.interface_name"]);
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r[0].ends_with("/veth-h2")), "{rows:?}");
}

#[test]
fn node_capture_sees_a_nodes_input_filtered_with_its_rx_port() {
    let Some(mut rl) = router("capture_node", "rcapn") else {
        return;
    };
    let host = host_name();
    let aegisctl = rl.bins.aegisctl().or_panic("aegisctl");

    // An unknown node: refused (exit 1), the valid names listed, nothing started.
    let bad = Command::new(&aegisctl)
        .args(
            rl.ctl
                .argv(false, &["capture", "--node", "ip4-nowhere", "-c", "1"]),
        )
        .output()
        .or_panic("aegisctl");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no graph node \"ip4-nowhere\"")
            && stderr.contains("ip4-forward")
            && stderr.contains("security-group"),
        "{stderr}"
    );

    let file = rl.lab.path("ip4-forward.pcapng");
    let file_arg = file.to_string_lossy().into_owned();
    let pcap = start_capture(
        &mut rl,
        "cap-node",
        false,
        &[
            "--node",
            "ip4-forward",
            "--filter",
            "icmp",
            "-c",
            "4",
            "-w",
            &file_arg,
        ],
    );
    let lines = start_capture(
        &mut rl,
        "cap-node-json",
        true,
        &[
            "--node",
            "ethernet-input",
            "--node",
            "ip4-forward",
            "-f",
            "udp",
            "-c",
            "4",
        ],
    );
    let udp = udp_frame(&rl);
    let logs = drive_until_done(&mut rl, &[pcap, lines], |rl| {
        frames::send(
            &rl.lab,
            RouterLab::H1,
            RouterLab::HOST_IF,
            std::slice::from_ref(&udp),
        )
        .or_panic("send UDP");
        rl.lab
            .ping(RouterLab::H1, RouterLab::H2_IP, 1)
            .or_panic("ping");
    });
    assert!(logs[0].contains("4 packets captured"), "{}", logs[0]);

    // The pcapng file: 4 ICMP packets at ip4-forward's input, TTL as received (64: not yet
    // decremented, unlike at port tx), each with the port it came in on; no UDP although
    // UDP crossed ip4-forward all along.
    let rows = common::tshark_fields(
        &file,
        &[
            "frame.interface_name",
            "ip.proto",
            "icmp.type",
            "ip.ttl",
            "ip.src",
            "frame.comment",
        ],
    );
    assert_eq!(rows.len(), 4, "tshark rows: {rows:?}");
    let iface = format!("{host}/node:ip4-forward");
    for r in &rows {
        assert_eq!(r[0], iface, "interface name: {rows:?}");
        assert_eq!(r[1], "1", "only ICMP: {rows:?}");
        assert_eq!(r[3], "64", "as received: {rows:?}");
        let rx = if r[4] == RouterLab::H1_IP {
            RouterLab::R1_H1_IF
        } else {
            RouterLab::R1_H2_IF
        };
        assert_eq!(
            r[5],
            format!("node: ip4-forward, rx port: {rx}"),
            "{rows:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r[2] == "8" && r[4] == RouterLab::H1_IP),
        "an echo request from h1: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[4] == RouterLab::H2_IP),
        "an answer from h2: {rows:?}"
    );

    // The JSON lines: the UDP datagrams at both nodes, from h1's port.
    let packets: Vec<serde_json::Value> = logs[1]
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).or_panic("JSON line"))
        .collect();
    assert_eq!(packets.len(), 4, "{}", logs[1]);
    for node in ["ethernet-input", "ip4-forward"] {
        assert!(packets.iter().any(|p| p["node"] == node), "{}", logs[1]);
    }
    for p in &packets {
        let node = p["node"].as_str().unwrap_or_default();
        assert_eq!(p["interface"], format!("{host}/node:{node}"));
        assert_eq!(p["point"], "node");
        assert_eq!(p["rx_port"], RouterLab::R1_H1_IF);
        let s = p["summary"].as_str().unwrap_or_default();
        assert!(s.contains(": UDP") && s.contains("ttl 64"), "{p}");
    }
    rl.check_alive("node captures").or_panic("dataplane");
}
