//! [`GatewayPairLab`]: Aegis gateways (a pair, or a group of three) in VRRP with NAT and
//! session sync between an inside host and an external one, to prove that a takeover keeps
//! every connection. gw3 (in a group of three) is 10.60.0.4 / 203.0.113.4, priority 100.
//!
//! ```text
//!                  inside bridge (sw/brin)                    outside bridge (sw/brout)
//!  h1 10.60.0.10 ─┐                                         ┌─ h2 203.0.113.100
//!     10.60.0.11  ├── gw1 in0 10.60.0.2   gw1 out0 203.0.113.2 ──┤
//!  gw 10.60.0.1   └── gw2 in0 10.60.0.3   gw2 out0 203.0.113.3 ──┘
//! ```
//!
//! - VRRP (v3, sync group `G_GW`): `VI_IN` (VRID 60, 10.60.0.1 — h1's default gateway) on
//!   `in0`, `VI_OUT` (VRID 61, 203.0.113.1, the source NAT address 203.0.113.50 and the
//!   floating IP 203.0.113.60) on `out0`; gw1 has priority 200, gw2 150 (100 in a pair),
//!   gw3 100; all preempt.
//! - NAT: h1's 10.60.0.10 leaves as 203.0.113.50 (endpoint-dependent source NAT);
//!   10.60.0.11 has the floating IP 203.0.113.60.
//! - Session sync on `in0` between the gateways' own addresses (each lists the others as
//!   peers), following `VI_OUT`.
//!
//! The gateways' kernels have no address on their ports: everything (ARP, VRRP, sync,
//! NAT) is served by the dataplanes. Each runs one worker, or several
//! ([`GatewayPairLab::start_with_workers`]: NAT spread over the workers).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::Bins;
use crate::ctl::Ctl;
use crate::error::{LabError, Result};
use crate::hosttoml::{HostConfig, PortSpec};
use crate::lab::{Lab, ProcId};
use crate::router::{EAL_EXTRA_ENV, START_LIMIT};

/// One gateway of the pair.
#[derive(Debug)]
pub struct Gateway {
    /// Its namespace.
    pub host: String,
    /// `aegisctl dp` on its admin socket.
    pub ctl: Ctl,
    /// The running dataplane, if any.
    pub proc: Option<ProcId>,
    config: PathBuf,
    socket: PathBuf,
    starts: u32,
}

/// The gateway-pair lab.
#[derive(Debug)]
pub struct GatewayPairLab {
    /// Namespaces, processes, temp dir.
    pub lab: Lab,
    /// gw1 (priority 200), gw2, and gw3 in a group of three.
    pub gws: Vec<Gateway>,
    dataplane: PathBuf,
}

impl GatewayPairLab {
    /// The inside host.
    pub const H1: &'static str = "h1";
    /// The external host.
    pub const H2: &'static str = "h2";
    /// The switch (both bridges).
    pub const SW: &'static str = "sw";
    /// h1's address translated by source NAT.
    pub const H1_SNAT_SRC: &'static str = "10.60.0.10";
    /// h1's address with the floating IP.
    pub const H1_FIP_SRC: &'static str = "10.60.0.11";
    /// The inside virtual address (h1's gateway).
    pub const INSIDE_VIP: &'static str = "10.60.0.1";
    /// The source NAT address.
    pub const SNAT_IP: &'static str = "203.0.113.50";
    /// The floating IP of 10.60.0.11.
    pub const FLOATING_IP: &'static str = "203.0.113.60";
    /// h2's address.
    pub const H2_IP: &'static str = "203.0.113.100";
    /// Advertisement interval, milliseconds, unless `$AEGIS_LAB_ADVERT_MS` gives another
    /// ([`GatewayPairLab::advert_ms`]).
    pub const ADVERT_MS: u32 = 100;

    /// The advertisement interval in use: [`Self::ADVERT_MS`], or `$AEGIS_LAB_ADVERT_MS`
    /// (10..=25500 in steps of 10), read like the north-south lab's
    /// ([`crate::northsouth::advert_ms`]).
    pub fn advert_ms() -> u32 {
        crate::northsouth::advert_ms()
    }

    /// Builds both bridges and hosts and starts both gateways; returns once gw1 is master,
    /// gw2 backup with a complete replica, and h1 reaches h2 through the pair.
    pub fn start(prefix: &str, bins: Bins) -> Result<GatewayPairLab> {
        Self::start_group(prefix, bins, 2)
    }

    /// [`GatewayPairLab::start`] with `size` gateways (2 or 3): gw1 master, every other one
    /// backup with a complete replica.
    pub fn start_group(prefix: &str, bins: Bins, size: u8) -> Result<GatewayPairLab> {
        Self::start_with_workers(prefix, bins, size, 1)
    }

