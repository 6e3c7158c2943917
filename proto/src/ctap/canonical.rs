//! CTAP2 canonical CBOR encoding (CTAP 2.1 §8): shortest integer and length forms, definite
//! lengths, map keys sorted by major type, then encoded length, then bytes. The authenticator
//! checks requests against it and both ends write with it.

use ciborium::value::{Integer, Value};

/// A value that has no CTAP2 canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Tags, floats and simple values other than booleans and null are not used by CTAP2.
    #[error("CTAP2 CBOR has no tags, floats or other simple values")]
    UnsupportedItem,
    /// An integer outside the CBOR range.
    #[error("integer out of range")]
    IntegerRange,
    /// A map with the same key twice.
    #[error("duplicate map key")]
    DuplicateKey,
}

/// Encodes `value` in CTAP2 canonical form.
pub fn encode(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(128);
    encode_into(value, &mut out)?;
    Ok(out)
}

fn header(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    if let Some(small) = u8::try_from(len).ok().filter(|l| *l < 24) {
        out.push(m | small);
    } else if let Ok(b) = u8::try_from(len) {
        out.push(m | 24);
        out.push(b);
    } else if let Ok(s) = u16::try_from(len) {
        out.push(m | 25);
        out.extend_from_slice(&s.to_be_bytes());
    } else if let Ok(w) = u32::try_from(len) {
        out.push(m | 26);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn encode_integer(i: Integer, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let n = i128::from(i);
    if n >= 0 {
        header(
            out,
            0,
            u64::try_from(n).map_err(|_| CanonicalError::IntegerRange)?,
        );
    } else {
        let m = u64::try_from(-1 - n).map_err(|_| CanonicalError::IntegerRange)?;
        header(out, 1, m);
    }
    Ok(())
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Integer(i) => encode_integer(*i, out)?,
        Value::Bytes(b) => {
            header(out, 2, len_u64(b.len()));
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            header(out, 3, len_u64(t.len()));
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(items) => {
            header(out, 4, len_u64(items.len()));
            for item in items {
                encode_into(item, out)?;
            }
        }
        Value::Map(entries) => {
            header(out, 5, len_u64(entries.len()));
            let mut encoded: Vec<(Vec<u8>, &Value)> = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let mut key = Vec::with_capacity(16);
                encode_into(k, &mut key)?;
                encoded.push((key, v));
            }
            encoded.sort_by(|a, b| key_order(&a.0, &b.0));
            if encoded
                .windows(2)
                .any(|w| matches!(w, [a, b] if a.0 == b.0))
            {
                return Err(CanonicalError::DuplicateKey);
            }
            for (key, v) in encoded {
                out.extend_from_slice(&key);
                encode_into(v, out)?;
            }
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
        _ => return Err(CanonicalError::UnsupportedItem),
    }
    Ok(())
}

/// CTAP2 canonical key order: lower major type first, then shorter encoding, then bytewise.
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let major = |k: &[u8]| k.first().map(|x| x >> 5).unwrap_or(0);
    major(a)
        .cmp(&major(b))
        .then(a.len().cmp(&b.len()))
        .then(a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_type_then_length_then_bytes() {
        let map = Value::Map(vec![
            (Value::Text("up".into()), Value::Bool(true)),
            (Value::Integer((-1).into()), Value::Null),
            (Value::Integer(24.into()), Value::Bool(false)),
            (Value::Text("a".into()), Value::Bytes(vec![1])),
            (Value::Integer(1.into()), Value::Integer(1000.into())),
        ]);
        assert_eq!(
            encode(&map).unwrap(),
            [
                0xa5, 0x01, 0x19, 0x03, 0xe8, 0x18, 0x18, 0xf4, 0x20, 0xf6, 0x61, b'a', 0x41, 0x01,
                0x62, b'u', b'p', 0xf5
            ]
        );
    }

    #[test]
    fn floats_tags_and_duplicates_have_no_canonical_form() {
        assert_eq!(
            encode(&Value::Float(1.0)),
            Err(CanonicalError::UnsupportedItem)
        );
        let dup = Value::Map(vec![
            (Value::Integer(1.into()), Value::Null),
            (Value::Integer(1.into()), Value::Null),
        ]);
        assert_eq!(encode(&dup), Err(CanonicalError::DuplicateKey));
    }
}
