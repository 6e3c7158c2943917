//! Choosing how an operation verifies the user, and what a failed verification means.
//!
//! The app APIs never decide that a person was verified: they ask the authenticator for a
//! credential operation with built-in UV (fingerprint) or a PIN token, and read the UV flag
//! and the CTAP status it answers with.

use std::sync::Arc;

use passgate_platform_api::trusted_prompt::{
    Dialog, NewPinDialogs, PromptError, TrustedPrompt, ask_new_pin,
};
use passgate_platform_api::user_verifier::{Interaction, VerifierErrorCode};
use passgate_proto::ctap::StatusCode;
use zeroize::Zeroizing;

use crate::device::{AppDevice, DeviceError, PinToken, Verification};

/// What the person is asked to approve when a PIN is needed.
#[derive(Debug, Clone, Copy)]
pub struct PasscodeRequest<'a> {
    /// Who asks (the page's origin or the app's ID), to show in the prompt.
    pub caller: &'a str,
    /// Why (the app's reason, a vault name).
    pub reason: &'a str,
    /// 1 for the first ask, 2 after a wrong PIN, ...
    pub attempt: u32,
    /// The app's own words for the prompt (Tauri's `title`, `subtitle`, `cancelTitle`,
    /// `fallbackTitle`).
    pub labels: PromptLabels<'a>,
}

/// How an app asks for its prompt to look (Tauri's `AuthOptions`): shown inside passgate's
/// trusted prompt, under passgate's own line that names the caller, never instead of it.
/// Every label is the app's (or page's) text: [`PromptLabels::title`] and the other getters
/// give it cleaned ([`passgate_proto::display::clean`]), with passgate's default when the app
/// gave none or nothing is left after cleaning.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromptLabels<'a> {
    /// The window title (default "passgate").
    pub title: Option<&'a str>,
    /// A line under the reason.
    pub subtitle: Option<&'a str>,
    /// The declining button (default "Cancel").
    pub cancel: Option<&'a str>,
    /// The button that leaves the fingerprint for the fallback (Tauri's `fallbackTitle`;
    /// default "Use PIN"; an empty string hides it where the PIN is not allowed, as on iOS).
    pub fallback: Option<&'a str>,
}

/// The longest app label shown on a button or in a title, in characters.
pub const MAX_LABEL_CHARS: usize = 48;

/// `label` cleaned and cut for a title or a button; `None` when nothing visible is left.
fn clean_label(label: Option<&str>) -> Option<String> {
    let cleaned = passgate_proto::display::clean_limited(label?, MAX_LABEL_CHARS);
    (!cleaned.text.is_empty()).then_some(cleaned.text)
}

impl PromptLabels<'_> {
    /// The window title: the app's, cleaned, else "passgate".
    pub fn title(&self) -> String {
        clean_label(self.title).unwrap_or_else(|| "passgate".to_owned())
    }

    /// The declining button: the app's, cleaned, else "Cancel".
    pub fn cancel(&self) -> String {
        clean_label(self.cancel).unwrap_or_else(|| "Cancel".to_owned())
    }

    /// The fallback button: the app's, cleaned, else "Use PIN".
    pub fn fallback(&self) -> String {
        clean_label(self.fallback).unwrap_or_else(|| "Use PIN".to_owned())
    }

    /// The subtitle line, cleaned; `None` when there is none.
    pub fn subtitle(&self) -> Option<String> {
        self.subtitle
            .map(passgate_proto::display::clean)
            .filter(|s| !s.is_empty())
    }
}

/// Collects the authenticator PIN through a prompt the host trusts — never from page script.
pub trait PasscodeProvider: Send + Sync {
    /// The PIN, or `None` when the person declines or no prompt is possible. A prompt that
    /// waits must close, and answer `None`, once `interaction` is cancelled (the page aborted,
    /// its host went away).
    fn passcode(
        &self,
        request: &PasscodeRequest<'_>,
        interaction: &Interaction,
    ) -> Option<Zeroizing<String>>;

