//! WebAuthn Level 3 JSON forms: the options a page hands `navigator.credentials` in JSON
//! (`PublicKeyCredentialCreationOptionsJSON`, `PublicKeyCredentialRequestOptionsJSON`, as
//! `PublicKeyCredential.parse*OptionsFromJSON` reads them: required members must be present,
//! unknown members are ignored, binary values are base64url strings) and the credential a client
//! hands back (`PublicKeyCredential.toJSON()`: `RegistrationResponseJSON`,
//! `AuthenticationResponseJSON`).
//!
//! Binary option members stay base64url text here so that a client can name the member that is
//! not base64url in its error; the response forms hold bytes and write them as base64url.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `PublicKeyCredentialCreationOptionsJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Credentials that must not be created again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_credentials: Option<Vec<CredentialDescriptor>>,
    /// Authenticator requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_selection: Option<AuthenticatorSelection>,
    /// Hints (informational here: this bridge has one platform authenticator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<Vec<String>>,
    /// Attestation conveyance: "none" (default), "indirect", "direct", "enterprise".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    /// Preferred attestation statement formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_formats: Option<Vec<String>>,
    /// Client extension inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<ExtensionInputs>,
}

/// `PublicKeyCredentialRequestOptionsJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOptions {
    /// base64url challenge.
    pub challenge: String,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// The RP ID (default: the caller's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rp_id: Option<String>,
    /// Acceptable credentials; empty for a discoverable sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<Vec<CredentialDescriptor>>,
    /// "required", "preferred" (default) or "discouraged".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verification: Option<String>,
    /// Hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<Vec<String>>,
    /// Client extension inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<ExtensionInputs>,
}

/// `PublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpEntity {
    /// The RP ID (default: the caller's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
}

/// `PublicKeyCredentialUserEntityJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialParameter {
    /// "public-key".
    #[serde(rename = "type")]
    pub kind: String,
    /// COSE algorithm identifier.
    pub alg: i64,
}

/// `PublicKeyCredentialDescriptorJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDescriptor {
    /// "public-key".
    #[serde(rename = "type")]
    pub kind: String,
    /// base64url credential ID.
    pub id: String,
    /// Transports hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transports: Option<Vec<String>>,
}

/// `AuthenticatorSelectionCriteria`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// "platform" or "cross-platform".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// "discouraged", "preferred" or "required".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_key: Option<String>,
    /// The Level 1 form of `residentKey: "required"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_resident_key: Option<bool>,
    /// "required", "preferred" (default) or "discouraged".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verification: Option<String>,
}

/// `AuthenticationExtensionsClientInputsJSON`: the extensions this client implements.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionInputs {
    /// credProps: report whether the credential is discoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred_props: Option<bool>,
    /// prf: pseudo-random values from the credential (over CTAP hmac-secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<PrfInputs>,
}

/// `AuthenticationExtensionsPRFInputsJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrfInputs {
    /// Salts for any credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<PrfValues>,
    /// Salts per base64url credential ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_by_credential: Option<BTreeMap<String, PrfValues>>,
}

/// `AuthenticationExtensionsPRFValuesJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrfValues {
    /// base64url input.
    pub first: String,
    /// Optional second base64url input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// The credential type in every JSON form.
pub const PUBLIC_KEY: &str = "public-key";

/// `RegistrationResponseJSON`: a created credential as `PublicKeyCredential.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponseJson {
    /// The credential ID, base64url.
    pub id: String,
    /// The same ID, base64url.
    pub raw_id: String,
    /// `"public-key"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `"platform"` or `"cross-platform"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// The authenticator's answer.
    pub response: AttestationResponseJson,
    /// Client extension outputs.
    #[serde(default)]
    pub client_extension_results: ClientExtensionResults,
}

/// `AuthenticatorAttestationResponseJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponseJson {
    /// The client data JSON, as hashed.
    #[serde(rename = "clientDataJSON", with = "crate::b64")]
    pub client_data_json: Vec<u8>,
    /// The CBOR attestation object.
    #[serde(with = "crate::b64")]
    pub attestation_object: Vec<u8>,
    /// The authenticator data inside it.
    #[serde(with = "crate::b64")]
    pub authenticator_data: Vec<u8>,
    /// How the authenticator is reached (`"internal"` for a platform authenticator).
    #[serde(default)]
    pub transports: Vec<String>,
    /// The credential's COSE algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_algorithm: Option<i64>,
    /// The credential public key as SubjectPublicKeyInfo DER, for the algorithms clients convert.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::option"
    )]
    pub public_key: Option<Vec<u8>>,
}

/// `AuthenticationResponseJSON`: an assertion as `PublicKeyCredential.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponseJson {
    /// The credential ID, base64url.
    pub id: String,
    /// The same ID, base64url.
    pub raw_id: String,
    /// `"public-key"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `"platform"` or `"cross-platform"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// The authenticator's answer.
    pub response: AssertionResponseJson,
    /// Client extension outputs.
    #[serde(default)]
    pub client_extension_results: ClientExtensionResults,
}

/// `AuthenticatorAssertionResponseJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponseJson {
    /// The client data JSON, as hashed.
    #[serde(rename = "clientDataJSON", with = "crate::b64")]
    pub client_data_json: Vec<u8>,
    /// The authenticator data, as signed.
    #[serde(with = "crate::b64")]
    pub authenticator_data: Vec<u8>,
    /// The signature over authenticatorData || SHA-256(clientDataJSON).
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
    /// The user handle of a discoverable credential.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::option"
    )]
    pub user_handle: Option<Vec<u8>>,
}

/// `AuthenticationExtensionsClientOutputsJSON`: the outputs of the extensions this client runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientExtensionResults {
    /// credProps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred_props: Option<CredProps>,
    /// prf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<PrfOutputs>,
}

/// `CredentialPropertiesOutput`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredProps {
    /// Whether the credential is discoverable.
    pub rk: bool,
}

/// `AuthenticationExtensionsPRFOutputsJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrfOutputs {
    /// At creation: whether PRF works with this credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The evaluated values, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<PrfValues>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn creation_options_read_the_level_3_json_and_ignore_unknown_members() {
        let options: CreationOptions = serde_json::from_value(json!({
            "rp": {"id": "example.com", "name": "Example"},
            "user": {"id": "AQI", "name": "alice", "displayName": "Alice"},
            "challenge": "AAAA",
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
            "extensions": {"credProps": true, "prf": {"eval": {"first": "AQ"}}},
            "somethingNew": 1
        }))
        .unwrap();
        assert_eq!(options.rp.id.as_deref(), Some("example.com"));
        assert_eq!(options.pub_key_cred_params[0].alg, -7);
        let selection = options.authenticator_selection.unwrap();
        assert_eq!(selection.resident_key.as_deref(), Some("required"));
        let prf = options.extensions.unwrap().prf.unwrap();
        assert_eq!(prf.eval.unwrap().first, "AQ");
        let missing: Result<CreationOptions, _> =
            serde_json::from_value(json!({"rp": {"name": "x"}, "challenge": "AA"}));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("missing field `user`")
        );
    }

    #[test]
    fn request_options_round_trip_without_absent_members() {
        let text = r#"{"challenge":"AAAA","rpId":"example.com","allowCredentials":[{"type":"public-key","id":"AQ"}],"userVerification":"required"}"#;
        let options: RequestOptions = serde_json::from_str(text).unwrap();
        assert_eq!(
            UserVerification::parse(options.user_verification.as_deref()),
            UserVerification::Required
        );
        assert_eq!(serde_json::to_string(&options).unwrap(), text);
        assert_eq!(
            UserVerification::parse(Some("later")),
            UserVerification::Preferred
        );
    }

    #[test]
    fn responses_write_the_to_json_form() {
        let registration = RegistrationResponseJson {
            id: "AQI".into(),
            raw_id: "AQI".into(),
            kind: PUBLIC_KEY.into(),
            authenticator_attachment: Some("platform".into()),
            response: AttestationResponseJson {
                client_data_json: b"{}".to_vec(),
                attestation_object: vec![0xa0],
                authenticator_data: vec![0xff],
                transports: vec!["internal".into()],
                public_key_algorithm: Some(-7),
                public_key: None,
            },
            client_extension_results: ClientExtensionResults {
                cred_props: Some(CredProps { rk: true }),
                prf: None,
            },
        };
        let value = serde_json::to_value(&registration).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "AQI", "rawId": "AQI", "type": "public-key",
                "authenticatorAttachment": "platform",
                "response": {"clientDataJSON": "e30", "attestationObject": "oA",
                    "authenticatorData": "_w", "transports": ["internal"],
                    "publicKeyAlgorithm": -7},
                "clientExtensionResults": {"credProps": {"rk": true}}
            })
        );
        assert_eq!(
            serde_json::from_value::<RegistrationResponseJson>(value).unwrap(),
            registration
        );
        let assertion = AuthenticationResponseJson {
            id: "AQ".into(),
            raw_id: "AQ".into(),
            kind: PUBLIC_KEY.into(),
            authenticator_attachment: None,
            response: AssertionResponseJson {
                client_data_json: vec![1],
                authenticator_data: vec![2],
                signature: vec![3],
                user_handle: Some(vec![4]),
            },
            client_extension_results: ClientExtensionResults {
                cred_props: None,
                prf: Some(PrfOutputs {
                    enabled: None,
                    results: Some(PrfValues {
                        first: "BQ".into(),
                        second: None,
                    }),
                }),
            },
        };
        assert_eq!(
            serde_json::to_value(&assertion).unwrap(),
            json!({"id": "AQ", "rawId": "AQ", "type": "public-key",
                "response": {"clientDataJSON": "AQ", "authenticatorData": "Ag", "signature": "Aw", "userHandle": "BA"},
                "clientExtensionResults": {"prf": {"results": {"first": "BQ"}}}})
        );
    }
}
