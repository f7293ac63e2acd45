//! [`KernelGatewayLab`]: the [`GatewayPairLab`] topology with two *Linux kernel* gateways in
//! place of the Aegis dataplanes, to measure what Aegis's failover is compared with: the
//! kernel forwards and translates (nftables), keepalived (the Debian package) runs VRRP with
//! the same VRIDs, interval and priorities, and optionally conntrackd (FTFW) replicates the
//! connection-tracking table over a dedicated link, driven by keepalived's notify scripts.
//!
//! ```text
//!                  inside bridge (sw/brin)                    outside bridge (sw/brout)
//!  h1 10.60.0.10 ─┐                                         ┌─ h2 203.0.113.100
//!     10.60.0.11  ├── gw1 in0 10.60.0.2   gw1 out0 203.0.113.2 ──┤
//!  gw 10.60.0.1   └── gw2 in0 10.60.0.3   gw2 out0 203.0.113.3 ──┘
//!                     gw1 sync0 192.168.100.1 ── veth ── gw2 sync0 192.168.100.2
//! ```
//!
//! - VRRP: keepalived, `VI_IN` (VRID 60, 10.60.0.1) on `in0` and `VI_OUT` (VRID 61,
//!   203.0.113.1, the source NAT address 203.0.113.50 and the floating IP 203.0.113.60) on
//!   `out0`, one sync group `G_GW`, VRRPv3, gw1 priority 200, gw2 100, both preempting —
//!   the instances of the Aegis lab. Without `use_vmac` (like the Aegis lab): the hosts
//!   follow the master by its gratuitous ARP.
//! - NAT (nftables, `table ip aegislab`): 10.60.0.10 leaves out of `out0` as 203.0.113.50
//!   (source NAT; Linux keeps the source port when it is free); 203.0.113.60 is 10.60.0.11's
//!   floating IP (DNAT in, SNAT out: 1:1).
//! - [`Firewall::Stateful`] adds what a stateful gateway has: a forward chain with policy
//!   drop that accepts established/related packets, new connections from inside and
//!   DNATed ones, drops `ct state invalid`, and `nf_conntrack_tcp_loose = 0` (a TCP packet
//!   in mid-stream does not open an entry). [`Firewall::Permissive`] leaves the kernel's
//!   defaults: no filter, `tcp_loose = 1`.
//! - conntrackd ([`KernelOptions::conntrackd`]): FTFW over UDP on the dedicated `sync0`
//!   link, external cache on (the default), TCP, UDP and ICMP replicated, the gateways' own
//!   addresses ignored. keepalived's sync group runs `notify.sh primary|backup|fault`, the
//!   transitions of conntrackd's `primary-backup.sh` (its documented keepalived
//!   integration): on becoming master commit the external cache into the kernel (`-c`),
//!   flush the caches (`-f`), resync the internal cache with the kernel (`-R`) and send a
//!   bulk update (`-B`); on becoming backup shorten the kernel's timers (`-t`) and ask the
//!   master for a resync (`-n`). Each step is logged with its wall-clock time.
//!
//! "kill -9 of the master" for a kernel gateway: Aegis's dataplane is one process that
//! forwards, translates, runs VRRP and sync; `kill -9` stops all of it at once. A kernel
//! gateway's forwarding is not a process: killing keepalived and conntrackd leaves the
//! kernel forwarding and the virtual addresses in place. The honest equivalent is a crash of
//! the box: [`KernelGatewayLab::crash`] SIGKILLs every process in the gateway's namespace
//! and sets all its links down right after (one shell, a few milliseconds apart).
//! [`KernelGatewayLab::kill_keepalived`] is the other case: keepalived alone SIGKILLed, the
//! kernel still forwarding with the addresses.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::cmd;
use crate::error::{LabError, Result};
use crate::gateway::GatewayPairLab as G;
use crate::lab::{Lab, ProcId};
use crate::wait::{self, Poll};

