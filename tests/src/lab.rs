//! [`Lab`]: a set of network namespaces ("hosts") joined by veth pairs, the processes running
//! in them, and a temp dir for their logs and configs. Everything is removed when the lab is
//! dropped — also when a test panics — by stopping the processes (SIGTERM, then SIGKILL after
//! a grace period), deleting the links and namespaces and removing the temp dir. When the
//! test process itself gets SIGTERM, SIGINT or SIGHUP (a runner's timeout, Ctrl-C), a signal
//! thread removes its labs before it exits ([`cleanup::teardown_on_signals`]).
//!
//! Hosts are named by the caller (`"h1"`); their namespaces are `<lab id>-<host>` (see
//! [`names`](crate::names)). Each host starts IPv4-only: IPv6 is disabled (the dataplane is
//! IPv4-only, and router solicitations or DAD would show up as drop counters) and `rp_filter`
//! is off, so asymmetric lab routes are not dropped by the kernel.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::cleanup;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::names::{self, LabId};
use crate::process::{Daemon, KILL_EXIT_LIMIT, STOP_GRACE};
use crate::wait::{self, Poll};

/// Handle of a process spawned in a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId(usize);

/// Set to `1` to keep a lab's temp dir (logs, configs) after teardown.
pub const KEEP_ENV: &str = "AEGIS_LAB_KEEP";

/// Sysctls every host gets.
const HOST_SYSCTLS: &[&str] = &[
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
];

/// A veth pair created by [`Lab::link`].
#[derive(Debug, Clone)]
struct Link {
    host: String,
    ifname: String,
}

/// A lab: namespaces, links, processes, temp dir.
#[derive(Debug)]
pub struct Lab {
    id: LabId,
    dir: PathBuf,
    hosts: Vec<String>,
    links: Vec<Link>,
    procs: Vec<Daemon>,
    exec_limit: Duration,
    torn_down: bool,
}

