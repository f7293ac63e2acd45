//! [`EastWestLab`]: three compute hosts running `aegis-dataplane`, fed by one
//! `aegis-controlplane`, and VMs (namespaces) in two VPCs with overlapping addresses — the lab
//! of the east-west tests (`tests/tests/eastwest.rs`) and of `aegis-lab eastwest`.
//!
//! ```text
//!              fabric: br-ul (underlay, no address)   br-mg 10.99.0.1/24
//!                      aegis-controlplane --listen 10.99.0.1:7400
//!          ul-c1 ul-c2 ul-c3 ──┘                        └── mg-c1 mg-c2 mg-c3
//!            │                                                │
//!   cN: ul0 (DPDK port, 10.88.0.1N/24 from the control plane)  mg0 10.99.0.1N/24 (kernel;
//!       the dataplane's diagnostics listen on 10.99.0.1N:7401)
//!       vm-<vm> (DPDK port) ── veth ── eth0 of VM <vm> (MTU 1450, default via the gateway)
//!
//!   VPC blue (VNI 100)                     VPC red (VNI 200)
//!   blue-a 10.1.1.0/24: b1 .11 c1, b2 .12 c2   red-a 10.1.1.0/24: r1 .11 c2, r2 .12 c3
//!   blue-b 10.1.2.0/24: b3 .13 c1, b4 .14 c3   red-b 10.1.2.0/24: (none)
//!                                           red-c 10.1.3.0/24: r3 .5 c1
//! ```
//!
//! b2 also has `eth1`, whose peer `vm-b2m` is a port of c3, kept down until
//! [`EastWestLab::move_vm_interface`] (the VM side of a move; the control-plane side is
//! [`EastWestLab::move_port`]).
//!
//! Every object is created with `aegisctl` (run in `fabric`), the way an operator would; the
//! dataplanes follow the control plane (`--controlplane 10.99.0.1:7400 --host cN`), and
//! [`EastWestLab::start`] returns once all three report the control plane's revision. The
//! compute hosts' kernels keep out of the way (no address on `ul0` or the VM ports, no
//! forwarding): everything between VMs is the dataplanes' work.
//!
//! Object updates go through `aegisctl apply -f` with the JSON `get -o json` prints; the
//! shape of that JSON (and of `host list -o json`) is known only by the functions in the
//! "control-plane JSON" section at the end of this file.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::bins::Bins;
use crate::cmd;
use crate::ctl::{Ctl, DropCounters};
use crate::error::{LabError, Result};
use crate::frames;
use crate::hosttoml::{HostConfig, PortSpec};
use crate::lab::{Lab, ProcId};
use crate::probe::{self, PingSummary, Transfer};
use crate::router::{RouterLab, START_LIMIT};
use crate::wait::{self, Poll};

/// The namespace holding both bridges and the control plane.
pub const FABRIC: &str = "fabric";
/// The underlay bridge in [`FABRIC`] (no address).
pub const UNDERLAY_BRIDGE: &str = "br-ul";
/// The management bridge in [`FABRIC`].
pub const MGMT_BRIDGE: &str = "br-mg";
/// The control plane's (and the management bridge's) address.
pub const CP_IP: &str = "10.99.0.1";
/// The control plane's gRPC address.
pub const CP_ADDR: &str = "10.99.0.1:7400";
/// The compute hosts.
pub const HOSTS: [&str; 3] = ["c1", "c2", "c3"];
/// A compute host's underlay interface (a DPDK port).
pub const UNDERLAY_IF: &str = "ul0";
/// A compute host's management interface (kernel).
pub const MGMT_IF: &str = "mg0";
/// A VM's interface.
pub const VM_IF: &str = "eth0";
/// The VMs' MTU: the underlay's 1500 less the Geneve overhead (50).
pub const VM_MTU: u32 = 1450;
/// Geneve's UDP port.
pub const GENEVE_PORT: u16 = 6081;
/// The group every port is in at the start: ingress from the same group, any protocol.
pub const DEFAULT_GROUP: &str = "sg-default";
/// The rule of [`DEFAULT_GROUP`].
pub const DEFAULT_GROUP_RULE: &str =
    "id=same-group,dir=ingress,proto=any,group=sg-default,prio=100,action=allow";
/// The distributed router's MAC (the same on every host and subnet).
pub const ROUTER_MAC: &str = "02:ae:00:00:00:01";
/// The VM that moves, its second interface, and where that interface is plugged.
pub const MOVER: &str = "b2";
/// b2's second interface (down until the move).
pub const MOVE_IF: &str = "eth1";
/// The host b2 moves to.
pub const MOVE_HOST: &str = "c3";
/// The port of [`MOVE_HOST`] that b2's [`MOVE_IF`] is plugged into.
pub const MOVE_DEVICE: &str = "vm-b2m";
/// How long the dataplanes get to apply a control-plane revision.
pub const CONVERGE: Duration = Duration::from_secs(20);
/// Seconds between a dataplane's heartbeats.
pub const HEARTBEAT: &str = "0.5";

/// A VPC.
#[derive(Debug, Clone, Copy)]
pub struct VpcDef {
    /// Name.
    pub name: &'static str,
    /// VNI (the Geneve VNI of its traffic).
    pub vni: u32,
}

/// A subnet.
#[derive(Debug, Clone, Copy)]
pub struct SubnetDef {
    /// Name.
    pub name: &'static str,
    /// Its VPC.
    pub vpc: &'static str,
    /// Prefix.
    pub cidr: &'static str,
    /// Gateway address (the distributed router).
    pub gateway: &'static str,
}

/// A VM: a namespace whose `eth0` is a port of a compute host's dataplane.
#[derive(Debug, Clone, Copy)]
pub struct VmDef {
    /// Name (also the namespace's host name and the Port object's name).
    pub name: &'static str,
    /// VPC.
    pub vpc: &'static str,
    /// Subnet.
    pub subnet: &'static str,
    /// Address (/24).
    pub ip: &'static str,
    /// Compute host at the start.
    pub host: &'static str,
    /// MAC (02:00:00:00:VV:NN, VV = the VNI's low byte).
    pub mac: &'static str,
}

impl VmDef {
    /// The dataplane port (and host-side veth) of its `eth0`.
    pub fn device(&self) -> String {
        format!("vm-{}", self.name)
    }

    /// Its address with the prefix length.
    pub fn cidr(&self) -> String {
        format!("{}/24", self.ip)
    }
}

/// The VPCs.
pub const VPCS: [VpcDef; 2] = [
    VpcDef {
        name: "blue",
        vni: 100,
    },
    VpcDef {
        name: "red",
        vni: 200,
    },
];

/// The subnets (red's overlap blue's).
pub const SUBNETS: [SubnetDef; 5] = [
    SubnetDef {
        name: "blue-a",
        vpc: "blue",
        cidr: "10.1.1.0/24",
        gateway: "10.1.1.1",
    },
    SubnetDef {
        name: "blue-b",
        vpc: "blue",
        cidr: "10.1.2.0/24",
        gateway: "10.1.2.1",
    },
    SubnetDef {
        name: "red-a",
        vpc: "red",
        cidr: "10.1.1.0/24",
        gateway: "10.1.1.1",
    },
    SubnetDef {
        name: "red-b",
        vpc: "red",
        cidr: "10.1.2.0/24",
        gateway: "10.1.2.1",
    },
    SubnetDef {
        name: "red-c",
        vpc: "red",
        cidr: "10.1.3.0/24",
        gateway: "10.1.3.1",
    },
];

