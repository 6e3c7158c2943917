//! [`SecureEnclaveKeyStore`]: credential keys made in the Secure Enclave (macOS, iOS).
//!
//! Each key is a P-256 key generated inside the enclave (`kSecAttrTokenIDSecureEnclave`), kept
//! in the data-protection keychain under a random label (the key handle, see
//! [`crate::key_handle`]) and usable only through the enclave, which checks the key's
//! `SecAccessControl` at every signature: LocalAuthentication must have verified the person as
//! the key's [`KeyProtection`] asks. hmac-secret keys are enclave keys too: the output for a
//! salt is ECDH of the key with its own public key, through the X9.63 KDF with the salt as
//! shared info, so vault keys derived from it stay hardware-bound.

use core_foundation::error::CFError;
use passgate_platform_api::key_store::{
    CreatedKey, CredRandomWithUv, HMAC_SECRET_SALT_LEN, KeyAlgorithm, KeyHandle, KeyRelease,
    KeyStore, KeyStoreError, KeyStoreInfo, P256PublicKey, check_salts,
};
use security_framework::access_control::{ProtectionMode, SecAccessControl};
use security_framework::item::{
    ItemClass, ItemSearchOptions, KeyClass, Location, Reference, SearchResult,
};
use security_framework::key::{Algorithm, GenerateKeyOptions, KeyType, SecKey, Token};
use zeroize::Zeroizing;

use crate::access_control::{KeyProtection, access_control_flags};
use crate::key_handle::{self, KeyKind};

/// A key store on the Secure Enclave. It holds no state of its own: keys live in the keychain.
#[derive(Debug)]
pub struct SecureEnclaveKeyStore {
    protection: KeyProtection,
}

impl SecureEnclaveKeyStore {
    /// A store whose new keys get `protection` (one store per credential policy).
    pub fn new(protection: KeyProtection) -> Self {
        Self { protection }
    }

    fn generate(&self, kind: KeyKind) -> Result<(KeyHandle, SecKey), KeyStoreError> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|_| KeyStoreError::Backend("random number generator failed".into()))?;
        let label = key_handle::new_label(kind, self.protection, &random);
        let flags = access_control_flags(self.protection);
        let access_control = SecAccessControl::create_with_protection(
            // Only while a passcode is set, never migrated to another device.
            Some(ProtectionMode::AccessibleWhenPasscodeSetThisDeviceOnly),
            flags
                .try_into()
                .map_err(|_| backend_msg("access control flags"))?,
        )
        .map_err(|e| KeyStoreError::Backend(format!("SecAccessControlCreateWithFlags: {e}")))?;
        let mut options = GenerateKeyOptions::default();
        options
            .set_key_type(KeyType::ec_sec_prime_random())
            .set_size_in_bits(256)
            .set_token(Token::SecureEnclave)
            .set_location(Location::DataProtectionKeychain)
            .set_label(label.clone())
            .set_access_control(access_control);
        let key = SecKey::new(&options).map_err(cf_error("SecKeyCreateRandomKey"))?;
        Ok((key_handle::encode(&label), key))
    }

    fn find(&self, handle: &KeyHandle, kind: KeyKind) -> Result<SecKey, KeyStoreError> {
        let decoded = key_handle::decode(handle).ok_or(KeyStoreError::InvalidHandle)?;
        if decoded.kind != kind {
            return Err(KeyStoreError::InvalidHandle);
        }
        let mut search = ItemSearchOptions::new();
        search
            .class(ItemClass::key())
            .key_class(KeyClass::private())
            .label(&decoded.label)
            .load_refs(true)
            .limit(1);
        // Enclave keys live in the data-protection keychain; on macOS also look nowhere else
        // (iOS has no other keychain, and no such option).
        #[cfg(target_os = "macos")]
        search.ignore_legacy_keychains();
        // errSecItemNotFound (and any other failure to find it) means this store cannot use
        // the handle: the key was deleted, or made on another device.
        let results = search.search().map_err(|_| KeyStoreError::InvalidHandle)?;
        results
            .into_iter()
            .find_map(|result| match result {
                SearchResult::Ref(Reference::Key(key)) => Some(key),
                _ => None,
            })
            .ok_or(KeyStoreError::InvalidHandle)
    }
}

fn backend_msg(what: &str) -> KeyStoreError {
    KeyStoreError::Backend(format!("Secure Enclave: {what} failed"))
}

