//! COSE keys (RFC 9052/9053) as credentials carry them, decoded with coset into the parts a
//! signature verifier takes directly: the SEC1 uncompressed point of an EC2 key, the 32 bytes of
//! an Ed25519 key, the modulus and exponent of an RSA key. No DER is written: aws-lc-rs takes
//! EC points and RSA components as they are.
//!
//! [`PublicKey`] also has a compact JSON form (`{"alg":"ES256","point":"…"}`), which is what the
//! relying party stores at registration so that a sign-in parses no CBOR.

use coset::iana::EnumI64;
use coset::{
    AsCborValue, CborSerializable, CoseKey, KeyType, Label, RegisteredLabelWithPrivate, iana,
};
use serde::{Deserialize, Serialize};

/// ECDSA P-256 with SHA-256.
pub const ES256: i64 = -7;
/// EdDSA (Ed25519).
pub const EDDSA: i64 = -8;
/// ECDSA P-384 with SHA-384.
pub const ES384: i64 = -35;
/// RSASSA-PKCS1-v1_5 with SHA-256 (Windows Hello).
pub const RS256: i64 = -257;

/// Why a COSE_Key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoseKeyError {
    /// Not CBOR, not a map, or not a well-formed COSE_Key (duplicate labels, bytes after it).
    #[error("the credential public key is not a COSE_Key: {0}")]
    Malformed(String),
    /// The algorithm is missing or not one we verify.
    #[error("unsupported credential algorithm {0}")]
    UnsupportedAlgorithm(i64),
    /// A required parameter is missing or has the wrong type or length.
    #[error("the credential public key lacks a valid `{0}` parameter")]
    BadParameter(&'static str),
}

/// A credential public key, in the parts a verifier takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "alg")]
pub enum PublicKey {
    /// ECDSA P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256 {
        /// The SEC1 uncompressed point (0x04 || x || y).
        #[serde(with = "crate::b64")]
        point: Vec<u8>,
    },
    /// ECDSA P-384 with SHA-384.
    #[serde(rename = "ES384")]
    Es384 {
        /// The SEC1 uncompressed point (0x04 || x || y).
        #[serde(with = "crate::b64")]
        point: Vec<u8>,
    },
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa {
        /// The 32-byte public key.
        #[serde(with = "crate::b64")]
        key: Vec<u8>,
    },
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256 {
        /// The modulus, big-endian.
        #[serde(with = "crate::b64")]
        n: Vec<u8>,
        /// The public exponent, big-endian.
        #[serde(with = "crate::b64")]
        e: Vec<u8>,
    },
}

impl PublicKey {
    /// Decodes a COSE_Key (the credentialPublicKey of attested credential data).
    pub fn from_cose(bytes: &[u8]) -> Result<Self, CoseKeyError> {
        let key = CoseKey::from_slice(bytes).map_err(|e| CoseKeyError::Malformed(e.to_string()))?;
        Self::from_cose_key(&key)
    }

    /// Decodes a COSE_Key already read as CBOR (as [`crate::AttestedCredentialData`] holds it).
    pub fn from_cbor_value(value: ciborium::Value) -> Result<Self, CoseKeyError> {
        let key =
            CoseKey::from_cbor_value(value).map_err(|e| CoseKeyError::Malformed(e.to_string()))?;
        Self::from_cose_key(&key)
    }

