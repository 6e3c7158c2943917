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
//! like WeChat's `soter/verify_signature`); the HTTP layer (`crate::http::soter`) checks it.

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

pub use passgate_proto::soter::{KeyJson, ResultJson};

use crate::b64;
use crate::error::{ErrorKind, RpError};
use crate::rp::RelyingParty;
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

fn counter_i64(counter: u64) -> Result<i64, RpError> {
    i64::try_from(counter)
        .map_err(|_| RpError::invalid("soter_counter_out_of_range", "the counter exceeds 2^63 - 1"))
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

// ---- operations ----

/// The body of `POST /api/soter/challenge`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The device the challenge is for, when bound.
    #[serde(default)]
    pub cpu_id: Option<String>,
    /// The app the challenge is for, when bound.
    #[serde(default)]
    pub uid: Option<String>,
}

/// A fresh single-use challenge, optionally bound to a device and app.
pub async fn issue_challenge(rp: &RelyingParty, req: &ChallengeRequest) -> Result<Value, RpError> {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| RpError::internal("no randomness"))?;
    let challenge = b64::encode(&raw);
    let ttl_ms =
        i64::try_from(rp.config().challenge_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires_at = now_millis().saturating_add(ttl_ms);
    let binding = json!({ "cpuId": req.cpu_id, "uid": req.uid });
    rp.store()
        .put_ceremony(&CeremonyRow {
            challenge: challenge.clone(),
            kind: KIND.to_owned(),
            user_id: None,
            state: binding.to_string(),
            expires_at,
        })
        .await?;
    Ok(json!({ "challenge": challenge, "expiresAt": expires_at }))
}

/// The body of `POST /api/soter/devices`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// SOTER's key JSON, exactly as signed.
    pub key_json: String,
    /// Its RSASSA-PSS signature by the key it names (base64).
    pub key_json_signature: String,
    /// Rotate the key of a registered device.
    #[serde(default)]
    pub replace: bool,
    /// For `replace`: `keyJson` signed by the key registered now (base64), which authorises
    /// the rotation.
    #[serde(default)]
    pub current_key_signature: Option<String>,
}

