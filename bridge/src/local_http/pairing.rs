//! Pairing: the one-time codes a page proves the person's consent with, the per-origin
//! backoff after wrong codes, and the bearer tokens (sessions) that pairing issues.

use std::sync::PoisonError;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use super::refusal::{Refusal, refusal};
use super::store::{PairingStore, Stamp, StoredPairing};
use super::{LocalBridge, LocalBridgeError, random_bytes, sha256};

/// The alphabet of pairing codes: Crockford's base 32 (no I, L, O, U to misread).
pub(super) const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 12 symbols, 60 bits: shown as three groups of four.
pub(super) const CODE_LENGTH: usize = 12;

/// A paired page.
pub(super) struct Session {
    /// SHA-256 of its token (the token itself is not kept).
    pub(super) token_hash: Zeroizing<[u8; 32]>,
    /// The origin that paired.
    pub(super) origin: String,
    /// The router session its requests run in.
    pub(super) id: String,
    /// Whether it is in the pairing store (pairings by code are; tokens a native app has
    /// injected with [`LocalBridge::issue_token`] live as long as the process).
    pub(super) stored: bool,
}

impl Session {
    pub(super) fn from_stored(p: &StoredPairing) -> Self {
        Self {
            token_hash: p.token_hash.clone(),
            origin: p.origin.clone(),
            id: p.id.clone(),
            stored: true,
        }
    }
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
    /// Where pairings outlive the process, if anywhere.
    pub(super) store: Option<PairingStore>,
    /// The version of the store's file the stored sessions were read from.
    pub(super) stamp: Option<Stamp>,
}

impl Pairing {
    /// Replaces the stored sessions with `stored` (keeping the in-memory ones); returns the
    /// router sessions that are gone.
    pub(super) fn replace_stored(
        &mut self,
        stored: &[StoredPairing],
        stamp: Option<Stamp>,
    ) -> Vec<String> {
        let mut gone = Vec::new();
        self.sessions.retain(|s| {
            let keep = !s.stored || stored.iter().any(|p| p.id == s.id);
            if !keep {
                gone.push(s.id.clone());
            }
            keep
        });
        for p in stored {
            if !self.sessions.iter().any(|s| s.id == p.id) {
                self.sessions.push(Session::from_stored(p));
            }
        }
        self.stamp = stamp;
        gone
    }

    /// Re-reads the store when another process (`passgate bridge unpair`) changed it; returns
    /// the router sessions revoked. A store that cannot be read revokes every stored session
    /// (it fails closed) until it can be.
    pub(super) fn refresh(&mut self) -> Vec<String> {
        let Some(store) = self.store.clone() else {
            return Vec::new();
        };
        match store.stamp() {
            Ok(stamp) if stamp == self.stamp => return Vec::new(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "local bridge: the pairing store"),
        }
        match store.load_stamped() {
            Ok((stored, stamp)) => self.replace_stored(&stored, stamp),
            Err(e) => {
                tracing::warn!(error = %e, "local bridge: stored pairings are not trusted");
                self.replace_stored(&[], None)
            }
        }
    }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    match bridge.new_session(origin, true) {
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
    let hash = Zeroizing::new(sha256(token.as_bytes()));
    let mut pairing = bridge.lock();
    let revoked = pairing.refresh();
    // Every session is compared, in constant time, whatever matches.
    let mut found = None;
    for session in &pairing.sessions {
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            hash.as_ref(),
            session.token_hash.as_ref(),
        )
        .is_ok()
        {
            found = Some(session);
        }
    }
    let answer = match found {
        Some(session) if session.origin == origin => Ok(session.id.clone()),
        Some(_) => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "pairing_invalid",
            "this token was issued to another origin: pair this page with its own code",
        )),
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "pairing_stale",
            "passgate does not know this page's pairing any more (it was revoked with `passgate bridge unpair`, or passgate's pairings were reset): pair again with the code passgate shows",
        )),
    };
    drop(pairing);
    for id in revoked {
        bridge.shared.router.cancel_session(&id);
    }
    answer
}

pub(super) fn unpair(bridge: &LocalBridge, origin: &str, headers: &HeaderMap) -> Response {
    let id = match session_of(bridge, origin, headers) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let stored = {
        let mut pairing = bridge.lock();
        pairing.sessions.retain(|s| s.id != id);
        pairing.store.clone()
    };
    if let Some(store) = stored {
        match store.remove_id(&id) {
            Ok((stored, stamp)) => {
                let gone = bridge.lock().replace_stored(&stored, stamp);
                for other in gone {
                    bridge.shared.router.cancel_session(&other);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "local bridge: forgetting a pairing");
                bridge.shared.router.cancel_session(&id);
                return refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "pairing_store",
                    "this page is unpaired until passgate restarts, but its stored pairing could not be removed (see passgate's log)",
                );
            }
        }
    }
    bridge.shared.router.cancel_session(&id);
    (StatusCode::OK, axum::Json(json!({ "unpaired": true }))).into_response()
}
