//! Helpers shared by the software store tests: a full credential record, and the stores
//! opened on a state directory.

use std::path::Path;

use passgate_authenticator::api::credential_store::{
    CredRandom32, CredentialRecord, HmacSecretKeys,
};
use passgate_authenticator::api::key_store::{CredRandomWithUv, KeyAlgorithm, KeyStore};
use passgate_authenticator::software::{DeviceKey, FileCredentialStore, SoftwareKeyStore};

/// A credential record with every optional field set.
pub fn record(
    keys: &mut SoftwareKeyStore,
    rp: &str,
    id: &[u8],
    user: &[u8],
    rk: bool,
    created: u64,
) -> CredentialRecord {
    let key = keys.create_key(KeyAlgorithm::Es256, None).unwrap();
    CredentialRecord {
        id: id.to_vec(),
        rp_id: rp.into(),
        rp_name: Some("Example Corp".into()),
        user_id: user.to_vec(),
        user_name: Some("alice@example.com".into()),
        user_display_name: Some("Alice".into()),
        discoverable: rk,
        algorithm: KeyAlgorithm::Es256,
        key: key.handle,
        public_key: key.public_key,
        created_at: created,
        created_ns: created * 1_000_000_000,
        cred_protect: 1,
        cred_blob: Some(b"blob".to_vec()),
        biometric_set: Some([5; 32]),
        large_blob_key: Some(CredRandom32(zeroize::Zeroizing::new([7; 32]))),
        hmac_secret: Some(HmacSecretKeys {
            with_uv: CredRandomWithUv::InRecord(CredRandom32(zeroize::Zeroizing::new(
                [created; 32].map(|b| u8::try_from(b % 251).unwrap()),
            ))),
            without_uv: CredRandom32(zeroize::Zeroizing::new(
                [created + 1; 32].map(|b| u8::try_from(b % 251).unwrap()),
            )),
        }),
    }
}

/// The device key, key store and credential store of `dir`.
pub fn open(dir: &Path, capacity: usize) -> (DeviceKey, SoftwareKeyStore, FileCredentialStore) {
    let key = DeviceKey::load_or_create(dir).unwrap();
    let keys = SoftwareKeyStore::new(&key);
    let store = FileCredentialStore::open(dir, &key, capacity).unwrap();
    (key, keys, store)
}
