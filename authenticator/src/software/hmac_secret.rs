//! hmac-secret evaluated in software (aws-lc-rs): the one place the authenticator computes
//! HMAC-SHA-256 over hmac-secret salts with a key kept in the credential record.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::api::key_store::{
    CredRandomWithUv, HMAC_SECRET_SALT_LEN, KeyRelease, KeyStore, KeyStoreError, check_salts,
};

/// HMAC-SHA-256 under `key` of each 32-byte salt in `salts` (one or two, concatenated), the
/// outputs concatenated in the same order: hmac-secret evaluated in software.
pub fn hmac_secret_in_software(
    key: &[u8; 32],
    salts: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    check_salts(salts)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut outputs = Zeroizing::new(Vec::with_capacity(salts.len()));
    for salt in salts.chunks_exact(HMAC_SECRET_SALT_LEN) {
        outputs.extend_from_slice(hmac::sign(&key, salt).as_ref());
    }
    Ok(outputs)
}

/// hmac-secret with user verification for any key store: a key kept in the record
/// ([`CredRandomWithUv::InRecord`]) is evaluated here in software, whatever the store; a key the
/// store holds goes to [`KeyStore::hmac_with_uv`] with the ceremony's `release`. So a store
/// (the Secure Enclave, Windows) need not know how to compute HMAC in software.
pub fn hmac_secret_with_uv(
    key_store: &mut dyn KeyStore,
    key: &CredRandomWithUv,
    salts: &[u8],
    release: Option<&KeyRelease>,
) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    match key {
        CredRandomWithUv::InRecord(secret) => hmac_secret_in_software(&secret.0, salts),
        CredRandomWithUv::InKeyStore(_) => key_store.hmac_with_uv(key, salts, release),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::credential_store::CredRandom32;
    use crate::api::key_store::{CreatedKey, KeyAlgorithm, KeyHandle, KeyStoreInfo};

    /// A store that holds no keys: the trait's defaults only.
    struct NoKeys;

    impl KeyStore for NoKeys {
        fn info(&self) -> KeyStoreInfo {
            KeyStoreInfo {
                backend: "none",
                detail: String::new(),
            }
        }
        fn create_key(
            &mut self,
            algorithm: KeyAlgorithm,
            _release: Option<&KeyRelease>,
        ) -> Result<CreatedKey, KeyStoreError> {
            Err(KeyStoreError::UnsupportedAlgorithm(algorithm))
        }
        fn sign(
            &mut self,
            _handle: &KeyHandle,
            _message: &[u8],
            _release: Option<&KeyRelease>,
        ) -> Result<Vec<u8>, KeyStoreError> {
            Err(KeyStoreError::InvalidHandle)
        }
        fn delete_key(&mut self, _handle: &KeyHandle) -> Result<(), KeyStoreError> {
            Ok(())
        }
    }

    #[test]
    fn in_record_keys_are_evaluated_in_software_whatever_the_store() {
        let secret = CredRandom32(Zeroizing::new([7u8; 32]));
        let key = CredRandomWithUv::InRecord(secret);
        let salts = [[1u8; 32], [2u8; 32]].concat();
        let out = hmac_secret_with_uv(&mut NoKeys, &key, &salts, None).unwrap();
        let expected_first = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &[1u8; 32]);
        let expected_second =
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &[2u8; 32]);
        assert_eq!(&out[..32], expected_first.as_ref());
        assert_eq!(&out[32..], expected_second.as_ref());
        // The store itself (trait default) holds no keys and says so.
        assert!(matches!(
            NoKeys.hmac_with_uv(&key, &salts, None),
            Err(KeyStoreError::InvalidHandle)
        ));
    }

    #[test]
    fn held_keys_go_to_the_store_and_bad_salts_are_refused() {
        let held = CredRandomWithUv::InKeyStore(KeyHandle(vec![1, 2, 3]));
        assert!(matches!(
            hmac_secret_with_uv(&mut NoKeys, &held, &[0u8; 32], None),
            Err(KeyStoreError::InvalidHandle)
        ));
        assert!(matches!(
            hmac_secret_with_uv(&mut NoKeys, &held, &[0u8; 31], None),
            Err(KeyStoreError::InvalidSalts(31))
        ));
        let in_record = CredRandomWithUv::InRecord(CredRandom32(Zeroizing::new([0u8; 32])));
        assert!(matches!(
            hmac_secret_with_uv(&mut NoKeys, &in_record, &[0u8; 96], None),
            Err(KeyStoreError::InvalidSalts(96))
        ));
    }

    #[test]
    fn the_default_in_record_key_is_32_fresh_random_bytes() {
        let one = NoKeys.create_cred_random_with_uv(None).unwrap();
        let two = NoKeys.create_cred_random_with_uv(None).unwrap();
        let (CredRandomWithUv::InRecord(a), CredRandomWithUv::InRecord(b)) = (&one, &two) else {
            panic!("the default key lives in the record");
        };
        assert_ne!(a.0, b.0);
        assert_ne!(*a.0, [0u8; 32]);
    }
}
