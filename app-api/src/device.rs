//! [`Device`]: the CTAP 2.1 client the app APIs run on. It speaks to passgate's authenticator
//! in this process ([`InProcess`]) or over CTAPHID/TCP ([`TcpCtapHid`]) and keeps every CTAP
//! status, because the app APIs must tell a wrong finger (`authenticationFailed`) from a
//! locked-out sensor (`biometryLockout`) — distinctions a WebAuthn `NotAllowedError` erases.
//!
//! Every operation that the app APIs gate on the user goes through one of two verifications:
//! the authenticator's built-in method (`options.uv = true`, a fingerprint through fprintd) or
//! a pinUvAuthToken obtained with the PIN. Both make the authenticator set UV and, for
//! hmac-secret, use the credential's *with-UV* secret; neither can be faked by this client.

use std::sync::{Arc, Mutex, PoisonError};

use ciborium::value::Value;
use passgate_authenticator::Authenticator;
use passgate_authenticator::api::user_verifier::{Interaction, VerifierStatus};
use passgate_authenticator::ctap::{StatusCode, command};
use passgate_bridge::cbor::{self, AuthenticatorData, bytes, int_key, integer, text_key};
use passgate_bridge::pin::{self, Shared};
use passgate_bridge::{CtapTransport, InProcess, TransportError};
use zeroize::Zeroizing;

/// credProtect level 3: the credential is usable only with user verification.
pub const CRED_PROTECT_UV_REQUIRED: i64 = 3;

/// The extension that binds a credential to the current biometric set.
pub const BIOMETRIC_SET_EXTENSION: &str = "passgateBiometricSet";

/// Why a CTAP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The authenticator answered with an error status.
    #[error("the authenticator answered CTAP status {0:#04x}")]
    Status(u8),
    /// The request did not reach the authenticator or got no answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The authenticator answered something malformed.
    #[error("the authenticator's answer is malformed: {0}")]
    Protocol(String),
}

impl DeviceError {
    /// Whether this is the authenticator's `status`.
    pub fn is(&self, status: StatusCode) -> bool {
        matches!(self, Self::Status(s) if *s == status.byte())
    }

    fn protocol(what: impl Into<String>) -> Self {
        Self::Protocol(what.into())
    }
}

impl From<passgate_bridge::BridgeError> for DeviceError {
    fn from(e: passgate_bridge::BridgeError) -> Self {
        Self::Protocol(e.message)
    }
}

/// What getInfo says about user verification and the extensions the app APIs need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The `uv` option: `None` without a built-in method, `Some(false)` with a sensor and
    /// nothing enrolled, `Some(true)` when it can verify now.
    pub uv: Option<bool>,
    /// The FIDO `uvModality` bit of the built-in method (fingerprint `0x02`).
    pub uv_modality: Option<u32>,
    /// The `clientPin` option: `None` without PIN support, else whether a PIN is set.
    pub client_pin: Option<bool>,
    /// Every makeCredential/getAssertion needs verification.
    pub always_uv: bool,
    /// Non-discoverable credentials can be made without verification.
    pub make_cred_uv_not_rqd: bool,
    /// hmac-secret is offered.
    pub hmac_secret: bool,
    /// hmac-secret-mc is offered.
    pub hmac_secret_mc: bool,
    /// The shortest PIN the authenticator accepts (`minPINLength`, 4 when not said).
    pub min_pin_length: usize,
}

impl Info {
    fn parse(v: &Value) -> Self {
        let option = |name: &str| match int_key(v, 4).and_then(|o| text_key(o, name)) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        };
        let has_extension = |name: &str| match int_key(v, 2) {
            Some(Value::Array(items)) => items
                .iter()
                .any(|i| matches!(i, Value::Text(t) if t == name)),
            _ => false,
        };
        Self {
            uv: option("uv"),
            uv_modality: integer(int_key(v, 18)).and_then(|m| u32::try_from(m).ok()),
            client_pin: option("clientPin"),
            always_uv: option("alwaysUv").unwrap_or(false),
            make_cred_uv_not_rqd: option("makeCredUvNotRqd").unwrap_or(false),
            hmac_secret: has_extension("hmac-secret"),
            hmac_secret_mc: has_extension("hmac-secret-mc"),
            min_pin_length: integer(int_key(v, 13))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(4),
        }
    }
}

