//! host.toml tests: the documented example, defaults, one test per refusal (asserting the
//! whole message), routes files and the EAL argument vector.

use std::path::{Path, PathBuf};

use super::*;
use crate::state::Tables;

const EXAMPLE: &str = r#"
[eal]
args = ["--no-huge", "-m", "256", "--no-pci"]
main_lcore = 0
worker_lcores = [1]

[dataplane]
poll_mode = "adaptive"
burst = 128
mbufs = 8191
admin_socket = "/run/aegis/dataplane.sock"
metrics_listen = "127.0.0.1:9464"

[[port]]
name = "eth0"
devargs = "net_af_packet0,iface=veth-a"
mtu = 1500
addresses = ["10.0.1.1/24"]
mac = "02:00:00:00:00:01"
promiscuous = true

[[port]]
name = "eth1"
devargs = "net_af_packet1,iface=veth-b"
addresses = ["10.0.2.1/24", "10.0.3.1/24"]

[[route]]
prefix = "10.9.0.0/16"
via = "10.0.1.2"
# port = "eth0"
# kind = "blackhole"

[[route]]
prefix = "192.168.0.0/16"
port = "eth1"

[[route]]
prefix = "10.66.0.0/16"
kind = "blackhole"

[[neighbour]]
port = "eth0"
ip = "10.0.1.2"
mac = "02:00:00:00:00:02"
"#;

/// A temporary folder removed on drop (also when a test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("aegis-config-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse(text: &str) -> Result<HostConfig, ConfigError> {
    HostConfig::parse(text, Path::new("/etc/aegis/host.toml"))
}

const ONE_PORT: &str = r#"
[[port]]
name = "eth0"
devargs = "net_null0"
addresses = ["10.0.1.1/24"]
"#;

