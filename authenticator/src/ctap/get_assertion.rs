//! authenticatorGetAssertion and authenticatorGetNextAssertion (CTAP 2.1 §6.2, §6.3).

use std::time::{Duration, Instant};

use ciborium::value::Value;

use passgate_proto::ctap::data::{CredentialDescriptor, PUBLIC_KEY};
use passgate_proto::ctap::extensions::HmacSecretInput;
use passgate_proto::ctap::get_assertion::Request;

use super::cbor::{encode, int_map, text_map, uint};
use super::client_pin::{PinUvAuthInput, permission};
use super::data::{authenticator_data, flags, rp_id_hash};
use super::make_credential::cred_protect;
use super::pin_protocol::Protocol;
use super::{
    Authenticator, CommandResult, StatusCode, expect_empty, store_error_status, user_error_status,
};
use crate::api::credential_store::CredentialRecord;
use crate::api::key_store::{KeyRelease, KeyStore, hmac_secret_in_software, hmac_secret_with_uv};
use crate::api::user_verifier::biometric_set_allows;
use crate::api::user_verifier::{
    Interaction, Prompt, PromptAction, UserVerified, VerificationMethod,
};
use zeroize::Zeroizing;

/// How long getNextAssertion may follow getAssertion (§6.3: 30 seconds).
const NEXT_ASSERTION_WINDOW: Duration = Duration::from_secs(30);

/// The rest of a multi-credential getAssertion, served by getNextAssertion.
pub struct PendingAssertions {
    context: AssertionContext,
    remaining: std::vec::IntoIter<CredentialRecord>,
    deadline: Instant,
}

/// What every assertion of one getAssertion (and its getNextAssertions) shares.
struct AssertionContext {
    rp_id: String,
    client_data_hash: Vec<u8>,
    flags: u8,
    verified: bool,
    hmac_secret: Option<HmacSecret>,
    get_cred_blob: bool,
    large_blob_key: bool,
    /// Unlocks keys gated on verification (TPM) for this ceremony only.
    release: Option<KeyRelease>,
}

impl std::fmt::Debug for PendingAssertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAssertions")
            .field("rp_id", &self.context.rp_id)
            .field("remaining", &self.remaining.len())
            .finish_non_exhaustive()
    }
}

/// A checked hmac-secret request: the shared secret and the decrypted salts.
pub(super) struct HmacSecret {
    protocol: Protocol,
    shared: Zeroizing<Vec<u8>>,
    salts: Zeroizing<Vec<u8>>,
}

impl HmacSecret {
    /// The encrypted extension output for a credential, if it has hmac-secret keys. With user
    /// verification the key store evaluates the credential's CredRandomWithUV (in the TPM when
    /// it holds it there, with the ceremony's `release`); without, the software
    /// CredRandomWithoutUV is used.
    pub(super) fn output(
        &self,
        record: &CredentialRecord,
        user_verified: bool,
        key_store: &mut dyn KeyStore,
        release: Option<&KeyRelease>,
    ) -> Result<Option<Value>, StatusCode> {
        let Some(keys) = &record.hmac_secret else {
            return Ok(None);
        };
        let outputs = if user_verified {
            hmac_secret_with_uv(key_store, &keys.with_uv, &self.salts, release)
        } else {
            hmac_secret_in_software(&keys.without_uv.0, &self.salts)
        }
        .map_err(super::hmac_error_status)?;
        Ok(Some(Value::Bytes(
            self.protocol.encrypt(&self.shared, &outputs)?,
        )))
    }
}

/// The credentials an allowList names: its `"public-key"` descriptors, `None` when there are
/// none (a discoverable sign-in).
fn allowed_credentials(request: &Request) -> Option<Vec<&CredentialDescriptor>> {
    let list: Vec<_> = request
        .allow_list
        .iter()
        .filter(|d| d.kind == PUBLIC_KEY)
        .collect();
    (!list.is_empty()).then_some(list)
}

impl Authenticator {
    /// Establishes the hmac-secret shared secret and checks and decrypts the salts.
    pub(super) fn check_hmac_secret(
        &mut self,
        input: HmacSecretInput,
    ) -> Result<HmacSecret, StatusCode> {
        let protocol = Protocol::from_number(input.protocol.unwrap_or(1))?;
        let shared = self.pin_decapsulate(protocol, input.key_agreement)?;
        if !protocol.verify(&shared, &input.salt_enc, &input.salt_auth) {
            return Err(StatusCode::PinAuthInvalid);
        }
        let salts = protocol.decrypt(&shared, &input.salt_enc)?;
        if salts.len() != 32 && salts.len() != 64 {
            return Err(StatusCode::InvalidLength);
        }
        Ok(HmacSecret {
            protocol,
            shared,
            salts,
        })
    }

