//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, never in a release build):
//! the vault file format, whose parser is private to the vault.

use super::file::{self, FileError, Header, VaultKey};

/// What a fuzzed vault file came to.
#[derive(Debug)]
pub enum Outcome {
    /// The header did not parse.
    NoHeader(FileError),
    /// The header parsed; the values did not decrypt with a key derived for it.
    Undecryptable,
    /// The header parsed and the values decrypted (only for files sealed by [`seal_and_open`]).
    Opened(usize),
}

/// A fixed key for `header`, as an unlock would derive it from an hmac-secret output.
fn key_for(header: &Header) -> Result<VaultKey, FileError> {
    VaultKey::derive(&[0x5a; 32], &header.rp_id, &header.vault_id)
}

/// Reads a vault file as `Vault::open` does: the header, then the values with a key derived
/// for that header. A header that parses must survive seal → read_header unchanged, and the
/// values a file opens to must survive seal → open unchanged (`Err` with the reason if not).
/// The values' plaintext is reached too (a fuzzer cannot forge the AES-GCM tag in front of
/// it): values that decode survive encode → decode unchanged.
pub fn vault_file(bytes: &[u8]) -> Result<Outcome, String> {
    if let Ok(values) = file::decode_values(bytes) {
        let again = file::decode_values(&file::encode_values(&values))
            .map_err(|e| format!("re-encoded values: {e}"))?;
        if again != values {
            return Err("values changed across encode and decode".to_owned());
        }
    }
    let header = match file::read_header(bytes) {
        Ok(header) => header,
        Err(e) => return Ok(Outcome::NoHeader(e)),
    };
    let key = key_for(&header).map_err(|e| e.to_string())?;
    let values = file::open(bytes, &key).unwrap_or_default();
    let sealed = file::seal(&header, &values, &key).map_err(|e| e.to_string())?;
    let again = file::read_header(&sealed).map_err(|e| format!("resealed header: {e}"))?;
    if again != header {
        return Err(format!("header changed: {header:?} → {again:?}"));
    }
    let reopened = file::open(&sealed, &key).map_err(|e| format!("resealed values: {e}"))?;
    if reopened != values {
        return Err("values changed across seal and open".to_owned());
    }
    Ok(if values.is_empty() {
        Outcome::Undecryptable
    } else {
        Outcome::Opened(values.len())
    })
}

/// A vault file sealed with the key [`vault_file`] derives, as a seed for the fuzzer's corpus
/// (a file sealed by a real unlock has a key no fuzzer can find).
pub fn sample_file(auth_mode: super::AuthMode, values: &[(&str, &str)]) -> Result<Vec<u8>, String> {
    let header = Header {
        vault_id: "my-vault".to_owned(),
        username: "ada".to_owned(),
        auth_mode,
        lock_after_ms: 30_000,
        max_attempts: 5,
        rp_id: "vault.passgate.local".to_owned(),
        credential_id: vec![7; 16],
        salt: [9; 32],
        biometric_bound: auth_mode == super::AuthMode::BiometricOnly,
        generation: 3,
        passcode: None,
    };
    let values = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), zeroize::Zeroizing::new((*v).to_owned())))
        .collect();
    let key = key_for(&header).map_err(|e| e.to_string())?;
    file::seal(&header, &values, &key).map_err(|e| e.to_string())
}
