//! The WebAuthn Level 3 JSON option forms (defined in `passgate_proto::webauthn`) as the bridge
//! reads them: every mismatch is a `TypeError` that names the member.

pub use passgate_proto::webauthn::{
    AuthenticatorSelection, CreationOptions, CredentialDescriptor, CredentialParameter,
    ExtensionInputs, PrfInputs, PrfValues, RequestOptions, RpEntity, UserEntity, UserVerification,
};

use crate::b64;
use crate::error::BridgeError;

/// Decodes a base64url member, `TypeError` naming it when it is not base64url.
pub fn decode_member(value: &str, member: &str) -> Result<Vec<u8>, BridgeError> {
    b64::decode(value).map_err(|_| BridgeError::type_error(format!("{member} is not base64url")))
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
