//! ES384 (ECDSA P-384, SHA-384) in the TPM key store, against swtpm (which implements P-384):
//! listed by getInfo, created by makeCredential for `alg: -35`, and its signatures verified
//! with aws-lc-rs over the COSE key the authenticator data carries.
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod support;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, UnparsedPublicKey, VerificationAlgorithm,
};
use ciborium::value::Value;
use passgate_authenticator::api::key_store::{KeyAlgorithm, KeyStore, KeyStoreError, PublicKey};
use passgate_authenticator::ctap::cbor::{int, text_map};
use passgate_authenticator::ctap::command;
use passgate_authenticator::tpm::TpmKeyStore;
use passgate_proto::authenticator_data::AuthenticatorData;
use passgate_proto::cose;
use passgate_testkit::swtpm::Swtpm;
use support::ctap::{bytes, call, member};
use support::tpm::tpm_authenticator;

fn verifies(
    algorithm: &'static dyn VerificationAlgorithm,
    public: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    UnparsedPublicKey::new(algorithm, public)
        .verify(message, signature)
        .is_ok()
}

#[test]
fn the_tpm_store_offers_es384_where_the_tpm_has_p384_and_signs_with_sha384() {
    let state = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(state.path());
    let mut store = TpmKeyStore::open(&tpm.tcti()).unwrap();
    assert_eq!(
        store.algorithms(),
        &[KeyAlgorithm::Es256, KeyAlgorithm::Es384],
        "swtpm lists NIST P-384 in TPM_CAP_ECC_CURVES"
    );
    let release = store.release_for(None).unwrap();

    let p384 = store
        .create_key(KeyAlgorithm::Es384, Some(&release))
        .unwrap();
    assert!(matches!(p384.public_key, PublicKey::P384(_)));
    assert_eq!(p384.public_key.algorithm(), KeyAlgorithm::Es384);
    let point = p384.public_key.to_raw();
    assert_eq!(point.len(), 97, "uncompressed P-384 point");
    let signature = store
        .sign(&p384.handle, b"message", Some(&release))
        .unwrap();
    assert!(verifies(
        &ECDSA_P384_SHA384_ASN1,
        &point,
        b"message",
        &signature
    ));
    assert!(!verifies(
        &ECDSA_P384_SHA384_ASN1,
        &point,
        b"massage",
        &signature
    ));

    // ES256 keys beside it still sign SHA-256 digests.
    let p256 = store
        .create_key(KeyAlgorithm::Es256, Some(&release))
        .unwrap();
    let signature = store
        .sign(&p256.handle, b"message", Some(&release))
        .unwrap();
    assert!(verifies(
        &ECDSA_P256_SHA256_ASN1,
        &p256.public_key.to_raw(),
        b"message",
        &signature
    ));

    // A P-384 key's authValue is sealed like a P-256 key's: no release, no signature.
    assert!(matches!(
        store.sign(&p384.handle, b"m", None),
        Err(KeyStoreError::UserVerificationRequired)
    ));
    assert!(matches!(
        store.create_key(KeyAlgorithm::EdDsa, Some(&release)),
        Err(KeyStoreError::UnsupportedAlgorithm(KeyAlgorithm::EdDsa))
    ));
    // A handle whose public area names no P-256/P-384 key is refused before the TPM sees it.
    let mut broken = p384.handle.clone();
    broken.0[3] ^= 0xff;
    assert!(matches!(
        store.sign(&broken, b"m", Some(&release)),
        Err(KeyStoreError::InvalidHandle)
    ));
}

const RP: &str = "p384.example";

/// The COSE algorithms a getInfo response lists.
fn listed_algorithms(info: &[(Value, Value)]) -> Vec<i128> {
    let Value::Array(algorithms) = member(info, &int(10)) else {
        panic!("algorithms is an array");
    };
    algorithms
        .iter()
        .map(|entry| {
            let Value::Map(entry) = entry else {
                panic!("an algorithm entry is a map")
            };
            i128::from(
                member(entry, &Value::Text("alg".into()))
                    .as_integer()
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn make_credential_with_alg_minus_35_gives_a_p384_credential_that_get_assertion_signs_with() {
    let tpm_state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let mut a = tpm_authenticator(&tpm, dir.path());

    // getInfo has no parameters: the command byte alone.
    let response = a.handle(&[command::GET_INFO]);
    assert_eq!(response[0], 0, "getInfo succeeds");
    let Value::Map(info) = ciborium::from_reader(&response[1..]).unwrap() else {
        panic!("getInfo answers a map");
    };
    assert_eq!(listed_algorithms(&info), vec![-7, -35]);

    // The RP prefers ES384, then ES256: the authenticator takes the first it supports.
    let client_data_hash = [7u8; 32];
    let response = call(
        &mut a,
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(client_data_hash.to_vec())),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (3, text_map([("id", Some(Value::Bytes(b"user".to_vec())))])),
            (
                4,
                Value::Array(
                    [-35, -7]
                        .into_iter()
                        .map(|alg| {
                            text_map([
                                ("alg", Some(int(alg))),
                                ("type", Some(Value::Text("public-key".into()))),
                            ])
                        })
                        .collect(),
                ),
            ),
        ],
    );
    let raw_auth_data = bytes(member(&response, &int(2))).to_vec();
    let auth_data = AuthenticatorData::parse(&raw_auth_data).unwrap();
    let attested = auth_data.attested_credential_data.unwrap();
    let key = cose::PublicKey::from_cose(&attested.public_key_cbor).unwrap();
    assert_eq!(key.algorithm(), cose::ES384);
    let cose::PublicKey::Es384 { point } = key else {
        panic!("an ES384 COSE key");
    };

    // Packed self attestation: signed by the new P-384 key itself, `alg` -35.
    assert_eq!(member(&response, &int(1)), &Value::Text("packed".into()));
    let Value::Map(statement) = member(&response, &int(3)) else {
        panic!("attStmt is a map");
    };
    assert_eq!(
        member(statement, &Value::Text("alg".into())),
        &int(cose::ES384)
    );
    let signed = [raw_auth_data.as_slice(), &client_data_hash].concat();
    assert!(verifies(
        &ECDSA_P384_SHA384_ASN1,
        &point,
        &signed,
        bytes(member(statement, &Value::Text("sig".into())))
    ));

    // getAssertion: the TPM signs authenticatorData || clientDataHash with the P-384 key.
    let client_data_hash = [9u8; 32];
    let response = call(
        &mut a,
        command::GET_ASSERTION,
        vec![
            (1, Value::Text(RP.into())),
            (2, Value::Bytes(client_data_hash.to_vec())),
            (
                3,
                Value::Array(vec![text_map([
                    ("id", Some(Value::Bytes(attested.credential_id.clone()))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
        ],
    );
    let assertion_data = bytes(member(&response, &int(2)));
    let signature = bytes(member(&response, &int(3)));
    let signed = [assertion_data, &client_data_hash].concat();
    assert!(verifies(
        &ECDSA_P384_SHA384_ASN1,
        &point,
        &signed,
        signature
    ));
    let mut tampered = signed.clone();
    tampered[0] ^= 1;
    assert!(!verifies(
        &ECDSA_P384_SHA384_ASN1,
        &point,
        &tampered,
        signature
    ));
}
