//! SOTER result verification: the server side of `startSoterAuthentication`.
//!
//! A SOTER client (passgate's app API, or any SOTER implementation) signs `resultJSON` —
//! `{"raw","fid","counter","tee_n","tee_v","fp_n","fp_v","cpu_id","uid"}` — with an RSA-2048
//! device key, RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 20-byte salt. This module
//!
//! 1. issues single-use challenges (`POST /api/soter/challenge`), kept with the other ceremony
//!    state and taken exactly once;
//! 2. registers a device key (`POST /api/soter/devices`) from SOTER's key format
//!    `{"pub_key":PEM,"cpu_id","counter","uid"}` signed by that key (proof of possession);
//! 3. verifies a result (`POST /api/soter/verify`): the signature with the key registered for
//!    its `cpu_id` and `uid`, `raw` is a live challenge this server issued (consumed), and the
//!    counter is greater than any seen for that device. The challenge and the new counter are
//!    written in one transaction, only when everything holds: a failed verification changes
//!    nothing stored.
//!
//! All three need `Authorization: Bearer` with one of `api_tokens` (they are backend calls,
//! like WeChat's `soter/verify_signature`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use rsa::RsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::pss::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::b64;
use crate::error::ApiError;
use crate::server::{self, AppState};
use crate::store::{CeremonyRow, Store, StoreError, now_millis};

/// SOTER's salt length.
pub const SALT_LEN: usize = 20;
/// The ceremony kind of SOTER challenges.
const KIND: &str = "soter";
/// The longest challenge SOTER clients take.
const MAX_CHALLENGE_CHARS: usize = 512;

/// A device key as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoterDevice {
    /// The device (`cpu_id`).
    pub cpu_id: String,
    /// The app (`uid`).
    pub uid: String,
    /// The RSA public key, SPKI DER.
    pub public_key: Vec<u8>,
    /// The highest counter seen.
    pub counter: u64,
}

/// The fields of a SOTER `resultJSON` (all required, no duplicates).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResultJson {
    /// The challenge.
    pub raw: String,
    /// The biometric that verified.
    pub fid: String,
    /// The device counter.
    pub counter: u64,
    /// TEE name.
    pub tee_n: String,
    /// TEE version.
    pub tee_v: String,
    /// Sensor name.
    pub fp_n: String,
    /// Sensor version.
    pub fp_v: String,
    /// The device.
    pub cpu_id: String,
    /// The app.
    pub uid: String,
}

/// SOTER's key format (`SoterPubKeyModel`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyJson {
    /// The public key, PEM `-----BEGIN PUBLIC KEY-----`.
    pub pub_key: String,
    /// The device.
    pub cpu_id: String,
    /// The device counter when the key was made.
    pub counter: u64,
    /// The app.
    pub uid: String,
}

/// Decodes standard or URL-safe base64, padded or not.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim().trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .ok()
        .or_else(|| b64::decode(trimmed).ok())
}

/// The SPKI DER of a PEM public key (`-----BEGIN PUBLIC KEY-----`), accepting SOTER's escaped
/// `\/` and `\n` forms once JSON-decoded.
pub fn pem_to_spki(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .trim_end()
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// Parses an RSA-2048 public key (e = 65537) from SPKI DER.
pub fn rsa_2048(spki: &[u8]) -> Result<RsaPublicKey, &'static str> {
    let key = RsaPublicKey::from_public_key_der(spki).map_err(|_| "not an RSA public key")?;
    if key.size() != 256 {
        return Err("the key is not RSA-2048");
    }
    if key
        .e()
        .to_be_bytes()
        .iter()
        .skip_while(|b| **b == 0)
        .copied()
        .collect::<Vec<u8>>()
        != [1, 0, 1]
    {
        return Err("the public exponent is not 65537");
    }
    Ok(key)
}

/// RSASSA-PSS verification with SHA-256, MGF1-SHA-256 and a 20-byte salt.
pub fn verify_pss20(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::try_from(signature) else {
        return false;
    };
    VerifyingKey::<Sha256>::new_with_salt_len(key.clone(), SALT_LEN)
        .verify(message, &signature)
        .is_ok()
}

