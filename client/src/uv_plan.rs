//! How a platform verifies the user for one makeCredential/getAssertion (CTAP 2.1 §6.1.2,
//! §6.2.2, §6.5): the built-in method, a PIN token, setting a first PIN, or none — decided from
//! getInfo, the relying party's requirement and what the platform's prompt can collect.
//!
//! This is the planning only. Asking the person (the PIN dialog, the first-PIN dialog) is the
//! caller's user interface: the bridge's prompts, the app APIs' dialogs.

use passgate_proto::ctap::client_pin;
use passgate_proto::ctap::{Permissions, StatusCode};
use passgate_proto::webauthn::UserVerification;

use crate::error::ClientError;
use crate::info::AuthenticatorInfo;
use crate::pin::{self, SharedSecret};

/// What the platform's user interface can do about a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinAbility {
    /// It can ask for the authenticator's PIN.
    pub collects_pin: bool,
    /// It can have the person choose a first PIN (twice) when none is set.
    pub sets_pin: bool,
}

/// How one ceremony verifies the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvMethod {
    /// It does not (the requirement allows it, or nothing here can verify and it is not
    /// required).
    None,
    /// The authenticator's built-in method (`options.uv = true`).
    BuiltIn,
    /// No PIN is set and verification is required: set a first PIN, then get a token with it.
    SetFirstPin,
    /// A pinUvAuthToken obtained with the PIN (getPinUvAuthTokenUsingPinWithPermissions).
    Pin,
    /// Verification is required and nothing here can do it.
    Impossible,
}

/// Decides how to verify the user. `needs_uv`: the authenticator will refuse the request
/// without verification (e.g. a discoverable credential on a PIN-protected authenticator).
pub fn plan(
    info: &AuthenticatorInfo,
    requirement: UserVerification,
    needs_uv: bool,
    ability: PinAbility,
) -> UvMethod {
    let must = requirement == UserVerification::Required || needs_uv || info.always_uv;
    if requirement == UserVerification::Discouraged && !must {
        return UvMethod::None;
    }
    if info.uv_builtin() {
        return UvMethod::BuiltIn;
    }
    if info.client_pin == Some(false) && must && ability.sets_pin {
        // Verification is required and no PIN exists yet: the platform sets one (as browsers
        // do) instead of failing, and that PIN verifies this ceremony.
        return UvMethod::SetFirstPin;
    }
    if info.client_pin == Some(true) && ability.collects_pin {
        return UvMethod::Pin;
    }
    if must {
        UvMethod::Impossible
    } else {
        UvMethod::None
    }
}

/// Why the PIN cannot be used now, from a getPINRetries answer: no retries left
/// (PIN_BLOCKED), or three wrong ones in a row until the authenticator restarts
/// (`powerCycleState`, PIN_AUTH_BLOCKED). A PIN that cannot work is not asked for.
pub fn pin_unusable(retries: &client_pin::Response) -> Option<StatusCode> {
    if retries.pin_retries == Some(0) {
        return Some(StatusCode::PinBlocked);
    }
    (retries.power_cycle_state == Some(true)).then_some(StatusCode::PinAuthBlocked)
}

/// getPinUvAuthTokenUsingPinWithPermissions for `permissions` on `rp_id`.
pub fn token_request(
    secret: &SharedSecret,
    pin_text: &str,
    permissions: Permissions,
    rp_id: &str,
) -> Result<client_pin::Request, ClientError> {
    pin::token_request(secret, pin_text, permissions, rp_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(client_pin: Option<bool>, uv: Option<bool>, always_uv: bool) -> AuthenticatorInfo {
        let mut info = AuthenticatorInfo::parse(&ciborium::value::Value::Map(Vec::new()));
        info.client_pin = client_pin;
        info.uv = uv;
        info.always_uv = always_uv;
        info
    }

    const BOTH: PinAbility = PinAbility {
        collects_pin: true,
        sets_pin: true,
    };
    const NEITHER: PinAbility = PinAbility {
        collects_pin: false,
        sets_pin: false,
    };

    #[test]
    fn discouraged_skips_verification_unless_the_authenticator_insists() {
        let pin_set = info(Some(true), None, false);
        assert_eq!(
            plan(&pin_set, UserVerification::Discouraged, false, BOTH),
            UvMethod::None
        );
        assert_eq!(
            plan(&pin_set, UserVerification::Discouraged, true, BOTH),
            UvMethod::Pin
        );
        let always = info(Some(true), None, true);
        assert_eq!(
            plan(&always, UserVerification::Discouraged, false, BOTH),
            UvMethod::Pin
        );
    }

    #[test]
    fn built_in_verification_wins_over_the_pin() {
        let both = info(Some(true), Some(true), false);
        assert_eq!(
            plan(&both, UserVerification::Preferred, false, BOTH),
            UvMethod::BuiltIn
        );
    }

    #[test]
    fn a_first_pin_is_set_only_when_verification_is_required() {
        let no_pin = info(Some(false), None, false);
        assert_eq!(
            plan(&no_pin, UserVerification::Required, false, BOTH),
            UvMethod::SetFirstPin
        );
        assert_eq!(
            plan(&no_pin, UserVerification::Preferred, false, BOTH),
            UvMethod::None
        );
        assert_eq!(
            plan(&no_pin, UserVerification::Required, false, NEITHER),
            UvMethod::Impossible
        );
    }

    #[test]
    fn a_pin_that_cannot_be_collected_is_impossible_only_when_required() {
        let pin_set = info(Some(true), None, false);
        assert_eq!(
            plan(&pin_set, UserVerification::Preferred, false, NEITHER),
            UvMethod::None
        );
        assert_eq!(
            plan(&pin_set, UserVerification::Required, false, NEITHER),
            UvMethod::Impossible
        );
    }

    #[test]
    fn unusable_pins_are_named_by_their_status() {
        let mut retries = client_pin::Response {
            pin_retries: Some(0),
            ..client_pin::Response::default()
        };
        assert_eq!(pin_unusable(&retries), Some(StatusCode::PinBlocked));
        retries.pin_retries = Some(5);
        retries.power_cycle_state = Some(true);
        assert_eq!(pin_unusable(&retries), Some(StatusCode::PinAuthBlocked));
        retries.power_cycle_state = Some(false);
        assert_eq!(pin_unusable(&retries), None);
    }
}
