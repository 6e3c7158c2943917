//! [`FprintdVerifier`]: fingerprint user verification through the fprintd daemon (D-Bus,
//! `net.reactivated.Fprint`), with terminal presence for the deliberate-act step.
//!
//! Verification claims the default sensor, starts a verify for any enrolled finger, and
//! waits for `VerifyStatus` with a timeout, honouring CTAPHID cancellation (VerifyStop).
//! `VerifyFingerSelected` says which finger fprintd checks: on a sensor that cannot identify,
//! "any" means the first enrolled finger, which fprintd names; on one that identifies, it says
//! "any" and never which finger matched, so the match is named only when one finger is
//! enrolled ([`FprintdVerifier::matched_template`]). Each
//! fprintd result maps to one outcome: `verify-match` proves the user; `verify-no-match`
//! is a failed attempt; the retry results (`verify-retry-scan`, `verify-swipe-too-short`,
//! `verify-finger-not-centered`, `verify-remove-and-retry`) ask for another touch within the
//! same attempt; `verify-disconnected` and `verify-unknown-error` mean the sensor is gone.

use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::OwnedObjectPath;

use crate::api::user_verifier::{
    BiometryType, Interaction, KeepaliveStatus, Prompt, UserActionError, UserVerified,
    UserVerifier, VerificationMethod, VerifierErrorCode, VerifierStatus,
};

pub(crate) const SERVICE: &str = "net.reactivated.Fprint";
pub(crate) const MANAGER_PATH: &str = "/net/reactivated/Fprint/Manager";
pub(crate) const MANAGER: &str = "net.reactivated.Fprint.Manager";
pub(crate) const DEVICE: &str = "net.reactivated.Fprint.Device";

/// What one fprintd `VerifyStatus` result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOutcome {
    /// The finger matched an enrolled print.
    Match,
    /// The finger did not match.
    NoMatch,
    /// The scan was unusable; the person should touch again.
    Retry,
    /// The sensor went away.
    Disconnected,
    /// fprintd reported an unknown error.
    Error,
}

/// Maps an fprintd verify result string.
pub fn scan_outcome(result: &str) -> ScanOutcome {
    match result {
        "verify-match" => ScanOutcome::Match,
        "verify-no-match" => ScanOutcome::NoMatch,
        "verify-retry-scan"
        | "verify-swipe-too-short"
        | "verify-finger-not-centered"
        | "verify-remove-and-retry" => ScanOutcome::Retry,
        "verify-disconnected" => ScanOutcome::Disconnected,
        _ => ScanOutcome::Error,
    }
}

/// Fingerprint verification through fprintd on the system bus.
pub struct FprintdVerifier {
    connection: Option<Connection>,
    username: String,
    timeout: Duration,
    presence: Box<dyn UserVerifier>,
    /// Whether a matching finger also answers presence checks ([`Self::with_finger_presence`]).
    finger_presence: bool,
    /// The enrollment running over authenticatorBioEnrollment, if any (see `fprintd_enroll`).
    pub(crate) enrolling: Option<crate::fprintd_enroll::EnrollSession>,
    /// The finger that matched in the last verification, when fprintd said which.
    matched: std::sync::Mutex<Option<String>>,
}

/// What fprintd's device signals said during one verification.
enum VerifySignal {
    /// `VerifyFingerSelected`: the finger checked (or "any" when the sensor identifies).
    FingerSelected(String),
    /// `VerifyStatus`: a result, and whether the verification is over.
    Status(String, bool),
}

/// The finger a match was for: the one fprintd selected, or (when it selected "any", as it
/// does on a sensor that identifies) the only enrolled finger; `None` when fprintd does not
/// say which of several fingers matched.
pub fn matched_finger(selected: Option<&str>, enrolled: &[String]) -> Option<String> {
    match selected {
        Some(finger) if finger != "any" => Some(finger.to_owned()),
        _ => match enrolled {
            [only] => Some(only.clone()),
            _ => None,
        },
    }
}

