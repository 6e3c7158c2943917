//! authenticatorMakeCredential (CTAP 2.1 §6.1).

use ciborium::value::Value;

use passgate_proto::ctap::data::PUBLIC_KEY;
use passgate_proto::ctap::make_credential::Request;
use passgate_proto::ctap::strict::Limits;

use super::cbor::{encode, int, int_map, text_map};
use super::client_pin::{PinUvAuthInput, permission};
use super::data::{
    MAX_NAME_LENGTH, authenticator_data, choose_algorithm, flags, rp_id_hash, truncate_utf8,
};
use super::{
    AttestationFormat, Authenticator, CREDENTIAL_ID_LENGTH, CommandResult, StatusCode,
    store_error_status, user_error_status,
};
use crate::api::credential_store::{CredRandom32, CredentialRecord, HmacSecretKeys};
use crate::api::key_store::{KeyAlgorithm, KeyRelease, KeyStoreError};
use crate::api::user_verifier::{
    Interaction, Prompt, PromptAction, UserVerified, VerificationMethod,
};

/// credProtect levels (CTAP 2.1 §12.1).
pub(crate) use passgate_proto::ctap::extensions::cred_protect;

/// The extension that binds a credential to the current biometric set: it stops working when
/// fingerprints are enrolled or deleted.
pub use passgate_proto::ctap::extensions::BIOMETRIC_SET as BIOMETRIC_SET_EXTENSION;

/// Longest credBlob stored (reported as maxCredBlobLength).
pub const MAX_CRED_BLOB_LENGTH: usize = 32;

/// A decoded request with what the authenticator reads from it before its steps: the
/// algorithm to create (the first of pubKeyCredParams the key store supports) and the formats
/// of attestationFormatsPreference passgate can produce, in the client's order (empty: the
/// configured default). Names are truncated as CTAP 2.1 allows (§6.1.2, step "user").
fn decode(
    body: &[u8],
    limits: &Limits,
    algorithms: &[KeyAlgorithm],
) -> Result<(Request, KeyAlgorithm, Vec<AttestationFormat>), StatusCode> {
    let mut request = Request::decode_strict(body, limits)?;
    let algorithm = choose_algorithm(&request.pub_key_cred_params, algorithms)?;
    let attestation = request
        .attestation_formats_preference
        .iter()
        .flatten()
        .filter_map(|format| match format.as_str() {
            "packed" => Some(AttestationFormat::PackedSelf),
            "none" => Some(AttestationFormat::None),
            "tpm" => Some(AttestationFormat::Tpm),
            _ => None,
        })
        .collect();
    let truncate = |name: Option<String>| name.map(|n| truncate_utf8(n, MAX_NAME_LENGTH));
    request.rp.name = truncate(request.rp.name.take());
    request.user.name = truncate(request.user.name.take());
    request.user.display_name = truncate(request.user.display_name.take());
    Ok((request, algorithm, attestation))
}

impl Authenticator {
    /// A new credential's hmac-secret keys: CredRandomWithUV from the key store (in the TPM
    /// when it can hold it, bound to this ceremony's `release`), CredRandomWithoutUV random.
    fn create_hmac_secret_keys(
        &mut self,
        release: Option<&KeyRelease>,
    ) -> Result<HmacSecretKeys, StatusCode> {
        let with_uv = self
            .env
            .key_store
            .create_cred_random_with_uv(release)
            .map_err(|e| match e {
                KeyStoreError::UserVerificationRequired => StatusCode::PuatRequired,
                other => {
                    tracing::error!(error = %other, "hmac-secret key creation failed");
                    StatusCode::Other
                }
            })?;
        let mut without_uv = zeroize::Zeroizing::new([0u8; 32]);
        if self.env.rng.fill(without_uv.as_mut()).is_err() {
            let _ = self.env.key_store.delete_cred_random_with_uv(&with_uv);
            return Err(StatusCode::Other);
        }
        Ok(HmacSecretKeys {
            with_uv,
            without_uv: CredRandom32(without_uv),
        })
    }

