//! Can this machine run a lab? Labs need root (namespaces, veths) and a working `ip netns`.
//!
//! Tests call [`lab_ready`] first. When the answer is no, the test prints a loud SKIP banner and
//! returns — except under `CI=true`, where a missing prerequisite is a failure: CI must never
//! pass by skipping.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::cmd;

/// True when `CI` is set to `true`/`1`/`yes` (any case).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

/// True when the process runs with effective uid 0 (`/proc/self` is owned by the euid).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The first `name` on `PATH`, if any.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why a lab cannot run here, or `Ok` when it can. `tools` are extra programs the caller needs.
pub fn check(tools: &[&str]) -> Result<(), String> {
    if !is_root() {
        return Err(
            "not running as root (network namespaces need CAP_SYS_ADMIN/CAP_NET_ADMIN)".into(),
        );
    }
    if which("ip").is_none() {
        return Err("`ip` (iproute2) is not on PATH".into());
    }
    if let Err(e) = cmd::run("ip", &["netns", "list"]) {
        return Err(format!("`ip netns` does not work here: {e}"));
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing tools on PATH: {} (run scripts/install-deps.sh)",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// Gate for a root-needing test: true when it can run; otherwise prints a SKIP banner and
/// returns false, or panics under `CI=true`.
pub fn lab_ready(test: &str, tools: &[&str]) -> bool {
    match check(tools) {
        Ok(()) => true,
        Err(why) => skip_or_fail(test, &why),
    }
}

/// Prints a loud SKIP banner and returns false; under `CI=true` panics with the reason instead.
pub fn skip_or_fail(test: &str, why: &str) -> bool {
    if in_ci() {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!(
        "\n\
         ************************************************************************\n\
         *** SKIPPED {test}\n\
         *** reason: {why}\n\
         *** (run as root after scripts/install-deps.sh; under CI=true this fails)\n\
         ************************************************************************\n"
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("aegis-lab-no-such-tool").is_none());
    }

    #[test]
    fn check_reports_missing_tools_by_name() {
        if !is_root() {
            assert!(check(&[]).unwrap_err().contains("root"));
            return;
        }
        // As root, `ip netns` may still be unavailable (no iproute2): either way the message
        // must name what is missing.
        match check(&["aegis-lab-no-such-tool"]) {
            Err(why) => assert!(
                why.contains("aegis-lab-no-such-tool") || why.contains("ip"),
                "{why}"
            ),
            Ok(()) => panic!("a missing tool was not reported"),
        }
    }
}
