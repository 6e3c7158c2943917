//! Identity Vault's `VaultErrorCodes`, and what each failed verification means for a vault.

use passgate_platform_api::user_verifier::VerifierErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::AuthMode;
use crate::verify::{Failure, PlanError};

/// Identity Vault's `VaultErrorCodes` (3.0's set), plus `BiometricsLockedOut` (an extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaultErrorCode {
    /// Anything else.
    Unknown,
    /// The user was not recognised (a wrong finger, PIN or app passcode); counted.
    AuthFailed,
    /// Biometrics are not available or not enrolled, and the mode needs them.
    BiometricsNotEnabled,
    /// Biometrics are locked out after too many failures (the PIN unlocks them). An
    /// extension: Identity Vault 3.0 has no such code.
    BiometricsLockedOut,
    /// An argument is invalid.
    InvalidArguments,
    /// The auth mode is not one of [`AuthMode`].
    InvalidAuthMode,
    /// The credential was invalidated by a biometric enrollment change.
    InvalidatedCredential,
    /// The vault's key (its credential) is no longer on the authenticator.
    KeyNotFound,
    /// A new passcode and its confirmation differ.
    MismatchedPasscode,
    /// The mode needs a passcode and none is set: an app passcode (`setPasscode`) for a
    /// vault with a custom passcode, the authenticator PIN otherwise.
    MissingPasscode,
    /// A passcode unlock was asked of a vault whose mode does not allow it.
    PasscodeNotEnabled,
    /// The authenticator cannot provide the verification the mode needs.
    SecurityNotAvailable,
    /// Too many failed unlocks: the vault was cleared.
    TooManyFailedAttempts,
    /// The user cancelled (or did not answer).
    UserCanceledInteraction,
    /// The vault is locked: unlock it first.
    VaultLocked,
    /// The vault's files cannot be used: unreadable, damaged, or an older copy put back over
    /// the current one.
    VaultUnavailable,
}

/// A failed vault operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct VaultError {
    /// The code.
    pub code: VaultErrorCode,
    /// What happened.
    pub message: String,
}

impl VaultError {
    pub(crate) fn new(code: VaultErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn io(e: &std::io::Error) -> Self {
        Self::new(
            VaultErrorCode::VaultUnavailable,
            format!("the vault file could not be written or read: {e}"),
        )
    }

    pub(crate) fn locked() -> Self {
        Self::new(
            VaultErrorCode::VaultLocked,
            "the vault is locked: unlock it first",
        )
    }

    /// `{"code": "VaultLocked", "message": "..."}`.
    pub fn to_json(&self) -> Json {
        json!({ "code": self.code, "message": self.message })
    }
}

pub(crate) fn plan_error(e: PlanError, mode: AuthMode) -> VaultError {
    match e {
        PlanError::Biometry(
            VerifierErrorCode::BiometryNotAvailable | VerifierErrorCode::BiometryNotEnrolled,
        ) => VaultError::new(
            VaultErrorCode::BiometricsNotEnabled,
            format!(
                "{} needs a fingerprint, and none can be verified on this device",
                mode.name()
            ),
        ),
        PlanError::Biometry(VerifierErrorCode::BiometryLockout) => VaultError::new(
            VaultErrorCode::BiometricsLockedOut,
            "fingerprint verification is locked out; the authenticator PIN unlocks it",
        ),
        PlanError::Biometry(code) => VaultError::new(
            VaultErrorCode::Unknown,
            format!("biometrics: {}", crate::biometric::error_code_name(code)),
        ),
        PlanError::PasscodeNotSet => VaultError::new(
            VaultErrorCode::MissingPasscode,
            "the authenticator has no PIN: set one first",
        ),
        PlanError::PasscodeCancelled => VaultError::new(
            VaultErrorCode::UserCanceledInteraction,
            "the PIN prompt was cancelled",
        ),
        e @ PlanError::PasscodeWrong { .. } => {
            VaultError::new(VaultErrorCode::AuthFailed, e.to_string())
        }
        PlanError::PasscodeBlocked => VaultError::new(
            VaultErrorCode::AuthFailed,
            "the authenticator PIN is blocked",
        ),
        PlanError::Device(e) => VaultError::new(VaultErrorCode::Unknown, e.to_string()),
    }
}

pub(crate) fn failure_error(failure: Failure, mode: AuthMode, detail: &str) -> VaultError {
    let (code, message) = match failure {
        Failure::NotRecognised => (VaultErrorCode::AuthFailed, "the user was not recognised"),
        Failure::LockedOut => (
            VaultErrorCode::BiometricsLockedOut,
            "fingerprint verification is locked out; the authenticator PIN unlocks it",
        ),
        Failure::Cancelled | Failure::Denied | Failure::TimedOut => (
            VaultErrorCode::UserCanceledInteraction,
            "the verification was cancelled, declined or not answered",
        ),
        Failure::Unavailable => (
            VaultErrorCode::BiometricsNotEnabled,
            "the authenticator cannot verify with biometrics now",
        ),
        Failure::Invalidated => (
            VaultErrorCode::InvalidatedCredential,
            "the enrolled fingerprints changed: this vault's key was invalidated; clear it and sign in again",
        ),
        Failure::CredentialMissing => (
            VaultErrorCode::KeyNotFound,
            "the vault's key is no longer on the authenticator (reset or deleted)",
        ),
        Failure::PasscodeRequired => (
            VaultErrorCode::SecurityNotAvailable,
            if mode.allows_passcode() {
                "the authenticator needs its PIN"
            } else {
                "the authenticator needs its PIN, which this vault's auth mode does not allow"
            },
        ),
        Failure::Other => (VaultErrorCode::Unknown, "the authenticator failed"),
    };
    if detail.is_empty() || failure != Failure::Other {
        VaultError::new(code, message)
    } else {
        VaultError::new(code, format!("{message}: {detail}"))
    }
}
