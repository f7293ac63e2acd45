//! Running external commands (iproute2, ethtool, ping, python3 ...) with a time limit, and
//! turning failures into [`LabError`]s that show the exact command line.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::error::{LabError, Result};

/// Default limit for one command: long enough for a 4 MB transfer on a slow machine, short
/// enough that a hung tool fails the test instead of the whole CI run.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(120);

/// A command line rendered for humans (arguments with spaces or quotes are quoted).
pub fn display<S: AsRef<str>>(program: &str, args: &[S]) -> String {
    let mut out = String::from(program);
    for a in args {
        let a = a.as_ref();
        out.push(' ');
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
        {
            out.push_str(a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

/// Runs `program args`, feeding `input` on stdin, and collects its output. Kills it when it
/// runs longer than `limit` (reported as [`LabError::Timeout`]). A non-zero exit is *not* an
/// error here: see [`checked`].
pub fn output<S: AsRef<str>>(
    program: &str,
    args: &[S],
    input: Option<&[u8]>,
    limit: Duration,
) -> Result<Output> {
    let line = display(program, args);
    let mut child = Command::new(program)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            cmd: line.clone(),
            source,
        })?;

    let stdin_writer = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => {
            let data = data.to_vec();
            // A writer thread, so a child that does not read stdin cannot dead-lock us.
            Some(thread::spawn(move || {
                let _ = stdin.write_all(&data);
            }))
        }
        _ => None,
    };
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);

    let status = match wait_or_kill(&mut child, limit) {
        Ok(Waited::Exited(status)) => status,
        Ok(Waited::Killed { threads, deadline }) => {
            let partial = join(stdout);
            let partial_err = join(stderr);
            return Err(LabError::Timeout {
                what: format!("`{line}` to finish{}", deadline.pause_note()),
                waited: deadline.elapsed(),
                detail: format!(
                    "killed it; stdout so far:\n{}\nstderr so far:\n{}\nbefore the kill, {}\n{}",
                    lossy(&partial),
                    lossy(&partial_err),
                    threads,
                    machine_state()
                ),
            });
        }
        Err(source) => return Err(LabError::Spawn { cmd: line, source }),
    };
    if let Some(w) = stdin_writer {
        let _ = w.join();
    }
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

/// Like [`output`] but a non-zero exit becomes [`LabError::Command`]; returns stdout as text.
pub fn run<S: AsRef<str>>(program: &str, args: &[S]) -> Result<String> {
    let out = output(program, args, None, DEFAULT_LIMIT)?;
    checked(&display(program, args), out)
}

/// Turns an [`Output`] into its stdout, or an error naming `line` when it failed.
pub fn checked(line: &str, out: Output) -> Result<String> {
    if out.status.success() {
        Ok(lossy(&out.stdout))
    } else {
        let mut stderr = lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = lossy(&out.stdout).trim().to_string();
        }
        Err(LabError::Command {
            cmd: line.to_string(),
            status: status_text(out.status),
            stderr,
        })
    }
}

/// "exit 1" / "signal 9": how a process ended.
pub fn status_text(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown status".to_string(),
    }
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Kernel-log lines that mean the whole machine stalled, not the command under test.
const STALL_MARKERS: [&str; 5] = [
    "workqueue lockup",
    "soft lockup",
    "rcu_preempt detected stall",
    "blocked for more than",
    "hung_task",
];

/// What the machine was doing when a command hung, for the failure message: the load, the
/// CPU pressure, and the kernel log's last lines reporting a stall (a lab command that hangs
/// while the kernel reports every CPU's workqueue stuck is a machine stall, not a bug of the
/// command). Never fails and never waits more than ~3 s.
pub fn machine_state() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.lines().next().unwrap_or_default().to_string())
            .unwrap_or_else(|e| format!("unreadable ({e})"))
    };
    let mut out = format!(
        "machine: loadavg {}; cpu pressure {}",
        read("/proc/loadavg"),
        read("/proc/pressure/cpu")
    );
    let stalls = kernel_log()
        .map(|log| stall_lines(&log, 5))
        .unwrap_or_else(|e| vec![format!("(kernel log unreadable: {e})")]);
    if stalls.is_empty() {
        out.push_str("; no stall in the kernel log");
    } else {
        out.push_str("; kernel log stalls:");
        for l in stalls {
            out.push_str("\n  ");
            out.push_str(&l);
        }
    }
    out
}

