//! authenticatorGetInfo (CTAP 2.1 §6.4).

use ciborium::value::Value;

use super::cbor::{encode, int, int_map, text_map, uint};
use super::{Authenticator, CommandResult, expect_empty, store_error_status};

impl Authenticator {
    pub(super) fn get_info(&mut self, body: &[u8]) -> CommandResult {
        expect_empty(body)?;
        let uv = self.env.user.status();
        let remaining = self
            .env
            .credentials
            .remaining_capacity()
            .map_err(store_error_status)?;
        let text = |s: &str| Value::Text(s.to_owned());
        let mut options = vec![
            (text("rk"), Value::Bool(true)),
            (text("up"), Value::Bool(true)),
            (text("plat"), Value::Bool(false)),
        ];
        if uv.available {
            options.push((text("uv"), Value::Bool(uv.enrolled)));
        }
        // bioEnroll: present when fingerprints can be enrolled over CTAP, true once one is.
        if self.bio_enrollment_available() {
            options.push((text("bioEnroll"), Value::Bool(uv.enrolled)));
        }
        // With the TPM key store and a PIN set, keys sign only after verification: advertised
        // honestly as alwaysUv (and no makeCredUvNotRqd).
        let always_uv = self.always_uv()?;
        let pin = self.pin.state()?;
        options.push((text("clientPin"), Value::Bool(pin.is_set())));
        options.push((text("pinUvAuthToken"), Value::Bool(true)));
        options.push((text("makeCredUvNotRqd"), Value::Bool(!always_uv)));
        options.push((text("credMgmt"), Value::Bool(true)));
        options.push((text("authnrCfg"), Value::Bool(true)));
        options.push((text("alwaysUv"), Value::Bool(always_uv)));
        options.push((text("setMinPINLength"), Value::Bool(true)));
        options.push((text("largeBlobs"), Value::Bool(true)));
        let protocols = super::pin_protocol::SUPPORTED
            .iter()
            .map(|p| Value::Integer((*p).into()))
            .collect();
        let response = int_map([
            (
                1,
                Some(Value::Array(vec![text("FIDO_2_0"), text("FIDO_2_1")])),
            ),
            (
                2,
                Some(Value::Array(vec![
                    text("credBlob"),
                    text("credProtect"),
                    text("hmac-secret"),
                    text("hmac-secret-mc"),
                    text("largeBlobKey"),
                    text("minPinLength"),
                ])),
            ),
            (3, Some(Value::Bytes(self.config.aaguid.to_vec()))),
            (4, Some(Value::Map(options))),
            (
                5,
                Some(uint(self.config.max_msg_size.min(super::MAX_MSG_SIZE))),
            ),
            (6, Some(Value::Array(protocols))),
            (7, Some(uint(self.config.max_credential_count_in_list))),
            (8, Some(uint(self.config.max_credential_id_length))),
            (9, Some(Value::Array(vec![text("internal")]))),
            (
                10,
                Some(Value::Array(
                    self.env
                        .key_store
                        .algorithms()
                        .iter()
                        .map(|alg| {
                            text_map([
                                ("alg", Some(int(alg.cose_id()))),
                                ("type", Some(text("public-key"))),
                            ])
                        })
                        .collect(),
                )),
            ),
            (
                14,
                Some(Value::Integer(self.config.firmware_version.into())),
            ),
            (
                11,
                Some(uint(super::large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY)),
            ),
            (12, Some(Value::Bool(pin.force_change))),
            (13, Some(Value::Integer(pin.min_length.into()))),
            (15, Some(uint(super::make_credential::MAX_CRED_BLOB_LENGTH))),
            (
                16,
                Some(uint(super::config::MAX_RP_IDS_FOR_SET_MIN_PIN_LENGTH)),
            ),
            // preferredPlatformUvAttempts: never more than the configured lockout limit.
            (
                17,
                uv.available
                    .then(|| Value::Integer(self.config.max_uv_attempts.min(3).into())),
            ),
            (
                18,
                uv.available
                    .then(|| Value::Integer(uv_modality(uv.biometry).into())),
            ),
            (20, Some(uint(remaining))),
            (
                22,
                Some(Value::Array(
                    self.attestation_formats().into_iter().map(text).collect(),
                )),
            ),
        ]);
        Ok(encode(&response))
    }
}

impl Authenticator {
    /// attestationFormats (CTAP 2.2 getInfo 0x16): the formats makeCredential can produce,
    /// the configured default first. `"none"` is implied and must not be listed; `"tpm"` only
    /// while the key store can attest (an attestation key with its certificate installed).
    fn attestation_formats(&self) -> Vec<&'static str> {
        use super::AttestationFormat;
        if !self.env.key_store.can_attest() {
            return vec!["packed"];
        }
        match self.config.default_attestation {
            AttestationFormat::Tpm => vec!["tpm", "packed"],
            AttestationFormat::None | AttestationFormat::PackedSelf => vec!["packed", "tpm"],
        }
    }
}

/// The FIDO registry's user-verification method bit for a sensor (uvModality).
fn uv_modality(biometry: crate::api::user_verifier::BiometryType) -> u32 {
    use crate::api::user_verifier::BiometryType;
    match biometry {
        BiometryType::Fingerprint => 0x0000_0002,
        BiometryType::Face => 0x0000_0010,
        BiometryType::Iris => 0x0000_0040,
        BiometryType::None => 0x0000_0004,
    }
}
