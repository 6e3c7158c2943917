//! Sign-in and step-up: `POST /api/login/options` and `/verify`, `/api/logout`,
//! `GET /api/session`, `POST /api/reauth/options` and `/verify`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::RateLimited;
use super::extract::{JsonBody, parse};
use super::session::{clear_cookie, require_session, session_cookie, session_token};
use super::state::{AppState, Shared};
use crate::rp::{AuthPurpose, CredentialView, UserView, token_hash};

/// The body of a sign-in options request; empty means a discoverable sign-in.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginOptionsRequest {
    username: Option<String>,
    user_verification: Option<String>,
}

impl LoginOptionsRequest {
    /// The request a body holds; an empty body is the default (discoverable) request.
    pub(super) fn from_body(body: &[u8]) -> Result<Self, ApiError> {
        if body.is_empty() {
            Ok(Self::default())
        } else {
            parse(body)
        }
    }
}

/// Sign-in options, shared by the JSON API and the FIDO conformance shape.
pub(super) async fn sign_in_options(
    state: &AppState,
    req: &LoginOptionsRequest,
) -> Result<Value, ApiError> {
    Ok(state
        .rp
        .begin_authentication(
            AuthPurpose::Login,
            req.username.as_deref(),
            None,
            None,
            req.user_verification.as_deref(),
        )
        .await?)
}

/// `POST /api/login/options`.
pub(super) async fn login_options(
    State(state): State<Shared>,
    _: RateLimited,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req = LoginOptionsRequest::from_body(&body)?;
    sign_in_options(&state, &req).await.map(Json)
}

/// `POST /api/login/verify`: sets the session cookie.
pub(super) async fn login_verify(
    State(state): State<Shared>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let auth = state
        .rp
        .finish_authentication(AuthPurpose::Login, &body, None)
        .await?;
    let mut response = Json(json!({
        "verified": true,
        "user": UserView::from(&auth.user),
        "credential": CredentialView::from(&auth.credential),
        "verdict": auth.verdict,
    }))
    .into_response();
    if let Some(token) = &auth.session_token {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, session_cookie(&state, token));
    }
    Ok(response)
}

/// `POST /api/logout`. Like every state-changing endpoint it takes only an
/// `application/json` body (`{}`): a cross-site form cannot send one, so it cannot sign the
/// user out.
pub(super) async fn logout(
    State(state): State<Shared>,
    headers: HeaderMap,
    _: JsonBody,
) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        state.rp.store().delete_session(&token_hash(&token)).await?;
    }
    let mut response = Json(json!({ "signedOut": true })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&state));
    Ok(response)
}

/// `POST /api/logout/all`: ends every session of the signed-in user, this one included
/// ("sign out everywhere"), and clears the cookie.
pub(super) async fn logout_everywhere(
    State(state): State<Shared>,
    headers: HeaderMap,
    _: JsonBody,
) -> Result<Response, ApiError> {
    let (_, user) = require_session(&state, &headers).await?;
    let ended = state.rp.store().delete_sessions_of(&user.id).await?;
    let mut response = Json(json!({ "signedOut": true, "sessionsEnded": ended })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&state));
    Ok(response)
}

/// `GET /api/session`.
pub(super) async fn session_info(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    Ok(Json(json!({
        "user": UserView::from(&user),
        "credentialId": session.credential_id,
        "createdAt": session.created_at,
        "expiresAt": session.expires_at,
        "verifiedAt": session.verified_at,
        "recentlyVerified": state.rp.recently_verified(&session),
    })))
}

/// `POST /api/reauth/options`: step-up for the signed-in user.
pub(super) async fn reauth_options(
    State(state): State<Shared>,
    _: RateLimited,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    Ok(Json(
        state
            .rp
            .begin_authentication(
                AuthPurpose::Reauth,
                None,
                Some((&session, &user)),
                None,
                None,
            )
            .await?,
    ))
}

/// `POST /api/reauth/verify`.
pub(super) async fn reauth_verify(
    State(state): State<Shared>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let (session, _) = require_session(&state, &headers).await?;
    let auth = state
        .rp
        .finish_authentication(AuthPurpose::Reauth, &body, Some(&session))
        .await?;
    Ok(Json(json!({ "verified": true, "verdict": auth.verdict })))
}
