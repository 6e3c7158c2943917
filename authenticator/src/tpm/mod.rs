//! [`TpmKeyStore`]: P-256 (ES256) and P-384 (ES384, where the TPM has the curve) signing keys
//! created inside a TPM 2.0 and never exported, usable
//! only after user verification once a PIN is set.
//!
//! Keys are children of an ECC P-256 storage primary in the owner hierarchy, re-derived from
//! the TPM's own seed at every start (a fixed template gives the same primary on the same TPM,
//! and a different one on any other TPM). A key handle is the key's TPM2B_PUBLIC and its
//! TPM-wrapped TPM2B_PRIVATE: only this TPM's primary can load it, so a copied state directory
//! is useless elsewhere. Signing happens in the TPM.
//!
//! Each key gets a random 32-byte authorization value at creation; the TPM signs only when it
//! is presented. The handle keeps that value only AES-256-GCM encrypted under the **release
//! key** `R` (32 random bytes, one per authenticator), so signing needs a [`KeyRelease`].
//! Where `R` lives decides who enforces verification:
//!
//! - no PIN set: `R` is kept in the state store ("open"): there is no verification to gate on;
//! - PIN set: `R` is sealed in a TPM **PIN object** (a keyedHash sealed-data object *without*
//!   `noDA`) whose authorization value is derived from the PIN hash the platform sends in
//!   clientPIN. Verifying a PIN is TPM2_Unseal with that value: a wrong PIN is
//!   TPM_RC_AUTH_FAIL and counts against the TPM's dictionary-attack (DA) lockout, and in
//!   lockout the TPM refuses the right PIN too. Nothing on disk can check a PIN guess offline;
//! - PIN set and a biometric verifier configured: additionally a copy of `R` in the state store
//!   that the daemon hands out after a biometric match. There the daemon, not the TPM, enforces
//!   the match.
//!
//! Handles of version 1 (keys made before authorization values existed) still sign with the
//! empty authorization value.
//!
//! A credential's hmac-secret key for assertions with user verification (CredRandomWithUV) is
//! a keyedHash HMAC-SHA-256 key created in the TPM under the same primary, with its own random
//! authValue sealed under the release key like a signing key's (version-3 handles): the
//! with-UV output is `TPM2_HMAC` in the TPM, and only a ceremony holding a [`KeyRelease`] gets
//! it. Keys kept in the record (credentials made before, [`CredRandomWithUv::InRecord`]) are
//! still evaluated in software. The without-UV key is never the store's business.

mod activation;
mod attestation;
mod context;
mod ecdsa;
mod release;
mod templates;

pub mod capture;
pub mod nv_counter;

use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use aws_lc_rs::rand;
use tss_esapi::constants::PropertyTag;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{Auth, HashcheckTicket, MaxBuffer, Public, SensitiveData, Signature};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use zeroize::Zeroizing;

pub use activation::{
    ActivationChallenge, ActivationRequest, CHAIN_AAD, CREDENTIAL_LEN, attestation_key_name,
    make_credential, seal_attestation_chain,
};
pub use attestation::AttestationKeyInfo;
pub use context::{
    Encrypt, ObjectUseError, Residency, STORAGE_PRIMARY_HANDLE, TpmContext, connect_esys,
};
pub use ecdsa::der_signature;
use release::{PinObject, ReleaseState, auth_wrapping_key, pin_auth, random_secret};
pub use templates::{signing_key_template, signing_key_template_p384};

use crate::api::key_store::{
    CreatedKey, CredRandomWithUv, HMAC_SECRET_SALT_LEN, KeyAlgorithm, KeyAttestation, KeyHandle,
    KeyRelease, KeyStore, KeyStoreError, KeyStoreInfo, PinCheckError, check_salts,
    hmac_secret_in_software,
};
use crate::api::state_store::StateStore;
use crate::api::user_verifier::{UserVerified, VerificationMethod};

/// Handles made before keys had authorization values: empty authValue.
const HANDLE_VERSION_EMPTY_AUTH: u8 = 1;
/// Handles of signing keys whose authValue is encrypted under the release key.
const HANDLE_VERSION: u8 = 2;
/// Handles of hmac-secret HMAC keys (CredRandomWithUV): laid out as version 2.
const HANDLE_VERSION_HMAC: u8 = 3;
const AUTH_LEN: usize = 32;
/// `TPM_ALG_ECC` and `TPM_ALG_KEYEDHASH`, big-endian: the first field of a TPMT_PUBLIC.
const TPM_ALG_ECC: &[u8] = &[0x00, 0x23];
const TPM_ALG_KEYEDHASH: &[u8] = &[0x00, 0x08];
const TAG_LEN: usize = 16;
/// Where the release state lives in the state store.
const RELEASE_STATE: &str = "tpm-release";