    /// The verifier's parts of a decoded COSE_Key.
    pub fn from_cose_key(key: &CoseKey) -> Result<Self, CoseKeyError> {
        let alg = match &key.alg {
            Some(RegisteredLabelWithPrivate::Assigned(a)) => a.to_i64(),
            Some(RegisteredLabelWithPrivate::PrivateUse(a)) => *a,
            _ => return Err(CoseKeyError::BadParameter("alg")),
        };
        let kty = match &key.kty {
            KeyType::Assigned(k) => Some(*k),
            _ => None,
        };
        let param = |label: i64| {
            key.params
                .iter()
                .find_map(|(l, v)| (*l == Label::Int(label)).then_some(v))
        };
        let int = |label: i64, name: &'static str| -> Result<i64, CoseKeyError> {
            param(label)
                .and_then(|v| v.as_integer())
                .and_then(|i| i64::try_from(i).ok())
                .ok_or(CoseKeyError::BadParameter(name))
        };
        let bytes_of = |label: i64, name: &'static str| -> Result<&[u8], CoseKeyError> {
            param(label)
                .and_then(|v| v.as_bytes())
                .map(Vec::as_slice)
                .ok_or(CoseKeyError::BadParameter(name))
        };
        // EC2 keys: (curve, coordinate length) per algorithm (RFC 9053 §7.1).
        let ec2_point = |crv: iana::EllipticCurve, len: usize| -> Result<Vec<u8>, CoseKeyError> {
            if kty != Some(iana::KeyType::EC2) || int(-1, "crv")? != crv.to_i64() {
                return Err(CoseKeyError::BadParameter("crv"));
            }
            let x = bytes_of(-2, "x")?;
            let y = bytes_of(-3, "y")?;
            if x.len() != len || y.len() != len {
                return Err(CoseKeyError::BadParameter("x/y"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            Ok(point)
        };
        match alg {
            ES256 => Ok(Self::Es256 {
                point: ec2_point(iana::EllipticCurve::P_256, 32)?,
            }),
            ES384 => Ok(Self::Es384 {
                point: ec2_point(iana::EllipticCurve::P_384, 48)?,
            }),
            EDDSA => {
                if kty != Some(iana::KeyType::OKP)
                    || int(-1, "crv")? != iana::EllipticCurve::Ed25519.to_i64()
                {
                    return Err(CoseKeyError::BadParameter("crv"));
                }
                let x = bytes_of(-2, "x")?;
                if x.len() != 32 {
                    return Err(CoseKeyError::BadParameter("x"));
                }
                Ok(Self::EdDsa { key: x.to_vec() })
            }
            RS256 => {
                if kty != Some(iana::KeyType::RSA) {
                    return Err(CoseKeyError::BadParameter("kty"));
                }
                let n = bytes_of(-1, "n")?;
                let e = bytes_of(-2, "e")?;
                if n.len() < 256 || e.is_empty() {
                    return Err(CoseKeyError::BadParameter("n"));
                }
                // aws-lc-rs wants both without leading zeros.
                let trim = |b: &[u8]| {
                    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                    b[start..].to_vec()
                };
                Ok(Self::Rs256 {
                    n: trim(n),
                    e: trim(e),
                })
            }
            other => Err(CoseKeyError::UnsupportedAlgorithm(other)),
        }
    }

    /// The COSE algorithm identifier.
    pub fn algorithm(&self) -> i64 {
        match self {
            Self::Es256 { .. } => ES256,
            Self::Es384 { .. } => ES384,
            Self::EdDsa { .. } => EDDSA,
            Self::Rs256 { .. } => RS256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn encode(entries: Vec<(Value, Value)>) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Map(entries), &mut out).unwrap();
        out
    }

    fn int(i: i64) -> Value {
        Value::Integer(i.into())
    }

    fn es256(x: &[u8], y: &[u8]) -> Vec<u8> {
        encode(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(x.to_vec())),
            (int(-3), Value::Bytes(y.to_vec())),
        ])
    }

    #[test]
    fn decodes_each_algorithm_into_its_parts() {
        let PublicKey::Es256 { point } = PublicKey::from_cose(&es256(&[1; 32], &[2; 32])).unwrap()
        else {
            panic!("not ES256")
        };
        assert_eq!(point[0], 4);
        assert_eq!(&point[1..33], &[1; 32]);
        assert_eq!(&point[33..], &[2; 32]);

        let p384 = encode(vec![
            (int(1), int(2)),
            (int(3), int(-35)),
            (int(-1), int(2)),
            (int(-2), Value::Bytes(vec![3; 48])),
            (int(-3), Value::Bytes(vec![4; 48])),
        ]);
        assert_eq!(PublicKey::from_cose(&p384).unwrap().algorithm(), ES384);

        let ed = encode(vec![
            (int(1), int(1)),
            (int(3), int(-8)),
            (int(-1), int(6)),
            (int(-2), Value::Bytes(vec![9; 32])),
        ]);
        assert_eq!(
            PublicKey::from_cose(&ed).unwrap(),
            PublicKey::EdDsa { key: vec![9; 32] }
        );

        let mut n = vec![0u8];
        n.extend(vec![0xc5; 256]);
        let rsa = encode(vec![
            (int(1), int(3)),
            (int(3), int(-257)),
            (int(-1), Value::Bytes(n)),
            (int(-2), Value::Bytes(vec![1, 0, 1])),
        ]);
        assert_eq!(
            PublicKey::from_cose(&rsa).unwrap(),
            PublicKey::Rs256 {
                n: vec![0xc5; 256],
                e: vec![1, 0, 1]
            }
        );
    }

    #[test]
    fn refuses_bad_keys_with_the_parameter_named() {
        assert_eq!(
            PublicKey::from_cose(&es256(&[1; 31], &[2; 32])),
            Err(CoseKeyError::BadParameter("x/y"))
        );
        assert!(matches!(
            PublicKey::from_cose(b"\x01"),
            Err(CoseKeyError::Malformed(_))
        ));
        // Bytes after the key.
        let mut trailing = es256(&[1; 32], &[2; 32]);
        trailing.push(0);
        assert!(matches!(
            PublicKey::from_cose(&trailing),
            Err(CoseKeyError::Malformed(_))
        ));
        // No alg; a P-256 alg on a P-384 curve; x as text.
        let no_alg = encode(vec![(int(1), int(2)), (int(-1), int(1))]);
        assert_eq!(
            PublicKey::from_cose(&no_alg),
            Err(CoseKeyError::BadParameter("alg"))
        );
        // ES512: registered, not one we verify. An unregistered number is not a COSE_Key.
        let unsupported = encode(vec![(int(1), int(2)), (int(3), int(-36))]);
        assert_eq!(
            PublicKey::from_cose(&unsupported),
            Err(CoseKeyError::UnsupportedAlgorithm(-36))
        );
        let unregistered = encode(vec![(int(1), int(2)), (int(3), int(-999))]);
        assert!(matches!(
            PublicKey::from_cose(&unregistered),
            Err(CoseKeyError::Malformed(_))
        ));
        let wrong_curve = encode(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(2)),
            (int(-2), Value::Bytes(vec![1; 32])),
            (int(-3), Value::Bytes(vec![2; 32])),
        ]);
        assert_eq!(
            PublicKey::from_cose(&wrong_curve),
            Err(CoseKeyError::BadParameter("crv"))
        );
        let text_x = encode(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Value::Text("x".repeat(32))),
            (int(-3), Value::Bytes(vec![2; 32])),
        ]);
        assert_eq!(
            PublicKey::from_cose(&text_x),
            Err(CoseKeyError::BadParameter("x"))
        );
        // A short RSA modulus.
        let short = encode(vec![
            (int(1), int(3)),
            (int(3), int(-257)),
            (int(-1), Value::Bytes(vec![0xc5; 128])),
            (int(-2), Value::Bytes(vec![1, 0, 1])),
        ]);
        assert_eq!(
            PublicKey::from_cose(&short),
            Err(CoseKeyError::BadParameter("n"))
        );
    }

    #[test]
    fn the_stored_json_form_round_trips() {
        let key = PublicKey::from_cose(&es256(&[1; 32], &[2; 32])).unwrap();
        let json = serde_json::to_string(&key).unwrap();
        assert!(
            json.starts_with(r#"{"alg":"ES256","point":"BAEB"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<PublicKey>(r#"{"alg":"ES512","point":"AA"}"#).is_err());
    }
}
