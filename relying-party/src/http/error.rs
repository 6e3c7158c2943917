//! HTTP errors: a status, a stable machine-readable code and a human message, rendered as
//! `{"error": {"code": "...", "message": "..."}}`. The library's [`RpError`] maps onto them by
//! its kind; transport problems (body size, content type, rate limits) are born here.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorKind, RpError};
use crate::store::StoreError;
use crate::verify::VerifyError;

/// An error an API call answers with.
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

    /// 500, with the detail logged and not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        RpError::internal(detail).into()
    }

    /// The 415 of a body that is not `application/json`.
    pub fn not_json() -> Self {
        // Also the CSRF guard: a cross-site form cannot send application/json.
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        )
    }

    /// The 408 of a body not sent within the server's body timeout.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                limit.as_secs_f32()
            ),
        )
    }

    /// The 413 of a body over the server's limit.
    pub fn body_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body exceeds the server's limit",
        )
    }

    /// The 405 of a method an endpoint does not take.
    pub fn wrong_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    }

    /// The JSON body: `{"error": {"code": "...", "message": "..."}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        })
    }
}

impl From<RpError> for ApiError {
    fn from(err: RpError) -> Self {
        let status = match err.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, err.code, err.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        RpError::from(err).into()
    }
}

impl From<VerifyError> for ApiError {
    fn from(err: VerifyError) -> Self {
        RpError::from(err).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
