//! The release key's state (see the module documentation of [`super`]) and the secrets
//! derived from it: the wrapping key of key authValues, the PIN object's authValue.

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use aws_lc_rs::{hmac, rand};
use ciborium::value::Value;
use tss_esapi::structures::Auth;
use zeroize::Zeroizing;

use super::tpm_error;
use crate::api::key_store::{KeyRelease, KeyStoreError};
use crate::ctap::cbor::{self, ValueExt};

/// The TPM PIN object: a sealed-data object holding the release key under a PIN-derived
/// authorization value.
#[derive(Clone)]
pub(crate) struct PinObject {
    pub(crate) public: Vec<u8>,
    pub(crate) private: Vec<u8>,
    /// Salt of the PIN-to-authValue derivation (random per PIN).
    pub(crate) salt: [u8; 16],
}

/// Where the release key is kept; see the module documentation.
#[derive(Clone, Default)]
pub(crate) struct ReleaseState {
    /// Usable without verification: only while no PIN is set.
    pub(crate) open: Option<Zeroizing<[u8; 32]>>,
    /// Usable after a biometric match reported by the verifier (daemon-enforced).
    pub(crate) biometric: Option<Zeroizing<[u8; 32]>>,
    /// The TPM PIN object, once a PIN is set.
    pub(crate) pin: Option<PinObject>,
    /// The TPM name of the storage primary this state was made with, pinned at first use:
    /// a different key answering for the primary (a bus interposer substituting the session's
    /// salt key, or another TPM) is noticed.
    pub(crate) primary_name: Option<Vec<u8>>,
}

impl ReleaseState {
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let secret = |k: &Option<Zeroizing<[u8; 32]>>| k.as_ref().map(|k| Value::Bytes(k.to_vec()));
        Zeroizing::new(cbor::encode(&cbor::int_map([
            (1, secret(&self.open)),
            (2, secret(&self.biometric)),
            (3, self.pin.as_ref().map(|p| Value::Bytes(p.public.clone()))),
            (
                4,
                self.pin.as_ref().map(|p| Value::Bytes(p.private.clone())),
            ),
            (5, self.pin.as_ref().map(|p| Value::Bytes(p.salt.to_vec()))),
            (6, self.primary_name.clone().map(Value::Bytes)),
        ])))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut p = cbor::Params::parse(bytes).ok()?;
        let secret = |v: Option<Value>| -> Option<Option<Zeroizing<[u8; 32]>>> {
            match v {
                None => Some(None),
                Some(v) => {
                    let bytes = Zeroizing::new(v.ctap_bytes().ok()?);
                    let mut out = Zeroizing::new([0u8; 32]);
                    if bytes.len() != 32 {
                        return None;
                    }
                    out.copy_from_slice(&bytes);
                    Some(Some(out))
                }
            }
        };
        let open = secret(p.take(1))?;
        let biometric = secret(p.take(2))?;
        let pin = match (p.take(3), p.take(4), p.take(5)) {
            (None, None, None) => None,
            (Some(public), Some(private), Some(salt)) => Some(PinObject {
                public: public.ctap_bytes().ok()?,
                private: private.ctap_bytes().ok()?,
                salt: salt.ctap_bytes().ok()?.try_into().ok()?,
            }),
            _ => return None,
        };
        let primary_name = match p.take(6) {
            None => None,
            Some(name) => Some(name.ctap_bytes().ok()?),
        };
        Some(Self {
            open,
            biometric,
            pin,
            primary_name,
        })
    }
}

pub(crate) fn random_secret() -> Result<Zeroizing<[u8; 32]>, KeyStoreError> {
    let mut out = Zeroizing::new([0u8; 32]);
    rand::fill(out.as_mut())
        .map_err(|_| KeyStoreError::Backend("random number generator failed".into()))?;
    Ok(out)
}

/// The AES-256-GCM key that encrypts key authorization values, from the release key.
pub(crate) fn auth_wrapping_key(release: &KeyRelease) -> Result<LessSafeKey, KeyStoreError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, release.secret());
    let derived = Zeroizing::new(
        hmac::sign(&key, b"passgate tpm: key authorization wrapping v1")
            .as_ref()
            .to_vec(),
    );
    UnboundKey::new(&AES_256_GCM, &derived)
        .map(LessSafeKey::new)
        .map_err(|_| KeyStoreError::Backend("invalid wrapping key".into()))
}

/// The PIN object's authorization value: HMAC-SHA256 keyed by the per-PIN salt over the PIN
/// hash. No stretching: guesses can only be checked by the TPM, which counts them.
pub(crate) fn pin_auth(salt: &[u8; 16], pin_hash: &[u8]) -> Result<Auth, KeyStoreError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"passgate tpm: PIN object authorization v1");
    ctx.update(pin_hash);
    Auth::try_from(ctx.sign().as_ref().to_vec()).map_err(tpm_error("auth"))
}
