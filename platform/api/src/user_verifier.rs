//! How the authenticator asks a person for presence (a deliberate act) and verification (who
//! they are: fingerprint, face, PIN).
//!
//! Verification is a typed state: the UV flag in authenticator data can only be set from a
//! [`UserVerified`] value, which a verifier returns only after it really verified someone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// What kind of biometric sensor a verifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiometryType {
    /// No biometric sensor.
    None,
    /// A fingerprint reader.
    Fingerprint,
    /// A face sensor.
    Face,
    /// An iris scanner.
    Iris,
}

/// Error codes that mobile biometric APIs use, so apps can map them one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifierErrorCode {
    /// No sensor is present or reachable.
    BiometryNotAvailable,
    /// A sensor exists but nothing is enrolled.
    BiometryNotEnrolled,
    /// Too many failed attempts.
    BiometryLockout,
    /// The user cancelled.
    UserCancel,
    /// The system cancelled (e.g. another request took over).
    SystemCancel,
    /// The user was not recognised.
    AuthenticationFailed,
    /// No device passcode/PIN is set.
    PasscodeNotSet,
    /// The user chose the fallback (PIN).
    UserFallback,
    /// The application cancelled.
    AppCancel,
    /// The request was not valid.
    InvalidContext,
    /// No interaction is possible (no terminal, no display).
    NotInteractive,
}

impl VerifierErrorCode {
    /// The name mobile biometric APIs use for this code (LAError / BiometricPrompt style,
    /// camelCase), e.g. `biometryNotEnrolled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BiometryNotAvailable => "biometryNotAvailable",
            Self::BiometryNotEnrolled => "biometryNotEnrolled",
            Self::BiometryLockout => "biometryLockout",
            Self::UserCancel => "userCancel",
            Self::SystemCancel => "systemCancel",
            Self::AuthenticationFailed => "authenticationFailed",
            Self::PasscodeNotSet => "passcodeNotSet",
            Self::UserFallback => "userFallback",
            Self::AppCancel => "appCancel",
            Self::InvalidContext => "invalidContext",
            Self::NotInteractive => "notInteractive",
        }
    }
}

impl BiometryType {
    /// The name app-facing biometric APIs use (`None`, `Fingerprint`, `FaceID`, `Iris`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Fingerprint => "Fingerprint",
            Self::Face => "FaceID",
            Self::Iris => "Iris",
        }
    }
}

/// A verifier's current capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierStatus {
    /// Whether user verification can be performed now.
    pub available: bool,
    /// The biometric sensor type, if any.
    pub biometry: BiometryType,
    /// Whether at least one biometric template (or a PIN) is enrolled.
    pub enrolled: bool,
    /// Why verification is not available, if it is not.
    pub error: Option<VerifierErrorCode>,
}

/// What the person is being asked to approve; shown in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptAction {
    /// Create a passkey.
    Register,
    /// Sign in with a passkey.
    SignIn,
    /// Erase every credential.
    Reset,
    /// Pick this authenticator among several.
    Select,
}

/// The request shown to the person.
#[derive(Debug, Clone)]
pub struct Prompt<'a> {
    /// What is being approved.
    pub action: PromptAction,
    /// The relying party, when there is one.
    pub rp_id: Option<&'a str>,
    /// The account name, when known.
    pub user_name: Option<&'a str>,
}

/// Why a person-facing step did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserActionError {
    /// The person declined.
    #[error("the user denied the request")]
    Denied,
    /// The client cancelled (CTAPHID_CANCEL).
    #[error("the request was cancelled")]
    Cancelled,
    /// Nobody answered in time.
    #[error("the user did not respond in time")]
    Timeout,
    /// This verifier cannot perform the step.
    #[error("user verification is not available ({0:?})")]
    Unavailable(VerifierErrorCode),
    /// Too many failed attempts: locked out.
    #[error("user verification is locked out")]
    Lockout,
    /// The person was not recognised.
    #[error("user verification failed")]
    Failed,
}

/// Proof that a person was verified. Only verifiers construct it, and the UV flag is set only
/// from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserVerified {
    method: VerificationMethod,
}

/// How a person was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationMethod {
    /// A biometric match.
    Biometric(BiometryType),
    /// A PIN or passcode.
    Pin,
}

impl UserVerified {
    /// Records a successful verification. Call only after a real check succeeded.
    pub fn by(method: VerificationMethod) -> Self {
        Self { method }
    }

