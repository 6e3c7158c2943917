//! Authenticator data (WebAuthn §6.1), proto's one parser and encoder.
//!
//! Checks: no panic; what parses encodes to bytes that parse to the same value (compared as
//! encodings: the extensions are a raw CBOR value, where a NaN is not equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_proto::AuthenticatorData;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = AuthenticatorData::parse(data) else {
        return;
    };
    let encoded = first.to_bytes();
    let second = AuthenticatorData::parse(&encoded).expect("our encoding parses");
    assert_eq!(second.rp_id_hash, first.rp_id_hash);
    assert_eq!(second.flags.0, first.flags.0);
    assert_eq!(second.sign_count, first.sign_count);
    assert_eq!(second.to_bytes(), encoded, "the encoding is not stable");
});
