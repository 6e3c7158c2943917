//! Credential public keys: COSE_Key parsing and signature verification on aws-lc-rs.
//!
//! This is the hot path of every sign-in, so it uses aws-lc-rs directly rather than the RustCrypto
//! code webauthn-rs verifies with (see the crate docs for the figures behind that choice).

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ED25519, RSA_PKCS1_2048_8192_SHA256,
    UnparsedPublicKey,
};
use ciborium::Value;

/// COSE algorithm identifiers this verifier accepts.
pub const COSE_ES256: i64 = -7;
/// EdDSA (Ed25519).
pub const COSE_EDDSA: i64 = -8;
/// ECDSA P-384 with SHA-384 (offered by webauthn-rs's default algorithm list).
pub const COSE_ES384: i64 = -35;
/// RSASSA-PKCS1-v1_5 with SHA-256 (Windows Hello).
pub const COSE_RS256: i64 = -257;

/// Why a COSE_Key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoseKeyError {
    /// Not CBOR, or not a map.
    #[error("the credential public key is not a CBOR map")]
    NotAMap,
    /// The algorithm is missing or not one we verify.
    #[error("unsupported credential algorithm {0}")]
    UnsupportedAlgorithm(i64),
    /// A required parameter is missing or has the wrong type or length.
    #[error("the credential public key lacks a valid `{0}` parameter")]
    BadParameter(&'static str),
}

/// A credential's public key in the form aws-lc-rs verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialPublicKey {
    /// ECDSA P-256 with SHA-256; the SEC1 uncompressed point.
    Es256(Vec<u8>),
    /// ECDSA P-384 with SHA-384; the SEC1 uncompressed point.
    Es384(Vec<u8>),
    /// Ed25519; the 32-byte public key.
    EdDsa(Vec<u8>),
    /// RSASSA-PKCS1-v1_5 SHA-256; the PKCS#1 `RSAPublicKey` DER.
    Rs256(Vec<u8>),
}

impl CredentialPublicKey {
    /// Parses a COSE_Key (RFC 9052/9053) as found in attested credential data.
    pub fn from_cose(bytes: &[u8]) -> Result<Self, CoseKeyError> {
        let value: Value = ciborium::from_reader(bytes).map_err(|_| CoseKeyError::NotAMap)?;
        let Value::Map(entries) = value else {
            return Err(CoseKeyError::NotAMap);
        };
        let get = |label: i64| {
            entries.iter().find_map(|(k, v)| match k {
                Value::Integer(i) if i128::from(*i) == i128::from(label) => Some(v),
                _ => None,
            })
        };
        let int = |label: i64, name: &'static str| -> Result<i64, CoseKeyError> {
            match get(label) {
                Some(Value::Integer(i)) => {
                    i64::try_from(i128::from(*i)).map_err(|_| CoseKeyError::BadParameter(name))
                }
                _ => Err(CoseKeyError::BadParameter(name)),
            }
        };
        let bytes_of = |label: i64, name: &'static str| -> Result<&Vec<u8>, CoseKeyError> {
            match get(label) {
                Some(Value::Bytes(b)) => Ok(b),
                _ => Err(CoseKeyError::BadParameter(name)),
            }
        };
        let alg = int(3, "alg")?;
        let kty = int(1, "kty")?;
        // EC2 keys: (curve, coordinate length) per algorithm (RFC 9053 §7.1).
        let ec2_point = |crv: i64, len: usize| -> Result<Vec<u8>, CoseKeyError> {
            if kty != 2 || int(-1, "crv")? != crv {
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
            COSE_ES256 => Ok(Self::Es256(ec2_point(1, 32)?)),
            COSE_ES384 => Ok(Self::Es384(ec2_point(2, 48)?)),
            COSE_EDDSA => {
                if kty != 1 || int(-1, "crv")? != 6 {
                    return Err(CoseKeyError::BadParameter("crv"));
                }
                let x = bytes_of(-2, "x")?;
                if x.len() != 32 {
                    return Err(CoseKeyError::BadParameter("x"));
                }
                Ok(Self::EdDsa(x.clone()))
            }
            COSE_RS256 => {
                if kty != 3 {
                    return Err(CoseKeyError::BadParameter("kty"));
                }
                let n = bytes_of(-1, "n")?;
                let e = bytes_of(-2, "e")?;
                if n.len() < 256 || e.is_empty() {
                    return Err(CoseKeyError::BadParameter("n"));
                }
                Ok(Self::Rs256(rsa_public_key_der(n, e)))
            }
            other => Err(CoseKeyError::UnsupportedAlgorithm(other)),
        }
    }

    /// The COSE algorithm identifier.
    pub fn algorithm(&self) -> i64 {
        match self {
            Self::Es256(_) => COSE_ES256,
            Self::Es384(_) => COSE_ES384,
            Self::EdDsa(_) => COSE_EDDSA,
            Self::Rs256(_) => COSE_RS256,
        }
    }

    /// Verifies `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let (alg, key): (
            &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
            &[u8],
        ) = match self {
            Self::Es256(point) => (&ECDSA_P256_SHA256_ASN1, point),
            Self::Es384(point) => (&ECDSA_P384_SHA384_ASN1, point),
            Self::EdDsa(key) => (&ED25519, key),
            Self::Rs256(der) => (&RSA_PKCS1_2048_8192_SHA256, der),
        };
        UnparsedPublicKey::new(alg, key)
            .verify(message, signature)
            .is_ok()
    }
}

