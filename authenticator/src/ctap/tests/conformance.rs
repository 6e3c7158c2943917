//! Deviations python-fido2's device suite found (issue 20), each pinned by a test that failed
//! before its fix.

use super::pin::{set_pin, token};
use super::*;
use crate::ctap::pin_protocol::Protocol;

const PIN_INVALID: u8 = 0x31;
const PIN_NOT_SET: u8 = 0x35;

fn pin_retries(a: &mut Authenticator) -> Vec<u8> {
    a.handle(&request(0x06, vec![(1, int(2)), (2, int(1))]))
}

#[test]
fn pin_retries_without_a_pin_is_pin_not_set() {
    let mut a = authenticator(10);
    assert_eq!(pin_retries(&mut a), vec![PIN_NOT_SET]);
    assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    assert_eq!(ok_map(&pin_retries(&mut a))[&3], int(8));
}

/// authenticatorConfig setMinPINLength with forceChangePin, authorised by an `acfg` token.
fn force_pin_change(a: &mut Authenticator, pin: &str) {
    let acfg = token(a, Protocol::Two, 2, pin, Some(0x20)).unwrap();
    let sub_params = int_map([(3, Some(Value::Bool(true)))]);
    let mut message = vec![0xff; 32];
    message.extend([0x0d, 0x03]);
    message.extend(encode(&sub_params));
    let param = Protocol::Two.authenticate(&acfg, &message);
    let resp = a.handle(&request(
        0x0d,
        vec![
            (1, int(3)),
            (2, sub_params),
            (3, int(2)),
            (4, Value::Bytes(param)),
        ],
    ));
    assert_eq!(resp, vec![0]);
}

#[test]
fn forced_pin_change_answers_the_correct_pin_with_pin_invalid_and_resets_retries() {
    let mut a = authenticator(10);
    assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    force_pin_change(&mut a, "1234");
    let info = ok_map(&a.handle(&[command::GET_INFO]));
    assert_eq!(info[&0x0c], Value::Bool(true), "forcePINChange in getInfo");

    assert_eq!(
        token(&mut a, Protocol::Two, 2, "0000", None),
        Err(PIN_INVALID)
    );
    assert_eq!(ok_map(&pin_retries(&mut a))[&3], int(7));
    // getPinToken and getPinUvAuthTokenUsingPinWithPermissions alike: no token, PIN_INVALID,
    // and the retries are back to the maximum because the PIN itself was right.
    assert_eq!(
        token(&mut a, Protocol::Two, 2, "1234", None),
        Err(PIN_INVALID)
    );
    assert_eq!(ok_map(&pin_retries(&mut a))[&3], int(8));
    assert_eq!(
        token(&mut a, Protocol::Two, 2, "1234", Some(0x01)),
        Err(PIN_INVALID)
    );
    assert_eq!(
        token(&mut a, Protocol::One, 1, "1234", None),
        Err(PIN_INVALID)
    );
    assert_eq!(ok_map(&pin_retries(&mut a))[&3], int(8));
}

/// The extensions map at the end of an assertion's authenticator data (ED set, no AT).
fn assertion_extensions(auth_data: &[u8]) -> Value {
    assert_eq!(auth_data[32] & 0x80, 0x80, "ED flag");
    decode_canonical(&auth_data[37..]).unwrap()
}

#[test]
fn cred_blob_comes_back_for_the_ctap_input_cred_blob_true() {
    let mut a = authenticator(10);
    let blob = vec![0xb1; 32];
    let made = make(
        &mut a,
        "example.com",
        b"u",
        true,
        vec![(
            6,
            text_map([("credBlob", Some(Value::Bytes(blob.clone())))]),
        )],
    );
    let descriptor = text_map([
        ("id", Some(Value::Bytes(made.id.clone()))),
        ("type", Some(text("public-key"))),
    ]);
    let ga = |extensions: Value| {
        request(
            command::GET_ASSERTION,
            vec![
                (1, text("example.com")),
                (2, Value::Bytes(vec![3; 32])),
                (3, Value::Array(vec![descriptor.clone()])),
                (4, extensions),
            ],
        )
    };
    // CTAP 2.1 §12.2: the authenticator input is `credBlob: true` (getCredBlob is the
    // WebAuthn client extension's name, which python-fido2 translates).
    let resp = ok_map(&a.handle(&ga(text_map([("credBlob", Some(Value::Bool(true)))]))));
    assert_eq!(
        assertion_extensions(resp[&2].as_bytes().unwrap()),
        text_map([("credBlob", Some(Value::Bytes(blob)))])
    );
    // The client extension's name is not an authenticator input: ignored, no extensions.
    let resp = ok_map(&a.handle(&ga(text_map([("getCredBlob", Some(Value::Bool(true)))]))));
    assert_eq!(resp[&2].as_bytes().unwrap().len(), 37, "no extensions");
}

#[test]
fn get_info_lists_the_key_stores_algorithms_and_make_credential_takes_the_clients_first() {
    let mut a = authenticator(10);
    let info = ok_map(&a.handle(&[command::GET_INFO]));
    // The test double's store says nothing: ES256 only, as the TPM store.
    assert_eq!(
        info[&10],
        Value::Array(vec![text_map([
            ("alg", Some(int(-7))),
            ("type", Some(text("public-key"))),
        ])])
    );
    let params = |algs: &[i64]| {
        Value::Array(
            algs.iter()
                .map(|alg| text_map([("alg", Some(int(*alg))), ("type", Some(text("public-key")))]))
                .collect(),
        )
    };
    // makeCredential for example.com with `pubKeyCredParams` replaced.
    let request_with = |algs: &[i64]| {
        let request = make_credential_request("example.com", b"u", false, vec![]);
        let Value::Map(mut entries) = decode_canonical(&request[1..]).unwrap() else {
            panic!("not a map")
        };
        for (k, v) in entries.iter_mut() {
            if *k == int(4) {
                *v = params(algs);
            }
        }
        let mut out = vec![command::MAKE_CREDENTIAL];
        out.extend(encode(&Value::Map(entries)));
        out
    };
    // EdDSA first, then ES256: a store with ES256 only makes an ES256 key.
    let made = ok_map(&a.handle(&request_with(&[-8, -7])));
    let auth_data = made[&2].as_bytes().unwrap();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let cose = &auth_data[55 + id_len..];
    assert_eq!(&cose[..5], &[0xa5, 0x01, 0x02, 0x03, 0x26], "EC2, ES256");
    // Nothing it can make: UNSUPPORTED_ALGORITHM.
    assert_eq!(a.handle(&request_with(&[-8, -35])), vec![0x26]);
}

/// On uhid passgate announces a security key's message limits; large-blob fragments follow
/// the announced maxMsgSize (maxFragmentLength = maxMsgSize − 64).
#[test]
fn the_uhid_limits_are_announced_and_bound_large_blob_fragments() {
    let mut a = authenticator(10);
    let read = |a: &mut Authenticator, get: i64| {
        a.handle(&request(0x0c, vec![(1, int(get)), (3, int(0))]))
    };
    assert_eq!(read(&mut a, 7545)[0], 0, "7609 - 64 by default");
    crate::transport::uhid::announce_hid_limits(a.config_mut());
    let info = ok_map(&a.handle(&[command::GET_INFO]));
    assert_eq!(info[&5], int(1200));
    assert_eq!(info[&7], int(8));
    assert_eq!(read(&mut a, 1136)[0], 0);
    assert_eq!(read(&mut a, 1137), vec![0x03], "CTAP1_ERR_INVALID_LENGTH");
}
