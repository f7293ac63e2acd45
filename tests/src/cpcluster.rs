//! Control-plane labs: a 3-node `aegis-controlplane` cluster on a bridge in network namespaces
//! ([`CpCluster`]), a single node on loopback without root ([`LocalCp`]), and a gRPC writer
//! that records which writes were acknowledged ([`spawn_writers`]). Used by
//! `tests/cp_cluster.rs`, `tests/cp_restart.rs` and the `aegis-cp-bench` measurement tool.
//!
//! ```text
//!   n1 10.77.0.1 ─┐
//!   n2 10.77.0.2 ─┤ br0 (in host "sw")      cluster IP 10.77.0.100/24 on the leader's eth0
//!   n3 10.77.0.3 ─┤
//!   client .50  ──┘
//! ```
//!
//! Every node host has one veth `eth0` whose peer `p<N>` is a port of the bridge `br0` in the
//! switch host `sw`; the client's peer is `pc`. The namespaces isolate each lab completely, so
//! every lab uses the same addresses and tests still run in parallel.
//!
//! Nodes are queried with `aegisctl` (the operator's tool), run in a namespace with
//! `ip netns exec`; writes use the gRPC API directly, from a thread that entered the client's
//! namespace (`setns(2)` moves only the calling thread, and the writer's current-thread tokio
//! runtime creates every socket on that thread). A write counts as acknowledged when the server
//! answered OK, or `ALREADY_EXISTS` to a retry (the first attempt was applied but its answer
//! was lost). Anything else is unacknowledged: it may or may not have been applied.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aegis_api::controlplane::v1::{
    desired_state_client::DesiredStateClient, object::Spec, Object, Vpc, WriteRequest,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::cleanup;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::names::LabId;
use crate::wait::{self, Poll};
use crate::{Bins, Lab, ProcId};

/// The control plane's gRPC port in the labs.
pub const PORT: u16 = 7400;

/// Raft timing flags of `aegis-controlplane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `--heartbeat-ms`.
    pub heartbeat_ms: u64,
    /// `--election-min-ms` (also the leader's lease on the cluster IP).
    pub election_min_ms: u64,
    /// `--election-max-ms`.
    pub election_max_ms: u64,
}

impl Default for Timing {
    /// The daemon's defaults: 50 / 300 / 600 ms.
    fn default() -> Self {
        Timing {
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 600,
        }
    }
}

impl Timing {
    fn args(&self) -> Vec<String> {
        vec![
            "--heartbeat-ms".into(),
            self.heartbeat_ms.to_string(),
            "--election-min-ms".into(),
            self.election_min_ms.to_string(),
            "--election-max-ms".into(),
            self.election_max_ms.to_string(),
        ]
    }
}

/// What `aegisctl cluster status -o json` says about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The answering node.
    pub node_id: u64,
    /// leader, follower, candidate, learner.
    pub state: String,
    /// The leader it knows (0: none).
    pub leader_id: u64,
    /// Raft term.
    pub term: u64,
    /// Last applied log index.
    pub last_applied_index: u64,
    /// Desired-state revision of its state machine.
    pub revision: u64,
    /// Number of voting members.
    pub voters: usize,
    /// Whether it holds the cluster IP (its own view).
    pub holds_cluster_ip: bool,
}

impl Status {
    /// Reads the JSON of `cluster status -o json`.
    pub fn parse(v: &Value) -> std::result::Result<Status, String> {
        let num = |k: &str| v.get(k).and_then(json_u64).unwrap_or(0);
        let node_id = v
            .get("node_id")
            .and_then(json_u64)
            .ok_or("no numeric `node_id`")?;
        let members = v
            .get("members")
            .and_then(Value::as_array)
            .ok_or("no `members` list")?;
        Ok(Status {
            node_id,
            state: v
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            leader_id: num("leader_id"),
            term: num("term"),
            last_applied_index: num("last_applied_index"),
            revision: num("revision"),
            voters: members
                .iter()
                .filter(|m| m.get("voter").and_then(Value::as_bool) == Some(true))
                .count(),
            holds_cluster_ip: v.get("holds_cluster_ip").and_then(Value::as_bool) == Some(true),
        })
    }

