//! Request structures shared by several commands and the authenticator-data builder.

use aws_lc_rs::digest;
use ciborium::value::Value;

use passgate_proto::ctap::data::{CredentialParameter, PUBLIC_KEY};

use super::status::StatusCode;
use crate::api::key_store::{KeyAlgorithm, PublicKey};

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

/// The first algorithm of `pubKeyCredParams` (in the caller's order of preference, only
/// `"public-key"` entries) that `supported` (the key store's) holds.
pub fn choose_algorithm(
    params: &[CredentialParameter],
    supported: &[KeyAlgorithm],
) -> Result<KeyAlgorithm, StatusCode> {
    params
        .iter()
        .filter(|p| p.kind == PUBLIC_KEY)
        .find_map(|p| KeyAlgorithm::from_cose_id(p.alg).filter(|alg| supported.contains(alg)))
        .ok_or(StatusCode::UnsupportedAlgorithm)
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

    /// pubKeyCredParams decoded as the request decoder does, then chosen from.
    fn choose(params: Value, supported: &[KeyAlgorithm]) -> Result<KeyAlgorithm, StatusCode> {
        choose_algorithm(
            &passgate_proto::ctap::strict::credential_parameters(params)?,
            supported,
        )
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
            choose(params.clone(), &KeyAlgorithm::ALL),
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
            choose(eddsa_first.clone(), &KeyAlgorithm::ALL),
            Ok(KeyAlgorithm::EdDsa)
        );
        // A store with ES256 only (the TPM's) skips what it cannot make.
        assert_eq!(
            choose(eddsa_first, &[KeyAlgorithm::Es256]),
            Ok(KeyAlgorithm::Es256)
        );
        let none = Value::Array(vec![text_map([
            ("alg", Some(Value::Integer((-8).into()))),
            ("type", Some(Value::Text("public-key".into()))),
        ])]);
        assert_eq!(
            choose(none, &[KeyAlgorithm::Es256]),
            Err(StatusCode::UnsupportedAlgorithm)
        );
        let missing = Value::Array(vec![text_map([(
            "type",
            Some(Value::Text("public-key".into())),
        )])]);
        assert_eq!(
            choose(missing, &KeyAlgorithm::ALL),
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
