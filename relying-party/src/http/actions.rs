//! Signed actions and their receipts: `POST /api/actions/options` and `/verify`,
//! `GET /api/receipts/key`, `POST /api/receipts/verify`, `GET /api/receipts/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::RateLimited;
use super::extract::{ApiJson, ApiPath, JsonBody};
use super::session::require_session;
use super::state::Shared;
use crate::b64;
use crate::rp::AuthPurpose;

#[derive(Deserialize)]
struct ActionRequest {
    payload: Value,
}

/// `POST /api/actions/options`: a challenge bound to the payload to approve.
pub(super) async fn action_options(
    State(state): State<Shared>,
    _: RateLimited,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    let req: ActionRequest = body.parse()?;
    let payload = match req.payload {
        Value::String(s) => s,
        Value::Null => {
            return Err(ApiError::bad_request(
                "missing_payload",
                "payload is required",
            ));
        }
        other => other.to_string(),
    };
    if payload.is_empty() || payload.len() > 8192 {
        return Err(ApiError::bad_request(
            "invalid_payload",
            "payload must be 1 to 8192 bytes",
        ));
    }
    let options = state
        .rp
        .begin_authentication(
            AuthPurpose::Action,
            None,
            Some((&session, &user)),
            Some(payload.clone()),
            None,
        )
        .await?;
    Ok(Json(json!({ "publicKey": options, "payload": payload })))
}

/// `POST /api/actions/verify`: the signed receipt.
pub(super) async fn action_verify(
    State(state): State<Shared>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let (session, _) = require_session(&state, &headers).await?;
    let auth = state
        .rp
        .finish_authentication(AuthPurpose::Action, &body, Some(&session))
        .await?;
    let receipt = auth
        .receipt
        .ok_or_else(|| ApiError::internal("action without receipt"))?;
    Ok(Json(json!({ "verified": true, "receipt": receipt })))
}

/// `GET /api/receipts/{id}`.
pub(super) async fn get_receipt(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.rp.receipt(&id).await?).map_err(ApiError::internal)?,
    ))
}

/// `GET /api/receipts/key`: the receipt-signing key, as JWK and SPKI.
pub(super) async fn receipt_key(State(state): State<Shared>) -> Json<Value> {
    let signer = state.rp.signer();
    Json(json!({
        "keyId": signer.key_id(),
        "alg": "ES256",
        "jwk": signer.jwk(),
        "spki": b64::encode(signer.spki()),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReceiptVerifyRequest {
    receipt_json: String,
    signature: String,
}

/// `POST /api/receipts/verify`.
pub(super) async fn verify_receipt(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<ReceiptVerifyRequest>,
) -> Result<Json<Value>, ApiError> {
    let signature = b64::decode(&req.signature)
        .map_err(|_| ApiError::bad_request("malformed_request", "signature is not base64url"))?;
    let valid = state.rp.signer().verify(&req.receipt_json, &signature);
    Ok(Json(
        json!({ "valid": valid, "keyId": state.rp.signer().key_id() }),
    ))
}
