//! Strict CTAP2 canonical CBOR: decoding that rejects anything non-canonical, an encoder that
//! always produces canonical output, and typed accessors that map type errors to the exact
//! CTAP status codes.
//!
//! Decoding uses `ciborium` for the item structure; canonical form is then checked by
//! re-encoding canonically and comparing bytes, which catches non-shortest integers and lengths,
//! indefinite-length items and unsorted maps in one rule. Duplicate keys, tags and floats are
//! rejected explicitly (CTAP2 uses none of them).

use ciborium::value::Value;

use super::status::StatusCode;

/// Deepest nesting accepted in a request (CTAP structures need 4; leave headroom).
const MAX_DEPTH: usize = 16;

/// Decodes exactly one canonical CBOR item that spans all of `bytes`.
pub fn decode_canonical(bytes: &[u8]) -> Result<Value, StatusCode> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|_| StatusCode::InvalidCbor)?;
    if !reader.is_empty() {
        return Err(StatusCode::InvalidCbor);
    }
    let mut canonical = Vec::with_capacity(bytes.len());
    encode_into(&value, &mut canonical)?;
    if canonical != bytes {
        return Err(StatusCode::InvalidCbor);
    }
    Ok(value)
}

/// Encodes a value in CTAP2 canonical form (maps sorted, shortest lengths), with
/// `passgate-proto`'s encoder, the one both ends of the wire use.
pub fn encode(value: &Value) -> Vec<u8> {
    // Values built by this crate never hold tags/floats/duplicate keys, so this cannot fail;
    // if it ever did, an empty body makes the caller's response an obvious error.
    crate::ctap::canonical::encode(value).unwrap_or_default()
}

fn encode_into(value: &Value, out: &mut Vec<u8>) -> Result<(), StatusCode> {
    crate::ctap::canonical::encode_into(value, out).map_err(|_| StatusCode::InvalidCbor)
}

/// Integer-keyed parameters of a request map. Keys that are not small unsigned integers are
/// ignored like unknown keys (forward compatibility, as CTAP asks).
pub struct Params {
    entries: Vec<(u64, Value)>,
}

impl Params {
    /// Parses a command's CBOR parameter map. An empty body is an empty map.
    pub fn parse(body: &[u8]) -> Result<Self, StatusCode> {
        if body.is_empty() {
            return Ok(Self {
                entries: Vec::new(),
            });
        }
        match decode_canonical(body)? {
            Value::Map(map) => Ok(Self::from_map(map)),
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }

    /// Parameters from an already decoded value, which must be a map.
    pub fn from_value(value: Value) -> Result<Self, StatusCode> {
        Ok(Self::from_map(value.ctap_map()?))
    }

    /// No parameters.
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    fn from_map(map: Vec<(Value, Value)>) -> Self {
        let entries = map
            .into_iter()
            .filter_map(|(k, v)| match k {
                Value::Integer(i) => u64::try_from(i128::from(i)).ok().map(|k| (k, v)),
                _ => None,
            })
            .collect();
        Self { entries }
    }

    /// Removes and returns the value under `key`.
    pub fn take(&mut self, key: u64) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| *k == key)?;
        Some(self.entries.swap_remove(pos).1)
    }

    /// A required parameter.
    pub fn required(&mut self, key: u64) -> Result<Value, StatusCode> {
        self.take(key).ok_or(StatusCode::MissingParameter)
    }
}

/// Typed views of a CBOR value; a wrong type is CTAP2_ERR_CBOR_UNEXPECTED_TYPE.
pub trait ValueExt: Sized {
    /// A byte string.
    fn ctap_bytes(self) -> Result<Vec<u8>, StatusCode>;
    /// A text string.
    fn ctap_text(self) -> Result<String, StatusCode>;
    /// A map.
    fn ctap_map(self) -> Result<Vec<(Value, Value)>, StatusCode>;
    /// An array.
    fn ctap_array(self) -> Result<Vec<Value>, StatusCode>;
    /// A boolean.
    fn ctap_bool(self) -> Result<bool, StatusCode>;
    /// An unsigned integer.
    fn ctap_uint(self) -> Result<u64, StatusCode>;
    /// Any integer.
    fn ctap_int(self) -> Result<i64, StatusCode>;
}