impl std::fmt::Debug for FprintdVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FprintdVerifier")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl FprintdVerifier {
    /// Connects to the system bus (`$DBUS_SYSTEM_BUS_ADDRESS` or the default). `username`
    /// is whose enrolled fingers count; `presence` collects the deliberate act.
    pub fn new(username: &str, timeout: Duration, presence: Box<dyn UserVerifier>) -> Self {
        let connection = Connection::system()
            .map_err(|e| tracing::warn!(error = %e, "no system bus: fingerprint verification unavailable"))
            .ok();
        Self {
            connection,
            username: username.to_owned(),
            timeout,
            presence,
            finger_presence: false,
            enrolling: None,
            matched: std::sync::Mutex::new(None),
        }
    }

    /// The finger is the presence too, as on a security key with a fingerprint sensor: a
    /// presence check asks for a matching finger (a finger that does not match is a denial).
    /// While the sensor cannot scan (none, no finger enrolled, fprintd gone), `presence`
    /// asks instead.
    pub fn with_finger_presence(mut self) -> Self {
        self.finger_presence = true;
        self
    }

    pub(crate) fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    pub(crate) fn username(&self) -> &str {
        &self.username
    }

    fn device(&self) -> Result<Proxy<'_>, VerifierErrorCode> {
        let connection = self
            .connection
            .as_ref()
            .ok_or(VerifierErrorCode::BiometryNotAvailable)?;
        let manager = Proxy::new(connection, SERVICE, MANAGER_PATH, MANAGER)
            .map_err(|_| VerifierErrorCode::BiometryNotAvailable)?;
        let path: OwnedObjectPath = manager
            .call("GetDefaultDevice", &())
            .map_err(|_| VerifierErrorCode::BiometryNotAvailable)?;
        Proxy::new(connection, SERVICE, path, DEVICE)
            .map_err(|_| VerifierErrorCode::BiometryNotAvailable)
    }

    fn enrolled(&self, device: &Proxy<'_>) -> bool {
        !self.enrolled_fingers(device).is_empty()
    }

    fn set_matched(&self, finger: Option<String>) {
        *self
            .matched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = finger;
    }

    fn scan(&self, interaction: &Interaction) -> Result<UserVerified, UserActionError> {
        self.set_matched(None);
        let device = self.device().map_err(UserActionError::Unavailable)?;
        let enrolled = self.enrolled_fingers(&device);
        if enrolled.is_empty() {
            return Err(UserActionError::Unavailable(
                VerifierErrorCode::BiometryNotEnrolled,
            ));
        }
        // Both VerifyFingerSelected and VerifyStatus, in the order fprintd sent them.
        let signals = device
            .receive_all_signals()
            .map_err(|_| UserActionError::Unavailable(VerifierErrorCode::BiometryNotAvailable))?;
        device
            .call::<_, _, ()>("Claim", &(self.username.as_str(),))
            .map_err(|_| UserActionError::Unavailable(VerifierErrorCode::SystemCancel))?;
        let outcome = self.run_verify(&device, signals, interaction);
        let _ = device.call::<_, _, ()>("Release", &());
        let (outcome, selected) = outcome;
        if outcome.is_ok() {
            self.set_matched(matched_finger(selected.as_deref(), &enrolled));
        }
        outcome
    }

    /// The verification's outcome, and the finger fprintd said it checks.
    fn run_verify(
        &self,
        device: &Proxy<'_>,
        signals: zbus::blocking::proxy::SignalIterator<'_>,
        interaction: &Interaction,
    ) -> (Result<UserVerified, UserActionError>, Option<String>) {
        // Signals are read on a helper thread so this one can watch the deadline and CANCEL.
        let (tx, rx) = channel::<VerifySignal>();
        let mut signals = signals;
        let mut selected = None;
        let outcome = std::thread::scope(|scope| {
            scope.spawn(move || {
                for message in signals.by_ref() {
                    let header = message.header();
                    let signal = match header.member().map(|m| m.as_str()) {
                        Some("VerifyStatus") => {
                            match message.body().deserialize::<(String, bool)>() {
                                Ok((result, done)) => VerifySignal::Status(result, done),
                                Err(_) => continue,
                            }
                        }
                        Some("VerifyFingerSelected") => {
                            match message.body().deserialize::<String>() {
                                Ok(finger) => VerifySignal::FingerSelected(finger),
                                Err(_) => continue,
                            }
                        }
                        _ => continue,
                    };
                    let finished = matches!(signal, VerifySignal::Status(_, true));
                    if tx.send(signal).is_err() || finished {
                        break;
                    }
                }
            });
            if device.call::<_, _, ()>("VerifyStart", &("any",)).is_err() {
                return Err(UserActionError::Unavailable(
                    VerifierErrorCode::BiometryNotAvailable,
                ));
            }
            interaction.set_status(KeepaliveStatus::UpNeeded);
            let deadline = Instant::now() + self.timeout;
            let outcome = loop {
                if interaction.is_cancelled() {
                    break Err(UserActionError::Cancelled);
                }
                let now = Instant::now();
                if now >= deadline {
                    break Err(UserActionError::Timeout);
                }
                match rx.recv_timeout((deadline - now).min(Duration::from_millis(50))) {
                    Ok(VerifySignal::FingerSelected(finger)) => {
                        selected = Some(finger);
                        continue;
                    }
                    Ok(VerifySignal::Status(result, done)) => match scan_outcome(&result) {
                        ScanOutcome::Match => {
                            break Ok(UserVerified::by(VerificationMethod::Biometric(
                                BiometryType::Fingerprint,
                            )));
                        }
                        ScanOutcome::NoMatch => break Err(UserActionError::Failed),
                        ScanOutcome::Retry if !done => continue,
                        ScanOutcome::Retry => break Err(UserActionError::Failed),
                        ScanOutcome::Disconnected | ScanOutcome::Error => {
                            break Err(UserActionError::Unavailable(
                                VerifierErrorCode::SystemCancel,
                            ));
                        }
                    },
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => {
                        break Err(UserActionError::Unavailable(
                            VerifierErrorCode::SystemCancel,
                        ));
                    }
                }
            };
            interaction.set_status(KeepaliveStatus::Processing);
            // Stopping also ends fprintd's signal stream, which lets the helper thread finish.
            let _ = device.call::<_, _, ()>("VerifyStop", &());
            outcome
        });
        (outcome, selected)
    }
}

