//! [`PlatformCryptoKeyStore`]: credential keys in the TPM through the Microsoft Platform Crypto
//! Provider (NCrypt), Windows.
//!
//! Each key is a persisted P-256 ECDSA key the provider creates in the TPM under a random name
//! (the key handle, see [`crate::key_name`]); only the public half ever leaves it. Windows
//! Hello gates the ceremony (the authenticator asks [`crate::HelloVerifier`] first); the TPM
//! itself does not tie these keys to a Hello gesture. hmac-secret keys stay in the credential
//! record (the provider offers no HMAC keys), evaluated in software by the authenticator.

use passgate_platform_api::key_store::{
    CreatedKey, KeyAlgorithm, KeyHandle, KeyRelease, KeyStore, KeyStoreError, KeyStoreInfo,
};
use windows::Win32::Security::Cryptography::{
    BCRYPT_ECCPUBLIC_BLOB, BCRYPT_ECDSA_P256_ALGORITHM, BCRYPT_SHA256_ALG_HANDLE, BCryptHash,
    CERT_KEY_SPEC, MS_PLATFORM_CRYPTO_PROVIDER, NCRYPT_FLAGS, NCRYPT_HANDLE, NCRYPT_KEY_HANDLE,
    NCRYPT_PROV_HANDLE, NCryptCreatePersistedKey, NCryptDeleteKey, NCryptExportKey,
    NCryptFinalizeKey, NCryptFreeObject, NCryptOpenKey, NCryptOpenStorageProvider, NCryptSignHash,
};
use windows::core::PCWSTR;

use crate::{key_name, ncrypt_blob};

/// A key store on the Microsoft Platform Crypto Provider (the TPM).
#[derive(Debug)]
pub struct PlatformCryptoKeyStore {
    provider: NCRYPT_PROV_HANDLE,
}

// SAFETY: an NCrypt provider handle may be used from any thread; the store is used by one
// thread at a time (`&mut self`).
unsafe impl Send for PlatformCryptoKeyStore {}

impl Drop for PlatformCryptoKeyStore {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `open` and is freed once.
        let _ = unsafe { NCryptFreeObject(NCRYPT_HANDLE(self.provider.0)) };
    }
}

/// A key handle freed when dropped.
struct OpenKey(NCRYPT_KEY_HANDLE);

impl Drop for OpenKey {
    fn drop(&mut self) {
        // SAFETY: the handle was opened or created by this module and is freed once.
        let _ = unsafe { NCryptFreeObject(NCRYPT_HANDLE(self.0.0)) };
    }
}

fn backend(call: &'static str) -> impl Fn(windows::core::Error) -> KeyStoreError {
    move |e| KeyStoreError::Backend(format!("{call}: {e}"))
}

impl PlatformCryptoKeyStore {
    /// Opens the Microsoft Platform Crypto Provider; fails where there is no usable TPM.
    pub fn open() -> Result<Self, KeyStoreError> {
        let mut provider = NCRYPT_PROV_HANDLE::default();
        // SAFETY: a valid out pointer and the provider's static name.
        unsafe { NCryptOpenStorageProvider(&mut provider, MS_PLATFORM_CRYPTO_PROVIDER, 0) }
            .map_err(backend("NCryptOpenStorageProvider"))?;
        Ok(Self { provider })
    }

    fn open_key(&self, handle: &KeyHandle) -> Result<OpenKey, KeyStoreError> {
        let name = key_name::decode(handle).ok_or(KeyStoreError::InvalidHandle)?;
        let wide = key_name::to_wide(&name);
        let mut key = NCRYPT_KEY_HANDLE::default();
        // SAFETY: a valid provider, out pointer and NUL-terminated name that outlives the call.
        unsafe {
            NCryptOpenKey(
                self.provider,
                &mut key,
                PCWSTR(wide.as_ptr()),
                CERT_KEY_SPEC(0),
                NCRYPT_FLAGS(0),
            )
        }
        // NTE_BAD_KEYSET and friends: the key is gone or was made on another machine.
        .map_err(|_| KeyStoreError::InvalidHandle)?;
        Ok(OpenKey(key))
    }
}