/// A pinUvAuthToken obtained with the PIN, for one operation. Zeroized on drop.
pub struct PinToken {
    token: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinToken(..)")
    }
}

/// How an operation verifies the user.
#[derive(Debug, Clone, Copy)]
pub enum Verification<'a> {
    /// The authenticator's built-in method (a fingerprint scan).
    Builtin,
    /// A pinUvAuthToken obtained with the PIN.
    Pin(&'a PinToken),
    /// No verification (presence only); the authenticator decides whether that is enough.
    None,
}

/// A makeCredential for the app APIs: a non-discoverable ES256 credential.
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    /// The RP ID namespace (`passgate-app:<caller>`).
    pub rp_id: &'a str,
    /// The user handle (what the credential is for).
    pub user_id: &'a [u8],
    /// A readable account name for the authenticator's prompt.
    pub user_name: &'a str,
    /// SHA-256 of the client data.
    pub client_data_hash: [u8; 32],
    /// How the user is verified.
    pub verification: Verification<'a>,
    /// credProtect level, if any.
    pub cred_protect: Option<i64>,
    /// Bind the credential to the current biometric set (needs a biometric verification).
    pub biometric_set: bool,
    /// Enable hmac-secret, and with a salt evaluate it at creation (hmac-secret-mc).
    pub hmac_secret: Option<Option<[u8; 32]>>,
}

/// A created credential.
#[derive(Debug)]
pub struct Created {
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The COSE public key.
    pub public_key: Value,
    /// The authenticator data flags.
    pub flags: u8,
    /// The hmac-secret-mc output for the salt (32 bytes), when asked for.
    pub hmac_output: Option<Zeroizing<Vec<u8>>>,
}

/// A getAssertion on one credential.
#[derive(Debug, Clone)]
pub struct AssertRequest<'a> {
    /// The RP ID.
    pub rp_id: &'a str,
    /// The credential.
    pub credential_id: &'a [u8],
    /// SHA-256 of the client data.
    pub client_data_hash: [u8; 32],
    /// How the user is verified.
    pub verification: Verification<'a>,
    /// The hmac-secret salt, when its output is wanted.
    pub hmac_salt: Option<[u8; 32]>,
}

/// An assertion.
#[derive(Debug)]
pub struct Assertion {
    /// The authenticator data as signed.
    pub auth_data: Vec<u8>,
    /// The ES256 signature (DER) over authenticator data || client data hash.
    pub signature: Vec<u8>,
    /// The flags byte.
    pub flags: u8,
    /// The signature counter.
    pub sign_count: u32,
    /// The hmac-secret output (32 bytes), when a salt was given.
    pub hmac_output: Option<Zeroizing<Vec<u8>>>,
}

/// The authenticator the app APIs use, and (in this process) its platform for status.
pub struct Device {
    transport: Mutex<Box<dyn CtapTransport>>,
    local: Option<Arc<Mutex<Authenticator>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("in_process", &self.local.is_some())
            .finish_non_exhaustive()
    }
}

fn int_map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Integer(k.into()), v))
            .collect(),
    )
}

fn text_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_owned()), v))
            .collect(),
    )
}

impl Device {
    /// An authenticator in this process: status comes from its verifier directly.
    pub fn in_process(authenticator: Arc<Mutex<Authenticator>>) -> Self {
        Self {
            transport: Mutex::new(Box::new(InProcess::shared(Arc::clone(&authenticator)))),
            local: Some(authenticator),
        }
    }

    /// An authenticator behind any transport (e.g. `TcpCtapHid` to `passgate authenticator
    /// serve`): status comes from getInfo.
    pub fn remote(transport: Box<dyn CtapTransport>) -> Self {
        Self {
            transport: Mutex::new(transport),
            local: None,
        }
    }

