//! checkStatus / authenticate on a real in-process authenticator with a scripted sensor; the
//! proof is checked by the relying party's verifier.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Rig, Touch};
use passgate_app_api::biometric::{self, AuthOptions};
use passgate_app_api::{CallerId, b64, unb64};
use passgate_authenticator::api::user_verifier::{Interaction, VerifierErrorCode};
use passgate_relying_party::cose::CredentialPublicKey;
use passgate_relying_party::verify::{
    AssertionExpectation, AuthenticationResponseJson, CounterPolicy, StoredCredential,
    verify_assertion,
};
use serde_json::json;

const CALLER: &str = "https://app.example.com";

fn caller() -> CallerId {
    CallerId::new(CALLER).unwrap()
}

fn options(challenge: Option<&[u8]>) -> AuthOptions {
    AuthOptions {
        challenge: challenge.map(b64),
        ..AuthOptions::default()
    }
}

#[test]
fn check_status_reports_sensor_enrollment_and_lockout() {
    let rig = Rig::with(2, |p| p);
    let status = json!(biometric::check_status(&rig.platform));
    assert_eq!(
        status,
        json!({"isAvailable": false, "biometryType": "Fingerprint",
               "error": "no finger is enrolled on the sensor", "errorCode": "biometryNotEnrolled"})
    );
    rig.sensor.enroll("right-index");
    assert_eq!(
        json!(biometric::check_status(&rig.platform)),
        json!({"isAvailable": true, "biometryType": "Fingerprint"})
    );
    // Two failed scans lock built-in verification out (the authenticator counts them).
    rig.sensor.touch(&[Touch::NoMatch, Touch::NoMatch]);
    let once = AuthOptions {
        max_attempts: Some(1),
        ..AuthOptions::default()
    };
    let i = Interaction::new();
    let e1 = biometric::authenticate(&rig.platform, &caller(), "sign in", &once, &i).unwrap_err();
    assert_eq!(e1.code, VerifierErrorCode::AuthenticationFailed);
    let e2 = biometric::authenticate(&rig.platform, &caller(), "sign in", &once, &i).unwrap_err();
    assert_eq!(e2.code, VerifierErrorCode::BiometryLockout);
    let status = biometric::check_status(&rig.platform);
    assert!(!status.is_available);
    assert_eq!(status.error_code, Some("biometryLockout"));
    rig.sensor.unplug();
    assert_eq!(
        json!(biometric::check_status(&rig.platform))["errorCode"],
        "biometryNotAvailable"
    );
}

fn verify_proof(proof: &biometric::Proof, challenge: &[u8]) -> Result<bool, String> {
    let key = &proof.key;
    let stored = StoredCredential {
        id: unb64(&key.credential_id).unwrap(),
        public_key: CredentialPublicKey::from_cose(&unb64(&key.public_key_cose).unwrap()).unwrap(),
        sign_count: 0,
        user_handle: b"passgate-proof".to_vec(),
        backup_eligible: None,
    };
    let response: AuthenticationResponseJson =
        serde_json::from_value(proof.credential.clone()).unwrap();
    let origins = vec![key.origin.clone()];
    verify_assertion(
        &stored,
        &response,
        &AssertionExpectation {
            challenge,
            origins: &origins,
            rp_id: &key.rp_id,
            require_user_verification: true,
            allow_cross_origin: false,
            counter_policy: CounterPolicy::Reject,
        },
    )
    .map(|v| v.user_verified)
    .map_err(|e| e.to_string())
}

#[test]
fn authenticate_with_a_challenge_returns_a_proof_the_relying_party_verifies() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let key = biometric::proof_key(&rig.platform, &caller()).unwrap();
    assert_eq!(key.rp_id, "passgate-app:https://app.example.com");
    assert_eq!(key.origin, CALLER);
    assert_eq!(
        rig.sensor.scans(),
        0,
        "making the key needs presence, not a scan"
    );

    rig.sensor.touch(&[Touch::Match]);
    let challenge = [7u8; 32];
    let done = biometric::authenticate(
        &rig.platform,
        &caller(),
        "approve the payment",
        &options(Some(&challenge)),
        &Interaction::new(),
    )
    .unwrap();
    assert_eq!(done.method, "biometric");
    let proof = done.proof.unwrap();
    assert_eq!(proof.key, key);
    assert_eq!(proof.challenge, b64(&challenge));
    assert_eq!(verify_proof(&proof, &challenge), Ok(true));
    assert!(
        verify_proof(&proof, &[8u8; 32]).is_err(),
        "another challenge"
    );
    let client_data: serde_json::Value = serde_json::from_slice(
        &unb64(
            proof.credential["response"]["clientDataJSON"]
                .as_str()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(client_data["type"], "webauthn.get");
    assert_eq!(client_data["origin"], CALLER);

    // Without a challenge: verified, no proof.
    rig.sensor.touch(&[Touch::Match]);
    let plain = biometric::authenticate(
        &rig.platform,
        &caller(),
        "unlock",
        &options(None),
        &Interaction::new(),
    )
    .unwrap();
    assert_eq!(plain.method, "biometric");
    assert!(plain.proof.is_none());
    assert_eq!(rig.sensor.scans(), 2);
}

#[test]
fn a_wrong_finger_never_yields_a_proof_and_max_attempts_bounds_the_scans() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    rig.sensor
        .touch(&[Touch::NoMatch, Touch::NoMatch, Touch::NoMatch]);
    let err = biometric::authenticate(
        &rig.platform,
        &caller(),
        "sign in",
        &AuthOptions {
            challenge: Some(b64(&[1; 32])),
            max_attempts: Some(3),
            ..AuthOptions::default()
        },
        &Interaction::new(),
    )
    .unwrap_err();
    assert_eq!(err.code, VerifierErrorCode::AuthenticationFailed);
    assert_eq!(err.to_json()["code"], "authenticationFailed");
    assert_eq!(rig.sensor.scans(), 3);
    // A wrong finger then the right one within maxAttempts: verified.
    rig.sensor.touch(&[Touch::NoMatch, Touch::Match]);
    let ok = biometric::authenticate(
        &rig.platform,
        &caller(),
        "sign in",
        &options(Some(&[2; 32])),
        &Interaction::new(),
    )
    .unwrap();
    assert!(ok.proof.is_some());
    rig.sensor.touch(&[Touch::Cancel]);
    let cancelled = biometric::authenticate(
        &rig.platform,
        &caller(),
        "sign in",
        &options(None),
        &Interaction::new(),
    )
    .unwrap_err();
    assert_eq!(cancelled.code, VerifierErrorCode::UserCancel);
}