fn tpm_error(what: &str) -> impl FnOnce(tss_esapi::Error) -> KeyStoreError + '_ {
    move |e| KeyStoreError::Backend(format!("TPM {what} failed: {e}"))
}

/// A key store in a TPM 2.0, reached through a TCTI (`device:/dev/tpmrm0`,
/// `swtpm:host=127.0.0.1,port=2321`, ...).
pub struct TpmKeyStore {
    tpm: TpmContext,
    manufacturer: String,
    release: ReleaseState,
    /// Where `release` is persisted; `None` keeps it in memory only (status probes, tests).
    state: Option<Box<dyn StateStore>>,
    /// Whether a biometric verifier may obtain the release key (daemon-enforced).
    biometric_release: bool,
    /// The TPM's storage primary is not the one the release state was made with: nothing
    /// secret is sent to this TPM (see [`ReleaseState::primary_name`]).
    foreign_primary: bool,
    /// The credential algorithms this TPM implements (probed at connect).
    algorithms: &'static [KeyAlgorithm],
    /// The attestation key and its certificates, once created (see [`attestation`]).
    attestation: Option<attestation::AttestationState>,
}

/// The TPM's dictionary-attack state (TPM2_GetCapability, TPM_PT_LOCKOUT_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictionaryAttackStatus {
    /// Failed authorizations of DA-protected objects counted now.
    pub failed_tries: u32,
    /// The count at which the TPM locks out.
    pub max_tries: u32,
    /// Seconds after which one failure is forgotten (0: only lockout-hierarchy recovery).
    pub recovery_time: u32,
    /// Seconds to wait after a failed lockout-hierarchy authorization.
    pub lockout_recovery: u32,
}

impl DictionaryAttackStatus {
    /// Whether DA-protected objects (the PIN object) are refused now.
    pub fn locked_out(&self) -> bool {
        self.failed_tries >= self.max_tries
    }
}

impl std::fmt::Debug for TpmKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmKeyStore")
            .field("manufacturer", &self.manufacturer)
            .finish_non_exhaustive()
    }
}

/// A u16-length-prefixed field of a key handle at `at`, and where the next one starts.
fn handle_field(rest: &[u8], at: usize) -> Result<(&[u8], usize), KeyStoreError> {
    let len = rest.get(at..at + 2).ok_or(KeyStoreError::InvalidHandle)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let value = rest
        .get(at + 2..at + 2 + len)
        .ok_or(KeyStoreError::InvalidHandle)?;
    Ok((value, at + 2 + len))
}

/// What a key handle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectKind {
    /// A P-256 credential signing key.
    Signing,
    /// An hmac-secret HMAC key (CredRandomWithUV).
    Hmac,
}

impl ObjectKind {
    /// The TPM command the object is loaded for (for error messages).
    fn operation(self) -> &'static str {
        match self {
            Self::Signing => "Sign",
            Self::Hmac => "HMAC",
        }
    }
}

impl TpmKeyStore {
    /// Connects to the TPM behind `tcti` and derives the storage primary, with the release
    /// state in memory only (no PIN; for status probes and tests).
    pub fn open(tcti: &str) -> Result<Self, KeyStoreError> {
        Self::connect(tcti, false)
    }

    fn connect(tcti: &str, flush_stale: bool) -> Result<Self, KeyStoreError> {
        let mut tpm = TpmContext::connect(tcti, flush_stale)?;
        let manufacturer = Self::read_manufacturer(&mut tpm).unwrap_or_else(|| "unknown".into());
        let algorithms = ecdsa::supported_algorithms(tpm.esys());
        Ok(Self {
            tpm,
            manufacturer,
            release: ReleaseState {
                open: Some(random_secret()?),
                ..ReleaseState::default()
            },
            state: None,
            biometric_release: false,
            foreign_primary: false,
            algorithms,
            attestation: None,
        })
    }