/// The VMs (r1 and r2 have b1's and b2's addresses).
pub const VMS: [VmDef; 7] = [
    VmDef {
        name: "b1",
        vpc: "blue",
        subnet: "blue-a",
        ip: "10.1.1.11",
        host: "c1",
        mac: "02:00:00:00:64:01",
    },
    VmDef {
        name: "b2",
        vpc: "blue",
        subnet: "blue-a",
        ip: "10.1.1.12",
        host: "c2",
        mac: "02:00:00:00:64:02",
    },
    VmDef {
        name: "b3",
        vpc: "blue",
        subnet: "blue-b",
        ip: "10.1.2.13",
        host: "c1",
        mac: "02:00:00:00:64:03",
    },
    VmDef {
        name: "b4",
        vpc: "blue",
        subnet: "blue-b",
        ip: "10.1.2.14",
        host: "c3",
        mac: "02:00:00:00:64:04",
    },
    VmDef {
        name: "r1",
        vpc: "red",
        subnet: "red-a",
        ip: "10.1.1.11",
        host: "c2",
        mac: "02:00:00:00:c8:01",
    },
    VmDef {
        name: "r2",
        vpc: "red",
        subnet: "red-a",
        ip: "10.1.1.12",
        host: "c3",
        mac: "02:00:00:00:c8:02",
    },
    VmDef {
        name: "r3",
        vpc: "red",
        subnet: "red-c",
        ip: "10.1.3.5",
        host: "c1",
        mac: "02:00:00:00:c8:03",
    },
];

/// VM `name`.
pub fn vm(name: &str) -> Result<&'static VmDef> {
    VMS.iter()
        .find(|v| v.name == name)
        .ok_or_else(|| LabError::UnknownHost(name.to_string()))
}

/// Subnet `name`.
pub fn subnet(name: &str) -> Result<&'static SubnetDef> {
    SUBNETS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| LabError::UnknownHost(name.to_string()))
}

/// The VPC with `vni`.
pub fn vpc_by_vni(vni: u32) -> Option<&'static VpcDef> {
    VPCS.iter().find(|v| v.vni == vni)
}

/// Compute host `host`'s number (c2 → 2).
fn host_no(host: &str) -> Result<u8> {
    host.strip_prefix('c')
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| (1..=9).contains(n))
        .ok_or_else(|| LabError::UnknownHost(host.to_string()))
}

/// Compute host `host`'s underlay address (c1 → 10.88.0.11).
pub fn underlay_ip(host: &str) -> Result<String> {
    Ok(format!("10.88.0.1{}", host_no(host)?))
}

/// The TCP port of each dataplane's diagnostics listener (on the management address).
pub const DIAG_PORT: u16 = 7401;

/// Compute host `host`'s management address (c1 → 10.99.0.11).
pub fn mgmt_ip(host: &str) -> Result<String> {
    Ok(format!("10.99.0.1{}", host_no(host)?))
}

/// The dataplane ports of `host`, in host.toml order: `ul0`, its VMs' ports, and for
/// [`MOVE_HOST`] the port b2 moves to.
pub fn host_devices(host: &str) -> Vec<String> {
    let mut d = vec![UNDERLAY_IF.to_string()];
    d.extend(VMS.iter().filter(|v| v.host == host).map(VmDef::device));
    if host == MOVE_HOST {
        d.push(MOVE_DEVICE.to_string());
    }
    d
}

/// The `aegisctl` arguments that declare the lab's desired state, in order: hosts, VPCs,
/// subnets, the default security group, ports.
pub fn declarations() -> Result<Vec<Vec<String>>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for h in HOSTS {
        let ul = underlay_ip(h)?;
        let address = format!("{UNDERLAY_IF}={ul}/24");
        out.push(words(&[
            "host",
            "create",
            h,
            "--role",
            "compute",
            "--underlay",
            &ul,
            "--management",
            &mgmt_ip(h)?,
            "--address",
            &address,
        ]));
    }
    for v in VPCS {
        out.push(words(&[
            "vpc",
            "create",
            v.name,
            "--vni",
            &v.vni.to_string(),
        ]));
    }
    for s in SUBNETS {
        out.push(words(&[
            "subnet",
            "create",
            s.name,
            "--vpc",
            s.vpc,
            "--cidr",
            s.cidr,
            "--gateway",
            s.gateway,
        ]));
    }
    out.push(words(&[
        "security-group",
        "create",
        DEFAULT_GROUP,
        "--rule",
        DEFAULT_GROUP_RULE,
        "--description",
        "ingress from the same group",
    ]));
    for v in VMS {
        out.push(words(&[
            "port",
            "create",
            v.name,
            "--vpc",
            v.vpc,
            "--subnet",
            v.subnet,
            "--mac",
            v.mac,
            "--ip",
            v.ip,
            "--host",
            v.host,
            "--device",
            &v.device(),
            "--security-group",
            DEFAULT_GROUP,
        ]));
    }
    Ok(out)
}

/// One compute host's dataplane.
#[derive(Debug)]
struct HostDataplane {
    host: &'static str,
    proc: ProcId,
    starts: u32,
    ctl: Ctl,
}

/// How a TCP connection attempt ended ([`EastWestLab::tcp_connect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    /// Connected and read the listener's greeting: both directions work.
    Connected,
    /// Connected, but the greeting never came.
    NoGreeting,
    /// A TCP reset came back.
    Refused,
    /// No answer within the time limit (dropped on the way).
    TimedOut,
    /// Anything else (the client's output).
    Other(String),
}

/// One Geneve packet seen on the underlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneveRecord {
    /// The VNI.
    pub vni: u32,
    /// Outer source (a host's underlay address).
    pub outer_src: Ipv4Addr,
    /// Outer destination.
    pub outer_dst: Ipv4Addr,
    /// Inner source (a VM address).
    pub inner_src: Ipv4Addr,
    /// Inner destination.
    pub inner_dst: Ipv4Addr,
    /// The outer UDP source port.
    pub udp_src_port: u16,
}

/// The tshark fields [`GeneveRecord::parse`] reads, in order.
pub const GENEVE_FIELDS: [&str; 4] = ["geneve.vni", "ip.src", "ip.dst", "udp.srcport"];