    /// Destroys the keys of a credential that is not stored after all, in stores that keep
    /// state per key.
    fn discard_keys(&mut self, record: &CredentialRecord) {
        let _ = self.env.key_store.delete_key(&record.key);
        if let Some(keys) = &record.hmac_secret {
            let _ = self.env.key_store.delete_cred_random_with_uv(&keys.with_uv);
        }
    }

    pub(super) fn make_credential(
        &mut self,
        body: &[u8],
        interaction: &Interaction,
    ) -> CommandResult {
        let (mut request, algorithm, attestation) =
            decode(body, &self.limits(), self.env.key_store.algorithms())?;
        let hmac_mc_input = request.extensions.hmac_secret_mc.take();
        let pin_set = self.pin.state()?.is_set();
        let prompt = Prompt {
            action: PromptAction::Register,
            rp_id: Some(&request.rp.id),
            user_name: request.user.name.as_deref(),
        };
        // Step 1: a zero-length pinUvAuthParam asks "is a PIN set?" after a touch (used by
        // platforms to let the person pick an authenticator).
        if request.options.up == Some(false) {
            return Err(StatusCode::InvalidOption);
        }
        let discoverable = request.options.rk.unwrap_or(false);
        if (request.extensions.large_blob_key == Some(true)) && !discoverable {
            return Err(StatusCode::InvalidOption);
        }
        let token_use = self.authorize_pin_uv_auth(
            PinUvAuthInput::of(request.pin_uv_auth.as_ref(), request.pin_uv_auth_probe),
            &prompt,
            interaction,
            &request.client_data_hash,
            permission::MC,
            true,
        )?;
        let always_uv = self.always_uv()?;
        let mut want_builtin_uv = token_use.is_none() && request.options.uv == Some(true);
        // Asking the verifier may cost a round trip to a daemon: only when UV is wanted.
        if want_builtin_uv && !self.env.user.status().available {
            return Err(StatusCode::InvalidOption);
        }
        if always_uv && token_use.is_none() && !want_builtin_uv {
            // alwaysUv: verify with the built-in method, else demand a PIN token.
            if self.env.user.status().available {
                want_builtin_uv = true;
            } else {
                return Err(if pin_set {
                    StatusCode::PuatRequired
                } else {
                    StatusCode::PinNotSet
                });
            }
        }
        // A PIN-protected authenticator creates discoverable credentials only with user
        // verification (makeCredUvNotRqd covers non-discoverable ones).
        if token_use.is_none() && !want_builtin_uv && pin_set && discoverable {
            return Err(StatusCode::PuatRequired);
        }

        // User verification first when asked for: it also proves presence.
        let (verified, token_release): (Option<UserVerified>, _) = match token_use {
            Some(token) => (token.verified, token.release),
            None if want_builtin_uv => (Some(self.verify_builtin(&prompt, interaction)?), None),
            None => (None, None),
        };
        // What lets a key store that gates keys on verification (TPM) bind the new key: the
        // PIN token's release, or the one for a built-in (or no) verification.
        let release = match token_release {
            Some(release) => Some(release),
            None => self.env.key_store.release_for(verified.as_ref()),
        };
        let hmac_secret_mc = match hmac_mc_input {
            None => None,
            Some(input) => Some(self.check_hmac_secret(input)?),
        };
        // A PIN proves who, not that someone is here now: presence is still asked for.
        let presence_done = verified.is_some_and(|v| v.method() != VerificationMethod::Pin);

        for descriptor in request.exclude_list.iter().filter(|d| d.kind == PUBLIC_KEY) {
            if descriptor.id.len() > self.config.max_credential_id_length {
                continue;
            }
            let found = self
                .env
                .credentials
                .get(&request.rp.id, &descriptor.id)
                .map_err(store_error_status)?;
            if let Some(existing) = found {
                if existing.cred_protect == cred_protect::UV_REQUIRED && verified.is_none() {
                    continue;
                }
                // The person must consent before learning that a credential exists (§6.1.2 step 11).
                if !presence_done {
                    self.env
                        .user
                        .check_presence(&prompt, interaction)
                        .map_err(user_error_status)?;
                }
                return Err(StatusCode::CredentialExcluded);
            }
        }

        if self
            .env
            .credentials
            .remaining_capacity()
            .map_err(store_error_status)?
            == 0
        {
            return Err(StatusCode::KeyStoreFull);
        }

        if !presence_done {
            self.env
                .user
                .check_presence(&prompt, interaction)
                .map_err(user_error_status)?;
        }

        let created = self
            .env
            .key_store
            .create_key(algorithm, release.as_ref())
            .map_err(|e| match e {
                KeyStoreError::Full => StatusCode::KeyStoreFull,
                KeyStoreError::UnsupportedAlgorithm(_) => StatusCode::UnsupportedAlgorithm,
                KeyStoreError::UserVerificationRequired => StatusCode::PuatRequired,
                other => {
                    tracing::error!(error = %other, "key creation failed");
                    StatusCode::Other
                }
            })?;
        let mut id = vec![0u8; CREDENTIAL_ID_LENGTH];
        self.env.rng.fill(&mut id).map_err(|_| StatusCode::Other)?;
        let biometric_set = if request.extensions.biometric_set() {
            let biometric =
                verified.is_some_and(|v| matches!(v.method(), VerificationMethod::Biometric(_)));
            match (biometric, self.env.user.enrollment_state()) {
                (true, Some(state)) => Some(state),
                // Binding needs a biometric verification in this very ceremony.
                _ => return Err(StatusCode::InvalidOption),
            }
        } else {
            None
        };
        let hmac_secret = if request.extensions.hmac_secret == Some(true) {
            match self.create_hmac_secret_keys(release.as_ref()) {
                Ok(keys) => Some(keys),
                Err(status) => {
                    let _ = self.env.key_store.delete_key(&created.handle);
                    return Err(status);
                }
            }
        } else {
            None
        };
        let stored_blob = request
            .extensions
            .cred_blob
            .clone()
            .filter(|b| b.len() <= MAX_CRED_BLOB_LENGTH);
        let large_blob_key = if request.extensions.large_blob_key == Some(true) {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            self.env
                .rng
                .fill(key.as_mut())
                .map_err(|_| StatusCode::Other)?;
            Some(CredRandom32(key))
        } else {
            None
        };
        let created_ns = self.next_creation_ns();
        let record = CredentialRecord {
            id: id.clone(),
            rp_id: request.rp.id.clone(),
            rp_name: request.rp.name.clone(),
            user_id: request.user.id.clone(),
            user_name: request.user.name.clone(),
            user_display_name: request.user.display_name.clone(),
            discoverable,
            algorithm,
            key: created.handle.clone(),
            public_key: created.public_key.clone(),
            created_at: created_ns / 1_000_000_000,
            created_ns,
            cred_protect: request
                .extensions
                .cred_protect
                .unwrap_or(cred_protect::UV_OPTIONAL),
            cred_blob: stored_blob.clone(),
            biometric_set,
            large_blob_key,
            hmac_secret,
        };
        // hmac-secret-mc, with or without the verification of this very ceremony; before the
        // credential is stored, so that a failure leaves none behind.
        let mc_output = match &hmac_secret_mc {
            Some(h) => match h.output(
                &record,
                verified.is_some(),
                self.env.key_store.as_mut(),
                release.as_ref(),
            ) {
                Ok(output) => output,
                Err(status) => {
                    self.discard_keys(&record);
                    return Err(status);
                }
            },
            None => None,
        };
        if let Err(e) = self.env.credentials.insert(&record) {
            self.discard_keys(&record);
            return Err(store_error_status(e));
        }

        let mut flag_bits = flags::UP;
        if verified.is_some() {
            flag_bits |= flags::UV;
        }
        let min_pin_length = if request.extensions.min_pin_length == Some(true) {
            let pin = self.pin.state()?;
            pin.min_pin_length_rp_ids
                .contains(&request.rp.id)
                .then(|| Value::Integer(pin.min_length.into()))
        } else {
            None
        };
        let outputs = text_map([
            (
                "credBlob",
                request
                    .extensions
                    .cred_blob
                    .as_ref()
                    .map(|_| Value::Bool(stored_blob.is_some())),
            ),
            (
                "credProtect",
                request
                    .extensions
                    .cred_protect
                    .map(|level| int(i64::from(level))),
            ),
            (
                "hmac-secret",
                (request.extensions.hmac_secret == Some(true)).then_some(Value::Bool(true)),
            ),
            ("hmac-secret-mc", mc_output),
            ("minPinLength", min_pin_length),
            (
                BIOMETRIC_SET_EXTENSION,
                biometric_set.map(|_| Value::Bool(true)),
            ),
        ]);
        let extensions = match &outputs {
            Value::Map(m) if m.is_empty() => None,
            _ => Some(outputs),
        };
        let auth_data = authenticator_data(
            &rp_id_hash(&request.rp.id),
            flag_bits,
            0,
            Some((&self.config.aaguid, &id, &created.public_key)),
            extensions.as_ref(),
        )?;
        // The client's first format we can produce (CTAP 2.2 §6.1.2 step 19), else ours.
        let can_attest = self.env.key_store.can_attest();
        let producible = |f: &AttestationFormat| *f != AttestationFormat::Tpm || can_attest;
        let format = match attestation.iter().copied().find(producible) {
            Some(format) => format,
            None if producible(&self.config.default_attestation) => self.config.default_attestation,
            None => AttestationFormat::PackedSelf,
        };
        let mut signed = Vec::with_capacity(auth_data.len() + 32);
        signed.extend_from_slice(&auth_data);
        signed.extend_from_slice(&request.client_data_hash);
        let tpm_statement = match format {
            AttestationFormat::Tpm => self
                .env
                .key_store
                .attest(&created.handle, &signed, release.as_ref())
                .map_err(super::sign_error_status)?,
            _ => None,
        };
        let (fmt, att_stmt) = match (format, tpm_statement) {
            (AttestationFormat::Tpm, Some(statement)) => ("tpm", tpm_statement_value(statement)),
            (AttestationFormat::None, _) => ("none", Value::Map(Vec::new())),
            (AttestationFormat::PackedSelf | AttestationFormat::Tpm, _) => {
                let sig = self
                    .env
                    .key_store
                    .sign(&created.handle, &signed, release.as_ref())
                    .map_err(super::sign_error_status)?;
                (
                    "packed",
                    text_map([
                        ("alg", Some(int(algorithm.cose_id()))),
                        ("sig", Some(Value::Bytes(sig))),
                    ]),
                )
            }
        };
        tracing::info!(rp = %request.rp.id, discoverable, "credential created");
        Ok(encode(&int_map([
            (1, Some(Value::Text(fmt.to_owned()))),
            (2, Some(Value::Bytes(auth_data))),
            (3, Some(att_stmt)),
            (
                5,
                record
                    .large_blob_key
                    .as_ref()
                    .map(|k| Value::Bytes(k.0.to_vec())),
            ),
        ])))
    }
}

/// WebAuthn's `tpm` attestation statement (L3 §8.3.1).
fn tpm_statement_value(statement: crate::api::key_store::KeyAttestation) -> Value {
    text_map([
        ("ver", Some(Value::Text("2.0".to_owned()))),
        ("alg", Some(int(statement.alg))),
        (
            "x5c",
            Some(Value::Array(
                statement.x5c.into_iter().map(Value::Bytes).collect(),
            )),
        ),
        ("sig", Some(Value::Bytes(statement.sig))),
        ("certInfo", Some(Value::Bytes(statement.cert_info))),
        ("pubArea", Some(Value::Bytes(statement.pub_area))),
    ])
}
