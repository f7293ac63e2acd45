//! [`NorthSouthLab`]: the east-west lab ([`EastWestLab`]: three compute hosts, VMs in VPCs
//! blue and red) plus a gateway group of two Aegis gateways fed by the same control plane
//! (three with [`NorthSouthLab::start_with_gateways`]: g3 added), and a host on the
//! external network — VMs reach the outside over the overlay through the group's VRRP
//! master.
//!
//! ```text
//!   fabric: br-ul (underlay)   br-mg (management)   br-ext (external network 203.0.113.0/24)
//!   g1: ul0 10.88.0.21/24 (DPDK)  ext0 203.0.113.2/24 (DPDK)  mg0 10.99.0.21 (kernel)
//!   g2: ul0 10.88.0.22/24 (DPDK)  ext0 203.0.113.3/24 (DPDK)  mg0 10.99.0.22 (kernel)
//!   g3: ul0 10.88.0.23/24 (DPDK)  ext0 203.0.113.4/24 (DPDK)  mg0 10.99.0.23 (kernel), if any
//!   x1: eth0 203.0.113.100/24 (kernel): the outside world
//! ```
//!
//! Declared through `aegisctl` like the rest: hosts g1 and g2 (role gateway), external
//! network `ext`, gateway group `gw` (members g1:200 and g2:100 — g1:200, g2:150 and g3:100
//! with three — external address
//! 203.0.113.10, VRID 71, tunnel address 10.88.0.100), source NAT of VPC blue to
//! 203.0.113.10, b1's floating IP 203.0.113.20, and security group `sg-public` (TCP 7000
//! and ICMP from anywhere) added to b1. VPC red has no gateway: it reaches nothing outside.
//!
//! The gateways' VRRP comes from the control plane alone: the group is created with
//! `--advert-interval-ms` ([`advert_ms`], VRRPv3) and `--vrrp-transport unicast`, each
//! gateway Host with its own external address (`--address ext0=...`), and each gateway's
//! dataplane builds the sync group itself: `gw-tunnel` (ul0, VRID 71, the tunnel address,
//! unicast to the other gateways' underlay addresses) and `gw-external` (ext0, VRID 71,
//! 203.0.113.10 and the floating IP, unicast to their external addresses), with the member's
//! priority. Each gateway's host.toml names only its ports (with their addresses), `[nat]
//! outside_port = "ext0"` and session sync on `ul0` (following `gw-external`, the default);
//! no keepalived.conf. The control plane also chooses the group's sync members (host.toml's
//! `[sync] peers`, every other gateway, apply only until it has chosen).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::Bins;
use crate::ctl::Ctl;
use crate::eastwest::{
    self, EastWestLab, CP_ADDR, DEFAULT_GROUP, FABRIC, HEARTBEAT, MGMT_BRIDGE, MGMT_IF,
    UNDERLAY_BRIDGE, UNDERLAY_IF,
};
use crate::error::{LabError, Result};
use crate::hosttoml::PortSpec;
use crate::lab::ProcId;
use crate::router::{RouterLab, START_LIMIT};
use crate::wait::{self, Poll};

/// The gateway hosts (the first two unless the lab is started with three).
pub const GATEWAYS: [&str; 3] = ["g1", "g2", "g3"];

/// VRRP and member priority of gateway `i` of `n`: 200/100 for a pair, 200/150/100 for three.
pub fn priority(i: usize, n: usize) -> u8 {
    match (i, n) {
        (0, _) => 200,
        (1, 3) => 150,
        _ => 100,
    }
}
/// The external host.
pub const EXTERNAL_HOST: &str = "x1";
/// Its address.
pub const EXTERNAL_IP: &str = "203.0.113.100";
/// The external bridge in [`FABRIC`].
pub const EXTERNAL_BRIDGE: &str = "br-ext";
/// The gateways' external port.
pub const EXTERNAL_IF: &str = "ext0";
/// The gateway group.
pub const GROUP: &str = "gw";
/// Its tunnel address on the underlay (a VRRP address of `gw-tunnel`).
pub const TUNNEL_IP: &str = "10.88.0.100";
/// The group's VRID (both generated instances).
pub const VRID: &str = "71";
/// VPC blue's source NAT address.
pub const SNAT_IP: &str = "203.0.113.10";
/// b1's floating IP.
pub const FLOATING_IP: &str = "203.0.113.20";
/// The VM with the floating IP.
pub const FIP_VM: &str = "b1";
/// The security group that opens b1 to the outside (TCP 7000, ICMP).
pub const PUBLIC_GROUP: &str = "sg-public";
/// TCP port b1 serves the outside on.
pub const PUBLIC_PORT: &str = "7000";
/// VRRP advertisement interval, milliseconds, unless `$AEGIS_LAB_ADVERT_MS` gives another.
pub const ADVERT_MS: u32 = 100;

