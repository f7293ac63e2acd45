//! The lab's one error type. Every variant carries what is needed to reproduce or diagnose the
//! failure by hand: the command line, its stderr, the daemon's log tail.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias for the lab.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command could not be started at all (missing binary, permissions).
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// A file-system operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A name given to the lab is unusable.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: &'static str,
    },
    /// A host name that this lab did not create.
    #[error("unknown host {0:?} (create it with Lab::host first)")]
    UnknownHost(String),
    /// A host or process name used twice.
    #[error("{kind} {name:?} already exists in this lab")]
    Duplicate { kind: &'static str, name: String },
    /// Waiting for a condition ran out of time.
    #[error("timed out after {waited:?} waiting for {what}: {detail}")]
    Timeout {
        what: String,
        waited: Duration,
        detail: String,
    },
    /// A daemon exited while something was waiting for it.
    #[error("process {name} exited ({status}) while waiting for {what}; log tail:\n{log_tail}")]
    Exited {
        name: String,
        status: String,
        what: String,
        log_tail: String,
    },
    /// A required binary is not there.
    #[error("{what} not found at {}: {hint}", path.display())]
    MissingBinary {
        what: String,
        path: PathBuf,
        hint: &'static str,
    },
    /// Output of a tool could not be understood.
    #[error("cannot parse output of `{cmd}`: {detail}\n--- output ---\n{output}")]
    Parse {
        cmd: String,
        detail: String,
        output: String,
    },
}