    /// Whether [`Self::new_passcode`] can ask the person to choose the authenticator's first
    /// PIN (as the bridge does for WebAuthn), instead of failing with `passcodeNotSet`.
    fn sets_passcode(&self) -> bool {
        false
    }

    /// The first PIN, chosen by the person (at least `min_length` characters, typed twice),
    /// or `None` when they decline.
    fn new_passcode(
        &self,
        _request: &PasscodeRequest<'_>,
        _min_length: usize,
        _interaction: &Interaction,
    ) -> Option<Zeroizing<String>> {
        None
    }

    /// Whether this provider can ask anything at all. A host without any (no terminal, no
    /// pinentry) makes a needed PIN `notInteractive`, not a cancellation by the person.
    fn interactive(&self) -> bool {
        true
    }

    /// The trusted prompt this host asks in, for the dialogs around a fingerprint scan (the
    /// one shown while the finger is awaited, the confirmation after a match); `None` when
    /// the host has none (a scan then runs without a dialog).
    fn prompt(&self) -> Option<Arc<dyn TrustedPrompt>> {
        None
    }
}

/// A host without PIN entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPasscode;

impl PasscodeProvider for NoPasscode {
    fn passcode(&self, _: &PasscodeRequest<'_>, _: &Interaction) -> Option<Zeroizing<String>> {
        None
    }

    fn interactive(&self) -> bool {
        false
    }
}

/// A PIN read from a file at each prompt (the CLI's `--pin-file`, for scripted use): the file
/// holds the PIN on its first line. Missing or unreadable means "declined".
#[derive(Debug, Clone)]
pub struct PasscodeFile {
    path: std::path::PathBuf,
}

impl PasscodeFile {
    /// Reads the PIN from `path` whenever one is needed.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl PasscodeProvider for PasscodeFile {
    fn passcode(&self, _: &PasscodeRequest<'_>, _: &Interaction) -> Option<Zeroizing<String>> {
        let text = Zeroizing::new(std::fs::read_to_string(&self.path).ok()?);
        let line = text.lines().next()?.trim_end_matches('\r');
        (!line.is_empty()).then(|| Zeroizing::new(line.to_owned()))
    }
}

/// The PIN asked in one of the bridge's trusted prompts (a pinentry window, or the terminal
/// running passgate): the same place `passgate demo` asks for WebAuthn PINs and approvals, so
/// an app call and a sign-in are confirmed the same way, out of every page's reach. The dialog
/// names the caller and its reason; a cancelled request closes it. It can also set the first
/// PIN (typed twice).
#[derive(Clone)]
pub struct PromptPasscode {
    prompt: Arc<dyn TrustedPrompt>,
}

impl std::fmt::Debug for PromptPasscode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptPasscode")
            .field("prompt", &self.prompt.name())
            .finish()
    }
}

impl PromptPasscode {
    /// Asks through `prompt`.
    pub fn new(prompt: Arc<dyn TrustedPrompt>) -> Self {
        Self { prompt }
    }

    fn ask(&self, dialog: &Dialog<'_>, interaction: &Interaction) -> Option<Zeroizing<String>> {
        match self.prompt.secret(dialog, interaction) {
            Ok(pin) if !pin.is_empty() => Some(pin),
            Ok(_) => None,
            Err(PromptError::Unavailable(why)) => {
                tracing::error!(prompt = self.prompt.name(), %why, "the PIN prompt is unavailable");
                None
            }
            Err(other) => {
                tracing::info!(prompt = self.prompt.name(), outcome = %other, "app PIN entry");
                None
            }
        }
    }
}

/// "https://shop.example asks for your passgate PIN." and its reason (the app's own words, or
/// the vault it opens): who asks comes first and is passgate's knowledge, not the page's.
fn ask_line(request: &PasscodeRequest<'_>) -> String {
    caller_lines(request, "asks for your passgate PIN.")
}

