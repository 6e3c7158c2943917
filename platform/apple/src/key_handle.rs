//! Key handles of the Secure Enclave store. An enclave key cannot be exported, not even
//! wrapped: it stays in the keychain, and the credential record keeps only the keychain label
//! (`kSecAttrLabel`) that finds it again. The handle's bytes are that label:
//! `passgate.se.v1.<kind>.<protection>.<32 hex digits>`, 16 random bytes making it unique.

use passgate_platform_api::key_store::KeyHandle;

use crate::access_control::KeyProtection;

const PREFIX: &str = "passgate.se.v1.";
const RANDOM_LEN: usize = 16;

/// What an enclave key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A credential's ES256 signing key.
    Signing,
    /// A credential's hmac-secret key (CredRandomWithUV), evaluated by ECDH.
    HmacSecret,
}

impl KeyKind {
    fn code(self) -> char {
        match self {
            Self::Signing => 's',
            Self::HmacSecret => 'h',
        }
    }

    fn from_code(code: char) -> Option<Self> {
        match code {
            's' => Some(Self::Signing),
            'h' => Some(Self::HmacSecret),
            _ => None,
        }
    }
}

/// A decoded handle: the label and what it says about the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclaveKeyLabel {
    /// The keychain label.
    pub label: String,
    /// What the key is for.
    pub kind: KeyKind,
    /// Its access control.
    pub protection: KeyProtection,
}

/// A new label for a key of `kind` with `protection`, from 16 random bytes.
pub fn new_label(kind: KeyKind, protection: KeyProtection, random: &[u8; RANDOM_LEN]) -> String {
    let mut label = format!("{PREFIX}{}.{}.", kind.code(), protection.code());
    for byte in random {
        label.push_str(&format!("{byte:02x}"));
    }
    label
}

/// The handle for a label.
pub fn encode(label: &str) -> KeyHandle {
    KeyHandle(label.as_bytes().to_vec())
}

/// Reads a handle made by [`encode`]; `None` for anything else (another store's handle, a
/// truncated or altered one), so a foreign handle never reaches the keychain as a query.
pub fn decode(handle: &KeyHandle) -> Option<EnclaveKeyLabel> {
    let label = std::str::from_utf8(&handle.0).ok()?;
    let rest = label.strip_prefix(PREFIX)?;
    let mut parts = rest.split('.');
    let kind = single_char(parts.next()?).and_then(KeyKind::from_code)?;
    let protection = single_char(parts.next()?).and_then(KeyProtection::from_code)?;
    let random = parts.next()?;
    if parts.next().is_some()
        || random.len() != 2 * RANDOM_LEN
        || !random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    Some(EnclaveKeyLabel {
        label: label.to_owned(),
        kind,
        protection,
    })
}

fn single_char(part: &str) -> Option<char> {
    let mut chars = part.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_handles() {
        let random = [0xab; 16];
        let label = new_label(KeyKind::Signing, KeyProtection::BiometryCurrentSet, &random);
        assert_eq!(label, "passgate.se.v1.s.b.abababababababababababababababab");
        let decoded = decode(&encode(&label)).unwrap();
        assert_eq!(decoded.label, label);
        assert_eq!(decoded.kind, KeyKind::Signing);
        assert_eq!(decoded.protection, KeyProtection::BiometryCurrentSet);

        let hmac = new_label(KeyKind::HmacSecret, KeyProtection::UserPresence, &[0; 16]);
        let decoded = decode(&encode(&hmac)).unwrap();
        assert_eq!(decoded.kind, KeyKind::HmacSecret);
        assert_eq!(decoded.protection, KeyProtection::UserPresence);
    }

    #[test]
    fn foreign_or_altered_handles_are_refused() {
        let good = new_label(KeyKind::Signing, KeyProtection::UserPresence, &[1; 16]);
        // A software-store handle (binary), a TPM blob, a truncated or extended label.
        assert_eq!(decode(&KeyHandle(vec![1, 0xff, 0x00, 0x42])), None);
        assert_eq!(decode(&KeyHandle(good.as_bytes()[..40].to_vec())), None);
        assert_eq!(decode(&encode(&format!("{good}.x"))), None);
        assert_eq!(decode(&encode(&good.replace(".s.", ".z."))), None);
        assert_eq!(decode(&encode(&good.replace(".p.", ".pp."))), None);
        assert_eq!(decode(&encode(&good.replace("01", "0G"))), None);
        assert_eq!(decode(&encode(&good.replace("v1", "v2"))), None);
        assert_eq!(decode(&encode(&good.to_uppercase())), None);
    }
}
