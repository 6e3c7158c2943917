//! User verification in a ceremony: what [`passgate_client::uv_plan`] decides (the built-in
//! method, a PIN token, a first PIN, or none), carried out with the bridge's prompts (asking
//! the PIN again after a wrong one, setting a first PIN when none exists).

use std::time::Instant;

use passgate_client::uv_plan::{self, PinAbility, UvMethod};

use super::*;

/// How a ceremony verifies the user.
pub(super) enum Uv {
    /// It does not.
    None,
    /// The authenticator's built-in method (`options.uv = true`).
    BuiltIn,
    /// A pinUvAuthToken obtained with the PIN in this ceremony.
    Token(Zeroizing<Vec<u8>>),
    /// A pinUvAuthToken kept from an earlier PIN entry (within the window, for this RP ID
    /// and permission, not yet used by the authenticator).
    Kept(Zeroizing<Vec<u8>>),
}

impl Uv {
    /// The token that authorises the request, if any.
    pub(super) fn token(&self) -> Option<&[u8]> {
        match self {
            Self::Token(token) | Self::Kept(token) => Some(token),
            Self::None | Self::BuiltIn => None,
        }
    }
}

/// Who a PIN token is for: shown in prompts and bound into the token.
pub(super) struct UvContext<'a> {
    pub(super) origin: &'a str,
    pub(super) rp_id: &'a str,
    pub(super) purpose: Purpose<'a>,
    pub(super) permission: Permissions,
}

/// getPinUvAuthTokenUsingPinWithPermissions for `context`'s permission and RP ID.
pub(super) fn token_request(
    secret: &SharedSecret,
    pin: &str,
    context: &UvContext<'_>,
) -> Result<client_pin::Request, BridgeError> {
    Ok(uv_plan::token_request(
        secret,
        pin,
        context.permission,
        context.rp_id,
    )?)
}

