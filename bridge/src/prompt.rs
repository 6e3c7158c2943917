//! Trusted prompts: where a person types the PIN and approves presence, out of every page's
//! reach.
//!
//! A page can draw anything, including a perfect copy of a PIN dialog; what it cannot do is
//! open a pinentry window or read the terminal that runs passgate. So the PIN is entered there
//! and never into the page, and approving presence is a deliberate act in that same prompt.
//!
//! - [`Pinentry`](pinentry::Pinentry): a pinentry program (GnuPG's, or any program speaking
//!   its Assuan protocol), started for each dialog. The default for the native-messaging host,
//!   which the browser starts with no terminal.
//! - [`TerminalPrompt`](terminal::TerminalPrompt): the terminal running passgate (`/dev/tty`,
//!   the PIN read with echo off).
//!
//! On top of either, [`PromptUi`] is the bridge's [`UserInterface`] (enter the PIN, choose
//! a first PIN, pick an account) and [`PromptPresence`] is an authenticator's
//! [`UserVerifier`] for presence (approve or deny each request).

pub mod grant;
pub mod pinentry;
pub mod shown;
pub mod terminal;
mod wording;

use std::sync::Arc;

use passgate_platform_api::trusted_prompt::{
    Answer, Dialog, NewPinDialogs, PromptError, TrustedPrompt, ask_new_pin,
};
use passgate_platform_api::user_verifier::{
    Interaction, KeepaliveStatus, Prompt, PromptAction, UserActionError, UserVerified,
    UserVerifier, VerifierErrorCode, VerifierStatus,
};
use zeroize::Zeroizing;

use crate::ceremony::{
    AccountChoice, ApprovalRequest, NewPinRequest, PinRequest, Purpose, Unanswered, UnlockRequest,
    UserInterface,
};

pub use grant::PresenceGrants;
pub use pinentry::Pinentry;
pub use terminal::TerminalPrompt;
use wording::{labelled, operation_button, operation_title, request_line};

/// The presence prompt names the app instead of a site for credentials under this prefix.
use passgate_proto::APP_RP_ID_PREFIX;

/// The authenticator's operation a ceremony for `purpose` approves.
fn presence_action(purpose: Purpose<'_>) -> PromptAction {
    match purpose {
        Purpose::Create { .. } | Purpose::AlreadyRegistered { .. } => PromptAction::Register,
        Purpose::Get | Purpose::Autofill | Purpose::Approve { .. } => PromptAction::SignIn,
    }
}

/// The bridge's [`UserInterface`] on a trusted prompt.
#[derive(Clone)]
pub struct PromptUi {
    prompt: Arc<dyn TrustedPrompt>,
    grants: Option<Arc<PresenceGrants>>,
}

impl std::fmt::Debug for PromptUi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptUi")
            .field("prompt", &self.prompt.name())
            .finish()
    }
}

impl PromptUi {
    /// Asks through `prompt`.
    pub fn new(prompt: Arc<dyn TrustedPrompt>) -> Self {
        Self {
            prompt,
            grants: None,
        }
    }

    /// Records each approval collected here (a PIN typed in a dialog that named the whole
    /// request, an action approved) in `grants`, for an authenticator in this process whose
    /// [`PromptPresence`] shares them: one prompt per request instead of two.
    pub fn with_presence_grants(mut self, grants: Arc<PresenceGrants>) -> Self {
        self.grants = Some(grants);
        self
    }

    fn granted(&self, rp_id: &str, purpose: Purpose<'_>) {
        if let Some(grants) = &self.grants {
            grants.grant(rp_id, presence_action(purpose));
        }
    }

    /// Why a dialog gave no answer, as the ceremony reports it to the page.
    fn unanswered(&self, e: &PromptError) -> Unanswered {
        match e {
            PromptError::Declined => Unanswered::Declined,
            PromptError::Cancelled => Unanswered::Cancelled,
            PromptError::TimedOut => {
                Unanswered::TimedOut(self.prompt.timeout().map(|t| t.as_secs()))
            }
            PromptError::Unavailable(_) => Unanswered::Unavailable,
        }
    }