    /// [`GatewayPairLab::start_group`] with `workers` dataplane workers per gateway
    /// (`eal.worker_lcores` = 1..=workers, every lcore allowed on all of this process's
    /// CPUs: the workers poll adaptively, so they share a small machine; `qpairs` on the
    /// ports so each worker has its queues).
    pub fn start_with_workers(
        prefix: &str,
        bins: Bins,
        size: u8,
        workers: u8,
    ) -> Result<GatewayPairLab> {
        let dataplane = bins.dataplane()?;
        let ctl_bin = bins.aegisctl()?;
        let mut lab = Lab::new(prefix)?;
        lab.set_exec_limit(Duration::from_secs(60));
        Self::build_topology(&mut lab, size)?;

        let key = lab.path("sync.key");
        write(&key, "aegis-lab gateway group 1 shared secret\n")?;
        let mut gws = Vec::new();
        let priorities: &[u8] = if size >= 3 {
            &[200, 150, 100]
        } else {
            &[200, 100]
        };
        for n in 1..=size {
            let host = format!("gw{n}");
            lab.forwarding(&host, false)?;
            let socket = lab.path(&format!("{host}.sock"));
            let kconf = lab.path(&format!("{host}-keepalived.conf"));
            write(&kconf, &keepalived_conf(priorities[usize::from(n - 1)]))?;
            let mut eal_args = HostConfig::lab_eal_args(&lab.id().ns(&host), None);
            let qpairs = if workers > 1 {
                let cpus = crate::router::allowed_cpus().unwrap_or_else(|| "0".into());
                let lcores: Vec<String> = (0..=workers).map(|l| format!("{l}@({cpus})")).collect();
                eal_args.extend(["--lcores".to_string(), lcores.join(",")]);
                format!(",qpairs={workers}")
            } else {
                String::new()
            };
            if let Ok(extra) = std::env::var(EAL_EXTRA_ENV) {
                eal_args.extend(extra.split_whitespace().map(str::to_string));
            }
            let hc = HostConfig {
                eal_args,
                poll_mode: "adaptive".into(),
                burst: 128,
                mbufs: if workers > 1 { 8191 } else { 4095 },
                admin_socket: socket.clone(),
                diag_listen: None,
                ports: vec![
                    PortSpec {
                        name: "in0".into(),
                        devargs: format!("net_af_packet0,iface=in0{qpairs}"),
                        addresses: vec![format!("10.60.0.{}/24", n + 1)],
                    },
                    PortSpec {
                        name: "out0".into(),
                        devargs: format!("net_af_packet1,iface=out0{qpairs}"),
                        addresses: vec![format!("203.0.113.{}/24", n + 1)],
                    },
                ],
                routes: Vec::new(),
            };
            let peers: Vec<String> = (1..=size)
                .filter(|&m| m != n)
                .map(|m| format!("\"{}\"", Self::sync_address(usize::from(m - 1))))
                .collect();
            let peers = peers.join(", ");
            let mut rendered = hc.render();
            if workers > 1 {
                let list: Vec<String> = (1..=workers).map(|l| l.to_string()).collect();
                let eal = format!("[eal]\nworker_lcores = [{}]\n", list.join(", "));
                rendered = rendered.replacen("[eal]\n", &eal, 1);
            }
            let text = format!(
                "{}\n[vrrp]\nkeepalived_conf = \"{}\"\n\n\
                 [nat]\noutside_port = \"out0\"\n\
                 [[nat.snat]]\nsource = \"{}/32\"\naddress = \"{}\"\n\
                 [[nat.floating_ip]]\ninside = \"{}\"\noutside = \"{}\"\n\n\
                 [sync]\nport = \"in0\"\npeers = [{peers}]\nkey_file = \"{}\"\n\
                 vrrp_instance = \"VI_OUT\"\n",
                rendered,
                kconf.display(),
                Self::H1_SNAT_SRC,
                Self::SNAT_IP,
                Self::H1_FIP_SRC,
                Self::FLOATING_IP,
                key.display(),
            );
            let config = lab.path(&format!("{host}-host.toml"));
            write(&config, &text)?;
            gws.push(Gateway {
                ctl: Ctl::new(ctl_bin.clone(), socket.clone()),
                host,
                proc: None,
                config,
                socket,
                starts: 0,
            });
        }
        let mut g = GatewayPairLab {
            lab,
            gws,
            dataplane,
        };
        g.start_gateway(0)?;
        g.wait_state(0, "MASTER", Duration::from_secs(10))?;
        for i in 1..usize::from(size) {
            g.start_gateway(i)?;
            g.wait_state(i, "BACKUP", Duration::from_secs(10))?;
            g.wait_synced(i, Duration::from_secs(10))?;
        }
        g.lab
            .wait_ping(Self::H1, Self::H2_IP, Duration::from_secs(20))?;
        Ok(g)
    }