/// The request body as `T`, after the server's body checks (size, `application/json`).
fn request<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
    headers: &HeaderMap,
) -> Result<T, ApiError> {
    server::parse(&server::body_bytes(body, headers)?)
}

// ---- storage ----

fn row_device(row: &sqlx::any::AnyRow) -> Result<SoterDevice, sqlx::Error> {
    let key: String = row.try_get("public_key")?;
    let counter: i64 = row.try_get("counter")?;
    Ok(SoterDevice {
        cpu_id: row.try_get("cpu_id")?,
        uid: row.try_get("uid")?,
        public_key: b64::decode(&key).unwrap_or_default(),
        counter: u64::try_from(counter).unwrap_or(0),
    })
}

/// The key registered for `cpu_id` and `uid`.
pub async fn device(
    store: &Store,
    cpu_id: &str,
    uid: &str,
) -> Result<Option<SoterDevice>, StoreError> {
    let row = sqlx::query(
        "SELECT cpu_id, uid, public_key, counter FROM soter_devices WHERE cpu_id = $1 AND uid = $2",
    )
    .bind(cpu_id)
    .bind(uid)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| row_device(&r)).transpose()?)
}

fn counter_i64(counter: u64) -> Result<i64, ApiError> {
    i64::try_from(counter).map_err(|_| {
        ApiError::bad_request("soter_counter_out_of_range", "the counter exceeds 2^63 - 1")
    })
}

