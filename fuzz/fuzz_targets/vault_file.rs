//! Identity-vault files (app-api): the header in the clear, then the AES-GCM sealed values.
//!
//! Checks: no panic; a header that parses survives seal → read unchanged, and values that
//! decrypt survive seal → open unchanged (seeds are sealed with the key the entry point
//! derives, so mutations reach the values decoder too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_app_api::vault::fuzzing::vault_file;

// One call in `init` does the one-time set-up (libcrypto's) outside the per-input timer.
fuzz_target!(init: { let _ = vault_file(&[]); }, |data: &[u8]| {
    if let Err(e) = vault_file(data) {
        panic!("{e}");
    }
});
