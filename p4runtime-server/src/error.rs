//! The server's typed errors and their gRPC codes.
//!
//! Every module returns [`P4rtError`]; the service edge (`service.rs`) turns
//! it into a `tonic::Status` (or a `p4.v1.Error` per update of a Write).

use dataplane::TableError;
use thiserror::Error;

/// Why a P4Runtime request (or one update of it) was refused. Each variant
/// is one gRPC canonical code; the message names the entity and the field
/// at fault.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum P4rtError {
    /// `INVALID_ARGUMENT`: a malformed or unsupported request.
    #[error("{0}")]
    InvalidArgument(String),
    /// `NOT_FOUND`: a missing entity or unknown id.
    #[error("{0}")]
    NotFound(String),
    /// `ALREADY_EXISTS`: an insert of an existing entity.
    #[error("{0}")]
    AlreadyExists(String),
    /// `OUT_OF_RANGE`: a value wider than its field or an index past the end.
    #[error("{0}")]
    OutOfRange(String),
    /// `RESOURCE_EXHAUSTED`: a full table, selector or group.
    #[error("{0}")]
    ResourceExhausted(String),
    /// `PERMISSION_DENIED`: not the primary client, or a constant default action.
    #[error("{0}")]
    PermissionDenied(String),
    /// `FAILED_PRECONDITION`: no pipeline set, an entity still in use, ...
    #[error("{0}")]
    FailedPrecondition(String),
    /// `UNIMPLEMENTED`: a feature this target does not offer.
    #[error("{0}")]
    Unimplemented(String),
    /// `ABORTED`: not applied because another update of an atomic batch failed.
    #[error("{0}")]
    Aborted(String),
}

impl P4rtError {
    /// The gRPC canonical code.
    pub fn code(&self) -> tonic::Code {
        match self {
            P4rtError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            P4rtError::NotFound(_) => tonic::Code::NotFound,
            P4rtError::AlreadyExists(_) => tonic::Code::AlreadyExists,
            P4rtError::OutOfRange(_) => tonic::Code::OutOfRange,
            P4rtError::ResourceExhausted(_) => tonic::Code::ResourceExhausted,
            P4rtError::PermissionDenied(_) => tonic::Code::PermissionDenied,
            P4rtError::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            P4rtError::Unimplemented(_) => tonic::Code::Unimplemented,
            P4rtError::Aborted(_) => tonic::Code::Aborted,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            P4rtError::InvalidArgument(m)
            | P4rtError::NotFound(m)
            | P4rtError::AlreadyExists(m)
            | P4rtError::OutOfRange(m)
            | P4rtError::ResourceExhausted(m)
            | P4rtError::PermissionDenied(m)
            | P4rtError::FailedPrecondition(m)
            | P4rtError::Unimplemented(m)
            | P4rtError::Aborted(m) => m,
        }
    }

    /// A dataplane refusal of an update of `entity`, with its code.
    pub fn from_table(entity: &str, e: TableError) -> Self {
        let m = format!("{entity}: {e}");
        match e {
            TableError::AlreadyExists { .. } => P4rtError::AlreadyExists(m),
            TableError::NotFound { .. } => P4rtError::NotFound(m),
            TableError::InvalidValue { .. } => P4rtError::InvalidArgument(m),
            TableError::Full { .. } => P4rtError::ResourceExhausted(m),
            TableError::ConstDefault { .. } => P4rtError::PermissionDenied(m),
            TableError::InUse { .. } => P4rtError::FailedPrecondition(m),
            TableError::Aborted => P4rtError::Aborted(m),
        }
    }

    /// The error as a gRPC status (no details).
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.code(), self.message().to_owned())
    }
}

impl From<P4rtError> for tonic::Status {
    fn from(e: P4rtError) -> Self {
        e.to_status()
    }
}