impl UserVerifier for FprintdVerifier {
    fn status(&self) -> VerifierStatus {
        match self.device() {
            Err(error) => VerifierStatus {
                available: false,
                biometry: BiometryType::None,
                enrolled: false,
                error: Some(error),
            },
            Ok(device) => {
                let enrolled = self.enrolled(&device);
                VerifierStatus {
                    available: true,
                    biometry: BiometryType::Fingerprint,
                    enrolled,
                    error: (!enrolled).then_some(VerifierErrorCode::BiometryNotEnrolled),
                }
            }
        }
    }

    fn check_presence(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        if self.finger_presence {
            tracing::info!("touch the fingerprint sensor to approve");
            match self.scan(interaction) {
                Ok(_) => return Ok(()),
                Err(UserActionError::Unavailable(code)) => {
                    tracing::info!(?code, "no fingerprint scan possible: asking the prompt");
                }
                // Presence is not verification: an unknown finger declines the request, and
                // does not count as a failed verification.
                Err(UserActionError::Failed) => return Err(UserActionError::Denied),
                Err(other) => return Err(other),
            }
        }
        self.presence.check_presence(prompt, interaction)
    }

    fn verify_user(
        &mut self,
        _prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        tracing::info!("touch the fingerprint sensor to verify");
        self.scan(interaction)
    }

    fn matched_template(&self) -> Option<String> {
        self.matched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn enrollment_state(&self) -> Option<[u8; 32]> {
        // fprintd exposes which fingers are enrolled, not template identities: enrolling or
        // deleting a finger changes this state; re-enrolling the same finger does not.
        let device = self.device().ok()?;
        let mut fingers: Vec<String> = device
            .call("ListEnrolledFingers", &(self.username.as_str(),))
            .ok()?;
        fingers.sort();
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(self.username.as_bytes());
        for finger in &fingers {
            ctx.update(&[0]);
            ctx.update(finger.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Some(out)
    }

    fn bio_enrollment(&mut self) -> Option<&mut dyn crate::api::bio_enrollment::BioEnrollment> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::{ScanOutcome, matched_finger, scan_outcome};

    #[test]
    fn the_matched_finger_is_named_only_when_fprintd_says_which() {
        let two = ["left-thumb".to_owned(), "right-index-finger".to_owned()];
        let one = ["right-index-finger".to_owned()];
        // A sensor that verifies one finger: fprintd names it.
        assert_eq!(
            matched_finger(Some("left-thumb"), &two).as_deref(),
            Some("left-thumb")
        );
        // A sensor that identifies: "any", so only a lone finger is known.
        assert_eq!(
            matched_finger(Some("any"), &one).as_deref(),
            Some("right-index-finger")
        );
        assert_eq!(matched_finger(Some("any"), &two), None);
        assert_eq!(matched_finger(None, &two), None);
    }

    #[test]
    fn every_fprintd_result_maps_to_an_outcome() {
        assert_eq!(scan_outcome("verify-match"), ScanOutcome::Match);
        assert_eq!(scan_outcome("verify-no-match"), ScanOutcome::NoMatch);
        for retry in [
            "verify-retry-scan",
            "verify-swipe-too-short",
            "verify-finger-not-centered",
            "verify-remove-and-retry",
        ] {
            assert_eq!(scan_outcome(retry), ScanOutcome::Retry);
        }
        assert_eq!(
            scan_outcome("verify-disconnected"),
            ScanOutcome::Disconnected
        );
        assert_eq!(scan_outcome("verify-unknown-error"), ScanOutcome::Error);
        assert_eq!(scan_outcome("something-new"), ScanOutcome::Error);
    }
}
