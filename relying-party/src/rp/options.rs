//! What a caller asks of a registration: the JSON API's and the FIDO conformance API's
//! `ServerPublicKeyCredentialCreationOptionsRequest`, checked into the values the options carry.

use serde::Deserialize;
use serde_json::Value;

use crate::error::RpError;

/// The body of a registration options request (the JSON API and the FIDO conformance
/// `ServerPublicKeyCredentialCreationOptionsRequest`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationOptionsRequest {
    /// The new account's username (ignored when signed in).
    #[serde(default)]
    pub username: String,
    /// Its display name (the username when absent).
    #[serde(default)]
    pub display_name: Option<String>,
    /// `none`, `indirect`, `direct` or `enterprise`.
    #[serde(default)]
    pub attestation: Option<String>,
    /// Which authenticators, discoverable or not, with or without user verification.
    #[serde(default)]
    pub authenticator_selection: AuthenticatorSelection,
    /// Extension inputs to pass to the client, echoed in the options.
    #[serde(default)]
    pub extensions: Option<Value>,
}

/// `AuthenticatorSelectionCriteria` as a caller sends it. `residentKey` is a string in Level 2
/// and later, a boolean in the FIDO conformance API's older examples.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// `required`, `preferred`, `discouraged` (or `true`/`false`).
    #[serde(default)]
    pub resident_key: Option<Value>,
    /// Level 1's boolean, used when `residentKey` is absent.
    #[serde(default)]
    pub require_resident_key: Option<bool>,
    /// `required`, `preferred` or `discouraged`.
    #[serde(default)]
    pub user_verification: Option<String>,
    /// `platform` or `cross-platform`.
    #[serde(default)]
    pub authenticator_attachment: Option<String>,
}

/// An [`AuthenticatorSelection`] checked, with defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ResolvedSelection {
    pub(super) resident_key: &'static str,
    pub(super) user_verification: &'static str,
    pub(super) authenticator_attachment: Option<&'static str>,
}

/// `value` as one of `allowed`, or `invalid_option` naming the member.
fn one_of(member: &str, value: &str, allowed: &[&'static str]) -> Result<&'static str, RpError> {
    allowed
        .iter()
        .copied()
        .find(|a| *a == value)
        .ok_or_else(|| {
            RpError::invalid(
                "invalid_option",
                format!("authenticatorSelection.{member} {value:?} is not one of {allowed:?}"),
            )
        })
}

impl AuthenticatorSelection {
    /// Checks every member; `default_uv` is the server's user-verification preference.
    pub(super) fn resolve(&self, default_uv: &'static str) -> Result<ResolvedSelection, RpError> {
        const LEVELS: &[&str] = &["required", "preferred", "discouraged"];
        // `null` counts as absent.
        let resident_key_value = self.resident_key.as_ref().filter(|v| !v.is_null());
        let resident_key = match (resident_key_value, self.require_resident_key) {
            (Some(Value::String(s)), _) => one_of("residentKey", s, LEVELS)?,
            (Some(Value::Bool(true)), _) | (None, Some(true)) => "required",
            (Some(Value::Bool(false)), _) | (None, Some(false)) => "discouraged",
            (None, None) => "preferred",
            (Some(other), _) => {
                return Err(RpError::invalid(
                    "invalid_option",
                    format!("authenticatorSelection.residentKey {other} is not a string"),
                ));
            }
        };
        let user_verification = match &self.user_verification {
            Some(uv) => one_of("userVerification", uv, LEVELS)?,
            None => default_uv,
        };
        let authenticator_attachment = self
            .authenticator_attachment
            .as_deref()
            .map(|a| {
                one_of(
                    "authenticatorAttachment",
                    a,
                    &["platform", "cross-platform"],
                )
            })
            .transpose()?;
        Ok(ResolvedSelection {
            resident_key,
            user_verification,
            authenticator_attachment,
        })
    }
}
