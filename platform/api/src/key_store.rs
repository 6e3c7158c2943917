//! Where credential private keys live.
//!
//! A key store creates a key and hands back an opaque [`KeyHandle`] plus the public key; it signs
//! with a handle. The private key need never leave the store: a software store returns the key
//! wrapped (encrypted) under its device key, a TPM returns a TPM-wrapped blob that only that TPM
//! can load. The handle is kept in the credential record, so the stores themselves are stateless.
//!
//! A store may also gate its keys on user verification ([`KeyStore::requires_uv`]): the TPM
//! store then signs only with a [`KeyRelease`], a secret it hands out only after a verification
//! (a PIN checked by the TPM itself, or a biometric match reported by the verifier).
//!
//! The same seam holds a credential's hmac-secret key for assertions with user verification
//! ([`CredRandomWithUv`]): by default 32 random bytes kept in the credential record and used in
//! software; the TPM store creates an HMAC key inside the TPM instead and evaluates it there,
//! only with a [`KeyRelease`]. The CTAP commands do not know which. (The software evaluation of
//! [`CredRandomWithUv::InRecord`] needs aws-lc-rs, so it lives in the authenticator:
//! `passgate_authenticator::api::key_store::hmac_secret_in_software`.)

use zeroize::{Zeroize, Zeroizing};

use super::credential_store::CredRandom32;
use super::user_verifier::UserVerified;

/// Signature algorithms a key store can create keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA over P-256 with SHA-256 (COSE algorithm -7).
    Es256,
    /// EdDSA with Ed25519 (COSE algorithm -8): signs the message itself, no pre-hash.
    EdDsa,
    /// ECDSA over P-384 with SHA-384 (COSE algorithm -35).
    Es384,
}

impl KeyAlgorithm {
    /// Every algorithm passgate knows, in the order getInfo lists them.
    pub const ALL: [Self; 3] = [Self::Es256, Self::EdDsa, Self::Es384];

    /// The COSE algorithm identifier.
    pub fn cose_id(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::EdDsa => -8,
            Self::Es384 => -35,
        }
    }

    /// The algorithm for a COSE identifier, if passgate knows it.
    pub fn from_cose_id(id: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.cose_id() == id)
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

/// The public half of a P-384 key: uncompressed affine coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P384PublicKey {
    /// The x coordinate, big-endian.
    pub x: [u8; 48],
    /// The y coordinate, big-endian.
    pub y: [u8; 48],
}

impl P384PublicKey {
    /// Parses an uncompressed SEC1 point (`0x04 || x || y`).
    pub fn from_sec1_uncompressed(point: &[u8]) -> Option<Self> {
        let (tag, rest) = point.split_first()?;
        if *tag != 0x04 || rest.len() != 96 {
            return None;
        }
        let mut x = [0u8; 48];
        let mut y = [0u8; 48];
        x.copy_from_slice(&rest[..48]);
        y.copy_from_slice(&rest[48..]);
        Some(Self { x, y })
    }

    /// The uncompressed SEC1 encoding (`0x04 || x || y`).
    pub fn to_sec1_uncompressed(&self) -> [u8; 97] {
        let mut out = [0u8; 97];
        out[0] = 0x04;
        out[1..49].copy_from_slice(&self.x);
        out[49..].copy_from_slice(&self.y);
        out
    }
}

/// An Ed25519 public key (RFC 8032 encoding, 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ed25519PublicKey(pub [u8; 32]);

/// A credential's public key, of one of the [`KeyAlgorithm`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ES256.
    P256(P256PublicKey),
    /// ES384.
    P384(P384PublicKey),
    /// EdDSA (Ed25519).
    Ed25519(Ed25519PublicKey),
}

