//! Running external commands (iproute2, ethtool, ping, python3 ...) with a time limit, and
//! turning failures into [`LabError`]s that show the exact command line.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                let partial = join(stdout);
                return Err(LabError::Timeout {
                    what: format!("`{line}` to finish"),
                    waited: limit,
                    detail: format!("killed it; stdout so far:\n{}", lossy(&partial)),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(LabError::Spawn { cmd: line, source });
            }
        }
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
        let started = Instant::now();
        let err = output("sleep", &["10"], None, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LabError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run("/nonexistent/aegis-lab-test", &["x"]).unwrap_err();
        assert!(matches!(err, LabError::Spawn { .. }), "{err}");
    }
}