impl GeneveRecord {
    /// Reads one row of `tshark -T fields -E occurrence=a -E aggregator=,` with
    /// [`GENEVE_FIELDS`]: the VNI (tshark prints it in hex, `0x000064`), then the IPv4 source
    /// and destination as `outer,inner` and the UDP source port (outer first). `None` for a
    /// row that is not a Geneve packet with an IPv4 payload.
    pub fn parse(row: &[String]) -> Option<GeneveRecord> {
        let [vni, src, dst, sport, ..] = row else {
            return None;
        };
        let vni = parse_number(vni.split(',').next()?)?;
        let two = |s: &str| -> Option<(Ipv4Addr, Ipv4Addr)> {
            let mut it = s.split(',').map(|a| a.parse::<Ipv4Addr>());
            Some((it.next()?.ok()?, it.next()?.ok()?))
        };
        let (outer_src, inner_src) = two(src)?;
        let (outer_dst, inner_dst) = two(dst)?;
        let udp_src_port = sport.split(',').next()?.parse().ok()?;
        Some(GeneveRecord {
            vni: u32::try_from(vni).ok()?,
            outer_src,
            outer_dst,
            inner_src,
            inner_dst,
            udp_src_port,
        })
    }
}

impl std::fmt::Display for GeneveRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vni {} {} -> {} (udp {}) inner {} -> {}",
            self.vni,
            self.outer_src,
            self.outer_dst,
            self.udp_src_port,
            self.inner_src,
            self.inner_dst
        )
    }
}

/// "100", "0x000064" or "0x000064 (100)".
fn parse_number(s: &str) -> Option<u64> {
    let s = s.split_whitespace().next()?;
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// When the control plane was asked to move a port.
#[derive(Debug, Clone, Copy)]
pub struct Moved {
    /// Just before `aegisctl apply` was started (monotonic).
    pub requested: Instant,
    /// The same moment on the wall clock (compare with `ping -D` timestamps).
    pub requested_wall: SystemTime,
    /// When `aegisctl apply` returned.
    pub acknowledged: Instant,
    /// The revision of the write.
    pub revision: u64,
}

/// One host's line of `host list -o json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// Host name.
    pub name: String,
    /// The revision its dataplane applied last.
    pub applied_revision: u64,
    /// Why the last revision could not be applied (empty: it was).
    pub apply_error: String,
    /// Whether its heartbeats arrive.
    pub alive: bool,
}

impl HostState {
    /// Alive, at `revision`, without an apply error.
    pub fn converged_to(&self, revision: u64) -> bool {
        self.alive && self.applied_revision == revision && self.apply_error.is_empty()
    }
}

/// The east-west lab (see the module doc).
#[derive(Debug)]
pub struct EastWestLab {
    /// Namespaces, links, processes, temp dir.
    pub lab: Lab,
    /// The binaries in use.
    pub bins: Bins,
    aegisctl: PathBuf,
    dataplane_bin: PathBuf,
    /// The control-plane process.
    pub controlplane: ProcId,
    dataplanes: Vec<HostDataplane>,
    seq: u32,
}

impl EastWestLab {
    /// Builds the lab from the default binaries ([`Bins::locate`]): namespaces, bridges,
    /// VMs, the control plane and every object, and the three dataplanes; returns once each
    /// dataplane has applied the control plane's revision.
    pub fn start(prefix: &str) -> Result<EastWestLab> {
        EastWestLab::start_with(prefix, Bins::locate())
    }

    /// [`start`](Self::start) with explicit binaries.
    pub fn start_with(prefix: &str, bins: Bins) -> Result<EastWestLab> {
        let cp_bin = bins.controlplane()?;
        let dataplane_bin = bins.dataplane()?;
        let aegisctl = bins.aegisctl()?;
        let mut lab = Lab::new(prefix)?;
        lab.set_exec_limit(Duration::from_secs(60));
        build_topology(&mut lab)?;
        let data = lab.path("cp-data").to_string_lossy().into_owned();
        let controlplane = lab.spawn_env(
            FABRIC,
            "controlplane",
            &cp_bin.to_string_lossy(),
            &["--id", "1", "--listen", CP_ADDR, "--data-dir", &data],
            &[("RUST_BACKTRACE", "1")],
        )?;
        let mut ew = EastWestLab {
            lab,
            bins,
            aegisctl,
            dataplane_bin,
            controlplane,
            dataplanes: Vec::new(),
            seq: 0,
        };
        ew.wait_controlplane(Duration::from_secs(30))?;
        for args in declarations()? {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            ew.cp(&argv)?;
        }
        for host in HOSTS {
            ew.start_dataplane(host)?;
        }
        ew.wait_converged(CONVERGE)?;
        Ok(ew)
    }

    // -----------------------------------------------------------------------------------
    // The control plane

    /// `aegisctl --server CP_ADDR ARGS` as an operator would type it in `fabric`.
    pub fn cp_display(&self, args: &[&str]) -> String {
        let ns = self.lab.id().ns(FABRIC);
        let mut argv = vec!["netns", "exec", &ns, "aegisctl", "--server", CP_ADDR];
        argv.extend_from_slice(args);
        cmd::display("ip", &argv)
    }

    /// Runs `aegisctl --server CP_ADDR ARGS` in `fabric` (a non-zero exit is not an error).
    pub fn cp_output(&self, args: &[&str]) -> Result<Output> {
        let mut argv = vec!["--server", CP_ADDR];
        argv.extend_from_slice(args);
        self.lab
            .exec(FABRIC, &self.aegisctl.to_string_lossy(), &argv)
    }

    /// Runs `aegisctl --server CP_ADDR ARGS`; fails unless it exits 0; returns stdout.
    pub fn cp(&self, args: &[&str]) -> Result<String> {
        let out = self.cp_output(args)?;
        cmd::checked(&self.cp_display(args), out)
    }

    /// [`cp`](Self::cp) with `-o json`, parsed.
    pub fn cp_json(&self, args: &[&str]) -> Result<Value> {
        let mut argv = args.to_vec();
        argv.extend(["-o", "json"]);
        let text = self.cp(&argv)?;
        serde_json::from_str(&text).map_err(|e| LabError::Parse {
            cmd: self.cp_display(&argv),
            detail: e.to_string(),
            output: text,
        })
    }

    /// A write (`create`, `delete`, `apply`) with `-o json`; returns its revision.
    pub fn cp_write(&self, args: &[&str]) -> Result<u64> {
        let v = self.cp_json(args)?;
        write_revision(&v).ok_or_else(|| LabError::Parse {
            cmd: self.cp_display(args),
            detail: "no revision in the reply".into(),
            output: v.to_string(),
        })
    }

    /// The object `kind`/`name` as `get -o json` prints it.
    pub fn get_object(&self, kind: &str, name: &str) -> Result<Value> {
        self.cp_json(&[kind, "get", name])
    }

