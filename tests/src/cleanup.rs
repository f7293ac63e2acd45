//! Removing what labs leave behind: namespaces (and the processes and veths in them), DPDK
//! runtime dirs (`/var/run/dpdk/<file-prefix>`) and temp dirs. Used by [`Lab`](crate::Lab)'s
//! teardown for its own objects, and by `aegis-lab cleanup` for leftovers of processes that
//! died without tearing down (SIGKILL, a crashed runner).
//!
//! Everything a lab creates is named after its [`LabId`], which records the owning pid, so by
//! default only labs whose owner is gone are touched and parallel test runs are left alone.

use std::path::{Path, PathBuf};

use crate::cmd;
use crate::error::Result;
use crate::names::LabId;

/// Where DPDK keeps per-prefix runtime files when run as root.
pub const DPDK_RUNTIME_DIR: &str = "/var/run/dpdk";

/// Parent of all lab temp dirs.
pub fn lab_root() -> PathBuf {
    std::env::temp_dir().join("aegis-lab")
}

/// The temp dir of lab `id`.
pub fn lab_dir(id: &LabId) -> PathBuf {
    lab_root().join(id.to_string())
}

/// Names of all network namespaces (`ip netns list`).
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = cmd::run("ip", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// SIGKILLs every process still running in namespace `ns` (best effort).
pub fn kill_ns_pids(ns: &str) {
    let Ok(out) = cmd::output("ip", &["netns", "pids", ns], None, cmd::DEFAULT_LIMIT) else {
        return;
    };
    let pids: Vec<String> = cmd::lossy(&out.stdout)
        .split_whitespace()
        .filter(|p| p.parse::<u32>().is_ok())
        .map(str::to_string)
        .collect();
    if pids.is_empty() {
        return;
    }
    let mut args = vec!["-KILL".to_string()];
    args.extend(pids);
    let _ = cmd::output("kill", &args, None, cmd::DEFAULT_LIMIT);
    // Give the kernel a moment to reap them so the namespace can really go away.
    std::thread::sleep(std::time::Duration::from_millis(50));
}

/// Deletes namespace `ns`; a namespace that is already gone is fine.
pub fn delete_ns(ns: &str) -> Result<()> {
    match cmd::run("ip", &["netns", "del", ns]) {
        Ok(_) => Ok(()),
        Err(_) if !Path::new("/var/run/netns").join(ns).exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes DPDK runtime dirs whose file prefix belongs to lab `id`.
pub fn remove_dpdk_runtime(id: &LabId) -> Vec<PathBuf> {
    remove_entries(Path::new(DPDK_RUNTIME_DIR), |name| id.owns(name))
}

/// Removes everything of lab `id` (best effort): processes, namespaces, DPDK dirs, temp dir.
pub fn remove_lab(id: &LabId) -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(all) = list_namespaces() {
        for ns in all.into_iter().filter(|n| id.owns(n)) {
            kill_ns_pids(&ns);
            if delete_ns(&ns).is_ok() {
                removed.push(format!("namespace {ns}"));
            }
        }
    }
    for p in remove_dpdk_runtime(id) {
        removed.push(format!("dpdk runtime {}", p.display()));
    }
    let dir = lab_dir(id);
    if dir.exists() && std::fs::remove_dir_all(&dir).is_ok() {
        removed.push(format!("dir {}", dir.display()));
    }
    removed
}

/// Removes every lab this process created (best effort); returns what went.
pub fn remove_own_labs() -> Vec<String> {
    let me = std::process::id();
    let mut ids: Vec<LabId> = Vec::new();
    let names = list_namespaces()
        .unwrap_or_default()
        .into_iter()
        .chain(dir_names(&lab_root()))
        .chain(dir_names(Path::new(DPDK_RUNTIME_DIR)));
    for name in names {
        if let Some(id) = LabId::parse(&name).filter(|id| id.owner_pid() == me) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.iter().flat_map(remove_lab).collect()
}

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes SIGTERM, SIGINT and SIGHUP tear down this process's labs before it exits (with
/// 128 + the signal, as the default action would report), so that a test runner's timeout
/// (nextest sends SIGTERM) or a Ctrl-C leaves no namespace or process behind. Installed
/// once per process, by the first [`Lab`](crate::Lab); a signal thread does the work.
pub fn teardown_on_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("aegis-lab: cannot watch signals ({e}); a killed test may leave its lab");
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("lab-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    eprintln!("aegis-lab: signal {sig}: tearing down this process's labs");
                    for r in remove_own_labs() {
                        eprintln!("aegis-lab: removed {r}");
                    }
                    std::process::exit(128 + sig);
                }
            });
        if let Err(e) = spawned {
            eprintln!("aegis-lab: cannot start the signal thread ({e})");
        }
    });
}

