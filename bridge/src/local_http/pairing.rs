//! Pairing: the one-time codes a page proves the person's consent with, the per-origin
//! backoff after wrong codes, and the bearer tokens (sessions) that pairing issues.

use std::sync::PoisonError;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use super::refusal::{Refusal, refusal};
use super::{LocalBridge, LocalBridgeError, random_bytes, sha256};

/// The alphabet of pairing codes: Crockford's base 32 (no I, L, O, U to misread).
pub(super) const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 12 symbols, 60 bits: shown as three groups of four.
pub(super) const CODE_LENGTH: usize = 12;

/// A paired page.
pub(super) struct Session {
    /// SHA-256 of its token (the token itself is not kept).
    pub(super) token_hash: [u8; 32],
    /// The origin that paired.
    pub(super) origin: String,
    /// The router session its requests run in.
    pub(super) id: String,
}

/// An origin's wrong pairing codes.
#[derive(Debug, Default)]
pub(super) struct Tries {
    failures: u32,
    not_before: Option<std::time::Instant>,
}

pub(super) struct Pairing {
    pub(super) code: Zeroizing<String>,
    /// Per origin (only allowed origins get this far, so the map stays small).
    pub(super) tries: std::collections::HashMap<String, Tries>,
    pub(super) sessions: Vec<Session>,
}

/// The canonical form of a typed code: upper case, separators dropped, Crockford's
/// look-alikes (O, I, L) read as the digits they stand for.
pub(super) fn normalize_code(typed: &str) -> Zeroizing<String> {
    Zeroizing::new(
        typed
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            })
            .collect(),
    )
}

/// A fresh pairing code: 12 symbols of [`CODE_ALPHABET`].
pub(super) fn new_code() -> Result<Zeroizing<String>, LocalBridgeError> {
    let raw = Zeroizing::new(random_bytes::<CODE_LENGTH>()?);
    Ok(Zeroizing::new(
        raw.iter()
            .map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)]))
            .collect(),
    ))
}

/// `XXXX-XXXX-XXXX`.
pub(super) fn grouped(code: &str) -> Zeroizing<String> {
    let groups: Vec<&str> = code
        .as_bytes()
        .chunks(4)
        .filter_map(|g| std::str::from_utf8(g).ok())
        .collect();
    Zeroizing::new(groups.join("-"))
}

pub(super) fn pair(bridge: &LocalBridge, origin: &str, body: &Json) -> Response {
    let Some(typed) = body.get("code").and_then(Json::as_str) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send {\"code\": \"the pairing code passgate shows\"}",
        );
    };
    let typed = normalize_code(typed);
    let config = &bridge.shared.config;
    let now = std::time::Instant::now();
    // Made before the check: a used code must never stay valid for want of a new one.
    let fresh = match new_code() {
        Ok(code) => code,
        Err(e) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let next_code = {
        let mut pairing = bridge.lock();
        let tries = pairing.tries.entry(origin.to_owned()).or_default();
        if let Some(wait) = tries.not_before.and_then(|t| t.checked_duration_since(now)) {
            let seconds = wait.as_secs().saturating_add(1);
            let mut response = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "pairing_backoff",
                format!("too many wrong pairing codes from {origin}: try again in {seconds} s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return response;
        }
        let right = aws_lc_rs::constant_time::verify_slices_are_equal(
            typed.as_bytes(),
            pairing.code.as_bytes(),
        )
        .is_ok();
        let Some(tries) = pairing.tries.get_mut(origin) else {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "pairing state",
            );
        };
        if !right {
            tries.failures = tries.failures.saturating_add(1);
            let left = config.pairing_free_tries.saturating_sub(tries.failures);
            let message = if left > 0 {
                format!(
                    "that is not the pairing code passgate shows ({left} more tries before waits)"
                )
            } else {
                // 1 s, 2 s, 4 s, … after each wrong code past the free ones.
                let doublings = (tries.failures - config.pairing_free_tries).min(20);
                let wait = Duration::from_secs(1u64 << doublings).min(config.pairing_max_backoff);
                tries.not_before = Some(now + wait);
                format!(
                    "that is not the pairing code passgate shows (wait {} s before the next try)",
                    wait.as_secs()
                )
            };
            tracing::warn!(%origin, failures = tries.failures, "local bridge: wrong pairing code");
            return refusal(StatusCode::UNAUTHORIZED, "pairing_code_wrong", message);
        }
        pairing.tries.remove(origin);
        // One code, one pairing: the next page needs the next code.
        pairing.code = fresh;
        grouped(&pairing.code)
    };
    {
        let code = next_code;
        if let Some(display) = bridge
            .shared
            .code_display
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            display(&code);
        }
    }
    match bridge.new_session(origin) {
        Ok(token) => {
            tracing::info!(%origin, "local bridge: a page paired");
            (
                StatusCode::OK,
                axum::Json(json!({ "token": token.as_str(), "origin": origin })),
            )
                .into_response()
        }
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// The session of the bearer token, if it was issued to `origin`.
pub(super) fn session_of(
    bridge: &LocalBridge,
    origin: &str,
    headers: &HeaderMap,
) -> Result<String, Refusal> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|a| a.to_str().ok())
        .and_then(|a| {
            a.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
        })
        .filter(|t| !t.is_empty())
    else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "pairing_required",
            "pair first: POST /v1/pair with the code passgate shows, then send Authorization: Bearer TOKEN",
        ));
    };
    let hash = sha256(token.as_bytes());
    let pairing = bridge.lock();
    // Every session is compared, in constant time, whatever matches.
    let mut found = None;
    for session in &pairing.sessions {
        if aws_lc_rs::constant_time::verify_slices_are_equal(&hash, &session.token_hash).is_ok() {
            found = Some(session);
        }
    }
    match found {
        Some(session) if session.origin == origin => Ok(session.id.clone()),
        _ => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "pairing_invalid",
            "this token is not one passgate issued to this origin (passgate restarted?): pair again",
        )),
    }
}

pub(super) fn unpair(bridge: &LocalBridge, origin: &str, headers: &HeaderMap) -> Response {
    let id = match session_of(bridge, origin, headers) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    bridge.lock().sessions.retain(|s| s.id != id);
    bridge.shared.router.cancel_session(&id);
    (StatusCode::OK, axum::Json(json!({ "unpaired": true }))).into_response()
}
