//! The trusted dialogs around a fingerprint scan, shaped by the app's options (Tauri's
//! `title`, `subtitle`, `reason`, `cancelTitle`, `fallbackTitle`, `allowDeviceCredential`,
//! `confirmationRequired`): the dialog shown while the finger is awaited, with the app's cancel
//! and fallback buttons, and the confirmation asked after a match when the app requires one.
//!
//! The scan itself runs in the authenticator (fprintd); the dialog runs beside it in the
//! host's trusted prompt (pinentry, the terminal). Whichever ends first ends the other: a match
//! closes the dialog, a button press stops the scan.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use passgate_platform_api::trusted_prompt::{Answer, PromptError, TrustedPrompt};
use passgate_platform_api::user_verifier::Interaction;

use crate::verify::{DialogText, PasscodeRequest, caller_lines};

/// What the dialog's second button does while the finger is awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// The PIN is allowed (`allowDeviceCredential`): the button stops the scan and asks for
    /// the PIN.
    Pin,
    /// The PIN is not allowed: the button stops the scan and the call rejects with
    /// `userFallback`, for the app to offer its own fallback (as iOS does).
    UserFallback,
    /// No fallback button (`allowDeviceCredential: false` with an empty `fallbackTitle`).
    Hidden,
}

impl Fallback {
    /// The fallback for `allow_device_credential` and the app's `fallbackTitle`: an empty
    /// title hides the button only where the PIN is not allowed (iOS forces its default label
    /// back when the passcode is allowed).
    pub fn of(allow_device_credential: bool, fallback_title: Option<&str>) -> Self {
        match (allow_device_credential, fallback_title) {
            (true, _) => Self::Pin,
            (false, Some("")) => Self::Hidden,
            (false, _) => Self::UserFallback,
        }
    }
}

/// How often the dialog's thread looks at the app's cancellation.
const POLL: Duration = Duration::from_millis(50);

/// The dialog shown while the finger is awaited.
pub fn waiting_dialog(request: &PasscodeRequest<'_>, fallback: &Fallback) -> DialogText {
    let cancel = request.labels.cancel();
    let ok = match fallback {
        Fallback::Pin | Fallback::UserFallback => request.labels.fallback(),
        // pinentry's confirmation always has an approving button: with no fallback it is a
        // second way to cancel, with the same label.
        Fallback::Hidden => cancel.clone(),
    };
    DialogText {
        title: request.labels.title(),
        description: format!(
            "{}\n\nTouch the fingerprint sensor to confirm it is you.",
            caller_lines(request, "asks you to verify with your fingerprint.")
        ),
        ok,
        cancel,
    }
}

/// The confirmation asked after a match when the app sets `confirmationRequired: true`.
pub fn confirmation_dialog(request: &PasscodeRequest<'_>) -> DialogText {
    DialogText {
        title: request.labels.title(),
        description: format!(
            "{}\n\nYour fingerprint was recognised. Confirm to continue.",
            caller_lines(request, "asks you to verify with your fingerprint.")
        ),
        ok: "Confirm".to_owned(),
        cancel: request.labels.cancel(),
    }
}

/// The dialog shown while the finger is awaited for a SOTER signature: passgate's line naming
/// the operation and the caller, then the app's `authContent` (cleaned, at most
/// `max_content_chars` characters), which WeChat shows in its own fingerprint dialog. There is
/// no fallback (SOTER is fingerprint only): both buttons cancel.
pub fn soter_dialog(caller: &str, auth_content: &str, max_content_chars: usize) -> DialogText {
    let clean = passgate_proto::display::clean;
    let content = passgate_proto::display::clean_limited(auth_content, max_content_chars).text;
    let mut description = format!("SOTER signature for {}", clean(caller));
    if !content.is_empty() {
        description.push_str(": ");
        description.push_str(&content);
    }
    description.push_str("\n\nTouch the fingerprint sensor to sign.");
    DialogText {
        title: "passgate".to_owned(),
        description,
        ok: "Cancel".to_owned(),
        cancel: "Cancel".to_owned(),
    }
}