fn cf_error(call: &'static str) -> impl Fn(CFError) -> KeyStoreError {
    move |e| KeyStoreError::Backend(format!("{call}: {e}"))
}

fn public_key_of(key: &SecKey) -> Result<P256PublicKey, KeyStoreError> {
    let public = key
        .public_key()
        .ok_or_else(|| backend_msg("SecKeyCopyPublicKey"))?;
    let point = public
        .external_representation()
        .ok_or_else(|| backend_msg("SecKeyCopyExternalRepresentation"))?;
    P256PublicKey::from_sec1_uncompressed(point.bytes())
        .ok_or_else(|| backend_msg("reading the public key"))
}

impl KeyStore for SecureEnclaveKeyStore {
    fn info(&self) -> KeyStoreInfo {
        KeyStoreInfo {
            backend: "secure-enclave",
            detail: format!(
                "P-256 keys in the Secure Enclave, access control {:?}",
                self.protection
            ),
        }
    }

    fn create_key(
        &mut self,
        algorithm: KeyAlgorithm,
        // The enclave gates keys itself (SecAccessControl); no release secret is involved.
        _release: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError> {
        // P-256 is all the Secure Enclave offers.
        if algorithm != KeyAlgorithm::Es256 {
            return Err(KeyStoreError::UnsupportedAlgorithm(algorithm));
        }
        let (handle, key) = self.generate(KeyKind::Signing)?;
        let public_key = public_key_of(&key)?;
        Ok(CreatedKey {
            handle,
            public_key: public_key.into(),
        })
    }

    fn sign(
        &mut self,
        handle: &KeyHandle,
        message: &[u8],
        _release: Option<&KeyRelease>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let key = self.find(handle, KeyKind::Signing)?;
        // ECDSA over SHA-256 of the message, X9.62 (ASN.1 DER) as WebAuthn expects. The enclave
        // asks LocalAuthentication for the key's access control here.
        key.create_signature(Algorithm::ECDSASignatureMessageX962SHA256, message)
            .map_err(cf_error("SecKeyCreateSignature"))
    }

    fn delete_key(&mut self, handle: &KeyHandle) -> Result<(), KeyStoreError> {
        let key = self.find(handle, KeyKind::Signing)?;
        key.delete()
            .map_err(|e| KeyStoreError::Backend(format!("SecItemDelete: {e}")))
    }

    fn create_cred_random_with_uv(
        &mut self,
        _release: Option<&KeyRelease>,
    ) -> Result<CredRandomWithUv, KeyStoreError> {
        let (handle, _) = self.generate(KeyKind::HmacSecret)?;
        Ok(CredRandomWithUv::InKeyStore(handle))
    }

    fn hmac_with_uv(
        &mut self,
        key: &CredRandomWithUv,
        salts: &[u8],
        _release: Option<&KeyRelease>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        check_salts(salts)?;
        let CredRandomWithUv::InKeyStore(handle) = key else {
            // Keys in the record are evaluated in software by the authenticator.
            return Err(KeyStoreError::InvalidHandle);
        };
        let private = self.find(handle, KeyKind::HmacSecret)?;
        let public = private
            .public_key()
            .ok_or_else(|| backend_msg("SecKeyCopyPublicKey"))?;
        let mut outputs = Zeroizing::new(Vec::with_capacity(salts.len()));
        for salt in salts.chunks_exact(HMAC_SECRET_SALT_LEN) {
            let output = Zeroizing::new(
                private
                    .key_exchange(
                        Algorithm::ECDHKeyExchangeStandardX963SHA256,
                        &public,
                        HMAC_SECRET_SALT_LEN,
                        Some(salt),
                    )
                    .map_err(cf_error("SecKeyCopyKeyExchangeResult"))?,
            );
            if output.len() != HMAC_SECRET_SALT_LEN {
                return Err(backend_msg("ECDH output length"));
            }
            outputs.extend_from_slice(&output);
        }
        Ok(outputs)
    }

    fn delete_cred_random_with_uv(&mut self, key: &CredRandomWithUv) -> Result<(), KeyStoreError> {
        match key {
            CredRandomWithUv::InRecord(_) => Ok(()),
            CredRandomWithUv::InKeyStore(handle) => self
                .find(handle, KeyKind::HmacSecret)?
                .delete()
                .map_err(|e| KeyStoreError::Backend(format!("SecItemDelete: {e}"))),
        }
    }
}
