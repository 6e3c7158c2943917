//! CBOR helpers for CTAP 2.1 messages: building requests, splitting and reading responses,
//! and authenticator data parsing. Shared by every CTAP client in passgate (the bridge's
//! ceremonies, the app APIs' device).

use ciborium::value::Value;
use passgate_authenticator::ctap::StatusCode;

use crate::error::BridgeError;

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
pub fn reply(response: &[u8]) -> Result<Result<Value, u8>, BridgeError> {
    let Some((&status, body)) = response.split_first() else {
        return Err(BridgeError::unknown(
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
pub fn decode(bytes: &[u8]) -> Result<Value, BridgeError> {
    let mut rest = bytes;
    let value: Value = ciborium::from_reader(&mut rest)
        .map_err(|e| BridgeError::unknown(format!("the authenticator sent bad CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(BridgeError::unknown(
            "the authenticator sent trailing bytes after its CBOR response",
        ));
    }
    Ok(value)
}

/// Encodes in CTAP2 canonical form (the authenticator rejects anything else).
pub fn encode(value: &Value) -> Vec<u8> {
    passgate_authenticator::ctap::cbor::encode(value)
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

/// Authenticator data flags (WebAuthn §6.1).
pub mod flags {
    /// User present.
    pub const UP: u8 = 0x01;
    /// User verified.
    pub const UV: u8 = 0x04;
    /// Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Extension data included.
    pub const ED: u8 = 0x80;
}

/// Parsed authenticator data.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// The flags byte.
    pub flags: u8,
    /// The signature counter.
    pub sign_count: u32,
    /// Attested credential data (makeCredential).
    pub attested: Option<AttestedCredential>,
    /// The extension outputs map.
    pub extensions: Option<Value>,
}

/// Attested credential data.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestedCredential {
    /// The authenticator model.
    pub aaguid: [u8; 16],
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The credential public key as a COSE_Key.
    pub public_key: Value,
}

impl AuthenticatorData {
    /// Whether this authenticator data is for `rp_id` (its hash is SHA-256 of the RP ID).
    pub fn is_for(&self, rp_id: &str) -> bool {
        let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, rp_id.as_bytes());
        self.rp_id_hash.as_slice() == expected.as_ref()
    }

    /// Parses authenticator data; anything malformed is `UnknownError` (the authenticator
    /// misbehaved).
    pub fn parse(data: &[u8]) -> Result<Self, BridgeError> {
        let bad = |what: &str| BridgeError::unknown(format!("bad authenticator data: {what}"));
        let rp_id_hash: [u8; 32] = data
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("too short"))?;
        let flags = *data.get(32).ok_or_else(|| bad("too short"))?;
        let sign_count = data
            .get(33..37)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| bad("too short"))?;
        let mut rest = data.get(37..).unwrap_or_default();
        let attested = if flags & flags::AT != 0 {
            let aaguid: [u8; 16] = rest
                .get(..16)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("truncated AAGUID"))?;
            let len = rest
                .get(16..18)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .map(u16::from_be_bytes)
                .ok_or_else(|| bad("truncated credential ID length"))?;
            let end = 18 + usize::from(len);
            let credential_id = rest
                .get(18..end)
                .ok_or_else(|| bad("truncated credential ID"))?
                .to_vec();
            rest = rest.get(end..).unwrap_or_default();
            let public_key: Value = ciborium::from_reader(&mut rest)
                .map_err(|e| bad(&format!("credential public key: {e}")))?;
            Some(AttestedCredential {
                aaguid,
                credential_id,
                public_key,
            })
        } else {
            None
        };
        let extensions = if flags & flags::ED != 0 {
            let ext: Value =
                ciborium::from_reader(&mut rest).map_err(|e| bad(&format!("extensions: {e}")))?;
            Some(ext)
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            rp_id_hash,
            flags,
            sign_count,
            attested,
            extensions,
        })
    }
}

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

/// The COSE algorithm of a COSE_Key (label 3).
pub fn cose_algorithm(key: &Value) -> Option<i64> {
    integer(int_key(key, 3))
}

/// The SubjectPublicKeyInfo DER of a COSE_Key, for the key types browsers convert (EC2 P-256,
/// OKP Ed25519); `None` for others.
pub fn cose_to_spki(key: &Value) -> Option<Vec<u8>> {
    let kty = integer(int_key(key, 1))?;
    let crv = integer(int_key(key, -1))?;
    let x = bytes(int_key(key, -2))?;
    match (kty, crv) {
        (2, 1) => {
            let y = bytes(int_key(key, -3))?;
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
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn cose_p256(point: &[u8]) -> Value {
        Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(2.into())),
            (Value::Integer(3.into()), Value::Integer((-7).into())),
            (Value::Integer((-1).into()), Value::Integer(1.into())),
            (
                Value::Integer((-2).into()),
                Value::Bytes(point[1..33].to_vec()),
            ),
            (
                Value::Integer((-3).into()),
                Value::Bytes(point[33..65].to_vec()),
            ),
        ])
    }

    #[test]
    fn p256_spki_matches_the_der_aws_lc_writes() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let cose = cose_p256(key.public_key().as_ref());
        let der = key.public_key().as_der().unwrap();
        assert_eq!(cose_to_spki(&cose).unwrap(), der.as_ref());
        assert_eq!(cose_algorithm(&cose), Some(-7));
    }

    #[test]
    fn unknown_key_types_have_no_spki() {
        let rsa = Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(3.into())),
            (Value::Integer(3.into()), Value::Integer((-257).into())),
        ]);
        assert_eq!(cose_to_spki(&rsa), None);
        assert_eq!(cose_to_spki(&Value::Null), None);
    }

    #[test]
    fn authenticator_data_round_trip_and_truncation() {
        let cose = cose_p256(&[4u8; 65]);
        let mut cose_bytes = Vec::new();
        ciborium::into_writer(&cose, &mut cose_bytes).unwrap();
        let ext = Value::Map(vec![(Value::Text("hmac-secret".into()), Value::Bool(true))]);
        let mut ext_bytes = Vec::new();
        ciborium::into_writer(&ext, &mut ext_bytes).unwrap();
        let mut data = vec![7u8; 32];
        data.push(flags::UP | flags::UV | flags::AT | flags::ED);
        data.extend_from_slice(&5u32.to_be_bytes());
        data.extend_from_slice(&[9u8; 16]);
        data.extend_from_slice(&3u16.to_be_bytes());
        data.extend_from_slice(&[1, 2, 3]);
        data.extend_from_slice(&cose_bytes);
        data.extend_from_slice(&ext_bytes);
        let parsed = AuthenticatorData::parse(&data).unwrap();
        assert_eq!(parsed.rp_id_hash, [7u8; 32]);
        assert_eq!(parsed.sign_count, 5);
        let attested = parsed.attested.unwrap();
        assert_eq!(attested.aaguid, [9u8; 16]);
        assert_eq!(attested.credential_id, vec![1, 2, 3]);
        assert_eq!(attested.public_key, cose);
        assert_eq!(parsed.extensions, Some(ext));
        for cut in [0, 10, 36, 40, 55, 58, data.len() - 1] {
            assert!(AuthenticatorData::parse(&data[..cut]).is_err(), "cut {cut}");
        }
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(AuthenticatorData::parse(&trailing).is_err());
    }
}
