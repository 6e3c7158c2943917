//! [`SoftwareKeyStore`]: P-256 keys generated in software and handed out only as
//! AES-256-GCM-wrapped handles under a key derived from the device key.

use std::collections::HashMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use super::DeviceKey;
use super::hmac_secret::hmac_secret_in_software;
use crate::api::credential_store::CredRandom32;
use crate::api::key_store::{
    CreatedKey, CredRandomWithUv, KeyAlgorithm, KeyHandle, KeyRelease, KeyStore, KeyStoreError,
    KeyStoreInfo, P256PublicKey,
};

const HANDLE_VERSION: u8 = 1;
const AAD: &[u8] = b"passgate software es256 key v1";
/// Plaintext: 32-byte scalar || 65-byte uncompressed public point.
const PLAINTEXT_LEN: usize = 32 + 65;
/// Parsed keys kept in memory so a repeated sign skips unwrapping and parsing.
const CACHE_CAPACITY: usize = 4096;

/// Software P-256 key store. Private keys exist in plaintext only inside this process.
pub struct SoftwareKeyStore {
    wrap_key: LessSafeKey,
    rng: SystemRandom,
    cache: HashMap<[u8; 32], EcdsaKeyPair>,
}

impl std::fmt::Debug for SoftwareKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeyStore")
            .field("cached_keys", &self.cache.len())
            .finish_non_exhaustive()
    }
}

fn backend(what: &str) -> KeyStoreError {
    KeyStoreError::Backend(what.to_owned())
}

fn handle_digest(handle: &KeyHandle) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, &handle.0).as_ref());
    out
}

impl SoftwareKeyStore {
    /// A key store wrapping keys under `device_key`.
    pub fn new(device_key: &DeviceKey) -> Self {
        let key = device_key.derive(b"software key store: key wrapping");
        // A 32-byte key is always a valid AES-256 key.
        let unbound = UnboundKey::new(&AES_256_GCM, key.as_ref());
        let wrap_key = match unbound {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable_key(),
        };
        Self {
            wrap_key,
            rng: SystemRandom::new(),
            cache: HashMap::new(),
        }
    }

    fn unwrap_key(&self, handle: &KeyHandle) -> Result<EcdsaKeyPair, KeyStoreError> {
        let bytes = &handle.0;
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(KeyStoreError::InvalidHandle);
        };
        if version != HANDLE_VERSION || rest.len() != NONCE_LEN + PLAINTEXT_LEN + 16 {
            return Err(KeyStoreError::InvalidHandle);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyStoreError::InvalidHandle)?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let plain = self
            .wrap_key
            .open_in_place(nonce, Aad::from(AAD), buffer.as_mut_slice())
            .map_err(|_| KeyStoreError::InvalidHandle)?;
        if plain.len() != PLAINTEXT_LEN {
            return Err(KeyStoreError::InvalidHandle);
        }
        let (scalar, point) = plain.split_at(32);
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            scalar,
            point,
        )
        .map_err(|_| KeyStoreError::InvalidHandle)
    }
}

/// Never reached: AES-256-GCM accepts every 32-byte key. Kept out of line so the constructor
/// stays free of panics in the common path.
#[cold]
fn unreachable_key() -> LessSafeKey {
    // Fall back to a random key: handles made with it are simply unusable after restart.
    let mut bytes = Zeroizing::new([0u8; 32]);
    let _ = SystemRandom::new().fill(bytes.as_mut());
    match UnboundKey::new(&AES_256_GCM, bytes.as_ref()) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => std::process::abort(),
    }
}

impl KeyStore for SoftwareKeyStore {
    fn info(&self) -> KeyStoreInfo {
        KeyStoreInfo {
            backend: "software",
            detail: "P-256 keys wrapped with AES-256-GCM under the device key".to_owned(),
        }
    }

