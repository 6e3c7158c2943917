//! Where credential private keys live.
//!
//! A key store creates a key and hands back an opaque [`KeyHandle`] plus the public key; it signs
//! with a handle. The private key need never leave the store: a software store returns the key
//! wrapped (encrypted) under its device key, a TPM returns a TPM-wrapped blob that only that TPM
//! can load. The handle is kept in the credential record, so the stores themselves are stateless.

use zeroize::Zeroize;

/// Signature algorithms a key store can create keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA over P-256 with SHA-256 (COSE algorithm -7).
    Es256,
}

impl KeyAlgorithm {
    /// The COSE algorithm identifier.
    pub fn cose_id(self) -> i64 {
        match self {
            Self::Es256 => -7,
        }
    }

    /// The algorithm for a COSE identifier, if supported.
    pub fn from_cose_id(id: i64) -> Option<Self> {
        match id {
            -7 => Some(Self::Es256),
            _ => None,
        }
    }
}

/// An opaque reference to a private key, meaningful only to the store that made it.
#[derive(Clone, PartialEq, Eq, Zeroize)]
#[zeroize(drop)]
pub struct KeyHandle(pub Vec<u8>);

impl std::fmt::Debug for KeyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Handles are wrapped keys: never print their bytes.
        write!(f, "KeyHandle({} bytes)", self.0.len())
    }
}

/// The public half of a P-256 key: uncompressed affine coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P256PublicKey {
    /// The x coordinate, big-endian.
    pub x: [u8; 32],
    /// The y coordinate, big-endian.
    pub y: [u8; 32],
}

impl P256PublicKey {
    /// Parses an uncompressed SEC1 point (`0x04 || x || y`).
    pub fn from_sec1_uncompressed(point: &[u8]) -> Option<Self> {
        let (tag, rest) = point.split_first()?;
        if *tag != 0x04 || rest.len() != 64 {
            return None;
        }
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(&rest[..32]);
        y.copy_from_slice(&rest[32..]);
        Some(Self { x, y })
    }

    /// The uncompressed SEC1 encoding (`0x04 || x || y`).
    pub fn to_sec1_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.x);
        out[33..].copy_from_slice(&self.y);
        out
    }

    /// The COSE_Key form used in attested credential data (kty EC2, alg ES256, crv P-256).
    pub fn to_cose_key(&self) -> coset::CoseKey {
        coset::CoseKeyBuilder::new_ec2_pub_key(
            coset::iana::EllipticCurve::P_256,
            self.x.to_vec(),
            self.y.to_vec(),
        )
        .algorithm(coset::iana::Algorithm::ES256)
        .build()
    }
}

/// A freshly created key.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The handle to store with the credential.
    pub handle: KeyHandle,
    /// The public key to put in the attested credential data.
    pub public_key: P256PublicKey,
}

/// Describes a key store for status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStoreInfo {
    /// Short backend name: `software`, `tpm`, ...
    pub backend: &'static str,
    /// Human-readable detail (e.g. the TPM manufacturer).
    pub detail: String,
}

/// Key store failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The algorithm is not supported by this store.
    #[error("unsupported key algorithm {0:?}")]
    UnsupportedAlgorithm(KeyAlgorithm),
    /// The handle was not made by this store (or by this device key): it cannot be used here.
    #[error("key handle is not valid for this key store")]
    InvalidHandle,
    /// The store is full.
    #[error("key store is full")]
    Full,
    /// The backing hardware or file failed.
    #[error("key store backend failed: {0}")]
    Backend(String),
}

/// Creates keys and signs with them; never exports a private key.
pub trait KeyStore: Send {
    /// What this store is.
    fn info(&self) -> KeyStoreInfo;
    /// Creates a new key pair.
    fn create_key(&mut self, algorithm: KeyAlgorithm) -> Result<CreatedKey, KeyStoreError>;
    /// Signs `message` (the store hashes it as the algorithm requires) and returns the
    /// signature in the encoding WebAuthn expects (ASN.1 DER for ES256).
    fn sign(&mut self, handle: &KeyHandle, message: &[u8]) -> Result<Vec<u8>, KeyStoreError>;
    /// Destroys the key behind `handle`, where the backend keeps state for it.
    fn delete_key(&mut self, handle: &KeyHandle) -> Result<(), KeyStoreError>;
}
