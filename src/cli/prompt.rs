//! Where the PIN is typed and presence approved for the bridge and the demo: a trusted
//! prompt (this terminal or a pinentry window), never the page.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use passgate_bridge::prompt::{Pinentry, PromptUi, TerminalPrompt};
use passgate_platform_api::trusted_prompt::TrustedPrompt;

/// Where the PIN is typed: never into the page.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum PinPromptKind {
    /// A pinentry program (`--pinentry`, $PASSGATE_PINENTRY, or `pinentry` on PATH).
    Pinentry,
    /// The terminal running passgate.
    Terminal,
    /// A graphical pinentry in a desktop session (pinentry-gnome3, -qt or -gtk2, when
    /// installed and `--pinentry`/$PASSGATE_PINENTRY name no other), else the terminal when
    /// there is one, else pinentry.
    Auto,
    /// Nowhere: ceremonies that need user verification fail (unless the authenticator
    /// verifies by itself).
    None,
}

/// How a trusted prompt is run.
#[derive(clap::Args, Clone)]
pub struct PinPromptArgs {
    /// The pinentry program (default: $PASSGATE_PINENTRY, then `pinentry` on PATH).
    #[arg(long)]
    pub pinentry: Option<PathBuf>,
    /// Seconds a prompt waits for the person.
    #[arg(long, default_value_t = 120)]
    pub prompt_timeout: u64,
    /// Seconds a pinUvAuthToken is kept after the PIN was entered (0: never), so that a
    /// ceremony the authenticator never ran (aborted after the PIN) is retried without asking
    /// again. CTAP 2.1 lets a token authorise one makeCredential/getAssertion: a second
    /// ceremony asks for the PIN whatever this says.
    #[arg(long, default_value_t = 120)]
    pub pin_token_ttl: u64,
}

impl PinPromptArgs {
    /// `--pin-token-ttl` as a duration.
    pub fn pin_token_ttl(&self) -> Duration {
        Duration::from_secs(self.pin_token_ttl)
    }
}

/// The trusted prompt `kind` names; `None` for [`PinPromptKind::None`].
pub fn trusted_prompt(
    kind: PinPromptKind,
    args: &PinPromptArgs,
) -> Result<Option<Arc<dyn TrustedPrompt>>> {
    let timeout = Duration::from_secs(args.prompt_timeout.max(1));
    let pinentry = || -> Result<Arc<dyn TrustedPrompt>> {
        let p = Pinentry::locate(args.pinentry.as_deref())
            .map_err(|e| anyhow::anyhow!("pinentry: {e}"))?
            .with_timeout(timeout);
        Ok(Arc::new(p))
    };
    Ok(match kind {
        PinPromptKind::None => None,
        PinPromptKind::Pinentry => Some(pinentry()?),
        PinPromptKind::Terminal => Some(Arc::new(
            TerminalPrompt::open()
                .map_err(|e| anyhow::anyhow!("--pin-prompt terminal: {e}"))?
                .with_timeout(timeout),
        )),
        PinPromptKind::Auto => {
            let named = args.pinentry.is_some()
                || std::env::var_os(passgate_bridge::prompt::pinentry::ENV_PROGRAM)
                    .is_some_and(|v| !v.is_empty());
            let window = (!named).then(Pinentry::graphical).flatten();
            match (window, TerminalPrompt::open()) {
                (Some(window), _) => Some(Arc::new(window.with_timeout(timeout))),
                (None, Ok(t)) => Some(Arc::new(t.with_timeout(timeout))),
                (None, Err(_)) => Some(pinentry()?),
            }
        }
    })
}

/// The bridge's UI on `prompt` (no UI without one).
pub fn bridge_ui(
    prompt: Option<&Arc<dyn TrustedPrompt>>,
) -> Box<dyn passgate_bridge::UserInterface> {
    match prompt {
        Some(p) => Box::new(PromptUi::new(Arc::clone(p))),
        None => Box::new(passgate_bridge::NoUserInterface),
    }
}