impl PublicKey {
    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::P256(_) => KeyAlgorithm::Es256,
            Self::P384(_) => KeyAlgorithm::Es384,
            Self::Ed25519(_) => KeyAlgorithm::EdDsa,
        }
    }

    /// The raw encoding credential records keep: the uncompressed SEC1 point for ECDSA keys,
    /// the 32 RFC 8032 bytes for Ed25519.
    pub fn to_raw(&self) -> Vec<u8> {
        match self {
            Self::P256(key) => key.to_sec1_uncompressed().to_vec(),
            Self::P384(key) => key.to_sec1_uncompressed().to_vec(),
            Self::Ed25519(key) => key.0.to_vec(),
        }
    }

    /// Parses [`Self::to_raw`]'s encoding of a key of `algorithm`.
    pub fn from_raw(algorithm: KeyAlgorithm, raw: &[u8]) -> Option<Self> {
        match algorithm {
            KeyAlgorithm::Es256 => P256PublicKey::from_sec1_uncompressed(raw).map(Self::P256),
            KeyAlgorithm::Es384 => P384PublicKey::from_sec1_uncompressed(raw).map(Self::P384),
            KeyAlgorithm::EdDsa => <[u8; 32]>::try_from(raw)
                .ok()
                .map(|key| Self::Ed25519(Ed25519PublicKey(key))),
        }
    }

    /// The COSE_Key (RFC 9053) for attested credential data and credential management:
    /// EC2 with x and y for ECDSA, OKP with x for Ed25519.
    pub fn to_cose_key(&self) -> coset::CoseKey {
        use coset::iana::{Algorithm, EllipticCurve, EnumI64, OkpKeyParameter};
        match self {
            Self::P256(key) => key.to_cose_key(),
            Self::P384(key) => coset::CoseKeyBuilder::new_ec2_pub_key(
                EllipticCurve::P_384,
                key.x.to_vec(),
                key.y.to_vec(),
            )
            .algorithm(Algorithm::ES384)
            .build(),
            Self::Ed25519(key) => coset::CoseKeyBuilder::new_okp_key()
                .param(
                    OkpKeyParameter::Crv.to_i64(),
                    coset::cbor::Value::from(EllipticCurve::Ed25519.to_i64()),
                )
                .param(
                    OkpKeyParameter::X.to_i64(),
                    coset::cbor::Value::Bytes(key.0.to_vec()),
                )
                .algorithm(Algorithm::EdDSA)
                .build(),
        }
    }
}

impl From<P256PublicKey> for PublicKey {
    fn from(key: P256PublicKey) -> Self {
        Self::P256(key)
    }
}

/// A freshly created key.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The handle to store with the credential.
    pub handle: KeyHandle,
    /// The public key to put in the attested credential data.
    pub public_key: PublicKey,
}

/// A credential's hmac-secret key for assertions with user verification (CTAP's
/// CredRandomWithUV), in the form the key store that created it keeps it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum CredRandomWithUv {
    /// 32 bytes kept in the (encrypted) credential record and used in software: what the
    /// software key store makes, and what every credential made before key stores could hold
    /// hmac-secret keys has. Every key store evaluates this form.
    InRecord(CredRandom32),
    /// An HMAC key inside the key store (the TPM), behind a handle only that store can use;
    /// it is evaluated there, and only with a [`KeyRelease`] where the store gates keys.
    InKeyStore(KeyHandle),
}

impl std::fmt::Debug for CredRandomWithUv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InRecord(_) => f.write_str("CredRandomWithUv::InRecord(..)"),
            Self::InKeyStore(handle) => write!(f, "CredRandomWithUv::InKeyStore({handle:?})"),
        }
    }
}

/// Length of one hmac-secret salt and of one output (CTAP 2.1 §12.5).
pub const HMAC_SECRET_SALT_LEN: usize = 32;

/// hmac-secret takes one or two 32-byte salts.
pub fn check_salts(salts: &[u8]) -> Result<(), KeyStoreError> {
    if salts.len() == HMAC_SECRET_SALT_LEN || salts.len() == 2 * HMAC_SECRET_SALT_LEN {
        Ok(())
    } else {
        Err(KeyStoreError::InvalidSalts(salts.len()))
    }
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
    /// The key is gated on user verification and no [`KeyRelease`] was given.
    #[error("the key can be used only after user verification")]
    UserVerificationRequired,
    /// hmac-secret salts must be one or two 32-byte values.
    #[error("hmac-secret salts are {0} bytes; 32 or 64 expected")]
    InvalidSalts(usize),
    /// The backing hardware or file failed.
    #[error("key store backend failed: {0}")]
    Backend(String),
}

