//! pinUvAuthToken checks for the other commands: makeCredential/getAssertion's
//! pinUvAuthParam, credentialManagement, largeBlobs and config tokens, built-in UV.

use passgate_proto::ctap::PinUvAuth;

use super::super::pin_protocol::Protocol;
use super::super::user_error_status;
use super::{Authenticator, StatusCode, TOKEN_LIFETIME, permission};
use crate::api::key_store::KeyRelease;
use crate::api::user_verifier::{Interaction, Prompt, UserActionError, UserVerified};

/// The pinUvAuthParam of a makeCredential/getAssertion request, as the steps see it.
pub(crate) enum PinUvAuthInput<'a> {
    /// None sent.
    Absent,
    /// A zero-length pinUvAuthParam: "is a PIN set?" after a touch.
    Probe,
    /// A MAC with its protocol number as sent.
    Mac(&'a PinUvAuth),
}

impl<'a> PinUvAuthInput<'a> {
    /// The input of a request's decoded pinUvAuth and probe flag.
    pub(crate) fn of(auth: Option<&'a PinUvAuth>, probe: bool) -> Self {
        match (auth, probe) {
            (_, true) => Self::Probe,
            (Some(auth), false) => Self::Mac(auth),
            (None, false) => Self::Absent,
        }
    }
}

/// What a verified pinUvAuthParam grants a makeCredential/getAssertion.
pub(crate) struct TokenUse {
    pub verified: Option<UserVerified>,
    /// The key release of the token's verification, if the key store gave one.
    pub release: Option<KeyRelease>,
}

impl Authenticator {
    /// Checks a makeCredential/getAssertion pinUvAuthParam against the current token and
    /// consumes the token's verification, as §6.1.2 / §6.2.2 require.
    pub(in crate::ctap) fn use_pin_uv_auth_token(
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
    pub(in crate::ctap) fn verify_management_token(
        &mut self,
        protocol: Protocol,
        param: &[u8],
        message: &[u8],
    ) -> Result<Option<String>, StatusCode> {
        self.verify_token(protocol, param, message, permission::CM)
    }

    /// Whether every makeCredential/getAssertion must verify the user: the alwaysUv setting,
    /// or a key store that signs only after verification (the TPM store once a PIN is set).
    pub(in crate::ctap) fn always_uv(&self) -> Result<bool, StatusCode> {
        Ok(self.pin.state()?.always_uv || self.env.key_store.requires_uv())
    }

    /// Whether makeCredential/getAssertion/config/largeBlobs writes need user verification:
    /// a PIN is set or built-in verification is enrolled.
    pub(in crate::ctap) fn uv_protected(&self) -> Result<bool, StatusCode> {
        let status = self.env.user.status();
        Ok(self.pin.state()?.is_set() || (status.available && status.enrolled))
    }

    /// Checks a pinUvAuthParam over `message` against a live token holding `required`.
    /// Returns the RP ID the token is bound to, if any; the token stays usable.
    pub(in crate::ctap) fn verify_token(
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
    pub(in crate::ctap) fn verify_builtin(
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
    pub(in crate::ctap) fn authorize_pin_uv_auth(
        &mut self,
        input: PinUvAuthInput<'_>,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
        client_data_hash: &[u8],
        required: u8,
        consume: bool,
    ) -> Result<Option<TokenUse>, StatusCode> {
        let auth = match input {
            PinUvAuthInput::Absent => return Ok(None),
            PinUvAuthInput::Mac(auth) => auth,
            PinUvAuthInput::Probe => {
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
        };
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
