//! authenticatorClientPIN (CTAP 2.1 §6.5): PIN set/change, PIN retries with the power-cycle
//! rule, and pinUvAuthTokens with permissions and RP ID binding.
//!
//! The PIN is never stored: only a PBKDF2-HMAC-SHA256 hash (random salt) of the
//! `LEFT(SHA-256(pin), 16)` value the protocol transmits, inside the encrypted state store.
//! The retry counter is written durably *before* a PIN hash is compared, so cutting power
//! during a guess never gives a free try.

use std::time::Duration;

use ciborium::value::Value;
use zeroize::Zeroizing;

use passgate_proto::ctap::Permissions;
use passgate_proto::ctap::client_pin::{Request, SubCommand};

use super::cbor::{encode, int_map};
use super::pin_protocol::{KeyAgreement, Protocol};
use super::{Authenticator, CommandResult, StatusCode};
use crate::api::key_store::{KeyRelease, PinCheckError};
use crate::api::user_verifier::{
    Interaction, Prompt, PromptAction, UserVerified, VerificationMethod,
};

mod state;
mod token;

use state::Token;
pub use state::{PinRuntime, PinState};
pub(crate) use token::PinUvAuthInput;

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

    /// What a power cycle does to PIN/UV auth, without stopping the rest of the
    /// authenticator: new key-agreement keys, no pinUvAuthToken, and the count of wrong PINs
    /// in a row cleared, which lifts PIN_AUTH_BLOCKED (CTAP 2.1 §6.5.2's power-up
    /// initialisation). The durable retry count is untouched: eight wrong PINs in all still
    /// block the PIN. For a platform that runs this authenticator in its own process and can
    /// only "unplug" it this way (`passgate demo`'s unlock after three wrong PINs).
    pub fn power_cycle(&mut self) {
        self.regenerate_key_agreement();
        self.pin.token = None;
        self.pin.mismatches = 0;
        tracing::info!("PIN/UV auth state power-cycled: key agreement renewed, token dropped");
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
        let Request {
            protocol,
            sub_command,
            key_agreement,
            pin_uv_auth_param: auth_param,
            new_pin_enc,
            pin_hash_enc,
            permissions,
            rp_id,
        } = Request::decode_strict(body)?;
        let protocol = || -> Result<Protocol, StatusCode> {
            Protocol::from_number(protocol.ok_or(StatusCode::MissingParameter)?)
        };
        match sub_command {
            SubCommand::GET_PIN_RETRIES => {
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
            SubCommand::GET_KEY_AGREEMENT => {
                protocol()?;
                let ka = self.pin.key_agreement.as_ref().ok_or(StatusCode::Other)?;
                Ok(encode(&int_map([(1, Some(ka.cose_public_key()))])))
            }
            SubCommand::SET_PIN => {
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
            SubCommand::CHANGE_PIN => {
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
            SubCommand::GET_PIN_TOKEN | SubCommand::GET_TOKEN_USING_PIN => {
                let protocol = protocol()?;
                let (Some(ka), Some(pin_hash_enc)) = (key_agreement, pin_hash_enc) else {
                    return Err(StatusCode::MissingParameter);
                };
                let (permissions, rp_id) = if sub_command == SubCommand::GET_PIN_TOKEN {
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
            SubCommand::GET_TOKEN_USING_UV => {
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
            SubCommand::GET_UV_RETRIES => {
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

    fn check_permissions(&mut self, permissions: Permissions) -> Result<u8, StatusCode> {
        let permissions = permissions.bits();
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
}