    fn log_failure(&self, what: &str, e: &PromptError) {
        match e {
            PromptError::Unavailable(why) => {
                tracing::error!(prompt = self.prompt.name(), %why, "{what}: the trusted prompt is unavailable");
            }
            other => tracing::info!(prompt = self.prompt.name(), outcome = %other, "{what}"),
        }
    }
}

impl UserInterface for PromptUi {
    fn collects_pin(&self) -> bool {
        true
    }

    fn pin(&self, request: &PinRequest<'_>) -> Result<Zeroizing<String>, Unanswered> {
        let description = format!(
            "{}\n\nEnter your passgate PIN to {}.",
            labelled(
                request_line(request.origin, request.rp_id, request.purpose),
                request.label,
            ),
            match request.purpose {
                Purpose::Approve { .. } => "approve exactly this",
                _ => "confirm it is you",
            }
        );
        let error = request.after_wrong_pin.map(|left| match left {
            Some(1) => "Wrong PIN. 1 attempt left before the PIN is blocked.".to_owned(),
            Some(n) => format!("Wrong PIN. {n} attempts left."),
            None => "Wrong PIN.".to_owned(),
        });
        let dialog = Dialog {
            title: operation_title(request.purpose),
            description: &description,
            prompt: "PIN:",
            error: error.as_deref(),
            ok: operation_button(request.purpose),
            cancel: "Cancel",
            ..Dialog::default()
        };
        match self.prompt.secret(&dialog, request.interaction) {
            Ok(pin) => {
                // The dialog named the whole request and the person went ahead: that is
                // the approval (a wrong PIN gets no token, so the grant does nothing).
                self.granted(request.rp_id, request.purpose);
                Ok(pin)
            }
            Err(e) => {
                self.log_failure("PIN entry", &e);
                Err(self.unanswered(&e))
            }
        }
    }

    fn sets_pin(&self) -> bool {
        true
    }

    fn new_pin(&self, request: &NewPinRequest<'_>) -> Result<Zeroizing<String>, Unanswered> {
        let head = labelled(
            request_line(request.origin, request.rp_id, request.purpose),
            request.label,
        );
        let choose = format!(
            "This needs user verification, and passgate has no PIN yet. Choose a PIN (at least {} characters): you will type it whenever a site needs to know it is you.",
            request.min_length
        );
        let dialogs = NewPinDialogs {
            head: &head,
            choose: &choose,
            problem: request.problem,
            // The ceremony checks the length (and the authenticator's other rules) itself.
            min_length: None,
        };
        let mut failure = None;
        let pin = ask_new_pin(&dialogs, |dialog| {
            let dialog = Dialog {
                title: operation_title(request.purpose),
                ..*dialog
            };
            self.prompt
                .secret(&dialog, request.interaction)
                .map_err(|e| {
                    self.log_failure("new PIN", &e);
                    failure = Some(self.unanswered(&e));
                })
                .ok()
        });
        match pin {
            Some(pin) => {
                self.granted(request.rp_id, request.purpose);
                Ok(pin)
            }
            // Three rounds without two matching entries: the person did not get there.
            None => Err(failure.unwrap_or(Unanswered::Declined)),
        }
    }

    fn shows_approvals(&self) -> bool {
        true
    }

    fn approve(&self, request: &ApprovalRequest<'_>) -> Result<(), Unanswered> {
        let notice = matches!(request.purpose, Purpose::AlreadyRegistered { .. });
        let description = if notice {
            labelled(
                request_line(request.origin, request.rp_id, request.purpose),
                request.label,
            )
        } else {
            format!(
                "{}\n\nApprove only if you started this yourself.",
                labelled(
                    request_line(request.origin, request.rp_id, request.purpose),
                    request.label,
                )
            )
        };
        let dialog = Dialog {
            title: operation_title(request.purpose),
            description: &description,
            ok: operation_button(request.purpose),
            cancel: if notice { "Cancel" } else { "Deny" },
            ..Dialog::default()
        };
        match self.prompt.confirm(&dialog, request.interaction) {
            Ok(Answer::Ok) => {
                if !notice {
                    self.granted(request.rp_id, request.purpose);
                }
                Ok(())
            }
            Ok(Answer::NotOk) => Err(Unanswered::Declined),
            Err(e) => {
                self.log_failure("approval", &e);
                Err(self.unanswered(&e))
            }
        }
    }

