//! CTAP 2.1 extensions (§12): the inputs a platform sends in makeCredential/getAssertion and the
//! outputs an authenticator puts in authenticator data. Extensions passgate does not know are
//! carried as `other` entries, so a request or an answer survives a round trip unchanged.

use ciborium::value::Value;

use super::StatusCode;
use super::cbor::{TextMap, ValueExt};
use super::fields::{self, DecodeError, Fields, MapBuilder, b, i};
use super::strict;

/// `hmac-secret`.
pub const HMAC_SECRET: &str = "hmac-secret";
/// `hmac-secret-mc` (CTAP 2.2): hmac-secret evaluated at creation.
pub const HMAC_SECRET_MC: &str = "hmac-secret-mc";
/// `credProtect`.
pub const CRED_PROTECT: &str = "credProtect";
/// `credBlob`.
pub const CRED_BLOB: &str = "credBlob";
/// `largeBlobKey`.
pub const LARGE_BLOB_KEY: &str = "largeBlobKey";
/// `minPinLength`.
pub const MIN_PIN_LENGTH: &str = "minPinLength";

/// passgate's own extension (`true`): bind the credential to the current biometric
/// enrollment, so that it stops working when fingerprints are enrolled or deleted.
pub const BIOMETRIC_SET: &str = "passgateBiometricSet";

/// credProtect levels (§12.1).
pub mod cred_protect {
    /// userVerificationOptional.
    pub const UV_OPTIONAL: u8 = 1;
    /// userVerificationOptionalWithCredentialIDList.
    pub const UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST: u8 = 2;
    /// userVerificationRequired.
    pub const UV_REQUIRED: u8 = 3;
}

/// The hmac-secret input (§12.5): the platform's key-agreement key and the encrypted salts.
#[derive(Debug, Clone, PartialEq)]
pub struct HmacSecretInput {
    /// The platform's COSE_Key.
    pub key_agreement: Value,
    /// One or two 32-byte salts, encrypted under the shared secret.
    pub salt_enc: Vec<u8>,
    /// authenticate(sharedSecret, saltEnc).
    pub salt_auth: Vec<u8>,
    /// The PIN/UV auth protocol (absent means 1), as sent.
    pub protocol: Option<u64>,
}

impl HmacSecretInput {
    /// The input map (keys 1 to 4).
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .int(1, Some(self.key_agreement.clone()))
            .int(2, Some(b(&self.salt_enc)))
            .int(3, Some(b(&self.salt_auth)))
            .int(4, self.protocol.map(i))
            .build()
    }

    /// Reads the input map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, HMAC_SECRET)?;
        Ok(Self {
            key_agreement: fields::map(
                f.required(1, "hmac-secret keyAgreement")?,
                "hmac-secret keyAgreement",
            )?,
            salt_enc: fields::bytes(f.required(2, "hmac-secret saltEnc")?, "hmac-secret saltEnc")?,
            salt_auth: fields::bytes(
                f.required(3, "hmac-secret saltAuth")?,
                "hmac-secret saltAuth",
            )?,
            protocol: f
                .take(4)
                .map(|v| fields::integer(v, "hmac-secret pinUvAuthProtocol"))
                .transpose()?,
        })
    }
}

/// makeCredential extension inputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MakeCredentialExtensions {
    /// `hmac-secret: true`: make the credential's HMAC secrets.
    pub hmac_secret: Option<bool>,
    /// `hmac-secret-mc`: evaluate hmac-secret at creation.
    pub hmac_secret_mc: Option<HmacSecretInput>,
    /// `credProtect` level.
    pub cred_protect: Option<u8>,
    /// `credBlob` to store with the credential.
    pub cred_blob: Option<Vec<u8>>,
    /// `largeBlobKey: true`.
    pub large_blob_key: Option<bool>,
    /// `minPinLength: true`.
    pub min_pin_length: Option<bool>,
    /// Extensions this crate does not type, as sent.
    pub other: Vec<(String, Value)>,
}

