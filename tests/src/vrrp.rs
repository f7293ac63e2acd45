//! [`VrrpLab`]: an Aegis gateway and a real keepalived peering on one link with the same
//! VRID, to prove wire compatibility and failover timing against the reference
//! implementation.
//!
//! ```text
//!  gw: aegis-dataplane                            ka: keepalived (Debian package)
//!  [port ext0 10.77.0.2/24] ──── veth ──── eth0 10.77.0.1/24
//!              virtual address 10.77.0.100/24, VRID 77, on whichever is master
//! ```
//!
//! The gateway's VRRP runs inside the dataplane (its kernel side of `ext0` has no address);
//! keepalived runs in `ka` with `-P` (VRRP only) and its own pid files. Whether keepalived is
//! master is read from the kernel (the virtual address on `ka`'s `eth0`), ours from
//! `aegisctl dp show vrrp`. `ka` also serves as the client that pings the virtual address.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::Bins;
use crate::ctl::Ctl;
use crate::error::{LabError, Result};
use crate::hosttoml::{HostConfig, PortSpec};
use crate::lab::{Lab, ProcId};
use crate::router::START_LIMIT;

/// One side's VRRP parameters.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    /// Priority, 1..=255.
    pub priority: u8,
    /// Advertisement interval in milliseconds (1000 with VRRPv2, 100 with VRRPv3).
    pub interval_ms: u32,
}

impl Side {
    /// VRRP version the interval needs (keepalived: sub-second intervals are v3 only).
    pub fn version(&self) -> u8 {
        if self.interval_ms.is_multiple_of(1000) {
            2
        } else {
            3
        }
    }

    /// keepalived's `advert_int` value in seconds.
    fn advert_int(&self) -> String {
        if self.interval_ms.is_multiple_of(1000) {
            (self.interval_ms / 1000).to_string()
        } else {
            format!("{:.2}", f64::from(self.interval_ms) / 1000.0)
        }
    }

    /// Master-down interval of a backup with this side's priority, as RFC 5798 computes it
    /// (3 × interval + (256 − priority) × interval / 256).
    pub fn master_down(&self, master_interval_ms: u32) -> Duration {
        let i = u64::from(master_interval_ms) * 1000;
        Duration::from_micros(3 * i + (256 - u64::from(self.priority)) * i / 256)
    }

    /// Skew time (what a backup waits after a priority-0 advertisement).
    pub fn skew(&self, master_interval_ms: u32) -> Duration {
        let i = u64::from(master_interval_ms) * 1000;
        Duration::from_micros((256 - u64::from(self.priority)) * i / 256)
    }
}

/// The gateway — keepalived lab.
#[derive(Debug)]
pub struct VrrpLab {
    /// Namespaces, processes, temp dir.
    pub lab: Lab,
    /// `aegisctl` on the dataplane's admin socket.
    pub ctl: Ctl,
    /// The dataplane.
    pub dataplane: ProcId,
    /// keepalived's parent process.
    pub keepalived: ProcId,
    keepalived_name: String,
    /// Our side's parameters.
    pub ours: Side,
    /// keepalived's.
    pub theirs: Side,
}

impl VrrpLab {
    /// The gateway's namespace.
    pub const GW: &'static str = "gw";
    /// keepalived's namespace.
    pub const KA: &'static str = "ka";
    /// The gateway's port.
    pub const GW_IF: &'static str = "ext0";
    /// keepalived's interface.
    pub const KA_IF: &'static str = "eth0";
    /// The gateway's own address.
    pub const GW_IP: &'static str = "10.77.0.2";
    /// keepalived's own address.
    pub const KA_IP: &'static str = "10.77.0.1";
    /// The virtual address.
    pub const VIP: &'static str = "10.77.0.100";
    /// The virtual router id.
    pub const VRID: u8 = 77;

