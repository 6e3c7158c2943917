//! [`SoftwareKeyStore`]: ES256, EdDSA (Ed25519) and ES384 keys generated in software and handed
//! out only as AES-256-GCM-wrapped handles under a key derived from the device key.
//!
//! Two handle formats: version 1 (ES256 keys, as every handle made before the other algorithms
//! existed) seals the P-256 scalar and point; version 2 seals a one-byte algorithm tag and the
//! key's PKCS#8 document, so the algorithm is authenticated with the key.

use std::collections::HashMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use zeroize::Zeroizing;

use super::DeviceKey;
use super::hmac_secret::hmac_secret_in_software;
use crate::api::credential_store::CredRandom32;
use crate::api::key_store::{
    CreatedKey, CredRandomWithUv, Ed25519PublicKey, KeyAlgorithm, KeyHandle, KeyRelease, KeyStore,
    KeyStoreError, KeyStoreInfo, P256PublicKey, P384PublicKey, PublicKey,
};

/// ES256 handles: the P-256 scalar and point.
const HANDLE_VERSION: u8 = 1;
const AAD: &[u8] = b"passgate software es256 key v1";
/// Plaintext: 32-byte scalar || 65-byte uncompressed public point.
const PLAINTEXT_LEN: usize = 32 + 65;
/// EdDSA and ES384 handles: an algorithm tag and the PKCS#8 document.
const HANDLE_VERSION_PKCS8: u8 = 2;
const AAD_PKCS8: &[u8] = b"passgate software key v2";
const TAG_EDDSA: u8 = 1;
const TAG_ES384: u8 = 2;
/// Longest PKCS#8 plaintext accepted when unwrapping (a P-384 document is under 200 bytes).
const MAX_PKCS8_LEN: usize = 512;
const GCM_TAG_LEN: usize = 16;

/// A parsed private key, ready to sign.
enum SigningKey {
    /// ES256 or ES384.
    Ecdsa(EcdsaKeyPair),
    /// EdDSA.
    Ed25519(Ed25519KeyPair),
}
/// Parsed keys kept in memory so a repeated sign skips unwrapping and parsing.
const CACHE_CAPACITY: usize = 4096;

/// Software P-256 key store. Private keys exist in plaintext only inside this process.
pub struct SoftwareKeyStore {
    wrap_key: LessSafeKey,
    rng: SystemRandom,
    cache: HashMap<[u8; 32], SigningKey>,
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

