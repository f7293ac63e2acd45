//! The lab itself, proven with the Linux stack only (no Aegis binaries): namespaces, veths,
//! processes, waiting, the frame sender, the TCP transfer check, and that teardown and
//! `aegis-lab cleanup` leave nothing behind. Needs root; skips loudly otherwise (fails under
//! CI=true).

use std::path::Path;
use std::time::{Duration, Instant};

use aegis_lab::cleanup::{self, Selection};
use aegis_lab::frames::{self, Endpoints};
use aegis_lab::names::LabId;
use aegis_lab::{cmd, env, probe, Lab, LabError};

/// Two hosts `a` (10.7.0.1/24) and `b` (10.7.0.2/24) joined by one veth.
fn pair(prefix: &str) -> Lab {
    let mut lab = Lab::new(prefix).expect("lab");
    lab.host("a").unwrap();
    lab.host("b").unwrap();
    lab.link("a", "eth0", "b", "eth0").unwrap();
    lab.addr("a", "eth0", "10.7.0.1/24").unwrap();
    lab.addr("b", "eth0", "10.7.0.2/24").unwrap();
    lab
}

fn namespaces_of(id: &LabId) -> Vec<String> {
    let mut v: Vec<String> = cleanup::list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| id.owns(n))
        .collect();
    v.sort();
    v
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; count it as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn two_namespaces_ping_over_a_veth_and_teardown_removes_everything() {
    if !env::lab_ready("two_namespaces_ping", &["ping", "sysctl"]) {
        return;
    }
    let mut lab = pair("ping");
    let id = lab.id().clone();
    let dir = lab.dir().to_path_buf();

    assert_eq!(namespaces_of(&id), [id.ns("a"), id.ns("b")]);
    // The hosts were set up as documented.
    let v6 = lab
        .exec_ok("a", "sysctl", &["-n", "net.ipv6.conf.eth0.disable_ipv6"])
        .unwrap();
    assert_eq!(v6.trim(), "1");
    let lo = lab.ip("a", &["-o", "link", "show", "dev", "lo"]).unwrap();
    assert!(lo.contains("UP"), "{lo}");
    assert_ne!(lab.mac("a", "eth0").unwrap(), lab.mac("b", "eth0").unwrap());

    lab.wait_ping("a", "10.7.0.2", Duration::from_secs(10))
        .unwrap();
    let out = lab.ping("b", "10.7.0.1", 3).unwrap();
    let text = cmd::lossy(&out.stdout);
    assert_eq!(
        probe::ping_summary(&text),
        Some(probe::PingSummary {
            transmitted: 3,
            received: 3
        }),
        "{text}"
    );
    // Nothing leaks into the root namespace: the veth names exist only inside the lab.
    let root_links = cmd::run("ip", &["-o", "link", "show"]).unwrap();
    assert!(!root_links.contains(&id.to_string()));

    let sleeper = lab.spawn("a", "sleeper", "sleep", &["1000"]).unwrap();
    let pid = lab.proc(sleeper).pid();
    assert!(pid_alive(pid));

    lab.teardown().unwrap();
    assert!(namespaces_of(&id).is_empty(), "namespaces left behind");
    assert!(!dir.exists(), "temp dir left behind: {}", dir.display());
    assert!(!pid_alive(pid), "spawned process {pid} survived teardown");
}

#[test]
fn teardown_also_runs_when_a_test_panics() {
    if !env::lab_ready("teardown_on_panic", &["sysctl"]) {
        return;
    }
    let seen = std::sync::Mutex::new(None::<(LabId, u32)>);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut lab = pair("panic");
        let p = lab.spawn("b", "sleeper", "sleep", &["1000"]).unwrap();
        *seen.lock().unwrap() = Some((lab.id().clone(), lab.proc(p).pid()));
        panic!("deliberate panic inside a lab");
    }));
    assert!(result.is_err());
    let (id, pid) = seen.lock().unwrap().clone().expect("lab was built");
    assert!(namespaces_of(&id).is_empty(), "namespaces left after panic");
    assert!(!cleanup::lab_dir(&id).exists());
    assert!(!pid_alive(pid));
}