    /// Runs one CTAP command.
    pub fn call(
        &self,
        cmd: u8,
        params: Option<&Value>,
        interaction: &Interaction,
    ) -> Result<Value, DeviceError> {
        let mut request = vec![cmd];
        if let Some(p) = params {
            request.extend_from_slice(&cbor::encode(p));
        }
        let response = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .call(&request, interaction)?;
        let Some((&status, body)) = response.split_first() else {
            return Err(DeviceError::protocol("an empty response"));
        };
        if status != StatusCode::Ok.byte() {
            return Err(DeviceError::Status(status));
        }
        if body.is_empty() {
            return Ok(Value::Map(Vec::new()));
        }
        Ok(cbor::decode(body)?)
    }

    /// authenticatorGetInfo.
    pub fn info(&self) -> Result<Info, DeviceError> {
        Ok(Info::parse(&self.call(
            command::GET_INFO,
            None,
            &Interaction::new(),
        )?))
    }

    /// The verifier's own status, for an authenticator in this process.
    pub fn verifier_status(&self) -> Option<VerifierStatus> {
        self.local.as_ref().map(|a| {
            a.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .env()
                .user
                .status()
        })
    }

    /// The identity of the current biometric enrollment, for an authenticator in this process.
    pub fn enrollment_state(&self) -> Option<[u8; 32]> {
        self.local.as_ref().and_then(|a| {
            a.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .env()
                .user
                .enrollment_state()
        })
    }

    /// What the key store is (`software`, `tpm`) and its detail, in this process.
    pub fn key_store_info(&self) -> Option<(String, String)> {
        self.local.as_ref().map(|a| {
            let info = a
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .env()
                .key_store
                .info();
            (info.backend.to_owned(), info.detail)
        })
    }

