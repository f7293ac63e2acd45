//! Shared set-up for the tests that run `aegis-pktgen` against a real DPDK peer
//! (`dpdk-testpmd` in io mode, connected over memif).
//!
//! Each test starts its own testpmd (a memif server) and its own generator (the client),
//! with unique EAL file prefixes and memif sockets. Both busy-poll a CPU, so on a 2-CPU
//! machine two such tests at once would starve each other and measure the scheduler: the
//! tests take a machine-wide lock ([`PeerLock`]) and run one at a time even though nextest
//! runs them in parallel processes. Every process is killed when its guard drops, also when
//! the test panics, and the EAL runtime folders are removed.
//!
//! When the peer cannot run (not root, no `dpdk-testpmd`) a test fails under `CI=true` and
//! otherwise prints a SKIPPED banner and passes.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when the `CI` environment variable is `true` (or `1`, `yes`).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

/// Whether the DPDK peer tests can run here; `false` means skip (and panics under CI).
pub fn peer_available(test: &str) -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let testpmd = which("dpdk-testpmd").is_some();
    if root && testpmd {
        return true;
    }
    let why = format!(
        "{}{}",
        if root { "" } else { "not root; " },
        if testpmd {
            ""
        } else {
            "dpdk-testpmd not found (Debian package dpdk)"
        }
    );
    if in_ci() {
        panic!("{test}: the DPDK peer tests must run under CI=true, but: {why}");
    }
    let bar = "!".repeat(78);
    eprintln!("\n{bar}\n!! SKIPPED {test}: {why}\n!! (with CI=true this fails)\n{bar}\n");
    false
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// A machine-wide lock serialising the DPDK peer tests: a directory created atomically,
/// holding the owner's pid so a lock left by a killed test is taken over.
pub struct PeerLock(PathBuf);

impl PeerLock {
    /// Waits (up to 10 minutes) for the lock.
    pub fn acquire() -> PeerLock {
        let dir = std::env::temp_dir().join("aegis-pktgen-peer-tests.lock");
        let t0 = Instant::now();
        loop {
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let _ = std::fs::write(dir.join("pid"), std::process::id().to_string());
                    return PeerLock(dir);
                }
                Err(_) => {
                    let owner = std::fs::read_to_string(dir.join("pid")).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .map(|pid| Path::new(&format!("/proc/{pid}")).exists())
                        // No pid yet: the owner is between mkdir and write; give it a moment.
                        .unwrap_or(true);
                    if !alive {
                        let _ = std::fs::remove_dir_all(&dir);
                        continue;
                    }
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "waited 10 minutes for {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PeerLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private temporary folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/aegis-pktgen-<tag>-<pid>`.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("aegis-pktgen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `dpdk-testpmd` forwarding in io mode between the two directions of one memif port
/// (server role), on lcore 1 (its main lcore, 0, sleeps). Killed on drop.
pub struct Testpmd {
    child: Child,
    prefix: String,
    log: PathBuf,
    /// The memif socket the generator connects to.
    pub socket: String,
}

impl Testpmd {
    /// Starts testpmd and waits until it forwards (up to 30 s).
    pub fn start(tag: &str, dir: &Path) -> Testpmd {
        let prefix = format!("pgt-tp-{tag}-{}", std::process::id());
        let socket = dir.join("memif.sock").display().to_string();
        let log = dir.join("testpmd.log");
        let out = File::create(&log).expect("create testpmd log");
        let err = out.try_clone().expect("dup log");
        let child = Command::new("dpdk-testpmd")
            .args(["-l", "0,1", "--main-lcore", "0", "--no-huge", "-m", "256"])
            .args(["--no-pci", "--file-prefix", &prefix])
            .arg(format!("--vdev=net_memif0,role=server,socket={socket}"))
            .args([
                "--",
                "--forward-mode=io",
                "--auto-start",
                "--stats-period=3600",
            ])
            .args(["--total-num-mbufs=8192", "--burst=32"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn dpdk-testpmd");
        let mut tp = Testpmd {
            child,
            prefix,
            log,
            socket,
        };
        let t0 = Instant::now();
        loop {
            let text = std::fs::read_to_string(&tp.log).unwrap_or_default();
            if text.contains("Logical Core 1") {
                break;
            }
            if let Ok(Some(status)) = tp.child.try_wait() {
                panic!("dpdk-testpmd exited ({status}) before forwarding:\n{text}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "dpdk-testpmd did not start forwarding in 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The memif listener is up once forwarding has started.
        std::thread::sleep(Duration::from_millis(200));
        tp
    }

    /// Process id (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "STOP", "CONT") with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{signal} {} failed", self.pid());
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        // SIGCONT first in case a test stopped it, then SIGKILL.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

/// Runs `aegis-pktgen run` as the memif client of `peer` with `args` and returns its JSON
/// summary. The generator's worker runs on CPU 0 (`--main-lcore 1`), away from testpmd's
/// forwarding lcore on CPU 1.
pub fn pktgen_json(tag: &str, peer: &Testpmd, args: &[&str]) -> serde_json::Value {
    let prefix = format!("pgt-gen-{tag}-{}", std::process::id());
    let port = format!("net_memif0,role=client,socket={}", peer.socket);
    let out = Command::new(env!("CARGO_BIN_EXE_aegis-pktgen"))
        .args(["run", "--quiet", "--output", "json", "--port", &port])
        .args(args)
        .args([
            "--",
            "-l",
            "0,1",
            "--main-lcore",
            "1",
            "--no-huge",
            "-m",
            "256",
        ])
        .args(["--no-pci", "--file-prefix", &prefix])
        .stdin(Stdio::null())
        .output()
        .expect("run aegis-pktgen");
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aegis-pktgen failed ({}):\n{stderr}\ntestpmd log:\n{}",
        out.status,
        peer.log()
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("aegis-pktgen printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// `v[a][b]...` as f64 (panics with the path when missing).
pub fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{} missing in {v:#}", path.join(".")))
}