    /// The lab's namespaces and links without any gateway software: the switch with both
    /// bridges, h1 and h2 addressed (h1's default gateway is [`Self::INSIDE_VIP`]), and
    /// `size` gateway namespaces `gw1`.. with `in0` on the inside bridge and `out0` on the
    /// outside one, unaddressed. Shared with the kernel-gateway comparison
    /// ([`crate::kernelgw`]), so both measure the same topology.
    pub fn build_topology(lab: &mut Lab, size: u8) -> Result<()> {
        lab.host(Self::SW)?;
        for br in ["brin", "brout"] {
            lab.ip(Self::SW, &["link", "add", br, "type", "bridge"])?;
            lab.ip(Self::SW, &["link", "set", br, "up"])?;
        }
        let attach = |lab: &mut Lab, host: &str, ifname: &str, sw_port: &str, br: &str| {
            lab.link(host, ifname, Self::SW, sw_port)?;
            lab.ip(Self::SW, &["link", "set", sw_port, "master", br])
        };
        lab.host(Self::H1)?;
        attach(lab, Self::H1, "eth0", "ph1", "brin")?;
        lab.addr(Self::H1, "eth0", "10.60.0.10/24")?;
        lab.addr(Self::H1, "eth0", "10.60.0.11/24")?;
        lab.default_route(Self::H1, Self::INSIDE_VIP)?;
        lab.tx_checksum_off(Self::H1, "eth0")?;
        lab.host(Self::H2)?;
        attach(lab, Self::H2, "eth0", "ph2", "brout")?;
        lab.addr(Self::H2, "eth0", &format!("{}/24", Self::H2_IP))?;
        lab.tx_checksum_off(Self::H2, "eth0")?;
        for n in 1..=size {
            let host = format!("gw{n}");
            lab.host(&host)?;
            attach(lab, &host, "in0", &format!("g{n}in"), "brin")?;
            attach(lab, &host, "out0", &format!("g{n}out"), "brout")?;
        }
        Ok(())
    }

    /// Starts (or restarts) gateway `i`'s dataplane and waits for its admin socket.
    pub fn start_gateway(&mut self, i: usize) -> Result<()> {
        let g = &mut self.gws[i];
        g.starts += 1;
        let name = format!("{}-dp{}", g.host, g.starts);
        let config = g.config.to_string_lossy().into_owned();
        let _ = std::fs::remove_file(&g.socket);
        let id = self.lab.spawn_env(
            &g.host.clone(),
            &name,
            &self.dataplane.to_string_lossy(),
            &["--config", config.as_str()],
            &[("RUST_BACKTRACE", "1"), ("RUST_LOG", "info")],
        )?;
        let socket = g.socket.clone();
        self.gws[i].proc = Some(id);
        self.lab.wait_for_socket(&socket, START_LIMIT, Some(id))
    }

    /// Gateway `i`'s sync address (its `in0` address).
    pub fn sync_address(i: usize) -> String {
        format!("10.60.0.{}", i + 2)
    }

    /// `kill -9` of gateway `i`'s dataplane; returns when the process is gone, with the
    /// instant of the signal (the exit can take tens of milliseconds, while the backup's
    /// master-down timer already runs).
    pub fn kill9(&mut self, i: usize) -> Result<Instant> {
        let Some(id) = self.gws[i].proc.take() else {
            return Ok(Instant::now());
        };
        self.lab.kill9(id)
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
            .wait_vrrp_state(&mut self.lab, g.proc, &g.host, state, limit)
    }

    /// Waits until gateway `i` reports a complete replica.
    pub fn wait_synced(&self, i: usize, limit: Duration) -> Result<()> {
        self.gws[i].ctl.wait_synced(limit)
    }

    /// Gateway `i`'s dataplane log.
    pub fn log(&mut self, i: usize) -> String {
        match self.gws[i].proc {
            Some(id) => self.lab.proc(id).log(),
            None => String::new(),
        }
    }
}

/// Both gateways' keepalived.conf: the two instances in one sync group, v3 at
/// [`GatewayPairLab::advert_ms`] (100 ms unless `$AEGIS_LAB_ADVERT_MS` says otherwise).
pub fn keepalived_conf(priority: u8) -> String {
    let instance = |name: &str, port: &str, vrid: u8, addrs: &[&str]| {
        let list: Vec<String> = addrs.iter().map(|a| format!("        {a}\n")).collect();
        format!(
            "vrrp_instance {name} {{\n    state BACKUP\n    interface {port}\n    \
             virtual_router_id {vrid}\n    version 3\n    priority {priority}\n    \
             advert_int {:.2}\n    virtual_ipaddress {{\n{}    }}\n}}\n\n",
            f64::from(GatewayPairLab::advert_ms()) / 1000.0,
            list.concat()
        )
    };
    format!(
        "global_defs {{\n    router_id aegis-lab-gw\n}}\n\n\
         vrrp_sync_group G_GW {{\n    group {{\n        VI_IN\n        VI_OUT\n    }}\n}}\n\n{}{}",
        instance("VI_IN", "in0", 60, &["10.60.0.1/24"]),
        instance(
            "VI_OUT",
            "out0",
            61,
            &["203.0.113.1/24", "203.0.113.50/24", "203.0.113.60/24"]
        ),
    )
}

fn write(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: "write",
        path: path.clone(),
        source,
    })
}
