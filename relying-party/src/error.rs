//! API errors: an HTTP status, a stable machine-readable code and a human message, rendered as
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;
use crate::verify::VerifyError;

/// An error an API call returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status (4xx for anything the caller can fix, 5xx for our faults).
    pub status: StatusCode,
    /// A stable code naming the reason (`challenge_expired`, `bad_signature`, …).
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
}

impl ApiError {
    /// A 400 with this code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401: no valid session.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_signed_in",
            "sign in first: no valid session cookie",
        )
    }

    /// 500, with the detail logged and not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed; the request changed nothing",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict("credential") => Self::new(
                StatusCode::CONFLICT,
                "credential_already_registered",
                "this credential is already registered",
            ),
            StoreError::Conflict("username") => Self::new(
                StatusCode::CONFLICT,
                "username_taken",
                "that username is taken",
            ),
            other => Self::internal(other),
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(err: VerifyError) -> Self {
        let status = match err {
            // Both point at a cloned or substituted authenticator, not at a malformed request.
            VerifyError::CounterRegression { .. } | VerifyError::BackupEligibilityChanged => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, err.code(), err.to_string())
    }
}

impl ApiError {
    /// The JSON body: `{"error": {"code": "...", "message": "..."}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
