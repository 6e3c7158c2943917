//! A stand-in fingerprint verifier for tests and benches of the parts around verification (the
//! TPM key store, the getAssertion path): the real fprintd and the PIN path are exercised by the
//! python interop tests in ctap-tests/python.

use passgate_authenticator::api::user_verifier::{
    BiometryType, Interaction, Prompt, UserActionError, UserVerified, UserVerifier,
    VerificationMethod, VerifierStatus,
};

/// A verifier whose every presence check passes and every scan matches (biometric UV), so a
/// ceremony takes the user-verified path without waiting for anyone.
#[derive(Debug, Clone, Copy, Default)]
pub struct EveryScanMatches;

impl UserVerifier for EveryScanMatches {
    fn status(&self) -> VerifierStatus {
        VerifierStatus {
            available: true,
            biometry: BiometryType::Fingerprint,
            enrolled: true,
            error: None,
        }
    }

    fn check_presence(&mut self, _: &Prompt<'_>, _: &Interaction) -> Result<(), UserActionError> {
        Ok(())
    }

    fn verify_user(
        &mut self,
        _: &Prompt<'_>,
        _: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        Ok(UserVerified::by(VerificationMethod::Biometric(
            BiometryType::Fingerprint,
        )))
    }
}
