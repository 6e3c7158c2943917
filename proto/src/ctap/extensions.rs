//! CTAP 2.1 extensions (§12): the inputs a platform sends in makeCredential/getAssertion and the
//! outputs an authenticator puts in authenticator data. Extensions passgate does not know are
//! carried as `other` entries, so a request or an answer survives a round trip unchanged.

use ciborium::value::Value;

use super::fields::{self, DecodeError, Fields, MapBuilder, b, i};

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
    /// The PIN/UV auth protocol (absent means 1).
    pub protocol: Option<u8>,
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
