//! The PIN state: what is persisted (the PIN hash, retries, policy) and what lives only in
//! memory (key agreement, the current pinUvAuthToken, the power-cycle counter).

use std::num::NonZeroU32;
use std::time::Instant;

use aws_lc_rs::{constant_time, pbkdf2};
use ciborium::value::Value;
use zeroize::Zeroizing;

use super::super::cbor::{Params, ValueExt, encode, int_map};
use super::{
    DEFAULT_MIN_PIN_LENGTH, KeyAgreement, MAX_PIN_RETRIES, MAX_UV_RETRIES, PBKDF2_ITERATIONS,
    STATE_NAME, StatusCode,
};
use crate::api::key_store::KeyRelease;
use crate::api::user_verifier::UserVerified;

/// Persistent PIN state.
#[derive(Clone, PartialEq, Eq)]
pub struct PinState {
    pub(super) hash: Option<Zeroizing<[u8; 32]>>,
    pub(super) salt: [u8; 16],
    /// Retries left.
    pub retries: u8,
    /// Minimum PIN length (code points).
    pub min_length: u8,
    /// Whether the PIN must be changed before a token is issued.
    pub force_change: bool,
    /// Relying parties allowed to learn the minimum PIN length (minPinLength extension).
    pub min_pin_length_rp_ids: Vec<String>,
    /// Whether every makeCredential/getAssertion requires user verification.
    pub always_uv: bool,
    /// Built-in user verification attempts left before it is blocked (PIN still works).
    pub uv_retries: u8,
    /// The PIN is held and checked by the key store (the TPM's PIN object), not by `hash`:
    /// nothing on disk can test a PIN guess.
    pub in_key_store: bool,
}

impl std::fmt::Debug for PinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinState")
            .field("set", &self.hash.is_some())
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl Default for PinState {
    fn default() -> Self {
        Self {
            hash: None,
            salt: [0; 16],
            retries: MAX_PIN_RETRIES,
            min_length: DEFAULT_MIN_PIN_LENGTH,
            force_change: false,
            min_pin_length_rp_ids: Vec::new(),
            always_uv: false,
            uv_retries: MAX_UV_RETRIES,
            in_key_store: false,
        }
    }
}

impl PinState {
    /// Whether a PIN is set.
    pub fn is_set(&self) -> bool {
        self.hash.is_some() || self.in_key_store
    }

    pub(super) fn encode(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(encode(&int_map([
            (1, self.hash.as_ref().map(|h| Value::Bytes(h.to_vec()))),
            (2, Some(Value::Bytes(self.salt.to_vec()))),
            (3, Some(Value::Integer(self.retries.into()))),
            (4, Some(Value::Integer(self.min_length.into()))),
            (5, Some(Value::Bool(self.force_change))),
            (
                6,
                Some(Value::Array(
                    self.min_pin_length_rp_ids
                        .iter()
                        .cloned()
                        .map(Value::Text)
                        .collect(),
                )),
            ),
            (7, Some(Value::Bool(self.always_uv))),
            (8, Some(Value::Integer(self.uv_retries.into()))),
            (9, self.in_key_store.then_some(Value::Bool(true))),
        ])))
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut p = Params::parse(bytes).ok()?;
        let hash = match p.take(1) {
            None => None,
            Some(v) => {
                let b = v.ctap_bytes().ok()?;
                let mut h = Zeroizing::new([0u8; 32]);
                if b.len() != 32 {
                    return None;
                }
                h.copy_from_slice(&b);
                Some(h)
            }
        };
        let salt: [u8; 16] = p.take(2)?.ctap_bytes().ok()?.try_into().ok()?;
        Some(Self {
            hash,
            salt,
            retries: u8::try_from(p.take(3)?.ctap_uint().ok()?).ok()?,
            min_length: u8::try_from(p.take(4)?.ctap_uint().ok()?).ok()?,
            force_change: p.take(5)?.ctap_bool().ok()?,
            min_pin_length_rp_ids: match p.take(6) {
                None => Vec::new(),
                Some(v) => v
                    .ctap_array()
                    .ok()?
                    .into_iter()
                    .map(|t| t.ctap_text().ok())
                    .collect::<Option<Vec<_>>>()?,
            },
            always_uv: p
                .take(7)
                .map(|v| v.ctap_bool().ok())
                .unwrap_or(Some(false))?,
            uv_retries: match p.take(8) {
                None => MAX_UV_RETRIES,
                Some(v) => u8::try_from(v.ctap_uint().ok()?).ok()?,
            },
            in_key_store: match p.take(9) {
                None => false,
                Some(v) => v.ctap_bool().ok()?,
            },
        })
    }

    pub(super) fn stretch(salt: &[u8; 16], left16: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            left16,
            out.as_mut(),
        );
        out
    }

    pub(super) fn matches(&self, left16: &[u8]) -> bool {
        match &self.hash {
            None => false,
            Some(h) => constant_time::verify_slices_are_equal(
                h.as_ref(),
                Self::stretch(&self.salt, left16).as_ref(),
            )
            .is_ok(),
        }
    }
}

/// An issued pinUvAuthToken.
pub(super) struct Token {
    pub(super) value: Zeroizing<[u8; 32]>,
    pub(super) permissions: u8,
    pub(super) rp_id: Option<String>,
    pub(super) issued: Instant,
    pub(super) verified: Option<UserVerified>,
    /// The key release that came with the verification (TPM key store), consumed with it.
    pub(super) release: Option<KeyRelease>,
}

/// In-memory PIN state: key agreement, the current token, the power-cycle counter.
pub struct PinRuntime {
    pub(super) state: Result<PinState, String>,
    /// The built-in UV retries a restart would start from (the state store's value): never
    /// more than the in-memory count once an attempt is under way (see
    /// [`crate::Authenticator::verify_builtin`]).
    pub(super) durable_uv_retries: u8,
    pub(super) key_agreement: Option<KeyAgreement>,
    pub(super) mismatches: u8,
    pub(super) token: Option<Token>,
}

impl std::fmt::Debug for PinRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinRuntime")
            .field("state", &self.state)
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl PinRuntime {
    /// Loads the PIN state. A state that cannot be read makes every PIN-dependent command
    /// fail (fail closed) instead of looking like "no PIN set".
    pub fn load(store: &mut dyn crate::api::state_store::StateStore, max_uv_attempts: u8) -> Self {
        let state = match store.load(STATE_NAME) {
            Ok(None) => Ok(PinState {
                uv_retries: max_uv_attempts,
                ..PinState::default()
            }),
            Ok(Some(bytes)) => {
                PinState::decode(&bytes).ok_or_else(|| "PIN state does not decode".to_owned())
            }
            Err(e) => Err(e.to_string()),
        }
        .map(|mut state| {
            // A lowered maxAttempts applies at once; a raised one only after the next success
            // (no free attempts from a restart with a higher limit).
            state.uv_retries = state.uv_retries.min(max_uv_attempts);
            state
        });
        if let Err(e) = &state {
            tracing::error!(error = %e, "PIN state unavailable: PIN-protected operations will fail");
        }
        Self {
            durable_uv_retries: state.as_ref().map_or(0, |s| s.uv_retries),
            state,
            key_agreement: KeyAgreement::generate().ok(),
            mismatches: 0,
            token: None,
        }
    }

    /// The PIN state, or CTAP1_ERR_OTHER when it could not be loaded.
    pub fn state(&self) -> Result<&PinState, StatusCode> {
        self.state.as_ref().map_err(|_| StatusCode::Other)
    }
}