/// The advertisement interval in use: [`ADVERT_MS`], or `$AEGIS_LAB_ADVERT_MS` (10..=25500,
/// in steps of 10: VRRPv3 centiseconds) to measure a takeover at another interval.
pub fn advert_ms() -> u32 {
    std::env::var("AEGIS_LAB_ADVERT_MS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|ms| (10..=25_500).contains(ms) && ms % 10 == 0)
        .unwrap_or(ADVERT_MS)
}

/// One gateway.
#[derive(Debug)]
pub struct GatewayHost {
    /// Its namespace and control-plane host name.
    pub host: &'static str,
    /// `aegisctl dp` on its admin socket.
    pub ctl: Ctl,
    /// The running dataplane, if any.
    pub proc: Option<ProcId>,
    config: PathBuf,
    socket: PathBuf,
    starts: u32,
}

/// The north-south lab (see the module doc).
#[derive(Debug)]
pub struct NorthSouthLab {
    /// The east-west lab it extends (its `lab` holds every namespace and process).
    pub ew: EastWestLab,
    /// g1 (priority 200) and g2 (100); or g1, g2 (150) and g3 (100).
    pub gws: Vec<GatewayHost>,
    dataplane: PathBuf,
}

/// Gateway `i`'s underlay address.
pub fn gateway_underlay(i: usize) -> String {
    format!("10.88.0.{}", 21 + i)
}

/// Gateway `i`'s management address (kernel; the control plane dials its diagnostics).
pub fn gateway_mgmt(i: usize) -> String {
    format!("10.99.0.{}", 21 + i)
}

/// Gateway `i`'s own address on the external network.
pub fn gateway_external(i: usize) -> String {
    format!("203.0.113.{}", 2 + i)
}

impl NorthSouthLab {
    /// Starts the east-west lab, adds the gateways and the external host, declares the
    /// north-south objects, and returns once g1 is MASTER, g2 BACKUP with a complete
    /// replica, every dataplane applied the control plane's revision and b3 reaches x1.
    pub fn start(prefix: &str, bins: Bins) -> Result<NorthSouthLab> {
        Self::start_with_gateways(prefix, bins, 2)
    }

    /// [`NorthSouthLab::start`] with `n` gateways (2 or 3); with three it also waits until
    /// g3 is BACKUP.
    pub fn start_with_gateways(prefix: &str, bins: Bins, n: usize) -> Result<NorthSouthLab> {
        let n = n.clamp(2, GATEWAYS.len());
        let dataplane = bins.dataplane()?;
        let aegisctl = bins.aegisctl()?;
        let mut ew = EastWestLab::start_with(prefix, bins)?;
        build_topology(&mut ew, n)?;
        let key = ew.lab.path("sync.key");
        write(&key, "aegis-lab north-south gateway group shared secret\n")?;
        let mut gws = Vec::new();
        for (i, host) in GATEWAYS.into_iter().take(n).enumerate() {
            let socket = ew.lab.path(&format!("{host}.sock"));
            let others: Vec<String> = (0..n)
                .filter(|&o| o != i)
                .map(|o| format!("\"{}\"", gateway_underlay(o)))
                .collect();
            let mut hc = RouterLab::host_config(&ew.lab.id().ns(host), &socket);
            hc.routes.clear();
            hc.diag_listen = Some(format!("{}:{}", gateway_mgmt(i), eastwest::DIAG_PORT));
            hc.ports = vec![
                PortSpec {
                    name: UNDERLAY_IF.into(),
                    devargs: format!("net_af_packet0,iface={UNDERLAY_IF}"),
                    addresses: vec![format!("{}/24", gateway_underlay(i))],
                },
                PortSpec {
                    name: EXTERNAL_IF.into(),
                    devargs: format!("net_af_packet1,iface={EXTERNAL_IF}"),
                    addresses: vec![format!("{}/24", gateway_external(i))],
                },
            ];
            let text = format!(
                "{}\n[nat]\noutside_port = \"{EXTERNAL_IF}\"\n\n\
                 [sync]\nport = \"{UNDERLAY_IF}\"\npeers = [{}]\nkey_file = \"{}\"\n",
                hc.render(),
                others.join(", "),
                key.display(),
            );
            let config = ew.lab.path(&format!("{host}-host.toml"));
            write(&config, &text)?;
            gws.push(GatewayHost {
                host,
                ctl: Ctl::new(aegisctl.clone(), socket.clone()),
                proc: None,
                config,
                socket,
                starts: 0,
            });
        }
        let mut ns = NorthSouthLab { ew, gws, dataplane };
        for args in declarations(n) {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            ns.ew.cp(&argv)?;
        }
        ns.ew
            .set_port_groups(FIP_VM, &[DEFAULT_GROUP, PUBLIC_GROUP])?;
        ns.start_gateway(0)?;
        ns.wait_state(0, "MASTER", Duration::from_secs(15))?;
        ns.start_gateway(1)?;
        ns.wait_state(1, "BACKUP", Duration::from_secs(15))?;
        ns.wait_synced(1, Duration::from_secs(10))?;
        if n == 3 {
            ns.start_gateway(2)?;
            ns.wait_state(2, "BACKUP", Duration::from_secs(15))?;
        }
        ns.wait_converged(eastwest::CONVERGE)?;
        ns.ew
            .wait_ping("b3", EXTERNAL_IP, Duration::from_secs(20))?;
        Ok(ns)
    }

    /// Starts (or restarts) gateway `i`'s dataplane, following the control plane, and
    /// waits for its admin socket.
    pub fn start_gateway(&mut self, i: usize) -> Result<()> {
        let g = &mut self.gws[i];
        g.starts += 1;
        let name = format!("dp-{}-{}", g.host, g.starts);
        let cache = self.ew.lab.path(&format!("{}-cache.json", g.host));
        let config = g.config.to_string_lossy().into_owned();
        let cache = cache.to_string_lossy().into_owned();
        let host = g.host;
        let _ = std::fs::remove_file(&g.socket);
        let args = [
            "--config",
            config.as_str(),
            "--controlplane",
            CP_ADDR,
            "--host",
            host,
            "--controlplane-cache",
            cache.as_str(),
            "--heartbeat-interval",
            HEARTBEAT,
        ];
        let id = self.ew.lab.spawn_env(
            host,
            &name,
            &self.dataplane.to_string_lossy(),
            &args,
            &[("RUST_BACKTRACE", "1"), ("RUST_LOG", "info")],
        )?;
        self.gws[i].proc = Some(id);
        let socket = self.gws[i].socket.clone();
        self.ew.lab.wait_for_socket(&socket, START_LIMIT, Some(id))
    }

    /// `kill -9` of gateway `i`'s dataplane; returns when the process is gone.
    pub fn kill9(&mut self, i: usize) -> Result<Instant> {
        let Some(id) = self.gws[i].proc.take() else {
            return Ok(Instant::now());
        };
        self.ew.lab.kill9(id)
    }

    /// Gateway `i`'s `show sync --output json`.
    pub fn sync(&self, i: usize) -> Result<Value> {
        self.gws[i].ctl.json(&["show", "sync"])
    }

    /// Gateway `i`'s `show vrrp --output json`.
    pub fn vrrp(&self, i: usize) -> Result<Value> {
        self.gws[i].ctl.json(&["show", "vrrp"])
    }

    /// The state of gateway `i`'s instances when they all agree, else `MIXED [...]`.
    pub fn state(&self, i: usize) -> Result<String> {
        self.gws[i].ctl.vrrp_state()
    }

    /// Waits until every instance of gateway `i` is in `state`; returns the time it took.
    pub fn wait_state(&mut self, i: usize, state: &str, limit: Duration) -> Result<Duration> {
        let g = &self.gws[i];
        g.ctl
            .wait_vrrp_state(&mut self.ew.lab, g.proc, g.host, state, limit)
    }

    /// Waits until gateway `i` reports a complete replica.
    pub fn wait_synced(&self, i: usize, limit: Duration) -> Result<()> {
        self.gws[i].ctl.wait_synced(limit)
    }

    /// Waits until the compute hosts and the running gateways applied the control plane's
    /// revision.
    pub fn wait_converged(&mut self, limit: Duration) -> Result<u64> {
        let revision = self.ew.wait_converged(limit)?;
        let running: Vec<&str> = self
            .gws
            .iter()
            .filter(|g| g.proc.is_some())
            .map(|g| g.host)
            .collect();
        wait::until(
            "the gateways to apply the control plane's revision",
            limit,
            Duration::from_millis(100),
            || {
                let (rev, hosts) = match self.ew.host_status() {
                    Ok(s) => s,
                    Err(e) => return Poll::Pending(e.to_string()),
                };
                let behind: Vec<String> = running
                    .iter()
                    .filter_map(|h| match hosts.iter().find(|s| s.name == *h) {
                        Some(s) if s.converged_to(rev) => None,
                        Some(s) => Some(format!(
                            "{h}: applied {}, error {:?}",
                            s.applied_revision, s.apply_error
                        )),
                        None => Some(format!("{h}: not in host list")),
                    })
                    .collect();
                if behind.is_empty() && rev >= revision {
                    Poll::Ready(rev)
                } else {
                    Poll::Pending(behind.join("; "))
                }
            },
        )
    }

    /// Gateway `i`'s dataplane log.
    pub fn log(&mut self, i: usize) -> String {
        match self.gws[i].proc {
            Some(id) => self.ew.lab.proc(id).log(),
            None => String::new(),
        }
    }
}

/// The bridge, namespaces and links the lab adds to the east-west lab's.
fn build_topology(ew: &mut EastWestLab, n: usize) -> Result<()> {
    let lab = &mut ew.lab;
    lab.ip(FABRIC, &["link", "add", EXTERNAL_BRIDGE, "type", "bridge"])?;
    lab.ip(FABRIC, &["link", "set", EXTERNAL_BRIDGE, "up"])?;
    for (i, g) in GATEWAYS.into_iter().take(n).enumerate() {
        lab.host(g)?;
        for (ifname, br, tag) in [
            (UNDERLAY_IF, UNDERLAY_BRIDGE, "ul"),
            (MGMT_IF, MGMT_BRIDGE, "mg"),
            (EXTERNAL_IF, EXTERNAL_BRIDGE, "ex"),
        ] {
            let port = format!("{tag}-{g}");
            lab.link(g, ifname, FABRIC, &port)?;
            lab.ip(FABRIC, &["link", "set", &port, "master", br])?;
        }
        lab.addr(g, MGMT_IF, &format!("{}/24", gateway_mgmt(i)))?;
        lab.forwarding(g, false)?;
    }
    lab.host(EXTERNAL_HOST)?;
    lab.link(EXTERNAL_HOST, "eth0", FABRIC, "ex-x1")?;
    lab.ip(FABRIC, &["link", "set", "ex-x1", "master", EXTERNAL_BRIDGE])?;
    lab.addr(EXTERNAL_HOST, "eth0", &format!("{EXTERNAL_IP}/24"))?;
    lab.tx_checksum_off(EXTERNAL_HOST, "eth0")?;
    Ok(())
}

/// The `aegisctl` arguments that declare the north-south objects with `n` gateways, in
/// order.
pub fn declarations(n: usize) -> Vec<Vec<String>> {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for (i, g) in GATEWAYS.into_iter().take(n).enumerate() {
        out.push(words(&[
            "host",
            "create",
            g,
            "--role",
            "gateway",
            "--underlay",
            &gateway_underlay(i),
            "--management",
            &gateway_mgmt(i),
            "--address",
            &format!("{EXTERNAL_IF}={}/24", gateway_external(i)),
        ]));
    }
    out.push(words(&[
        "external-network",
        "create",
        "ext",
        "--cidr",
        "203.0.113.0/24",
        "--gateway",
        "203.0.113.1",
    ]));
    let mut group = words(&[
        "gateway-group",
        "create",
        GROUP,
        "--external-network",
        "ext",
    ]);
    for (i, g) in GATEWAYS.into_iter().take(n).enumerate() {
        group.push("--member".into());
        group.push(format!("{g}:{}", priority(i, n)));
    }
    group.extend(words(&[
        "--external-address",
        SNAT_IP,
        "--vrid",
        VRID,
        "--tunnel-address",
        TUNNEL_IP,
        "--advert-interval-ms",
        &advert_ms().to_string(),
        "--vrrp-transport",
        "unicast",
    ]));
    out.push(group);
    out.push(words(&[
        "snat-rule",
        "create",
        "blue-out",
        "--vpc",
        "blue",
        "--gateway-group",
        GROUP,
        "--external-address",
        SNAT_IP,
    ]));
    out.push(words(&[
        "floating-ip",
        "create",
        "b1-fip",
        "--external-network",
        "ext",
        "--external-address",
        FLOATING_IP,
        "--port",
        FIP_VM,
    ]));
    let tcp = format!(
        "id=public-tcp,dir=ingress,proto=tcp,ports={PUBLIC_PORT},remote=0.0.0.0/0,prio=10,action=allow"
    );
    out.push(words(&[
        "security-group",
        "create",
        PUBLIC_GROUP,
        "--rule",
        &tcp,
        "--rule",
        "id=public-icmp,dir=ingress,proto=icmp,remote=0.0.0.0/0,prio=10,action=allow",
    ]));
    out
}

fn write(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: "write",
        path: path.clone(),
        source,
    })
}
