//! The cluster IP (`vip`) and `aegis_agent::sysinfo::link_state` against real kernel interfaces:
//! each test makes a throwaway network namespace with a veth pair in it, runs the code
//! on a thread that entered that namespace, and checks the result with iproute2 and a packet
//! socket. Needs root and `ip`; without them the tests print "skipped: ..." and pass,
//! except under CI=true, where they fail.

use std::fs::File;
use std::future::Future;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aegis_agent::sysinfo::{link_state, LinkState};
use aegis_controlplane::vip::{ClusterIp, VipError};
use nix::sched::{setns, CloneFlags};

/// The interface that holds the cluster IP.
const HOLDER: &str = "vip0";
/// Its veth peer, where the announcements are captured.
const PEER: &str = "vip1";

/// Whether the tests can run here; under CI=true a missing requirement is a failure.
fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    let has_ip = Command::new("ip")
        .arg("-V")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    let problem = match (root, has_ip) {
        (true, true) => return true,
        (false, _) => "root (network namespaces, veth, addresses)",
        (true, false) => "the ip command (iproute2)",
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but the vip tests cannot run: they need {problem}");
    }
    println!("skipped: the vip tests need {problem}");
    false
}

/// A network namespace deleted on drop (also when a test panics).
struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace `aegis-vip-<pid>-<n>` holding the veth pair HOLDER/PEER, both up,
    /// HOLDER with `base/24` and PEER with the next address.
    fn with_veth(base: Ipv4Addr) -> Netns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "aegis-vip-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "add", HOLDER, "type", "veth", "peer", "name", PEER]);
        ns.ip(&["addr", "add", &format!("{base}/24"), "dev", HOLDER]);
        let peer_addr = Ipv4Addr::from(u32::from(base) + 1);
        ns.ip(&["addr", "add", &format!("{peer_addr}/24"), "dev", PEER]);
        ns.ip(&["link", "set", HOLDER, "up"]);
        ns.ip(&["link", "set", PEER, "up"]);
        ns
    }

    /// `ip -n NS args...`; panics unless it succeeds; its stdout.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// The IPv4 addresses of `dev`, one `ip -o` line each.
    fn addresses(&self, dev: &str) -> String {
        self.ip(&["-4", "-o", "addr", "show", "dev", dev])
    }

    /// The MAC address of `dev`.
    fn mac(&self, dev: &str) -> [u8; 6] {
        let out = self.ip(&["-o", "link", "show", "dev", dev]);
        let text = out
            .split_whitespace()
            .skip_while(|word| *word != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no link/ether in {out:?}"));
        let mut mac = [0u8; 6];
        for (byte, hex) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(hex, 16).expect("MAC byte");
        }
        mac
    }

    /// Runs `f`'s future to completion on a new thread that entered this namespace, in a
    /// current-thread tokio runtime; a panic there is re-raised here.
    fn run_inside<T, Fut>(&self, f: impl FnOnce() -> Fut + Send + 'static) -> T
    where
        T: Send + 'static,
        Fut: Future<Output = T>,
    {
        let path = format!("/run/netns/{}", self.name);
        let thread = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&ns, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {path}: {e}"));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(f())
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command; panics with its stderr unless it succeeds; its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A per-process /24 in 10.77.0.0/16, so concurrent test processes do not share one.
fn subnet_base(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, (std::process::id() % 250) as u8, host)
}

/// Gratuitous ARP frames seen for `ip`: (operation, sender MAC, target MAC).
type Seen = Vec<(u16, [u8; 6], [u8; 6])>;

/// A packet socket on `dev` (in the calling thread's namespace) collecting gratuitous ARP.
struct Capture {
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
}

impl Capture {
    fn open(dev: &str) -> Capture {
        let interface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == dev)
            .unwrap_or_else(|| panic!("{dev} not in this namespace"));
        let config = pnet_datalink::Config {
            read_timeout: Some(Duration::from_millis(100)),
            promiscuous: false,
            ..Default::default()
        };
        match pnet_datalink::channel(&interface, config).expect("packet socket") {
            pnet_datalink::Channel::Ethernet(_tx, rx) => Capture { rx },
            _ => panic!("not an Ethernet channel"),
        }
    }

    /// Reads frames until `done(seen)` or 5 s have passed; the gratuitous ARP for `ip` seen.
    fn collect(&mut self, ip: Ipv4Addr, done: impl Fn(&Seen) -> bool) -> Seen {
        let mut seen = Seen::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&seen) && Instant::now() < deadline {
            let Ok(frame) = self.rx.next() else { continue };
            if frame.len() >= 42
                && frame[12..14] == [0x08, 0x06]
                && frame[28..32] == ip.octets()
                && frame[38..42] == ip.octets()
            {
                assert_eq!(&frame[0..6], &[0xff; 6], "broadcast destination");
                let oper = u16::from_be_bytes([frame[20], frame[21]]);
                let mut sender = [0u8; 6];
                sender.copy_from_slice(&frame[22..28]);
                let mut target = [0u8; 6];
                target.copy_from_slice(&frame[32..38]);
                seen.push((oper, sender, target));
            }
        }
        seen
    }
}