    /// Builds the link and starts the dataplane, waits for its admin socket, then starts
    /// keepalived (both with `initial state BACKUP`, so the election decides).
    pub fn start(prefix: &str, bins: Bins, ours: Side, theirs: Side) -> Result<VrrpLab> {
        let dataplane_bin = bins.dataplane()?;
        let ctl_bin = bins.aegisctl()?;
        let mut lab = Lab::new(prefix)?;
        lab.host(Self::GW)?;
        lab.host(Self::KA)?;
        lab.link(Self::GW, Self::GW_IF, Self::KA, Self::KA_IF)?;
        lab.addr(Self::KA, Self::KA_IF, &format!("{}/24", Self::KA_IP))?;
        lab.tx_checksum_off(Self::KA, Self::KA_IF)?;
        lab.forwarding(Self::GW, false)?;

        let ours_conf = lab.path("gw-keepalived.conf");
        write(&ours_conf, &keepalived_conf(Self::GW_IF, ours, ""))?;
        let socket = lab.path("gw.sock");
        let mut eal_args = HostConfig::lab_eal_args(&lab.id().ns(Self::GW), None);
        if let Ok(extra) = std::env::var(crate::router::EAL_EXTRA_ENV) {
            eal_args.extend(extra.split_whitespace().map(str::to_string));
        }
        let host = HostConfig {
            eal_args,
            poll_mode: "adaptive".into(),
            burst: 128,
            mbufs: 4095,
            admin_socket: socket.clone(),
            diag_listen: None,
            ports: vec![PortSpec {
                name: Self::GW_IF.into(),
                devargs: format!("net_af_packet0,iface={}", Self::GW_IF),
                addresses: vec![format!("{}/24", Self::GW_IP)],
            }],
            routes: Vec::new(),
        };
        let mut text = host.render();
        text.push_str(&format!(
            "\n[vrrp]\nkeepalived_conf = \"{}\"\n",
            ours_conf.display()
        ));
        let host_path = lab.path("gw-host.toml");
        write(&host_path, &text)?;
        let host_arg = host_path.to_string_lossy().into_owned();
        let dataplane = lab.spawn_env(
            Self::GW,
            "aegis-dataplane",
            &dataplane_bin.to_string_lossy(),
            &["--config", host_arg.as_str()],
            &[("RUST_BACKTRACE", "1"), ("RUST_LOG", "info")],
        )?;
        lab.wait_for_socket(&socket, START_LIMIT, Some(dataplane))?;

        let keepalived = Self::spawn_keepalived(&mut lab, theirs, "keepalived")?;
        Ok(VrrpLab {
            lab,
            ctl: Ctl::new(ctl_bin, socket),
            dataplane,
            keepalived,
            keepalived_name: "keepalived".into(),
            ours,
            theirs,
        })
    }

