//! Request structures shared by several commands and the authenticator-data builder.

use aws_lc_rs::digest;
use ciborium::value::Value;

use super::cbor::{TextMap, ValueExt};
use super::status::StatusCode;
use crate::api::key_store::{KeyAlgorithm, PublicKey};

/// Longest RP ID accepted (a DNS name is at most 253 characters).
pub const MAX_RP_ID_LENGTH: usize = 253;
/// Longest user handle (WebAuthn: at most 64 bytes).
pub const MAX_USER_ID_LENGTH: usize = 64;
/// Names longer than this are truncated, as CTAP 2.1 allows (§6.1.2, step "user").
pub const MAX_NAME_LENGTH: usize = 64;

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

/// `PublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpEntity {
    /// The RP ID.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
}

impl RpEntity {
    /// Parses the `rp` parameter.
    pub fn parse(value: Value) -> Result<Self, StatusCode> {
        let mut map = TextMap::new(value.ctap_map()?)?;
        let id = map
            .take("id")
            .ok_or(StatusCode::MissingParameter)?
            .ctap_text()?;
        if id.is_empty() || id.len() > MAX_RP_ID_LENGTH {
            return Err(StatusCode::InvalidParameter);
        }
        let name = map.take("name").map(Value::ctap_text).transpose()?;
        Ok(Self {
            id,
            name: name.map(|n| truncate_utf8(n, MAX_NAME_LENGTH)),
        })
    }
}

/// `PublicKeyCredentialUserEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntity {
    /// The user handle.
    pub id: Vec<u8>,
    /// Account name.
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

impl UserEntity {
    /// Parses the `user` parameter.
    pub fn parse(value: Value) -> Result<Self, StatusCode> {
        let mut map = TextMap::new(value.ctap_map()?)?;
        let id = map
            .take("id")
            .ok_or(StatusCode::MissingParameter)?
            .ctap_bytes()?;
        if id.is_empty() || id.len() > MAX_USER_ID_LENGTH {
            return Err(StatusCode::InvalidParameter);
        }
        let name = map.take("name").map(Value::ctap_text).transpose()?;
        let display_name = map.take("displayName").map(Value::ctap_text).transpose()?;
        Ok(Self {
            id,
            name: name.map(|n| truncate_utf8(n, MAX_NAME_LENGTH)),
            display_name: display_name.map(|n| truncate_utf8(n, MAX_NAME_LENGTH)),
        })
    }
}

/// Truncates to at most `max` bytes on a character boundary.
pub fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// A `PublicKeyCredentialDescriptor` of type "public-key" (others are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDescriptor {
    /// The credential ID.
    pub id: Vec<u8>,
}

/// Parses an allowList / excludeList, keeping only "public-key" descriptors.
pub fn parse_descriptor_list(
    value: Value,
    max_count: usize,
) -> Result<Vec<CredentialDescriptor>, StatusCode> {
    let items = value.ctap_array()?;
    if items.len() > max_count {
        return Err(StatusCode::LimitExceeded);
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut map = TextMap::new(item.ctap_map()?)?;
        let kind = map
            .take("type")
            .ok_or(StatusCode::MissingParameter)?
            .ctap_text()?;
        let id = map
            .take("id")
            .ok_or(StatusCode::MissingParameter)?
            .ctap_bytes()?;
        if let Some(transports) = map.take("transports") {
            for t in transports.ctap_array()? {
                t.ctap_text()?;
            }
        }
        if kind == "public-key" {
            out.push(CredentialDescriptor { id });
        }
    }
    Ok(out)
}

/// Parses `pubKeyCredParams` and returns the first algorithm of `supported` (the key store's),
/// in the caller's order of preference.
pub fn choose_algorithm(
    value: Value,
    supported: &[KeyAlgorithm],
) -> Result<KeyAlgorithm, StatusCode> {
    let items = value.ctap_array()?;
    let mut chosen = None;
    for item in items {
        let mut map = TextMap::new(item.ctap_map()?)?;
        let alg = map
            .take("alg")
            .ok_or(StatusCode::MissingParameter)?
            .ctap_int()?;
        let kind = map
            .take("type")
            .ok_or(StatusCode::MissingParameter)?
            .ctap_text()?;
        if chosen.is_none() && kind == "public-key" {
            chosen = KeyAlgorithm::from_cose_id(alg).filter(|alg| supported.contains(alg));
        }
    }
    chosen.ok_or(StatusCode::UnsupportedAlgorithm)
}