#[test]
fn cluster_ip_acquire_announce_release() {
    if !can_run() {
        return;
    }
    let base = subnet_base(1);
    let ns = Netns::with_veth(base);
    let vip = Ipv4Addr::new(base.octets()[0], base.octets()[1], base.octets()[2], 100);
    let holder_mac = ns.mac(HOLDER);

    // Acquire: the address appears with its prefix and broadcast, and the peer hears
    // both forms of the gratuitous ARP from the holder's MAC.
    let seen = ns.run_inside(move || async move {
        let mut capture = Capture::open(PEER);
        let cluster_ip = ClusterIp::new(HOLDER.to_string(), vip, 24);
        assert!(!cluster_ip.is_present().await.expect("is_present"));
        cluster_ip.acquire().await.expect("acquire");
        assert!(cluster_ip.is_present().await.expect("is_present"));
        let want_both =
            |seen: &Seen| seen.iter().any(|s| s.0 == 1) && seen.iter().any(|s| s.0 == 2);
        let seen = capture.collect(vip, want_both);
        assert!(want_both(&seen), "request and reply forms: {seen:?}");
        seen
    });
    for (oper, sender, target) in &seen {
        assert_eq!(*sender, holder_mac, "sender MAC is the holder's");
        let want_target = if *oper == 1 { [0; 6] } else { holder_mac };
        assert_eq!(*target, want_target, "target MAC of operation {oper}");
    }
    let addrs = ns.addresses(HOLDER);
    let brd = Ipv4Addr::new(base.octets()[0], base.octets()[1], base.octets()[2], 255);
    assert!(
        addrs.contains(&format!("inet {vip}/24 brd {brd} ")),
        "{vip}/24 brd {brd} on {HOLDER}: {addrs}"
    );

    // Acquire twice is Ok and leaves one address; announce sends another request.
    ns.run_inside(move || async move {
        let mut capture = Capture::open(PEER);
        let cluster_ip = ClusterIp::new(HOLDER.to_string(), vip, 24);
        cluster_ip.acquire().await.expect("second acquire");
        let before = capture.collect(vip, |seen| seen.len() >= 2);
        assert!(!before.is_empty(), "second acquire announces too");
        cluster_ip.announce().await.expect("announce");
        let seen = capture.collect(vip, |seen| seen.iter().any(|s| s.0 == 1));
        assert!(seen.iter().any(|s| s.0 == 1), "announce sent a request");
    });
    let addrs = ns.addresses(HOLDER);
    assert_eq!(addrs.matches(&format!("inet {vip}/")).count(), 1, "{addrs}");

    // Release: gone; twice is Ok; the base address is untouched.
    ns.run_inside(move || async move {
        let cluster_ip = ClusterIp::new(HOLDER.to_string(), vip, 24);
        cluster_ip.release().await.expect("release");
        assert!(!cluster_ip.is_present().await.expect("is_present"));
        cluster_ip.release().await.expect("second release");
    });
    let addrs = ns.addresses(HOLDER);
    assert!(!addrs.contains(&format!("inet {vip}/")), "{addrs}");
    assert!(addrs.contains(&format!("inet {base}/24")), "{addrs}");

    // Release also removes the address when someone added it with another prefix.
    ns.ip(&["addr", "add", &format!("{vip}/16"), "dev", HOLDER]);
    ns.run_inside(move || async move {
        let cluster_ip = ClusterIp::new(HOLDER.to_string(), vip, 24);
        assert!(cluster_ip.is_present().await.expect("is_present"));
        cluster_ip.release().await.expect("release /16");
        assert!(!cluster_ip.is_present().await.expect("is_present"));
    });
    assert!(!ns.addresses(HOLDER).contains(&format!("inet {vip}/")));
}