impl ValueExt for Value {
    fn ctap_bytes(self) -> Result<Vec<u8>, StatusCode> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }

    fn ctap_text(self) -> Result<String, StatusCode> {
        match self {
            Value::Text(t) => Ok(t),
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }

    fn ctap_map(self) -> Result<Vec<(Value, Value)>, StatusCode> {
        match self {
            Value::Map(m) => Ok(m),
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }

    fn ctap_array(self) -> Result<Vec<Value>, StatusCode> {
        match self {
            Value::Array(a) => Ok(a),
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }

    fn ctap_bool(self) -> Result<bool, StatusCode> {
        match self {
            Value::Bool(b) => Ok(b),
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }

    fn ctap_uint(self) -> Result<u64, StatusCode> {
        match self {
            Value::Integer(i) => {
                u64::try_from(i128::from(i)).map_err(|_| StatusCode::CborUnexpectedType)
            }
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }

    fn ctap_int(self) -> Result<i64, StatusCode> {
        match self {
            Value::Integer(i) => {
                i64::try_from(i128::from(i)).map_err(|_| StatusCode::CborUnexpectedType)
            }
            _ => Err(StatusCode::CborUnexpectedType),
        }
    }
}

/// Text-keyed members of a CBOR map (entities, descriptors, options).
pub struct TextMap {
    entries: Vec<(String, Value)>,
}

impl TextMap {
    /// Takes a map whose keys must all be text strings.
    pub fn new(map: Vec<(Value, Value)>) -> Result<Self, StatusCode> {
        let entries = map
            .into_iter()
            .map(|(k, v)| match k {
                Value::Text(t) => Ok((t, v)),
                _ => Err(StatusCode::CborUnexpectedType),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Removes and returns the member `key`.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(pos).1)
    }

    /// The members left after the known ones were taken.
    pub fn into_rest(self) -> Vec<(String, Value)> {
        self.entries
    }
}

/// Builds a canonical map from integer keys (order does not matter: the encoder sorts).
pub fn int_map<const N: usize>(entries: [(i64, Option<Value>); N]) -> Value {
    Value::Map(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (Value::Integer(k.into()), v)))
            .collect(),
    )
}

/// Builds a map from text keys.
pub fn text_map<const N: usize>(entries: [(&str, Option<Value>); N]) -> Value {
    Value::Map(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (Value::Text(k.to_owned()), v)))
            .collect(),
    )
}

/// An integer value.
pub fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

/// An unsigned integer value from a `usize`.
pub fn uint(n: usize) -> Value {
    Value::Integer(u64::try_from(n).unwrap_or(u64::MAX).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn accepts_canonical_map() {
        // {1: h'00', 2: "a"}
        let v = decode_canonical(&hex("a2014100026161")).unwrap();
        assert_eq!(encode(&v), hex("a2014100026161"));
    }

    #[test]
    fn rejects_non_canonical_encodings() {
        for bad in [
            "a20141",         // truncated
            "a2026161014100", // keys unsorted (2 before 1)
            "a201000100",     // duplicate key 1
            "1817",           // 23 encoded in two bytes
            "190017",         // 23 encoded in three bytes
            "5f4100ff",       // indefinite byte string
            "c240",           // tag
            "f93c00",         // half float
            "a10101ff",       // trailing byte
            "",               // nothing
            "ff",             // lone break
        ] {
            assert_eq!(
                decode_canonical(&hex(bad)).err(),
                Some(StatusCode::InvalidCbor),
                "{bad}"
            );
        }
        assert!(decode_canonical(&hex("a1186101")).is_ok());
    }

    #[test]
    fn text_keys_sort_length_first() {
        let v = text_map([
            ("plat", Some(Value::Bool(false))),
            ("rk", Some(Value::Bool(true))),
            ("up", Some(Value::Bool(true))),
        ]);
        // {"rk": true, "up": true, "plat": false}
        assert_eq!(encode(&v), hex("a362726bf5627570f564706c6174f4"));
    }

    #[test]
    fn int_keys_sort_unsigned_before_negative() {
        let v = int_map([(-1, Some(int(1))), (3, Some(int(-7))), (1, Some(int(2)))]);
        assert_eq!(encode(&v), hex("a3010203262001"));
    }

    #[test]
    fn typed_access_reports_unexpected_type() {
        assert_eq!(int(1).ctap_bytes(), Err(StatusCode::CborUnexpectedType));
        assert_eq!(
            Value::Text("x".into()).ctap_bool(),
            Err(StatusCode::CborUnexpectedType)
        );
        assert_eq!(int(-1).ctap_uint(), Err(StatusCode::CborUnexpectedType));
        let mut p = Params::parse(&hex("a10102")).unwrap();
        assert_eq!(p.required(2).err(), Some(StatusCode::MissingParameter));
        assert_eq!(p.required(1).unwrap().ctap_uint(), Ok(2));
        assert_eq!(
            Params::parse(&hex("8101")).err(),
            Some(StatusCode::CborUnexpectedType)
        );
    }
}
