//! CBOR helpers for CTAP 2.1 messages the typed requests of `passgate_proto::ctap` do not
//! cover yet: building requests from values, splitting and reading responses by key.

use ciborium::value::Value;
use passgate_proto::ctap::StatusCode;

use crate::error::ClientError;

/// A CTAP request: the command byte, then its parameters in canonical CBOR.
pub fn request(command: u8, params: Option<&Value>) -> Vec<u8> {
    let mut request = vec![command];
    if let Some(p) = params {
        request.extend_from_slice(&encode(p));
    }
    request
}

/// Splits a CTAP response: `Ok(Ok(body))` for status OK (an empty body is the empty map),
/// `Ok(Err(status))` for any other status (its body unread), and an error for an empty
/// response or a body that is not one CBOR item.
pub fn reply(response: &[u8]) -> Result<Result<Value, u8>, ClientError> {
    let Some((&status, body)) = response.split_first() else {
        return Err(ClientError::protocol(
            "the authenticator sent an empty response",
        ));
    };
    if status != StatusCode::Ok.byte() {
        return Ok(Err(status));
    }
    if body.is_empty() {
        return Ok(Ok(Value::Map(Vec::new())));
    }
    decode(body).map(Ok)
}

/// A map with integer keys (CTAP parameters), in the order given.
pub fn int_map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Integer(k.into()), v))
            .collect(),
    )
}

/// A map with text keys, in the order given.
pub fn text_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_owned()), v))
            .collect(),
    )
}

/// The `pubKeyCredParams` list (type `public-key`) for COSE algorithm identifiers.
pub fn credential_parameters(algorithms: &[i64]) -> Value {
    Value::Array(
        algorithms
            .iter()
            .map(|alg| {
                text_map(vec![
                    ("alg", Value::Integer((*alg).into())),
                    ("type", Value::Text("public-key".into())),
                ])
            })
            .collect(),
    )
}

/// The `PublicKeyCredentialDescriptor` list (type `public-key`) for credential IDs.
pub fn descriptor_list<I: AsRef<[u8]>>(ids: &[I]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| {
                text_map(vec![
                    ("id", Value::Bytes(id.as_ref().to_vec())),
                    ("type", Value::Text("public-key".into())),
                ])
            })
            .collect(),
    )
}

/// Decodes one CBOR item that spans all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, ClientError> {
    let mut rest = bytes;
    let value: Value = ciborium::from_reader(&mut rest)
        .map_err(|e| ClientError::protocol(format!("the authenticator sent bad CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(ClientError::protocol(
            "the authenticator sent trailing bytes after its CBOR response",
        ));
    }
    Ok(value)
}

/// Encodes in CTAP2 canonical form (the authenticator rejects anything else).
pub fn encode(value: &Value) -> Vec<u8> {
    // Values built by passgate hold no tags, floats or duplicate keys, so this cannot fail; if
    // it ever did, the authenticator refuses the empty body.
    passgate_proto::ctap::canonical::encode(value).unwrap_or_default()
}

/// A map entry by integer key.
pub fn int_key(value: &Value, key: i64) -> Option<&Value> {
    let Value::Map(entries) = value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == i128::from(key)))
        .map(|(_, v)| v)
}

/// A map entry by text key.
pub fn text_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let Value::Map(entries) = value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v)
}

/// The bytes of a byte-string value.
pub fn bytes(value: Option<&Value>) -> Option<&[u8]> {
    match value {
        Some(Value::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// An integer value that fits an `i64`.
pub fn integer(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Integer(i)) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

/// A text value.
pub fn text(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::Text(t)) => Some(t),
        _ => None,
    }
}
