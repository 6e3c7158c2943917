//! Credential activation on swtpm: a CA certifies passgate's attestation key (AK) only through
//! `TPM2_MakeCredential` to the endorsement key (EK) of the authenticator's TPM, bound to the
//! AK's name; `TPM2_ActivateCredential` there recovers the secret that opens the sealed
//! certificate chain. A credential made for another TPM's EK, or for another AK, never
//! activates, and nothing is installed. The CA's MakeCredential runs on a TPM of its own (a
//! second swtpm), which also plays "another TPM".
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

#[allow(dead_code)] // The CTAP helpers are the other TPM tests'.
mod support;

use passgate_authenticator::api::key_store::{KeyStore, KeyStoreError};
use passgate_authenticator::tpm::capture::TpmBusRecorder;
use passgate_authenticator::tpm::{
    ActivationChallenge, ActivationRequest, CREDENTIAL_LEN, TpmKeyStore, attestation_key_name,
    make_credential, seal_attestation_chain,
};
use passgate_testkit::swtpm::Swtpm;
use passgate_testkit::tpm_ca::{AttestationKeySubject, TestCa};
use support::tpm::open_store;

/// The test CA's side: MakeCredential on `ca_tpm` for `request`'s EK and AK, the AK
/// certificate issued from `request`, sealed under the credential.
fn answer(ca: &TestCa, ca_tpm: &Swtpm, request: &ActivationRequest) -> ActivationChallenge {
    answer_with_credential(ca, ca_tpm, request).0
}

/// [`answer`], and the credential it protects.
fn answer_with_credential(
    ca: &TestCa,
    ca_tpm: &Swtpm,
    request: &ActivationRequest,
) -> (ActivationChallenge, [u8; CREDENTIAL_LEN]) {
    let mut credential = [0u8; CREDENTIAL_LEN];
    aws_lc_rs::rand::fill(&mut credential).unwrap();
    let (credential_blob, encrypted_secret) =
        make_credential(&ca_tpm.tcti(), request, &credential).unwrap();
    let ak = &request.attestation_key;
    let certificate = ca.issue_attestation_key(&AttestationKeySubject {
        public_key_sec1: ak.public_key.to_sec1_uncompressed().to_vec(),
        tpm_manufacturer: ak.tpm_manufacturer.clone(),
        tpm_model: ak.tpm_model.clone(),
        tpm_version: ak.tpm_version.clone(),
    });
    let challenge = ActivationChallenge {
        credential_blob,
        encrypted_secret,
        sealed_chain: seal_attestation_chain(&credential, &[certificate]).unwrap(),
    };
    (challenge, credential)
}

fn activation_error(store: &mut TpmKeyStore, challenge: &ActivationChallenge) -> String {
    match store.activate_attestation_chain(challenge) {
        Err(KeyStoreError::Backend(message)) => message,
        other => panic!("activation must fail: {other:?}"),
    }
}

#[test]
fn only_this_tpms_endorsement_key_and_attestation_key_activate_the_certificate() {
    let (tpm_state, ca_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tpm = Swtpm::start(tpm_state.path());
    let ca_tpm = Swtpm::start(ca_state.path());
    let ca = TestCa::new();

    let mut store = open_store(&tpm.tcti(), dir.path());
    let request = store.activation_request().unwrap();
    // An unmanufactured swtpm has no EK certificate in NV; the EK is the TCG default RSA
    // 2048 key, re-derived identically each time.
    assert_eq!(request.ek_certificate, None);
    assert_eq!(store.activation_request().unwrap(), request);
    // TPM name of the AK: TPM_ALG_SHA256, then SHA-256 of the public area.
    let name = attestation_key_name(&request.ak_public).unwrap();
    assert_eq!((name.len(), &name[..2]), (34, &[0x00, 0x0b][..]));
    // A CA refuses to certify anything but a restricted signing key as an AK: the EK is a
    // restricted decryption key.
    assert!(matches!(
        attestation_key_name(&request.ek_public),
        Err(KeyStoreError::Backend(m)) if m.contains("not an attestation key")
    ));

    // Another TPM's EK and AK.
    let mut other = open_store(&ca_tpm.tcti(), other_dir.path());
    let other_request = other.activation_request().unwrap();
    assert_ne!(other_request.ek_public, request.ek_public);
    drop(other);

    // The credential made for another TPM's EK: this TPM cannot decrypt its seed.
    let wrong_ek = ActivationRequest {
        ek_public: other_request.ek_public.clone(),
        ..request.clone()
    };
    let message = activation_error(&mut store, &answer(&ca, &ca_tpm, &wrong_ek));
    assert!(
        message.contains("credential activation failed"),
        "{message}"
    );
    assert!(!store.can_attest(), "nothing installed");

    // The right EK, but bound to another AK's name: the TPM finds no such object.
    let wrong_ak = ActivationRequest {
        ak_public: other_request.ak_public.clone(),
        ..request.clone()
    };
    let message = activation_error(&mut store, &answer(&ca, &ca_tpm, &wrong_ak));
    assert!(
        message.contains("credential activation failed"),
        "{message}"
    );
    assert!(!store.can_attest());

    // The right credential with a chain sealed under another secret does not open.
    let mut mixed = answer(&ca, &ca_tpm, &request);
    mixed.sealed_chain = answer(&ca, &ca_tpm, &request).sealed_chain;
    let message = activation_error(&mut store, &mixed);
    assert!(message.contains("does not open"), "{message}");
    assert!(!store.can_attest());

    // This TPM's EK and AK: activated, the chain opens and is installed. Recorded on the bus:
    // the TPM returns the credential encrypted by the salted session, never in the clear.
    drop(store);
    let bus = TpmBusRecorder::start(tpm.port).unwrap();
    let mut store = open_store(&bus.tcti(), dir.path());
    let (challenge, credential) = answer_with_credential(&ca, &ca_tpm, &request);
    bus.take();
    store.activate_attestation_chain(&challenge).unwrap();
    assert!(store.can_attest());
    let exchanges = bus.take();
    const TPM_CC_ACTIVATE_CREDENTIAL: u32 = 0x147;
    assert!(
        exchanges
            .iter()
            .any(|e| e.command_code() == Some(TPM_CC_ACTIVATE_CREDENTIAL)
                && e.response_code() == Some(0)),
        "ActivateCredential succeeded on the recorded bus"
    );
    let in_the_clear = |bytes: &[u8]| bytes.windows(CREDENTIAL_LEN).any(|w| w == credential);
    assert!(
        !exchanges
            .iter()
            .any(|e| in_the_clear(&e.command) || in_the_clear(&e.response)),
        "the activated credential crossed the bus in the clear"
    );
    drop(store);
    // Kept in the state store, like a chain installed by hand.
    assert!(open_store(&tpm.tcti(), dir.path()).can_attest());
}