    /// True when this node says it is the leader.
    pub fn is_leader(&self) -> bool {
        self.state == "leader"
    }
}

fn json_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Object names from `<kind> list -o json` (`{"objects": [{"name": ..}]}` or a bare list).
pub fn object_names(v: &Value) -> std::result::Result<BTreeSet<String>, String> {
    let list = v
        .get("objects")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .ok_or("expected `{\"objects\": [...]}` or a list")?;
    list.iter()
        .map(|o| {
            o.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("an object without a name: {o}"))
        })
        .collect()
}

/// Turns an `aegisctl ... -o json` output into JSON, or an error with its stderr.
fn ctl_json(line: &str, out: Output) -> Result<Value> {
    let text = cmd::checked(line, out)?;
    serde_json::from_str(&text).map_err(|e| LabError::Parse {
        cmd: line.to_string(),
        detail: e.to_string(),
        output: text,
    })
}

fn parse_err(line: &str, detail: String, v: &Value) -> LabError {
    LabError::Parse {
        cmd: line.to_string(),
        detail,
        output: v.to_string(),
    }
}

/// SIGKILLs `pid` (a child of this process: it cannot have been reused before we reap it).
fn sigkill(pid: u32) -> Result<()> {
    let raw = i32::try_from(pid).map_err(|_| LabError::Spawn {
        cmd: format!("kill -KILL {pid}"),
        source: std::io::Error::other("pid out of range"),
    })?;
    kill(Pid::from_raw(raw), Signal::SIGKILL).map_err(|e| LabError::Spawn {
        cmd: format!("kill -KILL {pid}"),
        source: std::io::Error::from(e),
    })
}

// ---------------------------------------------------------------------------------------------
// The 3-node cluster in namespaces

/// One node's process slot.
#[derive(Debug)]
struct NodeSlot {
    proc: Option<ProcId>,
    starts: u32,
}

/// A control-plane cluster on a bridge, plus a client host (see the module doc).
#[derive(Debug)]
pub struct CpCluster {
    /// The namespaces, links and processes.
    pub lab: Lab,
    cp: PathBuf,
    ctl: PathBuf,
    timing: Timing,
    nodes: Vec<NodeSlot>,
}

impl CpCluster {
    /// The switch host (holds the bridge `br0`).
    pub const SWITCH: &'static str = "sw";
    /// The client host.
    pub const CLIENT: &'static str = "client";
    /// Every host's interface to the LAN.
    pub const IF: &'static str = "eth0";
    /// The cluster IP.
    pub const CLUSTER_IP: &'static str = "10.77.0.100";
    /// The client's address.
    pub const CLIENT_IP: &'static str = "10.77.0.50";

    /// Node `id`'s host name.
    pub fn host(id: u64) -> String {
        format!("n{id}")
    }

    /// Node `id`'s address.
    pub fn addr(id: u64) -> String {
        format!("10.77.0.{id}")
    }

    /// Node `id`'s gRPC endpoint.
    pub fn endpoint(id: u64) -> String {
        format!("10.77.0.{id}:{PORT}")
    }

    /// The cluster IP's gRPC endpoint.
    pub fn vip_endpoint() -> String {
        format!("{}:{PORT}", Self::CLUSTER_IP)
    }

    /// The bridge port of node `id`.
    pub fn switch_port(id: u64) -> String {
        format!("p{id}")
    }