    fn unlock(&self, request: &UnlockRequest<'_>) -> Result<(), Unanswered> {
        let left = match request.retries {
            Some(1) => " 1 PIN attempt is left before the PIN is blocked for good.".to_owned(),
            Some(n) => format!(" {n} PIN attempts are left before the PIN is blocked for good."),
            None => String::new(),
        };
        let wait = match request.delay_seconds {
            0 => String::new(),
            1 => " It waits 1 s first.".to_owned(),
            n => format!(" It waits {n} s first."),
        };
        let description = format!(
            "{}\n\nThree wrong PINs in a row: passgate's authenticator stopped taking the PIN until it restarts, so you are not asked for it now.{left}\n\nUnlock restarts only the authenticator: your passkeys, your PIN and this page's pairing are kept.{wait} Then enter the PIN again.",
            labelled(
                request_line(request.origin, request.rp_id, request.purpose),
                request.label,
            )
        );
        let dialog = Dialog {
            title: "passgate: PIN locked for now",
            description: &description,
            ok: "Unlock",
            cancel: "Cancel",
            ..Dialog::default()
        };
        match self.prompt.confirm(&dialog, request.interaction) {
            Ok(Answer::Ok) => Ok(()),
            Ok(Answer::NotOk) => Err(Unanswered::Declined),
            Err(e) => {
                self.log_failure("unlock", &e);
                Err(self.unanswered(&e))
            }
        }
    }

    fn ceremony_ended(&self) {
        if let Some(grants) = &self.grants {
            grants.clear();
        }
    }

    fn choose_account(&self, choice: &AccountChoice<'_>) -> Result<usize, Unanswered> {
        let options: Vec<String> = choice
            .accounts
            .iter()
            .map(|a| {
                let clean = passgate_proto::display::clean;
                match (&a.name, &a.display_name) {
                    (Some(name), Some(display)) if display != name => {
                        format!("{} ({})", clean(display), clean(name))
                    }
                    (Some(name), _) => clean(name),
                    (None, Some(display)) => clean(display),
                    (None, None) => "an unnamed account".to_owned(),
                }
            })
            .collect();
        let description = format!(
            "{}\n\n{}",
            labelled(
                request_line(choice.origin, choice.rp_id, choice.purpose),
                choice.label,
            ),
            wording::account_question(
                options.len(),
                &passgate_proto::display::clean(choice.rp_id),
                choice.before_verification
            )
        );
        self.prompt
            .choose(&description, &options, choice.interaction)
            .map_err(|e| {
                self.log_failure("account choice", &e);
                self.unanswered(&e)
            })
    }
}

/// An authenticator's presence check on a trusted prompt: each request is approved (or
/// denied) there. It verifies nobody: user verification is the PIN, or a built-in verifier
/// wrapped around this one (fprintd).
#[derive(Clone)]
pub struct PromptPresence {
    prompt: Arc<dyn TrustedPrompt>,
    grants: Option<Arc<PresenceGrants>>,
}

impl std::fmt::Debug for PromptPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptPresence")
            .field("prompt", &self.prompt.name())
            .finish()
    }
}

impl PromptPresence {
    /// Asks through `prompt`.
    pub fn new(prompt: Arc<dyn TrustedPrompt>) -> Self {
        Self {
            prompt,
            grants: None,
        }
    }

    /// Takes the approval a [`PromptUi`] on the same prompt, in this process, just collected
    /// for the same operation on the same site (see [`grant`]) instead of asking again.
    pub fn with_presence_grants(mut self, grants: Arc<PresenceGrants>) -> Self {
        self.grants = Some(grants);
        self
    }
}

impl UserVerifier for PromptPresence {
    fn status(&self) -> VerifierStatus {
        passgate_platform_api::user_verifier::no_verification_status()
    }