#[test]
fn stop_escalates_to_sigkill_and_socket_wait_fails_fast_on_exit() {
    if !env::lab_ready("stop_and_wait", &["sysctl"]) {
        return;
    }
    let mut lab = Lab::new("stop").unwrap();
    lab.host("a").unwrap();

    // Ignores SIGTERM: must be killed after the grace period.
    let stubborn = lab
        .spawn(
            "a",
            "stubborn",
            "sh",
            &["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let log = lab.stop(stubborn);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "killed too early"
    );
    assert!(log.contains("ready"), "{log}");
    assert!(!lab.proc(stubborn).is_running());

    // A "daemon" that dies: waiting for its socket stops at once with its log.
    let dying = lab
        .spawn(
            "a",
            "dying",
            "sh",
            &["-c", "echo boom-config-error; exit 3"],
        )
        .unwrap();
    let sock = lab.path("never.sock");
    let started = Instant::now();
    let err = lab
        .wait_for_socket(&sock, Duration::from_secs(20), Some(dying))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, LabError::Exited { .. }), "{err}");
    assert!(err.to_string().contains("boom-config-error"), "{err}");

    // And one that does listen is waited for.
    let ok_sock = lab.path("ok.sock");
    let ok_arg = ok_sock.to_string_lossy().into_owned();
    let listener = lab
        .spawn(
            "a",
            "listener",
            "python3",
            &[
                "-c",
                "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); time.sleep(60)",
                &ok_arg,
            ],
        )
        .unwrap();
    lab.wait_for_socket(&ok_sock, Duration::from_secs(20), Some(listener))
        .unwrap();
}

#[test]
fn frame_sender_delivers_frames_the_linux_stack_accepts_and_rejects() {
    if !env::lab_ready("frame_sender", &["python3", "sysctl"]) {
        return;
    }
    let lab = pair("frames");
    let ep = Endpoints {
        src_mac: frames::parse_mac(&lab.mac("a", "eth0").unwrap()).unwrap(),
        dst_mac: frames::parse_mac(&lab.mac("b", "eth0").unwrap()).unwrap(),
        src_ip: "10.7.0.1".parse().unwrap(),
        dst_ip: "10.7.0.2".parse().unwrap(),
        router_ip: "10.7.0.2".parse().unwrap(),
    };
    let snmp = |field: &str| -> u64 { snmp_counter(&lab, "b", field) };

    let echos = snmp("Icmp:InEchos");
    frames::send(
        &lab,
        "a",
        "eth0",
        &[ep.echo_frame(64, 1), ep.echo_frame(64, 2)],
    )
    .unwrap();
    wait_counter(|| snmp("Icmp:InEchos"), echos + 2);

    // Linux as a second opinion on the catalogue: a bad header checksum is a checksum error,
    // a total length beyond the frame a truncated packet.
    let bad = ep.bad_frames();
    let pick = |what: &str| bad.iter().find(|b| b.what == what).unwrap().frame.clone();
    let csum = snmp("IpExt:InCsumErrors");
    let trunc = snmp("IpExt:InTruncatedPkts");
    frames::send(
        &lab,
        "a",
        "eth0",
        &[
            pick("header checksum off by one"),
            pick("total length 200 in a shorter frame"),
        ],
    )
    .unwrap();
    wait_counter(|| snmp("IpExt:InCsumErrors"), csum + 1);
    wait_counter(|| snmp("IpExt:InTruncatedPkts"), trunc + 1);
}

