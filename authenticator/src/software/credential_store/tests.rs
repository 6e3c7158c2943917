//! The record encoding: old forms decode, every algorithm round-trips, hmac-secret key forms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code.
use ciborium::value::Value;

use super::*;
use crate::api::credential_store::{CredRandom32, HmacSecretKeys};
use crate::api::key_store::{CredRandomWithUv, KeyHandle, PublicKey};
use crate::ctap::cbor;

#[test]
fn records_without_a_creation_order_decode_with_their_seconds() {
    let record = CredentialRecord {
        id: b"id".to_vec(),
        rp_id: "example.com".into(),
        rp_name: None,
        user_id: b"u".to_vec(),
        user_name: None,
        user_display_name: None,
        discoverable: true,
        algorithm: KeyAlgorithm::Es256,
        key: KeyHandle(vec![1, 2, 3]),
        public_key: PublicKey::P256(crate::api::key_store::P256PublicKey {
            x: [1; 32],
            y: [2; 32],
        }),
        created_at: 1_700_000_000,
        created_ns: 1_700_000_000_123_456_789,
        cred_protect: 1,
        hmac_secret: None,
        cred_blob: None,
        large_blob_key: None,
        biometric_set: None,
    };
    let encoded = encode_record(&record);
    assert_eq!(decode_record(&encoded), Some(record.clone()));
    // The same record as written before key 17 existed.
    let Value::Map(entries) = ciborium::from_reader::<Value, _>(&encoded[..]).unwrap() else {
        panic!("a record is a map");
    };
    let old: Vec<(Value, Value)> = entries
        .into_iter()
        .filter(|(k, _)| *k != Value::Integer(17.into()))
        .collect();
    let decoded = decode_record(&cbor::encode(&Value::Map(old))).unwrap();
    assert_eq!(decoded.created_ns, 1_700_000_000_000_000_000);
    assert_eq!(decoded.created_at, 1_700_000_000);
}

#[test]
fn eddsa_and_es384_records_round_trip_and_a_key_of_the_wrong_size_is_corrupt() {
    use crate::api::key_store::{Ed25519PublicKey, P384PublicKey};
    let es256 = CredentialRecord {
        id: b"id".to_vec(),
        rp_id: "example.com".into(),
        rp_name: None,
        user_id: b"u".to_vec(),
        user_name: None,
        user_display_name: None,
        discoverable: true,
        algorithm: KeyAlgorithm::Es256,
        key: KeyHandle(vec![1, 2, 3]),
        public_key: PublicKey::P256(crate::api::key_store::P256PublicKey {
            x: [1; 32],
            y: [2; 32],
        }),
        created_at: 1,
        created_ns: 1,
        cred_protect: 1,
        hmac_secret: None,
        cred_blob: None,
        large_blob_key: None,
        biometric_set: None,
    };
    let eddsa = CredentialRecord {
        algorithm: KeyAlgorithm::EdDsa,
        public_key: PublicKey::Ed25519(Ed25519PublicKey([7; 32])),
        ..es256.clone()
    };
    let es384 = CredentialRecord {
        algorithm: KeyAlgorithm::Es384,
        public_key: PublicKey::P384(P384PublicKey {
            x: [8; 48],
            y: [9; 48],
        }),
        ..es256.clone()
    };
    for record in [&eddsa, &es384] {
        assert_eq!(decode_record(&encode_record(record)), Some(record.clone()));
    }
    // An ES256 point under an EdDSA algorithm does not decode.
    let mismatched = CredentialRecord {
        algorithm: KeyAlgorithm::EdDsa,
        ..es256
    };
    assert_eq!(decode_record(&encode_record(&mismatched)), None);
}

fn entries(record: &CredentialRecord) -> Vec<(Value, Value)> {
    let Value::Map(entries) =
        ciborium::from_reader::<Value, _>(&encode_record(record)[..]).unwrap()
    else {
        panic!("a record is a map");
    };
    entries
}

#[test]
fn hmac_secret_keys_in_both_record_forms() {
    let mut record = decode_record(&encode_record(&CredentialRecord {
        id: b"id".to_vec(),
        rp_id: "example.com".into(),
        rp_name: None,
        user_id: b"u".to_vec(),
        user_name: None,
        user_display_name: None,
        discoverable: false,
        algorithm: KeyAlgorithm::Es256,
        key: KeyHandle(vec![1, 2, 3]),
        public_key: PublicKey::P256(crate::api::key_store::P256PublicKey {
            x: [1; 32],
            y: [2; 32],
        }),
        created_at: 1,
        created_ns: 1,
        cred_protect: 1,
        hmac_secret: None,
        cred_blob: None,
        large_blob_key: None,
        biometric_set: None,
    }))
    .unwrap();
    let secret = |b: u8| CredRandom32(Zeroizing::new([b; 32]));
    // The first form, as every record before the TPM could hold the key: key 13,
    // CredRandomWithUV || CredRandomWithoutUV. Written unchanged for in-record keys.
    let mut written_before: Vec<u8> = [0xaa; 32].to_vec();
    written_before.extend_from_slice(&[0xbb; 32]);
    record.hmac_secret = Some(HmacSecretKeys {
        with_uv: CredRandomWithUv::InRecord(secret(0xaa)),
        without_uv: secret(0xbb),
    });
    let first = entries(&record);
    assert!(first.contains(&(Value::Integer(13.into()), Value::Bytes(written_before))));
    assert!(!first.iter().any(|(k, _)| *k == Value::Integer(18.into())));
    assert_eq!(decode_record(&encode_record(&record)), Some(record.clone()));

    // The second form: key 18, the without-UV key and the key store's handle.
    record.hmac_secret = Some(HmacSecretKeys {
        with_uv: CredRandomWithUv::InKeyStore(KeyHandle(vec![3, 9, 9])),
        without_uv: secret(0xcc),
    });
    let second = entries(&record);
    assert!(!second.iter().any(|(k, _)| *k == Value::Integer(13.into())));
    assert!(second.contains(&(
        Value::Integer(18.into()),
        cbor::int_map([
            (1, Some(Value::Bytes(vec![0xcc; 32]))),
            (2, Some(Value::Bytes(vec![3, 9, 9]))),
        ])
    )));
    assert_eq!(decode_record(&encode_record(&record)), Some(record.clone()));

    // Both forms at once, or a short key, is corrupt.
    let mut both = second.clone();
    both.push((Value::Integer(13.into()), Value::Bytes(vec![0; 64])));
    assert_eq!(decode_record(&cbor::encode(&Value::Map(both))), None);
    let short: Vec<(Value, Value)> = first
        .into_iter()
        .map(|(k, v)| {
            if k == Value::Integer(13.into()) {
                (k, Value::Bytes(vec![0; 63]))
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(decode_record(&cbor::encode(&Value::Map(short))), None);
    // The secrets never show in debug output.
    let printed = format!("{record:?}");
    assert!(
        printed.contains("InKeyStore(KeyHandle(3 bytes))"),
        "{printed}"
    );
    assert!(!printed.contains("204"), "{printed}");
}