impl Lab {
    /// A new, empty lab named after `prefix` (1..=12 of `a-z0-9`). Removes leftovers of a dead
    /// process that happened to have the same pid, and creates the temp dir.
    pub fn new(prefix: &str) -> Result<Lab> {
        let id = LabId::new(prefix)?;
        cleanup::teardown_on_signals();
        cleanup::remove_lab(&id);
        let dir = cleanup::lab_dir(&id);
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            what: "create lab dir",
            path: dir.clone(),
            source,
        })?;
        Ok(Lab {
            id,
            dir,
            hosts: Vec::new(),
            links: Vec::new(),
            procs: Vec::new(),
            exec_limit: cmd::DEFAULT_LIMIT,
            torn_down: false,
        })
    }

    /// The lab's unique id (also the DPDK file-prefix stem of its daemons).
    pub fn id(&self) -> &LabId {
        &self.id
    }

    /// The lab's temp dir (logs, configs, sockets).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Changes the time limit of [`exec`](Self::exec) and friends (default 120 s).
    pub fn set_exec_limit(&mut self, limit: Duration) {
        self.exec_limit = limit;
    }

    /// The namespace name of `host`.
    pub fn ns(&self, host: &str) -> Result<String> {
        if self.hosts.iter().any(|h| h == host) {
            Ok(self.id.ns(host))
        } else {
            Err(LabError::UnknownHost(host.to_string()))
        }
    }

    /// Creates host `name`: a namespace with `lo` up, IPv6 disabled and `rp_filter` off.
    pub fn host(&mut self, name: &str) -> Result<()> {
        names::validate_host(name)?;
        if self.hosts.iter().any(|h| h == name) {
            return Err(LabError::Duplicate {
                kind: "host",
                name: name.to_string(),
            });
        }
        let ns = self.id.ns(name);
        cmd::run("ip", &["netns", "add", ns.as_str()])?;
        // Recorded before configuring, so teardown removes it even if a step below fails.
        self.hosts.push(name.to_string());
        cmd::run("ip", &["-n", ns.as_str(), "link", "set", "lo", "up"])?;
        let mut args = vec!["-qw"];
        args.extend_from_slice(HOST_SYSCTLS);
        self.exec_ok(name, "sysctl", &args)?;
        Ok(())
    }

    /// Creates a veth pair: `a_if` in host `a` and `b_if` in host `b`, both up. The pair is
    /// created inside the namespaces directly, so the names never clash with the machine's.
    pub fn link(&mut self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<()> {
        names::validate_ifname(a_if)?;
        names::validate_ifname(b_if)?;
        let (ns_a, ns_b) = (self.ns(a)?, self.ns(b)?);
        cmd::run(
            "ip",
            &[
                "-n",
                ns_a.as_str(),
                "link",
                "add",
                a_if,
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                ns_b.as_str(),
            ],
        )?;
        self.links.push(Link {
            host: a.to_string(),
            ifname: a_if.to_string(),
        });
        cmd::run("ip", &["-n", ns_a.as_str(), "link", "set", a_if, "up"])?;
        cmd::run("ip", &["-n", ns_b.as_str(), "link", "set", b_if, "up"])?;
        Ok(())
    }

    /// Runs `ip -n <ns of host> ARGS` and returns its stdout.
    pub fn ip(&self, host: &str, args: &[&str]) -> Result<String> {
        let ns = self.ns(host)?;
        let mut argv = vec!["-n", ns.as_str()];
        argv.extend_from_slice(args);
        cmd::run("ip", &argv)
    }

    /// Adds address `cidr` ("10.0.1.2/24") to `ifname` on `host`.
    pub fn addr(&self, host: &str, ifname: &str, cidr: &str) -> Result<()> {
        self.ip(host, &["addr", "add", cidr, "dev", ifname])
            .map(drop)
    }

    /// Adds a route `dest` ("10.0.3.0/24" or "default") via gateway `via` on `host`.
    pub fn route(&self, host: &str, dest: &str, via: &str) -> Result<()> {
        self.ip(host, &["route", "add", dest, "via", via]).map(drop)
    }

    /// Sets `host`'s default route via `via`.
    pub fn default_route(&self, host: &str, via: &str) -> Result<()> {
        self.route(host, "default", via)
    }

    /// Sets sysctl `key` to `value` in `host`'s namespace.
    pub fn sysctl(&self, host: &str, key: &str, value: &str) -> Result<()> {
        let kv = format!("{key}={value}");
        self.exec_ok(host, "sysctl", &["-qw", kv.as_str()])
            .map(drop)
    }

    /// Turns IPv4 forwarding on or off in `host`.
    pub fn forwarding(&self, host: &str, on: bool) -> Result<()> {
        self.sysctl(host, "net.ipv4.ip_forward", if on { "1" } else { "0" })
    }

    /// Turns off TX checksum offload (and with it TSO) on `ifname` in `host`.
    ///
    /// Needed on a veth whose peer is read by an `AF_PACKET` socket (DPDK `net_af_packet`):
    /// with offload on, the kernel hands TCP/UDP packets over with only the pseudo-header
    /// checksum filled in (`CHECKSUM_PARTIAL`), the socket sees those bytes, and a router that
    /// forwards them delivers packets the receiver rejects. Checked on this kernel: a TCP SYN
    /// captured on the peer had an invalid checksum with `tx on` and a valid one with `tx off`.
    pub fn tx_checksum_off(&self, host: &str, ifname: &str) -> Result<()> {
        self.exec_ok(host, "ethtool", &["-K", ifname, "tx", "off"])
            .map(drop)
    }

    /// The MAC address of `ifname` in `host` ("02:..").
    pub fn mac(&self, host: &str, ifname: &str) -> Result<String> {
        let out = self.ip(host, &["-o", "link", "show", "dev", ifname])?;
        let mut words = out.split_whitespace();
        while let Some(w) = words.next() {
            if w == "link/ether" {
                if let Some(mac) = words.next() {
                    return Ok(mac.to_string());
                }
            }
        }
        Err(LabError::Parse {
            cmd: format!("ip -n {} -o link show dev {ifname}", self.ns(host)?),
            detail: "no link/ether field".into(),
            output: out,
        })
    }

    /// Runs `program args` inside `host` and returns its output (a non-zero exit is not an
    /// error; see [`exec_ok`](Self::exec_ok)).
    pub fn exec(&self, host: &str, program: &str, args: &[&str]) -> Result<Output> {
        self.exec_input(host, program, args, None)
    }

    /// Like [`exec`](Self::exec) with `input` on stdin.
    pub fn exec_input(
        &self,
        host: &str,
        program: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<Output> {
        let argv = self.netns_argv(host, program, args)?;
        cmd::output("ip", &argv, input, self.exec_limit)
    }

    /// Runs `program args` inside `host`; fails unless it exits 0; returns stdout.
    pub fn exec_ok(&self, host: &str, program: &str, args: &[&str]) -> Result<String> {
        let argv = self.netns_argv(host, program, args)?;
        let out = cmd::output("ip", &argv, None, self.exec_limit)?;
        cmd::checked(&cmd::display("ip", &argv), out)
    }

    fn netns_argv(&self, host: &str, program: &str, args: &[&str]) -> Result<Vec<String>> {
        let mut argv = vec!["netns".to_string(), "exec".to_string(), self.ns(host)?];
        argv.push(program.to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        Ok(argv)
    }

    /// Starts `program args` in `host` as process `name`; its output goes to
    /// `<lab dir>/<name>.log`.
    pub fn spawn(
        &mut self,
        host: &str,
        name: &str,
        program: &str,
        args: &[&str],
    ) -> Result<ProcId> {
        self.spawn_env(host, name, program, args, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment variables.
    pub fn spawn_env(
        &mut self,
        host: &str,
        name: &str,
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<ProcId> {
        names::validate_process(name)?;
        if self.procs.iter().any(|p| p.name() == name) {
            return Err(LabError::Duplicate {
                kind: "process",
                name: name.to_string(),
            });
        }
        let ns = self.ns(host)?;
        let log = self.path(&format!("{name}.log"));
        let d = Daemon::spawn(name, &ns, program, args, envs, &log)?;
        self.procs.push(d);
        Ok(ProcId(self.procs.len() - 1))
    }

    /// The process behind `id`.
    pub fn proc(&mut self, id: ProcId) -> &mut Daemon {
        &mut self.procs[id.0]
    }

    /// `kill -9` of process `id`; returns the moment just before the signal, once the
    /// process is gone.
    pub fn kill9(&mut self, id: ProcId) -> Result<Instant> {
        let pid = self.proc(id).pid();
        let at = Instant::now();
        cmd::run("kill", &["-KILL".to_string(), pid.to_string()])?;
        let _ = self.proc(id).wait(KILL_EXIT_LIMIT)?;
        Ok(at)
    }

    /// Stops process `id` (SIGTERM, SIGKILL after the grace period) and returns its log.
    pub fn stop(&mut self, id: ProcId) -> String {
        let d = &mut self.procs[id.0];
        d.stop(STOP_GRACE);
        d.log()
    }

    /// Waits until the unix socket at `path` accepts connections. When `owner` is given and
    /// that process exits first, fails at once with its log tail.
    pub fn wait_for_socket(
        &mut self,
        path: &Path,
        limit: Duration,
        owner: Option<ProcId>,
    ) -> Result<()> {
        let what = format!("socket {}", path.display());
        wait::until(&what, limit, Duration::from_millis(50), || {
            if let Some(id) = owner {
                if let Some(e) = self.exited_error(id, &what) {
                    return Poll::Fail(e);
                }
            }
            match wait::socket_accepts(path) {
                Ok(()) => Poll::Ready(()),
                Err(d) => Poll::Pending(d),
            }
        })
    }

    /// An [`LabError::Exited`] if process `id` is no longer running.
    pub fn exited_error(&mut self, id: ProcId, what: &str) -> Option<LabError> {
        let d = &mut self.procs[id.0];
        let status = d.exit_status()?;
        Some(LabError::Exited {
            name: d.name().to_string(),
            status: cmd::status_text(status),
            what: what.to_string(),
            log_tail: d.log_tail(40),
        })
    }

    /// One `ping -c COUNT -W 1 -i 0.2 DST` from `host`.
    pub fn ping(&self, host: &str, dst: &str, count: u32) -> Result<Output> {
        let c = count.to_string();
        self.exec(
            host,
            "ping",
            &["-n", "-c", c.as_str(), "-W", "1", "-i", "0.2", dst],
        )
    }

    /// Pings `dst` from `host` once per attempt until a reply comes or `limit` passes.
    pub fn wait_ping(&self, host: &str, dst: &str, limit: Duration) -> Result<()> {
        let what = format!("ping {host} -> {dst}");
        wait::until(&what, limit, Duration::from_millis(100), || {
            match self.ping(host, dst, 1) {
                Ok(o) if o.status.success() => Poll::Ready(()),
                Ok(o) => Poll::Pending(cmd::lossy(&o.stdout)),
                Err(e) => Poll::Fail(e),
            }
        })
    }

    /// Tears the lab down now and reports what could not be removed.
    pub fn teardown(mut self) -> Result<()> {
        let errors = self.teardown_inner();
        match errors.into_iter().next() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    fn teardown_inner(&mut self) -> Vec<LabError> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let panicking = std::thread::panicking();

        // Stop all processes together so the grace periods overlap.
        for p in &mut self.procs {
            p.terminate();
        }
        let deadline = Instant::now() + STOP_GRACE;
        for p in &mut self.procs {
            let left = deadline.saturating_duration_since(Instant::now());
            p.finish(left);
        }
        if panicking {
            for p in &self.procs {
                eprintln!(
                    "--- aegis-lab {}: log tail of {} ({}) ---\n{}\n--- end of {} ---",
                    self.id,
                    p.name(),
                    p.cmdline(),
                    p.log_tail(40),
                    p.name()
                );
            }
        }

        let mut errors = Vec::new();
        for l in self.links.drain(..) {
            // Deleting one end removes the pair; a failure here is retried by deleting the
            // namespace below, which takes its veths with it.
            let _ = cmd::output(
                "ip",
                &[
                    "-n",
                    self.id.ns(&l.host).as_str(),
                    "link",
                    "del",
                    l.ifname.as_str(),
                ],
                None,
                cmd::DEFAULT_LIMIT,
            );
        }
        for h in self.hosts.drain(..) {
            let ns = self.id.ns(&h);
            cleanup::kill_ns_pids(&ns);
            if let Err(e) = cleanup::delete_ns(&ns) {
                errors.push(e);
            }
        }
        cleanup::remove_dpdk_runtime(&self.id);

        let keep = std::env::var(KEEP_ENV).map(|v| v == "1").unwrap_or(false);
        if keep {
            eprintln!("aegis-lab {}: kept {}", self.id, self.dir.display());
        } else if let Err(source) = std::fs::remove_dir_all(&self.dir) {
            if source.kind() != std::io::ErrorKind::NotFound {
                errors.push(LabError::Io {
                    what: "remove lab dir",
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.teardown_inner() {
            eprintln!("aegis-lab {}: teardown: {e}", self.id);
        }
    }
}
