//! User-presence backends that need no biometric hardware.
//!
//! - [`TerminalPresence`]: asks on the controlling terminal of the `passgate` process (a
//!   trusted prompt: web content cannot type into it). This is the default.
//! - [`AutoPresence`]: approves presence with nobody there. For automated tests only; it logs a
//!   warning when created and never claims user verification.

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::time::{Duration, Instant};

use crate::api::user_verifier::{
    Interaction, KeepaliveStatus, Prompt, PromptAction, UserActionError, UserVerified,
    UserVerifier, VerifierErrorCode, VerifierStatus,
};

pub use crate::api::user_verifier::no_verification_status;

/// Approves every presence check at once. Tests only.
#[derive(Debug)]
pub struct AutoPresence {
    _private: (),
}

impl AutoPresence {
    /// Creates the auto-approver and logs a warning that presence is not being checked.
    pub fn new() -> Self {
        tracing::warn!(
            "presence is approved automatically (--presence auto): for tests only, never for real use; \
             user verification is never claimed in this mode"
        );
        Self { _private: () }
    }
}

impl Default for AutoPresence {
    fn default() -> Self {
        Self::new()
    }
}

impl UserVerifier for AutoPresence {
    fn status(&self) -> VerifierStatus {
        no_verification_status()
    }

    fn check_presence(
        &mut self,
        _prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        if interaction.is_cancelled() {
            return Err(UserActionError::Cancelled);
        }
        Ok(())
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

/// Asks for presence on the terminal: the person types `y` and Enter to approve; anything else
/// (an empty Enter too) denies. Approving must be a deliberate answer to this question, not a
/// stray Enter meant for something else.
#[derive(Debug)]
pub struct TerminalPresence {
    lines: Option<Receiver<String>>,
    timeout: Duration,
}

impl TerminalPresence {
    /// Opens `/dev/tty`. With no terminal, every presence check fails with `NotInteractive`.
    pub fn new(timeout: Duration) -> Self {
        let lines = std::fs::File::open("/dev/tty").ok().map(|tty| {
            let (tx, rx) = channel();
            // A reader thread turns blocking terminal reads into a channel that can be
            // waited on with a timeout and interrupted by CTAPHID_CANCEL.
            std::thread::spawn(move || {
                for line in BufReader::new(tty).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Self { lines, timeout }
    }

    /// Reads answers from `lines` instead of the terminal (tests).
    #[cfg(test)]
    fn from_lines(lines: Receiver<String>, timeout: Duration) -> Self {
        Self {
            lines: Some(lines),
            timeout,
        }
    }

    fn describe(prompt: &Prompt<'_>) -> String {
        let what = match prompt.action {
            PromptAction::Register => "create a passkey",
            PromptAction::SignIn => "sign in",
            PromptAction::Reset => "ERASE ALL PASSKEYS",
            PromptAction::Select => "use this authenticator",
        };
        // The RP ID and account name come from the client: cleaned, so that they cannot draw
        // on the terminal.
        let clean = passgate_proto::display::clean;
        let rp = prompt
            .rp_id
            .map(|r| format!(" for {}", clean(r)))
            .unwrap_or_default();
        let user = prompt
            .user_name
            .map(|u| format!(" as \u{201c}{}\u{201d}", clean(u)))
            .unwrap_or_default();
        format!("{what}{rp}{user}")
    }
}

impl UserVerifier for TerminalPresence {
    fn status(&self) -> VerifierStatus {
        no_verification_status()
    }

    fn check_presence(
        &mut self,
        prompt: &Prompt<'_>,
        interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        let Some(lines) = &self.lines else {
            return Err(UserActionError::Unavailable(
                VerifierErrorCode::NotInteractive,
            ));
        };
        // Discard anything typed before the prompt appeared: approval must answer this prompt.
        loop {
            match lines.try_recv() {
                Ok(_) => continue,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(UserActionError::Unavailable(
                        VerifierErrorCode::NotInteractive,
                    ));
                }
            }
        }
        interaction.set_status(KeepaliveStatus::UpNeeded);
        let mut stderr = std::io::stderr();
        let _ = writeln!(
            stderr,
            "\npassgate: a request wants to {}.\n          Type y and Enter to approve; anything else denies ({} s).",
            Self::describe(prompt),
            self.timeout.as_secs()
        );
        let deadline = Instant::now() + self.timeout;
        let outcome = loop {
            if interaction.is_cancelled() {
                break Err(UserActionError::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(UserActionError::Timeout);
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            match lines.recv_timeout(wait) {
                Ok(answer) => {
                    let answer = answer.trim().to_ascii_lowercase();
                    break if answer == "y" || answer == "yes" {
                        Ok(())
                    } else {
                        Err(UserActionError::Denied)
                    };
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    break Err(UserActionError::Unavailable(
                        VerifierErrorCode::NotInteractive,
                    ));
                }
            }
        };
        interaction.set_status(KeepaliveStatus::Processing);
        let _ = writeln!(
            stderr,
            "passgate: {}",
            match outcome {
                Ok(()) => "approved",
                Err(UserActionError::Cancelled) => "cancelled by the client",
                Err(UserActionError::Timeout) => "timed out",
                Err(_) => "denied",
            }
        );
        outcome
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
    use super::*;

    fn answer(line: &str) -> Result<(), UserActionError> {
        let (tx, rx) = channel();
        let mut presence = TerminalPresence::from_lines(rx, Duration::from_secs(2));
        let line = line.to_owned();
        // Typed after the prompt appears (anything typed before is discarded).
        let typist = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            tx.send(line).unwrap();
            tx
        });
        let prompt = Prompt {
            action: PromptAction::SignIn,
            rp_id: Some("example.com"),
            user_name: Some("alice"),
        };
        let outcome = presence.check_presence(&prompt, &Interaction::new());
        drop(typist.join());
        outcome
    }

    #[test]
    fn only_a_typed_yes_approves() {
        assert!(matches!(answer("y"), Ok(())));
        assert!(matches!(answer(" YES "), Ok(())));
        for denied in ["", "n", "yy", "\u{1b}[A"] {
            assert!(
                matches!(answer(denied), Err(UserActionError::Denied)),
                "{denied:?}"
            );
        }
    }

    #[test]
    fn the_prompt_line_is_cleaned() {
        let line = TerminalPresence::describe(&Prompt {
            action: PromptAction::Register,
            rp_id: Some("a.com\u{1b}]0;title\u{7}"),
            user_name: Some("eve\u{1b}[2K\u{202e}\nRequest from bank.com"),
        });
        assert_eq!(
            line,
            "create a passkey for a.com]0;title as \u{201c}eve[2K Request from bank.com\u{201d}"
        );
    }
}
