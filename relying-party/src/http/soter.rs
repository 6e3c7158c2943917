//! SOTER's backend endpoints (`POST /api/soter/challenge`, `/devices`, `/verify`), each behind
//! the API token; the work is in [`crate::soter`].

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{ApiJson, ApiToken};
use super::state::Shared;
use crate::soter::{
    ChallengeRequest, RegisterRequest, VerifyRequest, issue_challenge, register_device,
    verify_result,
};

/// `POST /api/soter/challenge`.
pub(super) async fn challenge(
    State(state): State<Shared>,
    _: ApiToken,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(issue_challenge(&state.rp, &req).await?))
}

/// `POST /api/soter/devices`.
pub(super) async fn register(
    State(state): State<Shared>,
    _: ApiToken,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(register_device(&state.rp, &req).await?))
}

/// `POST /api/soter/verify`.
pub(super) async fn verify(
    State(state): State<Shared>,
    _: ApiToken,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(verify_result(&state.rp, &req).await?))
}