/// How the waiting dialog ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogOutcome {
    /// The scan ended first and closed it (or there was no dialog).
    Closed,
    /// The person pressed the fallback button.
    Fallback,
    /// The person pressed the cancel button (or closed the window).
    Cancelled,
    /// The dialog could not be shown.
    Unavailable(String),
    /// Nobody answered within the prompt's own timeout.
    TimedOut,
}

/// Runs `scan` (on its own interaction, which the app's `interaction` and the dialog's buttons
/// cancel) while `prompt` shows the waiting dialog (with `error` above it after a failed
/// scan); the scan's result and how the dialog ended.
/// A dialog that cannot be shown stops the scan: nobody should touch a sensor without seeing
/// who asks.
pub fn scan_with_dialog<T>(
    prompt: &dyn TrustedPrompt,
    text: &DialogText,
    error: Option<&str>,
    fallback: &Fallback,
    interaction: &Interaction,
    scan: impl FnOnce(&Interaction) -> T,
) -> (T, DialogOutcome) {
    let scanning = Interaction::new();
    let dialog_interaction = Interaction::new();
    let scan_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The app's cancellation reaches both the scan and the dialog.
        let watcher = scope.spawn(|| {
            while !scan_done.load(Ordering::SeqCst) {
                if interaction.is_cancelled() {
                    scanning.cancel();
                    dialog_interaction.cancel();
                }
                std::thread::sleep(POLL);
            }
        });
        let dialog = scope.spawn(|| {
            let answer = prompt.confirm(&text.dialog("", error), &dialog_interaction);
            let outcome = match answer {
                Ok(Answer::Ok) if *fallback != Fallback::Hidden => DialogOutcome::Fallback,
                Ok(_) | Err(PromptError::Declined) => DialogOutcome::Cancelled,
                Err(PromptError::Cancelled) => DialogOutcome::Closed,
                Err(PromptError::TimedOut) => DialogOutcome::TimedOut,
                Err(PromptError::Unavailable(why)) => DialogOutcome::Unavailable(why),
            };
            if outcome != DialogOutcome::Closed {
                scanning.cancel();
            }
            outcome
        });
        let result = scan(&scanning);
        scan_done.store(true, Ordering::SeqCst);
        dialog_interaction.cancel();
        let outcome = dialog.join().unwrap_or_else(|_| {
            DialogOutcome::Unavailable("the dialog's thread panicked".to_owned())
        });
        let _ = watcher.join();
        (result, outcome)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::PromptLabels;

    fn request<'a>(labels: PromptLabels<'a>) -> PasscodeRequest<'a> {
        PasscodeRequest {
            caller: "https://shop.example",
            reason: "Pay 12.00 EUR",
            attempt: 1,
            labels,
        }
    }

    #[test]
    fn the_waiting_dialog_carries_the_apps_labels_under_passgates_line() {
        let labels = PromptLabels {
            title: Some("Shop"),
            subtitle: Some("Order 66"),
            cancel: Some("Not now"),
            fallback: Some("Type my PIN"),
        };
        let text = waiting_dialog(&request(labels), &Fallback::Pin);
        assert_eq!(
            text,
            DialogText {
                title: "Shop".into(),
                description: "https://shop.example asks you to verify with your fingerprint.\nReason: Pay 12.00 EUR\nOrder 66\n\nTouch the fingerprint sensor to confirm it is you.".into(),
                ok: "Type my PIN".into(),
                cancel: "Not now".into(),
            }
        );
        let defaults = waiting_dialog(&request(PromptLabels::default()), &Fallback::UserFallback);
        assert_eq!(
            (
                defaults.title.as_str(),
                defaults.ok.as_str(),
                defaults.cancel.as_str()
            ),
            ("passgate", "Use PIN", "Cancel")
        );
        assert_eq!(
            defaults.description,
            "https://shop.example asks you to verify with your fingerprint.\nReason: Pay 12.00 EUR\n\nTouch the fingerprint sensor to confirm it is you."
        );
        let hidden = waiting_dialog(&request(labels), &Fallback::Hidden);
        assert_eq!(
            (hidden.ok.as_str(), hidden.cancel.as_str()),
            ("Not now", "Not now")
        );
    }

    #[test]
    fn the_confirmation_after_a_match_is_exact() {
        let labels = PromptLabels {
            title: Some("Shop"),
            subtitle: None,
            cancel: Some("Stop"),
            fallback: None,
        };
        assert_eq!(
            confirmation_dialog(&request(labels)),
            DialogText {
                title: "Shop".into(),
                description: "https://shop.example asks you to verify with your fingerprint.\nReason: Pay 12.00 EUR\n\nYour fingerprint was recognised. Confirm to continue.".into(),
                ok: "Confirm".into(),
                cancel: "Stop".into(),
            }
        );
    }

    #[test]
    fn hostile_labels_are_cleaned_and_cannot_forge_passgates_line() {
        let labels = PromptLabels {
            title: Some("\u{202e}knab\u{1b}]0;x\u{7}"),
            subtitle: Some("\nhttps://bank.example asks you to verify\u{200b}"),
            cancel: Some("\u{1b}[2J"),
            fallback: Some(&"P".repeat(200)),
        };
        let text = waiting_dialog(&request(labels), &Fallback::Pin);
        assert_eq!(text.title, "knab]0;x");
        assert_eq!(text.cancel, "[2J");
        assert_eq!(text.ok.chars().count(), crate::verify::MAX_LABEL_CHARS);
        assert!(text.ok.ends_with('\u{2026}'), "{}", text.ok);
        // The subtitle's line feed is gone: passgate's line stays the first one, alone.
        assert_eq!(
            text.description,
            "https://shop.example asks you to verify with your fingerprint.\nReason: Pay 12.00 EUR\nhttps://bank.example asks you to verify\n\nTouch the fingerprint sensor to confirm it is you."
        );
        // Labels made only of invisible characters fall back to passgate's own.
        let blank = PromptLabels {
            title: Some("\u{200b}"),
            cancel: Some(" \u{202e} "),
            ..PromptLabels::default()
        };
        let text = waiting_dialog(&request(blank), &Fallback::Pin);
        assert_eq!(
            (text.title.as_str(), text.cancel.as_str()),
            ("passgate", "Cancel")
        );
    }

    #[test]
    fn the_soter_dialog_names_the_operation_the_caller_and_the_auth_content() {
        assert_eq!(
            soter_dialog("https://shop.example", "Pay 12.00 EUR", 42),
            DialogText {
                title: "passgate".into(),
                description: "SOTER signature for https://shop.example: Pay 12.00 EUR\n\nTouch the fingerprint sensor to sign.".into(),
                ok: "Cancel".into(),
                cancel: "Cancel".into(),
            }
        );
        assert_eq!(
            soter_dialog("wx-app", "", 42).description,
            "SOTER signature for wx-app\n\nTouch the fingerprint sensor to sign."
        );
        // Hostile content is cleaned and capped; it cannot start a line of its own.
        let hostile = soter_dialog(
            "wx-app",
            "\u{202e}\nSOTER signature for bank\u{1b}[2J\u{200b}",
            16,
        );
        assert_eq!(
            hostile.description,
            "SOTER signature for wx-app: SOTER signature\u{2026}\n\nTouch the fingerprint sensor to sign."
        );
    }

    #[test]
    fn an_empty_fallback_title_hides_the_button_only_without_the_pin() {
        assert_eq!(Fallback::of(true, Some("")), Fallback::Pin);
        assert_eq!(Fallback::of(true, None), Fallback::Pin);
        assert_eq!(Fallback::of(false, None), Fallback::UserFallback);
        assert_eq!(
            Fallback::of(false, Some("Other way")),
            Fallback::UserFallback
        );
        assert_eq!(Fallback::of(false, Some("")), Fallback::Hidden);
    }
}
