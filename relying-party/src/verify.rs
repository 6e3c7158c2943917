//! Server-side assertion verification: a stored credential + an assertion + what was expected in,
//! a typed verdict out.
//!
//! This is the library call other backends use (directly, or through `POST /api/verify/assertion`)
//! and the path every sign-in takes. It follows WebAuthn Level 3 §7.2 "Verifying an
//! Authentication Assertion", steps 5–21, minus the account lookups that the caller owns.

use std::borrow::Cow;

use aws_lc_rs::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use passgate_proto::{AuthenticatorData, AuthenticatorDataError};

use crate::b64;
use crate::cose::CredentialPublicKey;

/// `AuthenticationResponseJSON` (WebAuthn Level 3 §5.1), as `PublicKeyCredential.toJSON()`
/// produces it after `navigator.credentials.get()`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponseJson {
    /// The credential ID, base64url.
    pub id: String,
    /// The credential ID, base64url (the same bytes as `id`).
    pub raw_id: String,
    /// The assertion itself.
    pub response: AuthenticatorAssertionResponseJson,
    /// `"platform"` or `"cross-platform"`, when the client says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// Client extension outputs (not signed by the authenticator).
    #[serde(default)]
    pub client_extension_results: serde_json::Value,
    /// Always `"public-key"`.
    #[serde(rename = "type")]
    pub type_: String,
}

/// `AuthenticatorAssertionResponseJSON`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorAssertionResponseJson {
    /// base64url clientDataJSON.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url authenticator data.
    pub authenticator_data: String,
    /// base64url signature.
    pub signature: String,
    /// base64url user handle, present for discoverable credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<String>,
}

/// What the server knows about a credential: enough to verify its assertions.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    /// The credential ID.
    pub id: Vec<u8>,
    /// Its public key.
    pub public_key: CredentialPublicKey,
    /// The last signature counter seen (0 if the authenticator has none).
    pub sign_count: u32,
    /// The user handle it was registered for.
    pub user_handle: Vec<u8>,
    /// The BE flag recorded at registration. Backup eligibility is fixed for a credential's
    /// life (Level 3 §7.2 step 18), so a change means another authenticator or tampering.
    /// `None` when the caller did not record it.
    pub backup_eligible: Option<bool>,
}

/// What the ceremony expects of the assertion.
#[derive(Debug, Clone, Copy)]
pub struct AssertionExpectation<'a> {
    /// The challenge the server issued (raw bytes).
    pub challenge: &'a [u8],
    /// Exact origins accepted in clientDataJSON (`https://example.com`,
    /// `android:apk-key-hash:…`, `http://localhost:8080`).
    pub origins: &'a [String],
    /// The RP ID whose SHA-256 must open the authenticator data.
    pub rp_id: &'a str,
    /// Refuse assertions without the UV flag.
    pub require_user_verification: bool,
    /// Accept `crossOrigin: true` (an iframe on another origin).
    pub allow_cross_origin: bool,
    /// What to do when the signature counter did not increase.
    pub counter_policy: CounterPolicy,
}

/// Policy for a signature counter that did not increase (a possible cloned authenticator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CounterPolicy {
    /// Fail verification with [`VerifyError::CounterRegression`].
    #[default]
    Reject,
    /// Accept, and report [`CounterCheck::Regressed`] in the verdict.
    Report,
}

/// How the signature counter compared with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum CounterCheck {
    /// Both are zero: the authenticator keeps no counter (passkeys usually do not).
    NotSupported,
    /// The counter increased.
    Increased,
    /// The counter did not increase: possibly a cloned authenticator.
    Regressed {
        /// The counter the server had stored.
        stored: u32,
        /// The counter in this assertion.
        received: u32,
    },
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionVerdict {
    /// The credential that signed (base64url).
    #[serde(serialize_with = "b64::serialize")]
    pub credential_id: Vec<u8>,
    /// The user handle, when the authenticator returned one (base64url).
    #[serde(serialize_with = "b64::option::serialize")]
    pub user_handle: Option<Vec<u8>>,
    /// The UP flag.
    pub user_present: bool,
    /// The UV flag: the authenticator verified the user (biometric or PIN).
    pub user_verified: bool,
    /// The BE flag.
    pub backup_eligible: bool,
    /// The BS flag.
    pub backup_state: bool,
    /// The signature counter in the authenticator data.
    pub sign_count: u32,
    /// How that counter compared with the stored one.
    pub counter: CounterCheck,
    /// The origin clientDataJSON named (one of the expected ones).
    pub origin: String,
}