    fn unwrap_key(&self, handle: &KeyHandle) -> Result<SigningKey, KeyStoreError> {
        let bytes = &handle.0;
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(KeyStoreError::InvalidHandle);
        };
        let aad = match version {
            HANDLE_VERSION if rest.len() == NONCE_LEN + PLAINTEXT_LEN + GCM_TAG_LEN => AAD,
            HANDLE_VERSION_PKCS8
                if rest.len() > NONCE_LEN + GCM_TAG_LEN + 1
                    && rest.len() <= NONCE_LEN + GCM_TAG_LEN + 1 + MAX_PKCS8_LEN =>
            {
                AAD_PKCS8
            }
            _ => return Err(KeyStoreError::InvalidHandle),
        };
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyStoreError::InvalidHandle)?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let plain = self
            .wrap_key
            .open_in_place(nonce, Aad::from(aad), buffer.as_mut_slice())
            .map_err(|_| KeyStoreError::InvalidHandle)?;
        if version == HANDLE_VERSION {
            if plain.len() != PLAINTEXT_LEN {
                return Err(KeyStoreError::InvalidHandle);
            }
            let (scalar, point) = plain.split_at(32);
            return EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                scalar,
                point,
            )
            .map(SigningKey::Ecdsa)
            .map_err(|_| KeyStoreError::InvalidHandle);
        }
        let Some((&tag, pkcs8)) = plain.split_first() else {
            return Err(KeyStoreError::InvalidHandle);
        };
        match tag {
            TAG_EDDSA => Ed25519KeyPair::from_pkcs8(pkcs8).map(SigningKey::Ed25519),
            TAG_ES384 => EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8)
                .map(SigningKey::Ecdsa),
            _ => return Err(KeyStoreError::InvalidHandle),
        }
        .map_err(|_| KeyStoreError::InvalidHandle)
    }

    /// Seals `plaintext` under the wrapping key: `version || nonce || ciphertext || tag`.
    fn seal(
        &self,
        version: u8,
        aad: &'static [u8],
        plaintext: &[u8],
    ) -> Result<KeyHandle, KeyStoreError> {
        let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + GCM_TAG_LEN));
        buffer.extend_from_slice(plaintext);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| backend("random number generator failed"))?;
        self.wrap_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut *buffer,
            )
            .map_err(|_| backend("key wrapping failed"))?;
        let mut handle = Vec::with_capacity(1 + NONCE_LEN + buffer.len());
        handle.push(version);
        handle.extend_from_slice(&nonce);
        handle.extend_from_slice(&buffer);
        Ok(KeyHandle(handle))
    }

    /// A new P-256 key in a version-1 handle.
    fn create_es256(&self) -> Result<(KeyHandle, PublicKey, SigningKey), KeyStoreError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| backend("P-256 key generation failed"))?;
        let point = pair.public_key().as_ref().to_vec();
        let public_key = P256PublicKey::from_sec1_uncompressed(&point)
            .ok_or_else(|| backend("unexpected public key encoding"))?;
        let scalar = pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| backend("private key export failed"))?;
        let mut plaintext = Zeroizing::new(Vec::with_capacity(PLAINTEXT_LEN));
        plaintext.extend_from_slice(scalar.as_ref());
        plaintext.extend_from_slice(&point);
        let handle = self.seal(HANDLE_VERSION, AAD, &plaintext)?;
        Ok((handle, PublicKey::P256(public_key), SigningKey::Ecdsa(pair)))
    }

    /// A new Ed25519 or P-384 key in a version-2 handle.
    fn create_pkcs8(
        &self,
        algorithm: KeyAlgorithm,
    ) -> Result<(KeyHandle, PublicKey, SigningKey), KeyStoreError> {
        let (tag, public_key, pkcs8, key) = match algorithm {
            KeyAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| backend("Ed25519 key generation failed"))?;
                let raw = <[u8; 32]>::try_from(pair.public_key().as_ref())
                    .map_err(|_| backend("unexpected Ed25519 public key length"))?;
                let pkcs8 = pair
                    .to_pkcs8()
                    .map_err(|_| backend("private key export failed"))?;
                let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
                (
                    TAG_EDDSA,
                    PublicKey::Ed25519(Ed25519PublicKey(raw)),
                    pkcs8,
                    SigningKey::Ed25519(pair),
                )
            }
            KeyAlgorithm::Es384 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
                    .map_err(|_| backend("P-384 key generation failed"))?;
                let public_key = P384PublicKey::from_sec1_uncompressed(pair.public_key().as_ref())
                    .ok_or_else(|| backend("unexpected public key encoding"))?;
                let pkcs8 = pair
                    .to_pkcs8v1()
                    .map_err(|_| backend("private key export failed"))?;
                let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
                (
                    TAG_ES384,
                    PublicKey::P384(public_key),
                    pkcs8,
                    SigningKey::Ecdsa(pair),
                )
            }
            KeyAlgorithm::Es256 => return self.create_es256(),
        };
        let mut plaintext = Zeroizing::new(Vec::with_capacity(1 + pkcs8.len()));
        plaintext.push(tag);
        plaintext.extend_from_slice(&pkcs8);
        let handle = self.seal(HANDLE_VERSION_PKCS8, AAD_PKCS8, &plaintext)?;
        Ok((handle, public_key, key))
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
            detail: "ES256, EdDSA and ES384 keys wrapped with AES-256-GCM under the device key"
                .to_owned(),
        }
    }

    fn algorithms(&self) -> &'static [KeyAlgorithm] {
        &KeyAlgorithm::ALL
    }

    fn create_key(
        &mut self,
        algorithm: KeyAlgorithm,
        // Software keys are not gated on verification: the authenticator's own checks are all
        // there is (see the software key store's threat model).
        _release: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError> {
        let (handle, public_key, key) = match algorithm {
            KeyAlgorithm::Es256 => self.create_es256()?,
            KeyAlgorithm::EdDsa | KeyAlgorithm::Es384 => self.create_pkcs8(algorithm)?,
        };
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(handle_digest(&handle), key);
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
        let signature = match self.cache.get(&id).ok_or(KeyStoreError::InvalidHandle)? {
            // ES256 hashes with SHA-256, ES384 with SHA-384 (the pair's algorithm); DER.
            SigningKey::Ecdsa(pair) => pair.sign(&self.rng, message),
            // EdDSA signs the message itself (RFC 8032): 64 raw bytes.
            SigningKey::Ed25519(pair) => pair.try_sign(message),
        }
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
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ED25519, UnparsedPublicKey,
        VerificationAlgorithm,
    };

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
        let public = created.public_key.to_raw();
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
        let SigningKey::Ecdsa(pair) = &store.cache[&id] else {
            panic!("an ES256 key is an ECDSA key")
        };
        let scalar = pair.private_key().as_be_bytes().unwrap();
        let scalar = scalar.as_ref();
        assert!(!created.handle.0.windows(32).any(|w| w == scalar));
    }

    #[test]
    fn eddsa_and_es384_keys_sign_verifiably_after_reload_and_resist_tampering() {
        let (dir, mut store) = store();
        assert_eq!(store.algorithms(), &KeyAlgorithm::ALL);
        let cases: [(KeyAlgorithm, &dyn VerificationAlgorithm, usize); 2] = [
            (KeyAlgorithm::EdDsa, &ED25519, 32),
            (KeyAlgorithm::Es384, &ECDSA_P384_SHA384_ASN1, 97),
        ];
        for (algorithm, verification, public_len) in cases {
            let created = store.create_key(algorithm, None).unwrap();
            assert_eq!(created.public_key.algorithm(), algorithm);
            let public = created.public_key.to_raw();
            assert_eq!(public.len(), public_len);
            assert_eq!(created.handle.0[0], HANDLE_VERSION_PKCS8);
            let mut reloaded =
                SoftwareKeyStore::new(&DeviceKey::load_or_create(dir.path()).unwrap());
            for s in [&mut store, &mut reloaded] {
                let sig = s.sign(&created.handle, b"message", None).unwrap();
                UnparsedPublicKey::new(verification, &public[..])
                    .verify(b"message", &sig)
                    .unwrap();
                // Not an ES256 signature by accident.
                assert!(
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public[..])
                        .verify(b"message", &sig)
                        .is_err()
                );
            }
            if algorithm == KeyAlgorithm::EdDsa {
                let sig = store.sign(&created.handle, b"m", None).unwrap();
                assert_eq!(sig.len(), 64, "raw Ed25519 signature");
            }
            let mut tampered = created.handle.clone();
            let last = tampered.0.len() - 1;
            tampered.0[last] ^= 1;
            assert!(matches!(
                reloaded_sign(&dir, &tampered),
                Err(KeyStoreError::InvalidHandle)
            ));
        }
    }

    fn reloaded_sign(
        dir: &tempfile::TempDir,
        handle: &KeyHandle,
    ) -> Result<Vec<u8>, KeyStoreError> {
        SoftwareKeyStore::new(&DeviceKey::load_or_create(dir.path()).unwrap())
            .sign(handle, b"m", None)
    }
}