/// DER-encodes a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = der_unsigned_integer(n);
    body.extend(der_unsigned_integer(e));
    let mut out = vec![0x30];
    der_length(&mut out, body.len());
    out.extend(body);
    out
}

fn der_unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed = match bytes.iter().position(|b| *b != 0) {
        Some(start) => &bytes[start..],
        None => &[0u8][..],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| *b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    let mut out = vec![0x02];
    der_length(&mut out, content.len());
    out.extend(content);
    out
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    let bytes = len.to_be_bytes();
    match bytes.iter().position(|b| *b != 0) {
        Some(start) if len >= 0x80 => {
            let significant = &bytes[start..];
            // At most 8 length bytes: always fits the 0x80 | n form.
            out.push(0x80 | u8::try_from(significant.len()).unwrap_or(8));
            out.extend_from_slice(significant);
        }
        _ => out.push(u8::try_from(len).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cose_es256(x: &[u8], y: &[u8]) -> Vec<u8> {
        let map = Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(2.into())),
            (Value::Integer(3.into()), Value::Integer((-7).into())),
            (Value::Integer((-1).into()), Value::Integer(1.into())),
            (Value::Integer((-2).into()), Value::Bytes(x.to_vec())),
            (Value::Integer((-3).into()), Value::Bytes(y.to_vec())),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&map, &mut out).unwrap();
        out
    }

    #[test]
    fn parses_es256_and_rejects_bad_keys() {
        let key = CredentialPublicKey::from_cose(&cose_es256(&[1; 32], &[2; 32])).unwrap();
        let CredentialPublicKey::Es256(point) = &key else {
            panic!("not ES256")
        };
        assert_eq!(point[0], 4);
        assert_eq!(&point[1..33], &[1; 32]);
        assert_eq!(key.algorithm(), -7);
        assert_eq!(
            CredentialPublicKey::from_cose(&cose_es256(&[1; 31], &[2; 32])),
            Err(CoseKeyError::BadParameter("x/y"))
        );
        assert_eq!(
            CredentialPublicKey::from_cose(b"\x01"),
            Err(CoseKeyError::NotAMap)
        );
    }

    #[test]
    fn es384_and_ed25519_keys_verify_real_signatures() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{
            ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
        };
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
        let p384 =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let point = p384.public_key().as_ref();
        let map = Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(2.into())),
            (Value::Integer(3.into()), Value::Integer((-35).into())),
            (Value::Integer((-1).into()), Value::Integer(2.into())),
            (
                Value::Integer((-2).into()),
                Value::Bytes(point[1..49].to_vec()),
            ),
            (
                Value::Integer((-3).into()),
                Value::Bytes(point[49..97].to_vec()),
            ),
        ]);
        let mut cose = Vec::new();
        ciborium::into_writer(&map, &mut cose).unwrap();
        let key = CredentialPublicKey::from_cose(&cose).unwrap();
        assert_eq!(key.algorithm(), -35);
        let sig = p384.sign(&rng, b"signed data").unwrap();
        assert!(key.verify(b"signed data", sig.as_ref()));
        assert!(!key.verify(b"other data", sig.as_ref()));

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let map = Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(1.into())),
            (Value::Integer(3.into()), Value::Integer((-8).into())),
            (Value::Integer((-1).into()), Value::Integer(6.into())),
            (
                Value::Integer((-2).into()),
                Value::Bytes(ed.public_key().as_ref().to_vec()),
            ),
        ]);
        let mut cose = Vec::new();
        ciborium::into_writer(&map, &mut cose).unwrap();
        let key = CredentialPublicKey::from_cose(&cose).unwrap();
        let sig = ed.sign(b"signed data");
        assert!(key.verify(b"signed data", sig.as_ref()));
        assert!(!key.verify(b"signed datA", sig.as_ref()));
    }

    #[test]
    fn der_lengths() {
        let mut out = Vec::new();
        der_length(&mut out, 5);
        assert_eq!(out, [5]);
        out.clear();
        der_length(&mut out, 0x80);
        assert_eq!(out, [0x81, 0x80]);
        out.clear();
        der_length(&mut out, 0x1234);
        assert_eq!(out, [0x82, 0x12, 0x34]);
        assert_eq!(der_unsigned_integer(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(der_unsigned_integer(&[0, 0, 1]), [2, 1, 1]);
    }
}