/// Why an assertion was refused. [`VerifyError::code`] names it for JSON error bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The JSON is not an `AuthenticationResponseJSON`.
    #[error("malformed assertion: {0}")]
    Malformed(String),
    /// `type` is not `public-key`.
    #[error("the credential type is not public-key")]
    WrongCredentialType,
    /// `id`/`rawId` do not name the stored credential.
    #[error("the response is for another credential")]
    CredentialMismatch,
    /// clientDataJSON is not valid JSON with the required members.
    #[error("clientDataJSON is malformed: {0}")]
    ClientDataMalformed(String),
    /// `type` in clientDataJSON is not `webauthn.get`.
    #[error("clientDataJSON.type is {0:?}, expected webauthn.get")]
    WrongCeremonyType(String),
    /// The challenge differs from the one issued.
    #[error("the challenge does not match the one issued")]
    ChallengeMismatch,
    /// The origin is not an allowed one.
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    /// A cross-origin iframe made the request and that is not allowed.
    #[error("cross-origin requests are not allowed")]
    CrossOriginNotAllowed,
    /// Authenticator data is shorter than 37 bytes or its flags/extensions are inconsistent.
    #[error("authenticator data is malformed: {0}")]
    AuthenticatorDataMalformed(#[from] AuthenticatorDataError),
    /// The RP ID hash is not SHA-256 of the expected RP ID.
    #[error("the RP ID hash does not match {0:?}")]
    RpIdHashMismatch(String),
    /// The UP flag is not set.
    #[error("the user was not present (UP flag clear)")]
    UserNotPresent,
    /// UV was required and the UV flag is not set.
    #[error("user verification was required and did not happen (UV flag clear)")]
    UserVerificationMissing,
    /// The user handle differs from the credential's user.
    #[error("the user handle does not match the credential's user")]
    UserHandleMismatch,
    /// The signature does not verify with the credential's public key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The counter did not increase and policy rejects that.
    #[error("signature counter regressed: stored {stored}, received {received}")]
    CounterRegression {
        /// The stored counter.
        stored: u32,
        /// The received counter.
        received: u32,
    },
    /// The BE flag differs from the one recorded at registration.
    #[error("backup eligibility differs from registration: not the registered authenticator")]
    BackupEligibilityChanged,
}

impl VerifyError {
    /// A stable machine-readable name for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_response",
            Self::WrongCredentialType => "wrong_credential_type",
            Self::CredentialMismatch => "credential_mismatch",
            Self::ClientDataMalformed(_) => "client_data_malformed",
            Self::WrongCeremonyType(_) => "wrong_ceremony_type",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::OriginNotAllowed(_) => "origin_not_allowed",
            Self::CrossOriginNotAllowed => "cross_origin_not_allowed",
            Self::AuthenticatorDataMalformed(_) => "authenticator_data_malformed",
            Self::RpIdHashMismatch(_) => "rp_id_hash_mismatch",
            Self::UserNotPresent => "user_not_present",
            Self::UserVerificationMissing => "user_verification_missing",
            Self::UserHandleMismatch => "user_handle_mismatch",
            Self::BadSignature => "bad_signature",
            Self::CounterRegression { .. } => "counter_regression",
            Self::BackupEligibilityChanged => "backup_eligibility_changed",
        }
    }
}