impl MakeCredentialExtensions {
    /// The map, `None` when there is no extension.
    pub fn to_value(&self) -> Option<Value> {
        let map = MapBuilder::new()
            .text(HMAC_SECRET, self.hmac_secret.map(Value::Bool))
            .text(
                HMAC_SECRET_MC,
                self.hmac_secret_mc.as_ref().map(HmacSecretInput::to_value),
            )
            .text(CRED_PROTECT, self.cred_protect.map(i))
            .text(CRED_BLOB, self.cred_blob.as_deref().map(b))
            .text(LARGE_BLOB_KEY, self.large_blob_key.map(Value::Bool))
            .text(MIN_PIN_LENGTH, self.min_pin_length.map(Value::Bool))
            .extend_text(&self.other);
        (!map.is_empty()).then(|| map.build())
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "extensions")?;
        Ok(Self {
            hmac_secret: f
                .take_text(HMAC_SECRET)
                .map(|v| fields::boolean(v, HMAC_SECRET))
                .transpose()?,
            hmac_secret_mc: f
                .take_text(HMAC_SECRET_MC)
                .map(HmacSecretInput::from_value)
                .transpose()?,
            cred_protect: f
                .take_text(CRED_PROTECT)
                .map(|v| fields::integer(v, CRED_PROTECT))
                .transpose()?,
            cred_blob: f
                .take_text(CRED_BLOB)
                .map(|v| fields::bytes(v, CRED_BLOB))
                .transpose()?,
            large_blob_key: f
                .take_text(LARGE_BLOB_KEY)
                .map(|v| fields::boolean(v, LARGE_BLOB_KEY))
                .transpose()?,
            min_pin_length: f
                .take_text(MIN_PIN_LENGTH)
                .map(|v| fields::boolean(v, MIN_PIN_LENGTH))
                .transpose()?,
            other: f.rest_text(),
        })
    }
}

impl MakeCredentialExtensions {
    /// The authenticator's decoding (see [`super::strict`]): the extensions it implements in
    /// the order it reads them, each of the exact type; a credProtect level outside 1–3 is
    /// `INVALID_PARAMETER`, `largeBlobKey: false` `INVALID_OPTION`. hmac-secret-mc counts only
    /// beside `hmac-secret: true` (otherwise it is dropped unread). [`BIOMETRIC_SET`] and the
    /// extensions it does not know are kept in `other`.
    pub fn decode_strict(value: Value) -> Result<Self, StatusCode> {
        let mut map = TextMap::new(value.ctap_map()?)?;
        let cred_protect = match map.take(CRED_PROTECT) {
            None => None,
            Some(level) => {
                let level =
                    u8::try_from(level.ctap_uint()?).map_err(|_| StatusCode::InvalidParameter)?;
                if !(cred_protect::UV_OPTIONAL..=cred_protect::UV_REQUIRED).contains(&level) {
                    return Err(StatusCode::InvalidParameter);
                }
                Some(level)
            }
        };
        let hmac_secret = map.take(HMAC_SECRET).map(Value::ctap_bool).transpose()?;
        let hmac_secret_mc = match map.take(HMAC_SECRET_MC) {
            Some(input) if hmac_secret == Some(true) => Some(strict::hmac_secret_input(input)?),
            Some(_) | None => None,
        };
        let cred_blob = map.take(CRED_BLOB).map(Value::ctap_bytes).transpose()?;
        let biometric_set = map.take(BIOMETRIC_SET).map(Value::ctap_bool).transpose()?;
        let large_blob_key = strict::large_blob_key(map.take(LARGE_BLOB_KEY))?;
        let min_pin_length = map.take(MIN_PIN_LENGTH).map(Value::ctap_bool).transpose()?;
        let mut other: Vec<(String, Value)> = biometric_set
            .map(|set| (BIOMETRIC_SET.to_owned(), Value::Bool(set)))
            .into_iter()
            .collect();
        other.extend(map.into_rest());
        Ok(Self {
            hmac_secret,
            hmac_secret_mc,
            cred_protect,
            cred_blob,
            large_blob_key,
            min_pin_length,
            other,
        })
    }

    /// Whether [`BIOMETRIC_SET`] is asked for.
    pub fn biometric_set(&self) -> bool {
        self.other
            .iter()
            .any(|(name, value)| name == BIOMETRIC_SET && *value == Value::Bool(true))
    }
}

/// getAssertion extension inputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetAssertionExtensions {
    /// `hmac-secret`: the salts to evaluate.
    pub hmac_secret: Option<HmacSecretInput>,
    /// `credBlob: true`: return the stored blob.
    pub cred_blob: Option<bool>,
    /// `largeBlobKey: true`.
    pub large_blob_key: Option<bool>,
    /// Extensions this crate does not type, as sent.
    pub other: Vec<(String, Value)>,
}

impl GetAssertionExtensions {
    /// The map, `None` when there is no extension.
    pub fn to_value(&self) -> Option<Value> {
        let map = MapBuilder::new()
            .text(
                HMAC_SECRET,
                self.hmac_secret.as_ref().map(HmacSecretInput::to_value),
            )
            .text(CRED_BLOB, self.cred_blob.map(Value::Bool))
            .text(LARGE_BLOB_KEY, self.large_blob_key.map(Value::Bool))
            .extend_text(&self.other);
        (!map.is_empty()).then(|| map.build())
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "extensions")?;
        Ok(Self {
            hmac_secret: f
                .take_text(HMAC_SECRET)
                .map(HmacSecretInput::from_value)
                .transpose()?,
            cred_blob: f
                .take_text(CRED_BLOB)
                .map(|v| fields::boolean(v, CRED_BLOB))
                .transpose()?,
            large_blob_key: f
                .take_text(LARGE_BLOB_KEY)
                .map(|v| fields::boolean(v, LARGE_BLOB_KEY))
                .transpose()?,
            other: f.rest_text(),
        })
    }
}