/// What the gateways' netfilter lets through (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    /// Forward policy drop, established/related and new-from-inside accepted, invalid
    /// dropped, `nf_conntrack_tcp_loose = 0`.
    Stateful,
    /// The kernel's defaults: no filter, `nf_conntrack_tcp_loose = 1`.
    Permissive,
}

/// How the pair is built.
#[derive(Debug, Clone, Copy)]
pub struct KernelOptions {
    /// VRRP advertisement interval, milliseconds (VRRPv3).
    pub advert_ms: u32,
    /// Run conntrackd (FTFW) with keepalived's notify scripts.
    pub conntrackd: bool,
    /// The gateways' netfilter policy.
    pub firewall: Firewall,
}

/// One kernel gateway.
#[derive(Debug)]
pub struct KernelGateway {
    /// Its namespace.
    pub host: String,
    /// keepalived's parent process.
    pub keepalived: Option<ProcId>,
    /// conntrackd, when the pair syncs.
    pub conntrackd: Option<ProcId>,
    conntrackd_conf: PathBuf,
    notify_log: PathBuf,
}

/// The kernel-gateway pair lab.
#[derive(Debug)]
pub struct KernelGatewayLab {
    /// Namespaces, processes, temp dir.
    pub lab: Lab,
    /// How it was built.
    pub opts: KernelOptions,
    /// gw1 (priority 200) and gw2 (100).
    pub gws: Vec<KernelGateway>,
    /// The VRRP advertisements gw2 receives, one `WALL_SECONDS SOURCE` line each
    /// ([`ADVERT_LOG_PY`]): when the master's last one arrived.
    adverts: Option<ProcId>,
}

/// Prints the wall-clock time and source address of every VRRP packet the namespace
/// receives (a raw IPv4 socket of protocol 112 gets a copy of each), the time being the
/// kernel's receive timestamp (`SO_TIMESTAMPNS`), so a late wake-up of this script does not
/// shift it. Run in the backup, it shows when the master's adverts stopped: the start of
/// the silence the backup's master-down timer measures, which on a loaded machine can be
/// well before the death.
const ADVERT_LOG_PY: &str = r#"
import socket, struct, time
SO_TIMESTAMPNS = 35
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
print("listening", flush=True)
while True:
    d, anc, _, a = s.recvmsg(2048, 64)
    t = time.time()
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            t = sec + nsec / 1e9
    print("%.6f %s" % (t, a[0]), flush=True)
"#;

/// Programs the lab runs (checked up front by the tests).
pub const TOOLS: &[&str] = &[
    "keepalived",
    "conntrackd",
    "conntrack",
    "nft",
    "python3",
    "ethtool",
    "sysctl",
    "ping",
    "sh",
];

/// The gateways' priorities, as in the Aegis pair.
pub const PRIORITIES: [u8; 2] = [200, 100];

/// UDP port of the conntrackd sync link.
const SYNC_PORT: u16 = 3780;

impl KernelGatewayLab {
    /// The dedicated sync link's interface (a veth between the two gateways).
    pub const SYNC_IF: &'static str = "sync0";