/// The members of clientDataJSON the verifier reads; others are ignored as the spec requires.
#[derive(Deserialize)]
struct ClientData<'a> {
    #[serde(rename = "type", borrow)]
    type_: Cow<'a, str>,
    #[serde(borrow)]
    challenge: Cow<'a, str>,
    #[serde(borrow)]
    origin: Cow<'a, str>,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
}

/// Parsed clientDataJSON for the ceremony code, which needs the challenge before it can look up
/// the ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDataSummary {
    /// `type`.
    pub type_: String,
    /// The challenge, decoded.
    pub challenge: Vec<u8>,
    /// `origin`.
    pub origin: String,
}

/// Decodes base64url clientDataJSON and extracts type, challenge and origin.
pub fn client_data_summary(client_data_b64: &str) -> Result<ClientDataSummary, VerifyError> {
    let bytes = b64::decode(client_data_b64)
        .map_err(|_| VerifyError::Malformed("clientDataJSON is not base64url".into()))?;
    let data: ClientData<'_> = serde_json::from_slice(&bytes)
        .map_err(|e| VerifyError::ClientDataMalformed(e.to_string()))?;
    let challenge = b64::decode(&data.challenge)
        .map_err(|_| VerifyError::ClientDataMalformed("challenge is not base64url".into()))?;
    Ok(ClientDataSummary {
        type_: data.type_.into_owned(),
        challenge,
        origin: data.origin.into_owned(),
    })
}

/// Verifies an assertion against a stored credential. Nothing is stored: the caller persists the
/// new counter from the verdict.
pub fn verify_assertion(
    stored: &StoredCredential,
    response: &AuthenticationResponseJson,
    expect: &AssertionExpectation<'_>,
) -> Result<AssertionVerdict, VerifyError> {
    if response.type_ != "public-key" {
        return Err(VerifyError::WrongCredentialType);
    }
    let raw_id = b64::decode(&response.raw_id)
        .map_err(|_| VerifyError::Malformed("rawId is not base64url".into()))?;
    let id = b64::decode(&response.id)
        .map_err(|_| VerifyError::Malformed("id is not base64url".into()))?;
    if raw_id != stored.id || id != stored.id {
        return Err(VerifyError::CredentialMismatch);
    }
    let r = &response.response;
    let client_data_json = b64::decode(&r.client_data_json)
        .map_err(|_| VerifyError::Malformed("clientDataJSON is not base64url".into()))?;
    let authenticator_data = b64::decode(&r.authenticator_data)
        .map_err(|_| VerifyError::Malformed("authenticatorData is not base64url".into()))?;
    let signature = b64::decode(&r.signature)
        .map_err(|_| VerifyError::Malformed("signature is not base64url".into()))?;
    let user_handle = match &r.user_handle {
        Some(h) if !h.is_empty() => Some(
            b64::decode(h)
                .map_err(|_| VerifyError::Malformed("userHandle is not base64url".into()))?,
        ),
        _ => None,
    };

    // Steps 6: the user handle, when present, must be the credential's user.
    if let Some(handle) = &user_handle {
        if *handle != stored.user_handle {
            return Err(VerifyError::UserHandleMismatch);
        }
    }

    // Steps 11–14: clientDataJSON.
    let client_data: ClientData<'_> = serde_json::from_slice(&client_data_json)
        .map_err(|e| VerifyError::ClientDataMalformed(e.to_string()))?;
    if client_data.type_ != "webauthn.get" {
        return Err(VerifyError::WrongCeremonyType(
            client_data.type_.into_owned(),
        ));
    }
    let challenge = b64::decode(&client_data.challenge)
        .map_err(|_| VerifyError::ClientDataMalformed("challenge is not base64url".into()))?;
    if !constant_time_eq(&challenge, expect.challenge) {
        return Err(VerifyError::ChallengeMismatch);
    }
    if !expect.origins.iter().any(|o| *o == client_data.origin) {
        return Err(VerifyError::OriginNotAllowed(
            client_data.origin.into_owned(),
        ));
    }
    if client_data.cross_origin == Some(true) && !expect.allow_cross_origin {
        return Err(VerifyError::CrossOriginNotAllowed);
    }

    // Steps 15–17: authenticator data.
    let header = AuthenticatorData::parse(&authenticator_data)?;
    let flags = header.flags;
    let expected_hash = digest(&SHA256, expect.rp_id.as_bytes());
    if header.rp_id_hash != expected_hash.as_ref() {
        return Err(VerifyError::RpIdHashMismatch(expect.rp_id.to_owned()));
    }
    if !flags.user_present() {
        return Err(VerifyError::UserNotPresent);
    }
    if expect.require_user_verification && !flags.user_verified() {
        return Err(VerifyError::UserVerificationMissing);
    }
    if stored
        .backup_eligible
        .is_some_and(|be| be != flags.backup_eligible())
    {
        return Err(VerifyError::BackupEligibilityChanged);
    }

    // Steps 19–20: the signature over authenticatorData || SHA-256(clientDataJSON).
    let client_data_hash = digest(&SHA256, &client_data_json);
    let mut signed = authenticator_data;
    signed.extend_from_slice(client_data_hash.as_ref());
    if !stored.public_key.verify(&signed, &signature) {
        return Err(VerifyError::BadSignature);
    }

    // Step 21: the signature counter.
    let counter = if header.sign_count == 0 && stored.sign_count == 0 {
        CounterCheck::NotSupported
    } else if header.sign_count > stored.sign_count {
        CounterCheck::Increased
    } else {
        CounterCheck::Regressed {
            stored: stored.sign_count,
            received: header.sign_count,
        }
    };
    if let (CounterCheck::Regressed { stored, received }, CounterPolicy::Reject) =
        (counter, expect.counter_policy)
    {
        return Err(VerifyError::CounterRegression { stored, received });
    }

    Ok(AssertionVerdict {
        credential_id: stored.id.clone(),
        user_handle,
        user_present: flags.user_present(),
        user_verified: flags.user_verified(),
        backup_eligible: flags.backup_eligible(),
        backup_state: flags.backup_state(),
        sign_count: header.sign_count,
        counter,
        origin: client_data.origin.into_owned(),
    })
}