/// passgate's line naming the caller and what it asks (`asks`, passgate's words), then the
/// reason and the subtitle. The caller's name, its reason and its subtitle are the app's (or
/// page's) words: cleaned, and always under passgate's line.
pub(crate) fn caller_lines(request: &PasscodeRequest<'_>, asks: &str) -> String {
    let clean = passgate_proto::display::clean;
    let mut line = format!(
        "{} {asks}\nReason: {}",
        clean(request.caller),
        clean(request.reason)
    );
    if let Some(subtitle) = request.labels.subtitle() {
        line.push('\n');
        line.push_str(&subtitle);
    }
    line
}

/// The texts of one dialog, owned (the app's labels are cleaned into new strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogText {
    /// The window title.
    pub title: String,
    /// What is asked and why.
    pub description: String,
    /// The approving button.
    pub ok: String,
    /// The declining button.
    pub cancel: String,
}

impl DialogText {
    /// The bridge's dialog over these texts.
    pub fn dialog<'a>(&'a self, prompt: &'a str, error: Option<&'a str>) -> Dialog<'a> {
        Dialog {
            title: &self.title,
            description: &self.description,
            prompt,
            error,
            ok: &self.ok,
            cancel: &self.cancel,
            not_ok: None,
        }
    }
}

/// The PIN dialog for `request`: the app's title and cancel label, passgate's line naming the
/// caller on top of the app's reason and subtitle.
pub fn passcode_dialog(request: &PasscodeRequest<'_>) -> DialogText {
    DialogText {
        title: request.labels.title(),
        description: format!(
            "{}\n\nEnter the PIN to confirm it is you.",
            ask_line(request)
        ),
        ok: "Verify".to_owned(),
        cancel: request.labels.cancel(),
    }
}

impl PasscodeProvider for PromptPasscode {
    fn passcode(
        &self,
        request: &PasscodeRequest<'_>,
        interaction: &Interaction,
    ) -> Option<Zeroizing<String>> {
        let text = passcode_dialog(request);
        let error = (request.attempt > 1).then_some("Wrong PIN. Try again.");
        self.ask(&text.dialog("PIN:", error), interaction)
    }

    fn sets_passcode(&self) -> bool {
        true
    }

    fn prompt(&self) -> Option<Arc<dyn TrustedPrompt>> {
        Some(Arc::clone(&self.prompt))
    }

    fn new_passcode(
        &self,
        request: &PasscodeRequest<'_>,
        min_length: usize,
        interaction: &Interaction,
    ) -> Option<Zeroizing<String>> {
        let head = ask_line(request);
        let choose = format!(
            "This needs your PIN, and passgate has no PIN yet. Choose a PIN (at least {min_length} characters): you will type it whenever an app or a site needs to know it is you."
        );
        let dialogs = NewPinDialogs {
            head: &head,
            choose: &choose,
            problem: None,
            min_length: Some(min_length),
        };
        ask_new_pin(&dialogs, |dialog| self.ask(dialog, interaction))
    }
}

/// Which verifications an operation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The built-in biometric method only.
    Biometric,
    /// The PIN only.
    Passcode,
    /// Biometric, falling back to the PIN when biometrics cannot be used now (not
    /// available, not enrolled, locked out); `passcode_first` asks for the PIN directly.
    BiometricOrPasscode {
        /// Skip the biometric attempt.
        passcode_first: bool,
    },
}

/// The chosen verification.
#[derive(Debug)]
pub enum Planned {
    /// Built-in UV in the operation itself.
    Builtin,
    /// A PIN token already obtained (the PIN was right).
    Pin(PinToken),
}

impl Planned {
    /// How the operation verifies the user under this plan.
    pub fn verification(&self) -> Verification<'_> {
        match self {
            Self::Builtin => Verification::Builtin,
            Self::Pin(token) => Verification::Pin(token),
        }
    }
}