    /// Built-in verifications left before lockout (`None` without a built-in method).
    pub fn uv_retries(&self) -> Result<Option<u8>, DeviceError> {
        let request = int_map(vec![
            (1, Value::Integer(pin::PROTOCOL_NUMBER.into())),
            (2, Value::Integer(0x07.into())),
        ]);
        match self.call(command::CLIENT_PIN, Some(&request), &Interaction::new()) {
            Ok(r) => Ok(integer(int_key(&r, 5)).and_then(|n| u8::try_from(n).ok())),
            Err(e) if e.is(StatusCode::InvalidSubcommand) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PIN tries left.
    pub fn pin_retries(&self) -> Result<u8, DeviceError> {
        let request = int_map(vec![
            (1, Value::Integer(pin::PROTOCOL_NUMBER.into())),
            (2, Value::Integer(0x01.into())),
        ]);
        let r = self.call(command::CLIENT_PIN, Some(&request), &Interaction::new())?;
        integer(int_key(&r, 3))
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| DeviceError::protocol("no pinRetries"))
    }

    fn shared_secret(&self, interaction: &Interaction) -> Result<Shared, DeviceError> {
        let response = self.call(
            command::CLIENT_PIN,
            Some(&int_map(vec![
                (1, Value::Integer(pin::PROTOCOL_NUMBER.into())),
                (2, Value::Integer(pin::sub::GET_KEY_AGREEMENT.into())),
            ])),
            interaction,
        )?;
        Ok(Shared::establish(&response)?)
    }

    /// A pinUvAuthToken for `permissions` on `rp_id`, from the PIN (subcommand 0x09). A wrong
    /// PIN is `Status(PIN_INVALID)`; the authenticator counts it.
    pub fn pin_token(
        &self,
        pin_text: &str,
        permissions: i64,
        rp_id: &str,
        interaction: &Interaction,
    ) -> Result<PinToken, DeviceError> {
        let secret = self.shared_secret(interaction)?;
        let response = self.call(
            command::CLIENT_PIN,
            Some(&int_map(vec![
                (1, Value::Integer(pin::PROTOCOL_NUMBER.into())),
                (2, Value::Integer(pin::sub::GET_TOKEN_USING_PIN.into())),
                (3, secret.platform_key.clone()),
                (6, Value::Bytes(secret.pin_hash_enc(pin_text)?)),
                (9, Value::Integer(permissions.into())),
                (10, Value::Text(rp_id.to_owned())),
            ])),
            interaction,
        )?;
        Ok(PinToken {
            token: secret.token(&response)?,
        })
    }

    /// Sets the first PIN (tests and setup).
    pub fn set_pin(&self, new_pin: &str) -> Result<(), DeviceError> {
        let interaction = Interaction::new();
        let secret = self.shared_secret(&interaction)?;
        let new_pin_enc = secret.new_pin_enc(new_pin)?;
        let param = secret.authenticate(&new_pin_enc);
        self.call(
            command::CLIENT_PIN,
            Some(&int_map(vec![
                (1, Value::Integer(pin::PROTOCOL_NUMBER.into())),
                (2, Value::Integer(pin::sub::SET_PIN.into())),
                (3, secret.platform_key.clone()),
                (4, Value::Bytes(param)),
                (5, Value::Bytes(new_pin_enc)),
            ])),
            &interaction,
        )?;
        Ok(())
    }

    fn hmac_input(secret: &Shared, salt: &[u8; 32]) -> Result<Value, DeviceError> {
        let salt_enc = secret.encrypt(salt)?;
        let salt_auth = secret.authenticate(&salt_enc);
        Ok(int_map(vec![
            (1, secret.platform_key.clone()),
            (2, Value::Bytes(salt_enc)),
            (3, Value::Bytes(salt_auth)),
            (4, Value::Integer(pin::PROTOCOL_NUMBER.into())),
        ]))
    }

    fn hmac_output(
        secret: Option<&Shared>,
        auth_data: &AuthenticatorData,
        name: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, DeviceError> {
        let Some(secret) = secret else {
            return Ok(None);
        };
        let Some(enc) = bytes(
            auth_data
                .extensions
                .as_ref()
                .and_then(|e| text_key(e, name)),
        ) else {
            return Err(DeviceError::protocol(format!("no {name} output")));
        };
        let output = secret.decrypt(enc)?;
        if output.len() != 32 {
            return Err(DeviceError::protocol(format!(
                "{name} output is not 32 bytes"
            )));
        }
        Ok(Some(output))
    }

    /// authenticatorMakeCredential for a non-discoverable ES256 credential.
    pub fn make_credential(
        &self,
        request: &CreateRequest<'_>,
        interaction: &Interaction,
    ) -> Result<Created, DeviceError> {
        let mut ext = Vec::new();
        let mut secret = None;
        if let Some(salt) = &request.hmac_secret {
            ext.push(("hmac-secret", Value::Bool(true)));
            if let Some(salt) = salt {
                let shared = self.shared_secret(interaction)?;
                ext.push(("hmac-secret-mc", Self::hmac_input(&shared, salt)?));
                secret = Some(shared);
            }
        }
        if let Some(level) = request.cred_protect {
            ext.push(("credProtect", Value::Integer(level.into())));
        }
        if request.biometric_set {
            ext.push((BIOMETRIC_SET_EXTENSION, Value::Bool(true)));
        }
        let mut options = vec![("rk", Value::Bool(false))];
        if matches!(request.verification, Verification::Builtin) {
            options.push(("uv", Value::Bool(true)));
        }
        let mut params = vec![
            (1, Value::Bytes(request.client_data_hash.to_vec())),
            (
                2,
                text_map(vec![
                    ("id", Value::Text(request.rp_id.to_owned())),
                    ("name", Value::Text("passgate app".to_owned())),
                ]),
            ),
            (
                3,
                text_map(vec![
                    ("id", Value::Bytes(request.user_id.to_vec())),
                    ("name", Value::Text(request.user_name.to_owned())),
                ]),
            ),
            (
                4,
                Value::Array(vec![text_map(vec![
                    ("alg", Value::Integer((-7).into())),
                    ("type", Value::Text("public-key".into())),
                ])]),
            ),
            (7, text_map(options)),
        ];
        if !ext.is_empty() {
            params.push((6, text_map(ext)));
        }
        if let Verification::Pin(token) = request.verification {
            params.push((
                8,
                Value::Bytes(pin::pin_uv_auth_param(
                    &token.token,
                    &request.client_data_hash,
                )),
            ));
            params.push((9, Value::Integer(pin::PROTOCOL_NUMBER.into())));
        }
        let response = self.call(
            command::MAKE_CREDENTIAL,
            Some(&int_map(params)),
            interaction,
        )?;
        let auth_data_bytes = bytes(int_key(&response, 2))
            .ok_or_else(|| DeviceError::protocol("makeCredential without authData"))?;
        let auth_data = AuthenticatorData::parse(auth_data_bytes)?;
        let attested = auth_data
            .attested
            .clone()
            .ok_or_else(|| DeviceError::protocol("no attested credential data"))?;
        let hmac_output = Self::hmac_output(secret.as_ref(), &auth_data, "hmac-secret-mc")?;
        Ok(Created {
            credential_id: attested.credential_id,
            public_key: attested.public_key,
            flags: auth_data.flags,
            hmac_output,
        })
    }

    /// authenticatorGetAssertion on one credential, with presence.
    pub fn get_assertion(
        &self,
        request: &AssertRequest<'_>,
        interaction: &Interaction,
    ) -> Result<Assertion, DeviceError> {
        let mut params = vec![
            (1, Value::Text(request.rp_id.to_owned())),
            (2, Value::Bytes(request.client_data_hash.to_vec())),
            (
                3,
                Value::Array(vec![text_map(vec![
                    ("id", Value::Bytes(request.credential_id.to_vec())),
                    ("type", Value::Text("public-key".into())),
                ])]),
            ),
        ];
        let mut secret = None;
        if let Some(salt) = &request.hmac_salt {
            let shared = self.shared_secret(interaction)?;
            params.push((
                4,
                text_map(vec![("hmac-secret", Self::hmac_input(&shared, salt)?)]),
            ));
            secret = Some(shared);
        }
        let mut options = vec![("up", Value::Bool(true))];
        if matches!(request.verification, Verification::Builtin) {
            options.push(("uv", Value::Bool(true)));
        }
        params.push((5, text_map(options)));
        if let Verification::Pin(token) = request.verification {
            params.push((
                6,
                Value::Bytes(pin::pin_uv_auth_param(
                    &token.token,
                    &request.client_data_hash,
                )),
            ));
            params.push((7, Value::Integer(pin::PROTOCOL_NUMBER.into())));
        }
        let response = self.call(command::GET_ASSERTION, Some(&int_map(params)), interaction)?;
        let auth_data_bytes = bytes(int_key(&response, 2))
            .ok_or_else(|| DeviceError::protocol("getAssertion without authData"))?
            .to_vec();
        let signature = bytes(int_key(&response, 3))
            .ok_or_else(|| DeviceError::protocol("getAssertion without signature"))?
            .to_vec();
        let auth_data = AuthenticatorData::parse(&auth_data_bytes)?;
        let expected =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, request.rp_id.as_bytes());
        if auth_data.rp_id_hash.as_slice() != expected.as_ref() {
            return Err(DeviceError::protocol("the assertion is for another RP ID"));
        }
        let hmac_output = Self::hmac_output(secret.as_ref(), &auth_data, "hmac-secret")?;
        Ok(Assertion {
            flags: auth_data.flags,
            sign_count: auth_data.sign_count,
            auth_data: auth_data_bytes,
            signature,
            hmac_output,
        })
    }
}

/// The UV flag of authenticator data.
pub fn user_verified(flags: u8) -> bool {
    flags & cbor::flags::UV != 0
}

/// The SubjectPublicKeyInfo (DER) of a COSE P-256 key.
pub fn cose_to_spki(key: &Value) -> Option<Vec<u8>> {
    cbor::cose_to_spki(key)
}
