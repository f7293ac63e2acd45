//! `aegisctl dp` against a real admin server (the dataplane's, over a unix socket) backed by
//! the in-memory backend: command functions in-process, and the built binary as a user runs it.

use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::Duration;

use aegis_controlplane::cli::{self, Cli};
use aegis_controlplane::error::CliError;
use aegis_dataplane::ctl::{
    AdminBackend, AdminServer, ConnState, ConnectionInfo, CtlError, Ipv4Cidr, MemoryBackend,
    NatSessionInfo, NeighbourInfo, NeighbourState, OverlayInfo, PollMode, PortCounters,
    PortLocation, VpcInfo, VpcPortInfo, VpcRouteInfo, VpcRouteTarget, VpcSubnetInfo, WorkerInfo,
};
use clap::Parser;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    backend: Arc<MemoryBackend>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), CtlError>>,
}

impl Server {
    async fn start() -> Server {
        let workers = [
            WorkerInfo { id: 0, lcore: 1 },
            WorkerInfo { id: 1, lcore: 2 },
        ];
        let b = Arc::new(MemoryBackend::new(PollMode::Adaptive, &workers));
        b.add_port(
            "eth0",
            "net_af_packet0,iface=veth-a",
            [2, 0, 0, 0, 0, 1],
            1500,
            10_000,
        )
        .unwrap();
        b.add_port(
            "eth1",
            "net_af_packet1,iface=veth-b",
            [2, 0, 0, 0, 0, 2],
            1500,
            1_000,
        )
        .unwrap();
        b.add_address("eth0".into(), "10.0.1.1/24".parse().unwrap())
            .unwrap();
        b.add_address("eth1".into(), "10.0.2.1/24".parse().unwrap())
            .unwrap();
        for (reason, description) in [
            ("eth_runt", "Frame shorter than an Ethernet header."),
            ("no_route", "No route to the destination."),
            ("ip4_ttl_expired", "TTL reached zero on forwarding."),
        ] {
            b.declare_reason(reason, description).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("dataplane.sock");
        let server = AdminServer::bind(&socket, b.clone() as Arc<dyn AdminBackend>).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Server {
            _dir: dir,
            socket,
            backend: b,
            stop,
            task,
        }
    }

    /// Runs `aegisctl dp --socket S ARGS...` in-process; returns stdout or the error.
    async fn run(&self, args: &[&str]) -> Result<String, CliError> {
        Ok(String::from_utf8(self.run_bytes(args).await?).unwrap())
    }

    /// [`Server::run`] for binary output.
    async fn run_bytes(&self, args: &[&str]) -> Result<Vec<u8>, CliError> {
        let socket = self.socket.to_str().unwrap();
        let head = ["aegisctl", "dp", "--socket", socket];
        let cli = Cli::try_parse_from(head.iter().chain(args)).expect("valid command line");
        let mut out = Vec::new();
        cli::run(&cli, &mut out).await?;
        Ok(out)
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut argv = vec!["--output", "json"];
        argv.extend_from_slice(args);
        let text = self.run(&argv).await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Runs the aegisctl binary with `AEGIS_DP_SOCKET` set; returns (exit code, stdout, stderr).
async fn run_binary(socket: PathBuf, args: &'static [&'static str]) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Process::new(env!("CARGO_BIN_EXE_aegisctl"))
            .env("AEGIS_DP_SOCKET", socket)
            .args(args)
            .output()
            .expect("run aegisctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_runtime_table_is_aligned() {
    let srv = Server::start().await;
    let b = &srv.backend;
    b.count_polls(0, 1000, 900, 12).unwrap();
    b.count_node(0, "eth-input", 4, 100, 5000).unwrap();
    b.count_node(0, "ip4-lookup", 4, 100, 2500).unwrap();
    b.count_node(1, "eth-input", 1, 28, 1400).unwrap();
    let text = srv.run(&["show", "runtime"]).await.unwrap();
    let expected = "\
Worker 0 (lcore 1): polls 1000, idle 900 (90.0%), sleeps 12; consumed 0, ICMP errors sent 0 (rate-limited 0)
Name        Calls  Vectors  Clocks  Vectors/Call  Clocks/Pkt
eth-input       4      100    5000         25.00       50.00
ip4-lookup      4      100    2500         25.00       25.00

Worker 1 (lcore 2): polls 0, idle 0 (0.0%), sleeps 0; consumed 0, ICMP errors sent 0 (rate-limited 0)
Name        Calls  Vectors  Clocks  Vectors/Call  Clocks/Pkt
eth-input       1       28    1400         28.00       50.00
ip4-lookup      0        0       0          0.00        0.00

Total (2 workers)
Name        Calls  Vectors  Clocks  Vectors/Call  Clocks/Pkt
eth-input       5      128    6400         25.60       50.00
ip4-lookup      4      100    2500         25.00       25.00
";
    assert_eq!(text, expected);

    let json = srv.json(&["show", "runtime"]).await;
    assert_eq!(json["total"][0]["name"], "eth-input");
    assert_eq!(json["total"][0]["vectors"], 128);
    assert_eq!(json["total"][0]["vectors_per_call"], 25.6);
    assert_eq!(json["workers"][0]["idle_polls"], 900);
    assert_eq!(json["workers"][1]["nodes"][0]["clocks_per_packet"], 50.0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_errors_filters_zero_counters() {
    let srv = Server::start().await;
    let text = srv.run(&["show", "errors"]).await.unwrap();
    assert_eq!(text, "No drops counted (--all lists every reason).\n");

    srv.backend
        .count_drop(0, "no_route", "No route to the destination.", 7)
        .unwrap();
    srv.backend
        .count_drop(1, "no_route", "No route to the destination.", 1200)
        .unwrap();
    let text = srv.run(&["show", "errors"]).await.unwrap();
    assert_eq!(
        text,
        "Count  Reason    Description\n 1207  no_route  No route to the destination.\n"
    );
    let all = srv.run(&["show", "errors", "--all"]).await.unwrap();
    assert_eq!(
        all,
        "\
Count  Reason           Description
    0  eth_runt         Frame shorter than an Ethernet header.
 1207  no_route         No route to the destination.
    0  ip4_ttl_expired  TTL reached zero on forwarding.
"
    );
    let per = srv.run(&["show", "errors", "--per-worker"]).await.unwrap();
    assert_eq!(
        per,
        "\
Worker 0
Count  Reason    Description
    7  no_route  No route to the destination.

Worker 1
Count  Reason    Description
 1200  no_route  No route to the destination.
"
    );
    let json = srv.json(&["show", "errors"]).await;
    assert_eq!(
        json["total"].as_array().unwrap().len(),
        3,
        "JSON lists every reason"
    );
    assert_eq!(json["total"][1]["reason"], "no_route");
    assert_eq!(json["total"][1]["count"], 1207);
    assert_eq!(json["workers"][1]["counters"][1]["count"], 1200);

    let cleared = srv.run(&["clear", "counters"]).await.unwrap();
    assert_eq!(cleared, "Counters cleared (revision 3)\n");
    let text = srv.run(&["show", "errors"]).await.unwrap();
    assert!(text.starts_with("No drops counted"), "{text}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_interfaces_status_and_neighbours() {
    let srv = Server::start().await;
    let b = &srv.backend;
    b.count_port(
        "eth0",
        PortCounters {
            rx_packets: 10,
            rx_bytes: 640,
            tx_packets: 9,
            tx_bytes: 576,
            rx_missed: 1,
            ..PortCounters::default()
        },
    )
    .unwrap();
    b.set_link("eth1", false, 0).unwrap();
    let text = srv.run(&["show", "interfaces"]).await.unwrap();
    let expected = "\
Name  Idx  Admin  Link  Speed   MTU  MAC                Addresses    Devargs
eth0    0  up     up      10G  1500  02:00:00:00:00:01  10.0.1.1/24  net_af_packet0,iface=veth-a
eth1    1  up     down      -  1500  02:00:00:00:00:02  10.0.2.1/24  net_af_packet1,iface=veth-b

Name  Rx packets  Rx bytes  Tx packets  Tx bytes  Rx missed  Rx errors  Tx errors  Rx nombuf
eth0          10       640           9       576          1          0          0          0
eth1           0         0           0         0          0          0          0          0
";
    assert_eq!(text, expected);
    let json = srv.json(&["show", "interfaces"]).await;
    let eth0 = &json["interfaces"][0];
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["link_speed_mbps"], 10_000);
    assert_eq!(eth0["addresses"][0], "10.0.1.1/24");
    assert_eq!(eth0["counters"]["rx_missed"], 1);
    assert_eq!(json["interfaces"][1]["link_up"], false);

    let status = srv.run(&["show", "status"]).await.unwrap();
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], "Revision   3");
    assert!(lines[1].starts_with("Uptime     "), "{status}");
    assert_eq!(
        lines[2],
        format!("Version    {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(lines[3], "Poll mode  adaptive");
    assert_eq!(lines[4], "Workers    2 (lcores 1, 2)");
    let json = srv.json(&["show", "status"]).await;
    assert_eq!(json["revision"], 3);
    assert_eq!(json["poll_mode"], "adaptive");
    assert_eq!(json["workers"][1]["lcore"], 2);
    assert!(json["uptime_seconds"].as_f64().unwrap() >= 0.0);

    assert_eq!(
        srv.run(&["show", "neighbours"]).await.unwrap(),
        "No neighbours.\n"
    );
    b.set_neighbour(NeighbourInfo {
        port: "eth0".into(),
        ip: "10.0.1.2".parse().unwrap(),
        mac: Some([2, 0, 0, 0, 0, 0x22]),
        state: NeighbourState::Reachable,
        age: Duration::from_secs(75),
    })
    .unwrap();
    b.set_neighbour(NeighbourInfo {
        port: "eth1".into(),
        ip: "10.0.2.50".parse().unwrap(),
        mac: None,
        state: NeighbourState::Incomplete,
        age: Duration::from_millis(300),
    })
    .unwrap();
    let text = srv.run(&["show", "neighbors"]).await.unwrap();
    assert_eq!(
        text,
        "\
Port  IP         MAC                State         Age
eth0  10.0.1.2   02:00:00:00:00:22  reachable   1m15s
eth1  10.0.2.50  -                  incomplete   0.3s
"
    );
    let json = srv.json(&["show", "neighbours"]).await;
    assert_eq!(json["neighbours"][0]["state"], "reachable");
    assert!(json["neighbours"][1]["mac"].is_null());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_address_and_port_changes() {
    let srv = Server::start().await;
    let out = srv
        .run(&["route", "add", "10.9.0.0/16", "via", "10.0.1.2"])
        .await
        .unwrap();
    assert_eq!(out, "Added route 10.9.0.0/16 via 10.0.1.2 (revision 4)\n");
    let json = srv
        .json(&["route", "add", "192.0.2.0/24", "blackhole"])
        .await;
    assert_eq!(json, serde_json::json!({ "revision": 5 }));
    srv.run(&["route", "add", "198.51.100.0/24", "unreachable"])
        .await
        .unwrap();
    srv.run(&["route", "add", "0.0.0.0/0", "dev", "eth1"])
        .await
        .unwrap();
    let text = srv.run(&["show", "routes"]).await.unwrap();
    assert_eq!(
        text,
        "\
Prefix           Kind         Next hop  Port  Origin
0.0.0.0/0        connected    -         eth1  static
10.0.1.0/24      connected    -         eth0  connected
10.0.1.1/32      local        -         eth0  connected
10.0.2.0/24      connected    -         eth1  connected
10.0.2.1/32      local        -         eth1  connected
10.9.0.0/16      gateway      10.0.1.2  eth0  static
192.0.2.0/24     blackhole    -         -     static
198.51.100.0/24  unreachable  -         -     static
"
    );
    let json = srv.json(&["show", "routes"]).await;
    let gw = &json["routes"][5];
    assert_eq!(gw["kind"], "gateway");
    assert_eq!(gw["next_hop"], "10.0.1.2");
    assert_eq!(gw["origin"], "static");
    assert!(json["routes"][6]["port"].is_null());

    let out = srv.run(&["route", "del", "10.9.0.0/16"]).await.unwrap();
    assert_eq!(out, "Deleted route 10.9.0.0/16 (revision 8)\n");
    let out = srv
        .run(&["address", "add", "eth1", "10.0.3.1/24"])
        .await
        .unwrap();
    assert_eq!(out, "Added 10.0.3.1/24 to eth1 (revision 9)\n");
    let out = srv
        .run(&["address", "del", "eth1", "10.0.3.1/24"])
        .await
        .unwrap();
    assert_eq!(out, "Removed 10.0.3.1/24 from eth1 (revision 10)\n");
    let out = srv.run(&["port", "down", "eth1"]).await.unwrap();
    assert_eq!(out, "Port eth1 is administratively down (revision 11)\n");
    assert!(!srv.backend.interfaces().unwrap()[1].admin_up);
    let out = srv.run(&["port", "up", "eth1"]).await.unwrap();
    assert_eq!(out, "Port eth1 is administratively up (revision 12)\n");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_explain_themselves() {
    let srv = Server::start().await;
    let cases: [(&[&str], &str); 5] = [
        (
            &["route", "add", "10.9.0.1/16", "via", "10.0.1.2"],
            "invalid argument: prefix: \"10.9.0.1/16\" has host bits set (did you mean 10.9.0.0/16?)",
        ),
        (
            &["route", "add", "10.9.0.0/16", "via", "10.7.7.7"],
            "invalid argument: via: 10.7.7.7 is not on a connected subnet",
        ),
        (
            &["route", "del", "10.9.0.0/16"],
            "not found: prefix: no static route for 10.9.0.0/16",
        ),
        (&["port", "up", "eth7"], "not found: port: no port named \"eth7\""),
        (
            &["address", "add", "eth0", "10.0.1.1/24"],
            "already exists: address: 10.0.1.1 is already configured on eth0",
        ),
    ];
    for (args, message) in cases {
        let err = srv.run(args).await.unwrap_err();
        assert!(matches!(err, CliError::Rejected(_)), "{args:?}: {err:?}");
        assert_eq!(err.to_string(), message, "{args:?}");
        assert_eq!(err.exit_code(), std::process::ExitCode::from(1));
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_results_and_failures() {
    let srv = Server::start().await;
    let (code, stdout, stderr) = run_binary(srv.socket.clone(), &["dp", "show", "routes"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("Prefix"), "{stdout}");
    assert!(stdout.contains("10.0.1.1/32  local"), "{stdout}");

    let (code, stdout, stderr) = run_binary(
        srv.socket.clone(),
        &[
            "dp",
            "-o",
            "json",
            "route",
            "add",
            "10.8.0.0/16",
            "via",
            "10.0.2.9",
        ],
    )
    .await;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "{\n  \"revision\": 4\n}\n"),
        "{stderr}"
    );

    let (code, stdout, stderr) = run_binary(
        srv.socket.clone(),
        &["dp", "route", "add", "10.8.0.0/16", "blackhole"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        "aegisctl: already exists: prefix: a static route for 10.8.0.0/16 exists\n"
    );

    let (code, _, stderr) = run_binary(srv.socket.clone(), &["dp", "show", "sideways"]).await;
    assert_eq!(code, 2, "usage error: {stderr}");

    let gone = srv.socket.with_file_name("nothing-here.sock");
    let (code, stdout, stderr) = run_binary(gone.clone(), &["dp", "show", "status"]).await;
    assert_eq!(code, 3);
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        format!(
            "aegisctl: cannot reach the dataplane admin socket {}: No such file or directory \
             (os error 2); is aegis-dataplane running?\n",
            gone.display()
        )
    );
    srv.stop().await;

    // A stale socket left by a killed process: the file exists, nothing accepts.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (code, _, stderr) = run_binary(stale, &["dp", "show", "status"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(
        stderr.ends_with("is aegis-dataplane running?\n"),
        "{stderr}"
    );
}

/// A connection on `port` (bound to `endpoint`).
fn conn(port: &str, protocol: u8, src: &str, sport: u16, dst: &str, dport: u16) -> ConnectionInfo {
    let state = match protocol {
        6 => ConnState::TcpEstablished,
        17 => ConnState::UdpUnreplied,
        _ => ConnState::Icmp,
    };
    ConnectionInfo {
        port: port.into(),
        endpoint: Some(if port == "eth0" { "web-1" } else { "db-1" }.into()),
        protocol,
        src: src.parse().unwrap(),
        src_port: sport,
        dst: dst.parse().unwrap(),
        dst_port: dport,
        state,
        expires: Duration::from_secs(7199),
        packets: [12, 10],
        bytes: [1480, 5230],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_connections_filters_and_counts() {
    let srv = Server::start().await;
    let b = &srv.backend;
    b.bind_endpoint("eth0", Some("web-1")).unwrap();
    b.bind_endpoint("eth1", Some("db-1")).unwrap();
    b.set_connections(
        0,
        4096,
        vec![
            conn("eth0", 6, "10.1.1.11", 40512, "10.1.2.13", 5432),
            conn("eth0", 1, "10.1.1.11", 7, "10.1.1.12", 7),
        ],
    )
    .unwrap();
    b.set_connections(
        1,
        4096,
        vec![conn("eth1", 17, "10.1.2.13", 53000, "10.1.1.11", 53)],
    )
    .unwrap();
    let text = srv.run(&["show", "connections"]).await.unwrap();
    assert_eq!(
        text,
        "\
Worker  Port          Proto  Source           Destination     State            Expires  Packets      Bytes
     0  eth0 (web-1)  tcp    10.1.1.11:40512  10.1.2.13:5432  tcp_established    1h59m    12/10  1480/5230
     0  eth0 (web-1)  icmp   10.1.1.11 id 7   10.1.1.12 id 7  icmp               1h59m    12/10  1480/5230
     1  eth1 (db-1)   udp    10.1.2.13:53000  10.1.1.11:53    udp_unreplied      1h59m    12/10  1480/5230
Worker 0: 2 shown of 2 matching; 2 in table (capacity 4096)
Worker 1: 1 shown of 1 matching; 1 in table (capacity 4096)
"
    );
    let text = srv
        .run(&["show", "connections", "--port", "web-1", "--proto", "tcp"])
        .await
        .unwrap();
    assert!(text.starts_with("Worker  Port"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.ends_with("Worker 1: 0 shown of 0 matching; 1 in table (capacity 4096)\n"),
        "{text}"
    );
    let text = srv
        .run(&["show", "conntrack", "--ip", "10.9.9.9"])
        .await
        .unwrap();
    assert!(text.starts_with("No connections match.\n"), "{text}");
    let text = srv
        .run(&["show", "connections", "--limit", "1"])
        .await
        .unwrap();
    assert!(
        text.contains("Worker 0: 1 shown of 2 matching; 2 in table")
            && text.contains("Worker 1: 0 shown of 1 matching; 1 in table"),
        "{text}"
    );

    let json = srv
        .json(&["show", "connections", "--state", "tcp_established"])
        .await;
    assert_eq!(
        json["workers"][0],
        serde_json::json!({
            "worker": 0, "entries": 2, "capacity": 4096, "matched": 1, "error": null,
            "connections": [{
                "port": "eth0", "endpoint": "web-1", "protocol": "tcp",
                "src_ip": "10.1.1.11", "src_port": 40512, "dst_ip": "10.1.2.13", "dst_port": 5432,
                "state": "tcp_established", "expires_seconds": 7199.0,
                "packets_orig": 12, "packets_reply": 10, "bytes_orig": 1480, "bytes_reply": 5230
            }]
        })
    );
    b.fail_dumps(1, Some("no answer within 2s (is the worker running?)"))
        .unwrap();
    let text = srv.run(&["show", "connections"]).await.unwrap();
    assert!(
        text.ends_with("Worker 1: no answer within 2s (is the worker running?)\n"),
        "{text}"
    );
    let json = srv.json(&["show", "connections"]).await;
    assert_eq!(
        json["workers"][1]["error"],
        "no answer within 2s (is the worker running?)"
    );

    let err = srv
        .run(&["show", "connections", "--state", "open"])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid argument: state: \"open\": expected one of tcp_syn_sent"),
        "{err}"
    );
    let err = srv
        .run(&["show", "connections", "--port", "nope"])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "not found: port: no dataplane port or local VM port named \"nope\""
    );

    // The interface listing names the bound VM ports.
    let text = srv.run(&["show", "interfaces"]).await.unwrap();
    assert!(
        text.starts_with(
            "Name  Idx  Admin  Link  Speed   MTU  MAC                Addresses    VM port  Devargs\n\
             eth0    0  up     up      10G  1500  02:00:00:00:00:01  10.0.1.1/24  web-1    "
        ),
        "{text}"
    );
    let json = srv.json(&["show", "interfaces"]).await;
    assert_eq!(json["interfaces"][1]["endpoint"], "db-1");
    let json = srv.json(&["show", "runtime"]).await;
    assert_eq!(json["workers"][0]["connections"], 2);
    assert_eq!(json["workers"][0]["connection_capacity"], 4096);
    srv.stop().await;
}

/// A NAT session of VPC `vni`.
fn nat(
    vni: u32,
    protocol: u8,
    inside: (&str, u16),
    outside: (&str, u16),
    kind: &'static str,
) -> NatSessionInfo {
    NatSessionInfo {
        vpc: (vni == 100).then(|| "blue".to_string()),
        vni,
        protocol,
        inside: (inside.0.parse().unwrap(), inside.1),
        outside: (outside.0.parse().unwrap(), outside.1),
        remote: (
            "198.51.100.7".parse().unwrap(),
            if protocol == 1 { 0 } else { 443 },
        ),
        kind,
        state: if protocol == 6 { "established" } else { "-" },
        expires: Duration::from_secs(7439),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_nat_sessions_filters_and_counts() {
    let srv = Server::start().await;
    let b = &srv.backend;
    let text = srv.run(&["show", "nat-sessions"]).await.unwrap();
    assert_eq!(text, "NAT is not configured on this dataplane.\n");
    b.set_nat_sessions(
        0,
        262_144,
        vec![
            nat(100, 6, ("10.1.2.13", 40000), ("203.0.113.10", 1027), "snat"),
            nat(
                100,
                1,
                ("10.1.1.11", 77),
                ("203.0.113.20", 77),
                "floating-ip",
            ),
        ],
    )
    .unwrap();
    b.set_nat_sessions(
        1,
        262_144,
        vec![nat(
            0,
            17,
            ("192.168.1.5", 5353),
            ("203.0.113.10", 34000),
            "snat-ei",
        )],
    )
    .unwrap();
    let text = srv.run(&["show", "nat-sessions"]).await.unwrap();
    assert_eq!(
        text,
        "\
Worker  VPC     Proto  Inside            Outside             Remote            Kind         State        Expires
     0  blue    tcp    10.1.2.13:40000   203.0.113.10:1027   198.51.100.7:443  snat         established    2h03m
     0  blue    icmp   10.1.1.11 id 77   203.0.113.20 id 77  198.51.100.7      floating-ip  -              2h03m
     1  routed  udp    192.168.1.5:5353  203.0.113.10:34000  198.51.100.7:443  snat-ei      -              2h03m
Worker 0: 2 shown of 2 matching; 2 in table (capacity 262144)
Worker 1: 1 shown of 1 matching; 1 in table (capacity 262144)
"
    );
    let text = srv
        .run(&["show", "nat", "--ip", "203.0.113.20"])
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("floating-ip"), "{text}");
    let json = srv.json(&["show", "nat-sessions", "--vpc", "0"]).await;
    assert_eq!(json["workers"][0]["matched"], 0);
    let routed = srv.json(&["show", "nat-sessions", "--vpc", "routed"]).await;
    assert_eq!(routed, json, "`routed` is VNI 0");
    assert_eq!(
        json["workers"][1]["sessions"][0],
        serde_json::json!({
            "vpc": null, "vni": 0, "protocol": "udp",
            "inside_ip": "192.168.1.5", "inside_port": 5353,
            "outside_ip": "203.0.113.10", "outside_port": 34000,
            "remote_ip": "198.51.100.7", "remote_port": 443,
            "kind": "snat-ei", "state": "-", "expires_seconds": 7439.0
        })
    );
    let text = srv
        .run(&["show", "nat-sessions", "--proto", "tcp", "--limit", "1"])
        .await
        .unwrap();
    assert!(
        text.contains("Worker 0: 1 shown of 1 matching; 2 in table"),
        "{text}"
    );
    let err = srv
        .run(&["show", "nat-sessions", "--vpc", "green"])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "not found: vpc: no VPC named \"green\" in this host's overlay (a VNI, or `routed`, may be given)"
    );
    let err = srv
        .run(&["show", "nat-sessions", "--proto", "gre!"])
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid argument: protocol:"),
        "{err}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_vpc_and_security_denials() {
    let srv = Server::start().await;
    let text = srv.run(&["show", "vpc"]).await.unwrap();
    assert_eq!(
        text,
        "Overlay revision 0: this host takes no part in the overlay\nNo VPCs.\n"
    );
    let ip = |s: &str| s.parse().unwrap();
    let cidr = |s: &str| s.parse::<Ipv4Cidr>().unwrap();
    let port = |name: &str, mac: u8, addr: &str, location| VpcPortInfo {
        name: name.into(),
        subnet: "blue-a".into(),
        mac: [2, 0, 0, 0, 1, mac],
        ips: vec![ip(addr)],
        location,
    };
    srv.backend
        .set_overlay(OverlayInfo {
            revision: 42,
            underlay_ip: Some(ip("10.88.0.11")),
            mtu: 1450,
            vpcs: vec![
                VpcInfo {
                    name: "blue".into(),
                    vni: 100,
                    subnets: vec![VpcSubnetInfo {
                        name: "blue-a".into(),
                        cidr: cidr("10.1.1.0/24"),
                        gateway: ip("10.1.1.1"),
                    }],
                    routes: vec![
                        VpcRouteInfo {
                            prefix: cidr("0.0.0.0/0"),
                            target: VpcRouteTarget::Port("fw-1".into()),
                        },
                        VpcRouteInfo {
                            prefix: cidr("198.51.100.0/24"),
                            target: VpcRouteTarget::NextHopUnknown,
                        },
                    ],
                    ports: vec![
                        port("b1", 1, "10.1.1.11", PortLocation::Local("vm1".into())),
                        port("b2", 2, "10.1.1.12", PortLocation::Remote(ip("10.88.0.12"))),
                        port("b4", 4, "10.1.1.14", PortLocation::Unplaced),
                    ],
                },
                VpcInfo {
                    name: "red".into(),
                    vni: 200,
                    subnets: Vec::new(),
                    routes: Vec::new(),
                    ports: Vec::new(),
                },
            ],
        })
        .unwrap();
    let text = srv.run(&["show", "vpc"]).await.unwrap();
    assert_eq!(
        text,
        "\
Overlay revision 42, underlay 10.88.0.11, inner MTU 1450

VPC blue (VNI 100)
  Subnet  CIDR         Gateway
  blue-a  10.1.1.0/24  10.1.1.1
  Route            Next hop
  0.0.0.0/0        fw-1
  198.51.100.0/24  next-hop-unknown
  Port  Subnet  MAC                IPs        Location
  b1    blue-a  02:00:00:00:01:01  10.1.1.11  local vm1
  b2    blue-a  02:00:00:00:01:02  10.1.1.12  remote 10.88.0.12
  b4    blue-a  02:00:00:00:01:04  10.1.1.14  unplaced

VPC red (VNI 200)
  No subnets.
  No static routes.
  No ports.
"
    );
    let json = srv.json(&["show", "vpc", "--vpc", "blue"]).await;
    assert_eq!(json["revision"], 42);
    assert_eq!(json["underlay_ip"], "10.88.0.11");
    assert_eq!(json["vpcs"].as_array().unwrap().len(), 1);
    let blue = &json["vpcs"][0];
    assert_eq!(
        blue["routes"],
        serde_json::json!([
            {"prefix": "0.0.0.0/0", "kind": "port", "port": "fw-1"},
            {"prefix": "198.51.100.0/24", "kind": "next_hop_unknown", "port": null}
        ])
    );
    assert_eq!(
        blue["ports"][1],
        serde_json::json!({"name": "b2", "subnet": "blue-a", "mac": "02:00:00:00:01:02",
            "ips": ["10.1.1.12"], "location": "remote", "device": null, "host_ip": "10.88.0.12"})
    );
    assert_eq!(blue["ports"][0]["device"], "vm1");
    assert_eq!(
        blue["subnets"][0],
        serde_json::json!({"name": "blue-a", "cidr": "10.1.1.0/24", "gateway": "10.1.1.1"})
    );
    let err = srv
        .run(&["show", "vpcs", "--vpc", "green"])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "not found: vpc: this host knows no VPC named \"green\""
    );

    let text = srv.run(&["show", "security-denials"]).await.unwrap();
    assert_eq!(text, "No denials counted (--all lists every rule).\n");
    srv.backend
        .count_denial("default/ingress-deny", 17)
        .unwrap();
    srv.backend.count_denial("web/no-telnet", 0).unwrap();
    srv.backend.count_denial("db/deny-ssh", 3).unwrap();
    let text = srv.run(&["show", "sg-counters"]).await.unwrap();
    assert_eq!(
        text,
        "Count  Rule\n   17  default/ingress-deny\n    3  db/deny-ssh\n"
    );
    let text = srv
        .run(&["show", "security-denials", "--all"])
        .await
        .unwrap();
    assert!(text.contains("    0  web/no-telnet\n"), "{text}");
    let json = srv.json(&["show", "security-denials"]).await;
    assert_eq!(
        json,
        serde_json::json!({"denials": [
            {"rule": "default/ingress-deny", "count": 17},
            {"rule": "web/no-telnet", "count": 0},
            {"rule": "db/deny-ssh", "count": 3}
        ]})
    );
    srv.stop().await;
}

/// An Ethernet + IPv4 frame from 10.0.1.2 to 10.0.2.2 with `proto` and `l4`.
fn ip_frame(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9, 8, 0];
    let len = (20 + l4.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (len >> 8) as u8,
        len as u8,
        0,
        1,
        0,
        0,
        64,
        proto,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 0, 1, 2, 10, 0, 2, 2]);
    f.extend_from_slice(l4);
    f
}

/// Runs `aegisctl dp capture ...` while the backend's "workers" offer an ICMP echo request
/// and a UDP datagram on eth0 (rx), a drop, and the echo request and the UDP datagram at
/// `ip4-forward` every 10 ms; returns the command's result.
async fn capture_while_feeding(srv: &Server, args: &[&str]) -> Result<Vec<u8>, CliError> {
    use aegis_dataplane::capture::Point;
    use aegis_dataplane::graph::{DropReason, NodeId};
    let echo = ip_frame(1, &[8, 0, 0, 0, 0, 7, 0, 1]);
    let udp = ip_frame(17, &[0x13, 0x88, 0x17, 0xc1, 0, 8, 0, 0]);
    let cli = srv.run_bytes(args);
    tokio::pin!(cli);
    let fed = async {
        loop {
            tokio::select! {
                r = &mut cli => return r,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {
                    let b = &srv.backend;
                    b.capture_packet(0, Point::Rx, 0, &udp).unwrap();
                    b.capture_packet(1, Point::Rx, 0, &echo).unwrap();
                    b.capture_packet(0, Point::Tx, 1, &echo).unwrap();
                    b.capture_packet(1, Point::Drop(DropReason::NoRoute), u16::MAX, &echo)
                        .unwrap();
                    let fwd = Point::Node(NodeId::Ip4Forward);
                    b.capture_packet(0, fwd, 0, &udp).unwrap();
                    b.capture_packet(1, fwd, 0, &echo).unwrap();
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fed)
        .await
        .expect("the capture ends by its count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_streams_what_the_workers_capture() {
    let srv = Server::start().await;
    // JSON lines: only ICMP, only eth0 rx.
    let out = capture_while_feeding(
        &srv,
        &[
            "-o",
            "json",
            "capture",
            "--port",
            "eth0",
            "--direction",
            "rx",
            "-f",
            "icmp",
            "-c",
            "3",
        ],
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in &lines {
        assert_eq!(l["interface"], "memory-host/eth0");
        assert_eq!(l["point"], "rx");
        assert_eq!(l["worker"], 1);
        let s = l["summary"].as_str().unwrap();
        assert!(s.contains("ICMP echo request, id 7, seq 1"), "{s}");
    }

    // Lines for drops only: the reason.
    let out = capture_while_feeding(&srv, &["capture", "--drops", "-c", "1"])
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with(|c: char| c.is_ascii_digit())
            && out.contains(" memory-host/drop drop(no_route) IP ttl 64 10.0.1.2 > 10.0.2.2"),
        "{out}"
    );

    // pcapng on stdout: both ports' interfaces, eth1's tx packet flagged outbound.
    let out = capture_while_feeding(&srv, &["capture", "-f", "icmp", "-c", "4", "-w", "-"]);
    let bytes = out.await.unwrap();
    let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
    let mut names = Vec::new();
    let mut packets = Vec::new();
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            pcap_file::pcapng::Block::InterfaceDescription(i) => {
                names.push(format!("{:?}", i.options))
            }
            pcap_file::pcapng::Block::EnhancedPacket(p) => {
                packets.push((p.interface_id, format!("{:?}", p.options)))
            }
            _ => {}
        }
    }
    assert_eq!(names.len(), 2);
    assert!(names[0].contains("memory-host/eth0") && names[1].contains("memory-host/eth1"));
    assert_eq!(packets.len(), 4);
    assert!(
        packets.contains(&(1, "[Flags(2)]".to_string())),
        "{packets:?}"
    );
    assert!(
        packets.contains(&(0, "[Flags(1)]".to_string())),
        "{packets:?}"
    );

    // A graph node: only its input, filtered, with the packet's rx port; a node asked for
    // that no packet crosses adds its interface only.
    let out = capture_while_feeding(
        &srv,
        &[
            "-o",
            "json",
            "capture",
            "--node",
            "ip4-forward",
            "--node",
            "arp-input",
            "-f",
            "icmp",
            "-c",
            "2",
        ],
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        assert_eq!(l["interface"], "memory-host/node:ip4-forward", "{l}");
        assert_eq!(
            (&l["point"], &l["node"]),
            (
                &serde_json::json!("node"),
                &serde_json::json!("ip4-forward")
            )
        );
        assert_eq!(l["rx_port"], "eth0");
        let s = l["summary"].as_str().unwrap();
        assert!(s.contains("ICMP echo request"), "{s}");
    }
    // As pcapng: the node interfaces after the ports' (none here) and the rx port in the
    // packet's comment.
    let bytes = capture_while_feeding(
        &srv,
        &[
            "capture",
            "--node",
            "ip4-forward",
            "--drops",
            "-c",
            "3",
            "-w",
            "-",
        ],
    )
    .await
    .unwrap();
    let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
    let (mut names, mut comments) = (Vec::new(), Vec::new());
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            pcap_file::pcapng::Block::InterfaceDescription(i) => {
                names.push(format!("{:?}", i.options))
            }
            pcap_file::pcapng::Block::EnhancedPacket(p) => {
                comments.push((p.interface_id, format!("{:?}", p.options)))
            }
            _ => {}
        }
    }
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].contains("memory-host/drop"), "{names:?}");
    assert!(
        names[1].contains("memory-host/node:ip4-forward"),
        "{names:?}"
    );
    assert_eq!(comments.len(), 3);
    assert!(
        comments
            .iter()
            .any(|c| c.0 == 1 && c.1.contains("node: ip4-forward, rx port: eth0")),
        "{comments:?}"
    );

    // Every capture stopped on the "workers" once its client went.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while srv.backend.captures_running() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "captures still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Refusals: an unknown port (nothing started), a bad filter (never sent).
    let e = srv.run(&["capture", "--port", "eth9"]).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("no port \"eth9\" (ports: eth0, eth1)"),
        "{e}"
    );
    let e = srv
        .run(&["capture", "--node", "ip4-nowhere"])
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("no graph node \"ip4-nowhere\"")
            && msg.contains("ip4-forward")
            && msg.contains("security-group"),
        "{msg}"
    );
    let e = srv
        .run(&["capture", "-f", "tcp prot 80"])
        .await
        .unwrap_err();
    assert!(matches!(e, CliError::Usage(_)) && e.to_string().contains("syntax error"));
    assert_eq!(srv.backend.captures_running(), 0);
    srv.stop().await;
}
