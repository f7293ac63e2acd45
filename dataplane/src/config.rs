//! host.toml: parsing (serde + toml, unknown keys refused) and validation of everything in
//! it, producing the [`ForwardingConfig`] the forwarding tables are built from plus the EAL
//! and dataplane settings. Every error names the field at fault
//! (`port[1].addresses[0]: "10.0.1.300/24" is not an IPv4 CIDR`); array indices count from
//! 0 in file order. Lines of a `routes_file` are reported as `FILE:LINE: ...`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fib::Prefix;
use crate::state::forwarding::{not_unicast, reserved_in_subnet, DEFAULT_MTU, MTU_RANGE};
use crate::state::mac::{is_unicast, parse_mac};
use crate::state::{
    ForwardingConfig, IfAddr, Mac, PortConfig, RouteConfig, RouteTarget, StaticNeighbour,
};

/// Rx burst size when host.toml gives none: 128 measured 9–13 % faster than 32 on the
/// benchmark's routing and east-west paths, and faster than 64 and 256 (docs/benchmarks.md).
pub const DEFAULT_BURST: u16 = 128;
/// Accepted rx burst sizes.
pub const BURST_RANGE: std::ops::RangeInclusive<u16> = 1..=256;
/// Accepted mempool sizes.
pub const MBUFS_RANGE: std::ops::RangeInclusive<u32> = 64..=(1 << 24);
/// Accepted connection-table sizes per worker.
pub const CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1024..=(1 << 24);
/// Connection-table entries per worker when the file gives none.
pub const DEFAULT_CONNECTIONS: u32 = 1 << 18;
/// Highest lcore id (DPDK's default `RTE_MAX_LCORE` is 128).
pub const MAX_LCORE: u32 = 127;
/// Admin socket used when the file names none.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/aegis/dataplane.sock";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value that is not acceptable.
    #[error("{field}: {message}")]
    Field {
        /// Where it is (`port[1].addresses[0]`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A bad line in the routes file.
    #[error("{}:{line}: {message}", path.display())]
    RoutesFile {
        /// The routes file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A validated host.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// EAL settings.
    pub eal: EalConfig,
    /// Dataplane settings.
    pub dataplane: DataplaneConfig,
    /// DPDK side of each port, in the order of `forwarding.ports`.
    pub ports: Vec<PortSpec>,
    /// Ports, addresses, routes (file ones included) and static neighbours.
    pub forwarding: ForwardingConfig,
    /// `[vrrp]`: the VRRP instances this host runs (gateways), if any.
    pub vrrp: Option<VrrpSetup>,
    /// `[nat]`: source NAT and floating IPs on the outside port (gateways); off by default.
    pub nat: crate::nat::NatConfig,
    /// `[sync]`: session sync with the other gateways of the group (needs `[nat]`; follows
    /// a keepalived.conf instance of `[vrrp]`, or the gateway group's external instance).
    pub sync: Option<crate::sync::SyncConfig>,
}

/// The `[vrrp]` section, validated: the keepalived.conf it names, imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSetup {
    /// The keepalived.conf (relative paths are taken from host.toml's folder).
    pub source: PathBuf,
    /// Its `vrrp_instance` and `vrrp_sync_group` blocks.
    pub imported: aegis_vrrp::keepalived::Imported,
}

/// `[eal]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// Extra arguments for `rte_eal_init`.
    pub args: Vec<String>,
    /// Main lcore, if given.
    pub main_lcore: Option<u32>,
    /// Lcores running workers (default: the main lcore alone).
    pub worker_lcores: Vec<u32>,
}

pub use crate::worker::poll::PollMode;

