//! CTAP requests to an in-process authenticator, for the TPM tests.

use ciborium::Value;
use passgate_authenticator::Authenticator;
use passgate_authenticator::ctap::cbor::{encode, int};

/// Sends command `cmd` with the integer-keyed `entries`; asserts success and returns the
/// response map (empty when the response has no body).
pub fn call(a: &mut Authenticator, cmd: u8, entries: Vec<(i64, Value)>) -> Vec<(Value, Value)> {
    let mut request = vec![cmd];
    request.extend(encode(&Value::Map(
        entries.into_iter().map(|(k, v)| (int(k), v)).collect(),
    )));
    let response = a.handle(&request);
    assert_eq!(
        response[0], 0,
        "command {cmd:#04x}: status {:#04x}",
        response[0]
    );
    if response.len() == 1 {
        return Vec::new();
    }
    let Value::Map(map) = ciborium::from_reader(&response[1..]).unwrap() else {
        panic!("a response is a map");
    };
    map
}

/// The member `key` of a response map.
pub fn member<'a>(map: &'a [(Value, Value)], key: &Value) -> &'a Value {
    &map.iter()
        .find(|(k, _)| k == key)
        .expect("member present")
        .1
}

/// A byte string member.
pub fn bytes(value: &Value) -> &[u8] {
    value.as_bytes().expect("a byte string")
}
