//! Minimal CTAP2 canonical CBOR for building requests and reading responses, independent of
//! the authenticator under test.

use ciborium::value::{Integer, Value};

/// Encodes `value` in CTAP2 canonical form (maps sorted by encoded key: major type, length,
/// then bytes).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | u8::try_from(n).unwrap_or(0)),
        24..=0xff => out.extend_from_slice(&[m | 24, u8::try_from(n).unwrap_or(0)]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&u16::try_from(n).unwrap_or(0).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&u32::try_from(n).unwrap_or(0).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Integer(i) => {
            let n = i128::from(*i);
            if n >= 0 {
                head(out, 0, u64::try_from(n).unwrap_or(0));
            } else {
                head(out, 1, u64::try_from(-1 - n).unwrap_or(0));
            }
        }
        Value::Bytes(b) => {
            head(out, 2, len(b.len()));
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            head(out, 3, len(t.len()));
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(a) => {
            head(out, 4, len(a.len()));
            for v in a {
                write(v, out);
            }
        }
        Value::Map(m) => {
            head(out, 5, len(m.len()));
            let mut entries: Vec<(Vec<u8>, &Value)> =
                m.iter().map(|(k, v)| (encode(k), v)).collect();
            entries.sort_by(|a, b| {
                let major = |k: &[u8]| k.first().map(|x| x >> 5).unwrap_or(0);
                major(&a.0)
                    .cmp(&major(&b.0))
                    .then(a.0.len().cmp(&b.0.len()))
                    .then(a.0.cmp(&b.0))
            });
            for (k, v) in entries {
                out.extend_from_slice(&k);
                write(v, out);
            }
        }
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Null => out.push(0xf6),
        _ => out.push(0xf7),
    }
}

/// Decodes one item spanning all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = bytes;
    let v: Value =
        ciborium::de::from_reader(&mut reader).map_err(|e| format!("invalid CBOR: {e}"))?;
    if !reader.is_empty() {
        return Err("trailing bytes after CBOR item".into());
    }
    Ok(v)
}

/// An integer.
pub fn int(n: i64) -> Value {
    Value::Integer(Integer::from(n))
}

/// A text string.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A byte string.
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// A map with integer keys.
pub fn imap(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
}

/// A map with text keys.
pub fn tmap(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// Looks up an integer key.
pub fn get(map: &Value, key: i64) -> Option<&Value> {
    match map {
        Value::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_integer().map(i128::from) == Some(i128::from(key)))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Looks up a text key.
pub fn tget<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// An integer value as i128.
pub fn as_int(v: Option<&Value>) -> Option<i128> {
    v.and_then(Value::as_integer).map(i128::from)
}
