//! Shared set-up for the real-EAL integration tests (`tests/eal_*.rs`).
//!
//! DPDK allows one EAL per process, so every `eal_*.rs` file holds exactly one `#[test]`
//! that starts the EAL: `cargo test` builds each file as its own binary (its own process),
//! and cargo-nextest runs each test in its own process anyway. Do not add a second
//! EAL-starting test to a file.
//!
//! When the EAL cannot start (no DPDK, not root, ...) a test fails if `CI=true` and
//! otherwise prints a loud SKIPPED banner and passes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::port::{Eal, Mempool};

/// EAL arguments every test uses: no hugepages, 128 MB, no PCI scan.
pub const BASE_ARGS: &[&str] = &["--no-huge", "-m", "128", "--no-pci"];

/// Starts the EAL with [`BASE_ARGS`] plus `extra`, or reports why it cannot (see the
/// module docs): `None` means "skip".
pub fn eal_or_skip(test: &str, extra: &[&str]) -> Option<Eal> {
    let args: Vec<String> = BASE_ARGS
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect();
    match Eal::init(&args) {
        Ok(eal) => Some(eal),
        Err(e) => {
            if in_ci() {
                panic!("{test}: the DPDK EAL must start under CI=true, but: {e}");
            }
            let bar = "!".repeat(78);
            eprintln!(
                "\n{bar}\n!! SKIPPED {test}: cannot start the DPDK EAL: {e}\n\
                 !! (needs DPDK 22.11 with its PMD plugins, usually as root; with CI=true \
                 this fails)\n{bar}\n"
            );
            None
        }
    }
}

/// True when the `CI` environment variable is `true` (or `1`).
pub fn in_ci() -> bool {
    // Same rule as the topology tests (tests/src/env.rs).
    std::env::var("CI")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

/// Deterministic packet bytes for packet number `seq` of `len` bytes.
pub fn packet(seq: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8)
        .collect()
}

/// An mbuf from `pool` holding `bytes`.
pub fn mbuf_with(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("the pool has a free mbuf");
    assert!(
        m.extend_from_slice(bytes),
        "{} bytes fit one mbuf",
        bytes.len()
    );
    m
}

/// A private temporary directory, removed on drop (also when the test panics).
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/aegis-<tag>-<pid>`.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("aegis-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
