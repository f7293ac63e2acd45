//! Why a request was rejected: a gRPC-style code and a message naming the field and value.

use serde::{Deserialize, Serialize};

/// The class of a rejection, mapped one to one onto gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Malformed or conflicting values (bad CIDR/MAC/VNI, overlap, duplicate address).
    InvalidArgument,
    /// A reference to an object that does not exist, or Update/Delete/Get of a missing one.
    NotFound,
    /// Deleting an object that other objects still refer to.
    FailedPrecondition,
    /// Create of a name that is taken.
    AlreadyExists,
    /// `expected_revision` did not match the object's revision.
    Aborted,
}

/// A rejected request. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    /// The class.
    pub code: ErrorCode,
    /// What was wrong, naming the object, field and value.
    pub message: String,
}

impl ModelError {
    /// An [`ErrorCode::InvalidArgument`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidArgument,
            message: message.into(),
        }
    }

    /// An [`ErrorCode::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::NotFound,
            message: message.into(),
        }
    }

    /// An [`ErrorCode::FailedPrecondition`] error.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::FailedPrecondition,
            message: message.into(),
        }
    }

    /// An [`ErrorCode::AlreadyExists`] error.
    pub fn exists(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::AlreadyExists,
            message: message.into(),
        }
    }

    /// An [`ErrorCode::Aborted`] error.
    pub fn aborted(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Aborted,
            message: message.into(),
        }
    }
}

impl From<ModelError> for tonic::Status {
    fn from(e: ModelError) -> Self {
        let code = match e.code {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::Aborted => tonic::Code::Aborted,
        };
        tonic::Status::new(code, e.message)
    }
}
