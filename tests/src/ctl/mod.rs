//! Runs `aegisctl dp --socket S ...` against a lab's dataplane. The command-line shape lives in
//! [`Ctl::argv`], the JSON shape in [`json`]; nothing else in the lab knows either.
//!
//! `aegisctl` talks to the admin socket only, so it runs in the root namespace: the socket is a
//! file in the lab's temp dir, visible from every namespace.

pub mod json;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cmd;
use crate::error::{LabError, Result};
use crate::lab::{Lab, ProcId};
use crate::wait::{self, Poll};

pub use json::{DropCounters, RouteRow};

/// An `aegisctl` bound to one dataplane's admin socket.
#[derive(Debug, Clone)]
pub struct Ctl {
    bin: PathBuf,
    socket: PathBuf,
}

impl Ctl {
    /// `aegisctl` at `bin`, talking to `socket`.
    pub fn new(bin: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Ctl {
        Ctl {
            bin: bin.into(),
            socket: socket.into(),
        }
    }

    /// The admin socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The arguments for `aegisctl` to run dataplane command `rest` (`["show", "errors"]`),
    /// with JSON output when `json`.
    pub fn argv(&self, json: bool, rest: &[&str]) -> Vec<String> {
        let mut a = vec![
            "dp".to_string(),
            "--socket".to_string(),
            self.socket.to_string_lossy().into_owned(),
        ];
        if json {
            a.extend(["--output".to_string(), "json".to_string()]);
        }
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    }

    /// The command line for humans (printed by the demo so users can repeat it).
    pub fn display(&self, json: bool, rest: &[&str]) -> String {
        cmd::display(&self.bin.to_string_lossy(), &self.argv(json, rest))
    }

    /// Runs a command with human output; fails unless it exits 0.
    pub fn text(&self, rest: &[&str]) -> Result<String> {
        self.run(false, rest)
    }

    /// Runs a command with `--output json` and parses the reply.
    pub fn json(&self, rest: &[&str]) -> Result<Value> {
        let out = self.run(true, rest)?;
        serde_json::from_str(&out).map_err(|e| LabError::Parse {
            cmd: self.display(true, rest),
            detail: e.to_string(),
            output: out,
        })
    }

    /// A gateway's VRRP state (`show vrrp`): its instances' state when they all agree
    /// (`MASTER`...), else `MIXED [...]`.
    pub fn vrrp_state(&self) -> Result<String> {
        let v = self.json(&["show", "vrrp"])?;
        let states: Vec<String> = v["instances"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["state"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(match states.first() {
            Some(s) if states.iter().all(|x| x == s) => s.clone(),
            _ => format!("MIXED {states:?}"),
        })
    }

    /// Waits until every VRRP instance of the gateway (`host`, run as `proc` in `lab`: its
    /// exit fails the wait) is in `state`; returns the time it took.
    pub fn wait_vrrp_state(
        &self,
        lab: &mut Lab,
        proc: Option<ProcId>,
        host: &str,
        state: &str,
        limit: Duration,
    ) -> Result<Duration> {
        let t0 = Instant::now();
        let what = format!("{host} {state}");
        wait::until(&what, limit, Duration::from_millis(5), || {
            if let Some(e) = proc.and_then(|id| lab.exited_error(id, &what)) {
                return Poll::Fail(e);
            }
            match self.vrrp_state() {
                Ok(s) if s == state => Poll::Ready(t0.elapsed()),
                Ok(s) => Poll::Pending(format!("state {s}")),
                Err(e) => Poll::Pending(e.to_string()),
            }
        })
    }

    /// Waits until the gateway reports a complete session-sync replica (`show sync`).
    pub fn wait_synced(&self, limit: Duration) -> Result<()> {
        wait::until(
            "session sync complete",
            limit,
            Duration::from_millis(20),
            || match self.json(&["show", "sync"]) {
                Ok(v) if v["synced"].as_bool() == Some(true) => Poll::Ready(()),
                Ok(v) => Poll::Pending(v.to_string()),
                Err(e) => Poll::Pending(e.to_string()),
            },
        )
    }

    /// Drop counters by reason (`show errors`).
    pub fn drop_counters(&self) -> Result<DropCounters> {
        let rest = ["show", "errors"];
        let v = self.json(&rest)?;
        json::drop_counters(&v).map_err(|detail| self.parse_error(&rest, detail, &v))
    }

    /// The routing table (`show routes`).
    pub fn routes(&self) -> Result<Vec<RouteRow>> {
        let rest = ["show", "routes"];
        let v = self.json(&rest)?;
        json::routes(&v).map_err(|detail| self.parse_error(&rest, detail, &v))
    }

    /// `route add PREFIX via GW`.
    pub fn route_add(&self, prefix: &str, via: &str) -> Result<()> {
        self.text(&["route", "add", prefix, "via", via]).map(drop)
    }

    /// `route del PREFIX`.
    pub fn route_del(&self, prefix: &str) -> Result<()> {
        self.text(&["route", "del", prefix]).map(drop)
    }

    fn run(&self, json: bool, rest: &[&str]) -> Result<String> {
        let argv = self.argv(json, rest);
        let bin = self.bin.to_string_lossy();
        let out = cmd::output(&bin, &argv, None, cmd::DEFAULT_LIMIT)?;
        cmd::checked(&cmd::display(&bin, &argv), out)
    }

    fn parse_error(&self, rest: &[&str], detail: String, v: &Value) -> LabError {
        LabError::Parse {
            cmd: self.display(true, rest),
            detail,
            output: v.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_puts_socket_and_output_after_dp() {
        let c = Ctl::new("/bin/aegisctl", "/tmp/x/r1.sock");
        assert_eq!(
            c.argv(true, &["show", "errors"]),
            [
                "dp",
                "--socket",
                "/tmp/x/r1.sock",
                "--output",
                "json",
                "show",
                "errors"
            ]
        );
        assert_eq!(
            c.display(false, &["route", "add", "10.0.3.0/24", "via", "10.0.2.2"]),
            "/bin/aegisctl dp --socket /tmp/x/r1.sock route add 10.0.3.0/24 via 10.0.2.2"
        );
    }
}
