//! The invariants of CTAP messages: proto's typed requests and responses decode → encode →
//! decode to the same value (requests both as a platform decodes them and as the authenticator
//! does, `decode_strict`), and every answer of the authenticator is a status byte followed
//! (on success) by canonical CBOR that proto's typed response decodes.
//!
//! "The same value" is compared as encodings: the types hold raw CBOR values in places (a COSE
//! key, unknown extensions), and a float NaN there is not equal to itself.

use ciborium::value::Value;
use passgate_proto::ctap::{
    self, Command, StatusCode, client_pin, config, credential_management, fields, get_assertion,
    get_info, large_blobs, make_credential, strict,
};

/// Decodes `body` as `T`, re-encodes and decodes again; panics if the two values differ.
fn request_round_trip<T: ctap::Request>(
    body: &[u8],
    from_value: impl Fn(Value) -> Result<T, ctap::DecodeError>,
) {
    let Ok(value) = fields::decode_value(body) else {
        return;
    };
    let Ok(first) = from_value(value) else {
        return;
    };
    let encoded = first.encode().expect("a decoded request encodes");
    assert_eq!(encoded.first(), Some(&T::COMMAND.byte()));
    let again = fields::decode_value(&encoded[1..]).expect("our encoding is CBOR");
    let second = from_value(again).expect("our encoding decodes");
    let reencoded = second.encode().expect("a decoded request encodes");
    assert_eq!(
        encoded, reencoded,
        "request changed across encode and decode"
    );
}

/// The limits of the authenticator the fuzz targets run (`AuthenticatorConfig::default`).
const LIMITS: strict::Limits = strict::Limits {
    max_credential_count_in_list: 64,
    enterprise_attestation: false,
};

/// What the authenticator's decoding (`decode_strict`) accepts, the client's encoder writes in a
/// form it accepts again, unchanged from then on.
fn strict_round_trip<T: ctap::Request>(
    body: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, StatusCode>,
) {
    let Ok(first) = decode(body) else {
        return;
    };
    let encoded = first.encode().expect("a strictly decoded request encodes");
    let second = decode(&encoded[1..]).expect("the authenticator decodes our encoding");
    let reencoded = second.encode().expect("a decoded request encodes");
    assert_eq!(
        encoded, reencoded,
        "request changed across encode and strict decode"
    );
}

/// The authenticator's decoding of the message `command byte || body`.
fn check_strict_request(byte: u8, body: &[u8]) {
    match Command::from_byte(byte) {
        Some(Command::MakeCredential) => strict_round_trip(body, |b| {
            make_credential::Request::decode_strict(b, &LIMITS)
        }),
        Some(Command::GetAssertion) => {
            strict_round_trip(body, |b| get_assertion::Request::decode_strict(b, &LIMITS))
        }
        Some(Command::ClientPin) => strict_round_trip(body, client_pin::Request::decode_strict),
        Some(Command::LargeBlobs) => strict_round_trip(body, large_blobs::Request::decode_strict),
        Some(Command::Config) => strict_round_trip(body, config::Request::decode_strict),
        Some(Command::CredentialManagement | Command::CredentialManagementPreview) => {
            let Ok(first) = credential_management::Request::decode_strict(body) else {
                return;
            };
            let encoded = first.encode().expect("a strictly decoded request encodes");
            let second = credential_management::Request::decode_strict(&encoded[1..])
                .expect("the authenticator decodes our encoding");
            assert_eq!(
                encoded,
                second.encode().expect("a decoded request encodes"),
                "request changed across encode and strict decode"
            );
        }
        _ => {}
    }
}

/// The request invariants for the message `command byte || body`.
pub fn check_request(message: &[u8]) {
    let Some((&byte, body)) = message.split_first() else {
        return;
    };
    check_strict_request(byte, body);
    match Command::from_byte(byte) {
        Some(Command::MakeCredential) => {
            request_round_trip(body, make_credential::Request::from_value)
        }
        Some(Command::GetAssertion) => request_round_trip(body, get_assertion::Request::from_value),
        Some(Command::ClientPin) => request_round_trip(body, client_pin::Request::from_value),
        Some(Command::LargeBlobs) => request_round_trip(body, large_blobs::Request::from_value),
        Some(Command::Config) => request_round_trip(body, config::Request::from_value),
        Some(Command::CredentialManagement | Command::CredentialManagementPreview) => {
            let Ok(value) = fields::decode_value(body) else {
                return;
            };
            let Ok(mut first) = credential_management::Request::from_value(value) else {
                return;
            };
            first.preview = byte == Command::CredentialManagementPreview.byte();
            let encoded = first.encode().expect("a decoded request encodes");
            assert_eq!(encoded.first(), Some(&byte));
            let again = fields::decode_value(&encoded[1..]).expect("our encoding is CBOR");
            let mut second =
                credential_management::Request::from_value(again).expect("our encoding decodes");
            second.preview = first.preview;
            let reencoded = second.encode().expect("a decoded request encodes");
            assert_eq!(
                encoded, reencoded,
                "request changed across encode and decode"
            );
        }
        _ => {}
    }
}

/// Decodes a success body as `T` (it must decode: the client relies on it), re-encodes and
/// decodes again to the same value.
fn response_round_trip<T: ctap::Response + PartialEq>(body: &[u8], what: &str) {
    let first = T::decode(body).unwrap_or_else(|e| panic!("{what} answer does not decode: {e}"));
    let encoded = first.encode().expect("a decoded response encodes");
    let second = T::decode(&encoded).expect("our encoding decodes");
    assert!(
        first == second,
        "{what} response changed across encode and decode"
    );
}

/// The answer invariant: `response` to the message whose command byte is `command`.
pub fn check_response(command: Option<u8>, response: &[u8]) {
    let (&status, body) = response
        .split_first()
        .expect("every request gets a status byte");
    if status != 0 {
        assert!(
            body.is_empty(),
            "an error status {status:#04x} came with a body"
        );
        return;
    }
    if !body.is_empty() {
        let value: Value = ciborium::from_reader(body).expect("the answer is CBOR");
        let canonical = ctap::canonical::encode(&value).expect("the answer re-encodes");
        assert_eq!(canonical, body, "the answer is not canonical CBOR");
    }
    match command.and_then(Command::from_byte) {
        Some(Command::MakeCredential) => {
            response_round_trip::<make_credential::Response>(body, "makeCredential")
        }
        Some(Command::GetAssertion | Command::GetNextAssertion) => {
            response_round_trip::<get_assertion::Response>(body, "getAssertion")
        }
        Some(Command::GetInfo) => response_round_trip::<get_info::Response>(body, "getInfo"),
        Some(Command::ClientPin) => response_round_trip::<client_pin::Response>(body, "clientPIN"),
        Some(Command::CredentialManagement | Command::CredentialManagementPreview) => {
            response_round_trip::<credential_management::Response>(body, "credentialManagement")
        }
        Some(Command::LargeBlobs) => {
            response_round_trip::<large_blobs::Response>(body, "largeBlobs")
        }
        _ => {}
    }
}
