//! The WebAuthn Level 3 JSON option forms (`PublicKeyCredentialCreationOptionsJSON`,
//! `PublicKeyCredentialRequestOptionsJSON`), as `PublicKeyCredential.parse*OptionsFromJSON`
//! reads them: required members must be present, unknown members are ignored, binary values
//! are base64url strings.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::b64;
use crate::error::BridgeError;

/// `PublicKeyCredentialCreationOptionsJSON`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationOptions {
    /// The relying party.
    pub rp: RpEntity,
    /// The account.
    pub user: UserEntity,
    /// base64url challenge.
    pub challenge: String,
    /// Acceptable algorithms, most preferred first.
    pub pub_key_cred_params: Vec<CredentialParameter>,
    /// Milliseconds.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Credentials that must not be created again.
    #[serde(default)]
    pub exclude_credentials: Option<Vec<CredentialDescriptor>>,
    /// Authenticator requirements.
    #[serde(default)]
    pub authenticator_selection: Option<AuthenticatorSelection>,
    /// Hints (informational here: this bridge has one platform authenticator).
    #[serde(default)]
    pub hints: Option<Vec<String>>,
    /// Attestation conveyance: "none" (default), "indirect", "direct", "enterprise".
    #[serde(default)]
    pub attestation: Option<String>,
    /// Preferred attestation statement formats.
    #[serde(default)]
    pub attestation_formats: Option<Vec<String>>,
    /// Client extension inputs.
    #[serde(default)]
    pub extensions: Option<ExtensionInputs>,
}

/// `PublicKeyCredentialRequestOptionsJSON`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOptions {
    /// base64url challenge.
    pub challenge: String,
    /// Milliseconds.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// The RP ID (default: the caller's host).
    #[serde(default)]
    pub rp_id: Option<String>,
    /// Acceptable credentials; empty for a discoverable sign-in.
    #[serde(default)]
    pub allow_credentials: Option<Vec<CredentialDescriptor>>,
    /// "required", "preferred" (default) or "discouraged".
    #[serde(default)]
    pub user_verification: Option<String>,
    /// Hints.
    #[serde(default)]
    pub hints: Option<Vec<String>>,
    /// Client extension inputs.
    #[serde(default)]
    pub extensions: Option<ExtensionInputs>,
}

/// `PublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, Deserialize)]
pub struct RpEntity {
    /// The RP ID (default: the caller's host).
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
}

/// `PublicKeyCredentialUserEntityJSON`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEntity {
    /// base64url user handle (1 to 64 bytes).
    pub id: String,
    /// Account name.
    pub name: String,
    /// Display name.
    pub display_name: String,
}

/// `PublicKeyCredentialParameters`.
#[derive(Debug, Clone, Deserialize)]
pub struct CredentialParameter {
    /// "public-key".
    #[serde(rename = "type")]
    pub kind: String,
    /// COSE algorithm identifier.
    pub alg: i64,
}

/// `PublicKeyCredentialDescriptorJSON`.
#[derive(Debug, Clone, Deserialize)]
pub struct CredentialDescriptor {
    /// "public-key".
    #[serde(rename = "type")]
    pub kind: String,
    /// base64url credential ID.
    pub id: String,
    /// Transports hint.
    #[serde(default)]
    pub transports: Option<Vec<String>>,
}

/// `AuthenticatorSelectionCriteria`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// "platform" or "cross-platform".
    #[serde(default)]
    pub authenticator_attachment: Option<String>,
    /// "discouraged", "preferred" or "required".
    #[serde(default)]
    pub resident_key: Option<String>,
    /// The Level 1 form of `residentKey: "required"`.
    #[serde(default)]
    pub require_resident_key: Option<bool>,
    /// "required", "preferred" (default) or "discouraged".
    #[serde(default)]
    pub user_verification: Option<String>,
}

/// `AuthenticationExtensionsClientInputsJSON`: the extensions this client implements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionInputs {
    /// credProps: report whether the credential is discoverable.
    #[serde(default)]
    pub cred_props: Option<bool>,
    /// prf: pseudo-random values from the credential (over CTAP hmac-secret).
    #[serde(default)]
    pub prf: Option<PrfInputs>,
}

/// `AuthenticationExtensionsPRFInputsJSON`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrfInputs {
    /// Salts for any credential.
    #[serde(default)]
    pub eval: Option<PrfValues>,
    /// Salts per base64url credential ID.
    #[serde(default)]
    pub eval_by_credential: Option<BTreeMap<String, PrfValues>>,
}

/// `AuthenticationExtensionsPRFValuesJSON`.
#[derive(Debug, Clone, Deserialize)]
pub struct PrfValues {
    /// base64url input.
    pub first: String,
    /// Optional second base64url input.
    #[serde(default)]
    pub second: Option<String>,
}

/// A user-verification requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerification {
    /// Fail unless the user is verified.
    Required,
    /// Verify when the authenticator can.
    Preferred,
    /// Do not verify unless the authenticator insists.
    Discouraged,
}

impl UserVerification {
    /// Parses the member; unknown values are ignored (WebAuthn enums are open) and mean the
    /// default, "preferred".
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("required") => Self::Required,
            Some("discouraged") => Self::Discouraged,
            _ => Self::Preferred,
        }
    }
}

/// Decodes a base64url member, `TypeError` naming it when it is not base64url.
pub fn decode_member(value: &str, member: &str) -> Result<Vec<u8>, BridgeError> {
    b64::decode(value).ok_or_else(|| BridgeError::type_error(format!("{member} is not base64url")))
}

/// Parses a JSON value into options, `TypeError` on any mismatch.
pub fn parse<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    what: &str,
) -> Result<T, BridgeError> {
    T::deserialize(value).map_err(|e| BridgeError::type_error(format!("{what}: {e}")))
}

/// The decoded `public-key` descriptors of a list (others are skipped, as clients do).
pub fn descriptor_ids(
    list: Option<&[CredentialDescriptor]>,
    member: &str,
) -> Result<Vec<Vec<u8>>, BridgeError> {
    let mut out = Vec::new();
    for d in list.unwrap_or_default() {
        let id = decode_member(&d.id, member)?;
        if d.kind == "public-key" {
            out.push(id);
        }
    }
    Ok(out)
}
