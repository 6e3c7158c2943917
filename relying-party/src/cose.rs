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
    ///
    /// Every sign-in parses its credential's stored key, so the common shape (a definite-length
    /// map of integer labels to integers and byte strings) is read in place without building a
    /// `ciborium::Value` tree; any other shape takes the general CBOR path. Both read the same
    /// parameters with the same rules (the first occurrence of a label counts, other labels are
    /// ignored), so they accept and refuse the same keys.
    pub fn from_cose(bytes: &[u8]) -> Result<Self, CoseKeyError> {
        let mut params = [(0i128, Param::Other); MAX_DIRECT_PARAMS];
        match read_direct(bytes, &mut params) {
            Some(count) => Self::from_params(&params[..count]),
            None => Self::from_cose_general(bytes),
        }
    }

    /// [`Self::from_cose`] through a full `ciborium::Value` decode: any CBOR shape.
    fn from_cose_general(bytes: &[u8]) -> Result<Self, CoseKeyError> {
        let value: Value = ciborium::from_reader(bytes).map_err(|_| CoseKeyError::NotAMap)?;
        let Value::Map(entries) = value else {
            return Err(CoseKeyError::NotAMap);
        };
        let params: Vec<(i128, Param<'_>)> = entries
            .iter()
            .filter_map(|(k, v)| {
                let Value::Integer(label) = k else {
                    // A text label never names a parameter this verifier reads.
                    return None;
                };
                let param = match v {
                    Value::Integer(i) => Param::Int(i128::from(*i)),
                    Value::Bytes(b) => Param::Bytes(b),
                    _ => Param::Other,
                };
                Some((i128::from(*label), param))
            })
            .collect();
        Self::from_params(&params)
    }

    /// Builds the key from its parameters, in the order the map holds them.
    fn from_params(params: &[(i128, Param<'_>)]) -> Result<Self, CoseKeyError> {
        let get = |label: i64| {
            params
                .iter()
                .find_map(|(k, v)| (*k == i128::from(label)).then_some(*v))
        };
        let int = |label: i64, name: &'static str| -> Result<i64, CoseKeyError> {
            match get(label) {
                Some(Param::Int(i)) => {
                    i64::try_from(i).map_err(|_| CoseKeyError::BadParameter(name))
                }
                _ => Err(CoseKeyError::BadParameter(name)),
            }
        };
        let bytes_of = |label: i64, name: &'static str| -> Result<&[u8], CoseKeyError> {
            match get(label) {
                Some(Param::Bytes(b)) => Ok(b),
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
                Ok(Self::EdDsa(x.to_vec()))
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

/// A COSE_Key parameter value as far as this verifier reads it.
#[derive(Debug, Clone, Copy)]
enum Param<'a> {
    /// A CBOR integer (major type 0 or 1).
    Int(i128),
    /// A CBOR byte string.
    Bytes(&'a [u8]),
    /// Anything else: never a valid value for a parameter read here.
    Other,
}

/// Keys with more parameters than this take the general path.
const MAX_DIRECT_PARAMS: usize = 8;

/// Reads a CBOR item head at `at`: (major type, argument, position after the head). `None` for
/// an indefinite length, a reserved additional-information value or truncated input.
fn read_head(bytes: &[u8], at: usize) -> Option<(u8, u64, usize)> {
    let initial = *bytes.get(at)?;
    let major = initial >> 5;
    let info = initial & 0x1f;
    let (argument, len) = match info {
        0..=23 => (u64::from(info), 0),
        24 => (u64::from(*bytes.get(at + 1)?), 1),
        25 => (
            u64::from(u16::from_be_bytes(
                bytes.get(at + 1..at + 3)?.try_into().ok()?,
            )),
            2,
        ),
        26 => (
            u64::from(u32::from_be_bytes(
                bytes.get(at + 1..at + 5)?.try_into().ok()?,
            )),
            4,
        ),
        27 => (
            u64::from_be_bytes(bytes.get(at + 1..at + 9)?.try_into().ok()?),
            8,
        ),
        _ => return None,
    };
    Some((major, argument, at + 1 + len))
}

/// Reads a CBOR integer or byte string at `at`; `None` for any other item.
fn read_param(bytes: &[u8], at: usize) -> Option<(Param<'_>, usize)> {
    let (major, argument, next) = read_head(bytes, at)?;
    match major {
        0 => Some((Param::Int(i128::from(argument)), next)),
        1 => Some((Param::Int(-1 - i128::from(argument)), next)),
        2 => {
            let end = next.checked_add(usize::try_from(argument).ok()?)?;
            Some((Param::Bytes(bytes.get(next..end)?), end))
        }
        _ => None,
    }
}

/// Reads a definite-length map of integer labels to integers or byte strings into `params`
/// and returns how many it holds, or `None` when the key has any other shape (the general path
/// then decides). Like the general path, it ignores bytes after the map.
fn read_direct<'a>(bytes: &'a [u8], params: &mut [(i128, Param<'a>)]) -> Option<usize> {
    let (major, count, mut at) = read_head(bytes, 0)?;
    let count = usize::try_from(count).ok()?;
    if major != 5 || count > params.len() {
        return None;
    }
    for slot in params.iter_mut().take(count) {
        let (Param::Int(label), next) = read_param(bytes, at)? else {
            return None;
        };
        let (value, next) = read_param(bytes, next)?;
        *slot = (label, value);
        at = next;
    }
    Some(count)
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

    /// The in-place reader and the general CBOR path agree on every input: real keys of each
    /// algorithm, and every truncation and single-byte change of them, plus shapes only the
    /// general path reads (text labels, tags, arrays, indefinite lengths, many parameters).
    #[test]
    fn the_direct_reader_agrees_with_the_general_path() {
        let int = |i: i64| Value::Integer(i.into());
        let es256 = cose_es256(&[1; 32], &[2; 32]);
        let ed25519 = {
            let map = Value::Map(vec![
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (int(-2), Value::Bytes(vec![9; 32])),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&map, &mut out).unwrap();
            out
        };
        let rs256 = {
            let map = Value::Map(vec![
                (int(1), int(3)),
                (int(3), int(-257)),
                (int(-1), Value::Bytes(vec![0xc5; 256])),
                (int(-2), Value::Bytes(vec![1, 0, 1])),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&map, &mut out).unwrap();
            out
        };
        let encode = |entries: Vec<(Value, Value)>| {
            let mut out = Vec::new();
            ciborium::into_writer(&Value::Map(entries), &mut out).unwrap();
            out
        };
        let xy = |x: Value| {
            vec![
                (int(1), int(2)),
                (int(3), int(-7)),
                (int(-1), int(1)),
                (int(-2), x),
                (int(-3), Value::Bytes(vec![2; 32])),
            ]
        };
        let mut corpus = vec![
            es256.clone(),
            ed25519.clone(),
            rs256.clone(),
            // A duplicate label: the first occurrence counts on both paths.
            encode(
                [
                    xy(Value::Bytes(vec![1; 32])),
                    vec![(int(-2), Value::Bytes(vec![3; 31]))],
                ]
                .concat(),
            ),
            encode(
                [
                    vec![(int(-2), Value::Bytes(vec![3; 31]))],
                    xy(Value::Bytes(vec![1; 32])),
                ]
                .concat(),
            ),
            // Extra parameters the verifier ignores: a kid, a text label, key_ops.
            encode(
                [
                    xy(Value::Bytes(vec![1; 32])),
                    vec![(int(2), Value::Bytes(b"kid".to_vec()))],
                ]
                .concat(),
            ),
            encode(
                [
                    xy(Value::Bytes(vec![1; 32])),
                    vec![(Value::Text("x".into()), int(1))],
                ]
                .concat(),
            ),
            encode(
                [
                    xy(Value::Bytes(vec![1; 32])),
                    vec![(int(4), Value::Array(vec![int(2)]))],
                ]
                .concat(),
            ),
            // x tagged, x as text, x as an integer: not a byte string.
            encode(xy(Value::Tag(24, Box::new(Value::Bytes(vec![1; 32]))))),
            encode(xy(Value::Text("x".repeat(32)))),
            encode(xy(int(5))),
            // More parameters than the direct reader holds.
            encode(
                [
                    xy(Value::Bytes(vec![1; 32])),
                    (10..20).map(|l| (int(l), int(l))).collect(),
                ]
                .concat(),
            ),
            // An integer label beyond i64 and an alg beyond i64.
            encode(
                [
                    xy(Value::Bytes(vec![1; 32])),
                    vec![(Value::Integer(u64::MAX.into()), int(0))],
                ]
                .concat(),
            ),
            encode(vec![
                (int(1), int(2)),
                (int(3), Value::Integer(u64::MAX.into())),
            ]),
            // Indefinite-length map and byte string; non-canonical heads; trailing bytes.
            [&[0xbf][..], &es256[1..], &[0xff]].concat(),
            [&es256[..], &[0x00, 0xff]].concat(),
            [&[0xb8, 0x05][..], &es256[1..]].concat(),
            vec![0xa2, 0x01, 0x18, 0x02, 0x03, 0x38, 0x00],
            vec![0xa1, 0x21, 0x5f, 0x41, 0x01, 0xff],
            vec![
                0xa1, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            vec![
                0xa1, 0x01, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            vec![],
            vec![0xa0],
        ];
        for key in [&es256, &ed25519, &rs256] {
            for len in 0..key.len() {
                corpus.push(key[..len].to_vec());
            }
            for at in 0..key.len().min(48) {
                for byte in [
                    0x00, 0x01, 0x18, 0x20, 0x38, 0x40, 0x58, 0x5f, 0x7f, 0xa0, 0xbf, 0xc0, 0xf6,
                    0xff,
                ] {
                    let mut changed = key.clone();
                    changed[at] = byte;
                    corpus.push(changed);
                }
            }
        }
        let mut direct = 0;
        for input in &corpus {
            let mut params = [(0i128, Param::Other); MAX_DIRECT_PARAMS];
            if read_direct(input, &mut params).is_some() {
                direct += 1;
            }
            assert_eq!(
                CredentialPublicKey::from_cose(input),
                CredentialPublicKey::from_cose_general(input),
                "the paths disagree on {input:02x?}"
            );
        }
        // Most of the corpus goes through the direct reader, so the comparison means something.
        assert!(direct > corpus.len() / 2, "{direct} of {}", corpus.len());
        assert!(CredentialPublicKey::from_cose(&es256).is_ok());
        assert!(CredentialPublicKey::from_cose(&ed25519).is_ok());
        assert!(CredentialPublicKey::from_cose(&rs256).is_ok());
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