/// `[dataplane]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Worker polling.
    pub poll_mode: PollMode,
    /// Rx burst size.
    pub burst: u16,
    /// Mempool size.
    pub mbufs: u32,
    /// Connection-table entries per worker (stateful security groups).
    pub connections: u32,
    /// Admin API unix socket.
    pub admin_socket: PathBuf,
    /// Prometheus endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// TCP address of the diagnostics gRPC service (`DataplaneDiagnostics`), sent to the
    /// control plane in heartbeats so it can dial it.
    pub diag_listen: Option<SocketAddr>,
    /// Routes file, resolved against the configuration file's folder.
    pub routes_file: Option<PathBuf>,
    /// Journal of runtime changes (admin API) replayed at start, resolved like
    /// `routes_file`; `None`: runtime changes last until the process ends.
    pub runtime_log: Option<PathBuf>,
}

/// The DPDK side of a `[[port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Port name (same as the forwarding port's).
    pub name: String,
    /// vdev devargs (`net_af_packet0,iface=veth-a`) or a PCI address.
    pub devargs: String,
    /// Put the NIC in promiscuous mode.
    pub promiscuous: bool,
}

impl PortSpec {
    /// True if `devargs` is a PCI address (`0000:00:08.0` or `00:08.0`), false for a vdev.
    pub fn is_pci(&self) -> bool {
        is_pci_address(self.devargs.split(',').next().unwrap_or(""))
    }

    /// The DPDK device name: the devargs up to the first comma (what
    /// `rte_eth_dev_get_port_by_name` finds the port by).
    pub fn device_name(&self) -> &str {
        self.devargs.split(',').next().unwrap_or("")
    }
}

impl HostConfig {
    /// Reads and validates the file at `path` (and its routes file, relative to its folder).
    pub fn load(path: &Path) -> Result<HostConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates `text` as if read from `path` (used to name the file in errors and to find
    /// a relative `routes_file`).
    pub fn parse(text: &str, path: &Path) -> Result<HostConfig, ConfigError> {
        let raw: RawHost = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let eal = eal(raw.eal)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let dataplane = dataplane(raw.dataplane, base)?;
        let (ports, forwarding_ports) = ports(raw.port)?;
        let links = Links::new(&forwarding_ports);
        let mut routes = Routes::default();
        for (i, r) in raw.route.into_iter().enumerate() {
            routes.add_toml(i, r, &links)?;
        }
        if let Some(file) = &dataplane.routes_file {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
                path: file.clone(),
                source,
            })?;
            routes.add_file(&text, file, &links)?;
        }
        let neighbours = neighbours(raw.neighbour, &links)?;
        let vrrp = raw
            .vrrp
            .map(|v| vrrp(v, base, &forwarding_ports))
            .transpose()?;
        let nat = match raw.nat {
            Some(n) => nat(n, &forwarding_ports, vrrp.as_ref())?,
            None => crate::nat::NatConfig::default(),
        };
        let sync = match raw.sync {
            Some(r) => {
                let names: Vec<&str> = vrrp
                    .iter()
                    .flat_map(|v| v.imported.instances.iter())
                    .map(|i| i.config.name.as_str())
                    .collect();
                let raw = crate::sync::config::RawSync {
                    port: r.port,
                    address: r.address,
                    peers: r.peers,
                    udp_port: r.udp_port,
                    group: r.group,
                    key_file: r.key_file,
                    vrrp_instance: r.vrrp_instance,
                };
                Some(
                    crate::sync::config::validate(
                        raw,
                        base,
                        &forwarding_ports,
                        &names,
                        nat.enabled(),
                    )
                    .map_err(|e| field(e.field, e.message))?,
                )
            }
            None => None,
        };
        Ok(HostConfig {
            eal,
            dataplane,
            ports,
            forwarding: ForwardingConfig {
                ports: forwarding_ports,
                routes: routes.list,
                neighbours,
            },
            vrrp,
            nat,
            sync,
        })
    }

    /// The full `rte_eal_init` argument vector: `program`, the configured arguments, then
    /// what they leave out — `--file-prefix default_prefix`, `-l` with the main and worker
    /// lcores plus `--main-lcore`, and each port as `--vdev DEVARGS` or `-a PCI`.
    pub fn eal_argv(&self, program: &str, default_prefix: &str) -> Vec<String> {
        let mut argv = vec![program.to_string()];
        argv.extend(self.eal.args.iter().cloned());
        let has = |names: &[&str]| {
            self.eal.args.iter().any(|a| {
                names.iter().any(|n| {
                    a == n || a.starts_with(&format!("{n}=")) || (n.len() == 2 && a.starts_with(n))
                })
            })
        };
        if !has(&["--file-prefix"]) {
            argv.extend(["--file-prefix".to_string(), default_prefix.to_string()]);
        }
        if !has(&["-l", "-c", "--lcores"]) {
            let main = self.eal.main_lcore.unwrap_or(0);
            let mut lcores: Vec<u32> = self.eal.worker_lcores.clone();
            lcores.push(main);
            lcores.sort_unstable();
            lcores.dedup();
            let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
            argv.extend(["-l".to_string(), list.join(",")]);
            if !has(&["--main-lcore"]) {
                argv.extend(["--main-lcore".to_string(), main.to_string()]);
            }
        }
        for p in &self.ports {
            let flag = if p.is_pci() { "-a" } else { "--vdev" };
            argv.extend([flag.to_string(), p.devargs.clone()]);
        }
        argv
    }
}

