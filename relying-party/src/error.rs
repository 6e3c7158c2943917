//! The relying party's errors, independent of HTTP: a kind (what sort of failure, which the
//! HTTP layer maps to a status), a stable machine-readable code and a human message.

use crate::store::StoreError;
use crate::verify::VerifyError;

/// What sort of failure an [`RpError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or fails verification; the caller can fix it.
    Invalid,
    /// No valid session.
    Unauthenticated,
    /// Understood but refused (a cloned authenticator, a missing step-up).
    Forbidden,
    /// What the request names does not exist.
    NotFound,
    /// It conflicts with what is stored (a taken username, a concurrent change).
    Conflict,
    /// A dependency (the database) is down; retry later.
    Unavailable,
    /// Our fault; the detail was logged, not returned.
    Internal,
}

/// An error a relying-party operation returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpError {
    /// What sort of failure.
    pub kind: ErrorKind,
    /// A stable code naming the reason (`challenge_expired`, `bad_signature`, …).
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
}

impl RpError {
    /// Any kind.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
        }
    }

    /// A malformed or failing request with this code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// No valid session.
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            "not_signed_in",
            "sign in first: no valid session cookie",
        )
    }

    /// Our fault, with the detail logged and not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal_error",
            "the server failed; the request changed nothing",
        )
    }
}

impl From<StoreError> for RpError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict("credential") => Self::new(
                ErrorKind::Conflict,
                "credential_already_registered",
                "this credential is already registered",
            ),
            StoreError::Conflict("username") => Self::new(
                ErrorKind::Conflict,
                "username_taken",
                "that username is taken",
            ),
            StoreError::Database(e) if crate::store::is_unavailable(&e) => {
                tracing::warn!(error = %e, "the database cannot be reached");
                Self::new(
                    ErrorKind::Unavailable,
                    "database_unavailable",
                    "the database cannot be reached; the request changed nothing, try again",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl From<VerifyError> for RpError {
    fn from(err: VerifyError) -> Self {
        let kind = match err {
            // Both point at a cloned or substituted authenticator, not at a malformed request.
            VerifyError::CounterRegression { .. } | VerifyError::BackupEligibilityChanged => {
                ErrorKind::Forbidden
            }
            _ => ErrorKind::Invalid,
        };
        Self::new(kind, err.code(), err.to_string())
    }
}