impl GetAssertionExtensions {
    /// The authenticator's decoding (see [`super::strict`]): hmac-secret, then `credBlob: true`
    /// (the authenticator extension's name; `getCredBlob` is the WebAuthn client extension's),
    /// then largeBlobKey (`false` is `INVALID_OPTION`); other extensions are kept in `other`.
    pub fn decode_strict(value: Value) -> Result<Self, StatusCode> {
        let mut map = TextMap::new(value.ctap_map()?)?;
        let hmac_secret = map
            .take(HMAC_SECRET)
            .map(strict::hmac_secret_input)
            .transpose()?;
        let cred_blob = map.take(CRED_BLOB).map(Value::ctap_bool).transpose()?;
        let large_blob_key = strict::large_blob_key(map.take(LARGE_BLOB_KEY))?;
        Ok(Self {
            hmac_secret,
            cred_blob,
            large_blob_key,
            other: map.into_rest(),
        })
    }
}

/// What an extension output is: a flag at creation, bytes at assertion (hmac-secret, credBlob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagOrBytes {
    /// makeCredential: whether the authenticator honoured the extension.
    Flag(bool),
    /// getAssertion: the output bytes (hmac-secret: encrypted under the shared secret).
    Bytes(Vec<u8>),
}

impl FlagOrBytes {
    fn to_value(&self) -> Value {
        match self {
            Self::Flag(f) => Value::Bool(*f),
            Self::Bytes(bytes) => b(bytes),
        }
    }

    fn from_value(value: Value, name: &'static str) -> Result<Self, DecodeError> {
        match value {
            Value::Bool(f) => Ok(Self::Flag(f)),
            Value::Bytes(bytes) => Ok(Self::Bytes(bytes)),
            _ => Err(DecodeError::WrongType(name)),
        }
    }

    /// The bytes, when this is an output value.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            Self::Flag(_) => None,
        }
    }
}

/// The extension outputs in authenticator data (the ED map).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtensionOutputs {
    /// `hmac-secret`.
    pub hmac_secret: Option<FlagOrBytes>,
    /// `hmac-secret-mc`: the encrypted output at creation.
    pub hmac_secret_mc: Option<Vec<u8>>,
    /// `credProtect`: the level the credential got.
    pub cred_protect: Option<u8>,
    /// `credBlob`.
    pub cred_blob: Option<FlagOrBytes>,
    /// `minPinLength`.
    pub min_pin_length: Option<u64>,
    /// Outputs this crate does not type, as sent.
    pub other: Vec<(String, Value)>,
}

impl ExtensionOutputs {
    /// The map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .text(
                HMAC_SECRET,
                self.hmac_secret.as_ref().map(FlagOrBytes::to_value),
            )
            .text(HMAC_SECRET_MC, self.hmac_secret_mc.as_deref().map(b))
            .text(CRED_PROTECT, self.cred_protect.map(i))
            .text(
                CRED_BLOB,
                self.cred_blob.as_ref().map(FlagOrBytes::to_value),
            )
            .text(MIN_PIN_LENGTH, self.min_pin_length.map(i))
            .extend_text(&self.other)
            .build()
    }

    /// Reads the map (as [`crate::AuthenticatorData::extensions`] holds it).
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "extension outputs")?;
        Ok(Self {
            hmac_secret: f
                .take_text(HMAC_SECRET)
                .map(|v| FlagOrBytes::from_value(v, HMAC_SECRET))
                .transpose()?,
            hmac_secret_mc: f
                .take_text(HMAC_SECRET_MC)
                .map(|v| fields::bytes(v, HMAC_SECRET_MC))
                .transpose()?,
            cred_protect: f
                .take_text(CRED_PROTECT)
                .map(|v| fields::integer(v, CRED_PROTECT))
                .transpose()?,
            cred_blob: f
                .take_text(CRED_BLOB)
                .map(|v| FlagOrBytes::from_value(v, CRED_BLOB))
                .transpose()?,
            min_pin_length: f
                .take_text(MIN_PIN_LENGTH)
                .map(|v| fields::integer(v, MIN_PIN_LENGTH))
                .transpose()?,
            other: f.rest_text(),
        })
    }
}
