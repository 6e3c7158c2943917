//! Key attestation on swtpm: the TPM's attestation key certifies each credential key
//! (`TPM2_Certify`), a test CA certifies the attestation key, and makeCredential answers in
//! WebAuthn's `tpm` format when the client asks for it (attestationFormatsPreference) —
//! verified by webauthn-rs 0.6 (our relying party's library) with the test CA as its trust
//! anchor. Without an installed certificate the authenticator falls back to the next format.
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod support;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use ciborium::value::Value;
use passgate_authenticator::Authenticator;
use passgate_authenticator::api::key_store::{KeyStore, KeyStoreError};
use passgate_authenticator::ctap::cbor::{int, text_map};
use passgate_authenticator::ctap::{PASSGATE_AAGUID, command};
use passgate_authenticator::tpm::TpmKeyStore;
use passgate_testkit::swtpm::Swtpm;
use passgate_testkit::tpm_ca::{
    AttestationKeySubject, TestCa, WebauthnError, webauthn_rs_register_attested,
};
use support::ctap::{bytes, call, member};
use support::tpm::{authenticator, open_store};

const RP: &str = "example.com";
const ORIGIN: &str = "https://example.com";

/// Creates the store's attestation key, has `ca` certify it and installs the chain.
fn certify_attestation_key(store: &mut TpmKeyStore, ca: &TestCa) -> AttestationKeySubject {
    let ak = store.attestation_key().unwrap();
    let subject = AttestationKeySubject {
        public_key_sec1: ak.public_key.to_sec1_uncompressed().to_vec(),
        tpm_manufacturer: ak.tpm_manufacturer,
        tpm_model: ak.tpm_model,
        tpm_version: ak.tpm_version,
    };
    // The AK certificate and any intermediates; the root is the verifier's trust anchor and
    // stays out of x5c.
    let cert = ca.issue_attestation_key(&subject);
    store.install_attestation_chain(vec![cert]).unwrap();
    subject
}

/// makeCredential for `RP` with `formats` as attestationFormatsPreference; returns the
/// response's members and the attestation object WebAuthn would hand the relying party.
fn make_credential(
    a: &mut Authenticator,
    client_data_hash: &[u8; 32],
    formats: &[&str],
) -> (Vec<(Value, Value)>, Vec<u8>, Vec<u8>) {
    let response = call(
        a,
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(client_data_hash.to_vec())),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (3, text_map([("id", Some(Value::Bytes(b"alice".to_vec())))])),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Some(int(-7))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (
                0x0b,
                Value::Array(formats.iter().map(|f| Value::Text((*f).into())).collect()),
            ),
        ],
    );
    let fmt = member(&response, &int(1)).clone();
    let auth_data = bytes(member(&response, &int(2))).to_vec();
    let att_stmt = member(&response, &int(3)).clone();
    // authData: rpIdHash 32, flags 1, counter 4, AAGUID 16, credential ID length 2, ID.
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + id_len].to_vec();
    let attestation_object = Value::Map(vec![
        (Value::Text("fmt".into()), fmt),
        (Value::Text("attStmt".into()), att_stmt),
        (Value::Text("authData".into()), Value::Bytes(auth_data)),
    ]);
    let mut encoded = Vec::new();
    ciborium::into_writer(&attestation_object, &mut encoded).unwrap();
    (response, encoded, id)
}

fn text(value: &Value) -> &str {
    value.as_text().expect("a text string")
}

/// getInfo's attestationFormats (CTAP 2.2 member 0x16).
fn attestation_formats(a: &mut Authenticator) -> Vec<String> {
    let response = a.handle(&[command::GET_INFO]);
    assert_eq!(response[0], 0, "getInfo status");
    let Value::Map(info) = ciborium::from_reader(&response[1..]).unwrap() else {
        panic!("getInfo answers a map");
    };
    member(&info, &int(0x16))
        .as_array()
        .expect("attestationFormats is an array")
        .iter()
        .map(|f| text(f).to_owned())
        .collect()
}

/// webauthn-rs 0.6.2 (our relying party's library) cannot verify any `tpm` statement: its
/// `only_hash_from_type` answers COSEKeyInvalidType for every algorithm but RS1
/// (kanidm/webauthn-rs#535). It gets as far as that step — the statement parses, the
/// public areas match — and this test pins exactly that, so that an upgrade that fixes it
/// fails here and turns it into a verification.
#[test]
fn webauthn_rs_0_6_2_parses_the_statement_and_stops_at_its_known_tpm_hash_bug() {
    let tpm_state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let ca = TestCa::new();
    let mut store = open_store(&tpm.tcti(), dir.path());
    assert!(
        !store.can_attest(),
        "no attestation before the chain is installed"
    );
    let subject = certify_attestation_key(&mut store, &ca);
    assert!(store.can_attest());
    // swtpm is IBM's: vendor ID "IBM\0".
    assert_eq!(subject.tpm_manufacturer, "id:49424D00");
    let mut a = authenticator(store, dir.path());

    let verdict =
        webauthn_rs_register_attested(RP, ORIGIN, &ca.cert_der(), PASSGATE_AAGUID, |hash| {
            let (response, attestation_object, id) = make_credential(&mut a, hash, &["tpm"]);
            assert_eq!(text(member(&response, &int(1))), "tpm");
            (attestation_object, id)
        });
    assert_eq!(
        verdict.map(|_| ()),
        Err(WebauthnError::COSEKeyInvalidType),
        "webauthn-rs 0.6.2's tpm verification stops at its hash step"
    );
}