impl Ceremony<'_> {
    /// The page's error when the person gave no answer in the host's prompt: declining,
    /// the prompt's own timeout, the page's abort (or the ceremony's timeout) and a prompt
    /// that could not be shown each say so in their own words.
    pub(super) fn unanswered(&self, why: Unanswered, what: &str) -> BridgeError {
        if self.interaction.is_cancelled() {
            return self.cancelled();
        }
        match why {
            Unanswered::Declined => {
                BridgeError::not_allowed(format!("you declined on passgate's prompt ({what})"))
            }
            Unanswered::TimedOut(Some(seconds)) => BridgeError::not_allowed(format!(
                "no answer within {seconds} s on passgate's prompt ({what})"
            )),
            Unanswered::TimedOut(None) => {
                BridgeError::not_allowed(format!("no answer in time on passgate's prompt ({what})"))
            }
            Unanswered::Cancelled => self.cancelled(),
            Unanswered::Unavailable => BridgeError::not_allowed(format!(
                "passgate's prompt could not be shown ({what}): see passgate's log"
            )),
        }
    }

    /// Decides how to verify the user and, for the PIN, gets a token for `permission` on
    /// the RP ID. `needs_uv`: the authenticator will refuse the request without verification.
    pub(super) fn plan_uv(
        &mut self,
        info: &AuthenticatorInfo,
        requirement: UserVerification,
        needs_uv: bool,
        context: &UvContext<'_>,
        shared: &mut Option<SharedSecret>,
    ) -> Result<Uv, BridgeError> {
        let ability = PinAbility {
            collects_pin: self.bridge.ui.collects_pin(),
            sets_pin: self.bridge.ui.sets_pin(),
        };
        match uv_plan::plan(info, requirement, needs_uv, ability) {
            UvMethod::None => Ok(Uv::None),
            UvMethod::BuiltIn => Ok(Uv::BuiltIn),
            UvMethod::SetFirstPin => {
                let pin = self.set_first_pin(info, context)?;
                let secret = self.shared_secret()?;
                let response = self.send(&token_request(&secret, &pin, context)?)?;
                let token = secret.token(&response)?;
                *shared = Some(secret);
                self.keep_token(&token, info, context);
                Ok(Uv::Token(token))
            }
            UvMethod::Pin => {
                let kept = self.bridge.tokens().token_for(
                    context.permission,
                    context.rp_id,
                    &info.aaguid,
                    Instant::now(),
                );
                match kept {
                    Some(token) => {
                        tracing::debug!(
                            rp_id = context.rp_id,
                            "a PIN token from within the window authorises this request"
                        );
                        Ok(Uv::Kept(token))
                    }
                    None => self.pin_token(info, context, shared),
                }
            }
            UvMethod::Impossible => Err(BridgeError::not_allowed(
                "user verification is required, but the authenticator has no built-in method and no PIN can be entered here",
            )),
        }
    }

    /// Asks for the PIN and gets a token with it. A wrong PIN is asked again, as browsers
    /// do, until the authenticator wants a power cycle (three in a row) or the PIN is blocked.
    fn pin_token(
        &mut self,
        info: &AuthenticatorInfo,
        context: &UvContext<'_>,
        shared: &mut Option<SharedSecret>,
    ) -> Result<Uv, BridgeError> {
        // A PIN that cannot work now is not asked for: three wrong ones in a row block PIN
        // use until the authenticator restarts (powerCycleState), eight block the PIN. Where
        // the host can restart the authenticator, the person may unlock the first.
        let mut after_wrong_pin = None;
        if let Some(status) = self.pin_unusable() {
            if !self.offer_unlock(status, context)? {
                return Err(BridgeError::from_status(status));
            }
            // The last PIN entered was wrong: the dialog says how many attempts are left.
            after_wrong_pin = Some(self.pin_retries());
        }
        let mut last = StatusCode::PinInvalid.byte();
        let mut attempts = 0;
        while attempts < PIN_ATTEMPTS {
            attempts += 1;
            let request = PinRequest {
                origin: context.origin,
                rp_id: context.rp_id,
                purpose: context.purpose,
                after_wrong_pin,
                label: self.label(),
                interaction: &self.interaction,
            };
            let pin = match self.bridge.ui.pin(&request) {
                Ok(pin) => pin,
                Err(why) => return Err(self.unanswered(why, "the PIN was not entered")),
            };
            // A wrong PIN makes the authenticator pick a new key agreement: a fresh
            // shared secret for every attempt.
            let secret = self.shared_secret()?;
            let request = token_request(&secret, &pin, context)?;
            // The token is kept even when the page gave up while the authenticator made it:
            // the PIN the person typed then still counts for a retry within the window.
            let response = self.exchange(
                Command::ClientPin.byte(),
                ctap::Request::to_value(&request).as_ref(),
            )?;
            match response {
                Ok(response) => {
                    let response = <client_pin::Response as ctap::Response>::from_value(response)
                        .map_err(ClientError::from)?;
                    let token = secret.token(&response)?;
                    *shared = Some(secret);
                    self.keep_token(&token, info, context);
                    if self.interaction.is_cancelled() {
                        return Err(self.cancelled());
                    }
                    return Ok(Uv::Token(token));
                }
                Err(status) if status == StatusCode::PinInvalid.byte() => {
                    self.bridge.tokens().forget_on(status);
                    last = status;
                    after_wrong_pin = Some(self.pin_retries());
                }
                Err(status) if status == StatusCode::PinAuthBlocked.byte() => {
                    self.bridge.tokens().forget_on(status);
                    if !self.offer_unlock(status, context)? {
                        return Err(BridgeError::from_status(status));
                    }
                    // Unlocked: the PIN is asked again, as after a restart.
                    attempts = 0;
                    after_wrong_pin = Some(self.pin_retries());
                }
                Err(status) => return Err(BridgeError::from_status(status)),
            }
        }
        Err(BridgeError::from_status(last))
    }

    /// PIN_AUTH_BLOCKED where the host can power-cycle the authenticator: offers the person
    /// to unlock, and after their yes (and the delay since the block) power-cycles it.
    /// `Ok(false)` when nothing is offered (another status, no power cycle here, a UI without
    /// the dialog): the caller fails as before.
    fn offer_unlock(&mut self, status: u8, context: &UvContext<'_>) -> Result<bool, BridgeError> {
        if status != StatusCode::PinAuthBlocked.byte() {
            return Ok(false);
        }
        let Some((power_cycle, delay)) = self.bridge.power_cycle.clone() else {
            return Ok(false);
        };
        let blocked_at = *self
            .bridge
            .blocked_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(Instant::now);
        let remaining = delay.saturating_sub(blocked_at.elapsed());
        let retries = self.pin_retries();
        let request = UnlockRequest {
            origin: context.origin,
            rp_id: context.rp_id,
            purpose: context.purpose,
            retries,
            delay_seconds: remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0),
            label: self.label(),
            interaction: &self.interaction,
        };
        match self.bridge.ui.unlock(&request) {
            Ok(()) => {}
            Err(Unanswered::Unavailable) => return Ok(false),
            Err(why) => return Err(self.unanswered(why, "the PIN stayed locked")),
        }
        // The delay slows guessing: three PINs per unlock, and the durable count (eight in
        // all) still blocks the PIN for good.
        while blocked_at.elapsed() < delay {
            if self.interaction.is_cancelled() {
                return Err(self.cancelled());
            }
            std::thread::sleep(
                delay
                    .saturating_sub(blocked_at.elapsed())
                    .min(Duration::from_millis(100)),
            );
        }
        power_cycle().map_err(|e| {
            BridgeError::unknown(format!("passgate's authenticator could not restart: {e}"))
        })?;
        self.bridge.tokens().clear();
        *self
            .bridge
            .blocked_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        tracing::info!("the person unlocked the PIN: the authenticator was power-cycled");
        Ok(true)
    }

    /// Keeps a token just obtained with the PIN, for the window.
    fn keep_token(&self, token: &[u8], info: &AuthenticatorInfo, context: &UvContext<'_>) {
        self.bridge.tokens().keep(
            token,
            context.permission,
            context.rp_id,
            &info.aaguid,
            Instant::now(),
        );
    }

    /// Sends the makeCredential/getAssertion `request` that `uv` authorises (`authorise` puts
    /// a pinUvAuthParam in it). A kept token the authenticator refuses (PIN_AUTH_INVALID: its
    /// own lifetime ended, it restarted, another token replaced it) is dropped, and the PIN is
    /// asked for once, as if no token had been kept. Afterwards the kept token holds what CTAP
    /// leaves it: nothing of mc/ga once the authenticator collected presence with it.
    pub(super) fn call_verified<Q: ctap::Request>(
        &mut self,
        request: &mut Q,
        uv: &mut Uv,
        info: &AuthenticatorInfo,
        context: &UvContext<'_>,
        client_data_hash: &[u8],
        authorise: fn(&mut Q, ctap::PinUvAuth),
    ) -> Result<Value, BridgeError> {
        let mut reply = self.call_status(Q::COMMAND.byte(), request.to_value().as_ref());
        if matches!(reply, Ok(Err(status)) if status == StatusCode::PinAuthInvalid.byte())
            && matches!(uv, Uv::Kept(_))
        {
            self.bridge.tokens().clear();
            tracing::debug!("the authenticator refused the kept PIN token: asking for the PIN");
            // A separate shared secret: any hmac-secret input in the request keeps its own.
            *uv = self.pin_token(info, context, &mut None)?;
            if let Some(token) = uv.token() {
                authorise(request, pin::pin_uv_auth(token, client_data_hash));
            }
            reply = self.call_status(Q::COMMAND.byte(), request.to_value().as_ref());
        }
        if uv.token().is_some() {
            // Whatever the answer, the authenticator may have used the token (it does so
            // before it looks for presence): never offer its mc/ga again.
            self.bridge.tokens().used_with_presence();
        }
        let reply = reply?;
        if let Err(status) = reply {
            self.bridge.tokens().forget_on(status);
        }
        reply.map_err(BridgeError::from_status)
    }

    /// Why the PIN cannot be used now, when the authenticator says (getPINRetries:
    /// `powerCycleState`, no retries left): PIN_AUTH_BLOCKED or PIN_BLOCKED.
    pub(super) fn pin_unusable(&mut self) -> Option<u8> {
        let response: client_pin::Response = self
            .send(&pin::subcommand_request(SubCommand::GET_PIN_RETRIES))
            .ok()?;
        uv_plan::pin_unusable(&response).map(StatusCode::byte)
    }

    /// How many PIN attempts are left (authenticatorClientPIN getPINRetries), if it says.
    pub(super) fn pin_retries(&mut self) -> Option<u64> {
        let response: client_pin::Response = self
            .send(&pin::subcommand_request(SubCommand::GET_PIN_RETRIES))
            .ok()?;
        response.pin_retries.map(u64::from)
    }

    /// Asks the person for a first PIN (twice, in the host's prompt) and sets it.
    pub(super) fn set_first_pin(
        &mut self,
        info: &AuthenticatorInfo,
        context: &UvContext<'_>,
    ) -> Result<Zeroizing<String>, BridgeError> {
        let mut problem: Option<String> = None;
        for _ in 0..PIN_ATTEMPTS {
            let request = NewPinRequest {
                origin: context.origin,
                rp_id: context.rp_id,
                purpose: context.purpose,
                min_length: info.min_pin_length,
                problem: problem.as_deref(),
                label: self.label(),
                interaction: &self.interaction,
            };
            let pin = match self.bridge.ui.new_pin(&request) {
                Ok(pin) => pin,
                Err(why) => {
                    return Err(
                        self.unanswered(why, "user verification is required and no PIN was chosen")
                    );
                }
            };
            let length = pin.chars().count();
            if length < info.min_pin_length {
                problem = Some(format!(
                    "The PIN must have at least {} characters.",
                    info.min_pin_length
                ));
                continue;
            }
            if pin.len() > 63 {
                problem = Some("The PIN must be at most 63 bytes long.".to_owned());
                continue;
            }
            let secret = self.shared_secret()?;
            match self
                .send_status::<_, client_pin::Response>(&pin::set_pin_request(&secret, &pin)?)?
            {
                Ok(_) => {
                    tracing::info!(
                        rp_id = context.rp_id,
                        "the authenticator's first PIN was set"
                    );
                    return Ok(pin);
                }
                Err(status) if status == StatusCode::PinPolicyViolation.byte() => {
                    problem = Some(
                        "The authenticator refused this PIN (too short or too simple).".to_owned(),
                    );
                }
                Err(status) => return Err(BridgeError::from_status(status)),
            }
        }
        Err(BridgeError::not_allowed(
            "user verification is required and no acceptable PIN was chosen",
        ))
    }

    /// The hmac-secret extension input for PRF salts.
    pub(super) fn hmac_secret_input(
        &mut self,
        shared: &mut Option<SharedSecret>,
        salts: &[u8],
    ) -> Result<ctap::extensions::HmacSecretInput, BridgeError> {
        if shared.is_none() {
            *shared = Some(self.shared_secret()?);
        }
        Ok(shared
            .as_ref()
            .ok_or_else(|| BridgeError::unknown("no shared secret"))?
            .hmac_secret_input(salts)?)
    }
}