#[test]
fn tcp_transfer_check_over_a_plain_veth() {
    if !env::lab_ready("tcp_transfer", &["python3", "sysctl"]) {
        return;
    }
    let mut lab = pair("tcp");
    lab.wait_ping("a", "10.7.0.2", Duration::from_secs(10))
        .unwrap();
    let t = probe::tcp_transfer(
        &mut lab,
        "b",
        "10.7.0.2",
        5001,
        "a",
        1 << 20,
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(t.sent, 1 << 20);
    assert_eq!(t.received, t.sent);
    assert_eq!(t.received_sha256, t.sent_sha256);
    assert_eq!(t.echoed_sha256, t.sent_sha256);
    assert_eq!(t.sent_sha256.len(), 64);
}

#[test]
fn cleanup_removes_leftovers_of_dead_labs_only() {
    if !env::lab_ready("cleanup", &["sysctl"]) {
        return;
    }
    // A lab "left behind" by a process that no longer exists (pid above pid_max).
    let dead = LabId::with("leak", 4_194_305, 7).unwrap();
    let dead_ns = dead.ns("h1");
    cmd::run("ip", &["netns", "add", dead_ns.as_str()]).unwrap();
    let dead_dir = cleanup::lab_dir(&dead);
    std::fs::create_dir_all(&dead_dir).unwrap();
    let dpdk_dir = Path::new(cleanup::DPDK_RUNTIME_DIR).join(dead.ns("r1"));
    std::fs::create_dir_all(&dpdk_dir).unwrap();

    // A live lab with the same prefix (ours).
    let mut live = Lab::new("leak").unwrap();
    live.host("h1").unwrap();
    let live_id = live.id().clone();

    let bin = env!("CARGO_BIN_EXE_aegis-lab");
    let out = cmd::run(bin, &["cleanup", "--prefix", "leak"]).unwrap();
    assert!(out.contains(&format!("namespace {dead_ns}")), "{out}");
    assert!(out.contains(&format!("kept {live_id}")), "{out}");
    assert!(namespaces_of(&dead).is_empty());
    assert!(!dead_dir.exists());
    assert!(!dpdk_dir.exists());
    assert_eq!(namespaces_of(&live_id), [live_id.ns("h1")]);

    // Another prefix is not touched at all; --all takes live labs too.
    let report = cleanup::cleanup(&Selection {
        all: false,
        prefix: Some("otherprefix".into()),
    })
    .unwrap();
    assert!(report.removed.is_empty() && report.live.is_empty());
    let report = cleanup::cleanup(&Selection {
        all: true,
        prefix: Some("leak".into()),
    })
    .unwrap();
    assert!(
        report.removed.iter().any(|r| r.contains(&live_id.ns("h1"))),
        "{:?}",
        report.removed
    );
    assert!(namespaces_of(&live_id).is_empty());
    // Dropping the lab afterwards copes with its namespace being gone already.
    live.teardown().unwrap();
}

/// Set in the child process of [`a_sigterm_to_the_test_process_removes_its_labs`].
const SIGNAL_CHILD_ENV: &str = "AEGIS_LAB_SIGNAL_CHILD";

#[test]
fn a_sigterm_to_the_test_process_removes_its_labs() {
    if std::env::var_os(SIGNAL_CHILD_ENV).is_some() {
        // The child: a lab with a process in it, reported on stdout, then wait to be killed.
        let mut lab = pair("sigterm");
        let p = lab.spawn("b", "sleeper", "sleep", &["1000"]).unwrap();
        let pid = lab.proc(p).pid();
        println!("LAB {} {pid}", lab.id());
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        panic!("the parent did not send SIGTERM within 60 s");
    }
    if !env::lab_ready("sigterm_teardown", &["sysctl"]) {
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // This same test, run alone in a child process of this test binary.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_sigterm_to_the_test_process_removes_its_labs",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGNAL_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // libtest writes "test NAME ... " before the test's own output, on the same line.
    let line = stdout
        .lines()
        .map_while(|l| l.ok())
        .find_map(|l| l.find("LAB ").map(|at| l[at..].to_string()));
    let Some(line) = line else {
        let _ = child.kill();
        panic!(
            "the child exited without building its lab: {:?}",
            child.wait()
        );
    };
    let mut parts = line.split_whitespace().skip(1);
    let id = LabId::parse(parts.next().unwrap()).expect("a lab id");
    let sleeper: u32 = parts.next().unwrap().parse().unwrap();
    assert_eq!(namespaces_of(&id), [id.ns("a"), id.ns("b")]);
    assert!(pid_alive(sleeper));

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            cleanup::remove_lab(&id);
            panic!("the child did not exit within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "exit status after SIGTERM: {status:?}"
    );
    assert!(
        namespaces_of(&id).is_empty(),
        "namespaces left after SIGTERM"
    );
    assert!(
        !cleanup::lab_dir(&id).exists(),
        "lab dir left after SIGTERM"
    );
    assert!(!pid_alive(sleeper), "the lab's process outlived SIGTERM");
}

/// A counter from /proc/net/snmp (`Ip:`, `Icmp:` ...) or /proc/net/netstat (`IpExt:`) inside
/// `host`, named `Section:Field`.
fn snmp_counter(lab: &Lab, host: &str, name: &str) -> u64 {
    let (section, field) = name.split_once(':').unwrap();
    let file = if section.ends_with("Ext") {
        "/proc/net/netstat"
    } else {
        "/proc/net/snmp"
    };
    let text = lab.exec_ok(host, "cat", &[file]).unwrap();
    let prefix = format!("{section}:");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    let (names, values) = (rows[0], rows[1]);
    let i = names
        .split_whitespace()
        .position(|n| n == field)
        .unwrap_or_else(|| panic!("{name} not in {file}"));
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn wait_counter(mut read: impl FnMut() -> u64, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = read();
        if now >= want {
            assert_eq!(now, want, "counter overshot");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "counter stuck at {now}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
