//! The vault file: a header in the clear (what is needed to ask the authenticator for the
//! key), then the values AES-256-GCM encrypted with the header as associated data.
//!
//! ```text
//! "PGVAULT" 0x01 | u32 BE header length | header (CBOR) | nonce (12) | ciphertext || tag
//! ```
//!
//! The key is HKDF-SHA256 of the hmac-secret output the vault's credential gives with user
//! verification, so it exists only in memory while the vault is unlocked. A changed header
//! (another credential, salt, auth mode, generation or passcode check) makes decryption fail.
//!
//! With an app passcode (Identity Vault's `setPasscode`), the header also holds the argon2id
//! parameters and a *check*: an empty AES-256-GCM message under the passcode key (HKDF of the
//! hmac-secret output *and* the argon2id output), so a wrong passcode is told apart from a
//! damaged file; in `PasscodeOnly` the values are encrypted under that passcode key.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use ciborium::value::Value;
use zeroize::{Zeroize, Zeroizing};

use super::AuthMode;

const MAGIC: &[u8; 8] = b"PGVAULT\x01";
const FORMAT_VERSION: u64 = 1;
/// The largest vault accepted (header + values).
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Why a vault file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not a vault file, or a damaged one.
    #[error("the vault file is malformed: {0}")]
    Malformed(&'static str),
    /// The values do not decrypt: a wrong key or a modified file.
    #[error("the vault does not decrypt (it was modified, or belongs to another authenticator)")]
    Undecryptable,
}

/// What the header says (all of it authenticated by the encryption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The vault's ID.
    pub vault_id: String,
    /// The username the vault is for.
    pub username: String,
    /// How it is unlocked.
    pub auth_mode: AuthMode,
    /// Idle milliseconds before it locks (0: never).
    pub lock_after_ms: u64,
    /// Failed unlocks before the vault is cleared.
    pub max_attempts: u8,
    /// The RP ID of its credential.
    pub rp_id: String,
    /// Its credential.
    pub credential_id: Vec<u8>,
    /// The hmac-secret salt.
    pub salt: [u8; 32],
    /// Whether the credential is bound to the biometric set it was made with.
    pub biometric_bound: bool,
    /// Incremented by every write; the attempt counter records the latest one, so an older
    /// copy of the file put back is refused (0: written before generations existed).
    pub generation: u64,
    /// The app passcode's parameters and check, when the app set one.
    pub passcode: Option<PasscodeCheck>,
}

/// What a vault with an app passcode keeps to verify it (never the passcode itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasscodeCheck {
    /// The argon2id parameters and salt.
    pub params: super::passcode::StretchParams,
    /// nonce || tag of an empty AES-256-GCM message under the passcode key.
    pub check: Vec<u8>,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let entries = vec![
            (1, Value::Integer(FORMAT_VERSION.into())),
            (2, Value::Text(self.vault_id.clone())),
            (3, Value::Text(self.username.clone())),
            (4, Value::Text(self.auth_mode.name().to_owned())),
            (5, Value::Integer(self.lock_after_ms.into())),
            (6, Value::Integer(self.max_attempts.into())),
            (7, Value::Text(self.rp_id.clone())),
            (8, Value::Bytes(self.credential_id.clone())),
            (9, Value::Bytes(self.salt.to_vec())),
            (10, Value::Bool(self.biometric_bound)),
            (11, Value::Integer(self.generation.into())),
        ];
        let mut entries = entries;
        if let Some(passcode) = &self.passcode {
            let p = &passcode.params;
            let fields = vec![
                (1, Value::Bytes(p.salt.to_vec())),
                (2, Value::Integer(p.memory_kib.into())),
                (3, Value::Integer(p.iterations.into())),
                (4, Value::Integer(p.lanes.into())),
                (5, Value::Bytes(passcode.check.clone())),
            ];
            entries.push((
                12,
                Value::Map(
                    fields
                        .into_iter()
                        .map(|(k, v)| (Value::Integer(k.into()), v))
                        .collect(),
                ),
            ));
        }
        let map = Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Integer(k.into()), v))
                .collect(),
        );
        let mut out = Vec::new();
        // Writing CBOR to a Vec cannot fail.
        let _ = ciborium::into_writer(&map, &mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, FileError> {
        let bad = FileError::Malformed;
        let value: Value = ciborium::from_reader(bytes).map_err(|_| bad("header is not CBOR"))?;
        let Value::Map(entries) = value else {
            return Err(bad("header is not a map"));
        };
        let get = |key: u64| {
            entries.iter().find_map(|(k, v)| match k {
                Value::Integer(i) if u64::try_from(*i).ok() == Some(key) => Some(v),
                _ => None,
            })
        };
        let text = |key| match get(key) {
            Some(Value::Text(t)) => Ok(t.clone()),
            _ => Err(bad("header text field missing")),
        };
        let uint = |key| match get(key) {
            Some(Value::Integer(i)) => u64::try_from(*i).map_err(|_| bad("negative number")),
            _ => Err(bad("header number missing")),
        };
        let bytes_of = |key| match get(key) {
            Some(Value::Bytes(b)) => Ok(b.clone()),
            _ => Err(bad("header bytes field missing")),
        };
        if uint(1)? != FORMAT_VERSION {
            return Err(bad("unknown format version"));
        }
        let auth_mode = AuthMode::from_name(&text(4)?).ok_or(bad("unknown auth mode"))?;
        let generation = match get(11) {
            None => 0,
            Some(_) => uint(11)?,
        };
        let passcode = match get(12) {
            None => None,
            Some(Value::Map(fields)) => Some(decode_passcode(fields)?),
            Some(_) => return Err(bad("passcode check is not a map")),
        };
        Ok(Self {
            vault_id: text(2)?,
            username: text(3)?,
            auth_mode,
            lock_after_ms: uint(5)?,
            max_attempts: u8::try_from(uint(6)?).map_err(|_| bad("maxAttempts too large"))?,
            rp_id: text(7)?,
            credential_id: bytes_of(8)?,
            salt: bytes_of(9)?
                .try_into()
                .map_err(|_| bad("salt is not 32 bytes"))?,
            biometric_bound: matches!(get(10), Some(Value::Bool(true))),
            generation,
            passcode,
        })
    }
}