    /// Builds the topology and starts `size` nodes: node 1 forms the cluster, the others join
    /// through it. Returns once every node is a voter and the cluster IP answers ping from
    /// the client.
    pub fn start(prefix: &str, bins: &Bins, size: u64, timing: Timing) -> Result<CpCluster> {
        let cp = bins.controlplane()?;
        let ctl = bins.aegisctl()?;
        let mut lab = Lab::new(prefix)?;
        lab.set_exec_limit(Duration::from_secs(20));
        lab.host(Self::SWITCH)?;
        lab.ip(Self::SWITCH, &["link", "add", "br0", "type", "bridge"])?;
        lab.ip(Self::SWITCH, &["link", "set", "br0", "up"])?;
        let attach = |lab: &mut Lab, host: &str, port: &str, cidr: &str| -> Result<()> {
            lab.host(host)?;
            lab.link(host, Self::IF, Self::SWITCH, port)?;
            lab.ip(Self::SWITCH, &["link", "set", port, "master", "br0"])?;
            lab.addr(host, Self::IF, cidr)
        };
        for id in 1..=size {
            attach(
                &mut lab,
                &Self::host(id),
                &Self::switch_port(id),
                &format!("{}/24", Self::addr(id)),
            )?;
        }
        attach(
            &mut lab,
            Self::CLIENT,
            "pc",
            &format!("{}/24", Self::CLIENT_IP),
        )?;
        let mut c = CpCluster {
            lab,
            cp,
            ctl,
            timing,
            nodes: (0..size)
                .map(|_| NodeSlot {
                    proc: None,
                    starts: 0,
                })
                .collect(),
        };
        c.start_node(1, false)?;
        c.wait_leader(&[1], None, Duration::from_secs(15))?;
        for id in 2..=size {
            c.start_node(id, true)?;
        }
        let all: Vec<u64> = (1..=size).collect();
        let what = format!("{size} voters");
        wait::until(
            &what,
            Duration::from_secs(30),
            Duration::from_millis(100),
            || match c.status_of(1) {
                Ok(s) if s.voters == all.len() => Poll::Ready(()),
                Ok(s) => Poll::Pending(format!("{s:?}")),
                Err(e) => Poll::Pending(e.to_string()),
            },
        )?;
        c.wait_leader(&all, None, Duration::from_secs(15))?;
        c.lab
            .wait_ping(Self::CLIENT, Self::CLUSTER_IP, Duration::from_secs(10))?;
        Ok(c)
    }

    /// The ids of all nodes.
    pub fn ids(&self) -> Vec<u64> {
        (1..=self.nodes.len() as u64).collect()
    }

