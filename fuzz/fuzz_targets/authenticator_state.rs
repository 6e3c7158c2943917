//! The authenticator's state files, below their encryption: the PIN state, a credential
//! record (both CBOR), and the signature-counter epoch file.
//!
//! Input: 1 selector byte, then the file's bytes. Checks: no panic, and a file that decodes
//! re-encodes to bytes that decode to the same encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_authenticator::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Err(e) = fuzzing::pin_state(bytes) {
                panic!("{e:?}");
            }
        }
        1 => {
            if let Err(e) = fuzzing::credential_record(bytes) {
                panic!("{e:?}");
            }
        }
        _ => {
            if let Some(epoch) = fuzzing::counter_epoch(bytes) {
                let mut again = b"PGEPOCH1".to_vec();
                again.extend_from_slice(&epoch.to_be_bytes());
                assert_eq!(again, bytes);
            }
        }
    }
});