/// The secret that unlocks keys gated on user verification. A store hands it out only after
/// a verification ([`KeyStore::verify_pin`], [`KeyStore::release_for`]); the authenticator keeps
/// it only for the ceremony (or the pinUvAuthToken) that verification authorised. Zeroized on
/// drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRelease(Zeroizing<[u8; 32]>);

impl KeyRelease {
    /// Wraps a store's release secret. Only key stores should call this.
    pub fn from_secret(secret: Zeroizing<[u8; 32]>) -> Self {
        Self(secret)
    }

    /// The secret bytes.
    pub fn secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for KeyRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRelease(..)")
    }
}

/// Why a PIN check done by the key store (in hardware) failed.
#[derive(Debug, thiserror::Error)]
pub enum PinCheckError {
    /// The PIN is wrong; the hardware counted the failure (TPM dictionary-attack counter).
    #[error("wrong PIN")]
    Wrong,
    /// The hardware refuses every PIN check for now (TPM dictionary-attack lockout), the
    /// correct PIN included.
    #[error("PIN checks are locked out by the hardware")]
    LockedOut,
    /// The store holds no PIN, or the hardware failed.
    #[error("PIN check failed: {0}")]
    Backend(String),
}

/// A key store's hardware vouching for a credential key: the members of WebAuthn's `tpm`
/// attestation statement (WebAuthn L3 §8.3), which the authenticator puts in the statement as
/// they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttestation {
    /// The COSE algorithm of `sig` (the attestation key's, e.g. -7 for ES256).
    pub alg: i64,
    /// The attestation key's signature over `cert_info` (ASN.1 DER for ECDSA).
    pub sig: Vec<u8>,
    /// The attestation key's certificate, then the chain that issued it (DER).
    pub x5c: Vec<Vec<u8>>,
    /// The marshalled `TPMS_ATTEST` the TPM signed: `TPM_ST_ATTEST_CERTIFY` of the credential
    /// key, with `extraData` = the hash of attToBeSigned.
    pub cert_info: Vec<u8>,
    /// The credential key's marshalled `TPMT_PUBLIC`, whose name `cert_info` certifies.
    pub pub_area: Vec<u8>,
}

