//! A long-running process started inside a lab namespace (a daemon, a traffic source): its
//! log file, liveness, and a stop that sends SIGTERM and escalates to SIGKILL after a grace
//! period.
//!
//! The process is started as `ip netns exec NS setpriv --pdeathsig TERM -- PROGRAM ARGS`.
//! `ip netns exec` and `setpriv` both `exec`, so the child pid is the program's pid. The
//! parent-death signal makes the kernel send SIGTERM to it when the thread that spawned it
//! exits — even if the test process is SIGKILLed and `Drop` never runs — so keep a lab and the
//! processes it spawns on one thread.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::cmd;
use crate::env;
use crate::error::{LabError, Result};

/// How long a process gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a `kill -9`ed process may take to be gone. A dataplane normally exits in
/// 70–110 ms, but one took more than 10 s in a full suite on 2026-12-08 (cause unknown; its
/// `net_af_packet` sockets' close waits for RCU grace periods, which other tests' namespace
/// teardown on two CPUs can slow down). [`Daemon::wait`]'s timeout shows where the threads
/// are.
pub const KILL_EXIT_LIMIT: Duration = Duration::from_secs(30);

/// One spawned process.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    cmdline: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `program args` in namespace `ns` with `env` added to the environment; stdout and
    /// stderr both go to `log` (created or truncated).
    pub fn spawn(
        name: &str,
        ns: &str,
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<Daemon> {
        let mut argv: Vec<&str> = vec!["netns", "exec", ns];
        if env::which("setpriv").is_some() {
            argv.extend(["setpriv", "--pdeathsig", "TERM", "--"]);
        }
        argv.push(program);
        argv.extend_from_slice(args);
        let cmdline = cmd::display("ip", &argv);

        let out = File::create(log).map_err(|source| LabError::Io {
            what: "create log",
            path: log.to_path_buf(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| LabError::Io {
            what: "duplicate log handle",
            path: log.to_path_buf(),
            source,
        })?;
        let child = Command::new("ip")
            .args(&argv)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| LabError::Spawn {
                cmd: cmdline.clone(),
                source,
            })?;
        Ok(Daemon {
            name: name.to_string(),
            cmdline,
            child,
            log: log.to_path_buf(),
            status: None,
        })
    }

    /// Its name in the lab.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command line it was started with.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// Its pid (valid until it is reaped).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of its combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its exit status, if it has exited (reaps it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
            }
        }
        self.status
    }

    /// True while it runs.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| cmd::lossy(&b))
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends SIGTERM (no-op when it already exited).
    pub fn terminate(&mut self) {
        if self.is_running() {
            let pid = self.pid().to_string();
            let sent = cmd::output("kill", &["-TERM", pid.as_str()], None, cmd::DEFAULT_LIMIT)
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !sent {
                // No `kill` binary or it refused: do not leave the process behind.
                let _ = self.child.kill();
            }
        }
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus> {
        let mut deadline = crate::wait::Deadline::new(limit);
        loop {
            if let Some(s) = self.exit_status() {
                return Ok(s);
            }
            if deadline.expired() {
                return Err(LabError::Timeout {
                    what: format!("process {} to exit{}", self.name, deadline.pause_note()),
                    waited: deadline.elapsed(),
                    detail: format!(
                        "{}\n{}\nlog tail:\n{}",
                        threads_state(self.pid()),
                        cmd::machine_state(),
                        self.log_tail(20)
                    ),
                });
            }
            deadline.sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns how it ended.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        self.terminate();
        self.finish(grace)
    }

    /// After [`terminate`](Self::terminate): waits out the rest of `grace`, then SIGKILLs.
    pub fn finish(&mut self, grace: Duration) -> ExitStatus {
        match self.wait(grace) {
            Ok(s) => s,
            Err(_) => {
                let _ = self.child.kill();
                let s = self.child.wait().ok();
                self.status = s;
                s.unwrap_or_else(|| {
                    // wait() only fails if the child was already reaped; report it as killed.
                    use std::os::unix::process::ExitStatusExt;
                    ExitStatus::from_raw(9)
                })
            }
        }
    }
}

/// Where each thread of process `pid` is (state and kernel wait channel, and the kernel
/// stack of the ones in uninterruptible sleep), for a process that does not exit: a thread
/// in `D` state waiting on a lock says what the kernel is stuck on.
pub fn threads_state(pid: u32) -> String {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(t) => t,
        Err(e) => return format!("threads of {pid}: unreadable ({e})"),
    };
    let mut out = format!("threads of {pid}:");
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let status = read("status");
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
                .unwrap_or("?")
                .to_string()
        };
        let state = field("State:");
        out.push_str(&format!(
            "\n  {} {} {} wchan={}",
            task.file_name().to_string_lossy(),
            field("Name:"),
            state,
            read("wchan").trim()
        ));
        if state.starts_with('D') {
            for frame in read("stack").lines().take(8) {
                out.push_str("\n      ");
                out.push_str(frame);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn threads_state_lists_every_thread_with_its_state() {
        let parked = thread::Builder::new()
            .name("parked-probe".into())
            .spawn(|| thread::sleep(Duration::from_secs(2)))
            .expect("spawn");
        thread::sleep(Duration::from_millis(50));
        let s = threads_state(std::process::id());
        assert!(
            s.starts_with(&format!("threads of {}:", std::process::id())),
            "{s}"
        );
        let line = s
            .lines()
            .find(|l| l.contains("parked-probe"))
            .unwrap_or_else(|| panic!("no line for the sleeping thread: {s}"));
        assert!(line.contains(" S (sleeping) wchan="), "{line}");
        parked.join().expect("join");
        assert!(threads_state(u32::MAX).contains("unreadable"));
    }
}
