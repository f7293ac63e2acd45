//! Names: every lab gets an id `aegl-<prefix>-<pid>-<seq>` that is unique on the machine while
//! its process lives (pid) and within the process (seq), and that can be parsed back, so
//! `aegis-lab cleanup` can tell leftovers of dead processes from labs still in use.
//!
//! Namespaces are `<id>-<host>`. Links are created directly inside the lab's namespaces, so
//! interface names only need to be unique within one namespace; they are still checked against
//! the kernel's limit (15 bytes, `IFNAMSIZ` - 1) up front for a clear error.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{LabError, Result};

/// First component of every lab name; what `cleanup` looks for.
pub const MARKER: &str = "aegl";

/// Longest interface name Linux accepts.
pub const IFNAME_MAX: usize = 15;

/// Longest caller-chosen prefix; keeps ids (and socket paths built from them) short.
pub const PREFIX_MAX: usize = 12;

/// Longest host name.
pub const HOST_MAX: usize = 16;

static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);

/// The unique id of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabId {
    prefix: String,
    pid: u32,
    seq: u32,
}

impl LabId {
    /// A fresh id for this process: the next sequence number, the current pid.
    pub fn new(prefix: &str) -> Result<LabId> {
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        LabId::with(prefix, std::process::id(), seq)
    }

    /// An id from its parts (validates the prefix).
    pub fn with(prefix: &str, pid: u32, seq: u32) -> Result<LabId> {
        validate_prefix(prefix)?;
        Ok(LabId {
            prefix: prefix.to_string(),
            pid,
            seq,
        })
    }

    /// Parses a lab id, or the name of anything derived from one (`<id>-<host>`, a DPDK file
    /// prefix, a temp dir). `None` when the name is not a lab's.
    pub fn parse(name: &str) -> Option<LabId> {
        let mut parts = name.splitn(5, '-');
        if parts.next()? != MARKER {
            return None;
        }
        let prefix = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        if let Some(rest) = parts.next() {
            if rest.is_empty() {
                return None;
            }
        }
        LabId::with(prefix, pid, seq).ok()
    }

    /// The caller's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Pid of the process that created the lab.
    pub fn owner_pid(&self) -> u32 {
        self.pid
    }

    /// The namespace name of `host` in this lab.
    pub fn ns(&self, host: &str) -> String {
        format!("{self}-{host}")
    }

    /// True when `name` is this lab's id or derived from it.
    pub fn owns(&self, name: &str) -> bool {
        LabId::parse(name).as_ref() == Some(self)
    }
}

impl std::fmt::Display for LabId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{MARKER}-{}-{}-{}", self.prefix, self.pid, self.seq)
    }
}

/// A lab prefix: 1..=12 lower-case letters or digits (no `-`, which separates the id's parts).
pub fn validate_prefix(p: &str) -> Result<()> {
    let bad = |reason| {
        Err(LabError::InvalidName {
            kind: "lab prefix",
            name: p.to_string(),
            reason,
        })
    };
    if p.is_empty() || p.len() > PREFIX_MAX {
        return bad("must be 1 to 12 characters");
    }
    if !p
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return bad("only a-z and 0-9 are allowed");
    }
    Ok(())
}

/// A host name: 1..=16 of `a-z 0-9 -`, starting with a letter.
pub fn validate_host(h: &str) -> Result<()> {
    validate_label("host", h, HOST_MAX)
}

/// A process name (also its log file's name): 1..=32 of `a-z 0-9 -`, starting with a letter.
pub fn validate_process(p: &str) -> Result<()> {
    validate_label("process", p, 32)
}

fn validate_label(kind: &'static str, s: &str, max: usize) -> Result<()> {
    let bad = |reason| {
        Err(LabError::InvalidName {
            kind,
            name: s.to_string(),
            reason,
        })
    };
    if s.is_empty() || s.len() > max {
        return bad("too short or too long");
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return bad("must start with a-z");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only a-z, 0-9 and - are allowed");
    }
    Ok(())
}

