//! The host.toml that [`RouterLab`] writes is accepted by aegis-dataplane's own parser and
//! means what the lab intends (the file format is the contract between the two). No root, no
//! namespaces.

use std::path::Path;

use aegis_dataplane::config::{HostConfig, PollMode};
use aegis_lab::RouterLab;

#[test]
fn router_lab_host_toml_parses_as_intended() {
    let socket = Path::new("/tmp/aegis-lab/aegl-contract-1-0/r1.sock");
    let text = RouterLab::host_config("aegl-contract-1-0-r1", socket).render();
    let cfg = HostConfig::parse(
        &text,
        Path::new("/tmp/aegis-lab/aegl-contract-1-0/host.toml"),
    )
    .unwrap_or_else(|e| panic!("dataplane rejects the lab's host.toml: {e}\n{text}"));

    assert_eq!(cfg.dataplane.poll_mode, PollMode::Adaptive);
    assert_eq!(cfg.dataplane.admin_socket, socket);
    let ports: Vec<(&str, &str)> = cfg
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.devargs.as_str()))
        .collect();
    assert_eq!(
        ports,
        [
            ("veth-h1", "net_af_packet0,iface=veth-h1"),
            ("veth-h2", "net_af_packet1,iface=veth-h2"),
        ]
    );
    assert!(cfg.ports.iter().all(|p| !p.is_pci()));

    let argv = cfg.eal_argv("aegis-dataplane", "unused-default");
    let has = |a: &str| argv.iter().any(|x| x == a);
    assert!(has("--no-huge") && has("--no-pci"), "{argv:?}");
    // The lab's own file prefix wins over the daemon's default.
    let fp = argv.iter().position(|a| a == "--file-prefix").unwrap();
    assert_eq!(argv[fp + 1], "aegl-contract-1-0-r1", "{argv:?}");
    assert!(!has("unused-default"), "{argv:?}");
    // With --lcores from the lab, the daemon must not add a conflicting -l.
    if has("--lcores") {
        assert!(!has("-l"), "{argv:?}");
    }
    assert!(has("--vdev"), "{argv:?}");
}

#[test]
fn diag_listen_reaches_the_dataplane_config() {
    let socket = Path::new("/tmp/aegis-lab/aegl-contract-1-0/c1.sock");
    let mut host = RouterLab::host_config("aegl-contract-1-0-c1", socket);
    host.diag_listen = Some("10.99.0.11:7401".into());
    let text = host.render();
    let cfg = HostConfig::parse(
        &text,
        Path::new("/tmp/aegis-lab/aegl-contract-1-0/host.toml"),
    )
    .unwrap_or_else(|e| panic!("dataplane rejects the lab's host.toml: {e}\n{text}"));
    assert_eq!(
        cfg.dataplane.diag_listen,
        Some("10.99.0.11:7401".parse().unwrap())
    );
}
