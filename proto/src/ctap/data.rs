//! The structures CTAP requests and responses share (CTAP 2.1 §6.1, WebAuthn §5.4): RP and user
//! entities, credential descriptors and parameters, and the options map.

use ciborium::value::Value;

use super::fields::{self, DecodeError, Fields, MapBuilder, b, i, t};

/// The only credential type: `"public-key"`.
pub const PUBLIC_KEY: &str = "public-key";

/// `PublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpEntity {
    /// The RP ID.
    pub id: String,
    /// A display name.
    pub name: Option<String>,
}

impl RpEntity {
    /// `{"id": ..., "name": ...}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .text("id", Some(t(&self.id)))
            .text("name", self.name.as_deref().map(t))
            .build()
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "rp")?;
        Ok(Self {
            id: fields::text(
                f.take_text("id").ok_or(DecodeError::Missing("rp.id"))?,
                "rp.id",
            )?,
            name: f
                .take_text("name")
                .map(|v| fields::text(v, "rp.name"))
                .transpose()?,
        })
    }
}

/// `PublicKeyCredentialUserEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntity {
    /// The user handle.
    pub id: Vec<u8>,
    /// The account name.
    pub name: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
}

impl UserEntity {
    /// `{"id": ..., "name": ..., "displayName": ...}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .text("id", Some(b(&self.id)))
            .text("name", self.name.as_deref().map(t))
            .text("displayName", self.display_name.as_deref().map(t))
            .build()
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "user")?;
        Ok(Self {
            id: fields::bytes(
                f.take_text("id").ok_or(DecodeError::Missing("user.id"))?,
                "user.id",
            )?,
            name: f
                .take_text("name")
                .map(|v| fields::text(v, "user.name"))
                .transpose()?,
            display_name: f
                .take_text("displayName")
                .map(|v| fields::text(v, "user.displayName"))
                .transpose()?,
        })
    }
}

/// `PublicKeyCredentialDescriptor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDescriptor {
    /// The credential type (`"public-key"`; others are carried, not understood).
    pub kind: String,
    /// The credential ID.
    pub id: Vec<u8>,
    /// Transport hints.
    pub transports: Option<Vec<String>>,
}

impl CredentialDescriptor {
    /// A `public-key` descriptor for `id`.
    pub fn public_key(id: &[u8]) -> Self {
        Self {
            kind: PUBLIC_KEY.to_owned(),
            id: id.to_vec(),
            transports: None,
        }
    }

    /// `{"id": ..., "type": ..., "transports": [...]}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .text("id", Some(b(&self.id)))
            .text("type", Some(t(&self.kind)))
            .text(
                "transports",
                self.transports
                    .as_ref()
                    .map(|ts| Value::Array(ts.iter().map(|s| t(s)).collect())),
            )
            .build()
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "credential descriptor")?;
        Ok(Self {
            kind: fields::text(
                f.take_text("type")
                    .ok_or(DecodeError::Missing("descriptor.type"))?,
                "descriptor.type",
            )?,
            id: fields::bytes(
                f.take_text("id")
                    .ok_or(DecodeError::Missing("descriptor.id"))?,
                "descriptor.id",
            )?,
            transports: f
                .take_text("transports")
                .map(|v| {
                    fields::array(v, "descriptor.transports", |s| {
                        fields::text(s, "descriptor.transports")
                    })
                })
                .transpose()?,
        })
    }
}

/// `PublicKeyCredentialParameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialParameter {
    /// The credential type (`"public-key"`).
    pub kind: String,
    /// The COSE algorithm identifier.
    pub alg: i64,
}

impl CredentialParameter {
    /// A `public-key` parameter for COSE algorithm `alg`.
    pub fn public_key(alg: i64) -> Self {
        Self {
            kind: PUBLIC_KEY.to_owned(),
            alg,
        }
    }

    /// `{"alg": ..., "type": ...}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .text("alg", Some(i(self.alg)))
            .text("type", Some(t(&self.kind)))
            .build()
    }

    /// Reads the map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "pubKeyCredParams item")?;
        Ok(Self {
            alg: fields::integer(
                f.take_text("alg")
                    .ok_or(DecodeError::Missing("pubKeyCredParams.alg"))?,
                "pubKeyCredParams.alg",
            )?,
            kind: fields::text(
                f.take_text("type")
                    .ok_or(DecodeError::Missing("pubKeyCredParams.type"))?,
                "pubKeyCredParams.type",
            )?,
        })
    }
}

/// The options map of makeCredential and getAssertion: `rk`, `up`, `uv`, each absent unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Store a discoverable credential (makeCredential only).
    pub rk: Option<bool>,
    /// Test user presence (getAssertion; makeCredential accepts only `true`).
    pub up: Option<bool>,
    /// Verify the user with the built-in method.
    pub uv: Option<bool>,
}

impl Options {
    /// The map, or `None` when no option is set.
    pub fn to_value(&self) -> Option<Value> {
        let map = MapBuilder::new()
            .text("rk", self.rk.map(Value::Bool))
            .text("up", self.up.map(Value::Bool))
            .text("uv", self.uv.map(Value::Bool));
        (!map.is_empty()).then(|| map.build())
    }

    /// Reads the map (other options are ignored).
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value, "options")?;
        let mut option = |name: &'static str| {
            f.take_text(name)
                .map(|v| fields::boolean(v, "options"))
                .transpose()
        };
        Ok(Self {
            rk: option("rk")?,
            up: option("up")?,
            uv: option("uv")?,
        })
    }
}

/// A list of descriptors, as excludeList/allowList carry it.
pub fn descriptors_to_value(list: &[CredentialDescriptor]) -> Value {
    Value::Array(list.iter().map(CredentialDescriptor::to_value).collect())
}

/// Reads a descriptor list.
pub fn descriptors_from_value(
    value: Value,
    name: &'static str,
) -> Result<Vec<CredentialDescriptor>, DecodeError> {
    fields::array(value, name, CredentialDescriptor::from_value)
}
