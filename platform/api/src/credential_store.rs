//! Persistent credential metadata.

use crate::key_store::{CredRandomWithUv, KeyAlgorithm, KeyHandle, PublicKey};

/// A credential's hmac-secret (PRF) keys (CTAP 2.1 §12.5): one for assertions with user
/// verification, one for assertions without. Never printed.
///
/// Only the with-UV key goes through the key store ([`KeyStore::hmac_with_uv`]): a store that
/// can hold it in hardware (the TPM store) keeps it there, gated on user verification like its
/// signing keys. The without-UV key is meant to be usable without any verification, so it is
/// always a software value in the (encrypted) record.
///
/// [`KeyStore::hmac_with_uv`]: crate::key_store::KeyStore::hmac_with_uv
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacSecretKeys {
    /// CredRandomWithUV, as the key store that made it keeps it.
    pub with_uv: CredRandomWithUv,
    /// CredRandomWithoutUV.
    pub without_uv: CredRandom32,
}

/// A 32-byte per-credential secret (largeBlobKey, an hmac-secret key). Zeroized on drop, never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CredRandom32(pub zeroize::Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CredRandom32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredRandom32(..)")
    }
}

/// A stored credential. The private key is behind `key`, an opaque handle of the key store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// The credential ID given to the relying party.
    pub id: Vec<u8>,
    /// The relying party ID.
    pub rp_id: String,
    /// The relying party's display name, if given.
    pub rp_name: Option<String>,
    /// The user handle.
    pub user_id: Vec<u8>,
    /// The account name, if given.
    pub user_name: Option<String>,
    /// The display name, if given.
    pub user_display_name: Option<String>,
    /// Whether this is a discoverable (resident) credential.
    pub discoverable: bool,
    /// The key algorithm.
    pub algorithm: KeyAlgorithm,
    /// The key store's handle for the private key.
    pub key: KeyHandle,
    /// The public key (reported by credential management).
    pub public_key: PublicKey,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Creation order: nanoseconds since the Unix epoch, made strictly increasing by the
    /// authenticator that created the credential, so that credentials created within one
    /// second still come back newest first. Records stored before this field existed read
    /// as `created_at` × 10⁹.
    pub created_ns: u64,
    /// credProtect level (1 = userVerificationOptional, 2 = ...WithCredentialIDList,
    /// 3 = userVerificationRequired).
    pub cred_protect: u8,
    /// hmac-secret keys, when the credential was created with the extension.
    pub hmac_secret: Option<HmacSecretKeys>,
    /// The credBlob stored at creation (at most 32 bytes).
    pub cred_blob: Option<Vec<u8>>,
    /// The largeBlobKey, when the credential was created with the extension.
    pub large_blob_key: Option<CredRandom32>,
    /// For credentials bound to the "current biometric set": the enrollment state at
    /// creation. A different state later invalidates the credential.
    pub biometric_set: Option<[u8; 32]>,
}

/// Credential store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("credential store I/O error at {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A stored file failed its integrity check or could not be decoded. It is left untouched.
    #[error("credential store file {path} is corrupt: {reason}")]
    Corrupt {
        /// The corrupt file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No room for another credential.
    #[error("credential store is full ({capacity} credentials)")]
    Full {
        /// The configured capacity.
        capacity: usize,
    },
    /// A cryptographic operation failed.
    #[error("credential store crypto failure: {0}")]
    Crypto(String),
}

/// Stores credential records durably.
///
/// Lookups by credential ID must not scan or decrypt other credentials. Writes are atomic and
/// durable before the call returns: after a crash the store holds either the old or the new
/// state.
pub trait CredentialStore: Send {
    /// Finds a credential of `rp_id` by its ID.
    fn get(&mut self, rp_id: &str, id: &[u8]) -> Result<Option<CredentialRecord>, StoreError>;

    /// Stores a new credential. A discoverable credential replaces any discoverable credential
    /// of the same relying party and user handle.
    fn insert(&mut self, record: &CredentialRecord) -> Result<(), StoreError>;

    /// Replaces a stored credential (same RP and ID) with `record`.
    fn update(&mut self, record: &CredentialRecord) -> Result<(), StoreError>;

    /// Deletes a credential by ID; returns whether one was deleted.
    fn delete(&mut self, id: &[u8]) -> Result<Option<CredentialRecord>, StoreError>;

    /// All discoverable credentials of `rp_id`, newest first.
    fn discoverable(&mut self, rp_id: &str) -> Result<Vec<CredentialRecord>, StoreError>;

    /// The relying party IDs that have discoverable credentials, with their counts.
    fn relying_parties(&mut self) -> Result<Vec<(String, Option<String>, usize)>, StoreError>;

    /// How many discoverable credentials are stored.
    fn discoverable_count(&mut self) -> Result<usize, StoreError>;

    /// How many more credentials fit.
    fn remaining_capacity(&mut self) -> Result<usize, StoreError>;

    /// The next signature counter value for a credential: strictly greater than every value
    /// returned before for that credential, across restarts and crashes.
    fn next_sign_count(&mut self, rp_id: &str, id: &[u8]) -> Result<u32, StoreError>;

    /// Deletes every credential.
    fn reset(&mut self) -> Result<(), StoreError>;
}
