//! The FIDO conformance server API shapes (`/attestation/options`, `/attestation/result`,
//! `/assertion/options`, `/assertion/result`): every answer carries `status` and
//! `errorMessage`, errors included.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::RateLimited;
use super::extract::{ApiJson, JsonBody};
use super::login::{LoginOptionsRequest, sign_in_options};
use super::registration::registration_options;
use super::session::current_session;
use super::state::Shared;
use crate::rp::{AuthPurpose, RegistrationOptionsRequest, token_hash};

fn conformance(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(mut v) => {
            if let Value::Object(map) = &mut v {
                map.insert("status".into(), json!("ok"));
                map.insert("errorMessage".into(), json!(""));
            }
            Json(v).into_response()
        }
        Err(e) => (
            e.status,
            Json(
                json!({ "status": "failed", "errorMessage": format!("{}: {}", e.code, e.message) }),
            ),
        )
            .into_response(),
    }
}

/// `POST /attestation/options`.
pub(super) async fn attestation_options(
    State(state): State<Shared>,
    limited: Result<RateLimited, ApiError>,
    headers: HeaderMap,
    body: Result<ApiJson<RegistrationOptionsRequest>, ApiError>,
) -> Response {
    conformance(
        async {
            limited?;
            let ApiJson(req) = body?;
            registration_options(&state, &headers, &req).await
        }
        .await,
    )
}

/// `POST /attestation/result`.
pub(super) async fn attestation_result(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<JsonBody, ApiError>,
) -> Response {
    conformance(
        async {
            let JsonBody(body) = body?;
            let session = current_session(&state, &headers).await?;
            state
                .rp
                .finish_registration(&body, session.as_ref().map(|(_, u)| u))
                .await?;
            Ok(json!({}))
        }
        .await,
    )
}

/// `POST /assertion/options`.
pub(super) async fn assertion_options(
    State(state): State<Shared>,
    limited: Result<RateLimited, ApiError>,
    body: Result<JsonBody, ApiError>,
) -> Response {
    conformance(
        async {
            limited?;
            let JsonBody(body) = body?;
            let req = LoginOptionsRequest::from_body(&body)?;
            sign_in_options(&state, &req).await
        }
        .await,
    )
}

/// `POST /assertion/result`.
pub(super) async fn assertion_result(
    State(state): State<Shared>,
    body: Result<JsonBody, ApiError>,
) -> Response {
    conformance(
        async {
            let JsonBody(body) = body?;
            let auth = state
                .rp
                .finish_authentication(AuthPurpose::Login, &body, None)
                .await?;
            // The conformance shape sets no cookie: do not keep a session nobody can use.
            if let Some(token) = &auth.session_token {
                state.rp.store().delete_session(&token_hash(token)).await?;
            }
            Ok(json!({}))
        }
        .await,
    )
}