#[test]
fn allow_device_credential_falls_back_to_the_pin_when_biometrics_cannot_be_used() {
    let rig = Rig::with(1, |p| p);
    rig.sensor.enroll("right-index");
    rig.sensor.touch(&[Touch::NoMatch]);
    let once = AuthOptions {
        max_attempts: Some(1),
        ..AuthOptions::default()
    };
    let i = Interaction::new();
    let locked = biometric::authenticate(&rig.platform, &caller(), "x", &once, &i).unwrap_err();
    assert_eq!(locked.code, VerifierErrorCode::BiometryLockout);
    let fallback = AuthOptions {
        allow_device_credential: true,
        challenge: Some(b64(&[3; 32])),
        ..AuthOptions::default()
    };
    // No PIN set on the authenticator.
    let no_pin = biometric::authenticate(&rig.platform, &caller(), "x", &fallback, &i).unwrap_err();
    assert_eq!(no_pin.code, VerifierErrorCode::PasscodeNotSet);
    rig.set_pin("123456");
    let done = biometric::authenticate(&rig.platform, &caller(), "x", &fallback, &i).unwrap();
    assert_eq!(done.method, "passcode");
    let proof = done.proof.unwrap();
    assert_eq!(verify_proof(&proof, &[3; 32]), Ok(true));
    // The right PIN also lifted the sensor's lockout.
    assert!(biometric::check_status(&rig.platform).is_available);
    // With the reader gone: a wrong PIN is authenticationFailed, a declined prompt userCancel.
    rig.sensor.unplug();
    rig.answer_pin("000000");
    let wrong = biometric::authenticate(
        &rig.platform,
        &caller(),
        "x",
        &AuthOptions {
            max_attempts: Some(1),
            ..fallback.clone()
        },
        &i,
    )
    .unwrap_err();
    assert_eq!(wrong.code, VerifierErrorCode::AuthenticationFailed);
    assert!(wrong.message.contains("wrong PIN"), "{}", wrong.message);
    rig.decline_pin();
    let declined =
        biometric::authenticate(&rig.platform, &caller(), "x", &fallback, &i).unwrap_err();
    assert_eq!(declined.code, VerifierErrorCode::UserCancel);
}

#[test]
fn bad_arguments_are_invalid_context_and_callers_are_isolated() {
    let rig = Rig::new();
    rig.sensor.enroll("f");
    let i = Interaction::new();
    for (reason, opts) in [
        ("", options(None)),
        ("   ", options(None)),
        (
            "ok",
            AuthOptions {
                challenge: Some("!!".into()),
                ..AuthOptions::default()
            },
        ),
        (
            "ok",
            AuthOptions {
                challenge: Some(b64(&[1; 8])),
                ..AuthOptions::default()
            },
        ),
        (
            "ok",
            AuthOptions {
                max_attempts: Some(0),
                ..AuthOptions::default()
            },
        ),
        (
            "ok",
            AuthOptions {
                max_attempts: Some(9),
                ..AuthOptions::default()
            },
        ),
        (
            "ok",
            AuthOptions {
                title: Some("x".repeat(300)),
                ..AuthOptions::default()
            },
        ),
    ] {
        let err = biometric::authenticate(&rig.platform, &caller(), reason, &opts, &i).unwrap_err();
        assert_eq!(err.code, VerifierErrorCode::InvalidContext, "{reason:?}");
    }
    assert_eq!(rig.sensor.scans(), 0, "nothing reached the sensor");
    let other = CallerId::new("com.example.other").unwrap();
    let a = biometric::proof_key(&rig.platform, &caller()).unwrap();
    let b = biometric::proof_key(&rig.platform, &other).unwrap();
    assert_ne!(a.credential_id, b.credential_id);
    assert_eq!(b.rp_id, "passgate-app:com.example.other");
    assert!(CallerId::new("").is_err());
    assert!(CallerId::new("a\nb").is_err());
    // The proof-key file is private.
    for (path, mode) in common::files(&rig.app_dir()) {
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}