/// Which labs `cleanup` may remove.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Also labs whose owning process is still alive.
    pub all: bool,
    /// Only labs with this prefix.
    pub prefix: Option<String>,
}

/// What `cleanup` did.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects removed, one line each.
    pub removed: Vec<String>,
    /// Labs left alone because their owner still runs.
    pub live: Vec<String>,
}

/// Removes leftovers of labs selected by `sel`.
pub fn cleanup(sel: &Selection) -> Result<Report> {
    let mut ids: Vec<LabId> = Vec::new();
    let mut note = |name: &str| {
        if let Some(id) = LabId::parse(name) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    };
    for ns in list_namespaces()? {
        note(&ns);
    }
    for dir in [lab_root(), PathBuf::from(DPDK_RUNTIME_DIR)] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                note(&e.file_name().to_string_lossy());
            }
        }
    }

    let mut report = Report::default();
    for id in ids {
        if sel.prefix.as_deref().is_some_and(|p| p != id.prefix()) {
            continue;
        }
        if !sel.all && owner_alive(&id) {
            report.live.push(id.to_string());
            continue;
        }
        report.removed.extend(remove_lab(&id));
    }
    Ok(report)
}

/// Whether the process that created lab `id` still runs (a zombie counts as gone).
pub fn owner_alive(id: &LabId) -> bool {
    let stat = Path::new("/proc")
        .join(id.owner_pid().to_string())
        .join("stat");
    match std::fs::read_to_string(stat) {
        // "pid (comm) S ...": the state follows the last ')' (comm may contain spaces).
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn remove_entries(dir: &Path, select: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return removed;
    };
    for e in rd.flatten() {
        if select(&e.file_name().to_string_lossy()) {
            let p = e.path();
            let ok = if p.is_dir() {
                std::fs::remove_dir_all(&p).is_ok()
            } else {
                std::fs::remove_file(&p).is_ok()
            };
            if ok {
                removed.push(p);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_entries_only_touches_selected_names() {
        let root = std::env::temp_dir().join(format!("aegis-lab-cleanup-{}", std::process::id()));
        let id = LabId::with("unit", 1, 2).unwrap();
        let other = LabId::with("unit", 1, 3).unwrap();
        std::fs::create_dir_all(root.join(id.ns("r1"))).unwrap();
        std::fs::write(root.join(id.to_string()), b"x").unwrap();
        std::fs::create_dir_all(root.join(other.ns("r1"))).unwrap();
        std::fs::create_dir_all(root.join("unrelated")).unwrap();

        let removed = remove_entries(&root, |n| id.owns(n));
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!root.join(id.ns("r1")).exists());
        assert!(root.join(other.ns("r1")).exists());
        assert!(root.join("unrelated").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn owner_alive_sees_this_process() {
        let me = LabId::new("unit").unwrap();
        assert!(owner_alive(&me));
        // Above the kernel's pid_max limit (2^22): never a live process.
        let dead = LabId::with("unit", 4_194_305, 0).unwrap();
        assert!(!owner_alive(&dead));
    }
}
