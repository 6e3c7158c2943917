//! Session cookies: reading the token, looking the session up, and the `Set-Cookie` values.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::error::ApiError;
use super::state::AppState;
use crate::error::RpError;
use crate::store::{SessionRow, UserRow};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "passgate_session";

/// The session token the request's cookie carries.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

/// The request's live session and its user, if any.
pub async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(SessionRow, UserRow)>, ApiError> {
    match session_token(headers) {
        Some(token) => Ok(state.rp.session(&token).await?),
        None => Ok(None),
    }
}

/// The request's live session, or 401 `not_signed_in`.
pub async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(SessionRow, UserRow), ApiError> {
    current_session(state, headers)
        .await?
        .ok_or_else(|| RpError::unauthenticated().into())
}

/// 403 `step_up_required` unless the session's last verification is recent enough for a
/// sensitive change (`what`: "deleting a passkey", …). A stolen session cookie alone then
/// cannot add, rename or delete passkeys.
pub fn require_step_up(state: &AppState, session: &SessionRow, what: &str) -> Result<(), ApiError> {
    if state.rp.recently_verified(session) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "step_up_required",
            format!("confirm it is you (re-authenticate with a passkey) before {what}"),
        ))
    }
}

fn secure(state: &AppState) -> &'static str {
    if state.rp.config().secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    let value = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        state.rp.config().session_ttl_secs,
        secure(state)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure(state)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}