/// Parses ONE_PORT followed by `extra` and returns the error message.
fn error_with(extra: &str) -> String {
    parse(&format!("{ONE_PORT}\n{extra}"))
        .unwrap_err()
        .to_string()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn the_documented_example_parses() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(c.eal.args, ["--no-huge", "-m", "256", "--no-pci"]);
    assert_eq!(c.eal.main_lcore, Some(0));
    assert_eq!(c.eal.worker_lcores, [1]);
    assert_eq!(c.dataplane.poll_mode, PollMode::Adaptive);
    assert_eq!(c.dataplane.burst, 128);
    assert_eq!(c.dataplane.mbufs, 8191);
    assert_eq!(
        c.dataplane.admin_socket,
        Path::new("/run/aegis/dataplane.sock")
    );
    assert_eq!(
        c.dataplane.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(c.dataplane.routes_file, None);
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[0].device_name(), "net_af_packet0");
    assert!(!c.ports[0].is_pci());
    assert!(c.ports[1].promiscuous);
    let f = &c.forwarding;
    assert_eq!(f.ports[0].mac, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(f.ports[1].mac, None, "filled in from DPDK later");
    assert_eq!(f.ports[1].mtu, 1500);
    assert_eq!(
        f.ports[1].addresses,
        [
            IfAddr::new(ip("10.0.2.1"), 24),
            IfAddr::new(ip("10.0.3.1"), 24)
        ]
    );
    assert_eq!(
        f.routes,
        [
            RouteConfig {
                prefix: "10.9.0.0/16".parse().unwrap(),
                target: RouteTarget::Via(ip("10.0.1.2"))
            },
            RouteConfig {
                prefix: "192.168.0.0/16".parse().unwrap(),
                target: RouteTarget::Port(1)
            },
            RouteConfig {
                prefix: "10.66.0.0/16".parse().unwrap(),
                target: RouteTarget::Blackhole
            },
        ]
    );
    assert_eq!(
        f.neighbours,
        [StaticNeighbour {
            port: 0,
            ip: ip("10.0.1.2"),
            mac: [2, 0, 0, 0, 0, 2]
        }]
    );
    // What config accepts, the tables accept.
    let t = Tables::new(f).unwrap();
    assert_eq!(t.config().routes.len(), 3);
}

#[test]
fn defaults() {
    let c = parse(ONE_PORT).unwrap();
    assert_eq!(
        c.eal,
        EalConfig {
            args: vec![],
            main_lcore: None,
            worker_lcores: vec![0]
        }
    );
    assert_eq!(
        c.dataplane,
        DataplaneConfig {
            poll_mode: PollMode::Adaptive,
            burst: crate::config::DEFAULT_BURST,
            mbufs: 8191,
            connections: crate::config::DEFAULT_CONNECTIONS,
            admin_socket: PathBuf::from(DEFAULT_ADMIN_SOCKET),
            metrics_listen: None,
            diag_listen: None,
            routes_file: None,
            runtime_log: None,
        }
    );
    assert!(c.ports[0].promiscuous);
    assert!(c.forwarding.ports[0].up);
    let c = parse(&format!("[eal]\nmain_lcore = 3\n{ONE_PORT}")).unwrap();
    assert_eq!(
        c.eal.worker_lcores,
        [3],
        "the worker runs on the main lcore"
    );
}

#[test]
fn refuses_bad_ports_naming_the_field() {
    let bad_addr = r#"
[[port]]
name = "eth1"
devargs = "net_null1"
addresses = ["10.0.2.1/24", "10.0.1.300/24"]
"#;
    assert_eq!(
        error_with(bad_addr),
        r#"port[1].addresses[1]: "10.0.1.300/24" is not an IPv4 CIDR"#
    );
    let cases = [
        (
            "name = \"eth0\"\ndevargs = \"x\"",
            r#"port[1].name: "eth0" is already used by port[0]"#,
        ),
        ("name = \"eth1\"", "port[1].devargs: missing"),
        ("devargs = \"x\"", "port[1].name: missing"),
        (
            "name = \"eth1\"\ndevargs = \" \"",
            "port[1].devargs: must not be empty",
        ),
        (
            "name = \"e th\"\ndevargs = \"x\"",
            r#"port[1].name: "e th" may only contain letters, digits, '-', '_' and '.'"#,
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\nmtu = 67",
            "port[1].mtu: 67 is out of range (68..=9000)",
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\nmtu = 9001",
            "port[1].mtu: 9001 is out of range (68..=9000)",
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\nmac = \"01:00:5e:00:00:01\"",
            r#"port[1].mac: "01:00:5e:00:00:01" is not a unicast MAC address"#,
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\nmac = \"02:00:00:00:01\"",
            r#"port[1].mac: "02:00:00:00:01" is not a MAC address (aa:bb:cc:dd:ee:ff)"#,
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\naddresses = [\"10.0.2.0/24\"]",
            "port[1].addresses[0]: 10.0.2.0 is the network address of 10.0.2.0/24",
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\naddresses = [\"10.0.1.1/16\"]",
            "port[1].addresses[0]: 10.0.1.1 is already assigned at port[0].addresses[0]",
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\naddresses = [\"10.0.1.9/24\"]",
            r#"port[1].addresses[0]: subnet 10.0.1.0/24 is already on port "eth0""#,
        ),
        (
            "name = \"eth1\"\ndevargs = \"x\"\nspeed = 10",
            "unknown field `speed`",
        ),
    ];
    for (port, want) in cases {
        let got = error_with(&format!("[[port]]\n{port}\n"));
        assert!(
            got.ends_with(want) || got.contains(want),
            "for {port:?}\n got: {got}\nwant: {want}"
        );
    }
    assert_eq!(
        parse("[dataplane]\nburst = 8\n").unwrap_err().to_string(),
        "port: at least one [[port]] is required"
    );
}

#[test]
fn refuses_bad_sections_naming_the_field() {
    let cases = [
        (
            "[dataplane]\nburst = 0",
            "dataplane.burst: 0 is out of range (1..=256)",
        ),
        (
            "[dataplane]\nburst = 257",
            "dataplane.burst: 257 is out of range (1..=256)",
        ),
        (
            "[dataplane]\nmbufs = 10",
            "dataplane.mbufs: 10 is out of range (64..=16777216)",
        ),
        (
            "[dataplane]\npoll_mode = \"fast\"",
            r#"dataplane.poll_mode: poll mode "fast": expected "adaptive" or "busy""#,
        ),
        (
            "[dataplane]\nmetrics_listen = \"localhost\"",
            r#"dataplane.metrics_listen: "localhost" is not an IP address and port (e.g. "127.0.0.1:9464")"#,
        ),
        (
            "[dataplane]\ndiag_listen = \"mgmt:7401\"",
            r#"dataplane.diag_listen: "mgmt:7401" is not an IP address and port (e.g. "10.99.0.11:7401")"#,
        ),
        (
            "[dataplane]\ndiag_listen = \"0.0.0.0:7401\"",
            r#"dataplane.diag_listen: "0.0.0.0:7401": the control plane dials this address, so it must be one of the host's own (its management address), not a wildcard"#,
        ),
        (
            "[dataplane]\ndiag_listen = \"10.99.0.11:0\"",
            r#"dataplane.diag_listen: "10.99.0.11:0": port 0 is not a port to dial"#,
        ),
        (
            "[dataplane]\nadmin_socket = \"\"",
            "dataplane.admin_socket: must not be empty",
        ),
        (
            "[eal]\nworker_lcores = [1, 2, 1]",
            "eal.worker_lcores[2]: lcore 1 is listed twice",
        ),
        (
            "[eal]\nworker_lcores = []",
            "eal.worker_lcores: must list at least one lcore",
        ),
        (
            "[eal]\nmain_lcore = 500",
            "eal.main_lcore: 500 is out of range (0..=127)",
        ),
        (
            "[eal]\nargs = [\"-m\", \"\"]",
            "eal.args[1]: must not be empty",
        ),
    ];
    for (section, want) in cases {
        let got = parse(&format!("{section}\n{ONE_PORT}"))
            .unwrap_err()
            .to_string();
        assert_eq!(got, want, "for {section:?}");
    }
    let got = parse(&format!("[dataplane]\nburst = \"many\"\n{ONE_PORT}")).unwrap_err();
    assert!(matches!(got, ConfigError::Syntax { .. }), "{got}");
    let text = got.to_string();
    assert!(
        text.starts_with("/etc/aegis/host.toml: ") && text.contains("line 2"),
        "{text}"
    );
    let got = parse(&format!("[unknown]\n{ONE_PORT}"))
        .unwrap_err()
        .to_string();
    assert!(got.contains("unknown field `unknown`"), "{got}");
}

#[test]
fn refuses_bad_routes_and_neighbours_naming_the_field() {
    let cases = [
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"10.9.9.9\"", "route[0].via: gateway 10.9.9.9 is not on any connected subnet"),
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"10.0.1.1\"", "route[0].via: gateway 10.0.1.1 is one of our own addresses"),
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"10.0.1.255\"", "route[0].via: gateway 10.0.1.255 is the broadcast address of 10.0.1.0/24"),
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nvia = \"10.0.1\"", r#"route[0].via: "10.0.1" is not an IPv4 address"#),
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nport = \"eth9\"", r#"route[0].port: no port named "eth9""#),
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nkind = \"drop\"", r#"route[0].kind: "drop" is not one of "blackhole", "unreachable""#),
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nkind = \"blackhole\"\nvia = \"10.0.1.2\"", "route[0]: exactly one of via, port or kind is required"),
        ("[[route]]\nprefix = \"10.0.0.0/8\"", "route[0]: exactly one of via, port or kind is required"),
        ("[[route]]\nkind = \"blackhole\"", "route[0].prefix: missing"),
        ("[[route]]\nprefix = \"10.0.0.1/8\"\nkind = \"blackhole\"", "route[0].prefix: prefix 10.0.0.1/8 has host bits set (the network is 10.0.0.0/8)"),
        ("[[route]]\nprefix = \"10.0.0.0/8\"\nkind = \"blackhole\"\n[[route]]\nprefix = \"10.0.0.0/8\"\nkind = \"unreachable\"", "route[1].prefix: 10.0.0.0/8 is already routed by route[0]"),
        ("[[route]]\nprefix = \"10.0.1.0/24\"\nkind = \"blackhole\"", r#"route[0].prefix: 10.0.1.0/24 is the connected subnet of "eth0""#),
        ("[[route]]\nprefix = \"10.0.1.1/32\"\nkind = \"blackhole\"", r#"route[0].prefix: 10.0.1.1/32 is our own address on "eth0""#),
        ("[[neighbour]]\nport = \"eth0\"\nip = \"10.0.1.2\"\nmac = \"02:00:00:00:00\"", r#"neighbour[0].mac: "02:00:00:00:00" is not a MAC address (aa:bb:cc:dd:ee:ff)"#),
        ("[[neighbour]]\nport = \"eth0\"\nip = \"10.0.1.2\"\nmac = \"ff:ff:ff:ff:ff:ff\"", r#"neighbour[0].mac: "ff:ff:ff:ff:ff:ff" is not a unicast MAC address"#),
        ("[[neighbour]]\nport = \"eth0\"\nip = \"10.0.7.2\"\nmac = \"02:00:00:00:00:02\"", r#"neighbour[0].ip: 10.0.7.2 is not on any subnet of "eth0""#),
        ("[[neighbour]]\nport = \"eth0\"\nip = \"10.0.1.1\"\nmac = \"02:00:00:00:00:02\"", "neighbour[0].ip: 10.0.1.1 is one of our own addresses"),
        ("[[neighbour]]\nport = \"eth3\"\nip = \"10.0.1.2\"\nmac = \"02:00:00:00:00:02\"", r#"neighbour[0].port: no port named "eth3""#),
        ("[[neighbour]]\nport = \"eth0\"\nip = \"10.0.1.2\"", "neighbour[0].mac: missing"),
    ];
    for (extra, want) in cases {
        assert_eq!(error_with(extra), want, "for {extra:?}");
    }
}

#[test]
fn routes_file_lines_are_read_relative_to_the_config() {
    let dir = TempDir::new("routes");
    std::fs::write(
        dir.0.join("routes.txt"),
        "# upstream\n\ndefault via 10.0.1.254\n10.20.0.0/16 dev eth0   # attached\n10.30.0.0/16 blackhole\n10.40.0.0/16 unreachable\n",
    )
    .unwrap();
    let text = format!("[dataplane]\nroutes_file = \"routes.txt\"\nruntime_log = \"runtime.log\"\n{ONE_PORT}\n[[route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.1.2\"\n");
    let c = HostConfig::parse(&text, &dir.0.join("host.toml")).unwrap();
    assert_eq!(c.dataplane.routes_file, Some(dir.0.join("routes.txt")));
    assert_eq!(c.dataplane.runtime_log, Some(dir.0.join("runtime.log")));
    let got: Vec<(String, RouteTarget)> = c
        .forwarding
        .routes
        .iter()
        .map(|r| (r.prefix.to_string(), r.target))
        .collect();
    assert_eq!(
        got,
        [
            ("10.9.0.0/16".to_string(), RouteTarget::Via(ip("10.0.1.2"))),
            ("0.0.0.0/0".to_string(), RouteTarget::Via(ip("10.0.1.254"))),
            ("10.20.0.0/16".to_string(), RouteTarget::Port(0)),
            ("10.30.0.0/16".to_string(), RouteTarget::Blackhole),
            ("10.40.0.0/16".to_string(), RouteTarget::Unreachable),
        ]
    );
    // And load() reads the same from disk.
    std::fs::write(dir.0.join("host.toml"), &text).unwrap();
    assert_eq!(HostConfig::load(&dir.0.join("host.toml")).unwrap(), c);
}

#[test]
fn routes_file_errors_name_the_line() {
    let dir = TempDir::new("badroutes");
    let file = dir.0.join("routes.txt");
    let host = dir.0.join("host.toml");
    let text = format!("[dataplane]\nroutes_file = \"routes.txt\"\n{ONE_PORT}\n[[route]]\nprefix = \"10.9.0.0/16\"\nkind = \"blackhole\"\n");
    let cases = [
        ("10.1.0.0/16 via 10.9.9.9\n", "route 10.1.0.0/16: gateway 10.9.9.9 is not on any connected subnet"),
        ("10.1.0.0/16 dev eth7\n", "route 10.1.0.0/16: no port named \"eth7\""),
        ("10.1.0.0/16 via\n", "expected \"PREFIX via GATEWAY\", \"PREFIX dev PORT\", \"PREFIX blackhole\" or \"PREFIX unreachable\", found \"10.1.0.0/16 via\""),
        ("10.1.0.0/16 drop\n", "expected \"PREFIX via GATEWAY\", \"PREFIX dev PORT\", \"PREFIX blackhole\" or \"PREFIX unreachable\", found \"10.1.0.0/16 drop\""),
        ("10.1.0.1/16 blackhole\n", "prefix 10.1.0.1/16 has host bits set (the network is 10.1.0.0/16)"),
        ("10.1.0.0 blackhole\n", "\"10.1.0.0\" is not an IPv4 prefix (a.b.c.d/len)"),
        ("10.9.0.0/16 unreachable\n", "10.9.0.0/16 is already routed by route[0]"),
    ];
    for (line, want) in cases {
        std::fs::write(&file, format!("# header\n10.2.0.0/16 blackhole\n{line}")).unwrap();
        let got = HostConfig::parse(&text, &host).unwrap_err().to_string();
        assert_eq!(got, format!("{}:3: {want}", file.display()), "for {line:?}");
    }
    std::fs::write(&file, "10.2.0.0/16 blackhole\n10.2.0.0/16 unreachable\n").unwrap();
    let got = HostConfig::parse(&text, &host).unwrap_err().to_string();
    assert_eq!(
        got,
        format!(
            "{0}:2: 10.2.0.0/16 is already routed by {0}:1",
            file.display()
        )
    );
    std::fs::remove_file(&file).unwrap();
    let got = HostConfig::parse(&text, &host).unwrap_err();
    assert!(
        matches!(got, ConfigError::Io { ref path, .. } if *path == file),
        "{got}"
    );
}

#[test]
fn eal_argv_adds_what_the_args_leave_out() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(
        c.eal_argv("aegis-dataplane", "aegis-42"),
        [
            "aegis-dataplane",
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--file-prefix",
            "aegis-42",
            "-l",
            "0,1",
            "--main-lcore",
            "0",
            "--vdev",
            "net_af_packet0,iface=veth-a",
            "--vdev",
            "net_af_packet1,iface=veth-b",
        ]
    );
    let text = r#"
[eal]
args = ["--file-prefix=mine", "-l", "2-3"]
[[port]]
name = "p0"
devargs = "0000:00:08.0"
"#;
    let c = parse(text).unwrap();
    assert!(c.ports[0].is_pci());
    assert_eq!(
        c.eal_argv("x", "aegis-1"),
        ["x", "--file-prefix=mine", "-l", "2-3", "-a", "0000:00:08.0"]
    );
    assert!(is_pci_address("00:08.0"));
    assert!(!is_pci_address("net_null0"));
    assert!(!is_pci_address("0000:00:08.9"));
}

#[test]
fn vrrp_imports_the_keepalived_conf_beside_host_toml() {
    let dir = TempDir::new("vrrp");
    let host = dir.0.join("host.toml");
    let text = format!("[vrrp]\nkeepalived_conf = \"keepalived.conf\"\n{ONE_PORT}");
    let conf = |iface: &str, extra: &str| {
        format!("vrrp_instance VI_1 {{\n interface {iface}\n virtual_router_id 7\n priority 150\n virtual_ipaddress {{\n 10.0.1.100/24\n }}\n{extra}}}\n")
    };
    std::fs::write(dir.0.join("keepalived.conf"), conf("eth0", "")).unwrap();
    let c = HostConfig::parse(&text, &host).unwrap();
    let v = c.vrrp.expect("[vrrp] read");
    assert_eq!(v.source, dir.0.join("keepalived.conf"));
    assert_eq!(v.imported.instances[0].config.vrid, 7);
    assert_eq!(v.imported.instances[0].config.priority, 150);

    let file = dir.0.join("keepalived.conf").display().to_string();
    for (body, want) in [
        (
            conf("eth9", ""),
            format!("vrrp.keepalived_conf: {file}: line 1: vrrp_instance VI_1: interface eth9 is not a [[port]] of this host"),
        ),
        (
            conf("eth0", " track_interface {\n  uplink\n }\n"),
            format!("vrrp.keepalived_conf: {file}: line 1: vrrp_instance VI_1: track_interface uplink is not a [[port]] of this host"),
        ),
        (
            conf("eth0", " smtp_alert\n"),
            format!("vrrp.keepalived_conf: {file}: line 8: vrrp_instance VI_1: unsupported keyword \"smtp_alert\""),
        ),
    ] {
        std::fs::write(dir.0.join("keepalived.conf"), body).unwrap();
        assert_eq!(HostConfig::parse(&text, &host).unwrap_err().to_string(), want);
    }
    std::fs::remove_file(dir.0.join("keepalived.conf")).unwrap();
    let e = HostConfig::parse(&text, &host).unwrap_err().to_string();
    assert!(e.starts_with(&file), "{e}");
    assert_eq!(
        error_with("[vrrp]\n"),
        "vrrp.keepalived_conf: missing (the keepalived.conf to import)"
    );
}

#[test]
fn nat_rules_are_checked_against_the_outside_port() {
    let two = "[[port]]\nname = \"int0\"\ndevargs = \"net_null0\"\naddresses = [\"10.0.1.1/24\"]\n\n[[port]]\nname = \"ext0\"\ndevargs = \"net_null1\"\naddresses = [\"203.0.113.2/24\", \"203.0.113.10/24\", \"203.0.113.20/24\"]\n";
    let ok = format!("{two}\n[nat]\noutside_port = \"ext0\"\n[[nat.snat]]\nsource = \"10.0.1.0/24\"\naddress = \"203.0.113.10\"\nendpoint_dependent = false\n[[nat.floating_ip]]\ninside = \"10.0.1.5\"\noutside = \"203.0.113.20\"\n");
    let c = parse(&ok).unwrap();
    assert_eq!(c.nat.outside_port, Some(1));
    assert!(!c.nat.snat()[0].endpoint_dependent);
    assert_eq!(
        c.nat
            .translation_for(crate::nat::ROUTED_VPC, u32::from(ip("10.0.1.5"))),
        Some(crate::nat::Translation::FloatingIp {
            ip: u32::from(ip("203.0.113.20"))
        })
    );
    assert_eq!(parse(two).unwrap().nat, crate::nat::NatConfig::default());
    let err = |extra: &str| parse(&format!("{two}\n{extra}")).unwrap_err().to_string();
    assert_eq!(
        err("[nat]\noutside_port = \"ext9\"\n"),
        "nat.outside_port: no [[port]] named \"ext9\""
    );
    assert_eq!(
        err("[nat]\noutside_port = \"ext0\"\n[[nat.snat]]\nsource = \"10.0.1.0/24\"\naddress = \"198.51.100.1\"\n"),
        "nat.snat[0].address: 198.51.100.1 is not an address of the outside port ext0 (add it to its addresses, or to the virtual_ipaddress of a VRRP instance on it, so ARP and ping work)"
    );
    assert_eq!(
        err("[nat]\noutside_port = \"ext0\"\n[[nat.snat]]\nsource = \"10.0.1.1/24\"\naddress = \"203.0.113.10\"\n"),
        "nat.snat[0].source: prefix 10.0.1.1/24 has host bits set (the network is 10.0.1.0/24)"
    );
}

/// NAT spreads over the workers (each owns a slice of the outside ports and hands other
/// workers' packets on): a gateway may run several.
#[test]
fn nat_runs_on_several_worker_lcores() {
    let two = "[[port]]\nname = \"int0\"\ndevargs = \"net_null0\"\naddresses = [\"10.0.1.1/24\"]\n\n[[port]]\nname = \"ext0\"\ndevargs = \"net_null1\"\naddresses = [\"203.0.113.2/24\", \"203.0.113.10/24\"]\n";
    let c = parse(&format!(
        "[eal]\nworker_lcores = [1, 2]\n{two}\n[nat]\noutside_port = \"ext0\"\n\
         [[nat.snat]]\nsource = \"10.0.1.0/24\"\naddress = \"203.0.113.10\"\n"
    ))
    .unwrap();
    assert_eq!(c.eal.worker_lcores, [1, 2]);
    assert_eq!(c.nat.outside_port, Some(1));
    assert_eq!(c.nat.snat().len(), 1);
    let argv = c.eal_argv("aegis-dataplane", "p");
    assert!(argv.windows(2).any(|w| w == ["-l", "0,1,2"]), "{argv:?}");
}

#[test]
fn a_gateway_pair_takes_nat_addresses_from_vrrp_and_syncs_its_sessions() {
    let dir = TempDir::new("sync");
    let host = dir.0.join("host.toml");
    std::fs::write(
        dir.0.join("keepalived.conf"),
        "vrrp_instance VI_OUT {\n interface ext0\n virtual_router_id 61\n priority 150\n \
         virtual_ipaddress {\n 203.0.113.1/24\n 203.0.113.50/24\n }\n}\n",
    )
    .unwrap();
    std::fs::write(dir.0.join("sync.key"), "0123456789abcdef0123\n").unwrap();
    std::fs::write(dir.0.join("short.key"), "tooshort").unwrap();
    let base = "[vrrp]\nkeepalived_conf = \"keepalived.conf\"\n\n\
        [[port]]\nname = \"int0\"\ndevargs = \"net_null0\"\naddresses = [\"10.0.1.2/24\"]\n\n\
        [[port]]\nname = \"ext0\"\ndevargs = \"net_null1\"\naddresses = [\"203.0.113.2/24\"]\n\n\
        [nat]\noutside_port = \"ext0\"\n[[nat.snat]]\nsource = \"10.0.1.0/24\"\naddress = \"203.0.113.50\"\n";
    let sync = "[sync]\nport = \"int0\"\npeers = [\"10.0.1.3\"]\nkey_file = \"sync.key\"\nvrrp_instance = \"VI_OUT\"\n";
    let c = HostConfig::parse(&format!("{base}{sync}"), &host).unwrap();
    assert_eq!(
        c.nat.snat()[0].address,
        ip("203.0.113.50"),
        "a virtual address"
    );
    let s = c.sync.expect("[sync] read");
    assert_eq!(
        (s.port, s.address, s.peers.clone(), s.udp_port, s.group),
        (0, ip("10.0.1.2"), vec![ip("10.0.1.3")], 6082, 1)
    );
    assert_eq!(s.key, b"0123456789abcdef0123");
    assert!(
        !format!("{s:?}").contains("0123456789"),
        "the key is not logged"
    );
    let err = |text: &str| HostConfig::parse(text, &host).unwrap_err().to_string();
    let with = |extra: &str| format!("{base}{sync}{extra}");
    assert_eq!(
        err(&with("udp_port = 6081\n")),
        "sync.udp_port: 6081 is not a UDP port (1..=65535, not Geneve's 6081)"
    );
    assert_eq!(
        err(&format!("{base}[sync]\nport = \"int0\"\npeers = [\"10.0.9.3\"]\nkey_file = \"sync.key\"\nvrrp_instance = \"VI_OUT\"\n")),
        "sync.peers[0]: 10.0.9.3 is not on a subnet of port int0"
    );
    assert_eq!(
        err(&format!("{base}[sync]\nport = \"int0\"\npeers = [\"10.0.1.3\"]\nkey_file = \"short.key\"\nvrrp_instance = \"VI_OUT\"\n")),
        format!(
            "sync.key_file: {}: the key has 8 bytes, at least 16 are needed",
            dir.0.join("short.key").display()
        )
    );
    assert_eq!(
        err(&format!("{base}[sync]\nport = \"int0\"\npeers = [\"10.0.1.3\"]\nkey_file = \"sync.key\"\nvrrp_instance = \"VI_X\"\n")),
        "sync.vrrp_instance: no vrrp_instance \"VI_X\" in [vrrp]'s keepalived.conf (leave it \
         out to follow the gateway group's external instance, \"gw-external\")"
    );
    // Not given: the gateway group's external instance (built from the control plane).
    let c = HostConfig::parse(
        &format!(
            "{base}[sync]\nport = \"int0\"\npeers = [\"10.0.1.3\"]\nkey_file = \"sync.key\"\n"
        ),
        &host,
    )
    .unwrap();
    assert_eq!(c.sync.unwrap().vrrp_instance, "gw-external");
    assert!(err(&with("bogus = 1\n")).contains("unknown field `bogus`"));
    // Without NAT there is nothing to sync.
    let no_nat = base.split("[nat]").next().unwrap();
    assert_eq!(
        err(&format!("{no_nat}{sync}")),
        "sync: session sync needs [nat] (it replicates the NAT sessions)"
    );
}

#[test]
fn diag_listen_is_an_address_to_dial() {
    let c = parse(&format!(
        "[dataplane]\ndiag_listen = \"10.99.0.11:7401\"\n{ONE_PORT}"
    ))
    .unwrap();
    assert_eq!(
        c.dataplane.diag_listen,
        Some("10.99.0.11:7401".parse().unwrap())
    );
    let c = parse(&format!(
        "[dataplane]\ndiag_listen = \"[fd00::b]:7401\"\n{ONE_PORT}"
    ))
    .unwrap();
    assert_eq!(
        c.dataplane.diag_listen,
        Some("[fd00::b]:7401".parse().unwrap())
    );
    assert_eq!(parse(ONE_PORT).unwrap().dataplane.diag_listen, None);
}
