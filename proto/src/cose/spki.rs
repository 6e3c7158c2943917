//! The SubjectPublicKeyInfo form of a COSE_Key, which WebAuthn clients hand to pages as
//! `getPublicKey()` (the bridge): EC2 P-256 and OKP Ed25519, the key types browsers convert.

use ciborium::Value;

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1), before the
/// uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn label(key: &Value, label: i64) -> Option<&Value> {
    let Value::Map(entries) = key else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == i128::from(label)))
        .map(|(_, v)| v)
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Integer(i)) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

fn bytes(value: Option<&Value>) -> Option<&[u8]> {
    match value {
        Some(Value::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// The COSE algorithm of a COSE_Key (label 3).
pub fn algorithm(key: &Value) -> Option<i64> {
    integer(label(key, 3))
}

/// The SubjectPublicKeyInfo DER of a COSE_Key, for the key types browsers convert (EC2 P-256,
/// OKP Ed25519); `None` for others.
pub fn to_spki(key: &Value) -> Option<Vec<u8>> {
    let kty = integer(label(key, 1))?;
    let crv = integer(label(key, -1))?;
    let x = bytes(label(key, -2))?;
    match (kty, crv) {
        (2, 1) => {
            let y = bytes(label(key, -3))?;
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut der = P256_SPKI_PREFIX.to_vec();
            der.push(0x04);
            der.extend_from_slice(x);
            der.extend_from_slice(y);
            Some(der)
        }
        (1, 6) if x.len() == 32 => {
            let mut der = ED25519_SPKI_PREFIX.to_vec();
            der.extend_from_slice(x);
            Some(der)
        }
        _ => None,
    }
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

    fn key(entries: Vec<(i64, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Integer(k.into()), v))
                .collect(),
        )
    }

    /// SPKIs written by OpenSSL (`openssl ec -pubout -outform DER`, `openssl pkey -pubout`).
    const P256_DER: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004194bd1cad2b27c5df96f878e9b94939f89dc9a6be8c5d9f46d63ceb438e4526fdcb979d34e779becb2bc74311c2fc7d30028cf32d73ee505c9f2731090c22e8c";
    const ED25519_DER: &str =
        "302a300506032b6570032100b168eaf128036f8ae421e99775acda16cb56221c5c562fb97ab2a480315ae7ed";

    #[test]
    fn spki_matches_what_openssl_writes() {
        let der = hex(P256_DER);
        let point = &der[27..];
        let p256 = key(vec![
            (1, Value::Integer(2.into())),
            (3, Value::Integer((-7).into())),
            (-1, Value::Integer(1.into())),
            (-2, Value::Bytes(point[..32].to_vec())),
            (-3, Value::Bytes(point[32..].to_vec())),
        ]);
        assert_eq!(to_spki(&p256).unwrap(), der);
        assert_eq!(algorithm(&p256), Some(-7));
        let der = hex(ED25519_DER);
        let ed = key(vec![
            (1, Value::Integer(1.into())),
            (3, Value::Integer((-8).into())),
            (-1, Value::Integer(6.into())),
            (-2, Value::Bytes(der[12..].to_vec())),
        ]);
        assert_eq!(to_spki(&ed).unwrap(), der);
    }

    #[test]
    fn unknown_key_types_have_no_spki() {
        let rsa = key(vec![
            (1, Value::Integer(3.into())),
            (3, Value::Integer((-257).into())),
        ]);
        assert_eq!(to_spki(&rsa), None);
        assert_eq!(to_spki(&Value::Null), None);
        let short = key(vec![
            (1, Value::Integer(2.into())),
            (-1, Value::Integer(1.into())),
            (-2, Value::Bytes(vec![0; 31])),
            (-3, Value::Bytes(vec![0; 32])),
        ]);
        assert_eq!(to_spki(&short), None);
    }
}
