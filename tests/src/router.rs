//! [`RouterLab`]: the smallest routed topology, used by the topology tests and `aegis-lab demo`.
//!
//! ```text
//!  h1 (10.0.1.2/24)            r1: aegis-dataplane                 h2 (10.0.2.2/24)
//!  eth0 ───── veth ───── veth-h1 [port veth-h1 10.0.1.1/24]
//!                                 [port veth-h2 10.0.2.1/24] veth-h2 ───── veth ───── eth0
//!  default via 10.0.1.1                                             default via 10.0.2.1
//! ```
//!
//! The dataplane runs inside namespace r1 and attaches to r1's veth ends with DPDK
//! `net_af_packet`. r1's kernel has no addresses and does not forward, so every ARP reply,
//! ICMP message and forwarded packet comes from the dataplane. TX checksum offload is turned
//! off on h1's and h2's interfaces (see [`Lab::tx_checksum_off`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::bins::Bins;
use crate::ctl::{Ctl, DropCounters};
use crate::error::{LabError, Result};
use crate::frames::{self, Endpoints};
use crate::hosttoml::{HostConfig, PortSpec};
use crate::lab::{Lab, ProcId};

/// Extra EAL arguments for the lab's dataplane, split on whitespace (e.g. `--log-level=8`).
pub const EAL_EXTRA_ENV: &str = "AEGIS_LAB_EAL_EXTRA";

/// How long the dataplane gets to open its admin socket.
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// The h1 — r1 — h2 lab with a running dataplane.
#[derive(Debug)]
pub struct RouterLab {
    /// The underlying lab (namespaces, processes, temp dir).
    pub lab: Lab,
    /// The binaries in use.
    pub bins: Bins,
    /// `aegisctl` bound to the dataplane's admin socket.
    pub ctl: Ctl,
    /// The dataplane process.
    pub dataplane: ProcId,
    /// The host.toml it was started with.
    pub config: PathBuf,
}

impl RouterLab {
    /// Host 1.
    pub const H1: &'static str = "h1";
    /// Host 2.
    pub const H2: &'static str = "h2";
    /// The router namespace.
    pub const R1: &'static str = "r1";
    /// h1's and h2's interface.
    pub const HOST_IF: &'static str = "eth0";
    /// r1's interface (and dataplane port) towards h1.
    pub const R1_H1_IF: &'static str = "veth-h1";
    /// r1's interface (and dataplane port) towards h2.
    pub const R1_H2_IF: &'static str = "veth-h2";
    /// h1's address.
    pub const H1_IP: &'static str = "10.0.1.2";
    /// h2's address.
    pub const H2_IP: &'static str = "10.0.2.2";
    /// The dataplane's address on h1's subnet (h1's gateway).
    pub const R1_H1_IP: &'static str = "10.0.1.1";
    /// The dataplane's address on h2's subnet (h2's gateway).
    pub const R1_H2_IP: &'static str = "10.0.2.1";

    /// Builds the topology and starts the dataplane from the default binary directory
    /// ([`Bins::locate`]); returns once its admin socket accepts connections.
    pub fn start(prefix: &str) -> Result<RouterLab> {
        RouterLab::start_with(prefix, Bins::locate())
    }

    /// [`start`](Self::start) with explicit binaries.
    pub fn start_with(prefix: &str, bins: Bins) -> Result<RouterLab> {
        RouterLab::start_with_args(prefix, bins, &|_| Vec::new())
    }

    /// [`start_with`](Self::start_with), with extra `aegis-dataplane` arguments made from
    /// the lab once its namespaces exist (e.g. `--controlplane` with a file in the lab dir).
    pub fn start_with_args(
        prefix: &str,
        bins: Bins,
        extra_args: &dyn Fn(&Lab) -> Vec<String>,
    ) -> Result<RouterLab> {
        RouterLab::start_custom(prefix, bins, extra_args, &|_| {}, "")
    }

    /// [`start_with_args`](Self::start_with_args) with the host.toml changed by `edit` and
    /// `extra_toml` appended to it (e.g. a `[nat]` section).
    pub fn start_custom(
        prefix: &str,
        bins: Bins,
        extra_args: &dyn Fn(&Lab) -> Vec<String>,
        edit: &dyn Fn(&mut HostConfig),
        extra_toml: &str,
    ) -> Result<RouterLab> {
        let dataplane_bin = bins.dataplane()?;
        let ctl_bin = bins.aegisctl()?;
        let mut lab = Lab::new(prefix)?;
        RouterLab::build_topology(&mut lab)?;

        let socket = lab.path("r1.sock");
        if socket.as_os_str().len() > 100 {
            return Err(LabError::InvalidName {
                kind: "admin socket path",
                name: socket.display().to_string(),
                reason: "longer than a unix socket path may be (set TMPDIR to a shorter dir)",
            });
        }
        let mut config = RouterLab::host_config(&lab.id().ns(Self::R1), &socket);
        edit(&mut config);
        let config_path = lab.path("host.toml");
        let text = format!("{}{extra_toml}", config.render());
        std::fs::write(&config_path, text).map_err(|source| LabError::Io {
            what: "write",
            path: config_path.clone(),
            source,
        })?;

        let config_arg = config_path.to_string_lossy().into_owned();
        let extra = extra_args(&lab);
        let mut args = vec!["--config", config_arg.as_str()];
        args.extend(extra.iter().map(String::as_str));
        let dataplane = lab.spawn_env(
            Self::R1,
            "aegis-dataplane",
            &dataplane_bin.to_string_lossy(),
            &args,
            &[("RUST_BACKTRACE", "1")],
        )?;
        lab.wait_for_socket(&socket, START_LIMIT, Some(dataplane))?;
        Ok(RouterLab {
            lab,
            bins,
            ctl: Ctl::new(ctl_bin, socket),
            dataplane,
            config: config_path,
        })
    }