impl KeyStore for PlatformCryptoKeyStore {
    fn info(&self) -> KeyStoreInfo {
        KeyStoreInfo {
            backend: "windows-platform-crypto",
            detail: "P-256 keys in the TPM through the Microsoft Platform Crypto Provider"
                .to_owned(),
        }
    }

    fn create_key(
        &mut self,
        algorithm: KeyAlgorithm,
        _release: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError> {
        if algorithm != KeyAlgorithm::Es256 {
            return Err(KeyStoreError::UnsupportedAlgorithm(algorithm));
        }
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|_| KeyStoreError::Backend("random number generator failed".into()))?;
        let name = key_name::new_name(&random);
        let wide = key_name::to_wide(&name);
        let mut raw = NCRYPT_KEY_HANDLE::default();
        // SAFETY: valid provider, out pointer, algorithm and NUL-terminated name.
        unsafe {
            NCryptCreatePersistedKey(
                self.provider,
                &mut raw,
                BCRYPT_ECDSA_P256_ALGORITHM,
                PCWSTR(wide.as_ptr()),
                CERT_KEY_SPEC(0),
                NCRYPT_FLAGS(0),
            )
        }
        .map_err(backend("NCryptCreatePersistedKey"))?;
        let key = OpenKey(raw);
        // SAFETY: a key handle from NCryptCreatePersistedKey, finalized once.
        unsafe { NCryptFinalizeKey(key.0, NCRYPT_FLAGS(0)) }
            .map_err(backend("NCryptFinalizeKey"))?;
        let mut blob = [0u8; 8 + 64];
        let mut written = 0u32;
        // SAFETY: valid key, blob type and output buffer with its length.
        unsafe {
            NCryptExportKey(
                key.0,
                None,
                BCRYPT_ECCPUBLIC_BLOB,
                None,
                Some(&mut blob),
                &mut written,
                NCRYPT_FLAGS(0),
            )
        }
        .map_err(backend("NCryptExportKey"))?;
        let written = usize::try_from(written).map_err(|_| KeyStoreError::InvalidHandle)?;
        let public_key = blob
            .get(..written)
            .and_then(ncrypt_blob::p256_from_ecc_public_blob)
            .ok_or_else(|| KeyStoreError::Backend("unexpected public key blob".into()))?;
        Ok(CreatedKey {
            handle: key_name::encode(&name),
            public_key: public_key.into(),
        })
    }

    fn sign(
        &mut self,
        handle: &KeyHandle,
        message: &[u8],
        _release: Option<&KeyRelease>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let key = self.open_key(handle)?;
        let mut digest = [0u8; 32];
        // SAFETY: the SHA-256 pseudo-handle, no secret, valid input and output buffers.
        let status = unsafe { BCryptHash(BCRYPT_SHA256_ALG_HANDLE, None, message, &mut digest) };
        if status.is_err() {
            return Err(KeyStoreError::Backend(format!("BCryptHash: {status:?}")));
        }
        let mut raw = [0u8; 64];
        let mut written = 0u32;
        // SAFETY: valid key, digest and output buffer with its length; no padding for ECDSA.
        unsafe {
            NCryptSignHash(
                key.0,
                None,
                &digest,
                Some(&mut raw),
                &mut written,
                NCRYPT_FLAGS(0),
            )
        }
        .map_err(backend("NCryptSignHash"))?;
        let written = usize::try_from(written).map_err(|_| KeyStoreError::InvalidHandle)?;
        raw.get(..written)
            .and_then(ncrypt_blob::der_signature_from_raw)
            .ok_or_else(|| KeyStoreError::Backend("unexpected signature length".into()))
    }

    fn delete_key(&mut self, handle: &KeyHandle) -> Result<(), KeyStoreError> {
        let key = self.open_key(handle)?;
        // NCryptDeleteKey frees the handle too, so it must not be freed again.
        let raw = key.0;
        std::mem::forget(key);
        // SAFETY: a key handle opened above, consumed by this call.
        unsafe { NCryptDeleteKey(raw, 0) }.map_err(backend("NCryptDeleteKey"))
    }
}
