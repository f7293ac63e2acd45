//! Where the Aegis binaries under test are: `$AEGIS_BIN_DIR` if set, else
//! `$CARGO_TARGET_DIR/release`, else `<workspace>/target/release` (the workspace root is the
//! parent of this crate's manifest dir). Topology tests use release builds, so they share
//! the daemons `cargo build --release --workspace --bins` made once.

use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};

/// Overrides the directory holding `aegis-dataplane`, `aegis-controlplane` and `aegisctl`.
pub const BIN_DIR_ENV: &str = "AEGIS_BIN_DIR";

const BUILD_HINT: &str = "build them with `cargo build --release --workspace --bins` \
                          (or set AEGIS_BIN_DIR to the directory holding them)";

/// The binaries a lab runs.
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// Finds the binary directory from the environment (see the module doc).
    pub fn locate() -> Bins {
        let dir = match std::env::var_os(BIN_DIR_ENV) {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => match std::env::var_os("CARGO_TARGET_DIR") {
                Some(t) if !t.is_empty() => workspace_root().join(t).join("release"),
                _ => workspace_root().join("target").join("release"),
            },
        };
        Bins { dir }
    }

    /// Binaries from an explicit directory.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Bins {
        Bins { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of `aegis-dataplane`, checked to exist.
    pub fn dataplane(&self) -> Result<PathBuf> {
        self.binary("aegis-dataplane")
    }

    /// Path of `aegis-controlplane`, checked to exist.
    pub fn controlplane(&self) -> Result<PathBuf> {
        self.binary("aegis-controlplane")
    }

    /// Path of `aegisctl`, checked to exist.
    pub fn aegisctl(&self) -> Result<PathBuf> {
        self.binary("aegisctl")
    }

    /// Path of binary `name` in the directory, checked to exist.
    pub fn binary(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(LabError::MissingBinary {
                what: name.to_string(),
                path: p,
                hint: BUILD_HINT,
            })
        }
    }
}

/// The workspace root: the parent of this crate's directory (`tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{}", root.display());
    }

    #[test]
    fn missing_binary_names_path_and_hint() {
        let b = Bins::in_dir("/nonexistent-aegis-bins");
        let e = b.dataplane().unwrap_err().to_string();
        assert!(e.contains("/nonexistent-aegis-bins/aegis-dataplane"), "{e}");
        assert!(e.contains("cargo build --release"), "{e}");
    }
}
