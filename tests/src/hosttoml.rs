//! Writes a `host.toml` for `aegis-dataplane` (the format is documented in docs/ and parsed by
//! `dataplane/src/config.rs`). Only the keys a lab needs are emitted; everything else keeps the
//! daemon's defaults.

use std::fmt::Write as _;
use std::path::PathBuf;

/// One `[[port]]`.
#[derive(Debug, Clone)]
pub struct PortSpec {
    /// Port name ("eth0").
    pub name: String,
    /// DPDK devargs ("net_af_packet0,iface=veth-h1").
    pub devargs: String,
    /// Interface addresses, CIDR.
    pub addresses: Vec<String>,
}

/// One `[[route]]` via a gateway.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Destination prefix, CIDR.
    pub prefix: String,
    /// Gateway address.
    pub via: String,
}

/// The parts of host.toml a lab sets.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `[eal] args`, including `--file-prefix`.
    pub eal_args: Vec<String>,
    /// `"adaptive"` or `"busy"`.
    pub poll_mode: String,
    /// Rx burst size.
    pub burst: u32,
    /// Mempool size.
    pub mbufs: u32,
    /// Admin API unix socket.
    pub admin_socket: PathBuf,
    /// Diagnostics listener (`diag_listen`, "IP:PORT") for the control plane to dial.
    pub diag_listen: Option<String>,
    /// Ports, in order (DPDK port ids follow this order).
    pub ports: Vec<PortSpec>,
    /// Static routes.
    pub routes: Vec<RouteSpec>,
}

impl HostConfig {
    /// EAL arguments for a lab daemon: no hugepages, 256 MB, no PCI scan, its own file prefix
    /// (two DPDK primaries with one prefix collide), and — given the CPUs the process may use,
    /// as a cpu list like "0-1" or "0,2-3" — lcore 0 (the main lcore, which runs the single
    /// worker) allowed on all of them instead of pinned to the first, so several lab daemons
    /// (tests run in parallel) spread over the machine's cores. The daemon adds
    /// `-l`/`--main-lcore` only when the args name no lcores.
    pub fn lab_eal_args(file_prefix: &str, cpu_list: Option<&str>) -> Vec<String> {
        let mut a: Vec<String> = ["--no-huge", "-m", "256", "--no-pci", "--file-prefix"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(file_prefix.to_string());
        if let Some(cpus) = cpu_list.filter(|c| is_multi_cpu_list(c)) {
            a.extend(["--lcores".to_string(), format!("0@({cpus})")]);
        }
        a
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut t = String::new();
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
            format!("[{}]", items.join(", "))
        };
        t.push_str("# Written by aegis-lab.\n[eal]\n");
        let _ = writeln!(t, "args = {}", list(&self.eal_args));
        t.push_str("\n[dataplane]\n");
        let _ = writeln!(t, "poll_mode = {}", quote(&self.poll_mode));
        let _ = writeln!(t, "burst = {}", self.burst);
        let _ = writeln!(t, "mbufs = {}", self.mbufs);
        let _ = writeln!(
            t,
            "admin_socket = {}",
            quote(&self.admin_socket.to_string_lossy())
        );
        if let Some(d) = &self.diag_listen {
            let _ = writeln!(t, "diag_listen = {}", quote(d));
        }
        for p in &self.ports {
            t.push_str("\n[[port]]\n");
            let _ = writeln!(t, "name = {}", quote(&p.name));
            let _ = writeln!(t, "devargs = {}", quote(&p.devargs));
            let _ = writeln!(t, "addresses = {}", list(&p.addresses));
        }
        for r in &self.routes {
            t.push_str("\n[[route]]\n");
            let _ = writeln!(t, "prefix = {}", quote(&r.prefix));
            let _ = writeln!(t, "via = {}", quote(&r.via));
        }
        t
    }
}

/// True for a well-formed kernel cpu list ("0-3", "0,2-3") naming more than one CPU.
fn is_multi_cpu_list(list: &str) -> bool {
    let mut n = 0u32;
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        match (lo.parse::<u32>(), hi.parse::<u32>()) {
            (Ok(lo), Ok(hi)) if lo <= hi => n += hi - lo + 1,
            _ => return false,
        }
    }
    n > 1
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HostConfig {
        HostConfig {
            eal_args: HostConfig::lab_eal_args("aegl-t-1-0-r1", Some("0-1")),
            poll_mode: "adaptive".into(),
            burst: 128,
            mbufs: 8191,
            admin_socket: "/tmp/a \"b\"/r1.sock".into(),
            diag_listen: None,
            ports: vec![
                PortSpec {
                    name: "eth0".into(),
                    devargs: "net_af_packet0,iface=veth-h1".into(),
                    addresses: vec!["10.0.1.1/24".into()],
                },
                PortSpec {
                    name: "eth1".into(),
                    devargs: "net_af_packet1,iface=veth-h2".into(),
                    addresses: vec!["10.0.2.1/24".into(), "10.0.20.1/24".into()],
                },
            ],
            routes: vec![RouteSpec {
                prefix: "10.9.0.0/16".into(),
                via: "10.0.1.2".into(),
            }],
        }
    }

    #[test]
    fn renders_valid_toml_with_the_documented_keys() {
        let text = sample().render();
        let v: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        let eal = v["eal"]["args"].as_array().unwrap();
        let eal: Vec<&str> = eal.iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(
            eal,
            [
                "--no-huge",
                "-m",
                "256",
                "--no-pci",
                "--file-prefix",
                "aegl-t-1-0-r1",
                "--lcores",
                "0@(0-1)"
            ]
        );
        for single in [None, Some("0"), Some("3-3"), Some("garbage"), Some("")] {
            let a = HostConfig::lab_eal_args("p", single);
            assert!(!a.contains(&"--lcores".to_string()), "{single:?}");
        }
        let a = HostConfig::lab_eal_args("p", Some("0,2-3"));
        assert_eq!(a[a.len() - 2..], ["--lcores", "0@(0,2-3)"]);
        let dp = &v["dataplane"];
        assert_eq!(dp["poll_mode"].as_str(), Some("adaptive"));
        assert_eq!(dp["burst"].as_integer(), Some(128));
        assert_eq!(dp["mbufs"].as_integer(), Some(8191));
        assert_eq!(dp["admin_socket"].as_str(), Some("/tmp/a \"b\"/r1.sock"));
        let ports = v["port"].as_array().unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[1]["name"].as_str(), Some("eth1"));
        assert_eq!(
            ports[1]["devargs"].as_str(),
            Some("net_af_packet1,iface=veth-h2")
        );
        assert_eq!(ports[1]["addresses"].as_array().unwrap().len(), 2);
        let routes = v["route"].as_array().unwrap();
        assert_eq!(routes[0]["via"].as_str(), Some("10.0.1.2"));
    }

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