    fn spawn_keepalived(lab: &mut Lab, side: Side, name: &str) -> Result<ProcId> {
        let conf = lab.path(&format!("{name}.conf"));
        write(&conf, &keepalived_conf(Self::KA_IF, side, ""))?;
        let pid = lab.path(&format!("{name}.pid"));
        let vrrp_pid = lab.path(&format!("{name}-vrrp.pid"));
        let args: Vec<String> = vec![
            "--dont-fork".into(),
            "--log-console".into(),
            "--log-detail".into(),
            "--no-syslog".into(),
            "--vrrp".into(),
            "--dont-respawn".into(),
            format!("--use-file={}", conf.display()),
            format!("--pid={}", pid.display()),
            format!("--vrrp_pid={}", vrrp_pid.display()),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let which = crate::env::which("keepalived").ok_or_else(|| LabError::InvalidName {
            kind: "program",
            name: "keepalived".into(),
            reason: "not installed (scripts/install-deps.sh installs it)",
        })?;
        lab.spawn(Self::KA, name, &which.to_string_lossy(), &argv)
    }

    /// Starts keepalived again (after it was stopped) with the same parameters.
    pub fn restart_keepalived(&mut self, name: &str) -> Result<()> {
        self.keepalived = Self::spawn_keepalived(&mut self.lab, self.theirs, name)?;
        self.keepalived_name = name.to_string();
        Ok(())
    }

    /// Our instance as `show vrrp` reports it.
    pub fn our_instance(&self) -> Result<Value> {
        let v = self.ctl.json(&["show", "vrrp"])?;
        v["instances"]
            .get(0)
            .cloned()
            .ok_or_else(|| LabError::Parse {
                cmd: self.ctl.display(true, &["show", "vrrp"]),
                detail: "no instance".into(),
                output: v.to_string(),
            })
    }

    /// Our instance's state (`MASTER`, `BACKUP`, ...).
    pub fn our_state(&self) -> Result<String> {
        Ok(self.our_instance()?["state"]
            .as_str()
            .unwrap_or("?")
            .to_string())
    }

    /// True if keepalived holds the virtual address (it is master).
    pub fn keepalived_master(&self) -> Result<bool> {
        let out = self
            .lab
            .ip(Self::KA, &["-4", "-o", "addr", "show", "dev", Self::KA_IF])?;
        Ok(out.contains(&format!("inet {}/", Self::VIP)))
    }

    /// keepalived's VRRP child (the process that speaks VRRP; the parent only supervises).
    pub fn keepalived_vrrp_pid(&self) -> Result<u32> {
        let path = self.lab.path(&format!("{}-vrrp.pid", self.keepalived_name));
        let text = std::fs::read_to_string(&path).map_err(|source| LabError::Io {
            what: "read",
            path: path.clone(),
            source,
        })?;
        text.trim().parse().map_err(|_| LabError::Parse {
            cmd: format!("cat {}", path.display()),
            detail: "not a pid".into(),
            output: text,
        })
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to `pid`.
    pub fn kill(&self, signal: &str, pid: u32) -> Result<()> {
        crate::cmd::run("kill", &[format!("-{signal}"), pid.to_string()]).map(|_| ())
    }

    /// The dataplane's pid.
    pub fn dataplane_pid(&mut self) -> u32 {
        self.lab.proc(self.dataplane).pid()
    }

    /// keepalived's parent pid.
    pub fn keepalived_pid(&mut self) -> u32 {
        self.lab.proc(self.keepalived).pid()
    }

    /// Polls `check` every 5 ms until it returns true; the time it took, or a timeout.
    pub fn time_until(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&VrrpLab) -> Result<bool>,
    ) -> Result<Duration> {
        let started = Instant::now();
        loop {
            if check(self)? {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(LabError::Timeout {
                    what: what.to_string(),
                    waited: started.elapsed(),
                    detail: format!(
                        "ours: {}, keepalived master: {:?}",
                        self.our_state().unwrap_or_else(|e| e.to_string()),
                        self.keepalived_master()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The dataplane's log.
    pub fn dataplane_log(&mut self) -> String {
        self.lab.proc(self.dataplane).log()
    }

    /// keepalived's log.
    pub fn keepalived_log(&mut self) -> String {
        self.lab.proc(self.keepalived).log()
    }
}

/// A keepalived.conf with one instance on `iface`: initial state BACKUP, preempting, VRID 77,
/// the lab's virtual address, v2 for whole-second intervals and v3 otherwise. Both sides
/// use this text: ours is imported by the dataplane (`[vrrp] keepalived_conf`).
pub fn keepalived_conf(iface: &str, side: Side, extra: &str) -> String {
    format!(
        "global_defs {{\n    router_id aegis-lab\n}}\n\n\
         vrrp_instance VI_LAB {{\n    state BACKUP\n    interface {iface}\n    \
         virtual_router_id {vrid}\n    version {version}\n    priority {prio}\n    \
         advert_int {advert}\n    virtual_ipaddress {{\n        {vip}/24\n    }}\n{extra}}}\n",
        vrid = VrrpLab::VRID,
        version = side.version(),
        prio = side.priority,
        advert = side.advert_int(),
        vip = VrrpLab::VIP,
    )
}

fn write(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: "write",
        path: path.clone(),
        source,
    })
}