#[test]
fn the_statement_certifies_the_credential_key_and_formats_fall_back_in_order() {
    let tpm_state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let ca = TestCa::new();
    let mut store = open_store(&tpm.tcti(), dir.path());
    // The AK exists but has no certificate yet: `tpm` is skipped for the next preference.
    let _ = store.attestation_key().unwrap();
    // A certificate of another key (the CA's own) is refused, and so is an empty chain.
    assert!(matches!(
        store.install_attestation_chain(vec![ca.cert_der()]),
        Err(KeyStoreError::Backend(message)) if message.contains("not the attestation key's")
    ));
    assert!(store.install_attestation_chain(Vec::new()).is_err());
    assert!(!store.can_attest());
    let mut a = authenticator(store, dir.path());
    assert_eq!(
        attestation_formats(&mut a),
        ["packed"],
        "no tpm in getInfo without a certified attestation key"
    );
    let (response, _, _) = make_credential(&mut a, &[1u8; 32], &["tpm", "none"]);
    assert_eq!(text(member(&response, &int(1))), "none");
    let (response, _, _) = make_credential(&mut a, &[1u8; 32], &["tpm"]);
    assert_eq!(
        text(member(&response, &int(1))),
        "packed",
        "no producible preference: the configured default"
    );
    drop(a);

    // Installed (the AK reloaded from the state store, as after a restart).
    let mut store = open_store(&tpm.tcti(), dir.path());
    let subject = certify_attestation_key(&mut store, &ca);
    let mut a = authenticator(store, dir.path());
    assert_eq!(attestation_formats(&mut a), ["packed", "tpm"]);
    let (response, _, _) = make_credential(&mut a, &[2u8; 32], &["packed", "tpm"]);
    assert_eq!(
        text(member(&response, &int(1))),
        "packed",
        "the client's order wins"
    );
    let (response, _, _) = make_credential(&mut a, &[3u8; 32], &["tpm"]);
    assert_eq!(text(member(&response, &int(1))), "tpm");
    let Value::Map(statement) = member(&response, &int(3)) else {
        panic!("attStmt is a map");
    };
    let field = |name: &str| {
        statement
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("attStmt has {name}"))
    };
    assert_eq!(text(&field("ver")), "2.0");
    assert_eq!(field("alg"), int(-7));
    let x5c = field("x5c");
    let x5c = x5c.as_array().unwrap();
    assert_eq!(x5c.len(), 1, "the AK certificate, no root");
    // certInfo: TPM_GENERATED_VALUE, then TPM_ST_ATTEST_CERTIFY.
    let cert_info = field("certInfo");
    let cert_info = bytes(&cert_info);
    assert_eq!(&cert_info[..4], &[0xff, 0x54, 0x43, 0x47]);
    assert_eq!(&cert_info[4..6], &[0x80, 0x17]);
    // pubArea: an ECC key (TPM_ALG_ECC) with the SHA-256 name algorithm.
    let pub_area = field("pubArea");
    let pub_area = bytes(&pub_area);
    assert_eq!(&pub_area[..4], &[0x00, 0x23, 0x00, 0x0b]);

    // What a verifier checks (WebAuthn L3 §8.3.1), here with aws-lc-rs against the AK's
    // public key: the AK signed certInfo; certInfo certifies pubArea's name
    // (nameAlg || SHA-256(pubArea)); extraData is SHA-256(authData || clientDataHash).
    let sig = field("sig");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &subject.public_key_sec1)
        .verify(cert_info, bytes(&sig))
        .expect("the AK signed certInfo");
    let mut name = vec![0x00, 0x0b];
    name.extend_from_slice(digest(&SHA256, pub_area).as_ref());
    let mut named = vec![0x00, 0x22];
    named.extend_from_slice(&name);
    assert!(
        cert_info
            .windows(named.len())
            .any(|w| w == named.as_slice()),
        "certInfo certifies pubArea's name"
    );
    let auth_data = bytes(member(&response, &int(2)));
    let mut to_be_signed = auth_data.to_vec();
    to_be_signed.extend_from_slice(&[3u8; 32]);
    let mut extra = vec![0x00, 0x20];
    extra.extend_from_slice(digest(&SHA256, &to_be_signed).as_ref());
    assert!(
        cert_info
            .windows(extra.len())
            .any(|w| w == extra.as_slice()),
        "extraData is the hash of attToBeSigned"
    );
    let mut forged = cert_info.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &subject.public_key_sec1)
            .verify(&forged, bytes(&sig))
            .is_err()
    );
}
