//! Key handles of the Platform Crypto Provider store. A TPM key made through NCrypt is a
//! persisted key the provider finds by name; the credential record keeps only that name. The
//! handle's bytes are the name, `passgate-v1-<kind>-<32 hex digits>`, 16 random bytes making
//! it unique.

use passgate_platform_api::key_store::KeyHandle;

const PREFIX: &str = "passgate-v1-";
const RANDOM_LEN: usize = 16;
/// The key kind in names: a credential's ES256 signing key.
const SIGNING: &str = "es256";

/// A new key name from 16 random bytes.
pub fn new_name(random: &[u8; RANDOM_LEN]) -> String {
    let mut name = format!("{PREFIX}{SIGNING}-");
    for byte in random {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// The handle for a key name.
pub fn encode(name: &str) -> KeyHandle {
    KeyHandle(name.as_bytes().to_vec())
}

/// Reads a handle made by [`encode`]; `None` for anything else, so a foreign handle never
/// reaches the provider as a key name.
pub fn decode(handle: &KeyHandle) -> Option<String> {
    let name = std::str::from_utf8(&handle.0).ok()?;
    let random = name
        .strip_prefix(PREFIX)?
        .strip_prefix(SIGNING)?
        .strip_prefix('-')?;
    (random.len() == 2 * RANDOM_LEN
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then(|| name.to_owned())
}

/// The name as a NUL-terminated UTF-16 string, as NCrypt takes it.
pub fn to_wide(name: &str) -> Vec<u16> {
    name.encode_utf16().chain(std::iter::once(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_handles() {
        let name = new_name(&[0x5a; 16]);
        assert_eq!(name, "passgate-v1-es256-5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
        assert_eq!(decode(&encode(&name)), Some(name.clone()));
        let wide = to_wide(&name);
        assert_eq!(wide.len(), name.len() + 1);
        assert_eq!(wide.last(), Some(&0));
        assert_eq!(wide[0], u16::from(b'p'));
    }

    #[test]
    fn foreign_or_altered_handles_are_refused() {
        let name = new_name(&[1; 16]);
        assert_eq!(decode(&KeyHandle(vec![1, 0xfe, 0])), None);
        assert_eq!(decode(&encode(&name[..30])), None);
        assert_eq!(decode(&encode(&format!("{name}0"))), None);
        assert_eq!(decode(&encode(&name.replace("es256", "rs256"))), None);
        assert_eq!(decode(&encode(&name.replace("v1", "v2"))), None);
        assert_eq!(decode(&encode(&name.to_uppercase())), None);
        // A name with a path separator or NUL never gets through.
        assert_eq!(decode(&encode(&name.replace("0101", "\\..\0"))), None);
    }
}