/// Parses `AuthenticationResponseJSON` bytes and verifies them: JSON in, verdict out.
pub fn verify_assertion_json(
    stored: &StoredCredential,
    json: &[u8],
    expect: &AssertionExpectation<'_>,
) -> Result<AssertionVerdict, VerifyError> {
    let response: AuthenticationResponseJson =
        serde_json::from_slice(json).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    verify_assertion(stored, &response, expect)
}

/// Compares without an early exit (aws-lc-rs's constant-time comparison), so timing does not
/// reveal how much of a challenge or token matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8, tail: &[u8]) -> Vec<u8> {
        let mut data = vec![0u8; 32];
        data.push(flags);
        data.extend_from_slice(&[0, 0, 0, 1]);
        data.extend_from_slice(tail);
        data
    }

    /// The tail must match the AT and ED flags; a mismatch is `authenticator_data_malformed`.
    #[test]
    fn the_tail_must_match_the_at_and_ed_flags() {
        let bad: [(&str, Vec<u8>); 7] = [
            ("ED without extensions", header(0x85, &[])),
            ("extensions without ED", header(0x05, &[0xa0])),
            ("trailing garbage", header(0x05, &[0xde, 0xad])),
            ("AT without credential data", header(0x45, &[])),
            ("ED with a tail that is not CBOR", header(0x85, &[0xff])),
            ("extensions then a stray byte", header(0x85, &[0xa0, 0x00])),
            ("ED with a CBOR array", header(0x85, &[0x80])),
        ];
        for (what, data) in bad {
            let err = VerifyError::from(AuthenticatorData::parse(&data).expect_err(what));
            assert_eq!(err.code(), "authenticator_data_malformed", "{what}");
        }
        assert!(AuthenticatorData::parse(&header(0x85, &[0xa1, 0x61, 0x78, 0x01])).is_ok());
    }

    #[test]
    fn constant_time_eq_compares_lengths_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
