//! The trusted prompt: a place to ask the person that web content cannot reach (a pinentry
//! window, the terminal running passgate), and the plain types it speaks.
//!
//! This is the seam, not a prompt: the bridge implements it (`passgate_bridge::prompt`:
//! pinentry, the terminal) and the app APIs ask through it, so neither knows the other.
//! A page can draw anything, including a perfect copy of a PIN dialog; what it cannot do is
//! open a pinentry window or read the terminal, so the PIN is entered there.

use std::time::Duration;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::user_verifier::Interaction;

/// One dialog: what the person reads and the choices they have.
#[derive(Debug, Clone, Copy)]
pub struct Dialog<'a> {
    /// The window title.
    pub title: &'a str,
    /// What is asked and why (may span lines).
    pub description: &'a str,
    /// The label in front of a secret's input field.
    pub prompt: &'a str,
    /// Why the previous answer was refused, shown prominently.
    pub error: Option<&'a str>,
    /// The label of the approving button.
    pub ok: &'a str,
    /// The label of the declining button.
    pub cancel: &'a str,
    /// A third choice, when there is one (e.g. "Another account").
    pub not_ok: Option<&'a str>,
}

impl Default for Dialog<'_> {
    fn default() -> Self {
        Self {
            title: "passgate",
            description: "",
            prompt: "PIN:",
            error: None,
            ok: "OK",
            cancel: "Cancel",
            not_ok: None,
        }
    }
}

/// The person's answer to a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The approving button.
    Ok,
    /// The third choice ([`Dialog::not_ok`]).
    NotOk,
}

/// Why a prompt gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// The person declined (Cancel, Escape, `n`, end of input).
    #[error("the user declined")]
    Declined,
    /// The request was cancelled (the page aborted, the ceremony timed out): the prompt was
    /// closed.
    #[error("the request was cancelled")]
    Cancelled,
    /// Nobody answered within the prompt's timeout.
    #[error("nobody answered the prompt in time")]
    TimedOut,
    /// The prompt cannot be shown (no pinentry program, no terminal, a broken protocol).
    #[error("the prompt is unavailable: {0}")]
    Unavailable(String),
}

/// A place to ask the person that web content cannot reach.
pub trait TrustedPrompt: Send + Sync {
    /// A short name for logs and messages ("pinentry", "terminal").
    fn name(&self) -> &'static str;

    /// How long a dialog waits for the person, when it has its own timeout (named in the
    /// page's error when nobody answered).
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// Asks for a secret (a PIN); the input is not echoed.
    fn secret(
        &self,
        dialog: &Dialog<'_>,
        interaction: &Interaction,
    ) -> Result<Zeroizing<String>, PromptError>;

    /// Asks for a yes/no (or the third choice, when the dialog offers one).
    fn confirm(
        &self,
        dialog: &Dialog<'_>,
        interaction: &Interaction,
    ) -> Result<Answer, PromptError>;

    /// Lets the person pick one of `options`; the default asks about each in turn, every
    /// question naming all of them (so each dialog shows the whole choice). When two options
    /// are left, one dialog offers both as its two buttons, so a choice between two accounts is
    /// a single dialog (a dialog has at most three buttons: two choices and Cancel).
    fn choose(
        &self,
        description: &str,
        options: &[String],
        interaction: &Interaction,
    ) -> Result<usize, PromptError> {
        let listed: String = options
            .iter()
            .map(|o| format!("\n  \u{2022} {o}"))
            .collect();
        let mut i = 0;
        while let Some(option) = options.get(i) {
            if let Some(other) = options.get(i + 1).filter(|_| i + 2 == options.len()) {
                let text = format!("{description}{listed}");
                let (first, second) = (use_label(option), use_label(other));
                let dialog = Dialog {
                    description: &text,
                    ok: &first,
                    cancel: "Cancel",
                    not_ok: Some(&second),
                    ..Dialog::default()
                };
                return match self.confirm(&dialog, interaction)? {
                    Answer::Ok => Ok(i),
                    Answer::NotOk => Ok(i + 1),
                };
            }
            let last = i + 1 == options.len();
            let text = format!(
                "{description}{listed}\n\n{option} ({} of {})",
                i + 1,
                options.len()
            );
            let dialog = Dialog {
                description: &text,
                ok: "Use this account",
                cancel: "Cancel",
                not_ok: (!last).then_some("Next account"),
                ..Dialog::default()
            };
            match self.confirm(&dialog, interaction)? {
                Answer::Ok => return Ok(i),
                Answer::NotOk => i += 1,
            }
        }
        Err(PromptError::Declined)
    }
}

/// A button that picks `option`: "Use NAME", the name cut (at a character boundary) so that the
/// button stays a button; the dialog's text lists every option in full.
fn use_label(option: &str) -> String {
    const MAX_CHARS: usize = 32;
    let mut label: String = option.chars().take(MAX_CHARS).collect();
    if option.chars().nth(MAX_CHARS).is_some() {
        label.push('\u{2026}');
    }
    format!("Use {label}")
}

/// The two dialogs that choose a first PIN: what they say, and what they refuse at once.
#[derive(Debug, Clone, Copy)]
pub struct NewPinDialogs<'a> {
    /// Who asks and for what: the first lines of both dialogs.
    pub head: &'a str,
    /// Below the head in the first dialog: why a PIN is chosen now, and its rules.
    pub choose: &'a str,
    /// Why an earlier choice was refused, shown on the first dialog of the first round.
    pub problem: Option<&'a str>,
    /// Refuses a PIN shorter than this (in Unicode code points) before it is typed again;
    /// `None` leaves the length to the caller.
    pub min_length: Option<usize>,
}

