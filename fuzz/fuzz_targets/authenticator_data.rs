//! Authenticator data (WebAuthn §6.1), proto's one parser and encoder.
//!
//! Checks: no panic; what parses encodes to bytes that parse to the same value, and a parse
//! of canonical input gives back exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_proto::AuthenticatorData;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = AuthenticatorData::parse(data) else {
        return;
    };
    let encoded = first.to_bytes();
    let second = AuthenticatorData::parse(&encoded).expect("our encoding parses");
    assert_eq!(first, second);
    assert_eq!(second.to_bytes(), encoded, "the encoding is not stable");
});