    /// Like [`Self::open`], with the release state (release key, PIN object) persisted in
    /// `state`. `biometric_release` lets a biometric verifier obtain the release key after a
    /// match; without it, once a PIN is set only the PIN (checked by the TPM) releases keys,
    /// and a copy kept for a formerly configured biometric verifier is erased.
    pub fn open_with_state(
        tcti: &str,
        mut state: Box<dyn StateStore>,
        biometric_release: bool,
    ) -> Result<Self, KeyStoreError> {
        // The daemon is the TPM's long-lived user: it clears what a killed predecessor left.
        let mut store = Self::connect(tcti, true)?;
        let stored = state
            .load(RELEASE_STATE)
            .map_err(|e| KeyStoreError::Backend(format!("TPM release state: {e}")))?;
        let mut dirty = false;
        store.release = match stored {
            // Fail closed: an unreadable release state never turns into a fresh "no PIN" one.
            Some(bytes) => ReleaseState::decode(&bytes).ok_or_else(|| {
                KeyStoreError::Backend("TPM release state does not decode".into())
            })?,
            None => {
                dirty = true;
                store.release.clone()
            }
        };
        let current = store.tpm.primary_name();
        match (&store.release.primary_name, current) {
            (None, Some(name)) => {
                store.release.primary_name = Some(name);
                dirty = true;
            }
            (Some(pinned), Some(name)) if *pinned != name => {
                tracing::warn!(
                    "the TPM's storage primary is not the one this state directory was made with \
                     (another TPM, or a key substituted on the TPM's bus): its keys are refused"
                );
                store.foreign_primary = true;
            }
            _ => {}
        }
        if let Some(bytes) = state
            .load(attestation::ATTESTATION_STATE)
            .map_err(|e| KeyStoreError::Backend(format!("TPM attestation key: {e}")))?
        {
            store.attestation = Some(attestation::AttestationState::decode(&bytes).ok_or_else(
                || KeyStoreError::Backend("TPM attestation key state does not decode".into()),
            )?);
        }
        if store.release.pin.is_some() && !biometric_release && store.release.biometric.is_some() {
            store.release.biometric = None;
            dirty = true;
        }
        store.state = Some(state);
        store.biometric_release = biometric_release;
        if dirty {
            store.save_release()?;
        }
        store.preload_pin_object();
        Ok(store)
    }

    fn save_release(&mut self) -> Result<(), KeyStoreError> {
        if let Some(state) = self.state.as_mut() {
            state
                .save(RELEASE_STATE, &self.release.encode())
                .map_err(|e| KeyStoreError::Backend(format!("saving TPM release state: {e}")))?;
        }
        Ok(())
    }

    /// The TPM's dictionary-attack counter and parameters.
    pub fn dictionary_attack_status(&mut self) -> Result<DictionaryAttackStatus, KeyStoreError> {
        let mut read = |tag: PropertyTag| -> Result<u32, KeyStoreError> {
            self.tpm
                .property(tag)
                .ok_or_else(|| KeyStoreError::Backend(format!("TPM property {tag:?} unreadable")))
        };
        Ok(DictionaryAttackStatus {
            failed_tries: read(PropertyTag::LockoutCounter)?,
            max_tries: read(PropertyTag::MaxAuthFail)?,
            recovery_time: read(PropertyTag::LockoutInterval)?,
            lockout_recovery: read(PropertyTag::LockoutRecovery)?,
        })
    }

    fn read_manufacturer(tpm: &mut TpmContext) -> Option<String> {
        let value = tpm.property(PropertyTag::Manufacturer)?;
        let text: String = value
            .to_be_bytes()
            .iter()
            .filter(|b| b.is_ascii_graphic())
            .map(|&b| char::from(b))
            .collect();
        Some(text)
    }

    /// Whether passgate's storage primary is persistent in this TPM (see [`TpmContext`]).
    pub fn primary_is_persistent(&self) -> bool {
        self.tpm.primary_is_persistent()
    }

    /// The TPM vendor ID (e.g. `IBM` for swtpm).
    pub fn manufacturer(&self) -> &str {
        &self.manufacturer
    }

    /// A handle's marshalled public area (its first field, whatever the version).
    fn handle_public(handle: &KeyHandle) -> Result<&[u8], KeyStoreError> {
        let rest = handle.0.get(1..).ok_or(KeyStoreError::InvalidHandle)?;
        Ok(handle_field(rest, 0)?.0)
    }