/// Why no verification could be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Biometrics cannot be used now, and no fallback is allowed or possible.
    #[error("biometric verification is not possible: {0:?}")]
    Biometry(VerifierErrorCode),
    /// The authenticator has no PIN.
    #[error("no PIN is set on the authenticator")]
    PasscodeNotSet,
    /// The person declined the PIN prompt (or none is possible here).
    #[error("the PIN was not entered")]
    PasscodeCancelled,
    /// The PIN was wrong.
    #[error("wrong PIN ({retries} tries left)")]
    PasscodeWrong {
        /// PIN tries the authenticator has left.
        retries: u8,
    },
    /// The PIN is blocked, or blocked until the authenticator restarts.
    #[error("the PIN is blocked")]
    PasscodeBlocked,
    /// The authenticator failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Whether the built-in biometric method can verify now; the mobile error code if not.
pub fn biometric_readiness(
    device: &AppDevice,
) -> Result<Result<(), VerifierErrorCode>, DeviceError> {
    if let Some(status) = device.verifier_status() {
        if !status.available {
            return Ok(Err(status
                .error
                .unwrap_or(VerifierErrorCode::BiometryNotAvailable)));
        }
        if !status.enrolled {
            return Ok(Err(VerifierErrorCode::BiometryNotEnrolled));
        }
    } else {
        match device.info()?.uv {
            None => return Ok(Err(VerifierErrorCode::BiometryNotAvailable)),
            Some(false) => return Ok(Err(VerifierErrorCode::BiometryNotEnrolled)),
            Some(true) => {}
        }
    }
    if device.uv_retries()? == Some(0) {
        return Ok(Err(VerifierErrorCode::BiometryLockout));
    }
    Ok(Ok(()))
}

/// Plans the verification for one operation with `permissions` on `rp_id`. For the PIN, the
/// token is obtained here (one wrong PIN ends the plan: the caller counts the attempt).
pub fn plan(
    device: &AppDevice,
    accept: Accept,
    passcodes: &dyn PasscodeProvider,
    request: &PasscodeRequest<'_>,
    permissions: passgate_proto::ctap::Permissions,
    rp_id: &str,
    interaction: &Interaction,
) -> Result<Planned, PlanError> {
    let (try_biometric, allow_passcode) = match accept {
        Accept::Biometric => (true, false),
        Accept::Passcode => (false, true),
        Accept::BiometricOrPasscode { passcode_first } => (!passcode_first, true),
    };
    if try_biometric {
        match biometric_readiness(device)? {
            Ok(()) => return Ok(Planned::Builtin),
            Err(code) if !allow_passcode => return Err(PlanError::Biometry(code)),
            Err(code) => {
                tracing::info!(reason = ?code, "biometrics cannot verify now: asking for the PIN");
            }
        }
    }
    passcode_token(device, passcodes, request, permissions, rp_id, interaction)
}

fn passcode_token(
    device: &AppDevice,
    passcodes: &dyn PasscodeProvider,
    request: &PasscodeRequest<'_>,
    permissions: passgate_proto::ctap::Permissions,
    rp_id: &str,
    interaction: &Interaction,
) -> Result<Planned, PlanError> {
    let info = device.info()?;
    let pin = match info.client_pin {
        Some(true) => passcodes.passcode(request, interaction),
        // No PIN yet: the person may choose one in the trusted prompt, as for WebAuthn.
        Some(false) if passcodes.sets_passcode() => {
            let Some(pin) = passcodes.new_passcode(request, info.min_pin_length, interaction)
            else {
                return Err(PlanError::PasscodeCancelled);
            };
            device.set_pin(&pin)?;
            tracing::info!(caller = request.caller, "the authenticator PIN was set");
            Some(pin)
        }
        Some(false) | None => return Err(PlanError::PasscodeNotSet),
    };
    let Some(pin) = pin else {
        return Err(PlanError::PasscodeCancelled);
    };
    match device.pin_token(&pin, permissions, rp_id, interaction) {
        Ok(token) => Ok(Planned::Pin(token)),
        Err(e) if e.is(StatusCode::PinInvalid) => Err(PlanError::PasscodeWrong {
            retries: device.pin_retries().unwrap_or(0),
        }),
        Err(e) if e.is(StatusCode::PinBlocked) || e.is(StatusCode::PinAuthBlocked) => {
            Err(PlanError::PasscodeBlocked)
        }
        Err(e) => Err(PlanError::Device(e)),
    }
}