/// The last `n` lines of `log` that report a machine stall ([`STALL_MARKERS`]).
fn stall_lines(log: &str, n: usize) -> Vec<String> {
    let hits: Vec<&str> = log
        .lines()
        .filter(|l| STALL_MARKERS.iter().any(|m| l.contains(m)))
        .collect();
    hits[hits.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// `dmesg -T` (root only), killed after 3 s.
fn kernel_log() -> std::result::Result<String, String> {
    let mut child = Command::new("dmesg")
        .arg("-T")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().map(reader);
    match wait_or_kill(&mut child, Duration::from_secs(3)).map(Waited::status) {
        Ok(Some(status)) if status.success() => Ok(lossy(&join(stdout))),
        Ok(Some(status)) => Err(status_text(status)),
        Ok(None) => Err("dmesg did not finish in 3 s".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// How [`wait_or_kill`] ended.
enum Waited {
    /// The child exited by itself.
    Exited(ExitStatus),
    /// The limit passed and the child was killed; where its threads were just before
    /// ([`crate::process::threads_state`]: one that printed everything and hangs in its
    /// exit shows it there).
    Killed {
        threads: String,
        deadline: crate::wait::Deadline,
    },
}

impl Waited {
    fn status(self) -> Option<ExitStatus> {
        match self {
            Waited::Exited(s) => Some(s),
            Waited::Killed { .. } => None,
        }
    }
}

/// Waits for `child` at most `limit`; past it, notes where its threads are, kills and
/// reaps it.
fn wait_or_kill(child: &mut Child, limit: Duration) -> std::io::Result<Waited> {
    // The machine's pauses do not count (see `wait::Deadline`): a command paused with the
    // whole machine has not hung.
    let mut deadline = crate::wait::Deadline::new(limit);
    loop {
        match child.try_wait()? {
            Some(status) => return Ok(Waited::Exited(status)),
            None if deadline.expired() => {
                let threads = crate::process::threads_state(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Waited::Killed { threads, deadline });
            }
            None => deadline.sleep(Duration::from_millis(5)),
        }
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn join(h: Option<thread::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    h.and_then(|h| h.join().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        assert_eq!(
            display("ip", &["-n", "ns1", "addr", "add", "10.0.0.1/24"]),
            "ip -n ns1 addr add 10.0.0.1/24"
        );
        assert_eq!(
            display("sh", &["-c", "echo 'x' y"]),
            r"sh -c 'echo '\''x'\'' y'"
        );
        assert_eq!(display("x", &[""]), "x ''");
    }

    #[test]
    fn output_collects_stdout_stdin_and_status() {
        let out = output("cat", &[] as &[&str], Some(b"hello"), DEFAULT_LIMIT).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello");
        let err = run("sh", &["-c", "echo oops >&2; exit 3"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit 3") && text.contains("oops"), "{text}");
    }

    #[test]
    fn output_kills_on_timeout() {
        let started = std::time::Instant::now();
        let err = output("sleep", &["10"], None, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LabError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_timeout_reports_the_machine_state() {
        let err = output("sleep", &["10"], None, Duration::from_millis(100)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("machine: loadavg "), "{text}");
        assert!(text.contains("stderr so far:"), "{text}");
        // Where the command was when it was killed: `sleep`, sleeping.
        assert!(text.contains("before the kill, threads of "), "{text}");
        assert!(text.contains(" sleep S (sleeping) wchan="), "{text}");
    }

    #[test]
    fn stall_lines_keep_the_last_stall_reports_only() {
        let log = "[t] br-ul: port 4(ul-g1) entered forwarding state\n\
                   [t] BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 36s!\n\
                   [t] workqueue events: flags=0x100\n\
                   [t] BUG: workqueue lockup - pool cpus=1 node=0 flags=0x0 nice=0 stuck for 35s!\n\
                   [t] watchdog: BUG: soft lockup - CPU#1 stuck for 22s!\n";
        let got = stall_lines(log, 2);
        assert_eq!(got.len(), 2);
        assert!(
            got[0].contains("cpus=1") && got[1].contains("soft lockup"),
            "{got:?}"
        );
        assert!(stall_lines("[t] nothing to see\n", 5).is_empty());
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run("/nonexistent/aegis-lab-test", &["x"]).unwrap_err();
        assert!(matches!(err, LabError::Spawn { .. }), "{err}");
    }
}