    fn create_key(
        &mut self,
        algorithm: KeyAlgorithm,
        // Software keys are not gated on verification: the authenticator's own checks are all
        // there is (see the software key store's threat model).
        _release: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError> {
        match algorithm {
            KeyAlgorithm::Es256 => {}
        }
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| backend("P-256 key generation failed"))?;
        let point = pair.public_key().as_ref().to_vec();
        let public_key = P256PublicKey::from_sec1_uncompressed(&point)
            .ok_or_else(|| backend("unexpected public key encoding"))?;
        let scalar = pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| backend("private key export failed"))?;
        let mut buffer = Zeroizing::new(Vec::with_capacity(PLAINTEXT_LEN + 16));
        buffer.extend_from_slice(scalar.as_ref());
        buffer.extend_from_slice(&point);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| backend("random number generator failed"))?;
        self.wrap_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut *buffer,
            )
            .map_err(|_| backend("key wrapping failed"))?;
        let mut handle = Vec::with_capacity(1 + NONCE_LEN + buffer.len());
        handle.push(HANDLE_VERSION);
        handle.extend_from_slice(&nonce);
        handle.extend_from_slice(&buffer);
        let handle = KeyHandle(handle);
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(handle_digest(&handle), pair);
        Ok(CreatedKey { handle, public_key })
    }

    fn sign(
        &mut self,
        handle: &KeyHandle,
        message: &[u8],
        _release: Option<&KeyRelease>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let id = handle_digest(handle);
        if !self.cache.contains_key(&id) {
            let pair = self.unwrap_key(handle)?;
            if self.cache.len() >= CACHE_CAPACITY {
                self.cache.clear();
            }
            self.cache.insert(id, pair);
        }
        let pair = self.cache.get(&id).ok_or(KeyStoreError::InvalidHandle)?;
        let signature = pair
            .sign(&self.rng, message)
            .map_err(|_| backend("signing failed"))?;
        Ok(signature.as_ref().to_vec())
    }

    fn delete_key(&mut self, handle: &KeyHandle) -> Result<(), KeyStoreError> {
        // The wrapped key lives only in the credential record; forget the parsed copy.
        self.cache.remove(&handle_digest(handle));
        Ok(())
    }

    fn create_cred_random_with_uv(
        &mut self,
        _release: Option<&KeyRelease>,
    ) -> Result<CredRandomWithUv, KeyStoreError> {
        // 32 random bytes kept in the (encrypted) credential record, from aws-lc's generator.
        let mut key = Zeroizing::new([0u8; 32]);
        self.rng
            .fill(key.as_mut())
            .map_err(|_| backend("random number generator failed"))?;
        Ok(CredRandomWithUv::InRecord(CredRandom32(key)))
    }

    fn hmac_with_uv(
        &mut self,
        key: &CredRandomWithUv,
        salts: &[u8],
        _release: Option<&KeyRelease>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        // Software keys live in the record; this store holds none of its own.
        match key {
            CredRandomWithUv::InRecord(secret) => hmac_secret_in_software(&secret.0, salts),
            CredRandomWithUv::InKeyStore(_) => Err(KeyStoreError::InvalidHandle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    fn store() -> (tempfile::TempDir, SoftwareKeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::load_or_create(dir.path()).unwrap();
        let store = SoftwareKeyStore::new(&key);
        (dir, store)
    }

    #[test]
    fn signatures_verify_after_reload_from_the_handle() {
        let (dir, mut store) = store();
        let created = store.create_key(KeyAlgorithm::Es256, None).unwrap();
        let public = created.public_key.to_sec1_uncompressed();
        // A fresh store on the same device key (empty cache) must unwrap the handle.
        let mut reloaded = SoftwareKeyStore::new(&DeviceKey::load_or_create(dir.path()).unwrap());
        for s in [&mut store, &mut reloaded] {
            let sig = s.sign(&created.handle, b"message", None).unwrap();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public[..])
                .verify(b"message", &sig)
                .unwrap();
        }
        assert_eq!(format!("{:?}", created.handle), "KeyHandle(126 bytes)");
    }

    #[test]
    fn foreign_or_tampered_handles_are_rejected() {
        let (_d1, mut a) = store();
        let (_d2, mut b) = store();
        let created = a.create_key(KeyAlgorithm::Es256, None).unwrap();
        assert!(matches!(
            b.sign(&created.handle, b"m", None),
            Err(KeyStoreError::InvalidHandle)
        ));
        let mut tampered = created.handle.clone();
        tampered.0[20] ^= 1;
        assert!(matches!(
            a.sign(&tampered, b"m", None),
            Err(KeyStoreError::InvalidHandle)
        ));
        assert!(matches!(
            a.sign(&KeyHandle(vec![]), b"m", None),
            Err(KeyStoreError::InvalidHandle)
        ));
        assert!(matches!(
            a.sign(&KeyHandle(vec![1; 3]), b"m", None),
            Err(KeyStoreError::InvalidHandle)
        ));
    }

    #[test]
    fn handle_does_not_contain_the_private_scalar() {
        let (_d, mut store) = store();
        let created = store.create_key(KeyAlgorithm::Es256, None).unwrap();
        let id = handle_digest(&created.handle);
        let scalar = store.cache[&id].private_key().as_be_bytes().unwrap();
        let scalar = scalar.as_ref();
        assert!(!created.handle.0.windows(32).any(|w| w == scalar));
    }
}
