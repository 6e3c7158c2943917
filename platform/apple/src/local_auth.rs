//! [`LocalAuthVerifier`]: user presence and verification through LocalAuthentication (Touch ID,
//! Face ID, Optic ID, or the device passcode), macOS and iOS.
//!
//! Each call uses a fresh `LAContext` (contexts are not thread-safe, and a fresh one never
//! reuses an earlier match). The system shows its own prompt with the cleaned reason; passgate
//! only learns whether LocalAuthentication verified the person, and maps every failure to the
//! app-facing codes of [`crate::la_error`].

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use block2::RcBlock;
use objc2::rc::Retained;
use objc2::runtime::Bool;
use objc2_foundation::{NSError, NSString};
use objc2_local_authentication::{LAContext, LAPolicy};
use passgate_platform_api::prompt_text::prompt_reason;
use passgate_platform_api::user_verifier::{
    BiometryType, Interaction, KeepaliveStatus, Prompt, UserActionError, UserVerified,
    UserVerifier, VerificationMethod, VerifierStatus,
};

use crate::{biometric_set, la_error};

/// How often a waiting evaluation looks for CTAPHID_CANCEL.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// The app API's prompt options (Tauri's `AuthOptions` and Identity Vault's equivalents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalAuthOptions {
    /// `localizedCancelTitle`: the cancel button's title.
    pub cancel_title: Option<String>,
    /// `localizedFallbackTitle`: the fallback button's title; an empty string hides it.
    pub fallback_title: Option<String>,
    /// Whether the device passcode may stand in for biometry (`deviceOwnerAuthentication`);
    /// otherwise biometry only (`deviceOwnerAuthenticationWithBiometrics`).
    pub allow_device_credential: bool,
}

/// A user verifier on LocalAuthentication.
#[derive(Debug, Clone, Default)]
pub struct LocalAuthVerifier {
    options: LocalAuthOptions,
}

fn nsinteger(value: isize) -> i64 {
    i64::try_from(value).unwrap_or(la_error::AUTHENTICATION_FAILED)
}

impl LocalAuthVerifier {
    /// A verifier with the app's prompt options.
    pub fn new(options: LocalAuthOptions) -> Self {
        Self { options }
    }

    fn policy(&self) -> LAPolicy {
        if self.options.allow_device_credential {
            LAPolicy::DeviceOwnerAuthentication
        } else {
            LAPolicy::DeviceOwnerAuthenticationWithBiometrics
        }
    }

    fn context(&self) -> Retained<LAContext> {
        // SAFETY: `+[LAContext new]` has no preconditions; the context stays on this thread.
        let context = unsafe { LAContext::new() };
        if let Some(title) = &self.options.cancel_title {
            let title = NSString::from_str(title);
            // SAFETY: a valid NSString for a property LocalAuthentication copies.
            unsafe { context.setLocalizedCancelTitle(Some(&title)) };
        }
        if let Some(title) = &self.options.fallback_title {
            let title = NSString::from_str(title);
            // SAFETY: as above.
            unsafe { context.setLocalizedFallbackTitle(Some(&title)) };
        }
        context
    }

    fn biometry_of(context: &LAContext) -> BiometryType {
        // SAFETY: a property read; valid after canEvaluatePolicy, `None` before.
        la_error::biometry_type(nsinteger(unsafe { context.biometryType() }.0))
    }