fn decode_passcode(fields: &[(Value, Value)]) -> Result<PasscodeCheck, FileError> {
    let bad = FileError::Malformed;
    let get = |key: u64| {
        fields.iter().find_map(|(k, v)| match k {
            Value::Integer(i) if u64::try_from(*i).ok() == Some(key) => Some(v),
            _ => None,
        })
    };
    let uint = |key| match get(key) {
        Some(Value::Integer(i)) => {
            u32::try_from(*i).map_err(|_| bad("passcode parameter out of range"))
        }
        _ => Err(bad("passcode parameter missing")),
    };
    let salt = match get(1) {
        Some(Value::Bytes(b)) => b
            .as_slice()
            .try_into()
            .map_err(|_| bad("passcode salt is not 16 bytes"))?,
        _ => return Err(bad("passcode salt missing")),
    };
    let check = match get(5) {
        Some(Value::Bytes(b)) if b.len() == NONCE_LEN + 16 => b.clone(),
        _ => return Err(bad("passcode check missing")),
    };
    let params = super::passcode::StretchParams {
        salt,
        memory_kib: uint(2)?,
        iterations: uint(3)?,
        lanes: uint(4)?,
    };
    params.check_bounds().map_err(bad)?;
    Ok(PasscodeCheck { params, check })
}

/// The vault's values: key → JSON text.
pub type Values = BTreeMap<String, Zeroizing<String>>;

/// The AES-256-GCM key of an unlocked vault, derived from the credential's hmac-secret output.
pub struct VaultKey(LessSafeKey);

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(..)")
    }
}