    pub(super) fn get_assertion(
        &mut self,
        body: &[u8],
        interaction: &Interaction,
    ) -> CommandResult {
        let mut request = Request::decode_strict(body, &self.limits())?;
        let hmac_secret_input = request.extensions.hmac_secret.take();
        let allow_list = allowed_credentials(&request);
        let pin_set = self.pin.state()?.is_set();
        let want_up = request.options.up.unwrap_or(true);
        let select_prompt = Prompt {
            action: PromptAction::Select,
            rp_id: Some(&request.rp_id),
            user_name: None,
        };
        let token_use = self.authorize_pin_uv_auth(
            PinUvAuthInput::of(request.pin_uv_auth.as_ref(), request.pin_uv_auth_probe),
            &select_prompt,
            interaction,
            &request.client_data_hash,
            permission::GA,
            want_up,
        )?;
        let (token_verified, token_release) = match token_use {
            Some(token) => (token.verified, token.release),
            None => (None, None),
        };
        let want_uv = token_use_requested(&request) || request.options.uv == Some(true);
        let mut want_builtin_uv = request.pin_uv_auth.is_none() && request.options.uv == Some(true);
        // Asking the verifier may cost a round trip to a daemon: only when UV is wanted.
        if want_builtin_uv && !self.env.user.status().available {
            return Err(StatusCode::InvalidOption);
        }
        if self.always_uv()? && want_up && request.pin_uv_auth.is_none() && !want_builtin_uv {
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

        // Locate applicable credentials (§6.2.2 step 7). credProtect is applied as if UV will
        // happen when UV was requested; UV failure aborts the request anyway.
        let credentials: Vec<CredentialRecord> = match &allow_list {
            Some(list) => {
                let mut found = Vec::new();
                for descriptor in list.iter() {
                    if descriptor.id.len() > self.config.max_credential_id_length {
                        continue;
                    }
                    if let Some(record) = self
                        .env
                        .credentials
                        .get(&request.rp_id, &descriptor.id)
                        .map_err(store_error_status)?
                    {
                        if record.cred_protect != cred_protect::UV_REQUIRED || want_uv {
                            found.push(record);
                            // With an allowList, only the first applicable credential is used.
                            break;
                        }
                    }
                }
                found
            }
            None => self
                .env
                .credentials
                .discoverable(&request.rp_id)
                .map_err(store_error_status)?
                .into_iter()
                .filter(|r| r.cred_protect == cred_protect::UV_OPTIONAL || want_uv)
                .collect(),
        };
        // Credentials bound to the biometric set stop working when fingerprints are enrolled
        // or deleted: a precise error rather than a silent "no credentials".
        let enrollment = if credentials.iter().any(|r| r.biometric_set.is_some()) {
            self.env.user.enrollment_state()
        } else {
            None
        };
        let found_any = !credentials.is_empty();
        let credentials: Vec<CredentialRecord> = credentials
            .into_iter()
            .filter(|r| biometric_set_allows(r.biometric_set.as_ref(), enrollment.as_ref()))
            .collect();
        if found_any && credentials.is_empty() {
            tracing::warn!(rp = %request.rp_id, "credential invalidated by a biometric enrollment change");
            return Err(StatusCode::InvalidCredential);
        }
        let Some(first) = credentials.first() else {
            return Err(StatusCode::NoCredentials);
        };

        let hmac_secret = match hmac_secret_input {
            None => None,
            Some(input) => Some(self.check_hmac_secret(input)?),
        };

        let prompt = Prompt {
            action: PromptAction::SignIn,
            rp_id: Some(&request.rp_id),
            user_name: if credentials.len() == 1 {
                first.user_name.as_deref()
            } else {
                None
            },
        };
        let verified: Option<UserVerified> = if want_builtin_uv {
            Some(self.verify_builtin(&prompt, interaction)?)
        } else {
            token_verified
        };
        let release = match token_release {
            Some(release) => Some(release),
            None => self.env.key_store.release_for(verified.as_ref()),
        };
        let presence_done = verified.is_some_and(|v| v.method() != VerificationMethod::Pin);
        let mut flag_bits = 0;
        if want_up {
            if !presence_done {
                self.env
                    .user
                    .check_presence(&prompt, interaction)
                    .map_err(user_error_status)?;
            }
            flag_bits |= flags::UP;
        }
        if verified.is_some() {
            flag_bits |= flags::UV;
        }

        let total = credentials.len();
        let with_count = allow_list.is_none() && total > 1;
        let mut iter = credentials.into_iter();
        let Some(record) = iter.next() else {
            return Err(StatusCode::NoCredentials);
        };
        let context = AssertionContext {
            rp_id: request.rp_id,
            client_data_hash: request.client_data_hash,
            flags: flag_bits,
            verified: verified.is_some(),
            hmac_secret,
            get_cred_blob: request.extensions.cred_blob == Some(true),
            large_blob_key: request.extensions.large_blob_key == Some(true),
            release,
        };
        let response = self.assertion_response(&context, &record, with_count.then_some(total))?;
        if with_count {
            self.pending = Some(PendingAssertions {
                context,
                remaining: iter,
                deadline: self.env.clock.now() + NEXT_ASSERTION_WINDOW,
            });
        }
        Ok(response)
    }

    pub(super) fn get_next_assertion(&mut self, body: &[u8]) -> CommandResult {
        expect_empty(body)?;
        let now = self.env.clock.now();
        let Some(mut pending) = self.pending.take() else {
            return Err(StatusCode::NotAllowed);
        };
        if now > pending.deadline {
            return Err(StatusCode::NotAllowed);
        }
        let Some(record) = pending.remaining.next() else {
            return Err(StatusCode::NotAllowed);
        };
        let response = self.assertion_response(&pending.context, &record, None)?;
        if pending.remaining.len() > 0 {
            self.pending = Some(pending);
        }
        Ok(response)
    }

    fn assertion_response(
        &mut self,
        context: &AssertionContext,
        record: &CredentialRecord,
        number_of_credentials: Option<usize>,
    ) -> CommandResult {
        let rp_id = context.rp_id.as_str();
        let client_data_hash = context.client_data_hash.as_slice();
        let flag_bits = context.flags;
        let verified = context.verified;
        let hmac_secret = context.hmac_secret.as_ref();
        // Silent probes (up=false) neither count as a use nor reveal a counter.
        let sign_count = if flag_bits & flags::UP != 0 {
            self.env
                .credentials
                .next_sign_count(rp_id, &record.id)
                .map_err(store_error_status)?
        } else {
            0
        };
        let hmac_output = match hmac_secret {
            Some(h) => h.output(
                record,
                verified,
                self.env.key_store.as_mut(),
                context.release.as_ref(),
            )?,
            None => None,
        };
        let cred_blob = context
            .get_cred_blob
            .then(|| Value::Bytes(record.cred_blob.clone().unwrap_or_default()));
        let outputs = text_map([("credBlob", cred_blob), ("hmac-secret", hmac_output)]);
        let extensions = match &outputs {
            Value::Map(m) if m.is_empty() => None,
            _ => Some(outputs),
        };
        let auth_data = authenticator_data(
            &rp_id_hash(rp_id),
            flag_bits,
            sign_count,
            None,
            extensions.as_ref(),
        )?;
        let mut signed = Vec::with_capacity(auth_data.len() + client_data_hash.len());
        signed.extend_from_slice(&auth_data);
        signed.extend_from_slice(client_data_hash);
        let signature = self
            .env
            .key_store
            .sign(&record.key, &signed, context.release.as_ref())
            .map_err(super::sign_error_status)?;
        let text = |s: &str| Value::Text(s.to_owned());
        let user = record.discoverable.then(|| {
            // Identifying fields only after user verification (§6.2.2 step 12).
            let name = |v: &Option<String>| {
                if verified {
                    v.clone().map(Value::Text)
                } else {
                    None
                }
            };
            text_map([
                ("id", Some(Value::Bytes(record.user_id.clone()))),
                ("name", name(&record.user_name)),
                ("displayName", name(&record.user_display_name)),
            ])
        });
        Ok(encode(&int_map([
            (
                1,
                Some(text_map([
                    ("id", Some(Value::Bytes(record.id.clone()))),
                    ("type", Some(text("public-key"))),
                ])),
            ),
            (2, Some(Value::Bytes(auth_data))),
            (3, Some(Value::Bytes(signature))),
            (4, user),
            (5, number_of_credentials.map(uint)),
            (
                7,
                context
                    .large_blob_key
                    .then(|| {
                        record
                            .large_blob_key
                            .as_ref()
                            .map(|k| Value::Bytes(k.0.to_vec()))
                    })
                    .flatten(),
            ),
        ])))
    }
}

/// Whether the request carries a pinUvAuthParam: credProtect then treats it as verified.
fn token_use_requested(request: &Request) -> bool {
    request.pin_uv_auth.is_some()
}