/// Creates keys and signs with them; never exports a private key.
pub trait KeyStore: Send {
    /// What this store is.
    fn info(&self) -> KeyStoreInfo;
    /// The algorithms [`Self::create_key`] accepts, in the order getInfo lists them. ES256
    /// only unless a store says more.
    fn algorithms(&self) -> &'static [KeyAlgorithm] {
        &[KeyAlgorithm::Es256]
    }
    /// Creates a new key pair. A store that gates keys on user verification needs the
    /// ceremony's `release` to bind the new key to it.
    fn create_key(
        &mut self,
        algorithm: KeyAlgorithm,
        release: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError>;
    /// Signs `message` (the store hashes it as the algorithm requires) and returns the
    /// signature in the encoding WebAuthn expects (ASN.1 DER for ECDSA, the 64 raw bytes for
    /// EdDSA, which signs `message` itself). A store that gates
    /// keys on user verification refuses without a `release`
    /// ([`KeyStoreError::UserVerificationRequired`]); others ignore it.
    fn sign(
        &mut self,
        handle: &KeyHandle,
        message: &[u8],
        release: Option<&KeyRelease>,
    ) -> Result<Vec<u8>, KeyStoreError>;
    /// Destroys the key behind `handle`, where the backend keeps state for it.
    fn delete_key(&mut self, handle: &KeyHandle) -> Result<(), KeyStoreError>;

    /// Creates a new credential's hmac-secret key for assertions with user verification
    /// (CredRandomWithUV). By default 32 random bytes kept in the credential record
    /// ([`CredRandomWithUv::InRecord`]). A store that can hold the key itself returns a handle
    /// instead, bound like its signing keys to the ceremony's `release`.
    fn create_cred_random_with_uv(
        &mut self,
        _release: Option<&KeyRelease>,
    ) -> Result<CredRandomWithUv, KeyStoreError> {
        // The operating system's generator (getrandom), which needs no C code here; the
        // authenticator's own generator is aws-lc's, seeded from the same source.
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut())
            .map_err(|_| KeyStoreError::Backend("random number generator failed".into()))?;
        Ok(CredRandomWithUv::InRecord(CredRandom32(key)))
    }

    /// hmac-secret with user verification: HMAC-SHA-256 under `key` of each 32-byte salt in
    /// `salts` (one or two, concatenated), outputs concatenated. The authenticator asks only
    /// for a ceremony that verified the user; a store that gates keys on verification refuses
    /// a key it holds without that ceremony's `release`
    /// ([`KeyStoreError::UserVerificationRequired`]).
    ///
    /// The authenticator evaluates [`CredRandomWithUv::InRecord`] keys in software itself
    /// (`passgate_authenticator::api::key_store::hmac_secret_with_uv`) and asks the store only
    /// for keys it holds; a store may still evaluate `InRecord` keys when called directly (the
    /// software and TPM stores do). The default holds no keys: it checks the salts and refuses
    /// every key with [`KeyStoreError::InvalidHandle`].
    fn hmac_with_uv(
        &mut self,
        _key: &CredRandomWithUv,
        salts: &[u8],
        _release: Option<&KeyRelease>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        check_salts(salts)?;
        Err(KeyStoreError::InvalidHandle)
    }

    /// Destroys a key made by [`Self::create_cred_random_with_uv`], where the backend keeps
    /// state for it.
    fn delete_cred_random_with_uv(&mut self, _key: &CredRandomWithUv) -> Result<(), KeyStoreError> {
        Ok(())
    }

    /// Whether signing needs a [`KeyRelease`] now, i.e. every ceremony must verify the user
    /// (the authenticator then behaves as with alwaysUv).
    fn requires_uv(&self) -> bool {
        false
    }
    /// Whether this store checks the PIN itself (in hardware) instead of the authenticator
    /// keeping a PIN hash.
    fn manages_pin(&self) -> bool {
        false
    }
    /// Sets a new PIN (`pin_hash` is `LEFT(SHA-256(PIN), 16)`), given the release obtained by
    /// verifying the current PIN, if one is set.
    fn set_pin(
        &mut self,
        _pin_hash: &[u8],
        _current: Option<&KeyRelease>,
    ) -> Result<(), KeyStoreError> {
        Err(KeyStoreError::Backend(
            "this key store does not manage a PIN".into(),
        ))
    }
    /// Checks a PIN (`LEFT(SHA-256(PIN), 16)`) and, when it is right, releases the keys.
    fn verify_pin(&mut self, _pin_hash: &[u8]) -> Result<KeyRelease, PinCheckError> {
        Err(PinCheckError::Backend(
            "this key store does not manage a PIN".into(),
        ))
    }
    /// The release for a ceremony verified by `verified` (a built-in verifier such as a
    /// fingerprint), or without verification (`None`); `None` back when that is not enough.
    /// A PIN verification goes through [`Self::verify_pin`] instead.
    fn release_for(&mut self, _verified: Option<&UserVerified>) -> Option<KeyRelease> {
        None
    }
    /// Forgets the PIN and every release secret (authenticatorReset).
    fn reset(&mut self) -> Result<(), KeyStoreError> {
        Ok(())
    }
    /// Whether [`Self::attest`] can vouch for keys now (an attestation key with its
    /// certificate). None by default.
    fn can_attest(&self) -> bool {
        false
    }
    /// Has the hardware vouch for the key behind `handle`, bound to `to_be_signed`
    /// (attToBeSigned: authenticatorData then clientDataHash). `Ok(None)` where the store
    /// cannot (the default).
    fn attest(
        &mut self,
        _handle: &KeyHandle,
        _to_be_signed: &[u8],
        _release: Option<&KeyRelease>,
    ) -> Result<Option<KeyAttestation>, KeyStoreError> {
        Ok(None)
    }
}