impl VaultKey {
    /// HKDF-SHA256(salt "passgate vault v1", ikm = hmac-secret output, info = RP ID 0 vault
    /// ID) to an AES-256-GCM key. The output never exists as bytes outside aws-lc.
    pub fn derive(hmac_output: &[u8], rp_id: &str, vault_id: &str) -> Result<Self, FileError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"passgate vault v1").extract(hmac_output);
        let info = [rp_id.as_bytes(), &[0], vault_id.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| FileError::Malformed("key derivation failed"))?;
        Ok(Self(LessSafeKey::new(UnboundKey::from(okm))))
    }

    /// The app passcode path's key: HKDF-SHA256(salt "passgate vault passcode v1", ikm =
    /// hmac-secret output || argon2id(passcode), info = RP ID 0 vault ID). Both are needed: the
    /// UV-gated secret from the authenticator and the memory-hard stretch of the passcode.
    pub fn derive_with_passcode(
        hmac_output: &[u8],
        stretched: &[u8],
        rp_id: &str,
        vault_id: &str,
    ) -> Result<Self, FileError> {
        let mut ikm = Zeroizing::new(Vec::with_capacity(hmac_output.len() + stretched.len()));
        ikm.extend_from_slice(hmac_output);
        ikm.extend_from_slice(stretched);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"passgate vault passcode v1").extract(&ikm);
        let info = [rp_id.as_bytes(), &[0], vault_id.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| FileError::Malformed("key derivation failed"))?;
        Ok(Self(LessSafeKey::new(UnboundKey::from(okm))))
    }

    /// nonce || tag of an empty message for `vault_id` (the passcode check).
    pub fn seal_check(&self, vault_id: &str) -> Result<Vec<u8>, FileError> {
        let nonce: [u8; NONCE_LEN] =
            crate::random().map_err(|_| FileError::Malformed("no randomness"))?;
        let mut buffer = Vec::new();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(check_aad(vault_id).as_slice()),
                &mut buffer,
            )
            .map_err(|_| FileError::Malformed("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Whether `check` was sealed by this key for `vault_id` (a right passcode).
    pub fn opens_check(&self, check: &[u8], vault_id: &str) -> bool {
        let Some((nonce, tag)) = check.split_at_checked(NONCE_LEN) else {
            return false;
        };
        let Ok(nonce) = Nonce::try_assume_unique_for_key(nonce) else {
            return false;
        };
        let mut buffer = tag.to_vec();
        self.0
            .open_in_place(
                nonce,
                Aad::from(check_aad(vault_id).as_slice()),
                &mut buffer,
            )
            .is_ok()
    }
}

fn check_aad(vault_id: &str) -> Vec<u8> {
    let mut aad = b"passgate vault passcode check\0".to_vec();
    aad.extend_from_slice(vault_id.as_bytes());
    aad
}

fn encode_values(values: &Values) -> Zeroizing<Vec<u8>> {
    let mut map = Value::Map(
        values
            .iter()
            .map(|(k, v)| (Value::Text(k.clone()), Value::Text(v.to_string())))
            .collect(),
    );
    let mut out = Zeroizing::new(Vec::new());
    // Writing CBOR to a Vec cannot fail.
    let _ = ciborium::into_writer(&map, &mut *out);
    // The copies in the map are plaintext too.
    if let Value::Map(entries) = &mut map {
        for (_, v) in entries.iter_mut() {
            if let Value::Text(t) = v {
                t.zeroize();
            }
        }
    }
    out
}

fn decode_values(bytes: &[u8]) -> Result<Values, FileError> {
    let value: Value =
        ciborium::from_reader(bytes).map_err(|_| FileError::Malformed("values are not CBOR"))?;
    let Value::Map(entries) = value else {
        return Err(FileError::Malformed("values are not a map"));
    };
    let mut out = Values::new();
    for (k, v) in entries {
        match (k, v) {
            (Value::Text(k), Value::Text(v)) => {
                out.insert(k, Zeroizing::new(v));
            }
            _ => return Err(FileError::Malformed("a value is not text")),
        }
    }
    Ok(out)
}

fn prefix(header: &Header) -> Result<Vec<u8>, FileError> {
    let encoded = header.encode();
    let len = u32::try_from(encoded.len()).map_err(|_| FileError::Malformed("header too long"))?;
    let mut out = Vec::with_capacity(12 + encoded.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&encoded);
    Ok(out)
}

/// The whole file for `header` and `values`, with a fresh nonce.
pub fn seal(header: &Header, values: &Values, key: &VaultKey) -> Result<Vec<u8>, FileError> {
    let mut out = prefix(header)?;
    let nonce: [u8; NONCE_LEN] =
        crate::random().map_err(|_| FileError::Malformed("no randomness"))?;
    let mut buffer = encode_values(values);
    key.0
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..]),
            &mut *buffer,
        )
        .map_err(|_| FileError::Malformed("encryption failed"))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buffer);
    Ok(out)
}

/// The header of a vault file (no key needed).
pub fn read_header(file: &[u8]) -> Result<Header, FileError> {
    split(file).and_then(|parts| Header::decode(parts.header))
}

/// The parts of a vault file.
struct Parts<'a> {
    header: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

