//! Assertion verification throughput: our library call (JSON in, verdict out) against a bare
//! aws-lc-rs P-256 verify of the same bytes and against webauthn-rs 0.6 on the same assertions.
//! `cargo xtask bench` turns the means into the ratios.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use passgate_testkit::soft_credential as common;

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, KeyPair, UnparsedPublicKey};
use common::{Tamper, unb64};
use criterion::{Criterion, criterion_group, criterion_main};
use passgate_relying_party::cose::CredentialPublicKey;
use passgate_relying_party::verify::{
    AssertionExpectation, CounterPolicy, StoredCredential, verify_assertion_json,
};
use webauthn_rs_core::proto::{PublicKeyCredential, UserVerificationPolicy};

const ORIGIN: &str = "https://passgate.example";
const RP_ID: &str = "passgate.example";

fn bench(c: &mut Criterion) {
    let (core, credential, mut soft) = common::webauthn_rs_with_credential(ORIGIN, RP_ID);

    let builder = core
        .new_challenge_authenticate_builder(
            vec![credential],
            Some(UserVerificationPolicy::Required),
        )
        .unwrap();
    let (rcr, auth_state) = core.generate_challenge_authenticate(builder).unwrap();
    let options = serde_json::to_value(&rcr).unwrap()["publicKey"].clone();
    let challenge = unb64(options["challenge"].as_str().unwrap());
    // Counter 0 on both sides: neither verifier rejects a repeat, so one assertion can be
    // verified many times.
    let assertion = soft.assert(
        &options,
        ORIGIN,
        &Tamper {
            counter: Some(0),
            ..Tamper::default()
        },
    );
    let json = serde_json::to_vec(&assertion).unwrap();

    let stored = StoredCredential {
        id: soft.id.clone(),
        public_key: CredentialPublicKey::from_cose(&unb64(&soft.cose_b64())).unwrap(),
        sign_count: 0,
        user_handle: soft.user_handle.clone(),
        backup_eligible: Some(true),
    };
    let origins = [ORIGIN.to_owned()];
    let expect = AssertionExpectation {
        challenge: &challenge,
        origins: &origins,
        rp_id: RP_ID,
        require_user_verification: true,
        allow_cross_origin: false,
        counter_policy: CounterPolicy::Reject,
    };
    verify_assertion_json(&stored, &json, &expect).expect("the bench assertion verifies");

    // The bare verify: the same signed bytes and signature, nothing else.
    let auth_data = unb64(assertion["response"]["authenticatorData"].as_str().unwrap());
    let client_data = unb64(assertion["response"]["clientDataJSON"].as_str().unwrap());
    let signature = unb64(assertion["response"]["signature"].as_str().unwrap());
    let mut signed = auth_data;
    signed.extend_from_slice(digest(&SHA256, &client_data).as_ref());
    let point = soft.key.public_key().as_ref().to_vec();
    let bare = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point);
    bare.verify(&signed, &signature).unwrap();

    let pkc: PublicKeyCredential = serde_json::from_slice(&json).unwrap();
    core.authenticate_credential(&pkc, &auth_state)
        .expect("webauthn-rs verifies the bench assertion");

    let mut group = c.benchmark_group("assertion_verify");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("bare_verify_aws_lc_rs", |b| {
        b.iter(|| {
            bare.verify(black_box(&signed), black_box(&signature))
                .is_ok()
        });
    });
    group.bench_function("passgate_verify_assertion_json", |b| {
        b.iter(|| verify_assertion_json(&stored, black_box(&json), &expect).is_ok());
    });
    group.bench_function("webauthn_rs_authenticate_credential", |b| {
        b.iter(|| {
            let pkc: PublicKeyCredential = serde_json::from_slice(black_box(&json)).unwrap();
            core.authenticate_credential(&pkc, &auth_state).is_ok()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