#[test]
fn cluster_ip_on_a_down_interface_is_added_but_not_announced() {
    if !can_run() {
        return;
    }
    let base = subnet_base(1);
    let ns = Netns::with_veth(base);
    ns.ip(&["link", "set", HOLDER, "down"]);
    let vip = Ipv4Addr::new(base.octets()[0], base.octets()[1], base.octets()[2], 101);
    ns.run_inside(move || async move {
        let cluster_ip = ClusterIp::new(HOLDER.to_string(), vip, 24);
        let err = cluster_ip
            .acquire()
            .await
            .expect_err("announce on a down link");
        assert!(matches!(err, VipError::Announce { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(HOLDER) && message.contains(&vip.to_string()),
            "{message}"
        );
        assert!(cluster_ip.is_present().await.expect("is_present"));
        cluster_ip.release().await.expect("release");
        assert!(!cluster_ip.is_present().await.expect("is_present"));
    });
}

#[test]
fn cluster_ip_on_a_missing_interface_names_it() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_veth(subnet_base(1));
    ns.run_inside(|| async {
        let vip = Ipv4Addr::new(10, 77, 255, 100);
        let cluster_ip = ClusterIp::new("eth9".to_string(), vip, 24);
        let results = [
            cluster_ip.acquire().await,
            cluster_ip.announce().await,
            cluster_ip.release().await,
            cluster_ip.is_present().await.map(drop),
        ];
        for result in results {
            let err = result.expect_err("eth9 does not exist");
            assert!(
                matches!(&err, VipError::InterfaceNotFound { interface, .. } if interface == "eth9"),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "interface eth9 not found (cluster IP 10.77.255.100)");
        }
    });
}

/// Polls `link_state(dev)` inside `ns` until it is `want` (operstate follows carrier
/// changes asynchronously) or 5 s have passed; the last state seen.
fn wait_for_state(ns: &Netns, dev: &'static str, want: LinkState) -> LinkState {
    ns.run_inside(move || async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = link_state(dev).await.expect("link_state");
            if state == want || Instant::now() >= deadline {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[test]
fn link_state_follows_the_veth() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_veth(subnet_base(1));
    assert_eq!(wait_for_state(&ns, HOLDER, LinkState::Up), LinkState::Up);

    // Peer down: no carrier on the holder.
    ns.ip(&["link", "set", PEER, "down"]);
    assert_eq!(
        wait_for_state(&ns, HOLDER, LinkState::Down),
        LinkState::Down
    );
    assert_eq!(wait_for_state(&ns, PEER, LinkState::Down), LinkState::Down);
    ns.ip(&["link", "set", PEER, "up"]);
    assert_eq!(wait_for_state(&ns, HOLDER, LinkState::Up), LinkState::Up);

    // Loopback reports operstate "unknown": Down while admin down, Up once up.
    assert_eq!(wait_for_state(&ns, "lo", LinkState::Down), LinkState::Down);
    ns.ip(&["link", "set", "lo", "up"]);
    assert_eq!(wait_for_state(&ns, "lo", LinkState::Up), LinkState::Up);

    assert_eq!(
        wait_for_state(&ns, "nosuch0", LinkState::Missing),
        LinkState::Missing
    );
}
