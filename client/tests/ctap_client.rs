//! The CTAP client against passgate's real authenticator in this process (software key store,
//! files in a temporary directory): typed requests out, typed responses back, statuses kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_authenticator::ctap::{AuthenticatorConfig, PASSGATE_AAGUID};
use passgate_authenticator::presence::AutoPresence;
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};
use passgate_client::{ClientError, CtapClient};
use passgate_proto::ctap::data::{CredentialDescriptor, RpEntity, UserEntity};
use passgate_proto::ctap::{Permissions, StatusCode, get_assertion, make_credential};
use passgate_proto::{AuthenticatorData, cose};

fn client(dir: &std::path::Path) -> CtapClient {
    let device_key = DeviceKey::load_or_create(dir).unwrap();
    let env = Env {
        key_store: Box::new(SoftwareKeyStore::new(&device_key)),
        credentials: Box::new(FileCredentialStore::open(dir, &device_key, 1000).unwrap()),
        state: Box::new(FileStateStore::open(dir, &device_key).unwrap()),
        user: Box::new(AutoPresence::new()),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    let authenticator = Authenticator::new(env, AuthenticatorConfig::default());
    CtapClient::in_process(Arc::new(Mutex::new(authenticator)))
}

#[test]
fn typed_get_info_pin_make_and_get_against_the_real_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let interaction = Interaction::new();

    let info = client.info_response().unwrap();
    assert!(
        info.versions.iter().any(|v| v == "FIDO_2_1"),
        "{:?}",
        info.versions
    );
    assert_eq!(info.aaguid, PASSGATE_AAGUID);
    assert_eq!(info.option("clientPin"), Some(false));

    client.set_pin("4821").unwrap();
    assert_eq!(client.pin_retries().unwrap(), 8);
    let wrong = client
        .pin_token(
            "0000",
            Permissions::MAKE_CREDENTIAL,
            "example.com",
            &interaction,
        )
        .unwrap_err();
    assert!(wrong.is(StatusCode::PinInvalid), "{wrong:?}");
    assert_eq!(client.pin_retries().unwrap(), 7);
    let token = client
        .pin_token(
            "4821",
            Permissions::MAKE_CREDENTIAL,
            "example.com",
            &interaction,
        )
        .unwrap();
    assert_eq!(client.pin_retries().unwrap(), 8);

    let hash = [0x42; 32];
    let mut request = make_credential::Request::new(
        &hash,
        RpEntity {
            id: "example.com".into(),
            name: Some("Example".into()),
        },
        UserEntity {
            id: vec![7; 8],
            name: Some("alice".into()),
            display_name: None,
        },
        &[-7],
    );
    request.pin_uv_auth = Some(token.authorise(&hash));
    let created = client.make_credential(&request, &interaction).unwrap();
    // Packed self-attestation unless the client prefers `none` (as security keys answer).
    assert_eq!(created.fmt, "packed");
    let alg = match &created.att_stmt {
        ciborium::Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_text() == Some("alg"))
            .and_then(|(_, v)| v.as_integer())
            .map(i128::from),
        _ => None,
    };
    assert_eq!(alg, Some(-7));
    let auth_data = AuthenticatorData::parse(&created.auth_data).unwrap();
    assert!(auth_data.flags.user_verified() && auth_data.flags.user_present());
    assert!(passgate_client::is_rp_id_hash(
        &auth_data.rp_id_hash,
        "example.com"
    ));
    let attested = auth_data.attested_credential_data.unwrap();
    assert_eq!(attested.aaguid, PASSGATE_AAGUID);
    let spki = cose::to_spki(&attested.public_key).unwrap();

    let challenge = [0x24; 32];
    let mut get = get_assertion::Request::new("example.com", &challenge);
    get.allow_list = vec![CredentialDescriptor::public_key(&attested.credential_id)];
    // A token's user presence is spent by the makeCredential: a fresh one, as platforms do.
    let token = client
        .pin_token(
            "4821",
            Permissions::GET_ASSERTION,
            "example.com",
            &interaction,
        )
        .unwrap();
    get.pin_uv_auth = Some(token.authorise(&challenge));
    let assertion = client.get_assertion(&get, &interaction).unwrap();
    let signed = [assertion.auth_data.as_slice(), &challenge].concat();
    // SPKI DER: the uncompressed point is its last 65 bytes.
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki[spki.len() - 65..])
        .verify(&signed, &assertion.signature)
        .expect("the assertion verifies under the attested key");
    assert!(
        AuthenticatorData::parse(&assertion.auth_data)
            .unwrap()
            .flags
            .user_verified()
    );

    let mut unknown = get_assertion::Request::new("example.com", &challenge);
    unknown.allow_list = vec![CredentialDescriptor::public_key(&[1; 16])];
    let e = client.get_assertion(&unknown, &interaction).unwrap_err();
    assert!(matches!(e, ClientError::Status(0x2e)), "{e:?}");
}