    fn check_presence(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        if let (Some(grants), Some(rp_id)) = (&self.grants, prompt.rp_id)
            && grants.take(rp_id, prompt.action)
        {
            tracing::info!(
                prompt = self.prompt.name(),
                rp_id,
                outcome = "approved in the bridge's prompt",
                "presence"
            );
            return Ok(());
        }
        // The RP ID and the account name come from the client (a page, an app): cleaned.
        let clean = passgate_proto::display::clean;
        let rp = prompt.rp_id.map_or_else(|| "a site".to_owned(), clean);
        let user = prompt
            .user_name
            .map(|u| format!(" as \u{201c}{}\u{201d}", clean(u)))
            .unwrap_or_default();
        // An app API's credential (biometric proof, vault key) is not a website's passkey:
        // say which app asks, so nobody approves it believing they are signing in somewhere.
        // A webview page's calls come with its origin as the caller; an app names itself.
        let app = rp.strip_prefix(APP_RP_ID_PREFIX).map(|caller| {
            if caller.contains("://") {
                format!("The page {caller}")
            } else {
                format!("The app \u{201c}{caller}\u{201d}")
            }
        });
        let (description, ok) = match (prompt.action, app) {
            (PromptAction::Register, Some(app)) => (
                format!(
                    "{app} asks to create a key{user} for its biometric checks or vault. Create it?"
                ),
                "Create key",
            ),
            (PromptAction::SignIn, Some(app)) => (
                format!(
                    "{app} asks to use its key{user} (a biometric check or opening its vault). Allow?"
                ),
                "Allow",
            ),
            (PromptAction::Register, None) => (
                format!("Create a passkey for {rp}{user}?"),
                "Create passkey",
            ),
            (PromptAction::SignIn, None) => (
                format!("Sign in to {rp}{user} with your passkey?"),
                "Sign in",
            ),
            (PromptAction::Reset, _) => (
                "ERASE EVERY PASSKEY on this authenticator? This cannot be undone.".to_owned(),
                "Erase all",
            ),
            (PromptAction::Select, _) => ("Use this authenticator?".to_owned(), "Use it"),
        };
        let description = format!("{description}\n\nApprove only if you started this yourself.");
        let dialog = Dialog {
            description: &description,
            ok,
            cancel: "Deny",
            ..Dialog::default()
        };
        interaction.set_status(KeepaliveStatus::UpNeeded);
        let outcome = self.prompt.confirm(&dialog, interaction);
        interaction.set_status(KeepaliveStatus::Processing);
        tracing::info!(
            prompt = self.prompt.name(),
            rp_id = prompt.rp_id,
            outcome = match &outcome {
                Ok(_) => "approved",
                Err(PromptError::Declined) => "denied",
                Err(PromptError::Cancelled) => "cancelled",
                Err(PromptError::TimedOut) => "timed out",
                Err(PromptError::Unavailable(_)) => "unavailable",
            },
            "presence"
        );
        match outcome {
            Ok(Answer::Ok) => Ok(()),
            Ok(Answer::NotOk) | Err(PromptError::Declined) => Err(UserActionError::Denied),
            Err(PromptError::Cancelled) => Err(UserActionError::Cancelled),
            Err(PromptError::TimedOut) => Err(UserActionError::Timeout),
            Err(PromptError::Unavailable(why)) => {
                tracing::error!(%why, "the presence prompt is unavailable");
                Err(UserActionError::Unavailable(
                    VerifierErrorCode::NotInteractive,
                ))
            }
        }
    }

