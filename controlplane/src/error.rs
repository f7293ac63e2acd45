//! Errors of `aegisctl` commands: their one-line messages and process exit codes.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use tonic::Code;

/// Exit code when the server refused or failed the request.
pub const EXIT_REQUEST: u8 = 1;
/// Exit code for command-line usage errors (what clap uses).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the server cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The admin socket could not be connected to, or the connection broke.
    #[error(
        "cannot reach the dataplane admin socket {socket}: {detail}; is aegis-dataplane running?"
    )]
    Unreachable {
        /// Socket path tried.
        socket: PathBuf,
        /// The underlying error.
        detail: String,
    },
    /// The control plane could not be reached, or has no leader or quorum.
    #[error("control plane {server}: {detail}")]
    ControlPlane {
        /// The address tried.
        server: String,
        /// What happened.
        detail: String,
    },
    /// The command line or an input file is wrong.
    #[error("{0}")]
    Usage(String),
    /// The server answered with an error.
    #[error("{}", describe(.0))]
    Rejected(tonic::Status),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

impl CliError {
    /// Classifies a failed call on `socket`.
    pub fn from_status(status: tonic::Status, socket: &std::path::Path) -> Self {
        if status.code() == Code::Unavailable {
            CliError::Unreachable {
                socket: socket.to_path_buf(),
                detail: status.message().to_string(),
            }
        } else {
            CliError::Rejected(status)
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Unreachable { .. } | CliError::ControlPlane { .. } => EXIT_UNREACHABLE,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Rejected(_) | CliError::Output(_) => EXIT_REQUEST,
        })
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::Output(io::Error::other(e))
    }
}

fn describe(status: &tonic::Status) -> String {
    let what = match status.code() {
        Code::InvalidArgument => "invalid argument",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::FailedPrecondition => "refused",
        Code::Aborted => "conflict",
        Code::Unauthenticated => "not authorised",
        Code::DeadlineExceeded => "the server did not answer in time",
        Code::Unimplemented => "not supported by this server",
        Code::Internal => "server error",
        _ => return format!("request failed ({:?}): {}", status.code(), status.message()),
    };
    if status.message().is_empty() {
        what.to_string()
    } else {
        format!("{what}: {}", status.message())
    }
}

/// The most specific message in an error's source chain (the OS error behind a
/// transport error, typically).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}
