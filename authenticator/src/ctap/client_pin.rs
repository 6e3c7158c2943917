//! authenticatorClientPIN (CTAP 2.1 §6.5): PIN set/change, PIN retries with the power-cycle
//! rule, and pinUvAuthTokens with permissions and RP ID binding.
//!
//! The PIN is never stored: only a PBKDF2-HMAC-SHA256 hash (random salt) of the
//! `LEFT(SHA-256(pin), 16)` value the protocol transmits, inside the encrypted state store.
//! The retry counter is written durably *before* a PIN hash is compared, so cutting power
//! during a guess never gives a free try.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, pbkdf2};
use ciborium::value::Value;
use zeroize::Zeroizing;

use super::cbor::{Params, ValueExt, encode, int_map};
use super::pin_protocol::{KeyAgreement, Protocol};
use super::{Authenticator, CommandResult, StatusCode, user_error_status};
use crate::api::key_store::{KeyRelease, PinCheckError};
use crate::api::user_verifier::{
    Interaction, Prompt, PromptAction, UserActionError, UserVerified, VerificationMethod,
};

/// PIN retries after a correct PIN (CTAP: 8).
pub const MAX_PIN_RETRIES: u8 = 8;
/// Failed built-in verifications (fingerprint, face) before built-in UV is blocked and the
/// platform must fall back to the PIN, unless configured otherwise
/// ([`super::AuthenticatorConfig::max_uv_attempts`]).
pub const MAX_UV_RETRIES: u8 = 8;
/// Wrong PINs in a row before a power cycle is required.
const MISMATCHES_BEFORE_POWER_CYCLE: u8 = 3;
/// Default minimum PIN length in Unicode code points.
pub const DEFAULT_MIN_PIN_LENGTH: u8 = 4;
/// How long a token stays usable after it was issued.
const TOKEN_LIFETIME: Duration = Duration::from_secs(600);
const PBKDF2_ITERATIONS: u32 = 20_000;
const STATE_NAME: &str = "pin";

/// pinUvAuthToken permissions (§6.5.5.7).
pub mod permission {
    /// makeCredential.
    pub const MC: u8 = 0x01;
    /// getAssertion.
    pub const GA: u8 = 0x02;
    /// credentialManagement.
    pub const CM: u8 = 0x04;
    /// bioEnrollment.
    pub const BE: u8 = 0x08;
    /// largeBlobWrite.
    pub const LBW: u8 = 0x10;
    /// authenticatorConfig.
    pub const ACFG: u8 = 0x20;
}

mod sub {
    pub const GET_PIN_RETRIES: u64 = 0x01;
    pub const GET_KEY_AGREEMENT: u64 = 0x02;
    pub const SET_PIN: u64 = 0x03;
    pub const CHANGE_PIN: u64 = 0x04;
    pub const GET_PIN_TOKEN: u64 = 0x05;
    pub const GET_TOKEN_USING_UV: u64 = 0x06;
    pub const GET_UV_RETRIES: u64 = 0x07;
    pub const GET_TOKEN_USING_PIN: u64 = 0x09;
}

mod key {
    pub const PROTOCOL: u64 = 0x01;
    pub const SUB_COMMAND: u64 = 0x02;
    pub const KEY_AGREEMENT: u64 = 0x03;
    pub const PIN_UV_AUTH_PARAM: u64 = 0x04;
    pub const NEW_PIN_ENC: u64 = 0x05;
    pub const PIN_HASH_ENC: u64 = 0x06;
    pub const PERMISSIONS: u64 = 0x09;
    pub const RP_ID: u64 = 0x0a;
}

/// Persistent PIN state.
#[derive(Clone, PartialEq, Eq)]
pub struct PinState {
    hash: Option<Zeroizing<[u8; 32]>>,
    salt: [u8; 16],
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