    /// Runs `evaluatePolicy` and waits for its reply, invalidating the context when the client
    /// cancels (which makes LocalAuthentication dismiss its prompt and reply).
    fn evaluate(
        &self,
        context: &LAContext,
        policy: LAPolicy,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        let reason = NSString::from_str(&prompt_reason(prompt));
        let (sender, replies) = mpsc::channel::<Result<(), i64>>();
        let reply = RcBlock::new(move |success: Bool, error: *mut NSError| {
            let outcome = if success.as_bool() {
                Ok(())
            } else {
                // SAFETY: LocalAuthentication passes a valid NSError, or null, that lives for
                // the duration of the reply.
                let code = unsafe { error.as_ref() }
                    .map_or(la_error::AUTHENTICATION_FAILED, |e| nsinteger(e.code()));
                Err(code)
            };
            // The receiver is gone only when the waiting call already returned.
            let _ = sender.send(outcome);
        });
        interaction.set_status(KeepaliveStatus::UpNeeded);
        // SAFETY: valid context, policy, reason and a block that is 'static and thread-safe to
        // call (it only sends on a channel), as evaluatePolicy calls it on another queue.
        unsafe { context.evaluatePolicy_localizedReason_reply(policy, &reason, &reply) };
        let mut cancelled = false;
        let outcome = loop {
            match replies.recv_timeout(CANCEL_POLL) {
                Ok(outcome) => break outcome,
                Err(RecvTimeoutError::Timeout) => {
                    if interaction.is_cancelled() && !cancelled {
                        cancelled = true;
                        // SAFETY: invalidating a context with a pending evaluation is how
                        // LocalAuthentication is told to cancel it; it then replies.
                        unsafe { context.invalidate() };
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break Err(la_error::SYSTEM_CANCEL),
            }
        };
        interaction.set_status(KeepaliveStatus::Processing);
        outcome.map_err(|code| la_error::user_action_error(code, cancelled))
    }
}

impl UserVerifier for LocalAuthVerifier {
    fn status(&self) -> VerifierStatus {
        let context = self.context();
        // SAFETY: valid context and policy.
        let biometrics = unsafe {
            context.canEvaluatePolicy_error(LAPolicy::DeviceOwnerAuthenticationWithBiometrics)
        };
        let biometry = Self::biometry_of(&context);
        match biometrics {
            Ok(()) => VerifierStatus {
                available: true,
                biometry,
                enrolled: true,
                error: None,
            },
            Err(error) => {
                let code = la_error::verifier_error_code(nsinteger(error.code()));
                // SAFETY: valid context and policy.
                let passcode = self.options.allow_device_credential
                    && unsafe {
                        context.canEvaluatePolicy_error(LAPolicy::DeviceOwnerAuthentication)
                    }
                    .is_ok();
                VerifierStatus {
                    available: passcode,
                    biometry,
                    enrolled: passcode,
                    error: (!passcode).then_some(code),
                }
            }
        }
    }

    fn check_presence(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        // LocalAuthentication has no bare "touch" prompt: presence is a verification the
        // person completes deliberately, by biometry or passcode.
        let context = self.context();
        self.evaluate(
            &context,
            LAPolicy::DeviceOwnerAuthentication,
            prompt,
            interaction,
        )
    }

    fn verify_user(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        let context = self.context();
        let policy = self.policy();
        self.evaluate(&context, policy, prompt, interaction)?;
        // With the passcode allowed LocalAuthentication does not say which was used: claim
        // only the passcode then.
        let method = if self.options.allow_device_credential {
            VerificationMethod::Pin
        } else {
            VerificationMethod::Biometric(Self::biometry_of(&context))
        };
        Ok(UserVerified::by(method))
    }

    fn enrollment_state(&self) -> Option<[u8; 32]> {
        let context = self.context();
        // SAFETY: valid context and policy.
        unsafe {
            context.canEvaluatePolicy_error(LAPolicy::DeviceOwnerAuthenticationWithBiometrics)
        }
        .ok()?;
        // `domainState` replaces it from macOS 15 / iOS 18 only; this one works on every
        // supported version and changes with the enrollment as well.
        #[allow(deprecated)]
        // SAFETY: a property read after canEvaluatePolicy, as the documentation requires.
        let state = unsafe { context.evaluatedPolicyDomainState() }?;
        biometric_set::enrollment_state(Some(&state.to_vec()))
    }
}
