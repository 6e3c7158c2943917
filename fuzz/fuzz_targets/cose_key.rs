//! COSE_Key credential public keys (proto's coset decoding, the relying party's verifier, the
//! client's SPKI conversion).
//!
//! Input: the COSE_Key CBOR. Checks: no panic; a key that decodes survives its stored JSON
//! form (what the relying party keeps at registration) unchanged, keeps its algorithm, and
//! refuses a signature made of the input's bytes; the SPKI conversion does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_proto::cose::{self, PublicKey};
use passgate_relying_party::cose::CredentialPublicKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = ciborium::from_reader::<ciborium::value::Value, _>(data) {
        let _ = cose::to_spki(&value);
        let _ = cose::algorithm(&value);
    }
    let Ok(key) = PublicKey::from_cose(data) else {
        return;
    };
    let stored = serde_json::to_vec(&key).expect("a key serialises");
    let again: PublicKey = serde_json::from_slice(&stored).expect("the stored form parses");
    assert_eq!(key, again);
    let verifier = CredentialPublicKey::from_cose(data).expect("the same bytes decode again");
    assert_eq!(verifier.algorithm(), key.algorithm());
    assert!(!verifier.verify(b"passgate fuzz message", data));
});