/// The `options` parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// "rk".
    pub rk: Option<bool>,
    /// "up".
    pub up: Option<bool>,
    /// "uv".
    pub uv: Option<bool>,
}

impl Options {
    /// Parses the options map; unknown options are ignored, known ones must be booleans.
    pub fn parse(value: Option<Value>) -> Result<Self, StatusCode> {
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let mut map = TextMap::new(value.ctap_map()?)?;
        let mut take = |k| map.take(k).map(Value::ctap_bool).transpose();
        Ok(Self {
            rk: take("rk")?,
            up: take("up")?,
            uv: take("uv")?,
        })
    }
}

/// The largeBlobKey extension input: only ever `true` (§12.3); `false` is INVALID_OPTION.
pub fn large_blob_key_input(value: Option<Value>) -> Result<bool, StatusCode> {
    match value.map(Value::ctap_bool).transpose()? {
        None => Ok(false),
        Some(true) => Ok(true),
        Some(false) => Err(StatusCode::InvalidOption),
    }
}

/// SHA-256 of an RP ID.
pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, rp_id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Builds authenticator data (WebAuthn §6.1).
pub fn authenticator_data(
    rp_id_hash: &[u8; 32],
    flags: u8,
    sign_count: u32,
    attested: Option<(&[u8; 16], &[u8], &PublicKey)>,
    extensions: Option<&Value>,
) -> Result<Vec<u8>, StatusCode> {
    let mut out = Vec::with_capacity(37 + 200);
    out.extend_from_slice(rp_id_hash);
    let mut flags = flags;
    if attested.is_some() {
        flags |= flags::AT;
    }
    if extensions.is_some() {
        flags |= flags::ED;
    }
    out.push(flags);
    out.extend_from_slice(&sign_count.to_be_bytes());
    if let Some((aaguid, credential_id, public_key)) = attested {
        out.extend_from_slice(aaguid);
        let len = u16::try_from(credential_id.len()).map_err(|_| StatusCode::Other)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(credential_id);
        out.extend_from_slice(&cose_public_key(public_key));
    }
    if let Some(ext) = extensions {
        out.extend_from_slice(&super::cbor::encode(ext));
    }
    Ok(out)
}