    /// Builds the topology, configures both kernels, starts conntrackd (if asked) and
    /// keepalived on gw1, then gw2; returns once gw1 holds the virtual addresses, gw2 is
    /// backup and h1 reaches h2 through the pair.
    pub fn start(prefix: &str, opts: KernelOptions) -> Result<KernelGatewayLab> {
        let keepalived = which("keepalived")?;
        let mut lab = Lab::new(prefix)?;
        lab.set_exec_limit(Duration::from_secs(60));
        G::build_topology(&mut lab, 2)?;
        lab.link("gw1", Self::SYNC_IF, "gw2", Self::SYNC_IF)?;
        let mut gws = Vec::new();
        for n in 1..=2u8 {
            let host = format!("gw{n}");
            lab.addr(&host, "in0", &format!("10.60.0.{}/24", n + 1))?;
            lab.addr(&host, "out0", &format!("203.0.113.{}/24", n + 1))?;
            lab.addr(&host, Self::SYNC_IF, &format!("{}/24", sync_ip(n)))?;
            lab.forwarding(&host, true)?;
            let rules = lab.path(&format!("{host}.nft"));
            write(&rules, &nft_rules(opts.firewall))?;
            lab.exec_ok(&host, "nft", &["-f", &rules.to_string_lossy()])?;
            // After the NAT rules, which load nf_conntrack (and with it this sysctl).
            let tcp_loose = match opts.firewall {
                Firewall::Stateful => "0",
                Firewall::Permissive => "1",
            };
            lab.sysctl(&host, "net.netfilter.nf_conntrack_tcp_loose", tcp_loose)?;

            let conntrackd_conf = lab.path(&format!("{host}-conntrackd.conf"));
            let notify_log = lab.path(&format!("{host}-notify.log"));
            let notify = if opts.conntrackd {
                let ctl = lab.path(&format!("{host}-conntrackd.ctl"));
                let lock = lab.path(&format!("{host}-conntrackd.lock"));
                write(
                    &conntrackd_conf,
                    &conntrackd_conf_text(n, &ctl.to_string_lossy(), &lock.to_string_lossy()),
                )?;
                let script = lab.path(&format!("{host}-notify.sh"));
                write(
                    &script,
                    &notify_script(
                        &conntrackd_conf.to_string_lossy(),
                        &notify_log.to_string_lossy(),
                    ),
                )?;
                chmod_x(&script)?;
                Some(script.to_string_lossy().into_owned())
            } else {
                None
            };
            let kconf = lab.path(&format!("{host}-keepalived.conf"));
            write(
                &kconf,
                &keepalived_conf(
                    &host,
                    PRIORITIES[usize::from(n - 1)],
                    opts.advert_ms,
                    notify.as_deref(),
                ),
            )?;
            gws.push(KernelGateway {
                host,
                keepalived: None,
                conntrackd: None,
                conntrackd_conf,
                notify_log,
            });
        }
        let mut k = KernelGatewayLab {
            lab,
            opts,
            gws,
            adverts: None,
        };
        if opts.conntrackd {
            for i in 0..2 {
                k.start_conntrackd(i)?;
            }
        }
        // gw1 first, so it is master before gw2 starts (like the Aegis lab).
        let elect = Duration::from_millis(10_000 + 8 * u64::from(opts.advert_ms));
        k.start_keepalived(0, &keepalived)?;
        k.wait_master(0, Instant::now(), elect)?;
        let adverts = k
            .lab
            .spawn("gw2", "gw2-adverts", "python3", &["-c", ADVERT_LOG_PY])?;
        k.adverts = Some(adverts);
        k.start_keepalived(1, &keepalived)?;
        let gw2 = k.gws[1].host.clone();
        wait::until(
            "gw2's keepalived in BACKUP",
            elect,
            Duration::from_millis(50),
            || {
                let log = k.lab.proc(k.gws[1].keepalived.expect("started")).log();
                if log.contains("Entering BACKUP STATE") {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("{gw2}'s keepalived log:\n{log}"))
                }
            },
        )?;
        if opts.conntrackd {
            k.wait_notify(0, "done primary", elect)?;
            k.wait_notify(1, "done backup", elect)?;
        }
        k.lab.wait_ping(G::H1, G::H2_IP, Duration::from_secs(20))?;
        Ok(k)
    }

    fn start_conntrackd(&mut self, i: usize) -> Result<()> {
        let host = self.gws[i].host.clone();
        let conf = self.gws[i].conntrackd_conf.to_string_lossy().into_owned();
        let program = which("conntrackd")?;
        // Without -d conntrackd stays in the foreground and logs to the console.
        let id = self.lab.spawn(
            &host,
            &format!("{host}-conntrackd"),
            &program.to_string_lossy(),
            &["-C", conf.as_str()],
        )?;
        self.gws[i].conntrackd = Some(id);
        let ctl = self.lab.path(&format!("{host}-conntrackd.ctl"));
        self.lab
            .wait_for_socket(&ctl, Duration::from_secs(10), Some(id))
    }

    fn start_keepalived(&mut self, i: usize, program: &std::path::Path) -> Result<()> {
        let host = self.gws[i].host.clone();
        let conf = self.lab.path(&format!("{host}-keepalived.conf"));
        let pid = self.lab.path(&format!("{host}-keepalived.pid"));
        let vrrp_pid = self.lab.path(&format!("{host}-keepalived-vrrp.pid"));
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
        let id = self.lab.spawn(
            &host,
            &format!("{host}-keepalived"),
            &program.to_string_lossy(),
            &argv,
        )?;
        self.gws[i].keepalived = Some(id);
        Ok(())
    }

    /// True when gateway `i` holds both instances' addresses (the inside virtual address
    /// and the source NAT address): keepalived made it master.
    pub fn holds_vips(&self, i: usize) -> Result<bool> {
        let out = self
            .lab
            .ip(&self.gws[i].host, &["-4", "-o", "addr", "show"])?;
        Ok(out.contains(&format!("inet {}/", G::INSIDE_VIP))
            && out.contains(&format!("inet {}/", G::SNAT_IP)))
    }

    /// Polls every 5 ms until gateway `i` holds the virtual addresses; the time since
    /// `since` (the death, taken before the commands that cause it: they may take hundreds
    /// of milliseconds on a loaded machine, and the backup's timer runs meanwhile).
    pub fn wait_master(&mut self, i: usize, since: Instant, limit: Duration) -> Result<Duration> {
        let started = since;
        loop {
            if self.holds_vips(i)? {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                let log = self.gws[i]
                    .keepalived
                    .map(|id| self.lab.proc(id).log_tail(20))
                    .unwrap_or_default();
                return Err(LabError::Timeout {
                    what: format!("{} to hold the virtual addresses", self.gws[i].host),
                    waited: started.elapsed(),
                    detail: format!("keepalived log tail:\n{log}"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// When gw2 last received an advert from gateway `i` (either instance), up to `until`,
    /// for each of `i`'s two VRRP addresses (`in0`, `out0`): `None` for an address never
    /// heard from. Reads the log of the listener started with the lab.
    pub fn last_adverts_from(&mut self, i: usize, until: SystemTime) -> [Option<SystemTime>; 2] {
        let log = self
            .adverts
            .map(|id| self.lab.proc(id).log())
            .unwrap_or_default();
        let n = i + 2;
        let sources = [format!("10.60.0.{n}"), format!("203.0.113.{n}")];
        let mut last = [None; 2];
        for line in log.lines() {
            let mut it = line.split_whitespace();
            let (Some(t), Some(src)) = (it.next(), it.next()) else {
                continue;
            };
            let Ok(secs) = t.parse::<f64>() else {
                continue;
            };
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs);
            if at > until {
                continue;
            }
            for (k, s) in sources.iter().enumerate() {
                if src == s {
                    last[k] = Some(at);
                }
            }
        }
        last
    }

    /// Kernel connection-tracking entries of gateway `i` that belong to h1's two addresses
    /// (the forwarded connections and flows; VRRP and the sync link are not counted).
    pub fn tracked(&self, i: usize) -> Result<u64> {
        let out = self.lab.exec_ok(&self.gws[i].host, "conntrack", &["-L"])?;
        Ok(count_h1(&out))
    }

    /// Entries of h1's addresses in gateway `i`'s conntrackd external cache (what it holds
    /// for the other gateway).
    pub fn external_cache(&self, i: usize) -> Result<u64> {
        let conf = self.gws[i].conntrackd_conf.to_string_lossy().into_owned();
        let out = self
            .lab
            .exec_ok(&self.gws[i].host, "conntrackd", &["-C", &conf, "-e"])?;
        Ok(count_h1(&out))
    }

    /// Gateway `i`'s notify log: one `SECONDS.NANOS event` line per step.
    pub fn notify_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.gws[i].notify_log).unwrap_or_default()
    }

    /// Waits until gateway `i`'s notify log has a line with `event`.
    pub fn wait_notify(&self, i: usize, event: &str, limit: Duration) -> Result<()> {
        let what = format!("{event:?} in {}'s notify log", self.gws[i].host);
        wait::until(&what, limit, Duration::from_millis(10), || {
            let log = self.notify_log(i);
            if log.lines().any(|l| l.ends_with(event)) {
                Poll::Ready(())
            } else {
                Poll::Pending(log)
            }
        })
    }

    /// When gateway `i`'s notify script logged the last `event`, relative to `since`
    /// (milliseconds, wall clock).
    pub fn notify_at(&self, i: usize, event: &str, since: SystemTime) -> Option<f64> {
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        self.notify_log(i)
            .lines()
            .rev()
            .find(|l| l.ends_with(event))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|t| t.parse::<f64>().ok())
            .map(|t| (t - since) * 1000.0)
    }

    /// The crash of gateway `i` (its "kill -9"): SIGKILL of every process in its namespace
    /// (keepalived's two, conntrackd, any notify script), then all its links down, from one
    /// shell. Returns the wall-clock and monotonic instants just before.
    pub fn crash(&mut self, i: usize) -> Result<(SystemTime, Instant)> {
        let ns = self.lab.ns(&self.gws[i].host)?;
        let pids = cmd::run("ip", &["netns", "pids", ns.as_str()])?;
        let pids: Vec<&str> = pids.split_whitespace().collect();
        let script = format!(
            "kill -KILL {}; ip -n {ns} link set in0 down && ip -n {ns} link set out0 down \
             && ip -n {ns} link set {} down",
            pids.join(" "),
            Self::SYNC_IF
        );
        let at = (SystemTime::now(), Instant::now());
        cmd::run("sh", &["-c", script.as_str()])?;
        self.forget(i);
        Ok(at)
    }

    /// SIGKILL of gateway `i`'s keepalived (parent and VRRP child) alone: conntrackd and
    /// the kernel keep running, the virtual addresses stay on its links.
    pub fn kill_keepalived(&mut self, i: usize) -> Result<(SystemTime, Instant)> {
        let host = self.gws[i].host.clone();
        let id = self.gws[i]
            .keepalived
            .ok_or(LabError::UnknownHost(host.clone()))?;
        let parent = self.lab.proc(id).pid();
        let vrrp_path = self.lab.path(&format!("{host}-keepalived-vrrp.pid"));
        let vrrp = std::fs::read_to_string(&vrrp_path).map_err(|source| LabError::Io {
            what: "read",
            path: vrrp_path.clone(),
            source,
        })?;
        let at = (SystemTime::now(), Instant::now());
        cmd::run(
            "kill",
            &[
                "-KILL".to_string(),
                parent.to_string(),
                vrrp.trim().to_string(),
            ],
        )?;
        let _ = self.lab.proc(id).wait(Duration::from_secs(10))?;
        Ok(at)
    }

    fn forget(&mut self, i: usize) {
        for id in [self.gws[i].keepalived, self.gws[i].conntrackd]
            .into_iter()
            .flatten()
        {
            let _ = self.lab.proc(id).wait(Duration::from_secs(10));
        }
    }

    /// Master-down interval of gw2 (priority 100) as RFC 5798 computes it.
    pub fn master_down(&self) -> Duration {
        let i = u64::from(self.opts.advert_ms) * 1000;
        Duration::from_micros(3 * i + (256 - u64::from(PRIORITIES[1])) * i / 256)
    }
}

fn sync_ip(n: u8) -> String {
    format!("192.168.100.{n}")
}

/// Lines of `conntrack -L` / `conntrackd -e` output that concern h1's addresses: h1's
/// connections and flows out (original source 10.60.0.10 or .11) and the connection to the
/// floating IP (original destination 203.0.113.60; `conntrackd -e` shows only the original
/// tuple).
fn count_h1(out: &str) -> u64 {
    let keys = [
        format!("src={} ", G::H1_SNAT_SRC),
        format!("src={} ", G::H1_FIP_SRC),
        format!("dst={} ", G::FLOATING_IP),
    ];
    out.lines()
        .filter(|l| keys.iter().any(|k| l.contains(k.as_str())))
        .count() as u64
}

/// The gateways' nftables ruleset.
pub fn nft_rules(firewall: Firewall) -> String {
    let filter = match firewall {
        Firewall::Stateful => {
            "  chain filter_forward {\n    type filter hook forward priority filter; policy drop;\n    \
             ct state established,related accept\n    ct state invalid drop\n    \
             iifname \"in0\" oifname \"out0\" accept\n    ct status dnat accept\n  }\n"
        }
        Firewall::Permissive => "",
    };
    format!(
        "table ip aegislab {{\n  chain nat_pre {{\n    type nat hook prerouting priority dstnat;\n    \
         iifname \"out0\" ip daddr {fip} dnat to {fip_in}\n  }}\n  chain nat_post {{\n    \
         type nat hook postrouting priority srcnat;\n    \
         oifname \"out0\" ip saddr {snat_src} snat to {snat}\n    \
         oifname \"out0\" ip saddr {fip_in} snat to {fip}\n  }}\n{filter}}}\n",
        fip = G::FLOATING_IP,
        fip_in = G::H1_FIP_SRC,
        snat_src = G::H1_SNAT_SRC,
        snat = G::SNAT_IP,
    )
}

/// conntrackd.conf of gateway `n`: FTFW over UDP on the dedicated link, its socket and lock
/// in the lab dir, TCP/UDP/ICMP replicated, the gateway's own addresses ignored.
pub fn conntrackd_conf_text(n: u8, ctl: &str, lock: &str) -> String {
    let me = sync_ip(n);
    let peer = sync_ip(3 - n);
    format!(
        "Sync {{\n    Mode FTFW {{\n        DisableExternalCache Off\n    }}\n    UDP {{\n        \
         IPv4_address {me}\n        IPv4_Destination_Address {peer}\n        Port {SYNC_PORT}\n        \
         Interface {sync_if}\n        SndSocketBuffer 1249280\n        RcvSocketBuffer 1249280\n        \
         Checksum on\n    }}\n}}\n\
         General {{\n    HashSize 32768\n    HashLimit 131072\n    LogFile off\n    Syslog off\n    \
         LockFile {lock}\n    UNIX {{\n        Path {ctl}\n    }}\n    \
         NetlinkBufferSize 2097152\n    NetlinkBufferSizeMaxGrowth 8388608\n    \
         Filter From Userspace {{\n        Protocol Accept {{\n            TCP\n            UDP\n            \
         ICMP\n        }}\n        Address Ignore {{\n            IPv4_address 127.0.0.1\n            \
         IPv4_address 10.60.0.{own}\n            IPv4_address 203.0.113.{own}\n            \
         IPv4_address {me}\n        }}\n    }}\n}}\n",
        sync_if = KernelGatewayLab::SYNC_IF,
        own = n + 1,
    )
}

/// The notify script keepalived's sync group runs with `primary`, `backup` or `fault`:
/// the conntrackd commands of its `primary-backup.sh`, each step logged with its time.
pub fn notify_script(conf: &str, log: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # keepalived notify script: conntrackd's primary/backup transitions (aegis-lab)\n\
         conf='{conf}'\n\
         log() {{ echo \"$(date +%s.%N) $*\" >> '{log}'; }}\n\
         log \"enter $1\"\n\
         case \"$1\" in\n\
         primary)\n    \
             conntrackd -C \"$conf\" -c || log 'commit failed'\n    \
             log committed\n    \
             conntrackd -C \"$conf\" -f || log 'flush failed'\n    \
             conntrackd -C \"$conf\" -R || log 'resync failed'\n    \
             conntrackd -C \"$conf\" -B || log 'bulk update failed'\n    \
             ;;\n\
         backup)\n    \
             conntrackd -C \"$conf\" -t || log 'shorten timers failed'\n    \
             conntrackd -C \"$conf\" -n || log 'resync request failed'\n    \
             ;;\n\
         fault)\n    \
             conntrackd -C \"$conf\" -t || log 'shorten timers failed'\n    \
             ;;\n\
         esac\n\
         log \"done $1\"\n"
    )
}

/// keepalived.conf of a kernel gateway: the Aegis lab's two instances and sync group, at
/// `advert_ms` (VRRPv3), with the notify script when given.
pub fn keepalived_conf(router: &str, priority: u8, advert_ms: u32, notify: Option<&str>) -> String {
    let instance = |name: &str, port: &str, vrid: u8, addrs: &[&str]| {
        let list: Vec<String> = addrs.iter().map(|a| format!("        {a}/24\n")).collect();
        format!(
            "vrrp_instance {name} {{\n    state BACKUP\n    interface {port}\n    \
             virtual_router_id {vrid}\n    version 3\n    priority {priority}\n    \
             advert_int {:.2}\n    virtual_ipaddress {{\n{}    }}\n}}\n\n",
            f64::from(advert_ms) / 1000.0,
            list.concat()
        )
    };
    let notify = notify
        .map(|s| {
            format!(
                "    notify_master \"{s} primary\"\n    notify_backup \"{s} backup\"\n    \
                 notify_fault \"{s} fault\"\n"
            )
        })
        .unwrap_or_default();
    format!(
        "global_defs {{\n    router_id {router}\n    script_user root\n}}\n\n\
         vrrp_sync_group G_GW {{\n    group {{\n        VI_IN\n        VI_OUT\n    }}\n{notify}}}\n\n{}{}",
        instance("VI_IN", "in0", 60, &[G::INSIDE_VIP]),
        instance("VI_OUT", "out0", 61, &["203.0.113.1", G::SNAT_IP, G::FLOATING_IP]),
    )
}

fn which(program: &'static str) -> Result<PathBuf> {
    crate::env::which(program).ok_or(LabError::InvalidName {
        kind: "program",
        name: program.into(),
        reason: "not installed (scripts/install-deps.sh installs it)",
    })
}

fn write(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: "write",
        path: path.clone(),
        source,
    })
}