    /// `aegisctl apply -f FILE` of `objects` (a list in the `get -o json` format); returns
    /// the revision of the last write.
    pub fn apply(&mut self, objects: &[Value]) -> Result<u64> {
        self.seq += 1;
        let path = self.lab.path(&format!("apply-{}.json", self.seq));
        let text = serde_json::to_string_pretty(objects).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| LabError::Io {
            what: "write",
            path: path.clone(),
            source,
        })?;
        let file = path.to_string_lossy().into_owned();
        self.cp_write(&["apply", "-f", &file])
    }

    /// Creates security group `name` with `rules` (`--rule` syntax); returns the revision.
    pub fn create_group(&self, name: &str, rules: &[&str]) -> Result<u64> {
        let mut args = vec!["security-group", "create", name];
        for r in rules {
            args.extend(["--rule", r]);
        }
        self.cp_write(&args)
    }

    /// Replaces the rules of security group `name` (`--rule` syntax) with `aegisctl apply`;
    /// returns the revision.
    pub fn set_group_rules(&mut self, name: &str, rules: &[&str]) -> Result<u64> {
        let rules = rules
            .iter()
            .map(|r| rule_json(r))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|detail| LabError::Parse {
                cmd: format!("security group {name} rules"),
                detail,
                output: rules.join("\n"),
            })?;
        let mut o = self.get_object("security-group", name)?;
        set_spec_field(&mut o, "SecurityGroup", "rules", Value::Array(rules))?;
        self.apply(&[o])
    }

    /// Puts VM `vm`'s port in `groups` (replacing its groups); returns the revision.
    pub fn set_port_groups(&mut self, vm: &str, groups: &[&str]) -> Result<u64> {
        let mut o = self.get_object("port", vm)?;
        set_spec_field(&mut o, "Port", "security_groups", json!(groups))?;
        self.apply(&[o])
    }

    /// Points VM `vm`'s port at `device` on `host` (a move, as the API sees it).
    pub fn move_port(&mut self, vm: &str, host: &str, device: &str) -> Result<Moved> {
        let mut o = self.get_object("port", vm)?;
        set_spec_field(&mut o, "Port", "host", json!(host))?;
        set_spec_field(&mut o, "Port", "device", json!(device))?;
        let requested_wall = SystemTime::now();
        let requested = Instant::now();
        let revision = self.apply(&[o])?;
        Ok(Moved {
            requested,
            requested_wall,
            acknowledged: Instant::now(),
            revision,
        })
    }

    /// The control plane's revision and what `host list -o json` says about each host.
    pub fn host_status(&self) -> Result<(u64, Vec<HostState>)> {
        let v = self.cp_json(&["host", "list"])?;
        host_list(&v).map_err(|detail| LabError::Parse {
            cmd: self.cp_display(&["host", "list", "-o", "json"]),
            detail,
            output: v.to_string(),
        })
    }

    /// Waits until every dataplane is alive and has applied the control plane's current
    /// revision without an error; returns that revision.
    pub fn wait_converged(&mut self, limit: Duration) -> Result<u64> {
        let what = "every dataplane to apply the control plane's revision";
        wait::until(what, limit, Duration::from_millis(100), || {
            if let Err(e) = self.check_alive(what) {
                return Poll::Fail(e);
            }
            let (revision, hosts) = match self.host_status() {
                Ok(s) => s,
                Err(e) => return Poll::Pending(e.to_string()),
            };
            let behind: Vec<String> = HOSTS
                .iter()
                .filter_map(|h| match hosts.iter().find(|s| s.name == *h) {
                    Some(s) if s.converged_to(revision) => None,
                    Some(s) => Some(format!(
                        "{h}: applied {}, alive {}, error {:?}",
                        s.applied_revision, s.alive, s.apply_error
                    )),
                    None => Some(format!("{h}: not in host list")),
                })
                .collect();
            if behind.is_empty() {
                Poll::Ready(revision)
            } else {
                Poll::Pending(format!("revision {revision}; {}", behind.join("; ")))
            }
        })
    }

    fn wait_controlplane(&mut self, limit: Duration) -> Result<()> {
        let what = "the control plane to answer";
        let id = self.controlplane;
        wait::until(what, limit, Duration::from_millis(200), || {
            if let Some(e) = self.lab.exited_error(id, what) {
                return Poll::Fail(e);
            }
            match self.cp_output(&["--retry-for", "0", "host", "list", "-o", "json"]) {
                Ok(o) if o.status.success() => Poll::Ready(()),
                Ok(o) => Poll::Pending(cmd::lossy(&o.stderr)),
                Err(e) => Poll::Pending(e.to_string()),
            }
        })
    }

    // -----------------------------------------------------------------------------------
    // Dataplanes

    /// `aegisctl dp` bound to `host`'s dataplane.
    pub fn dp(&self, host: &str) -> Result<&Ctl> {
        self.dataplanes
            .iter()
            .find(|d| d.host == host)
            .map(|d| &d.ctl)
            .ok_or_else(|| LabError::UnknownHost(host.to_string()))
    }

    /// `host`'s drop counters by reason.
    pub fn drop_counters(&self, host: &str) -> Result<DropCounters> {
        self.dp(host)?.drop_counters()
    }

    /// Drop counters by reason, summed over every dataplane.
    pub fn drop_counters_all(&self) -> Result<DropCounters> {
        let mut sum = DropCounters::new();
        for h in HOSTS {
            for (reason, n) in self.drop_counters(h)? {
                *sum.entry(reason).or_default() += n;
            }
        }
        Ok(sum)
    }

    /// The current process of `host`'s dataplane.
    pub fn dataplane_proc(&self, host: &str) -> Result<ProcId> {
        self.dataplanes
            .iter()
            .find(|d| d.host == host)
            .map(|d| d.proc)
            .ok_or_else(|| LabError::UnknownHost(host.to_string()))
    }

    /// The host.toml of `host`.
    pub fn config_path(&self, host: &str) -> PathBuf {
        self.lab.path(&format!("{host}.toml"))
    }

    /// Fails with the log tail of the control plane or of any dataplane that exited.
    pub fn check_alive(&mut self, during: &str) -> Result<()> {
        let mut procs = vec![self.controlplane];
        procs.extend(self.dataplanes.iter().map(|d| d.proc));
        for p in procs {
            if let Some(e) = self.lab.exited_error(p, during) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The host.toml of `host`'s dataplane: `ul0` and its VM ports as `net_af_packet`
    /// ports without addresses (the control plane gives `ul0` its address), adaptive
    /// polling, the lab EAL arguments with its own file prefix (and `$AEGIS_LAB_EAL_EXTRA`).
    pub fn host_config(&self, host: &str) -> HostConfig {
        let prefix = self.lab.id().ns(host);
        let socket = self.lab.path(&format!("{host}.sock"));
        // The router lab's config carries the lab EAL arguments; only the ports differ.
        let mut c = RouterLab::host_config(&prefix, &socket);
        c.routes.clear();
        // The control plane reaches the dataplane's diagnostics on the management network.
        c.diag_listen = mgmt_ip(host).ok().map(|ip| format!("{ip}:{DIAG_PORT}"));
        c.ports = host_devices(host)
            .into_iter()
            .enumerate()
            .map(|(i, d)| PortSpec {
                devargs: format!("net_af_packet{i},iface={d}"),
                name: d,
                addresses: Vec::new(),
            })
            .collect();
        c
    }

    /// Starts `host`'s dataplane (again, after [`kill_dataplane`](Self::kill_dataplane)),
    /// following the control plane, and waits for its admin socket.
    pub fn start_dataplane(&mut self, host: &str) -> Result<ProcId> {
        let host: &'static str = HOSTS
            .iter()
            .find(|h| **h == host)
            .ok_or_else(|| LabError::UnknownHost(host.to_string()))?;
        let config = self.host_config(host);
        let config_path = self.config_path(host);
        std::fs::write(&config_path, config.render()).map_err(|source| LabError::Io {
            what: "write",
            path: config_path.clone(),
            source,
        })?;
        let starts = self
            .dataplanes
            .iter()
            .find(|d| d.host == host)
            .map_or(0, |d| d.starts);
        let name = match starts {
            0 => format!("dp-{host}"),
            n => format!("dp-{host}-r{n}"),
        };
        let cache = self.lab.path(&format!("{host}-cache.json"));
        let args: Vec<String> = vec![
            "--config".into(),
            config_path.to_string_lossy().into_owned(),
            "--controlplane".into(),
            CP_ADDR.into(),
            "--host".into(),
            host.into(),
            "--controlplane-cache".into(),
            cache.to_string_lossy().into_owned(),
            "--heartbeat-interval".into(),
            HEARTBEAT.into(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = self.lab.spawn_env(
            host,
            &name,
            &self.dataplane_bin.to_string_lossy(),
            &argv,
            &[("RUST_BACKTRACE", "1")],
        )?;
        let ctl = Ctl::new(&self.aegisctl, &config.admin_socket);
        self.dataplanes.retain(|d| d.host != host);
        self.dataplanes.push(HostDataplane {
            host,
            proc,
            starts: starts + 1,
            ctl,
        });
        self.lab
            .wait_for_socket(&config.admin_socket, START_LIMIT, Some(proc))?;
        Ok(proc)
    }

    /// SIGKILLs `host`'s dataplane and reaps it; returns the moment just before the signal.
    pub fn kill_dataplane(&mut self, host: &str) -> Result<(Instant, SystemTime)> {
        let p = self.dataplane_proc(host)?;
        let d = self.lab.proc(p);
        let pid = d.pid().to_string();
        let at = (Instant::now(), SystemTime::now());
        cmd::run("kill", &["-KILL", pid.as_str()])?;
        d.wait(crate::process::KILL_EXIT_LIMIT)?;
        Ok(at)
    }

    /// `kill -9` of `host`'s dataplane, then a new one with the same configuration and
    /// cache; returns when the kill was sent and when the new process was started.
    pub fn restart_dataplane(&mut self, host: &str) -> Result<Restarted> {
        let (killed, killed_wall) = self.kill_dataplane(host)?;
        let started = Instant::now();
        self.start_dataplane(host)?;
        Ok(Restarted {
            killed,
            killed_wall,
            started,
            socket_up: Instant::now(),
        })
    }

    // -----------------------------------------------------------------------------------
    // VMs

    /// `count` pings from VM `from` to `dst` (`ping -c COUNT -W 1 -i 0.2`).
    pub fn ping(&self, from: &str, dst: &str, count: u32) -> Result<Output> {
        self.lab.ping(from, dst, count)
    }

    /// [`ping`](Self::ping), summarised.
    pub fn ping_summary(&self, from: &str, dst: &str, count: u32) -> Result<PingSummary> {
        let out = self.ping(from, dst, count)?;
        let text = cmd::lossy(&out.stdout);
        probe::ping_summary(&text).ok_or_else(|| LabError::Parse {
            cmd: format!("ping {from} -> {dst}"),
            detail: "no summary line".into(),
            output: format!("{text}{}", cmd::lossy(&out.stderr)),
        })
    }

    /// Pings from `from` to `dst` until a reply comes or `limit` passes.
    pub fn wait_ping(&self, from: &str, dst: &str, limit: Duration) -> Result<()> {
        self.lab.wait_ping(from, dst, limit)
    }

    /// Sends `bytes` random bytes over TCP from VM `client` to VM `server` (a new port each
    /// time); both ends' SHA-256 come back.
    pub fn tcp_transfer(&mut self, client: &str, server: &str, bytes: u64) -> Result<Transfer> {
        self.seq += 1;
        let port = 5000 + (self.seq % 1000) as u16;
        let server_ip = vm(server)?.ip;
        probe::tcp_transfer(
            &mut self.lab,
            server,
            server_ip,
            port,
            client,
            bytes,
            Duration::from_secs(60),
        )
    }

    /// Starts a TCP listener on `port` in VM `vm` that greets every connection with a line
    /// and closes it; returns once it listens.
    pub fn tcp_listen(&mut self, vm_name: &str, port: u16) -> Result<ProcId> {
        let name = format!("listen-{vm_name}-{port}");
        let port_s = port.to_string();
        let id = self
            .lab
            .spawn(vm_name, &name, "python3", &["-c", LISTENER_PY, &port_s])?;
        let what = format!("{name} to listen");
        wait::until(
            &what,
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                if self.lab.proc(id).log().contains("listening") {
                    return Poll::Ready(());
                }
                match self.lab.exited_error(id, &what) {
                    Some(e) => Poll::Fail(e),
                    None => Poll::Pending("no `listening` line yet".into()),
                }
            },
        )?;
        Ok(id)
    }

    /// One TCP connection attempt from VM `from` to `dst:port`, given `timeout`.
    pub fn tcp_connect(
        &self,
        from: &str,
        dst: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Connect> {
        let (port_s, t) = (port.to_string(), format!("{:.1}", timeout.as_secs_f64()));
        let out = self
            .lab
            .exec(from, "python3", &["-c", CONNECT_PY, dst, &port_s, &t])?;
        let text = cmd::lossy(&out.stdout);
        Ok(match text.trim() {
            "connected" => Connect::Connected,
            "no-greeting" => Connect::NoGreeting,
            "refused" => Connect::Refused,
            "timeout" => Connect::TimedOut,
            _ => Connect::Other(format!("{text}{}", cmd::lossy(&out.stderr))),
        })
    }

    /// Starts `ping -D -i INTERVAL DST` from VM `from` as a background flow (stop it with
    /// `lab.stop`); read it with [`first_reply_after`].
    pub fn ping_flow(&mut self, from: &str, dst: &str, interval: Duration) -> Result<ProcId> {
        self.seq += 1;
        let name = format!("flow-{}", self.seq);
        let i = format!("{:.3}", interval.as_secs_f64());
        self.lab
            .spawn(from, &name, "ping", &["-n", "-D", "-i", &i, "-W", "1", dst])
    }

    /// Sends raw frames out of VM `from`'s `eth0`.
    pub fn send_frames(&self, from: &str, frames: &[Vec<u8>]) -> Result<()> {
        frames::send(&self.lab, from, VM_IF, frames)
    }

    /// An ICMP echo request to `dst_ip` addressed to the distributed router's MAC, from
    /// `src_mac`/`src_ip` (a VM's own, or spoofed ones), for [`send_frames`](Self::send_frames).
    pub fn echo_frame(src_mac: &str, src_ip: &str, dst_ip: &str, seq: u16) -> Result<Vec<u8>> {
        let bad = |what: &str, v: &str| LabError::InvalidName {
            kind: "frame field",
            name: format!("{what} {v}"),
            reason: "does not parse",
        };
        let mac = frames::parse_mac(src_mac).map_err(|_| bad("mac", src_mac))?;
        let router = frames::parse_mac(ROUTER_MAC).map_err(|_| bad("mac", ROUTER_MAC))?;
        let src: Ipv4Addr = src_ip.parse().map_err(|_| bad("ip", src_ip))?;
        let dst: Ipv4Addr = dst_ip.parse().map_err(|_| bad("ip", dst_ip))?;
        let icmp = frames::icmp_echo(0xae57, seq, b"aegis-eastwest-spoof");
        let ip = frames::ipv4(src, dst, 64, 1, &icmp);
        Ok(frames::ethernet(router, mac, frames::ETH_IPV4, &ip))
    }

    /// The VM side of moving b2 to c3: `eth0` loses its address and goes down, `eth1`
    /// (plugged into c3's `vm-b2m`, same MAC) comes up with b2's address and default route.
    pub fn move_vm_interface(&self) -> Result<()> {
        let v = vm(MOVER)?;
        let gw = subnet(v.subnet)?.gateway;
        self.lab.ip(MOVER, &["addr", "flush", "dev", VM_IF])?;
        self.lab.ip(MOVER, &["link", "set", VM_IF, "down"])?;
        self.lab.ip(MOVER, &["link", "set", MOVE_IF, "up"])?;
        self.lab.addr(MOVER, MOVE_IF, &v.cidr())?;
        self.lab.ip(
            MOVER,
            &["route", "replace", "default", "via", gw, "dev", MOVE_IF],
        )?;
        Ok(())
    }

    /// Captures on `ifname` in `host` with tshark (capture filter `filter`, the given
    /// fields — at least two, tab-separated — all occurrences, comma-aggregated); returns
    /// once tshark captures. Stop it with [`finish_capture`](Self::finish_capture).
    pub fn start_capture(
        &mut self,
        host: &str,
        ifname: &str,
        filter: &str,
        fields: &[&str],
    ) -> Result<ProcId> {
        self.seq += 1;
        let name = format!("tshark-{}", self.seq);
        let mut args = vec![
            "-l",
            "-n",
            "-i",
            ifname,
            "-f",
            filter,
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ];
        for f in fields {
            args.extend(["-e", f]);
        }
        let id = self.lab.spawn(host, &name, "tshark", &args)?;
        let what = format!("{name} to capture on {ifname} in {host}");
        wait::until(
            &what,
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                if self.lab.proc(id).log().contains("Capturing on") {
                    return Poll::Ready(());
                }
                match self.lab.exited_error(id, &what) {
                    Some(e) => Poll::Fail(e),
                    None => Poll::Pending("no `Capturing on` line yet".into()),
                }
            },
        )?;
        // dumpcap prints `Capturing on` as it opens the interface, a moment before packets
        // flow into it (a CI run missed the first echo of b1 -> b2 right after the line):
        // give it that moment.
        std::thread::sleep(Duration::from_millis(300));
        Ok(id)
    }

    /// Stops a capture (after a short pause for packets in flight) and returns its rows.
    pub fn finish_capture(&mut self, id: ProcId) -> Vec<Vec<String>> {
        std::thread::sleep(Duration::from_millis(500));
        let log = self.lab.stop(id);
        capture_rows(&log)
    }

    /// Geneve packets on the underlay bridge while `traffic` runs.
    pub fn capture_underlay(
        &mut self,
        traffic: impl FnOnce(&mut EastWestLab) -> Result<()>,
    ) -> Result<Vec<GeneveRecord>> {
        let filter = format!("udp port {GENEVE_PORT}");
        let id = self.start_capture(FABRIC, UNDERLAY_BRIDGE, &filter, &GENEVE_FIELDS)?;
        let result = traffic(self);
        let rows = self.finish_capture(id);
        result?;
        Ok(rows.iter().filter_map(|r| GeneveRecord::parse(r)).collect())
    }

    /// The VM whose address `ip` is in the VPC with `vni`, if any.
    pub fn vm_at(vni: u32, ip: Ipv4Addr) -> Option<&'static VmDef> {
        let vpc = vpc_by_vni(vni)?;
        VMS.iter()
            .find(|v| v.vpc == vpc.name && v.ip.parse::<Ipv4Addr>().ok() == Some(ip))
    }

    /// The number of packets rule `rule` of security group `group` denied on `host`'s
    /// dataplane (`dp show security-denials -o json`, summed over its workers); `None` when
    /// the dataplane has no counter of that name (the rule is not installed there).
    pub fn rule_denials(&self, host: &str, group: &str, rule: &str) -> Result<Option<u64>> {
        let rest = ["show", "security-denials"];
        let ctl = self.dp(host)?;
        let v = ctl.json(&rest)?;
        let name = format!("{group}/{rule}");
        let list = v["denials"].as_array().ok_or_else(|| LabError::Parse {
            cmd: ctl.display(true, &rest),
            detail: "no \"denials\" array".into(),
            output: v.to_string(),
        })?;
        Ok(list
            .iter()
            .find(|d| d["rule"].as_str() == Some(name.as_str()))
            .and_then(|d| d["count"].as_u64()))
    }

    /// `host`'s tracked connections matching `filter` (`dp show connections` flags such
    /// as `["--port", "b2", "--proto", "tcp"]`), over all its workers, as JSON objects.
    pub fn connections(&self, host: &str, filter: &[&str]) -> Result<Vec<serde_json::Value>> {
        let mut rest = vec!["show", "connections"];
        rest.extend_from_slice(filter);
        let ctl = self.dp(host)?;
        let v = ctl.json(&rest)?;
        let workers = v["workers"].as_array().ok_or_else(|| LabError::Parse {
            cmd: ctl.display(true, &rest),
            detail: "no \"workers\" array".into(),
            output: v.to_string(),
        })?;
        let mut out = Vec::new();
        for w in workers {
            if let Some(e) = w["error"].as_str() {
                return Err(LabError::Parse {
                    cmd: ctl.display(true, &rest),
                    detail: format!("worker {} did not answer: {e}", w["worker"]),
                    output: v.to_string(),
                });
            }
            out.extend(w["connections"].as_array().cloned().unwrap_or_default());
        }
        Ok(out)
    }
}

/// When a dataplane was killed and started again.
#[derive(Debug, Clone, Copy)]
pub struct Restarted {
    /// Just before SIGKILL (monotonic).
    pub killed: Instant,
    /// The same on the wall clock.
    pub killed_wall: SystemTime,
    /// When the new process was spawned.
    pub started: Instant,
    /// When its admin socket accepted connections.
    pub socket_up: Instant,
}

/// The first echo reply in `ping -D` output stamped at or after `after`, as the time from
/// `after` to it.
pub fn first_reply_after(ping_log: &str, after: SystemTime) -> Option<Duration> {
    let t0 = after.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    ping_log.lines().find_map(|l| {
        let rest = l.strip_prefix('[')?;
        let (stamp, text) = rest.split_once(']')?;
        let t: f64 = stamp.parse().ok()?;
        (text.contains("bytes from") && t >= t0).then(|| Duration::from_secs_f64(t - t0))
    })
}

/// The tab-separated rows of a tshark `-T fields` log (other lines — tshark's messages on
/// stderr — have no tab).
pub fn capture_rows(log: &str) -> Vec<Vec<String>> {
    log.lines()
        .filter(|l| l.contains('\t'))
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// TCP listener for [`EastWestLab::tcp_listen`]: argv[1] = port.
const LISTENER_PY: &str = "\
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(16)
print('listening', flush=True)
while True:
    c, a = s.accept()
    print('accepted', a[0], flush=True)
    try:
        c.sendall(b'hello\\n')
    finally:
        c.close()
";

/// TCP client for [`EastWestLab::tcp_connect`]: argv = address, port, timeout.
const CONNECT_PY: &str = "\
import socket, sys
t = float(sys.argv[3])
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=t)
except ConnectionRefusedError:
    print('refused')
except (socket.timeout, TimeoutError):
    print('timeout')
except OSError as e:
    print('error', e)
else:
    s.settimeout(t)
    try:
        print('connected' if s.recv(64) else 'no-greeting')
    except OSError:
        print('no-greeting')
";

// ---------------------------------------------------------------------------------------
// Topology

fn build_topology(lab: &mut Lab) -> Result<()> {
    lab.host(FABRIC)?;
    for br in [UNDERLAY_BRIDGE, MGMT_BRIDGE] {
        lab.ip(FABRIC, &["link", "add", br, "type", "bridge"])?;
        lab.ip(FABRIC, &["link", "set", br, "up"])?;
    }
    lab.addr(FABRIC, MGMT_BRIDGE, &format!("{CP_IP}/24"))?;
    for h in HOSTS {
        lab.host(h)?;
        for (ifname, br, tag) in [
            (UNDERLAY_IF, UNDERLAY_BRIDGE, "ul"),
            (MGMT_IF, MGMT_BRIDGE, "mg"),
        ] {
            let port = format!("{tag}-{h}");
            lab.link(h, ifname, FABRIC, &port)?;
            lab.ip(FABRIC, &["link", "set", &port, "master", br])?;
        }
        lab.addr(h, MGMT_IF, &format!("{}/24", mgmt_ip(h)?))?;
        // The kernel keeps out of the overlay and underlay: the dataplane owns them.
        lab.forwarding(h, false)?;
    }
    for v in VMS {
        lab.host(v.name)?;
        lab.link(v.name, VM_IF, v.host, &v.device())?;
        vm_interface(lab, v.name, VM_IF, v.mac)?;
        lab.addr(v.name, VM_IF, &v.cidr())?;
        lab.default_route(v.name, subnet(v.subnet)?.gateway)?;
        lab.sysctl(v.name, "net.ipv4.icmp_ratelimit", "0")?;
    }
    let mover = vm(MOVER)?;
    lab.link(MOVER, MOVE_IF, MOVE_HOST, MOVE_DEVICE)?;
    vm_interface(lab, MOVER, MOVE_IF, mover.mac)?;
    lab.ip(MOVER, &["link", "set", MOVE_IF, "down"])?;
    Ok(())
}

/// A VM interface: the port's MAC, the overlay MTU, TX checksum offload off (see
/// [`Lab::tx_checksum_off`]).
fn vm_interface(lab: &Lab, vm_name: &str, ifname: &str, mac: &str) -> Result<()> {
    let mtu = VM_MTU.to_string();
    lab.ip(
        vm_name,
        &["link", "set", ifname, "address", mac, "mtu", &mtu],
    )?;
    lab.tx_checksum_off(vm_name, ifname)
}

// ---------------------------------------------------------------------------------------
// Control-plane JSON: the shapes `aegisctl -o json` prints (serde of the protobuf types in
// `controlplane/api/proto/aegis/controlplane/v1/controlplane.proto`): an object is
// `{"name", "created_revision", "modified_revision", "spec": {"<Kind>": {...}}}` with
// enumerations as numbers; a write reply is `{"revision", ...}` (`apply`: a list of them);
// `host list` is `{"revision", "hosts": [{"name", "applied_revision", "apply_error",
// "alive", ...}]}`.

/// The revision of a write reply (`apply`: the highest of the list).
fn write_revision(v: &Value) -> Option<u64> {
    match v {
        Value::Array(list) => list.iter().filter_map(write_revision).max(),
        v => v.get("revision").and_then(Value::as_u64),
    }
}

/// Sets `spec.<kind>.<field>` of an object from `get -o json`.
fn set_spec_field(object: &mut Value, kind: &str, field: &str, value: Value) -> Result<()> {
    let text = object.to_string();
    match object
        .get_mut("spec")
        .and_then(|s| s.get_mut(kind))
        .and_then(Value::as_object_mut)
    {
        Some(spec) => {
            spec.insert(field.to_string(), value);
            Ok(())
        }
        None => Err(LabError::Parse {
            cmd: format!("set {kind}.{field}"),
            detail: format!("no spec.{kind} in the object"),
            output: text,
        }),
    }
}

/// `(revision, hosts)` from `host list -o json`.
fn host_list(v: &Value) -> std::result::Result<(u64, Vec<HostState>), String> {
    let revision = v
        .get("revision")
        .and_then(Value::as_u64)
        .ok_or("no `revision`")?;
    let hosts = v
        .get("hosts")
        .and_then(Value::as_array)
        .ok_or("no `hosts` list")?;
    let rows = hosts
        .iter()
        .map(|h| {
            let text = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default();
            HostState {
                name: text("name").to_string(),
                applied_revision: h
                    .get("applied_revision")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                apply_error: text("apply_error").to_string(),
                alive: h.get("alive").and_then(Value::as_bool).unwrap_or(false),
            }
        })
        .collect();
    Ok((revision, rows))
}

/// A security rule in `--rule` syntax (`id=ssh,dir=ingress,proto=tcp,ports=22,group=G,
/// prio=10,action=allow`) as the JSON of `get -o json` (what `aegisctl` itself would send).
pub fn rule_json(text: &str) -> std::result::Result<Value, String> {
    let mut r = json!({
        "id": "", "direction": 0, "protocol": "any", "port_min": 0, "port_max": 0,
        "remote_cidr": "", "remote_group": "", "priority": 0, "action": 0,
    });
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{text}: {part:?} is not key=value"))?;
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{text}: {k}={s} is not a number"))
        };
        match k {
            "id" => r["id"] = json!(v),
            "dir" | "direction" => {
                r["direction"] = match v {
                    "ingress" | "in" => json!(1),
                    "egress" | "out" => json!(2),
                    _ => return Err(format!("{text}: dir {v:?}")),
                }
            }
            "proto" | "protocol" => r["protocol"] = json!(v),
            "ports" | "port" => {
                let (lo, hi) = v.split_once('-').unwrap_or((v, v));
                r["port_min"] = json!(num(lo)?);
                r["port_max"] = json!(num(hi)?);
            }
            "remote" | "cidr" => r["remote_cidr"] = json!(v),
            "group" => r["remote_group"] = json!(v),
            "prio" | "priority" => r["priority"] = json!(num(v)?),
            "action" => {
                r["action"] = match v {
                    "allow" => json!(1),
                    "deny" => json!(2),
                    _ => return Err(format!("{text}: action {v:?}")),
                }
            }
            _ => return Err(format!("{text}: unknown key {k:?}")),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_tables_are_consistent() {
        let mut macs: Vec<&str> = VMS.iter().map(|v| v.mac).collect();
        macs.sort_unstable();
        macs.dedup();
        assert_eq!(macs.len(), VMS.len(), "MACs are unique");
        for v in VMS {
            let s = subnet(v.subnet).unwrap();
            assert_eq!(s.vpc, v.vpc, "{}", v.name);
            let net = s.cidr.rsplit_once('.').unwrap().0;
            assert!(v.ip.starts_with(&format!("{net}.")), "{}", v.name);
            assert!(HOSTS.contains(&v.host), "{}", v.name);
            assert!(v.device().len() <= crate::names::IFNAME_MAX);
        }
        assert_eq!(underlay_ip("c3").unwrap(), "10.88.0.13");
        assert_eq!(mgmt_ip("c1").unwrap(), "10.99.0.11");
        assert!(underlay_ip("x1").is_err());
        assert_eq!(host_devices("c1"), ["ul0", "vm-b1", "vm-b3", "vm-r3"]);
        assert_eq!(host_devices("c3"), ["ul0", "vm-b4", "vm-r2", "vm-b2m"]);
        let d = declarations().unwrap();
        assert_eq!(d.len(), 3 + 2 + 5 + 1 + 7);
        assert_eq!(
            EastWestLab::vm_at(200, "10.1.1.11".parse().unwrap()).map(|v| v.name),
            Some("r1")
        );
        assert_eq!(
            EastWestLab::vm_at(100, "10.1.1.11".parse().unwrap()).map(|v| v.name),
            Some("b1")
        );
    }

    #[test]
    fn geneve_rows_from_tshark_fields() {
        // As tshark 3.x/4.x prints them (checked with a crafted Geneve packet on a bridge).
        let log = "Running as user \"root\" and group \"root\". This could be dangerous.\n\
                   Capturing on 'br-ul'\n\
                   0x000064\t10.88.0.11,10.1.1.11\t10.88.0.12,10.1.1.12\t50000\n\
                   0x0000c8\t10.88.0.12,10.1.1.12\t10.88.0.13,10.1.1.11\t61234,33434\n\
                   \t10.88.0.11\t10.88.0.12\t6081\n\
                   3 packets captured\n";
        let rows = capture_rows(log);
        assert_eq!(rows.len(), 3);
        let r: Vec<GeneveRecord> = rows.iter().filter_map(|r| GeneveRecord::parse(r)).collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].vni, 100);
        assert_eq!(r[0].outer_src, Ipv4Addr::new(10, 88, 0, 11));
        assert_eq!(r[0].inner_dst, Ipv4Addr::new(10, 1, 1, 12));
        assert_eq!(r[1].vni, 200);
        assert_eq!(r[1].udp_src_port, 61234);
        assert_eq!(r[1].inner_dst, Ipv4Addr::new(10, 1, 1, 11));
        assert_eq!(parse_number("0x000064 (100)"), Some(100));
        assert_eq!(parse_number("200"), Some(200));
    }

    #[test]
    fn first_reply_after_reads_ping_timestamps() {
        let log = "PING 10.1.1.12 (10.1.1.12) 56(84) bytes of data.\n\
                   [1700000000.100000] 64 bytes from 10.1.1.12: icmp_seq=1 ttl=64 time=0.1 ms\n\
                   [1700000001.000000] From 10.1.1.11 icmp_seq=9 Destination Host Unreachable\n\
                   [1700000001.250000] 64 bytes from 10.1.1.12: icmp_seq=20 ttl=64 time=0.1 ms\n";
        let t = UNIX_EPOCH + Duration::from_secs_f64(1_700_000_000.5);
        let d = first_reply_after(log, t).unwrap();
        assert!((d.as_secs_f64() - 0.75).abs() < 1e-3, "{d:?}");
        let late = UNIX_EPOCH + Duration::from_secs(1_700_000_002);
        assert_eq!(first_reply_after(log, late), None);
    }

    #[test]
    fn echo_frames_go_to_the_router_with_the_given_sources() {
        let f = EastWestLab::echo_frame("02:00:00:00:64:01", "10.1.1.99", "10.1.1.12", 7).unwrap();
        assert_eq!(f[0..6], [0x02, 0xae, 0, 0, 0, 1]);
        assert_eq!(f[6..12], [0x02, 0, 0, 0, 0x64, 0x01]);
        assert_eq!(f[12..14], [0x08, 0x00]);
        assert_eq!(f[14 + 12..14 + 16], [10, 1, 1, 99]);
        assert_eq!(f[14 + 16..14 + 20], [10, 1, 1, 12]);
        assert_eq!(frames::checksum(&f[14..34]), 0, "IPv4 header checksum");
        assert_eq!(f[34], 8, "echo request");
        assert!(EastWestLab::echo_frame("nope", "10.1.1.1", "10.1.1.2", 0).is_err());
    }

    #[test]
    fn rules_become_the_json_of_get() {
        let r =
            rule_json("id=ssh,dir=ingress,proto=tcp,ports=22,group=sg-web,prio=10,action=allow")
                .unwrap();
        assert_eq!(
            r,
            json!({"id": "ssh", "direction": 1, "protocol": "tcp", "port_min": 22,
                   "port_max": 22, "remote_cidr": "", "remote_group": "sg-web",
                   "priority": 10, "action": 1})
        );
        let r = rule_json("id=x,dir=egress,ports=80-443,remote=0.0.0.0/0,action=deny").unwrap();
        assert_eq!(
            (r["direction"].clone(), r["action"].clone()),
            (json!(2), json!(2))
        );
        assert_eq!(
            (r["port_min"].clone(), r["port_max"].clone()),
            (json!(80), json!(443))
        );
        assert!(rule_json("id=x,colour=red").is_err());
        assert!(rule_json("id=x,dir=up").is_err());
    }

    #[test]
    fn object_edits_and_replies() {
        let mut o = json!({"name": "b1", "spec": {"Port": {"host": "c1", "device": "vm-b1"}}});
        set_spec_field(&mut o, "Port", "host", json!("c3")).unwrap();
        assert_eq!(o["spec"]["Port"]["host"], "c3");
        assert!(set_spec_field(&mut o, "SecurityGroup", "rules", json!([])).is_err());
        assert_eq!(write_revision(&json!({"revision": 7})), Some(7));
        assert_eq!(
            write_revision(&json!([{"revision": 7}, {"revision": 9}])),
            Some(9)
        );
        let v = json!({"revision": 5, "hosts": [{"name": "c1", "applied_revision": 5,
                       "apply_error": "", "alive": true}]});
        let (rev, hosts) = host_list(&v).unwrap();
        assert_eq!(rev, 5);
        assert_eq!(hosts.len(), 1);
        assert!(hosts[0].converged_to(5) && !hosts[0].converged_to(6));
    }
}
