//! authenticatorGetAssertion and authenticatorGetNextAssertion (CTAP 2.1 §6.2, §6.3).

use std::time::{Duration, Instant};

use ciborium::value::Value;

use super::cbor::{Params, TextMap, ValueExt, encode, int_map, text_map, uint};
use super::client_pin::{PinUvAuth, permission};
use super::data::{Options, authenticator_data, flags, parse_descriptor_list, rp_id_hash};
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

mod key {
    pub const RP_ID: u64 = 0x01;
    pub const CLIENT_DATA_HASH: u64 = 0x02;
    pub const ALLOW_LIST: u64 = 0x03;
    pub const EXTENSIONS: u64 = 0x04;
    pub const OPTIONS: u64 = 0x05;
    pub const PIN_UV_AUTH_PARAM: u64 = 0x06;
    pub const PIN_UV_AUTH_PROTOCOL: u64 = 0x07;
}

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

struct Request {
    rp_id: String,
    client_data_hash: Vec<u8>,
    allow_list: Option<Vec<super::data::CredentialDescriptor>>,
    options: Options,
    pin_uv_auth: Option<PinUvAuth>,
    hmac_secret: Option<HmacSecretInput>,
    get_cred_blob: bool,
    large_blob_key: bool,
}

/// The hmac-secret extension input (CTAP 2.1 §12.5).
pub(super) struct HmacSecretInput {
    key_agreement: Value,
    salt_enc: Vec<u8>,
    salt_auth: Vec<u8>,
    protocol: u64,
}

impl HmacSecretInput {
    pub(super) fn parse(value: Value) -> Result<Self, StatusCode> {
        let mut p = Params::from_value(value)?;
        Ok(Self {
            key_agreement: p.required(1)?,
            salt_enc: p.required(2)?.ctap_bytes()?,
            salt_auth: p.required(3)?.ctap_bytes()?,
            protocol: p.take(4).map(Value::ctap_uint).transpose()?.unwrap_or(1),
        })
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

fn parse(body: &[u8], max_list: usize) -> Result<Request, StatusCode> {
    let mut params = Params::parse(body)?;
    let rp_id = params.required(key::RP_ID)?.ctap_text()?;
    let client_data_hash = params.required(key::CLIENT_DATA_HASH)?.ctap_bytes()?;
    let allow_list = params
        .take(key::ALLOW_LIST)
        .map(|v| parse_descriptor_list(v, max_list))
        .transpose()?
        .filter(|list| !list.is_empty());
    let (hmac_secret, get_cred_blob, large_blob_key) = match params.take(key::EXTENSIONS) {
        None => (None, false, false),
        Some(ext) => {
            // Unknown extensions are ignored.
            let mut ext = TextMap::new(ext.ctap_map()?)?;
            let hmac = ext
                .take("hmac-secret")
                .map(HmacSecretInput::parse)
                .transpose()?;
            // The authenticator extension is `credBlob: true` (CTAP 2.1 §12.2);
            // `getCredBlob` is only the WebAuthn client extension's name.
            let blob = ext
                .take("credBlob")
                .map(Value::ctap_bool)
                .transpose()?
                .unwrap_or(false);
            let lbk = super::data::large_blob_key_input(ext.take("largeBlobKey"))?;
            (hmac, blob, lbk)
        }
    };
    let options = Options::parse(params.take(key::OPTIONS))?;
    let pin_uv_auth = PinUvAuth::take(
        &mut params,
        key::PIN_UV_AUTH_PARAM,
        key::PIN_UV_AUTH_PROTOCOL,
    )?;
    if rp_id.is_empty() || rp_id.len() > super::data::MAX_RP_ID_LENGTH {
        return Err(StatusCode::InvalidParameter);
    }
    if client_data_hash.len() != 32 {
        return Err(StatusCode::InvalidParameter);
    }
    if options.rk.is_some() {
        return Err(StatusCode::UnsupportedOption);
    }
    Ok(Request {
        rp_id,
        client_data_hash,
        allow_list,
        options,
        pin_uv_auth,
        hmac_secret,
        get_cred_blob,
        large_blob_key,
    })
}

impl Authenticator {
    /// Establishes the hmac-secret shared secret and checks and decrypts the salts.
    pub(super) fn check_hmac_secret(
        &mut self,
        input: HmacSecretInput,
    ) -> Result<HmacSecret, StatusCode> {
        let protocol = Protocol::from_number(input.protocol)?;
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
        let mut request = parse(body, self.config.max_credential_count_in_list)?;
        let pin_set = self.pin.state()?.is_set();
        let want_up = request.options.up.unwrap_or(true);
        let select_prompt = Prompt {
            action: PromptAction::Select,
            rp_id: Some(&request.rp_id),
            user_name: None,
        };
        let token_use = self.authorize_pin_uv_auth(
            request.pin_uv_auth.as_ref(),
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
        let credentials: Vec<CredentialRecord> = match &request.allow_list {
            Some(list) => {
                let mut found = Vec::new();
                for descriptor in list {
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

        let hmac_secret = match request.hmac_secret.take() {
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
        let with_count = request.allow_list.is_none() && total > 1;
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
            get_cred_blob: request.get_cred_blob,
            large_blob_key: request.large_blob_key,
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