    /// The host.toml of r1's dataplane: two `net_af_packet` ports on r1's veths with the
    /// router addresses, adaptive polling, the lab EAL arguments (plus `$AEGIS_LAB_EAL_EXTRA`).
    pub fn host_config(file_prefix: &str, admin_socket: &std::path::Path) -> HostConfig {
        let mut eal_args = HostConfig::lab_eal_args(file_prefix, allowed_cpus().as_deref());
        if let Ok(extra) = std::env::var(EAL_EXTRA_ENV) {
            eal_args.extend(extra.split_whitespace().map(str::to_string));
        }
        HostConfig {
            eal_args,
            poll_mode: "adaptive".into(),
            burst: 128,
            mbufs: 8191,
            admin_socket: admin_socket.to_path_buf(),
            diag_listen: None,
            ports: vec![
                PortSpec {
                    name: Self::R1_H1_IF.into(),
                    devargs: format!("net_af_packet0,iface={}", Self::R1_H1_IF),
                    addresses: vec![format!("{}/24", Self::R1_H1_IP)],
                },
                PortSpec {
                    name: Self::R1_H2_IF.into(),
                    devargs: format!("net_af_packet1,iface={}", Self::R1_H2_IF),
                    addresses: vec![format!("{}/24", Self::R1_H2_IP)],
                },
            ],
            routes: Vec::new(),
        }
    }

    /// Waits until h1 and h2 reach each other through the dataplane (ARP resolved both ways).
    pub fn wait_forwarding(&mut self, limit: Duration) -> Result<()> {
        self.lab.wait_ping(Self::H1, Self::H2_IP, limit)?;
        self.lab.wait_ping(Self::H2, Self::H1_IP, limit)?;
        self.check_alive("forwarding")
    }

    /// Fails with the dataplane's log tail if it is no longer running.
    pub fn check_alive(&mut self, during: &str) -> Result<()> {
        match self.lab.exited_error(self.dataplane, during) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The dataplane's log so far.
    pub fn dataplane_log(&mut self) -> String {
        self.lab.proc(self.dataplane).log()
    }

    /// Drop counters by reason.
    pub fn drop_counters(&self) -> Result<DropCounters> {
        self.ctl.drop_counters()
    }

    /// Addresses for hand-built frames sent from h1 (towards h2, through the router).
    pub fn h1_endpoints(&self) -> Result<Endpoints> {
        let mac = |host, ifname| -> Result<[u8; 6]> {
            let text = self.lab.mac(host, ifname)?;
            frames::parse_mac(&text).map_err(|detail| LabError::Parse {
                cmd: format!("ip -o link show dev {ifname}"),
                detail,
                output: text,
            })
        };
        Ok(Endpoints {
            src_mac: mac(Self::H1, Self::HOST_IF)?,
            dst_mac: mac(Self::R1, Self::R1_H1_IF)?,
            src_ip: parse_ip(Self::H1_IP)?,
            dst_ip: parse_ip(Self::H2_IP)?,
            router_ip: parse_ip(Self::R1_H1_IP)?,
        })
    }

    /// Builds the namespaces, links, addresses and routes in `lab` — everything but the
    /// dataplane. Also used to run the same checks with r1's Linux kernel as the router.
    pub fn build_topology(lab: &mut Lab) -> Result<()> {
        build_topology(lab)
    }
}

fn build_topology(lab: &mut Lab) -> Result<()> {
    use RouterLab as R;
    for h in [R::H1, R::H2, R::R1] {
        lab.host(h)?;
    }
    lab.link(R::H1, R::HOST_IF, R::R1, R::R1_H1_IF)?;
    lab.link(R::H2, R::HOST_IF, R::R1, R::R1_H2_IF)?;
    for (h, ip, gw) in [
        (R::H1, R::H1_IP, R::R1_H1_IP),
        (R::H2, R::H2_IP, R::R1_H2_IP),
    ] {
        lab.addr(h, R::HOST_IF, &format!("{ip}/24"))?;
        lab.default_route(h, gw)?;
        lab.tx_checksum_off(h, R::HOST_IF)?;
        // Hosts answer every ICMP error-triggering probe (traceroute sends several at once).
        lab.sysctl(h, "net.ipv4.icmp_ratelimit", "0")?;
    }
    // r1's kernel must stay out of the way: no addresses, no forwarding.
    lab.forwarding(R::R1, false)?;
    Ok(())
}

/// The CPUs this process may run on, as the kernel lists them ("0-1").
pub(crate) fn allowed_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

fn parse_ip(s: &str) -> Result<std::net::Ipv4Addr> {
    s.parse().map_err(|_| LabError::InvalidName {
        kind: "IPv4 address",
        name: s.to_string(),
        reason: "not a dotted quad",
    })
}