    /// Starts (or restarts, on the same data dir) node `id`; `join`: with `--join` node 1.
    pub fn start_node(&mut self, id: u64, join: bool) -> Result<ProcId> {
        let slot = &self.nodes[(id - 1) as usize];
        let name = match slot.starts {
            0 => format!("cp{id}"),
            n => format!("cp{id}-r{n}"),
        };
        let host = Self::host(id);
        let data = self.lab.path(&format!("data-n{id}"));
        let mut args: Vec<String> = vec![
            "--id".into(),
            id.to_string(),
            // All addresses: the API must answer on the cluster IP too, not only on the
            // node's own address (which peers use, from --advertise).
            "--listen".into(),
            format!("0.0.0.0:{PORT}"),
            "--advertise".into(),
            Self::endpoint(id),
            "--data-dir".into(),
            data.display().to_string(),
            "--cluster-ip".into(),
            format!("{}/24", Self::CLUSTER_IP),
            "--cluster-ip-interface".into(),
            Self::IF.into(),
        ];
        args.extend(self.timing.args());
        if join {
            args.extend(["--join".into(), Self::endpoint(1)]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let cp = self.cp.display().to_string();
        let p = self.lab.spawn(&host, &name, &cp, &argv)?;
        let slot = &mut self.nodes[(id - 1) as usize];
        slot.proc = Some(p);
        slot.starts += 1;
        Ok(p)
    }

    /// The current process of node `id`.
    pub fn proc(&self, id: u64) -> Option<ProcId> {
        self.nodes.get((id - 1) as usize).and_then(|s| s.proc)
    }

    /// `kill -9` node `id`; returns the instant just before the signal, once it is reaped.
    pub fn kill9(&mut self, id: u64) -> Result<(Instant, ExitStatus)> {
        let p = self.proc(id).ok_or(LabError::UnknownHost(Self::host(id)))?;
        let d = self.lab.proc(p);
        let at = Instant::now();
        sigkill(d.pid())?;
        let status = d.wait(crate::process::KILL_EXIT_LIMIT)?;
        Ok((at, status))
    }

    /// True while node `id`'s current process runs.
    pub fn is_running(&mut self, id: u64) -> bool {
        match self.proc(id) {
            Some(p) => self.lab.proc(p).is_running(),
            None => false,
        }
    }

    /// Fails with the log tail of any node whose current process exited.
    pub fn check_alive(&mut self, what: &str) -> Result<()> {
        for id in self.ids() {
            if let Some(p) = self.proc(id) {
                if let Some(e) = self.lab.exited_error(p, what) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Runs `aegisctl --server SERVER --retry-for 0 ARGS` in `host`.
    pub fn ctl(&self, host: &str, server: &str, args: &[&str]) -> Result<Output> {
        let ctl = self.ctl.display().to_string();
        let mut argv = vec!["--server", server, "--retry-for", "0"];
        argv.extend_from_slice(args);
        self.lab.exec(host, &ctl, &argv)
    }

    fn ctl_json(&self, host: &str, server: &str, args: &[&str]) -> Result<Value> {
        let out = self.ctl(host, server, args)?;
        let line = format!(
            "ip netns exec {} aegisctl --server {server} --retry-for 0 {}",
            self.lab.ns(host)?,
            args.join(" ")
        );
        ctl_json(&line, out)
    }

    /// `cluster status` of node `id`, asked from inside its own namespace (works while it is
    /// cut off from the LAN).
    pub fn status_of(&self, id: u64) -> Result<Status> {
        self.status(&Self::host(id), &Self::endpoint(id))
    }

    /// `cluster status` of `server`, asked from `host`.
    pub fn status(&self, host: &str, server: &str) -> Result<Status> {
        let v = self.ctl_json(host, server, &["cluster", "status", "-o", "json"])?;
        Status::parse(&v).map_err(|d| parse_err("aegisctl cluster status -o json", d, &v))
    }

    /// Waits until one of `among` (other than `not`) is leader and every node of `among`
    /// names it as leader; returns its id.
    pub fn wait_leader(&self, among: &[u64], not: Option<u64>, limit: Duration) -> Result<u64> {
        wait::until(
            "a leader all nodes agree on",
            limit,
            Duration::from_millis(50),
            || {
                let mut seen = Vec::new();
                for &id in among {
                    match self.status_of(id) {
                        Ok(s) => seen.push(s),
                        Err(e) => return Poll::Pending(format!("node {id}: {e}")),
                    }
                }
                let leaders: Vec<u64> = seen
                    .iter()
                    .filter(|s| s.is_leader())
                    .map(|s| s.node_id)
                    .collect();
                match leaders.as_slice() {
                    [l] if Some(*l) != not && seen.iter().all(|s| s.leader_id == *l) => {
                        Poll::Ready(*l)
                    }
                    _ => Poll::Pending(format!("{seen:?}")),
                }
            },
        )
    }

    /// Waits until every node of `ids` reports the same revision and applied index, and
    /// returns the revision.
    pub fn wait_converged(&self, ids: &[u64], limit: Duration) -> Result<u64> {
        wait::until(
            "all nodes at the same revision",
            limit,
            Duration::from_millis(100),
            || {
                let mut seen = Vec::new();
                for &id in ids {
                    match self.status_of(id) {
                        Ok(s) => seen.push(s),
                        Err(e) => return Poll::Pending(format!("node {id}: {e}")),
                    }
                }
                let first = &seen[0];
                if seen.iter().all(|s| {
                    s.revision == first.revision
                        && s.last_applied_index == first.last_applied_index
                        && s.leader_id == first.leader_id
                        && s.leader_id != 0
                }) {
                    Poll::Ready(first.revision)
                } else {
                    Poll::Pending(format!("{seen:?}"))
                }
            },
        )
    }

    /// Whether the cluster IP is on node `id`'s interface (the kernel's view).
    pub fn has_cluster_ip(&self, id: u64) -> Result<bool> {
        let out = self.lab.ip(
            &Self::host(id),
            &["-4", "-o", "addr", "show", "dev", Self::IF],
        )?;
        Ok(out.contains(&format!(" {}/", Self::CLUSTER_IP)))
    }

    /// The nodes of `ids` whose interface has the cluster IP.
    pub fn cluster_ip_holders(&self, ids: &[u64]) -> Result<Vec<u64>> {
        let mut v = Vec::new();
        for &id in ids {
            if self.has_cluster_ip(id)? {
                v.push(id);
            }
        }
        Ok(v)
    }

    /// The MAC of node `id`'s interface.
    pub fn mac(&self, id: u64) -> Result<String> {
        self.lab.mac(&Self::host(id), Self::IF)
    }

    /// The MAC the client's neighbour table has for the cluster IP, if any.
    pub fn client_cluster_ip_mac(&self) -> Result<Option<String>> {
        let out = self
            .lab
            .ip(Self::CLIENT, &["neigh", "show", Self::CLUSTER_IP])?;
        let mut words = out.split_whitespace();
        while let Some(w) = words.next() {
            if w == "lladdr" {
                return Ok(words.next().map(str::to_string));
            }
        }
        Ok(None)
    }

    /// Cuts (`up = false`) or restores node `id`'s cable: its bridge port goes down, so its
    /// `eth0` loses carrier but keeps its addresses (the node still reaches itself).
    pub fn cable(&self, id: u64, up: bool) -> Result<()> {
        let port = Self::switch_port(id);
        self.lab
            .ip(
                Self::SWITCH,
                &["link", "set", &port, if up { "up" } else { "down" }],
            )
            .map(drop)
    }

    /// Names of the VPCs, listed by `server` and asked from `host`.
    pub fn vpc_names(&self, host: &str, server: &str) -> Result<BTreeSet<String>> {
        let v = self.ctl_json(host, server, &["vpc", "list", "-o", "json"])?;
        object_names(&v).map_err(|d| parse_err("aegisctl vpc list -o json", d, &v))
    }

    /// The network-namespace path of `host`, for [`spawn_writers`].
    pub fn netns_path(&self, host: &str) -> Result<PathBuf> {
        Ok(Path::new("/run/netns").join(self.lab.ns(host)?))
    }
}

// ---------------------------------------------------------------------------------------------
// One node on loopback (no root)

/// A single control-plane node on `127.0.0.1:<free port>` with its data dir in a temp dir
/// named like a lab's (so `aegis-lab cleanup` finds leftovers); killed and removed on drop.
#[derive(Debug)]
pub struct LocalCp {
    id: LabId,
    dir: PathBuf,
    cp: PathBuf,
    ctl: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: u32,
}

impl LocalCp {
    /// A node that is not started yet.
    pub fn new(prefix: &str, bins: &Bins) -> Result<LocalCp> {
        let cp = bins.controlplane()?;
        let ctl = bins.aegisctl()?;
        let id = LabId::new(prefix)?;
        let dir = cleanup::lab_dir(&id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        let port = free_port()?;
        Ok(LocalCp {
            id,
            dir,
            cp,
            ctl,
            port,
            child: None,
            starts: 0,
        })
    }

    /// The gRPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The temp dir (data dir, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.join(format!("cp-{start}.log"))
    }

    /// Starts the node (again, on the same data dir) and waits until it leads.
    pub fn start(&mut self) -> Result<()> {
        self.starts += 1;
        let log = self.log_path(self.starts);
        let out = File::create(&log).map_err(|source| LabError::Io {
            what: "create log",
            path: log.clone(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| LabError::Io {
            what: "duplicate log handle",
            path: log.clone(),
            source,
        })?;
        let data = self.dir.join("data").display().to_string();
        let endpoint = self.endpoint();
        let cp = self.cp.display().to_string();
        let mut argv: Vec<&str> = Vec::new();
        // Parent-death signal: the node dies with the test process even if Drop never runs.
        let program = if crate::env::which("setpriv").is_some() {
            argv.extend(["--pdeathsig", "KILL", "--", cp.as_str()]);
            "setpriv"
        } else {
            cp.as_str()
        };
        argv.extend(["--id", "1", "--listen", &endpoint, "--data-dir", &data]);
        let child = Command::new(program)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| LabError::Spawn {
                cmd: cmd::display(program, &argv),
                source,
            })?;
        self.child = Some(child);
        let what = format!("node {endpoint} to lead");
        wait::until(
            &what,
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                if let Some(Ok(Some(s))) = self.child.as_mut().map(Child::try_wait) {
                    return Poll::Fail(LabError::Exited {
                        name: "aegis-controlplane".into(),
                        status: cmd::status_text(s),
                        what: what.clone(),
                        log_tail: self.log_tail(30),
                    });
                }
                match self.status() {
                    Ok(s) if s.is_leader() => Poll::Ready(()),
                    Ok(s) => Poll::Pending(format!("{s:?}")),
                    Err(e) => Poll::Pending(e.to_string()),
                }
            },
        )
    }

    /// `kill -9` the node; returns how it ended (must be signal 9).
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or(LabError::UnknownHost("node".into()))?;
        sigkill(child.id())?;
        child.wait().map_err(|source| LabError::Spawn {
            cmd: "wait for aegis-controlplane".into(),
            source,
        })
    }

    /// The last `lines` of the current run's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read(self.log_path(self.starts))
            .map(|b| cmd::lossy(&b))
            .unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs `aegisctl --server <node> --retry-for 0 ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Result<Output> {
        let endpoint = self.endpoint();
        let mut argv = vec!["--server", endpoint.as_str(), "--retry-for", "0"];
        argv.extend_from_slice(args);
        cmd::output(
            &self.ctl.display().to_string(),
            &argv,
            None,
            Duration::from_secs(20),
        )
    }

    fn ctl_json(&self, args: &[&str]) -> Result<Value> {
        let line = format!("aegisctl --server {} {}", self.endpoint(), args.join(" "));
        ctl_json(&line, self.ctl(args)?)
    }

    /// `cluster status`.
    pub fn status(&self) -> Result<Status> {
        let v = self.ctl_json(&["cluster", "status", "-o", "json"])?;
        Status::parse(&v).map_err(|d| parse_err("aegisctl cluster status -o json", d, &v))
    }

    /// `vpc list` names, and the revision the list was read at.
    pub fn vpc_names(&self) -> Result<(BTreeSet<String>, u64)> {
        let v = self.ctl_json(&["vpc", "list", "-o", "json"])?;
        let names = object_names(&v).map_err(|d| parse_err("aegisctl vpc list", d, &v))?;
        let rev = v.get("revision").and_then(json_u64).unwrap_or(0);
        Ok((names, rev))
    }
}

impl Drop for LocalCp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {}: log tail of aegis-controlplane ---\n{}\n---",
                self.id,
                self.log_tail(40)
            );
        }
        let keep = std::env::var(crate::lab::KEEP_ENV).is_ok_and(|v| v == "1");
        if keep {
            eprintln!("{}: kept {}", self.id, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| LabError::Io {
            what: "bind",
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })
}

// ---------------------------------------------------------------------------------------------
// Writers

/// How one logical write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered OK.
    Acked,
    /// A retry got ALREADY_EXISTS: an earlier attempt was applied.
    AckedExisting,
    /// No answer that proves it applied (the writer stopped while retrying).
    Unacked(String),
    /// The server refused it for another reason (a bug in the test or the server).
    Rejected(String),
}

/// One logical write (a `vpc create`, retried until it is answered).
#[derive(Debug, Clone)]
pub struct WriteRecord {
    /// The VPC's name (`v<vni>`).
    pub name: String,
    /// Which writer task sent it.
    pub writer: usize,
    /// When the first attempt was sent.
    pub started: Instant,
    /// When the last attempt was sent.
    pub last_attempt: Instant,
    /// When it ended.
    pub finished: Instant,
    /// Attempts made.
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
}

impl WriteRecord {
    /// True when the server acknowledged it (it must be present afterwards).
    pub fn acked(&self) -> bool {
        matches!(self.outcome, Outcome::Acked | Outcome::AckedExisting)
    }

    /// Latency of the attempt that succeeded.
    pub fn latency(&self) -> Duration {
        self.finished - self.last_attempt
    }
}

/// A failed attempt (retried).
#[derive(Debug, Clone)]
pub struct AttemptError {
    /// When the answer came.
    pub at: Instant,
    /// Its gRPC code.
    pub code: Code,
    /// Its message.
    pub message: String,
}

/// Everything a set of writers did.
#[derive(Debug, Clone, Default)]
pub struct Writes {
    /// Every logical write, in the order each writer sent them.
    pub records: Vec<WriteRecord>,
    /// Every failed (retried) attempt.
    pub errors: Vec<AttemptError>,
}

impl Writes {
    /// The names of the acknowledged writes.
    pub fn acked_names(&self) -> BTreeSet<String> {
        self.records
            .iter()
            .filter(|r| r.acked())
            .map(|r| r.name.clone())
            .collect()
    }

    /// Writes the server refused (neither acknowledged nor retryable).
    pub fn rejected(&self) -> Vec<&WriteRecord> {
        self.records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Rejected(_)))
            .collect()
    }

    /// The first acknowledged write whose successful attempt was sent after `t` (an answer
    /// to an attempt sent before `t` may be read just after it).
    pub fn first_ack_after(&self, t: Instant) -> Option<&WriteRecord> {
        self.records
            .iter()
            .filter(|r| r.acked() && r.last_attempt > t)
            .min_by_key(|r| r.finished)
    }

    /// Latencies of the writes acknowledged at the first attempt, sorted.
    pub fn latencies(&self) -> Vec<Duration> {
        let mut v: Vec<Duration> = self
            .records
            .iter()
            .filter(|r| r.outcome == Outcome::Acked && r.attempts == 1)
            .map(WriteRecord::latency)
            .collect();
        v.sort();
        v
    }

    /// A summary of the failed attempts: code and message, counted.
    pub fn error_summary(&self) -> String {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for e in &self.errors {
            let msg: String = e.message.chars().take(100).collect();
            *counts.entry(format!("{:?}: {msg}", e.code)).or_default() += 1;
        }
        counts
            .iter()
            .map(|(k, n)| format!("{n} x {k}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The `p`-th percentile (0..=100) of sorted `v`.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// What writers to run.
#[derive(Debug, Clone)]
pub struct WriterSpec {
    /// `host:port` to write to.
    pub server: String,
    /// Concurrent writers, each with its own connection, one write in flight each.
    pub writers: usize,
    /// The next VNI to use; VPC names are `v<vni>`. Shared, so runs never reuse a name.
    pub next_vni: Arc<AtomicU32>,
    /// Stop sending new writes once this turns true (a write being retried is given up).
    pub stop: Arc<AtomicBool>,
    /// Stop after this many logical writes in all (None: until `stop`).
    pub limit: Option<u32>,
    /// Client-side limit of one attempt.
    pub attempt_timeout: Duration,
    /// Pause before retrying a failed attempt.
    pub retry_pause: Duration,
}

impl WriterSpec {
    /// `writers` writers to `server` until stopped, 2 s per attempt, 20 ms between retries.
    pub fn new(server: impl Into<String>, writers: usize) -> WriterSpec {
        WriterSpec {
            server: server.into(),
            writers,
            next_vni: Arc::new(AtomicU32::new(1)),
            stop: Arc::new(AtomicBool::new(false)),
            limit: None,
            attempt_timeout: Duration::from_secs(2),
            retry_pause: Duration::from_millis(20),
        }
    }
}

/// Runs the writers of `spec` on a new thread — inside the network namespace at `netns`
/// (`/run/netns/NAME`) when given — until `spec.stop` turns true or `spec.limit` writes were
/// made. Join the handle for the record.
pub fn spawn_writers(netns: Option<PathBuf>, spec: WriterSpec) -> JoinHandle<Result<Writes>> {
    thread::spawn(move || {
        if let Some(path) = &netns {
            let f = File::open(path).map_err(|source| LabError::Io {
                what: "open netns",
                path: path.clone(),
                source,
            })?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                LabError::Io {
                    what: "setns",
                    path: path.clone(),
                    source: std::io::Error::from(e),
                }
            })?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| LabError::Spawn {
                cmd: "tokio runtime".into(),
                source,
            })?;
        Ok(rt.block_on(run_writers(spec)))
    })
}

async fn run_writers(spec: WriterSpec) -> Writes {
    let issued = Arc::new(AtomicU32::new(0));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..spec.writers {
        set.spawn(writer(w, spec.clone(), issued.clone()));
    }
    let mut all = Writes::default();
    while let Some(r) = set.join_next().await {
        if let Ok(mut w) = r {
            all.records.append(&mut w.records);
            all.errors.append(&mut w.errors);
        }
    }
    all.records.sort_by_key(|r| r.started);
    all.errors.sort_by_key(|e| e.at);
    all
}

fn client(spec: &WriterSpec) -> Option<DesiredStateClient<Channel>> {
    let ep = Endpoint::from_shared(format!("http://{}", spec.server)).ok()?;
    let ch = ep
        .connect_timeout(Duration::from_millis(500))
        .timeout(spec.attempt_timeout)
        .tcp_nodelay(true)
        .connect_lazy();
    Some(DesiredStateClient::new(ch))
}

async fn writer(w: usize, spec: WriterSpec, issued: Arc<AtomicU32>) -> Writes {
    let mut out = Writes::default();
    let mut c = client(&spec);
    loop {
        if spec.stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(limit) = spec.limit {
            if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        let vni = spec.next_vni.fetch_add(1, Ordering::Relaxed);
        let name = format!("v{vni}");
        let started = Instant::now();
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let last_attempt = Instant::now();
            let Some(cl) = c.as_mut() else {
                break (
                    last_attempt,
                    Outcome::Rejected(format!("bad server address {:?}", spec.server)),
                );
            };
            let obj = Object {
                name: name.clone(),
                spec: Some(Spec::Vpc(Vpc {
                    vni,
                    description: String::new(),
                })),
                ..Default::default()
            };
            // The channel's own timeout does not cover a request queued while the channel
            // reconnects (seen to hang forever after a partition), so bound the whole call.
            let call = cl.create(WriteRequest {
                object: Some(obj),
                expected_revision: 0,
            });
            let r = match tokio::time::timeout(spec.attempt_timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(tonic::Status::deadline_exceeded(
                    "no answer within the attempt timeout (client side)",
                )),
            };
            match r {
                Ok(_) => break (last_attempt, Outcome::Acked),
                Err(s) if s.code() == Code::AlreadyExists && attempts > 1 => {
                    break (last_attempt, Outcome::AckedExisting)
                }
                Err(s)
                    if matches!(
                        s.code(),
                        Code::Unavailable
                            | Code::Unknown
                            | Code::Cancelled
                            | Code::DeadlineExceeded
                            | Code::Internal
                    ) =>
                {
                    out.errors.push(AttemptError {
                        at: Instant::now(),
                        code: s.code(),
                        message: s.message().to_string(),
                    });
                    if spec.stop.load(Ordering::Relaxed) {
                        break (
                            last_attempt,
                            Outcome::Unacked(format!("{:?}: {}", s.code(), s.message())),
                        );
                    }
                    tokio::time::sleep(spec.retry_pause).await;
                    // A fresh connection: the old one may lead to a dead or deposed node.
                    c = client(&spec);
                }
                Err(s) => {
                    break (
                        last_attempt,
                        Outcome::Rejected(format!("{:?}: {}", s.code(), s.message())),
                    )
                }
            }
        };
        let (last_attempt, outcome) = outcome;
        out.records.push(WriteRecord {
            name,
            writer: w,
            started,
            last_attempt,
            finished: Instant::now(),
            attempts,
            outcome,
        });
    }
    out
}

/// Reply times (unix seconds) from the log of `ping -D`.
pub fn ping_reply_times(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let ts = l.strip_prefix('[')?.split(']').next()?;
            ts.parse().ok()
        })
        .collect()
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_from_json() {
        let v = json!({
            "node_id": 2, "state": "leader", "leader_id": 2, "leader_address": "x", "term": 3,
            "last_log_index": 9, "last_applied_index": 9, "revision": 5,
            "members": [{"id": 1, "voter": true}, {"id": 2, "voter": true}, {"id": 3, "voter": false}],
            "cluster_ip": "", "holds_cluster_ip": true, "quorum_ack_ms_ago": 1
        });
        let s = Status::parse(&v).unwrap();
        assert_eq!((s.node_id, s.leader_id, s.revision, s.voters), (2, 2, 5, 2));
        assert!(s.is_leader() && s.holds_cluster_ip);
        assert!(Status::parse(&json!({"state": "x"})).is_err());
    }

    #[test]
    fn names_from_list() {
        let v = json!({"objects": [{"name": "a"}, {"name": "b"}], "revision": 2});
        assert_eq!(object_names(&v).unwrap().len(), 2);
        assert!(object_names(&json!([{"x": 1}])).is_err());
    }

    #[test]
    fn ping_log_and_percentiles() {
        let log = "PING x\n[1700000000.250000] 64 bytes from 10.0.0.1: icmp_seq=1 ttl=64\n\
                   [1700000000.5] no answer yet for icmp_seq=2\n";
        assert_eq!(ping_reply_times(log), vec![1_700_000_000.25]);
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(51));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
