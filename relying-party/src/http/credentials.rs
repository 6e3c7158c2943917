//! The signed-in user's passkeys: `GET /api/credentials`, `PATCH` and `DELETE
//! /api/credentials/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiPath, JsonBody};
use super::session::{require_session, require_step_up};
use super::state::Shared;
use crate::rp::CredentialView;

/// `GET /api/credentials`.
pub(super) async fn list_credentials(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    let creds = state.rp.store().credentials_of(&user.id).await?;
    let views: Vec<Value> = creds
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(CredentialView::from(c)).unwrap_or(Value::Null);
            v["current"] = json!(c.id == session.credential_id);
            v
        })
        .collect();
    Ok(Json(json!({ "credentials": views })))
}

#[derive(Deserialize)]
struct RenameRequest {
    name: String,
}

fn unknown_credential() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_credential",
        "you have no passkey with that ID",
    )
}

/// `PATCH /api/credentials/{id}`: renames a passkey (needs a recent verification).
pub(super) async fn rename_credential(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    // The session is checked before the body is parsed: a signed-out caller learns nothing.
    let (session, user) = require_session(&state, &headers).await?;
    require_step_up(&state, &session, "renaming a passkey")?;
    let req: RenameRequest = body.parse()?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a passkey name is 1 to 64 printable characters",
        ));
    }
    if !state
        .rp
        .store()
        .rename_credential(&user.id, &id, name)
        .await?
    {
        return Err(unknown_credential());
    }
    Ok(Json(json!({ "id": id, "name": name })))
}

/// `DELETE /api/credentials/{id}`: never the last passkey (refused first, before any step-up),
/// and needs a recent verification.
/// The sessions signed in with that passkey end with it.
pub(super) async fn delete_credential(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    // A request bound to fail is refused before the step-up: nobody is asked to verify for
    // a delete that cannot happen.
    let creds = state.rp.store().credentials_of(&user.id).await?;
    if !creds.iter().any(|c| c.id == id) {
        return Err(unknown_credential());
    }
    if creds.len() == 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_credential",
            "this is your only passkey; add another before deleting it",
        ));
    }
    require_step_up(&state, &session, "deleting a passkey")?;
    state.rp.store().delete_credential(&user.id, &id).await?;
    Ok(Json(json!({ "deleted": id })))
}
