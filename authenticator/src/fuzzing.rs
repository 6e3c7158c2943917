//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, never in a release build):
//! the decoders of the authenticator's state files, reached here below their encryption so
//! that a fuzzer's bytes get past the AES-GCM tag to the parsers behind it.
//!
//! Each function decodes, and for a value that decodes, encodes it again and checks that the
//! encoding decodes to the same encoding (decode → encode → decode): a difference is a bug,
//! reported as `Err` so the fuzz target can fail on it with the bytes that caused it.

use crate::ctap::PinState;
use crate::software::credential_store::parse_epoch;
use crate::software::credential_store::record::{decode_record, encode_record};

/// A decoder whose re-encoding did not survive a second decode unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundTripMismatch {
    /// Which state file.
    pub what: &'static str,
    /// The first encoding.
    pub first: Vec<u8>,
    /// The encoding after decoding the first one again (empty if it did not decode).
    pub second: Vec<u8>,
}

fn round_trip<T>(
    what: &'static str,
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Option<T>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> Result<bool, RoundTripMismatch> {
    let Some(value) = decode(bytes) else {
        return Ok(false);
    };
    let first = encode(&value);
    let second = decode(&first).map(|again| encode(&again));
    match second {
        Some(second) if second == first => Ok(true),
        second => Err(RoundTripMismatch {
            what,
            first,
            second: second.unwrap_or_default(),
        }),
    }
}

/// The PIN state (`STATE/state/pin.bin`, decrypted): whether it decoded.
pub fn pin_state(bytes: &[u8]) -> Result<bool, RoundTripMismatch> {
    round_trip("PIN state", bytes, PinState::decode, |s| {
        s.encode().to_vec()
    })
}

/// A credential record (`credentials/<rp>/<cred>.rk|.cred`, decrypted): whether it decoded.
pub fn credential_record(bytes: &[u8]) -> Result<bool, RoundTripMismatch> {
    round_trip("credential record", bytes, decode_record, encode_record)
}

/// The signature-counter epoch file (`counter.epoch`, in the clear).
pub fn counter_epoch(bytes: &[u8]) -> Option<u32> {
    parse_epoch(bytes)
}

/// The state files of the authenticator in `state_dir`, decrypted, as seeds for the fuzz
/// corpus: `(0, PIN state)` and `(1, credential record)` for every discoverable credential,
/// plus `(2, counter epoch)`. The selector byte is the one the `authenticator_state` target
/// reads first.
pub fn stored_state_files(
    state_dir: &std::path::Path,
) -> Result<Vec<(u8, Vec<u8>)>, crate::api::credential_store::StoreError> {
    use crate::api::credential_store::CredentialStore;
    use crate::api::state_store::StateStore;
    use crate::software::{DeviceKey, FileCredentialStore, FileStateStore};

    let device_key = DeviceKey::load_or_create(state_dir)
        .map_err(|e| crate::api::credential_store::StoreError::Crypto(e.to_string()))?;
    let mut files = Vec::new();
    let mut state = FileStateStore::open(state_dir, &device_key)?;
    // "pin": the PIN state's name in the state store (ctap::client_pin keeps it there).
    let pin = match state.load("pin")? {
        Some(bytes) => bytes.to_vec(),
        None => PinState::default().encode().to_vec(),
    };
    files.push((0, pin));
    let mut store = FileCredentialStore::open(state_dir, &device_key, usize::MAX)?;
    for (rp_id, _, _) in store.relying_parties()? {
        for record in store.discoverable(&rp_id)? {
            files.push((1, encode_record(&record)));
        }
    }
    if let Ok(epoch) = std::fs::read(state_dir.join("counter.epoch")) {
        files.push((2, epoch));
    }
    Ok(files)
}