/// The header, nonce and ciphertext of a vault file.
fn split(file: &[u8]) -> Result<Parts<'_>, FileError> {
    let bad = FileError::Malformed;
    if file.len() > MAX_FILE_BYTES {
        return Err(bad("too large"));
    }
    let rest = file
        .strip_prefix(&MAGIC[..])
        .ok_or(bad("not a vault file"))?;
    let len: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(bad("truncated"))?;
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| bad("header length"))?;
    let header = rest.get(4..4 + len).ok_or(bad("truncated header"))?;
    let body = rest.get(4 + len..).ok_or(bad("truncated"))?;
    if body.len() < NONCE_LEN + 16 {
        return Err(bad("truncated ciphertext"));
    }
    let (nonce, ciphertext) = body.split_at(NONCE_LEN);
    Ok(Parts {
        header,
        nonce,
        ciphertext,
    })
}

/// Decrypts the values of a vault file with `key`.
pub fn open(file: &[u8], key: &VaultKey) -> Result<Values, FileError> {
    let Parts {
        header,
        nonce,
        ciphertext,
    } = split(file)?;
    let aad = file
        .get(..MAGIC.len() + 4 + header.len())
        .ok_or(FileError::Malformed("truncated"))?;
    let nonce =
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| FileError::Malformed("bad nonce"))?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plain = key
        .0
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| FileError::Undecryptable)?;
    decode_values(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            vault_id: "v".into(),
            username: "u".into(),
            auth_mode: AuthMode::BiometricOnly,
            lock_after_ms: 5000,
            max_attempts: 5,
            rp_id: "passgate-app:x".into(),
            credential_id: vec![1; 16],
            salt: [2; 32],
            biometric_bound: true,
            generation: 7,
            passcode: None,
        }
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let key = VaultKey::derive(&[7; 32], "passgate-app:x", "v").unwrap();
        let mut values = Values::new();
        values.insert("token".into(), Zeroizing::new("\"abc\"".into()));
        let file = seal(&header(), &values, &key).unwrap();
        assert!(
            !file.windows(3).any(|w| w == b"abc"),
            "values are not in the clear"
        );
        assert_eq!(read_header(&file).unwrap(), header());
        let back = open(&file, &key).unwrap();
        assert_eq!(back.get("token").unwrap().as_str(), "\"abc\"");

        let other = VaultKey::derive(&[8; 32], "passgate-app:x", "v").unwrap();
        assert!(matches!(open(&file, &other), Err(FileError::Undecryptable)));
        let same_secret_other_vault = VaultKey::derive(&[7; 32], "passgate-app:x", "w").unwrap();
        assert!(matches!(
            open(&file, &same_secret_other_vault),
            Err(FileError::Undecryptable)
        ));
        // Flipping a header byte (the auth mode's text) breaks the authentication.
        let mut tampered = file.clone();
        let at = tampered
            .windows(13)
            .position(|w| w == b"BiometricOnly")
            .unwrap();
        tampered[at] = b'b';
        assert!(open(&tampered, &key).is_err());
        let mut tampered = file.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            open(&tampered, &key),
            Err(FileError::Undecryptable)
        ));
        assert!(matches!(
            read_header(&file[..20]),
            Err(FileError::Malformed(_))
        ));
        assert!(matches!(read_header(b"nope"), Err(FileError::Malformed(_))));
    }

    #[test]
    fn the_passcode_key_needs_both_factors_and_the_header_keeps_its_check() {
        let biometric = VaultKey::derive(&[7; 32], "passgate-app:x", "v").unwrap();
        let with =
            VaultKey::derive_with_passcode(&[7; 32], &[1; 32], "passgate-app:x", "v").unwrap();
        let check = with.seal_check("v").unwrap();
        assert!(with.opens_check(&check, "v"));
        assert!(!with.opens_check(&check, "w"), "bound to the vault ID");
        assert!(
            !biometric.opens_check(&check, "v"),
            "the hmac-secret alone is not enough"
        );
        let other_passcode =
            VaultKey::derive_with_passcode(&[7; 32], &[2; 32], "passgate-app:x", "v").unwrap();
        assert!(!other_passcode.opens_check(&check, "v"));
        let other_secret =
            VaultKey::derive_with_passcode(&[8; 32], &[1; 32], "passgate-app:x", "v").unwrap();
        assert!(
            !other_secret.opens_check(&check, "v"),
            "the passcode alone is not enough"
        );

        let mut header = header();
        header.passcode = Some(PasscodeCheck {
            params: super::super::passcode::StretchParams {
                salt: [3; 16],
                memory_kib: 19 * 1024,
                iterations: 2,
                lanes: 1,
            },
            check,
        });
        let file = seal(&header, &Values::new(), &with).unwrap();
        assert_eq!(read_header(&file).unwrap(), header);
    }
}