/// Asks for a new PIN, typed twice so a typo is not locked in, in up to three rounds (a
/// mismatch or a too-short PIN starts the next one, saying why). `secret` shows one dialog and
/// answers the secret typed, or `None` when there is none to use (declined, cancelled, the
/// prompt unavailable: it logs why). The answer is the PIN once both entries match, `None`
/// when `secret` gave none or three rounds failed.
pub fn ask_new_pin(
    dialogs: &NewPinDialogs<'_>,
    mut secret: impl FnMut(&Dialog<'_>) -> Option<Zeroizing<String>>,
) -> Option<Zeroizing<String>> {
    let head = dialogs.head;
    let first_text = format!("{head}\n\n{}", dialogs.choose);
    let again_text = format!("{head}\n\nType the new PIN again.");
    let mut problem = dialogs.problem.map(str::to_owned);
    for _ in 0..3 {
        let pin = secret(&Dialog {
            description: &first_text,
            prompt: "New PIN:",
            error: problem.as_deref(),
            ok: "Next",
            ..Dialog::default()
        })?;
        if let Some(min_length) = dialogs.min_length.filter(|&min| pin.chars().count() < min) {
            problem = Some(format!(
                "The PIN must have at least {min_length} characters."
            ));
            continue;
        }
        let repeated = secret(&Dialog {
            description: &again_text,
            prompt: "Repeat:",
            ok: "Set PIN",
            ..Dialog::default()
        })?;
        // Constant time, as every comparison of a secret (subtle: no C code in this crate).
        if bool::from(pin.as_bytes().ct_eq(repeated.as_bytes())) {
            return Some(pin);
        }
        problem = Some("The two PINs were different. Choose the PIN again.".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers each confirm from a script and records the buttons every dialog offered.
    struct Scripted {
        answers: Mutex<Vec<Answer>>,
        shown: Mutex<Vec<(String, Option<String>)>>,
    }

    impl Scripted {
        fn new(answers: &[Answer]) -> Self {
            Self {
                answers: Mutex::new(answers.iter().rev().copied().collect()),
                shown: Mutex::new(Vec::new()),
            }
        }

        fn shown(&self) -> Vec<(String, Option<String>)> {
            self.shown.lock().unwrap().clone()
        }
    }

    impl TrustedPrompt for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }

        fn secret(
            &self,
            _: &Dialog<'_>,
            _: &Interaction,
        ) -> Result<Zeroizing<String>, PromptError> {
            Err(PromptError::Unavailable("no secrets here".into()))
        }

        fn confirm(&self, dialog: &Dialog<'_>, _: &Interaction) -> Result<Answer, PromptError> {
            self.shown
                .lock()
                .unwrap()
                .push((dialog.ok.to_owned(), dialog.not_ok.map(str::to_owned)));
            self.answers
                .lock()
                .unwrap()
                .pop()
                .ok_or(PromptError::Declined)
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn two_accounts_are_one_dialog_with_a_button_each() {
        let prompt = Scripted::new(&[Answer::NotOk]);
        let chosen = prompt
            .choose(
                "Which account?",
                &names(&["alice", "grace"]),
                &Interaction::new(),
            )
            .unwrap();
        assert_eq!(chosen, 1);
        assert_eq!(
            prompt.shown(),
            vec![("Use alice".to_owned(), Some("Use grace".to_owned()))]
        );
    }

    #[test]
    fn three_accounts_page_until_two_are_left() {
        let prompt = Scripted::new(&[Answer::NotOk, Answer::Ok]);
        let chosen = prompt
            .choose("Which?", &names(&["a", "b", "c"]), &Interaction::new())
            .unwrap();
        assert_eq!(chosen, 1);
        assert_eq!(
            prompt.shown(),
            vec![
                (
                    "Use this account".to_owned(),
                    Some("Next account".to_owned())
                ),
                ("Use b".to_owned(), Some("Use c".to_owned())),
            ]
        );
        let last = Scripted::new(&[Answer::NotOk, Answer::NotOk]);
        let chosen = last
            .choose("Which?", &names(&["a", "b", "c"]), &Interaction::new())
            .unwrap();
        assert_eq!(chosen, 2);
    }

    #[test]
    fn one_account_has_no_second_button_and_cancel_declines() {
        let prompt = Scripted::new(&[Answer::Ok]);
        let chosen = prompt
            .choose("Which?", &names(&["solo"]), &Interaction::new())
            .unwrap();
        assert_eq!(chosen, 0);
        assert_eq!(prompt.shown(), vec![("Use this account".to_owned(), None)]);
        let cancelled = Scripted::new(&[]);
        assert!(matches!(
            cancelled.choose("Which?", &names(&["a", "b"]), &Interaction::new()),
            Err(PromptError::Declined)
        ));
    }

    #[test]
    fn a_long_name_is_cut_on_its_button() {
        let long = "é".repeat(40);
        assert_eq!(use_label(&long), format!("Use {}\u{2026}", "é".repeat(32)));
        assert_eq!(use_label("grace"), "Use grace");
    }
}