/// An interface name the kernel will accept: 1..=15 bytes, printable ASCII, no `/`, `:` or
/// whitespace, not `.` or `..`.
pub fn validate_ifname(n: &str) -> Result<()> {
    let bad = |reason| {
        Err(LabError::InvalidName {
            kind: "interface",
            name: n.to_string(),
            reason,
        })
    };
    if n.is_empty() || n.len() > IFNAME_MAX {
        return bad("must be 1 to 15 bytes (IFNAMSIZ)");
    }
    if n == "." || n == ".." {
        return bad("`.` and `..` are reserved");
    }
    if !n
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
    {
        return bad("only printable ASCII without `/` or `:`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_within_a_process() {
        let a = LabId::new("t").unwrap();
        let b = LabId::new("t").unwrap();
        assert_ne!(a, b);
        assert_ne!(a.to_string(), b.to_string());
        assert_eq!(a.owner_pid(), std::process::id());
        assert_eq!(b.owner_pid(), std::process::id());
    }

    #[test]
    fn ids_from_concurrent_threads_never_collide() {
        let ids: Vec<String> = (0..8)
            .map(|_| std::thread::spawn(|| LabId::new("par").unwrap().to_string()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn format_and_parse_round_trip() {
        let id = LabId::with("router", 4194304, 17).unwrap();
        assert_eq!(id.to_string(), "aegl-router-4194304-17");
        assert_eq!(LabId::parse(&id.to_string()), Some(id.clone()));
        let ns = id.ns("h1");
        assert_eq!(ns, "aegl-router-4194304-17-h1");
        assert_eq!(LabId::parse(&ns), Some(id.clone()));
        assert!(id.owns(&ns));
        assert!(id.owns(&id.ns("my-host")));
        assert!(!id.owns("aegl-router-4194304-18-h1"));
    }

    #[test]
    fn parse_rejects_foreign_names() {
        for n in [
            "",
            "aegl",
            "aegl-x",
            "aegl-x-1",
            "aegl-x-1-",
            "aegl-x-1-2-",
            "aegl-x-abc-2",
            "aegl-X-1-2",
            "aegl--1-2",
            "other-x-1-2",
            "aeglx-x-1-2",
            "aegl-x-1-2x",
        ] {
            assert_eq!(LabId::parse(n), None, "{n:?}");
        }
        assert!(LabId::parse("aegl-x-1-2").is_some());
    }

    #[test]
    fn namespace_names_stay_unique_across_labs_and_hosts() {
        let a = LabId::with("p", 10, 1).unwrap();
        let b = LabId::with("p", 101, 1).unwrap();
        let c = LabId::with("p", 10, 11).unwrap();
        let names = [a.ns("h1"), b.ns("h1"), c.ns("h1"), a.ns("h11")];
        let set: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        // Each parses back to its own lab, even when pids/seqs share digits.
        assert_eq!(LabId::parse(&names[0]), Some(a.clone()));
        assert_eq!(LabId::parse(&names[1]), Some(b));
        assert_eq!(LabId::parse(&names[2]), Some(c));
        assert_eq!(LabId::parse(&names[3]), Some(a));
    }

    #[test]
    fn prefix_rules() {
        assert!(validate_prefix("router").is_ok());
        assert!(validate_prefix("a1").is_ok());
        assert!(validate_prefix("abcdefghijkl").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("abcdefghijklm").is_err());
        assert!(validate_prefix("a-b").is_err());
        assert!(validate_prefix("Ab").is_err());
        assert!(LabId::new("bad prefix").is_err());
    }

    #[test]
    fn host_rules() {
        assert!(validate_host("h1").is_ok());
        assert!(validate_host("r1-left").is_ok());
        assert!(validate_host("1h").is_err());
        assert!(validate_host("").is_err());
        assert!(validate_host("h_1").is_err());
        assert!(validate_host(&"h".repeat(17)).is_err());
        assert!(validate_process("aegis-dataplane").is_ok());
        assert!(validate_process("tcp-sink-5001").is_ok());
        assert!(validate_process("../x").is_err());
        assert!(validate_process(&"p".repeat(33)).is_err());
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("veth-h1").is_ok());
        assert!(validate_ifname(&"x".repeat(15)).is_ok());
        assert!(validate_ifname(&"x".repeat(16)).is_err());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "é"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