/// The COSE_Key encoding of a credential public key, canonical CBOR (CTAP 2.1 §8): the
/// same key as [`PublicKey::to_cose_key`], with its entries in canonical order.
pub fn cose_public_key(key: &PublicKey) -> Vec<u8> {
    use super::cbor::int;
    let alg = key.algorithm().cose_id();
    let entries = match key {
        // {1: 2 (EC2), 3: alg, -1: crv (1 = P-256, 2 = P-384), -2: x, -3: y}
        PublicKey::P256(k) => [
            (1, Some(int(2))),
            (3, Some(int(alg))),
            (-1, Some(int(1))),
            (-2, Some(Value::Bytes(k.x.to_vec()))),
            (-3, Some(Value::Bytes(k.y.to_vec()))),
        ],
        PublicKey::P384(k) => [
            (1, Some(int(2))),
            (3, Some(int(alg))),
            (-1, Some(int(2))),
            (-2, Some(Value::Bytes(k.x.to_vec()))),
            (-3, Some(Value::Bytes(k.y.to_vec()))),
        ],
        // {1: 1 (OKP), 3: -8 (EdDSA), -1: 6 (Ed25519), -2: x}
        PublicKey::Ed25519(k) => [
            (1, Some(int(1))),
            (3, Some(int(alg))),
            (-1, Some(int(6))),
            (-2, Some(Value::Bytes(k.0.to_vec()))),
            (-3, None),
        ],
    };
    super::cbor::encode(&super::cbor::int_map(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap::cbor::text_map;

    #[test]
    fn truncates_on_char_boundary() {
        let s = "é".repeat(40); // 80 bytes
        let t = truncate_utf8(s, 63);
        assert_eq!(t.len(), 62);
        assert_eq!(truncate_utf8("abc".into(), 64), "abc");
    }

    #[test]
    fn algorithm_choice_follows_caller_order_and_skips_unknown() {
        let params = Value::Array(vec![
            text_map([
                ("alg", Some(Value::Integer((-257).into()))),
                ("type", Some(Value::Text("public-key".into()))),
            ]),
            text_map([
                ("alg", Some(Value::Integer((-7).into()))),
                ("type", Some(Value::Text("other".into()))),
            ]),
            text_map([
                ("alg", Some(Value::Integer((-7).into()))),
                ("type", Some(Value::Text("public-key".into()))),
            ]),
        ]);
        assert_eq!(
            choose_algorithm(params.clone(), &KeyAlgorithm::ALL),
            Ok(KeyAlgorithm::Es256)
        );
        let eddsa_first = Value::Array(vec![
            text_map([
                ("alg", Some(Value::Integer((-8).into()))),
                ("type", Some(Value::Text("public-key".into()))),
            ]),
            text_map([
                ("alg", Some(Value::Integer((-35).into()))),
                ("type", Some(Value::Text("public-key".into()))),
            ]),
            text_map([
                ("alg", Some(Value::Integer((-7).into()))),
                ("type", Some(Value::Text("public-key".into()))),
            ]),
        ]);
        assert_eq!(
            choose_algorithm(eddsa_first.clone(), &KeyAlgorithm::ALL),
            Ok(KeyAlgorithm::EdDsa)
        );
        // A store with ES256 only (the TPM's) skips what it cannot make.
        assert_eq!(
            choose_algorithm(eddsa_first, &[KeyAlgorithm::Es256]),
            Ok(KeyAlgorithm::Es256)
        );
        let none = Value::Array(vec![text_map([
            ("alg", Some(Value::Integer((-8).into()))),
            ("type", Some(Value::Text("public-key".into()))),
        ])]);
        assert_eq!(
            choose_algorithm(none, &[KeyAlgorithm::Es256]),
            Err(StatusCode::UnsupportedAlgorithm)
        );
        let missing = Value::Array(vec![text_map([(
            "type",
            Some(Value::Text("public-key".into())),
        )])]);
        assert_eq!(
            choose_algorithm(missing, &KeyAlgorithm::ALL),
            Err(StatusCode::MissingParameter)
        );
    }

    #[test]
    fn authenticator_data_layout() {
        let key = PublicKey::P256(crate::api::key_store::P256PublicKey {
            x: [1; 32],
            y: [2; 32],
        });
        let data = authenticator_data(
            &[9; 32],
            flags::UP,
            7,
            Some((&[3; 16], &[4, 5], &key)),
            None,
        )
        .unwrap();
        assert_eq!(&data[..32], &[9; 32]);
        assert_eq!(data[32], flags::UP | flags::AT);
        assert_eq!(&data[33..37], &[0, 0, 0, 7]);
        assert_eq!(&data[37..53], &[3; 16]);
        assert_eq!(&data[53..55], &[0, 2]);
        assert_eq!(&data[55..57], &[4, 5]);
        assert_eq!(
            &data[57..67],
            &[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]
        );
        assert_eq!(data.len(), 57 + 77);
    }

    #[test]
    fn cose_keys_are_canonical_and_match_coset_for_every_algorithm() {
        use crate::api::key_store::{Ed25519PublicKey, P256PublicKey, P384PublicKey};
        use coset::CborSerializable;
        let keys = [
            PublicKey::P256(P256PublicKey {
                x: [1; 32],
                y: [2; 32],
            }),
            PublicKey::P384(P384PublicKey {
                x: [3; 48],
                y: [4; 48],
            }),
            PublicKey::Ed25519(Ed25519PublicKey([5; 32])),
        ];
        for key in keys {
            let ours = cose_public_key(&key);
            // Canonical: decoding and re-encoding in canonical order gives the same bytes.
            let value = crate::ctap::cbor::decode_canonical(&ours).unwrap();
            assert_eq!(crate::ctap::cbor::encode(&value), ours);
            let parsed = coset::CoseKey::from_slice(&ours).unwrap();
            let expected = key.to_cose_key();
            assert_eq!(parsed.kty, expected.kty);
            assert_eq!(parsed.alg, expected.alg);
            let sorted = |k: &coset::CoseKey| {
                let mut params: Vec<String> = k.params.iter().map(|p| format!("{p:?}")).collect();
                params.sort();
                params
            };
            assert_eq!(sorted(&parsed), sorted(&expected));
        }
        // Ed25519: {1: 1, 3: -8, -1: 6, -2: x}
        let ed = cose_public_key(&PublicKey::Ed25519(Ed25519PublicKey([5; 32])));
        assert_eq!(
            &ed[..9],
            &[0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58]
        );
    }
}