    /// Splits a handle into the key's marshalled public area, its TPM-wrapped private area
    /// and its authorization value (decrypted with `release` for version-2 and -3 handles). A
    /// handle of the other `kind` (a signing key's for an HMAC key, or the reverse) is invalid
    /// here.
    fn split_handle<'h>(
        handle: &'h KeyHandle,
        release: Option<&KeyRelease>,
        kind: ObjectKind,
    ) -> Result<(&'h [u8], &'h [u8], Auth), KeyStoreError> {
        let bytes = &handle.0;
        let (&version, rest) = bytes.split_first().ok_or(KeyStoreError::InvalidHandle)?;
        let expected = matches!(
            (kind, version),
            (
                ObjectKind::Signing,
                HANDLE_VERSION_EMPTY_AUTH | HANDLE_VERSION
            ) | (ObjectKind::Hmac, HANDLE_VERSION_HMAC)
        );
        if !expected {
            return Err(KeyStoreError::InvalidHandle);
        }
        let (public, end) = handle_field(rest, 0)?;
        // TPMT_PUBLIC starts with its type (TPM_ALG_ECC, TPM_ALG_KEYEDHASH): checked here, the
        // rest by the TPM when it loads the blob.
        let object_type = public.get(..2).ok_or(KeyStoreError::InvalidHandle)?;
        let type_matches = match kind {
            ObjectKind::Signing => object_type == TPM_ALG_ECC,
            ObjectKind::Hmac => object_type == TPM_ALG_KEYEDHASH,
        };
        if !type_matches {
            return Err(KeyStoreError::InvalidHandle);
        }
        let (private, auth) = match version {
            HANDLE_VERSION_EMPTY_AUTH => {
                let private = rest.get(end..).ok_or(KeyStoreError::InvalidHandle)?;
                (private, Auth::default())
            }
            HANDLE_VERSION | HANDLE_VERSION_HMAC => {
                let (private, end) = handle_field(rest, end)?;
                let sealed = rest.get(end..).ok_or(KeyStoreError::InvalidHandle)?;
                if sealed.len() != NONCE_LEN + AUTH_LEN + TAG_LEN {
                    return Err(KeyStoreError::InvalidHandle);
                }
                let release = release.ok_or(KeyStoreError::UserVerificationRequired)?;
                let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| KeyStoreError::InvalidHandle)?;
                let mut buffer = Zeroizing::new(ciphertext.to_vec());
                // The public area is the associated data: an authValue moved to another key's
                // handle does not decrypt. A release key of another authenticator (or from
                // before a reset) does not either.
                let plain = auth_wrapping_key(release)?
                    .open_in_place(nonce, Aad::from(public), &mut buffer)
                    .map_err(|_| KeyStoreError::InvalidHandle)?;
                (
                    private,
                    Auth::try_from(plain.to_vec()).map_err(tpm_error("auth"))?,
                )
            }
            _ => return Err(KeyStoreError::InvalidHandle),
        };
        Ok((public, private, auth))
    }

    /// Creates a child of the storage primary from `template` with a fresh random authValue,
    /// and returns the created public area and its handle: `version`, the public area, the
    /// TPM-wrapped private area, and the authValue sealed under `release` (AES-256-GCM, the
    /// public area as associated data). The authValue reaches the TPM parameter-encrypted.
    fn create_wrapped(
        &mut self,
        template: Public,
        version: u8,
        release: Option<&KeyRelease>,
    ) -> Result<(Public, KeyHandle), KeyStoreError> {
        let release = release.ok_or(KeyStoreError::UserVerificationRequired)?;
        self.refuse_foreign_primary()?;
        let wrapping = auth_wrapping_key(release)?;
        let mut auth = Zeroizing::new([0u8; AUTH_LEN]);
        rand::fill(auth.as_mut())
            .map_err(|_| KeyStoreError::Backend("random number generator failed".into()))?;
        let tpm_auth = Auth::try_from(auth.to_vec()).map_err(tpm_error("auth"))?;
        let created = self
            .tpm
            .create(template, Some(tpm_auth), None)
            .map_err(tpm_error("Create"))?;
        let public = created
            .out_public
            .marshall()
            .map_err(tpm_error("marshal"))?;
        let private = created.out_private.value();
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce)
            .map_err(|_| KeyStoreError::Backend("random number generator failed".into()))?;
        let mut sealed = Zeroizing::new(auth.to_vec());
        wrapping
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&public[..]),
                &mut *sealed,
            )
            .map_err(|_| KeyStoreError::Backend("sealing the key authorization failed".into()))?;
        let len = |v: &[u8]| {
            u16::try_from(v.len())
                .map(u16::to_be_bytes)
                .map_err(|_| KeyStoreError::Backend("TPM blob too long".into()))
        };
        let mut handle =
            Vec::with_capacity(5 + public.len() + private.len() + NONCE_LEN + sealed.len());
        handle.push(version);
        handle.extend_from_slice(&len(&public)?);
        handle.extend_from_slice(&public);
        handle.extend_from_slice(&len(private)?);
        handle.extend_from_slice(private);
        handle.extend_from_slice(&nonce);
        handle.extend_from_slice(&sealed);
        Ok((created.out_public, KeyHandle(handle)))
    }

    /// Runs `f` on the object of a handle (loaded unless still loaded; see [`TpmContext`]),
    /// authorized in the salted session with the handle's authValue. A blob this TPM's
    /// primary cannot load was made by another TPM or was tampered with.
    fn with_loaded<T>(
        &mut self,
        handle: &KeyHandle,
        release: Option<&KeyRelease>,
        kind: ObjectKind,
        encrypt: Encrypt,
        f: impl FnOnce(
            &mut tss_esapi::Context,
            tss_esapi::handles::KeyHandle,
        ) -> Result<T, tss_esapi::Error>,
    ) -> Result<T, KeyStoreError> {
        let (public, private, auth) = Self::split_handle(handle, release, kind)?;
        if self.foreign_primary {
            // Made under another primary: not loadable here, and no authValue goes out.
            return Err(KeyStoreError::InvalidHandle);
        }
        self.tpm
            .with_object(public, private, auth, Residency::Cached, encrypt, f)
            .map_err(|e| match e {
                ObjectUseError::Load(e) => {
                    tracing::debug!(error = %e, "the TPM refused the key blob");
                    KeyStoreError::InvalidHandle
                }
                ObjectUseError::Use(e) => tpm_error(kind.operation())(e),
            })
    }

    /// Refuses to send secrets to a TPM whose storage primary is not the pinned one.
    fn refuse_foreign_primary(&self) -> Result<(), KeyStoreError> {
        if self.foreign_primary {
            return Err(KeyStoreError::Backend(
                "the TPM's storage primary is not the one this state was made with (another \
                 TPM, or a substituted key): refusing to use it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Loads the PIN object (and starts the session) at start, so that the first PIN
    /// verification costs what every later one does: one `TPM2_Unseal`. A failure here is
    /// only logged; the verification itself reports it.
    fn preload_pin_object(&mut self) {
        let Some(pin) = self.release.pin.clone() else {
            return;
        };
        if self.foreign_primary {
            return;
        }
        let loaded = self.tpm.with_object(
            &pin.public,
            &pin.private,
            Auth::default(),
            Residency::Pinned,
            Encrypt::Neither,
            |_, _| Ok(()),
        );
        if let Err(e) = loaded {
            tracing::warn!(error = ?e, "could not load the TPM PIN object");
        }
    }

    /// Unseals the release key from the PIN object with a PIN-derived authorization. The
    /// authValue is proven by the session's HMAC, never sent; the release key comes back
    /// encrypted. The PIN object stays loaded for the next verification.
    fn unseal_with_pin(&mut self, pin_hash: &[u8]) -> Result<Zeroizing<[u8; 32]>, PinCheckError> {
        let backend = |e: KeyStoreError| PinCheckError::Backend(e.to_string());
        let pin = self
            .release
            .pin
            .clone()
            .ok_or_else(|| PinCheckError::Backend("no PIN is set in the TPM".into()))?;
        self.refuse_foreign_primary().map_err(backend)?;
        let auth = pin_auth(&pin.salt, pin_hash).map_err(backend)?;
        let unsealed = self.tpm.with_object(
            &pin.public,
            &pin.private,
            auth,
            Residency::Pinned,
            Encrypt::Response,
            |ctx, object| ctx.unseal(object.into()),
        );
        let secret = match unsealed {
            Ok(secret) => Zeroizing::new(secret.value().to_vec()),
            Err(ObjectUseError::Load(e)) => {
                return Err(PinCheckError::Backend(format!(
                    "TPM refused the PIN object: {e}"
                )));
            }
            Err(ObjectUseError::Use(tss_esapi::Error::Tss2Error(rc))) => {
                return Err(match rc.kind() {
                    Some(Tss2ResponseCodeKind::AuthFail) => PinCheckError::Wrong,
                    Some(Tss2ResponseCodeKind::Lockout) => PinCheckError::LockedOut,
                    _ => PinCheckError::Backend(format!("TPM Unseal failed: {rc}")),
                });
            }
            Err(ObjectUseError::Use(e)) => {
                return Err(PinCheckError::Backend(format!("TPM Unseal failed: {e}")));
            }
        };
        let mut out = Zeroizing::new([0u8; 32]);
        if secret.len() != out.len() {
            return Err(PinCheckError::Backend(
                "PIN object holds no release key".into(),
            ));
        }
        out.copy_from_slice(&secret);
        Ok(out)
    }

    /// Creates a PIN object sealing `secret` under the authorization derived from `pin_hash`
    /// (both reach the TPM parameter-encrypted).
    fn seal_for_pin(
        &mut self,
        pin_hash: &[u8],
        secret: &[u8; 32],
    ) -> Result<PinObject, KeyStoreError> {
        self.refuse_foreign_primary()?;
        let mut salt = [0u8; 16];
        rand::fill(&mut salt)
            .map_err(|_| KeyStoreError::Backend("random number generator failed".into()))?;
        let auth = pin_auth(&salt, pin_hash)?;
        let data = SensitiveData::try_from(secret.to_vec()).map_err(tpm_error("sensitive"))?;
        let template = templates::pin_object_template().map_err(tpm_error("template"))?;
        let created = self
            .tpm
            .create(template, Some(auth), Some(data))
            .map_err(tpm_error("Create (PIN object)"))?;
        Ok(PinObject {
            public: created
                .out_public
                .marshall()
                .map_err(tpm_error("marshal"))?,
            private: created.out_private.value().to_vec(),
            salt,
        })
    }
}

impl KeyStore for TpmKeyStore {
    fn info(&self) -> KeyStoreInfo {
        KeyStoreInfo {
            backend: "tpm",
            detail: format!("TPM 2.0, manufacturer {}", self.manufacturer),
        }
    }

    fn algorithms(&self) -> &'static [KeyAlgorithm] {
        self.algorithms
    }

    fn create_key(
        &mut self,
        algorithm: KeyAlgorithm,
        release: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError> {
        if !self.algorithms.contains(&algorithm) {
            return Err(KeyStoreError::UnsupportedAlgorithm(algorithm));
        }
        let template = ecdsa::template(algorithm)?;
        let (public, handle) = self.create_wrapped(template, HANDLE_VERSION, release)?;
        Ok(CreatedKey {
            handle,
            public_key: ecdsa::public_key(&public)?,
        })
    }

    fn sign(
        &mut self,
        handle: &KeyHandle,
        message: &[u8],
        release: Option<&KeyRelease>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        // The curve (and so the hash) is the key's, from its public area.
        let public = Self::handle_public(handle)?;
        let algorithm = ecdsa::algorithm_of(public)?;
        let digest = ecdsa::message_digest(algorithm, message)?;
        let scheme = ecdsa::signature_scheme(algorithm)?;
        let validation = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(tpm_error("ticket"))?;
        let signature = self.with_loaded(
            handle,
            release,
            ObjectKind::Signing,
            Encrypt::Neither,
            |ctx, key| ctx.sign(key, digest, scheme, validation),
        )?;
        match signature {
            Signature::EcDsa(sig) => Ok(der_signature(
                sig.signature_r().value(),
                sig.signature_s().value(),
            )),
            _ => Err(KeyStoreError::Backend(
                "TPM returned a non-ECDSA signature".into(),
            )),
        }
    }

    fn delete_key(&mut self, _handle: &KeyHandle) -> Result<(), KeyStoreError> {
        // Keys are transient: nothing persists in the TPM; the wrapped blob lives only in the
        // credential record, which the caller deletes.
        Ok(())
    }

    fn create_cred_random_with_uv(
        &mut self,
        release: Option<&KeyRelease>,
    ) -> Result<CredRandomWithUv, KeyStoreError> {
        let template = templates::hmac_key_template().map_err(tpm_error("template"))?;
        let (_, handle) = self.create_wrapped(template, HANDLE_VERSION_HMAC, release)?;
        Ok(CredRandomWithUv::InKeyStore(handle))
    }

    fn hmac_with_uv(
        &mut self,
        key: &CredRandomWithUv,
        salts: &[u8],
        release: Option<&KeyRelease>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        check_salts(salts)?;
        let handle = match key {
            // Credentials made before the TPM held hmac-secret keys (or in software).
            CredRandomWithUv::InRecord(secret) => {
                return hmac_secret_in_software(&secret.0, salts);
            }
            CredRandomWithUv::InKeyStore(handle) => handle,
        };
        let buffers = salts
            .chunks_exact(HMAC_SECRET_SALT_LEN)
            .map(|salt| MaxBuffer::try_from(salt.to_vec()).map_err(tpm_error("buffer")))
            .collect::<Result<Vec<_>, _>>()?;
        // One TPM2_HMAC per salt (and a Load unless the key is still loaded); salts in and
        // outputs out parameter-encrypted.
        let digests = self.with_loaded(
            handle,
            release,
            ObjectKind::Hmac,
            Encrypt::Both,
            |ctx, object| {
                buffers
                    .into_iter()
                    .map(|salt| ctx.hmac(object.into(), salt, HashingAlgorithm::Sha256))
                    .collect::<Result<Vec<_>, _>>()
            },
        )?;
        let mut outputs = Zeroizing::new(Vec::with_capacity(salts.len()));
        for digest in &digests {
            if digest.value().len() != HMAC_SECRET_SALT_LEN {
                return Err(KeyStoreError::Backend(
                    "TPM returned an HMAC of the wrong length".into(),
                ));
            }
            outputs.extend_from_slice(digest.value());
        }
        Ok(outputs)
    }

    fn requires_uv(&self) -> bool {
        self.release.pin.is_some()
    }

    fn manages_pin(&self) -> bool {
        true
    }

    fn set_pin(
        &mut self,
        pin_hash: &[u8],
        current: Option<&KeyRelease>,
    ) -> Result<(), KeyStoreError> {
        let secret = match (current, &self.release.open) {
            (Some(release), _) => Zeroizing::new(*release.secret()),
            (None, Some(open)) => open.clone(),
            (None, None) => return Err(KeyStoreError::UserVerificationRequired),
        };
        let object = self.seal_for_pin(pin_hash, &secret)?;
        let mut next = self.release.clone();
        next.pin = Some(object);
        next.open = None;
        next.biometric = self.biometric_release.then(|| secret.clone());
        let previous = std::mem::replace(&mut self.release, next);
        if let Err(e) = self.save_release() {
            self.release = previous;
            return Err(e);
        }
        Ok(())
    }

    fn verify_pin(&mut self, pin_hash: &[u8]) -> Result<KeyRelease, PinCheckError> {
        let secret = self.unseal_with_pin(pin_hash)?;
        if self.biometric_release && self.release.biometric.is_none() {
            // A biometric verifier was configured after the PIN was set: from now on it may
            // release the keys too (daemon-enforced, documented).
            self.release.biometric = Some(secret.clone());
            self.save_release()
                .map_err(|e| PinCheckError::Backend(e.to_string()))?;
        }
        Ok(KeyRelease::from_secret(secret))
    }

    fn release_for(&mut self, verified: Option<&UserVerified>) -> Option<KeyRelease> {
        if let Some(open) = &self.release.open {
            return Some(KeyRelease::from_secret(open.clone()));
        }
        match verified.map(UserVerified::method) {
            Some(VerificationMethod::Biometric(_)) if self.biometric_release => {
                self.release.biometric.clone().map(KeyRelease::from_secret)
            }
            _ => None,
        }
    }

    fn can_attest(&self) -> bool {
        self.attestation_ready()
    }

    fn attest(
        &mut self,
        handle: &KeyHandle,
        to_be_signed: &[u8],
        release: Option<&KeyRelease>,
    ) -> Result<Option<KeyAttestation>, KeyStoreError> {
        self.certify_key(handle, to_be_signed, release)
    }

    fn reset(&mut self) -> Result<(), KeyStoreError> {
        // A new release key: handles made before the reset no longer decrypt, whatever
        // happened to the credential records.
        self.release = ReleaseState {
            open: Some(random_secret()?),
            primary_name: self.tpm.primary_name(),
            ..ReleaseState::default()
        };
        // A fresh start on this TPM: its primary is the one from now on.
        self.foreign_primary = false;
        self.save_release()
    }
}
