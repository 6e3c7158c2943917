//! Reading and writing CTAP parameter maps by named key: the one place where CBOR values become
//! typed fields and back. Decoding is lenient about what CTAP allows (unknown keys are ignored)
//! and exact about types; each error names the field and maps to the CTAP status an
//! authenticator answers with.

use ciborium::value::Value;

use super::StatusCode;

/// Why a CTAP message did not decode into its typed form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not one CBOR item.
    #[error("not one CBOR item: {0}")]
    Cbor(String),
    /// A required field is absent.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A field has the wrong CBOR type.
    #[error("{0} has the wrong CBOR type")]
    WrongType(&'static str),
    /// A field has the right type but a value outside its range.
    #[error("{0} has an invalid value")]
    Invalid(&'static str),
}

impl DecodeError {
    /// The CTAP status an authenticator answers for this error (CTAP 2.1 §8.2).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Cbor(_) => StatusCode::InvalidCbor,
            Self::Missing(_) => StatusCode::MissingParameter,
            Self::WrongType(_) => StatusCode::CborUnexpectedType,
            Self::Invalid(_) => StatusCode::InvalidParameter,
        }
    }
}

/// Decodes one CBOR item that spans all of `bytes`. The bytes need not be in canonical form,
/// but the item must have one: a map with the same key twice, a tag or a float (none of which
/// CTAP2 uses, and which the authenticator answers with `CTAP2_ERR_INVALID_CBOR`) is refused
/// here, at any depth, so whatever decodes also encodes again (a raw value kept inside a typed
/// message, such as a COSE key, would otherwise carry it to the encoder).
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, 16)
        .map_err(|e| DecodeError::Cbor(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Cbor("trailing bytes".into()));
    }
    super::canonical::encode(&value).map_err(|e| DecodeError::Cbor(e.to_string()))?;
    Ok(value)
}

/// The entries of a map, taken by key as a message is decoded.
#[derive(Debug)]
pub struct Fields(Vec<(Value, Value)>);

impl Fields {
    /// The entries of `value`, which must be a map (`what` names it in the error).
    pub fn new(value: Value, what: &'static str) -> Result<Self, DecodeError> {
        match value {
            Value::Map(entries) => Ok(Self(entries)),
            _ => Err(DecodeError::WrongType(what)),
        }
    }

    /// Takes the entry with integer key `key`.
    pub fn take(&mut self, key: i64) -> Option<Value> {
        let at = self.0.iter().position(
            |(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == i128::from(key)),
        )?;
        Some(self.0.swap_remove(at).1)
    }

    /// Takes the entry with text key `key`.
    pub fn take_text(&mut self, key: &str) -> Option<Value> {
        let at = self
            .0
            .iter()
            .position(|(k, _)| matches!(k, Value::Text(t) if t == key))?;
        Some(self.0.swap_remove(at).1)
    }

    /// Takes a required entry with integer key `key`.
    pub fn required(&mut self, key: i64, name: &'static str) -> Result<Value, DecodeError> {
        self.take(key).ok_or(DecodeError::Missing(name))
    }

    /// The entries not taken, text-keyed ones as `(name, value)`.
    pub fn rest_text(self) -> Vec<(String, Value)> {
        self.0
            .into_iter()
            .filter_map(|(k, v)| match k {
                Value::Text(t) => Some((t, v)),
                _ => None,
            })
            .collect()
    }
}

/// A byte string.
pub fn bytes(value: Value, name: &'static str) -> Result<Vec<u8>, DecodeError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(DecodeError::WrongType(name)),
    }
}

/// A fixed-length byte string.
pub fn byte_array<const N: usize>(
    value: Value,
    name: &'static str,
) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(bytes(value, name)?).map_err(|_| DecodeError::Invalid(name))
}

/// A text string.
pub fn text(value: Value, name: &'static str) -> Result<String, DecodeError> {
    match value {
        Value::Text(t) => Ok(t),
        _ => Err(DecodeError::WrongType(name)),
    }
}

/// A boolean.
pub fn boolean(value: Value, name: &'static str) -> Result<bool, DecodeError> {
    match value {
        Value::Bool(b) => Ok(b),
        _ => Err(DecodeError::WrongType(name)),
    }
}

/// An integer that fits `T` (`Invalid` when it does not).
pub fn integer<T: TryFrom<i128>>(value: Value, name: &'static str) -> Result<T, DecodeError> {
    match value {
        Value::Integer(i) => T::try_from(i128::from(i)).map_err(|_| DecodeError::Invalid(name)),
        _ => Err(DecodeError::WrongType(name)),
    }
}

/// An array, each item decoded by `item`.
pub fn array<T>(
    value: Value,
    name: &'static str,
    item: impl Fn(Value) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    match value {
        Value::Array(items) => items.into_iter().map(item).collect(),
        _ => Err(DecodeError::WrongType(name)),
    }
}

/// A map's entries, for fields that must be a map but keep their content as values (COSE keys,
/// attestation statements).
pub fn map(value: Value, name: &'static str) -> Result<Value, DecodeError> {
    match value {
        Value::Map(_) => Ok(value),
        _ => Err(DecodeError::WrongType(name)),
    }
}

/// Builds a map from fields, leaving out the absent ones, in the order given (the canonical
/// encoder sorts).
#[derive(Debug, Default)]
pub struct MapBuilder(Vec<(Value, Value)>);

impl MapBuilder {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds integer key `key` when `value` is present.
    pub fn int(mut self, key: i64, value: Option<Value>) -> Self {
        if let Some(v) = value {
            self.0.push((Value::Integer(key.into()), v));
        }
        self
    }

    /// Adds text key `key` when `value` is present.
    pub fn text(mut self, key: &str, value: Option<Value>) -> Self {
        if let Some(v) = value {
            self.0.push((Value::Text(key.to_owned()), v));
        }
        self
    }

    /// Adds already-named text entries.
    pub fn extend_text(mut self, entries: &[(String, Value)]) -> Self {
        self.0.extend(
            entries
                .iter()
                .map(|(k, v)| (Value::Text(k.clone()), v.clone())),
        );
        self
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The map.
    pub fn build(self) -> Value {
        Value::Map(self.0)
    }
}

/// Byte-string value.
pub fn b(bytes: &[u8]) -> Value {
    Value::Bytes(bytes.to_vec())
}

/// Text value.
pub fn t(text: &str) -> Value {
    Value::Text(text.to_owned())
}

/// Integer value.
pub fn i<T: Into<ciborium::value::Integer>>(n: T) -> Value {
    Value::Integer(n.into())
}
