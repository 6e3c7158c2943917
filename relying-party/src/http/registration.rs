//! `POST /api/register/options` and `/api/register/verify`: creating an account with its first
//! passkey, or adding a passkey to the signed-in account.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::RateLimited;
use super::extract::{ApiJson, JsonBody};
use super::session::{current_session, require_step_up, session_cookie};
use super::state::{AppState, Shared};
use crate::rp::{CredentialView, RegistrationOptionsRequest, UserView};

/// Registration options, shared by the JSON API and the FIDO conformance shape.
pub(super) async fn registration_options(
    state: &AppState,
    headers: &HeaderMap,
    req: &RegistrationOptionsRequest,
) -> Result<Value, ApiError> {
    let session = current_session(state, headers).await?;
    // Adding a passkey to an account is how a stolen session would keep it: step-up first.
    if let Some((session, _)) = &session {
        require_step_up(state, session, "adding a passkey")?;
    }
    Ok(state
        .rp
        .begin_registration(req, session.as_ref().map(|(_, u)| u))
        .await?)
}

/// `POST /api/register/options`.
pub(super) async fn register_options(
    State(state): State<Shared>,
    _: RateLimited,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegistrationOptionsRequest>,
) -> Result<Json<Value>, ApiError> {
    registration_options(&state, &headers, &req).await.map(Json)
}

/// `POST /api/register/verify`.
pub(super) async fn register_verify(
    State(state): State<Shared>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let session = current_session(&state, &headers).await?;
    let (user, credential, token) = state
        .rp
        .finish_registration(&body, session.as_ref().map(|(_, u)| u))
        .await?;
    let mut response = Json(json!({
        "verified": true,
        "user": UserView::from(&user),
        "credential": CredentialView::from(&credential),
    }))
    .into_response();
    if let Some(token) = token {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, session_cookie(&state, &token));
    }
    Ok(response)
}