    /// How the person was verified.
    pub fn method(&self) -> VerificationMethod {
        self.method
    }
}

/// CTAPHID keepalive status codes a handler reports while it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KeepaliveStatus {
    /// The authenticator is working.
    Processing = 1,
    /// The authenticator waits for the person.
    UpNeeded = 2,
}

impl KeepaliveStatus {
    /// The status byte sent in a CTAPHID KEEPALIVE packet.
    pub fn code(self) -> u8 {
        match self {
            Self::Processing => 1,
            Self::UpNeeded => 2,
        }
    }
}

/// Shared between a transport and a running request: lets the transport cancel the request and
/// learn whether it is waiting for the person (for CTAPHID KEEPALIVE).
#[derive(Debug, Clone)]
pub struct Interaction {
    cancelled: Arc<AtomicBool>,
    status: Arc<AtomicU8>,
}

impl Default for Interaction {
    fn default() -> Self {
        Self::new()
    }
}

impl Interaction {
    /// A fresh, uncancelled interaction.
    pub fn new() -> Self {
        Self {
            cancelled: Arc::new(AtomicBool::new(false)),
            status: Arc::new(AtomicU8::new(KeepaliveStatus::Processing.code())),
        }
    }

    /// Asks the running request to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the request was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Reports what the request is doing.
    pub fn set_status(&self, status: KeepaliveStatus) {
        self.status.store(status.code(), Ordering::SeqCst);
    }

    /// What the request is doing now.
    pub fn status(&self) -> KeepaliveStatus {
        if self.status.load(Ordering::SeqCst) == KeepaliveStatus::UpNeeded.code() {
            KeepaliveStatus::UpNeeded
        } else {
            KeepaliveStatus::Processing
        }
    }
}

/// Asks a person for presence and verification.
pub trait UserVerifier: Send {
    /// What this verifier can do now.
    fn status(&self) -> VerifierStatus;

    /// Asks for a deliberate act of presence (a touch, a key press). Must honour
    /// `interaction.is_cancelled()` promptly and report [`KeepaliveStatus::UpNeeded`] while
    /// waiting.
    fn check_presence(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError>;

    /// Verifies who the person is. A successful verification implies presence.
    fn verify_user(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<UserVerified, UserActionError>;

    /// The enrolled template (for fprintd, the finger's name, e.g. `right-index-finger`) that
    /// matched in the last successful biometric verification, when the sensor says which:
    /// `None` before any match, after a failed one, or when the verifier cannot tell (fprintd
    /// identifying among several fingers names none).
    fn matched_template(&self) -> Option<String> {
        None
    }

    /// A fingerprint of the current biometric enrollment (changes when templates are
    /// enrolled or deleted), for credentials bound to the "current biometric set".
    /// `None` when the verifier has no biometric enrollment.
    fn enrollment_state(&self) -> Option<[u8; 32]> {
        None
    }

    /// Fingerprint enrollment over CTAP (authenticatorBioEnrollment), for a verifier that owns
    /// a fingerprint sensor and can enroll on it; `None` otherwise.
    fn bio_enrollment(&mut self) -> Option<&mut dyn super::bio_enrollment::BioEnrollment> {
        None
    }
}

/// Whether a credential bound to a biometric set (`bound_to`, the enrollment state recorded at
/// creation) may be used with the verifier's current enrollment state (`current`). Unbound
/// credentials always may; bound ones only while the enrollment is the same, so enrolling or
/// removing a finger or face invalidates them, and so does a verifier that no longer reports
/// an enrollment at all.
pub fn biometric_set_allows(bound_to: Option<&[u8; 32]>, current: Option<&[u8; 32]>) -> bool {
    match bound_to {
        None => true,
        Some(bound) => current == Some(bound),
    }
}

/// The status of a platform with no user-verification method (presence only).
pub fn no_verification_status() -> VerifierStatus {
    VerifierStatus {
        available: false,
        biometry: BiometryType::None,
        enrolled: false,
        error: Some(VerifierErrorCode::BiometryNotAvailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_missing_enrollment_invalidates_bound_credentials_only() {
        let at_creation = [1u8; 32];
        let changed = [2u8; 32];
        assert!(biometric_set_allows(None, None));
        assert!(biometric_set_allows(None, Some(&changed)));
        assert!(biometric_set_allows(Some(&at_creation), Some(&at_creation)));
        assert!(!biometric_set_allows(Some(&at_creation), Some(&changed)));
        assert!(!biometric_set_allows(Some(&at_creation), None));
    }
}
