//! Helpers shared by the benchmarks: CTAP requests, an authenticator whose user verification
//! succeeds at once, and replayable getAssertion requests with and without hmac-secret.

#![allow(dead_code)] // Each benchmark uses a part.

use std::path::Path;

use ciborium::value::Value;
use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::key_store::KeyStore;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::ctap::cbor::{encode, int, int_map, text_map};
use passgate_authenticator::ctap::pin_protocol::{KeyAgreement, Protocol};
use passgate_authenticator::ctap::{AuthenticatorConfig, command};
use passgate_authenticator::software::{DeviceKey, FileCredentialStore, FileStateStore};
use passgate_authenticator::{Authenticator, Env};

/// The relying party of the benchmarks' credentials.
pub const RP: &str = "bench.example";

pub fn request(cmd: u8, entries: Vec<(i64, Value)>) -> Vec<u8> {
    let mut out = vec![cmd];
    out.extend(encode(&Value::Map(
        entries.into_iter().map(|(k, v)| (int(k), v)).collect(),
    )));
    out
}

pub fn verifying_authenticator(dir: &Path, key_store: Box<dyn KeyStore>) -> Authenticator {
    let device_key = DeviceKey::load_or_create(dir).expect("device key");
    let env = Env {
        key_store,
        credentials: Box::new(FileCredentialStore::open(dir, &device_key, 100).expect("store")),
        state: Box::new(FileStateStore::open(dir, &device_key).expect("state")),
        user: Box::new(passgate_testkit::EveryScanMatches),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, AuthenticatorConfig::default())
}

/// A credential with hmac-secret, and two getAssertion requests with UV: one with an
/// hmac-secret salt, one without the extension (the key agreement stays valid, so the same
/// requests can be replayed).
pub fn hmac_secret_requests(a: &mut Authenticator) -> (Vec<u8>, Vec<u8>) {
    let response = a.handle(&request(
        command::CLIENT_PIN,
        vec![(1, int(2)), (2, int(2))],
    ));
    assert_eq!(response[0], 0);
    let Value::Map(map) = ciborium::from_reader(&response[1..]).expect("cbor") else {
        panic!("a map");
    };
    let peer = map.into_iter().find(|(k, _)| *k == int(1)).expect("key").1;
    let platform = KeyAgreement::generate().expect("key agreement");
    let shared = platform.decapsulate(Protocol::Two, peer).expect("shared");
    let salt_enc = Protocol::Two.encrypt(&shared, &[9u8; 32]).expect("encrypt");
    let salt_auth = Protocol::Two.authenticate(&shared, &salt_enc);
    let input = int_map([
        (1, Some(platform.cose_public_key())),
        (2, Some(Value::Bytes(salt_enc))),
        (3, Some(Value::Bytes(salt_auth))),
        (4, Some(int(2))),
    ]);
    let made = a.handle(&request(
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(vec![1; 32])),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (3, text_map([("id", Some(Value::Bytes(b"prf".to_vec())))])),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Some(int(-7))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (6, text_map([("hmac-secret", Some(Value::Bool(true)))])),
            (7, text_map([("uv", Some(Value::Bool(true)))])),
        ],
    ));
    assert_eq!(made[0], 0, "makeCredential with hmac-secret");
    let auth_data_start = made
        .windows(2)
        .position(|w| w == [0x02, 0x58])
        .expect("authData")
        + 3;
    let auth_data = &made[auth_data_start..];
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + len].to_vec();
    let assertion = |extensions: Option<Value>| {
        let mut entries = vec![
            (1, Value::Text(RP.into())),
            (2, Value::Bytes(vec![2; 32])),
            (
                3,
                Value::Array(vec![text_map([
                    ("id", Some(Value::Bytes(id.clone()))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (5, text_map([("uv", Some(Value::Bool(true)))])),
        ];
        if let Some(extensions) = extensions {
            entries.push((4, extensions));
        }
        request(command::GET_ASSERTION, entries)
    };
    (
        assertion(Some(text_map([("hmac-secret", Some(input))]))),
        assertion(None),
    )
}