    fn encode(&self) -> Zeroizing<Vec<u8>> {
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

    fn decode(bytes: &[u8]) -> Option<Self> {
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

    fn stretch(salt: &[u8; 16], left16: &[u8]) -> Zeroizing<[u8; 32]> {
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

    fn matches(&self, left16: &[u8]) -> bool {
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
struct Token {
    value: Zeroizing<[u8; 32]>,
    permissions: u8,
    rp_id: Option<String>,
    issued: Instant,
    verified: Option<UserVerified>,
    /// The key release that came with the verification (TPM key store), consumed with it.
    release: Option<KeyRelease>,
}

/// In-memory PIN state: key agreement, the current token, the power-cycle counter.
pub struct PinRuntime {
    state: Result<PinState, String>,
    /// The built-in UV retries a restart would start from (the state store's value): never
    /// more than the in-memory count once an attempt is under way (see
    /// [`Authenticator::verify_builtin`]).
    durable_uv_retries: u8,
    key_agreement: Option<KeyAgreement>,
    mismatches: u8,
    token: Option<Token>,
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

/// The pinUvAuthParam and pinUvAuthProtocol of a makeCredential/getAssertion request.
pub(crate) struct PinUvAuth {
    param: Vec<u8>,
    protocol: Option<u64>,
}

impl PinUvAuth {
    /// Takes both parameters from a request map.
    pub(crate) fn take(
        params: &mut Params,
        param_key: u64,
        protocol_key: u64,
    ) -> Result<Option<Self>, StatusCode> {
        let param = params.take(param_key).map(Value::ctap_bytes).transpose()?;
        let protocol = params
            .take(protocol_key)
            .map(Value::ctap_uint)
            .transpose()?;
        Ok(param.map(|param| Self { param, protocol }))
    }
}

/// What a verified pinUvAuthParam grants a makeCredential/getAssertion.
pub(crate) struct TokenUse {
    pub verified: Option<UserVerified>,
    /// The key release of the token's verification, if the key store gave one.
    pub release: Option<KeyRelease>,
}

impl Authenticator {
    pub(super) fn save_pin_state(&mut self, state: PinState) -> Result<(), StatusCode> {
        let uv_retries = state.uv_retries;
        self.save_pin_state_with_uv(state, uv_retries)
    }

    /// Persists `state` with `durable_uv_retries` as its built-in UV count (at most the one in
    /// memory; see [`Authenticator::verify_builtin`]) and keeps `state` in memory.
    fn save_pin_state_with_uv(
        &mut self,
        state: PinState,
        durable_uv_retries: u8,
    ) -> Result<(), StatusCode> {
        let mut stored = state.clone();
        stored.uv_retries = durable_uv_retries.min(state.uv_retries);
        self.env
            .state
            .save(STATE_NAME, &stored.encode())
            .map_err(|e| {
                tracing::error!(error = %e, "could not persist PIN state");
                StatusCode::Other
            })?;
        self.pin.durable_uv_retries = stored.uv_retries;
        self.pin.state = Ok(state);
        Ok(())
    }

    /// Keeps the built-in UV count in memory, and raises the state store's to one below it if
    /// it is lower (so that a restart never costs more than one attempt).
    fn keep_uv_retries(&mut self, state: PinState) -> Result<(), StatusCode> {
        let floor = state.uv_retries.saturating_sub(1);
        if self.pin.durable_uv_retries < floor {
            self.save_pin_state_with_uv(state, floor)
        } else {
            self.pin.state = Ok(state);
            Ok(())
        }
    }

    fn regenerate_key_agreement(&mut self) {
        self.pin.key_agreement = KeyAgreement::generate().ok();
    }

    /// Erases the PIN and every token (authenticatorReset).
    pub(super) fn reset_pin(&mut self) -> Result<(), StatusCode> {
        self.env
            .state
            .remove(STATE_NAME)
            .map_err(|_| StatusCode::Other)?;
        self.env.key_store.reset().map_err(|e| {
            tracing::error!(error = %e, "could not reset the key store's PIN state");
            StatusCode::Other
        })?;
        self.pin.state = Ok(PinState {
            uv_retries: self.config.max_uv_attempts,
            ..PinState::default()
        });
        // No state file: a restart starts from the maximum too.
        self.pin.durable_uv_retries = self.config.max_uv_attempts;
        self.pin.token = None;
        self.pin.mismatches = 0;
        self.regenerate_key_agreement();
        Ok(())
    }

    pub(super) fn client_pin(&mut self, body: &[u8], interaction: &Interaction) -> CommandResult {
        let mut p = Params::parse(body)?;
        let sub_command = p.required(key::SUB_COMMAND)?.ctap_uint()?;
        let protocol = p.take(key::PROTOCOL).map(Value::ctap_uint).transpose()?;
        let key_agreement = p.take(key::KEY_AGREEMENT);
        let auth_param = p
            .take(key::PIN_UV_AUTH_PARAM)
            .map(Value::ctap_bytes)
            .transpose()?;
        let new_pin_enc = p
            .take(key::NEW_PIN_ENC)
            .map(Value::ctap_bytes)
            .transpose()?;
        let pin_hash_enc = p
            .take(key::PIN_HASH_ENC)
            .map(Value::ctap_bytes)
            .transpose()?;
        let permissions = p.take(key::PERMISSIONS).map(Value::ctap_uint).transpose()?;
        let rp_id = p.take(key::RP_ID).map(Value::ctap_text).transpose()?;
        let protocol = || -> Result<Protocol, StatusCode> {
            Protocol::from_number(protocol.ok_or(StatusCode::MissingParameter)?)
        };
        match sub_command {
            sub::GET_PIN_RETRIES => {
                let state = self.pin.state()?;
                // No PIN, no retries to count: python-fido2's device suite and current
                // security keys answer PIN_NOT_SET rather than a counter of a PIN that isn't.
                if !state.is_set() {
                    return Err(StatusCode::PinNotSet);
                }
                Ok(encode(&int_map([
                    (3, Some(Value::Integer(state.retries.into()))),
                    (
                        4,
                        Some(Value::Bool(
                            self.pin.mismatches >= MISMATCHES_BEFORE_POWER_CYCLE,
                        )),
                    ),
                ])))
            }
            sub::GET_KEY_AGREEMENT => {
                protocol()?;
                let ka = self.pin.key_agreement.as_ref().ok_or(StatusCode::Other)?;
                Ok(encode(&int_map([(1, Some(ka.cose_public_key()))])))
            }
            sub::SET_PIN => {
                let protocol = protocol()?;
                let (Some(ka), Some(param), Some(new_pin_enc)) =
                    (key_agreement, auth_param, new_pin_enc)
                else {
                    return Err(StatusCode::MissingParameter);
                };
                if self.pin.state()?.is_set() {
                    return Err(StatusCode::PinAuthInvalid);
                }
                let shared = self.pin_decapsulate(protocol, ka)?;
                if !protocol.verify(&shared, &new_pin_enc, &param) {
                    return Err(StatusCode::PinAuthInvalid);
                }
                let mut state = self.pin.state()?.clone();
                self.store_new_pin(protocol, &shared, &new_pin_enc, &mut state, None)?;
                self.save_pin_state(state)?;
                Ok(Vec::new())
            }
            sub::CHANGE_PIN => {
                let protocol = protocol()?;
                let (Some(ka), Some(param), Some(new_pin_enc), Some(pin_hash_enc)) =
                    (key_agreement, auth_param, new_pin_enc, pin_hash_enc)
                else {
                    return Err(StatusCode::MissingParameter);
                };
                self.check_pin_usable()?;
                let shared = self.pin_decapsulate(protocol, ka)?;
                let message = [&new_pin_enc[..], &pin_hash_enc].concat();
                if !protocol.verify(&shared, &message, &param) {
                    return Err(StatusCode::PinAuthInvalid);
                }
                let (mut state, release) =
                    self.verify_pin_hash(protocol, &shared, &pin_hash_enc)?;
                self.store_new_pin(
                    protocol,
                    &shared,
                    &new_pin_enc,
                    &mut state,
                    release.as_ref(),
                )?;
                state.force_change = false;
                self.save_pin_state(state)?;
                self.pin.token = None;
                Ok(Vec::new())
            }
            sub::GET_PIN_TOKEN | sub::GET_TOKEN_USING_PIN => {
                let protocol = protocol()?;
                let (Some(ka), Some(pin_hash_enc)) = (key_agreement, pin_hash_enc) else {
                    return Err(StatusCode::MissingParameter);
                };
                let (permissions, rp_id) = if sub_command == sub::GET_PIN_TOKEN {
                    if permissions.is_some() || rp_id.is_some() {
                        return Err(StatusCode::InvalidParameter);
                    }
                    (permission::MC | permission::GA, None)
                } else {
                    let permissions = permissions.ok_or(StatusCode::MissingParameter)?;
                    (self.check_permissions(permissions)?, rp_id)
                };
                self.check_pin_usable()?;
                let shared = self.pin_decapsulate(protocol, ka)?;
                let (state, release) = self.verify_pin_hash(protocol, &shared, &pin_hash_enc)?;
                // CTAP 2.1 §6.5.5.7: the PIN was right (its hash checked and the retries reset
                // above), but it must be changed before it can be used: PIN_INVALID, no token.
                if state.force_change {
                    return Err(StatusCode::PinInvalid);
                }
                self.issue_token(
                    protocol,
                    &shared,
                    permissions,
                    rp_id,
                    UserVerified::by(VerificationMethod::Pin),
                    release,
                )
            }
            sub::GET_TOKEN_USING_UV => {
                let protocol = protocol()?;
                let Some(ka) = key_agreement else {
                    return Err(StatusCode::MissingParameter);
                };
                let permissions =
                    self.check_permissions(permissions.ok_or(StatusCode::MissingParameter)?)?;
                let status = self.env.user.status();
                if !status.available {
                    return Err(StatusCode::InvalidSubcommand);
                }
                let shared = self.pin_decapsulate(protocol, ka)?;
                let prompt = Prompt {
                    action: PromptAction::SignIn,
                    rp_id: rp_id.as_deref(),
                    user_name: None,
                };
                let verified = self.verify_builtin(&prompt, interaction)?;
                let release = self.env.key_store.release_for(Some(&verified));
                self.issue_token(protocol, &shared, permissions, rp_id, verified, release)
            }
            sub::GET_UV_RETRIES => {
                if !self.env.user.status().available {
                    return Err(StatusCode::InvalidSubcommand);
                }
                let retries = self.pin.state()?.uv_retries;
                Ok(encode(&int_map([(
                    5,
                    Some(Value::Integer(retries.into())),
                )])))
            }
            _ => Err(StatusCode::InvalidSubcommand),
        }
    }

    /// ECDH with the current key-agreement key and the protocol KDF (clientPIN, hmac-secret).
    pub(super) fn pin_decapsulate(
        &mut self,
        protocol: Protocol,
        peer: Value,
    ) -> Result<Zeroizing<Vec<u8>>, StatusCode> {
        self.pin
            .key_agreement
            .as_ref()
            .ok_or(StatusCode::Other)?
            .decapsulate(protocol, peer)
    }

    fn check_permissions(&mut self, permissions: u64) -> Result<u8, StatusCode> {
        let permissions = u8::try_from(permissions).map_err(|_| StatusCode::InvalidParameter)?;
        if permissions == 0 {
            return Err(StatusCode::InvalidParameter);
        }
        // bioEnrollment only where the user verifier can enroll fingerprints.
        if permissions & permission::BE != 0 && !self.bio_enrollment_available() {
            return Err(StatusCode::UnauthorizedPermission);
        }
        Ok(permissions)
    }

    fn check_pin_usable(&self) -> Result<(), StatusCode> {
        let state = self.pin.state()?;
        if !state.is_set() {
            return Err(StatusCode::PinNotSet);
        }
        if state.retries == 0 {
            return Err(StatusCode::PinBlocked);
        }
        if self.pin.mismatches >= MISMATCHES_BEFORE_POWER_CYCLE {
            return Err(StatusCode::PinAuthBlocked);
        }
        Ok(())
    }

    /// Decrements retries durably, then checks the PIN hash (against the stored hash, or in
    /// the key store's hardware); resets retries on success and returns the key release the
    /// key store gave for it, if any.
    fn verify_pin_hash(
        &mut self,
        protocol: Protocol,
        shared: &[u8],
        pin_hash_enc: &[u8],
    ) -> Result<(PinState, Option<KeyRelease>), StatusCode> {
        let mut state = self.pin.state()?.clone();
        if state.in_key_store && !self.env.key_store.manages_pin() {
            tracing::error!(
                "the PIN is held by a TPM key store, but this authenticator runs another key store"
            );
            return Err(StatusCode::Other);
        }
        state.retries = state.retries.saturating_sub(1);
        self.save_pin_state(state.clone())?;
        let left16 = protocol.decrypt(shared, pin_hash_enc)?;
        let (matched, release) = if left16.len() != 16 {
            (false, None)
        } else if state.in_key_store {
            match self.env.key_store.verify_pin(&left16) {
                Ok(release) => (true, Some(release)),
                Err(PinCheckError::Wrong) => (false, None),
                Err(e @ (PinCheckError::LockedOut | PinCheckError::Backend(_))) => {
                    // The TPM did not judge this PIN: no retry is spent on it.
                    state.retries = state.retries.saturating_add(1).min(MAX_PIN_RETRIES);
                    self.save_pin_state(state)?;
                    return Err(if matches!(e, PinCheckError::LockedOut) {
                        tracing::warn!("PIN refused: the TPM is in dictionary-attack lockout");
                        // Temporary, like the power-cycle block: the TPM forgets failures with
                        // time (or with its lockout authorization); not PIN_BLOCKED, which only
                        // a reset lifts.
                        StatusCode::PinAuthBlocked
                    } else {
                        tracing::error!(error = %e, "TPM PIN check failed");
                        StatusCode::Other
                    });
                }
            }
        } else {
            (state.matches(&left16), None)
        };
        if !matched {
            self.regenerate_key_agreement();
            self.pin.mismatches = self.pin.mismatches.saturating_add(1);
            tracing::warn!(retries = state.retries, "wrong PIN");
            return Err(if state.retries == 0 {
                StatusCode::PinBlocked
            } else if self.pin.mismatches >= MISMATCHES_BEFORE_POWER_CYCLE {
                StatusCode::PinAuthBlocked
            } else {
                StatusCode::PinInvalid
            });
        }
        self.pin.mismatches = 0;
        state.retries = MAX_PIN_RETRIES;
        // A correct PIN also unblocks built-in verification (CTAP 2.1 §6.5.5.7.2).
        state.uv_retries = self.config.max_uv_attempts;
        self.save_pin_state(state.clone())?;
        Ok((state, release))
    }

    fn store_new_pin(
        &mut self,
        protocol: Protocol,
        shared: &[u8],
        new_pin_enc: &[u8],
        state: &mut PinState,
        current: Option<&KeyRelease>,
    ) -> Result<(), StatusCode> {
        let padded = protocol.decrypt(shared, new_pin_enc)?;
        if padded.len() != 64 {
            return Err(StatusCode::InvalidParameter);
        }
        let end = padded.iter().position(|&b| b == 0).unwrap_or(padded.len());
        let pin = &padded[..end];
        let Ok(text) = std::str::from_utf8(pin) else {
            return Err(StatusCode::PinPolicyViolation);
        };
        if text.chars().count() < usize::from(state.min_length) || pin.len() > 63 {
            return Err(StatusCode::PinPolicyViolation);
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin);
        let left16 = &digest.as_ref()[..16];
        if self.env.key_store.manages_pin() {
            // The TPM seals the key release under this PIN; no hash that could test guesses
            // offline is stored.
            self.env.key_store.set_pin(left16, current).map_err(|e| {
                tracing::error!(error = %e, "the key store could not set the PIN");
                StatusCode::Other
            })?;
            state.hash = None;
            state.in_key_store = true;
        } else {
            aws_lc_rs::rand::fill(&mut state.salt).map_err(|_| StatusCode::Other)?;
            state.hash = Some(PinState::stretch(&state.salt, left16));
            state.in_key_store = false;
        }
        state.retries = MAX_PIN_RETRIES;
        Ok(())
    }

    fn issue_token(
        &mut self,
        protocol: Protocol,
        shared: &[u8],
        permissions: u8,
        rp_id: Option<String>,
        verified: UserVerified,
        release: Option<KeyRelease>,
    ) -> CommandResult {
        let mut value = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(value.as_mut()).map_err(|_| StatusCode::Other)?;
        let encrypted = protocol.encrypt(shared, value.as_ref())?;
        self.pin.token = Some(Token {
            value,
            permissions,
            rp_id,
            issued: self.env.clock.now(),
            verified: Some(verified),
            release,
        });
        Ok(encode(&int_map([(2, Some(Value::Bytes(encrypted)))])))
    }

    /// Checks a makeCredential/getAssertion pinUvAuthParam against the current token and
    /// consumes the token's verification, as §6.1.2 / §6.2.2 require.
    pub(super) fn use_pin_uv_auth_token(
        &mut self,
        protocol: Protocol,
        param: &[u8],
        client_data_hash: &[u8],
        required: u8,
        rp_id: &str,
        consume: bool,
    ) -> Result<TokenUse, StatusCode> {
        let now = self.env.clock.now();
        let token = self.pin.token.as_mut().ok_or(StatusCode::PinAuthInvalid)?;
        if now.saturating_duration_since(token.issued) > TOKEN_LIFETIME {
            self.pin.token = None;
            return Err(StatusCode::PinAuthInvalid);
        }
        if !protocol.verify(token.value.as_ref(), client_data_hash, param) {
            return Err(StatusCode::PinAuthInvalid);
        }
        if token.permissions & required == 0 {
            return Err(StatusCode::PinAuthInvalid);
        }
        match &token.rp_id {
            Some(bound) if bound != rp_id => return Err(StatusCode::PinAuthInvalid),
            Some(_) => {}
            None => token.rp_id = Some(rp_id.to_owned()),
        }
        if !consume {
            // Silent probes (up=false) neither use up nor report the verification; the key
            // release stays with the token, and a probe may sign with it.
            return Ok(TokenUse {
                verified: None,
                release: token.release.clone(),
            });
        }
        // One verification, one use: the UV result (and its key release) is consumed, and
        // only lbw survives.
        let verified = token.verified.take();
        let release = token.release.take();
        token.permissions &= permission::LBW;
        Ok(TokenUse { verified, release })
    }
}

impl Authenticator {
    /// Checks a credentialManagement pinUvAuthParam: a live token with the `cm` permission.
    pub(super) fn verify_management_token(
        &mut self,
        protocol: Protocol,
        param: &[u8],
        message: &[u8],
    ) -> Result<Option<String>, StatusCode> {
        self.verify_token(protocol, param, message, permission::CM)
    }

    /// Whether every makeCredential/getAssertion must verify the user: the alwaysUv setting,
    /// or a key store that signs only after verification (the TPM store once a PIN is set).
    pub(super) fn always_uv(&self) -> Result<bool, StatusCode> {
        Ok(self.pin.state()?.always_uv || self.env.key_store.requires_uv())
    }

    /// Whether makeCredential/getAssertion/config/largeBlobs writes need user verification:
    /// a PIN is set or built-in verification is enrolled.
    pub(super) fn uv_protected(&self) -> Result<bool, StatusCode> {
        let status = self.env.user.status();
        Ok(self.pin.state()?.is_set() || (status.available && status.enrolled))
    }

    /// Checks a pinUvAuthParam over `message` against a live token holding `required`.
    /// Returns the RP ID the token is bound to, if any; the token stays usable.
    pub(super) fn verify_token(
        &mut self,
        protocol: Protocol,
        param: &[u8],
        message: &[u8],
        required: u8,
    ) -> Result<Option<String>, StatusCode> {
        let now = self.env.clock.now();
        let token = self.pin.token.as_ref().ok_or(StatusCode::PinAuthInvalid)?;
        if now.saturating_duration_since(token.issued) > TOKEN_LIFETIME {
            self.pin.token = None;
            return Err(StatusCode::PinAuthInvalid);
        }
        if !protocol.verify(token.value.as_ref(), message, param) {
            return Err(StatusCode::PinAuthInvalid);
        }
        if token.permissions & required == 0 {
            return Err(StatusCode::PinAuthInvalid);
        }
        Ok(token.rp_id.clone())
    }
}

impl Authenticator {
    /// Built-in user verification with a durable retry counter: each attempt is paid for on
    /// disk before it is made, and at zero built-in UV is blocked (CTAP2_ERR_UV_BLOCKED) so the
    /// platform falls back to the PIN. A correct PIN restores it.
    ///
    /// The state store's count may stay *one below* the one in memory: a success restores the
    /// count in memory, and leaves the decremented value on disk, which already pays for the
    /// next attempt — so a run of successful verifications writes nothing (two durable writes
    /// per verification before). A power cut during an attempt never gives a free try; after a
    /// restart the count may be one lower than it was, until the next success (the safe
    /// direction).
    pub(super) fn verify_builtin(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<UserVerified, StatusCode> {
        let mut state = self.pin.state()?.clone();
        if state.uv_retries == 0 {
            return Err(StatusCode::UvBlocked);
        }
        state.uv_retries -= 1;
        if self.pin.durable_uv_retries > state.uv_retries {
            self.save_pin_state(state.clone())?;
        } else {
            self.pin.state = Ok(state.clone());
        }
        match self.env.user.verify_user(prompt, interaction) {
            Ok(verified) => {
                state.uv_retries = self.config.max_uv_attempts;
                self.keep_uv_retries(state)?;
                Ok(verified)
            }
            // Not an attempt: the person or the client gave up, or no sensor answered.
            Err(
                e @ (UserActionError::Cancelled
                | UserActionError::Timeout
                | UserActionError::Unavailable(_)
                | UserActionError::Denied),
            ) => {
                state.uv_retries = state
                    .uv_retries
                    .saturating_add(1)
                    .min(self.config.max_uv_attempts);
                self.keep_uv_retries(state)?;
                Err(user_error_status(e))
            }
            Err(UserActionError::Lockout) => {
                state.uv_retries = 0;
                self.save_pin_state(state)?;
                Err(StatusCode::UvBlocked)
            }
            Err(UserActionError::Failed) => Err(if state.uv_retries == 0 {
                StatusCode::UvBlocked
            } else {
                StatusCode::UvInvalid
            }),
        }
    }
}

impl Authenticator {
    /// The pinUvAuthParam steps shared by makeCredential and getAssertion (§6.1.2 steps 1–2,
    /// §6.2.2 steps 1–2): a zero-length parameter asks, after a touch, whether a PIN is set;
    /// otherwise the token must verify for `permission` and `rp_id`.
    pub(super) fn authorize_pin_uv_auth(
        &mut self,
        auth: Option<&PinUvAuth>,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
        client_data_hash: &[u8],
        required: u8,
        consume: bool,
    ) -> Result<Option<TokenUse>, StatusCode> {
        let Some(auth) = auth else {
            return Ok(None);
        };
        if auth.param.is_empty() {
            self.env
                .user
                .check_presence(prompt, interaction)
                .map_err(user_error_status)?;
            return Err(if self.pin.state()?.is_set() {
                StatusCode::PinInvalid
            } else {
                StatusCode::PinNotSet
            });
        }
        let protocol = Protocol::from_number(auth.protocol.ok_or(StatusCode::MissingParameter)?)?;
        let rp_id = prompt.rp_id.unwrap_or_default();
        self.use_pin_uv_auth_token(
            protocol,
            &auth.param,
            client_data_hash,
            required,
            rp_id,
            consume,
        )
        .map(Some)
    }
}