fn chmod_x(path: &PathBuf) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| {
        LabError::Io {
            what: "chmod",
            path: path.clone(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_h1_sees_both_directions_and_nothing_else() {
        let out = "tcp 6 299 ESTABLISHED src=10.60.0.10 dst=203.0.113.100 sport=1 dport=5001 \
                   src=203.0.113.100 dst=203.0.113.50 sport=5001 dport=1 [ASSURED]\n\
                   tcp 6 299 ESTABLISHED src=203.0.113.100 dst=203.0.113.60 sport=2 dport=5002 \
                   src=10.60.0.11 dst=203.0.113.100 sport=5002 dport=2 [ASSURED]\n\
                   unknown 112 599 src=10.60.0.2 dst=224.0.0.18 src=224.0.0.18 dst=10.60.0.2\n\
                   udp 17 29 src=10.60.0.100 dst=203.0.113.100 sport=3 dport=9999\n\
                   tcp 6 ESTABLISHED src=203.0.113.100 dst=203.0.113.60 sport=2 dport=5002 \
                   [ASSURED] [active since 2s]\n";
        assert_eq!(count_h1(out), 3);
    }

    #[test]
    fn configs_carry_the_lab_parameters() {
        let k = keepalived_conf("gw2", 100, 1000, Some("/x/notify.sh"));
        assert!(
            k.contains("advert_int 1.00") && k.contains("priority 100"),
            "{k}"
        );
        assert!(k.contains("notify_master \"/x/notify.sh primary\""), "{k}");
        assert!(
            k.contains("203.0.113.50/24") && k.contains("virtual_router_id 61"),
            "{k}"
        );
        assert!(!keepalived_conf("gw1", 200, 100, None).contains("notify"));
        let c = conntrackd_conf_text(2, "/x/ctl", "/x/lock");
        assert!(
            c.contains("IPv4_address 192.168.100.2")
                && c.contains("Destination_Address 192.168.100.1"),
            "{c}"
        );
        assert!(nft_rules(Firewall::Stateful).contains("policy drop"));
        assert!(!nft_rules(Firewall::Permissive).contains("filter"));
    }
}
