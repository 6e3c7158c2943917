//! WeChat SOTER's `resultJSON` and `keyJson` (proto), and the relying party's reading of the
//! key inside (PEM → SPKI → RSA-2048) and of a PSS signature over the result.
//!
//! Input: 1 selector byte, then the JSON. Checks: no panic; what parses serialises to JSON
//! that parses to the same value; a key that reads refuses a signature made of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_proto::soter::{KeyJson, ResultJson};
use passgate_relying_party::soter;

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(first) = serde_json::from_slice::<ResultJson>(json) {
            let again: ResultJson =
                serde_json::from_slice(&serde_json::to_vec(&first).unwrap()).unwrap();
            assert_eq!(first, again);
        }
        return;
    }
    let Ok(first) = serde_json::from_slice::<KeyJson>(json) else {
        if let Ok(text) = std::str::from_utf8(json) {
            let _ = soter::pem_to_spki(text);
            let _ = soter::decode_base64(text);
        }
        return;
    };
    let again: KeyJson = serde_json::from_slice(&serde_json::to_vec(&first).unwrap()).unwrap();
    assert_eq!(first, again);
    if let Some(spki) = soter::pem_to_spki(&first.pub_key) {
        if let Ok(key) = soter::rsa_2048(&spki) {
            assert!(!soter::verify_pss20(&key, json, json));
        }
    }
});