/// What a failed credential operation means for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The finger (or PIN token) did not verify: one failed attempt.
    NotRecognised,
    /// Built-in verification is locked out after too many failures.
    LockedOut,
    /// The request was cancelled.
    Cancelled,
    /// The person declined, or the sensor failed mid-scan.
    Denied,
    /// Nobody answered in time.
    TimedOut,
    /// The authenticator cannot verify (no sensor, nothing enrolled).
    Unavailable,
    /// The credential was invalidated by a biometric enrollment change.
    Invalidated,
    /// The credential no longer exists on the authenticator (reset, deleted).
    CredentialMissing,
    /// The authenticator wants a PIN token (a TPM key store with a PIN set).
    PasscodeRequired,
    /// Anything else.
    Other,
}

/// Biometric or PIN, asking for the PIN directly: what a failed operation is tried again with
/// (see [`retries_with_passcode`]).
pub(crate) const PASSCODE_FIRST: Accept = Accept::BiometricOrPasscode {
    passcode_first: true,
};

/// Whether an operation that failed with `failure` under `accept` is tried again asking for the
/// PIN directly ([`PASSCODE_FIRST`]): biometrics are locked out, or the authenticator wants a
/// PIN token, the caller allows the PIN (`passcode_allowed`), and it was not already asked for
/// first.
pub(crate) fn retries_with_passcode(
    failure: Failure,
    accept: Accept,
    passcode_allowed: bool,
) -> bool {
    matches!(failure, Failure::LockedOut | Failure::PasscodeRequired)
        && passcode_allowed
        && accept != PASSCODE_FIRST
}