/// Registers a device key from SOTER's key format, signed by the key itself. `replace: true`
/// rotates the key of a registered device (after a biometric enrollment change), provided the
/// key's counter is newer than any seen and `currentKeySignature` proves the holder of the
/// registered key asked for it; the device keeps its counter.
pub async fn register_device(rp: &RelyingParty, req: &RegisterRequest) -> Result<Value, RpError> {
    let key_json: KeyJson = serde_json::from_str(&req.key_json)
        .map_err(|e| RpError::invalid("soter_key_json_malformed", format!("keyJson: {e}")))?;
    if key_json.cpu_id.is_empty() || key_json.uid.is_empty() {
        return Err(RpError::invalid(
            "soter_key_json_malformed",
            "keyJson: cpu_id and uid must not be empty",
        ));
    }
    let spki = pem_to_spki(&key_json.pub_key).ok_or_else(|| {
        RpError::invalid(
            "soter_key_json_malformed",
            "keyJson: pub_key is not a PEM public key",
        )
    })?;
    let key = rsa_2048(&spki).map_err(|e| RpError::invalid("soter_key_unsupported", e))?;
    let signature = decode_base64(&req.key_json_signature).ok_or_else(|| {
        RpError::invalid(
            "soter_signature_malformed",
            "keyJsonSignature is not base64",
        )
    })?;
    if !verify_pss20(&key, req.key_json.as_bytes(), &signature) {
        return Err(RpError::invalid(
            "soter_key_signature_invalid",
            "keyJsonSignature is not an RSASSA-PSS (SHA-256, salt 20) signature of keyJson by pub_key",
        ));
    }
    let spki = key
        .to_public_key_der()
        .map_err(RpError::internal)?
        .as_bytes()
        .to_vec();
    let counter = counter_i64(key_json.counter)?;
    let store = rp.store();
    let existing = device(store, &key_json.cpu_id, &key_json.uid).await?;
    let now = now_millis();
    // The counter the device has now: the stored one when the same key registers again.
    let registered_counter = match existing {
        Some(d) if d.public_key == spki => d.counter,
        Some(d) if !req.replace => {
            return Err(RpError::new(
                ErrorKind::Conflict,
                "soter_device_exists",
                format!(
                    "another key is registered for cpu_id {:?} and uid {:?}: send replace: true to rotate it",
                    d.cpu_id, d.uid
                ),
            ));
        }
        Some(d) => {
            if key_json.counter <= d.counter {
                return Err(RpError::new(
                    ErrorKind::Forbidden,
                    "soter_counter_not_increasing",
                    format!(
                        "the new key's counter {} is not above the device's {}: an old key cannot replace a newer one",
                        key_json.counter, d.counter
                    ),
                ));
            }
            // Security finding 6: the holder of the registered key authorises its replacement,
            // and the device's counter moves only with a signed result, never with a number the
            // caller chose.
            let unauthorised = |why: &str| {
                RpError::new(
                    ErrorKind::Forbidden,
                    "soter_replacement_unauthorised",
                    format!(
                        "replacing a device's key needs currentKeySignature, the new keyJson signed (RSASSA-PSS, SHA-256, salt 20) by the key registered now: {why}"
                    ),
                )
            };
            let authorisation = req
                .current_key_signature
                .as_deref()
                .ok_or_else(|| unauthorised("it is missing"))?;
            let authorisation =
                decode_base64(authorisation).ok_or_else(|| unauthorised("it is not base64"))?;
            let current = rsa_2048(&d.public_key).map_err(RpError::internal)?;
            if !verify_pss20(&current, req.key_json.as_bytes(), &authorisation) {
                return Err(unauthorised("it does not verify with the registered key"));
            }
            let stored_counter = counter_i64(d.counter)?;
            let done = sqlx::query(
                "UPDATE soter_devices SET public_key = $1, last_used_at = $2 \
                 WHERE cpu_id = $3 AND uid = $4 AND public_key = $5 AND counter = $6",
            )
            .bind(b64::encode(&spki))
            .bind(now)
            .bind(&key_json.cpu_id)
            .bind(&key_json.uid)
            .bind(b64::encode(&d.public_key))
            .bind(stored_counter)
            .execute(store.pool())
            .await
            .map_err(StoreError::from)?;
            if done.rows_affected() != 1 {
                return Err(RpError::new(
                    ErrorKind::Conflict,
                    "soter_device_exists",
                    "the device changed concurrently: retry",
                ));
            }
            d.counter
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
                    RpError::new(
                        ErrorKind::Conflict,
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
    Ok(json!({
        "registered": true,
        "cpuId": key_json.cpu_id,
        "uid": key_json.uid,
        "counter": registered_counter,
    }))
}

/// The body of `POST /api/soter/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// SOTER's result JSON, exactly as signed.
    #[serde(rename = "resultJSON")]
    pub result_json: String,
    /// Its RSASSA-PSS signature by the device key (base64).
    #[serde(rename = "resultJSONSignature")]
    pub result_json_signature: String,
    /// The business string the backend expects as `raw` (WeChat's `challenge` may be any
    /// string: an order number, a payload). Given, `raw` must equal it and no challenge of
    /// this server is consumed (the backend vouches for its freshness; the counter must still
    /// go up). Absent, `raw` must be a live challenge from `POST /api/soter/challenge`.
    #[serde(rename = "expectedRaw", default)]
    pub expected_raw: Option<String>,
}

/// Verifies a signed result: the signature with the key registered for its device, a live
/// challenge (consumed) and an increasing counter, written in one transaction.
pub async fn verify_result(rp: &RelyingParty, req: &VerifyRequest) -> Result<Value, RpError> {
    let result: ResultJson = serde_json::from_str(&req.result_json)
        .map_err(|e| RpError::invalid("soter_result_json_malformed", format!("resultJSON: {e}")))?;
    if result.raw.is_empty() || result.raw.chars().count() > MAX_CHALLENGE_CHARS {
        return Err(RpError::invalid(
            "soter_result_json_malformed",
            "resultJSON: raw must be 1 to 512 characters",
        ));
    }
    let signature = decode_base64(&req.result_json_signature).ok_or_else(|| {
        RpError::invalid(
            "soter_signature_malformed",
            "resultJSONSignature is not base64",
        )
    })?;
    let store = rp.store();
    let Some(device) = device(store, &result.cpu_id, &result.uid).await? else {
        return Err(RpError::new(
            ErrorKind::NotFound,
            "soter_device_not_registered",
            format!(
                "no key is registered for cpu_id {:?} and uid {:?}",
                result.cpu_id, result.uid
            ),
        ));
    };
    let key = rsa_2048(&device.public_key).map_err(RpError::internal)?;
    if !verify_pss20(&key, req.result_json.as_bytes(), &signature) {
        return Err(RpError::invalid(
            "soter_bad_signature",
            "resultJSONSignature is not an RSASSA-PSS (SHA-256, salt 20) signature of resultJSON by the device's key",
        ));
    }
    if result.counter <= device.counter {
        return Err(RpError::new(
            ErrorKind::Forbidden,
            "soter_counter_not_increasing",
            format!(
                "counter {} is not above {} (the highest seen for this device): a replayed or out-of-order result",
                result.counter, device.counter
            ),
        ));
    }
    if let Some(expected) = &req.expected_raw {
        if expected.is_empty() || expected.chars().count() > MAX_CHALLENGE_CHARS {
            return Err(RpError::invalid(
                "soter_expected_raw_malformed",
                "expectedRaw must be 1 to 512 characters",
            ));
        }
        if *expected != result.raw {
            return Err(RpError::invalid(
                "soter_raw_mismatch",
                "raw is not the expectedRaw the backend asked to be signed",
            ));
        }
    }
    let new_counter = counter_i64(result.counter)?;
    let now = now_millis();
    let mut tx = store.pool().begin().await.map_err(StoreError::from)?;
    if req.expected_raw.is_none() {
        consume_challenge(&mut tx, &result, now).await?;
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
        return Err(RpError::new(
            ErrorKind::Forbidden,
            "soter_counter_not_increasing",
            "another result with this or a higher counter was verified concurrently",
        ));
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(json!({
        "verified": true,
        "cpuId": result.cpu_id,
        "uid": result.uid,
        "counter": result.counter,
        "fid": result.fid,
        "raw": result.raw,
        "teeName": result.tee_n,
    }))
}

/// Consumes the live challenge `raw` inside `tx`, checking the device and app it was bound to.
async fn consume_challenge(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    result: &ResultJson,
    now: i64,
) -> Result<(), RpError> {
    let taken = sqlx::query(
        "DELETE FROM ceremonies WHERE challenge = $1 AND kind = $2 AND expires_at > $3 RETURNING state",
    )
    .bind(&result.raw)
    .bind(KIND)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::from)?;
    let Some(taken) = taken else {
        // Dropping the transaction rolls it back: nothing changed.
        return Err(RpError::invalid(
            "soter_challenge_unknown",
            "raw is not a live challenge from POST /api/soter/challenge (unknown, expired or already used)",
        ));
    };
    let binding: String = taken.try_get("state").map_err(StoreError::from)?;
    let binding: Value = serde_json::from_str(&binding).unwrap_or(Value::Null);
    for (name, actual) in [("cpuId", &result.cpu_id), ("uid", &result.uid)] {
        if let Some(expected) = binding[name].as_str() {
            if expected != actual {
                return Err(RpError::invalid(
                    "soter_challenge_mismatch",
                    format!("the challenge was issued for {name} {expected:?}, not {actual:?}"),
                ));
            }
        }
    }
    Ok(())
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