/// Every SOTER device row, for tests that prove a failed request changed nothing.
pub async fn fingerprint(store: &Store) -> Result<String, StoreError> {
    let rows = sqlx::query(
        "SELECT cpu_id, uid, public_key, counter FROM soter_devices ORDER BY cpu_id, uid",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = String::new();
    for row in &rows {
        let d = row_device(row)?;
        out.push_str(&format!(
            "{}:{}:{}:{};",
            d.cpu_id,
            d.uid,
            b64::encode(&d.public_key),
            d.counter
        ));
    }
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ceremonies WHERE kind = $1")
        .bind(KIND)
        .fetch_one(store.pool())
        .await?;
    out.push_str(&format!("challenges={pending}"));
    Ok(out)
}

// ---- handlers ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChallengeRequest {
    #[serde(default)]
    cpu_id: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

/// `POST /api/soter/challenge`: a fresh single-use challenge, optionally bound to a device
/// and app.
async fn challenge(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    server::check_api_token(&state, &headers)?;
    let req: ChallengeRequest = request(body, &headers)?;
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| ApiError::internal("no randomness"))?;
    let challenge = b64::encode(&raw);
    let ttl_ms = i64::try_from(state.rp.config().challenge_ttl_secs.saturating_mul(1000))
        .unwrap_or(i64::MAX);
    let expires_at = now_millis().saturating_add(ttl_ms);
    let binding = json!({ "cpuId": req.cpu_id, "uid": req.uid });
    state
        .rp
        .store()
        .put_ceremony(&CeremonyRow {
            challenge: challenge.clone(),
            kind: KIND.to_owned(),
            user_id: None,
            state: binding.to_string(),
            expires_at,
        })
        .await?;
    Ok(Json(
        json!({ "challenge": challenge, "expiresAt": expires_at }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterRequest {
    key_json: String,
    key_json_signature: String,
    #[serde(default)]
    replace: bool,
}

/// `POST /api/soter/devices`: registers a device key from SOTER's key format, signed by the
/// key itself. `replace: true` rotates the key of a registered device (after a biometric
/// enrollment change), provided the key's counter is newer than any seen.
async fn register(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    server::check_api_token(&state, &headers)?;
    let req: RegisterRequest = request(body, &headers)?;
    let key_json: KeyJson = serde_json::from_str(&req.key_json)
        .map_err(|e| ApiError::bad_request("soter_key_json_malformed", format!("keyJson: {e}")))?;
    if key_json.cpu_id.is_empty() || key_json.uid.is_empty() {
        return Err(ApiError::bad_request(
            "soter_key_json_malformed",
            "keyJson: cpu_id and uid must not be empty",
        ));
    }
    let spki = pem_to_spki(&key_json.pub_key).ok_or_else(|| {
        ApiError::bad_request(
            "soter_key_json_malformed",
            "keyJson: pub_key is not a PEM public key",
        )
    })?;
    let key = rsa_2048(&spki).map_err(|e| ApiError::bad_request("soter_key_unsupported", e))?;
    let signature = decode_base64(&req.key_json_signature).ok_or_else(|| {
        ApiError::bad_request(
            "soter_signature_malformed",
            "keyJsonSignature is not base64",
        )
    })?;
    if !verify_pss20(&key, req.key_json.as_bytes(), &signature) {
        return Err(ApiError::bad_request(
            "soter_key_signature_invalid",
            "keyJsonSignature is not an RSASSA-PSS (SHA-256, salt 20) signature of keyJson by pub_key",
        ));
    }
    let spki = key
        .to_public_key_der()
        .map_err(ApiError::internal)?
        .as_bytes()
        .to_vec();
    let counter = counter_i64(key_json.counter)?;
    let store = state.rp.store();
    let existing = device(store, &key_json.cpu_id, &key_json.uid).await?;
    let now = now_millis();
    // The counter the device has now: the stored one when the same key registers again.
    let registered_counter = match existing {
        Some(d) if d.public_key == spki => d.counter,
        Some(d) if !req.replace => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "soter_device_exists",
                format!(
                    "another key is registered for cpu_id {:?} and uid {:?}: send replace: true to rotate it",
                    d.cpu_id, d.uid
                ),
            ));
        }
        Some(d) => {
            if key_json.counter <= d.counter {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "soter_counter_not_increasing",
                    format!(
                        "the new key's counter {} is not above the device's {}: an old key cannot replace a newer one",
                        key_json.counter, d.counter
                    ),
                ));
            }
            let done = sqlx::query(
                "UPDATE soter_devices SET public_key = $1, counter = $2, last_used_at = $3 \
                 WHERE cpu_id = $4 AND uid = $5 AND counter < $2",
            )
            .bind(b64::encode(&spki))
            .bind(counter)
            .bind(now)
            .bind(&key_json.cpu_id)
            .bind(&key_json.uid)
            .execute(store.pool())
            .await
            .map_err(StoreError::from)?;
            if done.rows_affected() != 1 {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "soter_device_exists",
                    "the device changed concurrently: retry",
                ));
            }
            key_json.counter
        }
        None => {
            let inserted = sqlx::query(
                "INSERT INTO soter_devices (cpu_id, uid, public_key, counter, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind(&key_json.cpu_id)
            .bind(&key_json.uid)
            .bind(b64::encode(&spki))
            .bind(counter)
            .bind(now)
            .execute(store.pool())
            .await;
            if let Err(e) = inserted {
                let unique = matches!(&e, sqlx::Error::Database(db)
                    if db.is_unique_violation() || db.message().contains("UNIQUE constraint failed"));
                return Err(if unique {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "soter_device_exists",
                        "the device was registered concurrently",
                    )
                } else {
                    StoreError::from(e).into()
                });
            }
            key_json.counter
        }
    };
    Ok(Json(json!({
        "registered": true,
        "cpuId": key_json.cpu_id,
        "uid": key_json.uid,
        "counter": registered_counter,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    #[serde(rename = "resultJSON")]
    result_json: String,
    #[serde(rename = "resultJSONSignature")]
    result_json_signature: String,
}

/// `POST /api/soter/verify`.
async fn verify(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    server::check_api_token(&state, &headers)?;
    let req: VerifyRequest = request(body, &headers)?;
    let result: ResultJson = serde_json::from_str(&req.result_json).map_err(|e| {
        ApiError::bad_request("soter_result_json_malformed", format!("resultJSON: {e}"))
    })?;
    if result.raw.is_empty() || result.raw.chars().count() > MAX_CHALLENGE_CHARS {
        return Err(ApiError::bad_request(
            "soter_result_json_malformed",
            "resultJSON: raw must be 1 to 512 characters",
        ));
    }
    let signature = decode_base64(&req.result_json_signature).ok_or_else(|| {
        ApiError::bad_request(
            "soter_signature_malformed",
            "resultJSONSignature is not base64",
        )
    })?;
    let store = state.rp.store();
    let Some(device) = device(store, &result.cpu_id, &result.uid).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "soter_device_not_registered",
            format!(
                "no key is registered for cpu_id {:?} and uid {:?}",
                result.cpu_id, result.uid
            ),
        ));
    };
    let key = rsa_2048(&device.public_key).map_err(ApiError::internal)?;
    if !verify_pss20(&key, req.result_json.as_bytes(), &signature) {
        return Err(ApiError::bad_request(
            "soter_bad_signature",
            "resultJSONSignature is not an RSASSA-PSS (SHA-256, salt 20) signature of resultJSON by the device's key",
        ));
    }
    if result.counter <= device.counter {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "soter_counter_not_increasing",
            format!(
                "counter {} is not above {} (the highest seen for this device): a replayed or out-of-order result",
                result.counter, device.counter
            ),
        ));
    }
    let new_counter = counter_i64(result.counter)?;
    let now = now_millis();
    let mut tx = store.pool().begin().await.map_err(StoreError::from)?;
    let taken = sqlx::query(
        "DELETE FROM ceremonies WHERE challenge = $1 AND kind = $2 AND expires_at > $3 RETURNING state",
    )
    .bind(&result.raw)
    .bind(KIND)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    let Some(taken) = taken else {
        // Dropping the transaction rolls it back: nothing changed.
        return Err(ApiError::bad_request(
            "soter_challenge_unknown",
            "raw is not a live challenge from POST /api/soter/challenge (unknown, expired or already used)",
        ));
    };
    let binding: String = taken.try_get("state").map_err(StoreError::from)?;
    let binding: Value = serde_json::from_str(&binding).unwrap_or(Value::Null);
    for (name, actual) in [("cpuId", &result.cpu_id), ("uid", &result.uid)] {
        if let Some(expected) = binding[name].as_str() {
            if expected != actual {
                return Err(ApiError::bad_request(
                    "soter_challenge_mismatch",
                    format!("the challenge was issued for {name} {expected:?}, not {actual:?}"),
                ));
            }
        }
    }
    let updated = sqlx::query(
        "UPDATE soter_devices SET counter = $1, last_used_at = $2 WHERE cpu_id = $3 AND uid = $4 AND counter < $1",
    )
    .bind(new_counter)
    .bind(now)
    .bind(&result.cpu_id)
    .bind(&result.uid)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    if updated.rows_affected() != 1 {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "soter_counter_not_increasing",
            "another result with this or a higher counter was verified concurrently",
        ));
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Json(json!({
        "verified": true,
        "cpuId": result.cpu_id,
        "uid": result.uid,
        "counter": result.counter,
        "fid": result.fid,
        "raw": result.raw,
        "teeName": result.tee_n,
    })))
}

/// The SOTER routes, merged into the server's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/soter/challenge", post(challenge))
        .route("/api/soter/devices", post(register))
        .route("/api/soter/verify", post(verify))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_base64_forms_are_accepted() {
        assert_eq!(decode_base64("AQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode_base64("AQID\n"), Some(vec![1, 2, 3]));
        assert_eq!(decode_base64("_-8"), Some(vec![0xff, 0xef]));
        assert_eq!(decode_base64("/+8="), Some(vec![0xff, 0xef]));
        assert!(decode_base64("not base64!").is_none());
        let pem = "-----BEGIN PUBLIC KEY-----\nAQID\nBA==\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem_to_spki(pem), Some(vec![1, 2, 3, 4]));
        assert!(pem_to_spki("AQID").is_none());
        assert!(rsa_2048(&[1, 2, 3]).is_err());
    }
}