// ----- raw file shape -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(default)]
    eal: RawEal,
    #[serde(default)]
    dataplane: RawDataplane,
    #[serde(default)]
    port: Vec<RawPort>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    neighbour: Vec<RawNeighbour>,
    vrrp: Option<RawVrrp>,
    nat: Option<RawNat>,
    sync: Option<RawSyncSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSyncSection {
    port: Option<String>,
    address: Option<String>,
    #[serde(default)]
    peers: Vec<String>,
    udp_port: Option<i64>,
    group: Option<i64>,
    key_file: Option<String>,
    vrrp_instance: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNat {
    outside_port: Option<String>,
    #[serde(default)]
    snat: Vec<RawSnat>,
    #[serde(default)]
    floating_ip: Vec<RawFloatingIp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnat {
    source: Option<String>,
    address: Option<String>,
    endpoint_dependent: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFloatingIp {
    inside: Option<String>,
    outside: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVrrp {
    keepalived_conf: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEal {
    #[serde(default)]
    args: Vec<String>,
    main_lcore: Option<i64>,
    worker_lcores: Option<Vec<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDataplane {
    poll_mode: Option<String>,
    burst: Option<i64>,
    mbufs: Option<i64>,
    connections: Option<i64>,
    admin_socket: Option<String>,
    metrics_listen: Option<String>,
    diag_listen: Option<String>,
    routes_file: Option<String>,
    runtime_log: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Option<String>,
    devargs: Option<String>,
    mtu: Option<i64>,
    #[serde(default)]
    addresses: Vec<String>,
    mac: Option<String>,
    promiscuous: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Option<String>,
    via: Option<String>,
    port: Option<String>,
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbour {
    port: Option<String>,
    ip: Option<String>,
    mac: Option<String>,
}

// ----- sections -----

fn nat(
    raw: RawNat,
    ports: &[PortConfig],
    vrrp: Option<&VrrpSetup>,
) -> Result<crate::nat::NatConfig, ConfigError> {
    let name = raw.outside_port.ok_or_else(|| {
        field(
            "nat.outside_port",
            "missing (the port towards the external network)",
        )
    })?;
    let Some(index) = ports.iter().position(|p| p.name == name) else {
        return Err(field(
            "nat.outside_port",
            format!("no [[port]] named {name:?}"),
        ));
    };
    // A gateway pair's NAT addresses are VRRP virtual addresses of the outside port: they
    // move to whichever gateway is master.
    let virtual_on_port = |a: Ipv4Addr| {
        vrrp.is_some_and(|v| {
            v.imported
                .instances
                .iter()
                .any(|i| i.interface == name && i.prefixes.iter().any(|p| p.0 == a))
        })
    };
    let owned = |f: &str, a: Ipv4Addr| -> Result<(), ConfigError> {
        if ports[index].addresses.iter().any(|x| x.addr == a) || virtual_on_port(a) {
            Ok(())
        } else {
            Err(field(
                f,
                format!("{a} is not an address of the outside port {name} (add it to its addresses, or to the virtual_ipaddress of a VRRP instance on it, so ARP and ping work)"),
            ))
        }
    };
    let ip = |f: &str, v: Option<String>| -> Result<Ipv4Addr, ConfigError> {
        let v = v.ok_or_else(|| field(f, "missing"))?;
        v.parse()
            .map_err(|_| field(f, format!("{v:?} is not an IPv4 address")))
    };
    let mut snat = Vec::new();
    for (i, r) in raw.snat.into_iter().enumerate() {
        let f = format!("nat.snat[{i}]");
        let src = r
            .source
            .ok_or_else(|| field(format!("{f}.source"), "missing"))?;
        let source: Prefix = src
            .parse()
            .map_err(|e| field(format!("{f}.source"), format!("{e}")))?;
        let address = ip(&format!("{f}.address"), r.address)?;
        owned(&format!("{f}.address"), address)?;
        snat.push(crate::nat::SnatRule {
            vpc: crate::nat::ROUTED_VPC,
            source,
            address,
            endpoint_dependent: r.endpoint_dependent.unwrap_or(true),
        });
    }
    let mut floating_ips: Vec<crate::nat::FloatingIp> = Vec::new();
    for (i, r) in raw.floating_ip.into_iter().enumerate() {
        let f = format!("nat.floating_ip[{i}]");
        let inside = ip(&format!("{f}.inside"), r.inside)?;
        let outside = ip(&format!("{f}.outside"), r.outside)?;
        owned(&format!("{f}.outside"), outside)?;
        if floating_ips
            .iter()
            .any(|x| x.inside == inside || x.outside == outside)
        {
            return Err(field(
                f,
                "inside and outside addresses must each have one floating IP",
            ));
        }
        if snat.iter().any(|s| s.address == outside) {
            return Err(field(
                format!("{f}.outside"),
                format!("{outside} is also a source NAT address"),
            ));
        }
        floating_ips.push(crate::nat::FloatingIp {
            vpc: crate::nat::ROUTED_VPC,
            inside,
            outside,
        });
    }
    Ok(crate::nat::NatConfig::new(
        Some(index as u16),
        snat,
        floating_ips,
    ))
}

fn vrrp(raw: RawVrrp, base: &Path, ports: &[PortConfig]) -> Result<VrrpSetup, ConfigError> {
    let name = raw.keepalived_conf.ok_or_else(|| {
        field(
            "vrrp.keepalived_conf",
            "missing (the keepalived.conf to import)",
        )
    })?;
    let source = base.join(&name);
    let text = std::fs::read_to_string(&source).map_err(|e| ConfigError::Io {
        path: source.clone(),
        source: e,
    })?;
    let imported = aegis_vrrp::keepalived::import(&text)
        .map_err(|e| field("vrrp.keepalived_conf", format!("{}: {e}", source.display())))?;
    for inst in &imported.instances {
        for (what, iface) in std::iter::once(("interface", &inst.interface))
            .chain(inst.track.iter().map(|t| ("track_interface", &t.interface)))
        {
            if !ports.iter().any(|p| &p.name == iface) {
                return Err(field(
                    "vrrp.keepalived_conf",
                    format!(
                        "{}: line {}: vrrp_instance {}: {what} {iface} is not a [[port]] of this host",
                        source.display(),
                        inst.line,
                        inst.config.name
                    ),
                ));
            }
        }
    }
    Ok(VrrpSetup { source, imported })
}

fn field(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        message: message.into(),
    }
}

fn in_range<T: TryFrom<i64> + PartialOrd + std::fmt::Display>(
    name: &str,
    value: i64,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError> {
    match T::try_from(value) {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(field(
            name,
            format!(
                "{value} is out of range ({}..={})",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn eal(raw: RawEal) -> Result<EalConfig, ConfigError> {
    for (i, a) in raw.args.iter().enumerate() {
        if a.is_empty() {
            return Err(field(format!("eal.args[{i}]"), "must not be empty"));
        }
    }
    let main_lcore = raw
        .main_lcore
        .map(|l| in_range("eal.main_lcore", l, 0..=MAX_LCORE))
        .transpose()?;
    let worker_lcores = match raw.worker_lcores {
        None => vec![main_lcore.unwrap_or(0)],
        Some(list) if list.is_empty() => {
            return Err(field("eal.worker_lcores", "must list at least one lcore"))
        }
        Some(list) => {
            let mut out: Vec<u32> = Vec::with_capacity(list.len());
            for (i, l) in list.into_iter().enumerate() {
                let name = format!("eal.worker_lcores[{i}]");
                let l = in_range(&name, l, 0..=MAX_LCORE)?;
                if out.contains(&l) {
                    return Err(field(name, format!("lcore {l} is listed twice")));
                }
                out.push(l);
            }
            out
        }
    };
    Ok(EalConfig {
        args: raw.args,
        main_lcore,
        worker_lcores,
    })
}

fn dataplane(raw: RawDataplane, base: &Path) -> Result<DataplaneConfig, ConfigError> {
    let poll_mode = match raw.poll_mode.as_deref() {
        None => PollMode::Adaptive,
        Some(m) => m
            .parse::<PollMode>()
            .map_err(|e| field("dataplane.poll_mode", e))?,
    };
    let burst = match raw.burst {
        Some(b) => in_range("dataplane.burst", b, BURST_RANGE)?,
        None => DEFAULT_BURST,
    };
    let mbufs = match raw.mbufs {
        Some(m) => in_range("dataplane.mbufs", m, MBUFS_RANGE)?,
        None => 8191,
    };
    let connections = match raw.connections {
        Some(c) => in_range("dataplane.connections", c, CONNECTIONS_RANGE)?,
        None => DEFAULT_CONNECTIONS,
    };
    let admin_socket = raw
        .admin_socket
        .unwrap_or_else(|| DEFAULT_ADMIN_SOCKET.to_string());
    if admin_socket.is_empty() {
        return Err(field("dataplane.admin_socket", "must not be empty"));
    }
    let metrics_listen = raw
        .metrics_listen
        .map(|m| {
            m.parse::<SocketAddr>().map_err(|_| {
                field(
                    "dataplane.metrics_listen",
                    format!("{m:?} is not an IP address and port (e.g. \"127.0.0.1:9464\")"),
                )
            })
        })
        .transpose()?;
    let diag_listen = raw.diag_listen.map(|d| diag_address(&d)).transpose()?;
    let routes_file = match raw.routes_file {
        Some(f) if f.is_empty() => return Err(field("dataplane.routes_file", "must not be empty")),
        Some(f) => Some(base.join(f)),
        None => None,
    };
    let runtime_log = match raw.runtime_log {
        Some(f) if f.is_empty() => return Err(field("dataplane.runtime_log", "must not be empty")),
        Some(f) => Some(base.join(f)),
        None => None,
    };
    Ok(DataplaneConfig {
        poll_mode,
        burst,
        mbufs,
        connections,
        admin_socket: PathBuf::from(admin_socket),
        metrics_listen,
        diag_listen,
        routes_file,
        runtime_log,
    })
}

/// `dataplane.diag_listen`: an IP address and port the control plane can dial (the address
/// goes into the heartbeats as it is, so not a wildcard address, and not port 0).
fn diag_address(text: &str) -> Result<SocketAddr, ConfigError> {
    let key = "dataplane.diag_listen";
    let addr = text.parse::<SocketAddr>().map_err(|_| {
        field(
            key,
            format!("{text:?} is not an IP address and port (e.g. \"10.99.0.11:7401\")"),
        )
    })?;
    if addr.ip().is_unspecified() {
        return Err(field(
            key,
            format!(
                "{text:?}: the control plane dials this address, so it must be one of the host's \
                 own (its management address), not a wildcard"
            ),
        ));
    }
    if addr.port() == 0 {
        return Err(field(
            key,
            format!("{text:?}: port 0 is not a port to dial"),
        ));
    }
    Ok(addr)
}

fn ports(raw: Vec<RawPort>) -> Result<(Vec<PortSpec>, Vec<PortConfig>), ConfigError> {
    if raw.is_empty() {
        return Err(field("port", "at least one [[port]] is required"));
    }
    if raw.len() > usize::from(u16::MAX) {
        return Err(field("port", "too many ports"));
    }
    let mut specs: Vec<PortSpec> = Vec::with_capacity(raw.len());
    let mut configs: Vec<PortConfig> = Vec::with_capacity(raw.len());
    // Address → (port index, field) and subnet → port index, across all ports.
    let mut addrs: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut subnets: HashMap<Prefix, usize> = HashMap::new();
    for (i, p) in raw.into_iter().enumerate() {
        let at = |f: &str| format!("port[{i}].{f}");
        let name = p.name.ok_or_else(|| field(at("name"), "missing"))?;
        check_name(&name).map_err(|m| field(at("name"), m))?;
        if let Some(j) = specs.iter().position(|s| s.name == name) {
            return Err(field(
                at("name"),
                format!("{name:?} is already used by port[{j}]"),
            ));
        }
        let devargs = p.devargs.ok_or_else(|| field(at("devargs"), "missing"))?;
        if devargs.trim().is_empty() {
            return Err(field(at("devargs"), "must not be empty"));
        }
        let mtu = match p.mtu {
            Some(m) => in_range(&at("mtu"), m, MTU_RANGE)?,
            None => DEFAULT_MTU,
        };
        let mac = p
            .mac
            .map(|m| unicast_mac(&m).map_err(|e| field(at("mac"), e)))
            .transpose()?;
        let mut addresses = Vec::with_capacity(p.addresses.len());
        for (k, text) in p.addresses.iter().enumerate() {
            let here = at(&format!("addresses[{k}]"));
            let a: IfAddr = text.parse().map_err(|e| field(&here, format!("{e}")))?;
            a.check().map_err(|m| field(&here, m))?;
            if let Some(other) = addrs.get(&a.addr) {
                return Err(field(
                    here,
                    format!("{} is already assigned at {other}", a.addr),
                ));
            }
            if a.len < 32 {
                match subnets.get(&a.subnet()) {
                    Some(&j) if j != i => {
                        return Err(field(
                            here,
                            format!(
                                "subnet {} is already on port {:?}",
                                a.subnet(),
                                configs[j].name
                            ),
                        ))
                    }
                    _ => {
                        subnets.insert(a.subnet(), i);
                    }
                }
            }
            addrs.insert(a.addr, here);
            addresses.push(a);
        }
        specs.push(PortSpec {
            name: name.clone(),
            devargs,
            promiscuous: p.promiscuous.unwrap_or(true),
        });
        configs.push(PortConfig {
            name,
            mac,
            mtu,
            up: true,
            addresses,
        });
    }
    Ok((specs, configs))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 32 {
        return Err(format!("{name:?} is longer than 32 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "{name:?} may only contain letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

fn unicast_mac(text: &str) -> Result<Mac, String> {
    let mac = parse_mac(text)
        .ok_or_else(|| format!("{text:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
    if !is_unicast(&mac) {
        return Err(format!("{text:?} is not a unicast MAC address"));
    }
    Ok(mac)
}

fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address"))
}

fn neighbours(raw: Vec<RawNeighbour>, links: &Links) -> Result<Vec<StaticNeighbour>, ConfigError> {
    let mut seen: HashSet<(u16, Ipv4Addr)> = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let at = |f: &str| format!("neighbour[{i}].{f}");
        let port_name = n.port.ok_or_else(|| field(at("port"), "missing"))?;
        let port = links
            .port(&port_name)
            .ok_or_else(|| field(at("port"), format!("no port named {port_name:?}")))?;
        let ip_text = n.ip.ok_or_else(|| field(at("ip"), "missing"))?;
        let ip = ipv4(&ip_text).map_err(|m| field(at("ip"), m))?;
        if let Some(problem) = not_unicast(ip) {
            return Err(field(at("ip"), format!("{ip} is {problem}")));
        }
        if links.is_local(ip) {
            return Err(field(at("ip"), format!("{ip} is one of our own addresses")));
        }
        if !links.on_port(port, ip) {
            return Err(field(
                at("ip"),
                format!("{ip} is not on any subnet of {port_name:?}"),
            ));
        }
        if !seen.insert((port, ip)) {
            return Err(field(
                at("ip"),
                format!("{ip} on {port_name:?} is listed twice"),
            ));
        }
        let mac_text = n.mac.ok_or_else(|| field(at("mac"), "missing"))?;
        let mac = unicast_mac(&mac_text).map_err(|m| field(at("mac"), m))?;
        out.push(StaticNeighbour { port, ip, mac });
    }
    Ok(out)
}

// ----- routes -----

/// The ports' names and addresses, for checking routes and neighbours.
struct Links {
    names: Vec<String>,
    /// (port, address) for every configured address.
    addrs: Vec<(u16, IfAddr)>,
}

impl Links {
    fn new(ports: &[PortConfig]) -> Links {
        Links {
            names: ports.iter().map(|p| p.name.clone()).collect(),
            addrs: ports
                .iter()
                .enumerate()
                .flat_map(|(i, p)| p.addresses.iter().map(move |a| (i as u16, *a)))
                .collect(),
        }
    }

    fn port(&self, name: &str) -> Option<u16> {
        self.names.iter().position(|n| n == name).map(|i| i as u16)
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.addrs.iter().any(|(_, a)| a.addr == ip)
    }

    fn on_port(&self, port: u16, ip: Ipv4Addr) -> bool {
        self.addrs
            .iter()
            .any(|(p, a)| *p == port && a.len < 32 && a.subnet().contains(ip))
    }

    /// Checks `prefix` does not collide with a connected subnet or a local /32.
    fn check_prefix(&self, prefix: Prefix) -> Result<(), String> {
        for (port, a) in &self.addrs {
            if a.len < 32 && a.subnet() == prefix {
                return Err(format!(
                    "{prefix} is the connected subnet of {:?}",
                    self.names[usize::from(*port)]
                ));
            }
            if prefix.length() == 32 && prefix.addr() == a.addr {
                return Err(format!(
                    "{prefix} is our own address on {:?}",
                    self.names[usize::from(*port)]
                ));
            }
        }
        Ok(())
    }

    /// Checks a gateway is a usable host on a connected subnet.
    fn check_gateway(&self, gw: Ipv4Addr) -> Result<(), String> {
        if self.is_local(gw) {
            return Err(format!("gateway {gw} is one of our own addresses"));
        }
        let subnet = self
            .addrs
            .iter()
            .filter(|(_, a)| a.len < 32 && a.subnet().contains(gw))
            .map(|(_, a)| a.subnet())
            .max_by_key(Prefix::length)
            .ok_or_else(|| format!("gateway {gw} is not on any connected subnet"))?;
        if let Some(which) = reserved_in_subnet(gw, &subnet) {
            return Err(format!("gateway {gw} is the {which} address of {subnet}"));
        }
        Ok(())
    }
}

/// Routes collected from the file, in order, with where each came from.
#[derive(Default)]
struct Routes {
    list: Vec<RouteConfig>,
    origin: BTreeMap<Prefix, String>,
}

impl Routes {
    fn add_toml(&mut self, i: usize, r: RawRoute, links: &Links) -> Result<(), ConfigError> {
        let at = |f: &str| format!("route[{i}].{f}");
        let prefix_text = r.prefix.ok_or_else(|| field(at("prefix"), "missing"))?;
        let prefix = parse_prefix(&prefix_text).map_err(|m| field(at("prefix"), m))?;
        links
            .check_prefix(prefix)
            .map_err(|m| field(at("prefix"), m))?;
        let target = match (r.via, r.port, r.kind) {
            (Some(via), None, None) => {
                let gw = ipv4(&via).map_err(|m| field(at("via"), m))?;
                links.check_gateway(gw).map_err(|m| field(at("via"), m))?;
                RouteTarget::Via(gw)
            }
            (None, Some(port), None) => RouteTarget::Port(
                links
                    .port(&port)
                    .ok_or_else(|| field(at("port"), format!("no port named {port:?}")))?,
            ),
            (None, None, Some(kind)) => match kind.as_str() {
                "blackhole" => RouteTarget::Blackhole,
                "unreachable" => RouteTarget::Unreachable,
                other => {
                    return Err(field(
                        at("kind"),
                        format!("{other:?} is not one of \"blackhole\", \"unreachable\""),
                    ))
                }
            },
            _ => {
                return Err(field(
                    format!("route[{i}]"),
                    "exactly one of via, port or kind is required",
                ))
            }
        };
        self.push(prefix, target, format!("route[{i}]"))
            .map_err(|m| field(at("prefix"), m))
    }

    fn add_file(&mut self, text: &str, path: &Path, links: &Links) -> Result<(), ConfigError> {
        for (n, line) in text.lines().enumerate() {
            let err = |message: String| ConfigError::RoutesFile {
                path: path.to_path_buf(),
                line: n + 1,
                message,
            };
            let content = line.split('#').next().unwrap_or("");
            let words: Vec<&str> = content.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            let (prefix, target) = parse_route_words(&words, links).map_err(err)?;
            let origin = format!("{}:{}", path.display(), n + 1);
            self.push(prefix, target, origin).map_err(err)?;
        }
        Ok(())
    }

    fn push(&mut self, prefix: Prefix, target: RouteTarget, origin: String) -> Result<(), String> {
        if let Some(first) = self.origin.get(&prefix) {
            return Err(format!("{prefix} is already routed by {first}"));
        }
        self.origin.insert(prefix, origin);
        self.list.push(RouteConfig { prefix, target });
        Ok(())
    }
}

/// `PREFIX via GW` | `PREFIX dev PORT` | `PREFIX blackhole` | `PREFIX unreachable`.
fn parse_route_words(words: &[&str], links: &Links) -> Result<(Prefix, RouteTarget), String> {
    let prefix = parse_prefix(words[0])?;
    links.check_prefix(prefix)?;
    let target = match &words[1..] {
        ["via", gw] => {
            let gw = ipv4(gw)?;
            links
                .check_gateway(gw)
                .map_err(|m| format!("route {prefix}: {m}"))?;
            RouteTarget::Via(gw)
        }
        ["dev", port] => RouteTarget::Port(
            links
                .port(port)
                .ok_or_else(|| format!("route {prefix}: no port named {port:?}"))?,
        ),
        ["blackhole"] => RouteTarget::Blackhole,
        ["unreachable"] => RouteTarget::Unreachable,
        _ => {
            return Err(format!(
                "expected \"PREFIX via GATEWAY\", \"PREFIX dev PORT\", \"PREFIX blackhole\" or \"PREFIX unreachable\", found {:?}",
                words.join(" ")
            ))
        }
    };
    Ok((prefix, target))
}

/// A route prefix: `a.b.c.d/len` with no host bits, or `default`.
fn parse_prefix(text: &str) -> Result<Prefix, String> {
    if text == "default" {
        return Ok(Prefix::DEFAULT);
    }
    text.parse::<Prefix>().map_err(|e| e.to_string())
}

fn is_pci_address(s: &str) -> bool {
    // [dddd:]bb:dd.f in hex.
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let Some((rest, function)) = s.rsplit_once('.') else {
        return false;
    };
    if !(function.len() == 1 && matches!(function.as_bytes()[0], b'0'..=b'7')) {
        return false;
    }
    match rest.split(':').collect::<Vec<_>>()[..] {
        [domain, bus, dev] => hex(domain, 4) && hex(bus, 2) && hex(dev, 2),
        [bus, dev] => hex(bus, 2) && hex(dev, 2),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