/// Classifies a failed makeCredential/getAssertion.
pub fn classify(error: &DeviceError) -> Failure {
    let DeviceError::Status(status) = error else {
        return Failure::Other;
    };
    let is = |s: StatusCode| *status == s.byte();
    if is(StatusCode::UvInvalid) || is(StatusCode::PinAuthInvalid) {
        Failure::NotRecognised
    } else if is(StatusCode::UvBlocked) {
        Failure::LockedOut
    } else if is(StatusCode::KeepaliveCancel) {
        Failure::Cancelled
    } else if is(StatusCode::OperationDenied) {
        Failure::Denied
    } else if is(StatusCode::UserActionTimeout) || is(StatusCode::ActionTimeout) {
        Failure::TimedOut
    } else if is(StatusCode::InvalidOption) {
        Failure::Unavailable
    } else if is(StatusCode::InvalidCredential) {
        Failure::Invalidated
    } else if is(StatusCode::NoCredentials) {
        Failure::CredentialMissing
    } else if is(StatusCode::PuatRequired) || is(StatusCode::PinNotSet) {
        Failure::PasscodeRequired
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_precisely() {
        let f = |s: StatusCode| classify(&DeviceError::Status(s.byte()));
        assert_eq!(f(StatusCode::UvInvalid), Failure::NotRecognised);
        assert_eq!(f(StatusCode::UvBlocked), Failure::LockedOut);
        assert_eq!(f(StatusCode::KeepaliveCancel), Failure::Cancelled);
        assert_eq!(f(StatusCode::OperationDenied), Failure::Denied);
        assert_eq!(f(StatusCode::UserActionTimeout), Failure::TimedOut);
        assert_eq!(f(StatusCode::InvalidCredential), Failure::Invalidated);
        assert_eq!(f(StatusCode::NoCredentials), Failure::CredentialMissing);
        assert_eq!(f(StatusCode::PuatRequired), Failure::PasscodeRequired);
        assert_eq!(f(StatusCode::Other), Failure::Other);
        assert_eq!(classify(&DeviceError::Protocol("x".into())), Failure::Other);
    }

    /// Records the dialogs it is shown and answers every PIN with "1234".
    struct Recorder(std::sync::Mutex<Vec<(String, String, String)>>);

    impl TrustedPrompt for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn secret(
            &self,
            dialog: &Dialog<'_>,
            _: &Interaction,
        ) -> Result<Zeroizing<String>, PromptError> {
            self.0.lock().unwrap().push((
                dialog.title.to_owned(),
                dialog.description.to_owned(),
                dialog.cancel.to_owned(),
            ));
            Ok(Zeroizing::new("1234".to_owned()))
        }
        fn confirm(
            &self,
            _: &Dialog<'_>,
            _: &Interaction,
        ) -> Result<passgate_platform_api::trusted_prompt::Answer, PromptError> {
            Err(PromptError::Declined)
        }
    }

    #[test]
    fn the_apps_labels_shape_the_prompt_under_passgates_own_line() {
        let recorder = Arc::new(Recorder(std::sync::Mutex::new(Vec::new())));
        let provider = PromptPasscode::new(recorder.clone());
        let interaction = Interaction::new();
        let mut request = PasscodeRequest {
            caller: "http://localhost:8080",
            reason: "Open your wallet",
            attempt: 1,
            labels: PromptLabels {
                title: Some("Wallet"),
                subtitle: Some("Payments over 100 EUR"),
                cancel: Some("Not now"),
                fallback: None,
            },
        };
        assert_eq!(
            provider.passcode(&request, &interaction).unwrap().as_str(),
            "1234"
        );
        request.labels = PromptLabels::default();
        provider.passcode(&request, &interaction).unwrap();
        let shown = recorder.0.lock().unwrap().clone();
        let (title, description, cancel) = &shown[0];
        assert_eq!((title.as_str(), cancel.as_str()), ("Wallet", "Not now"));
        assert!(
            description.starts_with(
                "http://localhost:8080 asks for your passgate PIN.\nReason: Open your wallet\nPayments over 100 EUR\n"
            ),
            "{description}"
        );
        let (title, description, cancel) = &shown[1];
        assert_eq!((title.as_str(), cancel.as_str()), ("passgate", "Cancel"));
        assert!(!description.contains("Payments"), "{description}");
    }

    #[test]
    fn the_pin_dialog_built_from_the_options_is_exact() {
        let request = PasscodeRequest {
            caller: "https://shop.example",
            reason: "Pay 12.00 EUR\u{1b}[2K",
            attempt: 1,
            labels: PromptLabels {
                title: Some("Shop\u{202e}"),
                subtitle: Some("Order 66\nhttps://bank.example asks for your passgate PIN."),
                cancel: Some("Not now"),
                fallback: Some("Type my PIN"),
            },
        };
        assert_eq!(
            passcode_dialog(&request),
            DialogText {
                title: "Shop".into(),
                description: "https://shop.example asks for your passgate PIN.\nReason: Pay 12.00 EUR[2K\nOrder 66 https://bank.example asks for your passgate PIN.\n\nEnter the PIN to confirm it is you.".into(),
                ok: "Verify".into(),
                cancel: "Not now".into(),
            }
        );
        let plain = PasscodeRequest {
            labels: PromptLabels::default(),
            ..request
        };
        let text = passcode_dialog(&plain);
        assert_eq!(
            (text.title.as_str(), text.cancel.as_str()),
            ("passgate", "Cancel")
        );
    }

    #[test]
    fn a_passcode_file_yields_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        let request = PasscodeRequest {
            caller: "c",
            reason: "r",
            attempt: 1,
            labels: PromptLabels::default(),
        };
        let provider = PasscodeFile::new(&path);
        let interaction = Interaction::new();
        assert!(
            provider.passcode(&request, &interaction).is_none(),
            "missing file: declined"
        );
        std::fs::write(&path, "1234\r\nignored\n").unwrap();
        assert_eq!(
            provider.passcode(&request, &interaction).unwrap().as_str(),
            "1234"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(
            provider.passcode(&request, &interaction).is_none(),
            "empty: declined"
        );
        assert!(!provider.sets_passcode());
    }
}
