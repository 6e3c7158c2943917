//! [`HelloVerifier`]: user presence and verification through Windows Hello
//! (`Windows.Security.Credentials.UI.UserConsentVerifier`), Windows.
//!
//! Windows shows its own prompt (face, fingerprint or the Hello PIN) with the cleaned reason;
//! passgate learns only the result, mapped by [`crate::hello_error`]. Windows does not say
//! which factor was used, nor whether a fingerprint or a face sensor is present.

use std::time::Duration;

use passgate_platform_api::prompt_text::prompt_reason;
use passgate_platform_api::user_verifier::{
    BiometryType, Interaction, KeepaliveStatus, Prompt, UserActionError, UserVerified,
    UserVerifier, VerificationMethod, VerifierErrorCode, VerifierStatus,
};
use windows::Security::Credentials::UI::UserConsentVerifier;
use windows::core::HSTRING;
use windows_future::AsyncStatus;

use crate::hello_error;

/// How often a waiting verification looks for CTAPHID_CANCEL.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// A user verifier on Windows Hello.
#[derive(Debug, Clone, Default)]
pub struct HelloVerifier;

impl HelloVerifier {
    /// A verifier on the current user's Windows Hello.
    pub fn new() -> Self {
        Self
    }

    fn request(
        &self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        let message = HSTRING::from(prompt_reason(prompt));
        let unavailable = |_| UserActionError::Unavailable(VerifierErrorCode::BiometryNotAvailable);
        let operation =
            UserConsentVerifier::RequestVerificationAsync(&message).map_err(unavailable)?;
        interaction.set_status(KeepaliveStatus::UpNeeded);
        let mut cancelled = false;
        let outcome = loop {
            match operation.Status() {
                Ok(AsyncStatus::Started) => {
                    if interaction.is_cancelled() && !cancelled {
                        cancelled = true;
                        // Dismisses Windows' prompt; the operation then ends as canceled.
                        let _ = operation.Cancel();
                    }
                    std::thread::sleep(CANCEL_POLL);
                }
                Ok(AsyncStatus::Completed) => {
                    break match operation.GetResults() {
                        Ok(result) => hello_error::verification_outcome(result.0, cancelled),
                        Err(_) => Err(UserActionError::Failed),
                    };
                }
                Ok(AsyncStatus::Canceled) => break Err(UserActionError::Cancelled),
                _ => break Err(UserActionError::Failed),
            }
        };
        interaction.set_status(KeepaliveStatus::Processing);
        outcome
    }
}

impl UserVerifier for HelloVerifier {
    fn status(&self) -> VerifierStatus {
        let availability = UserConsentVerifier::CheckAvailabilityAsync()
            .and_then(|operation| operation.join())
            .map(|availability| availability.0)
            .unwrap_or(hello_error::DEVICE_NOT_PRESENT);
        let error = hello_error::availability_error(availability);
        VerifierStatus {
            available: error.is_none(),
            // UserConsentVerifier does not say whether Hello uses a face, a fingerprint or
            // only its PIN: no sensor type is claimed.
            biometry: BiometryType::None,
            enrolled: error.is_none(),
            error,
        }
    }

    fn check_presence(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        // Windows Hello has no bare "touch": presence is a Hello gesture the person completes.
        self.request(prompt, interaction)
    }

    fn verify_user(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        self.request(prompt, interaction)?;
        // Windows does not say whether a biometric or the Hello PIN was used: claim only the PIN.
        Ok(UserVerified::by(VerificationMethod::Pin))
    }
}