    fn verify_user(
        &mut self,
        _prompt: &Prompt<'_>,
        _interaction: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        Err(UserActionError::Unavailable(
            VerifierErrorCode::BiometryNotAvailable,
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use passgate_platform_api::user_verifier::{Interaction, Prompt, PromptAction, UserVerifier};
    use zeroize::Zeroizing;

    use passgate_platform_api::trusted_prompt::{Answer, Dialog, PromptError, TrustedPrompt};

    use super::{APP_RP_ID_PREFIX, PromptPresence};

    /// Records each confirmation's text and button, answers with `answer`.
    struct Recording {
        asked: Mutex<Vec<(String, String)>>,
        answer: Answer,
    }

    impl TrustedPrompt for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn secret(
            &self,
            _: &Dialog<'_>,
            _: &Interaction,
        ) -> Result<Zeroizing<String>, PromptError> {
            Err(PromptError::Declined)
        }
        fn confirm(&self, dialog: &Dialog<'_>, _: &Interaction) -> Result<Answer, PromptError> {
            self.asked
                .lock()
                .unwrap()
                .push((dialog.description.to_owned(), dialog.ok.to_owned()));
            Ok(self.answer)
        }
    }

    fn ask(
        rp_id: &str,
        action: PromptAction,
        answer: Answer,
    ) -> (Result<(), String>, String, String) {
        let prompt = std::sync::Arc::new(Recording {
            asked: Mutex::new(Vec::new()),
            answer,
        });
        let mut presence = PromptPresence::new(prompt.clone());
        let outcome = presence
            .check_presence(
                &Prompt {
                    action,
                    rp_id: Some(rp_id),
                    user_name: Some("alice"),
                },
                &Interaction::new(),
            )
            .map_err(|e| e.to_string());
        let (text, ok) = prompt.asked.lock().unwrap().pop().unwrap();
        (outcome, text, ok)
    }

    #[test]
    fn a_website_passkey_is_worded_as_signing_in_to_the_site() {
        let (outcome, text, ok) = ask("example.com", PromptAction::SignIn, Answer::Ok);
        assert_eq!(outcome, Ok(()));
        assert!(
            text.starts_with("Sign in to example.com as \u{201c}alice\u{201d} with your passkey?"),
            "{text}"
        );
        assert_eq!(ok, "Sign in");
    }

    #[test]
    fn an_app_key_names_the_app_and_never_says_sign_in() {
        let rp = format!("{APP_RP_ID_PREFIX}com.example.bank");
        let (outcome, text, ok) = ask(&rp, PromptAction::SignIn, Answer::Ok);
        assert_eq!(outcome, Ok(()));
        assert!(
            text.starts_with("The app \u{201c}com.example.bank\u{201d} asks to use its key"),
            "{text}"
        );
        assert!(
            !text.contains("Sign in") && !text.contains(APP_RP_ID_PREFIX),
            "{text}"
        );
        assert_eq!(ok, "Allow");

        let page = format!("{APP_RP_ID_PREFIX}https://shop.example");
        let (_, text, _) = ask(&page, PromptAction::SignIn, Answer::Ok);
        assert!(
            text.starts_with(
                "The page https://shop.example asks to use its key as \u{201c}alice\u{201d}"
            ),
            "{text}"
        );

        let (outcome, text, ok) = ask(&rp, PromptAction::Register, Answer::NotOk);
        assert_eq!(outcome, Err("the user denied the request".to_owned()));
        assert!(
            text.starts_with("The app \u{201c}com.example.bank\u{201d} asks to create a key"),
            "{text}"
        );
        assert_eq!(ok, "Create key");
    }

    #[test]
    fn page_chosen_strings_reach_the_prompt_cleaned() {
        let prompt = std::sync::Arc::new(Recording {
            asked: Mutex::new(Vec::new()),
            answer: Answer::Ok,
        });
        let mut presence = PromptPresence::new(prompt.clone());
        let hostile = "eve\u{1b}[1A\u{1b}[2KSign in to bank.com\u{1b}]52;c;Zm9v\u{7}\u{202e}\nx";
        presence
            .check_presence(
                &Prompt {
                    action: PromptAction::SignIn,
                    rp_id: Some("ex\u{200b}ample.com\u{1b}]0;title\u{7}"),
                    user_name: Some(hostile),
                },
                &Interaction::new(),
            )
            .unwrap();
        let (text, _) = prompt.asked.lock().unwrap().pop().unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{202e}'),
            "{text:?}"
        );
        assert!(
            text.starts_with("Sign in to example.com]0;title as \u{201c}eve[1A[2KSign in to bank.com]52;c;Zm9v x\u{201d}"),
            "{text:?}"
        );
        let line = super::request_line(
            "http://localhost:8080",
            "localhost",
            crate::ceremony::Purpose::Create {
                user_name: "p\u{430}ypal\u{1b}[31m",
            },
        );
        assert!(!line.contains('\u{1b}'), "{line:?}");
        assert!(
            line.contains("\u{26a0} mixes Latin and Cyrillic"),
            "{line:?}"
        );
    }
}
