//! The subcommands of `passgate`, one module each: every module parses its flags and calls a
//! crate. What several subcommands share lives here: how an authenticator run in this process
//! chooses its key store, collects presence and verifies users.

pub mod app;
pub mod authenticator;
pub mod backends;
pub mod bridge;
pub mod conformance;
pub mod demo;
pub mod install;
pub mod log_sink;
pub mod presence;
pub mod prompt;
pub mod rp;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use passgate_authenticator::api::user_verifier::UserVerifier;
use passgate_authenticator::presence::{AutoPresence, TerminalPresence};
use passgate_authenticator::setup::{self, KeyStoreChoice, VerifierChoice};
use passgate_bridge::prompt::{Pinentry, PromptPresence};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum KeyStoreKind {
    /// Keys generated in software, AES-256-GCM wrapped under the device key.
    Software,
    /// Keys created and used inside a TPM 2.0 (build with `--features tpm`).
    Tpm,
}

#[derive(clap::Args, Clone)]
struct KeyStoreArgs {
    /// Where credential private keys live.
    #[arg(long, value_enum, default_value_t = KeyStoreKind::Software)]
    key_store: KeyStoreKind,
    /// The TPM to use with `--key-store tpm`, as a TCTI string (default: $TPM2TOOLS_TCTI,
    /// $TSS2_TCTI, then device:/dev/tpmrm0), e.g. `swtpm:host=127.0.0.1,port=2321`.
    #[arg(long)]
    tcti: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PresenceMode {
    /// Ask on this terminal: `y` and Enter approves, anything else denies.
    Terminal,
    /// Ask in a pinentry window (`--pinentry`, $PASSGATE_PINENTRY or `pinentry` on PATH).
    Pinentry,
    /// Approve presence with nobody there. FOR TESTS ONLY; never claims user verification.
    Auto,
    /// Where the person is (the default on uhid): a finger enrolled in fprintd (presence and
    /// user verification), else a GUI pinentry window in a graphical session
    /// (pinentry-gnome3, -qt, -gtk-2), else this terminal.
    AutoDetect,
}

/// How an authenticator run here verifies users (`authenticator serve`, `passgate app`).
#[derive(clap::Args, Clone)]
struct VerifierArgs {
    /// How users are verified: `none` (presence only) or `fprintd` (fingerprint through the
    /// fprintd daemon; in the default build).
    #[arg(long, value_enum, default_value_t = VerifierKind::None)]
    user_verifier: VerifierKind,
    /// Whose enrolled fingerprints count with `--user-verifier fprintd` (default: $USER).
    #[arg(long)]
    fprint_user: Option<String>,
    /// Failed fingerprint scans before built-in verification is locked out (biometryLockout,
    /// CTAP2_ERR_UV_BLOCKED) and the PIN is required; a correct PIN or a match restores them.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=25))]
    max_attempts: u8,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum VerifierKind {
    /// Presence only; user verification through the PIN.
    None,
    /// Fingerprint verification through fprintd on the system bus.
    Fprintd,
}

fn fprint_user(flag: Option<String>) -> String {
    setup::fprint_user(flag.as_deref())
}

/// fprintd verification around `presence` (an error without fprintd support).
fn fprintd_verifier(
    user: &str,
    timeout: Duration,
    presence: Box<dyn UserVerifier>,
) -> Result<Box<dyn UserVerifier>> {
    let choice = VerifierChoice::Fprintd {
        user: user.to_owned(),
        finger_presence: false,
    };
    Ok(setup::user_verification(&choice, presence, timeout)?.user)
}

/// How an authenticator served here (`authenticator serve`, `passgate app`) collects presence
/// and verifies users.
struct UserArgs<'a> {
    presence: PresenceMode,
    /// How long presence (and a fingerprint scan) waits for the person.
    presence_timeout: Duration,
    /// The pinentry program for [`PresenceMode::Pinentry`] (default: $PASSGATE_PINENTRY, then
    /// `pinentry` on PATH).
    pinentry: Option<&'a std::path::Path>,
    verifier: &'a VerifierArgs,
}

/// Presence as `args.presence` collects it, wrapped by fprintd for `--user-verifier fprintd`
/// (or when `--presence auto-detect` finds an enrolled finger, which is then the presence too).
fn user_verifier(args: &UserArgs<'_>) -> Result<setup::UserVerification> {
    let pinentry_presence = |program: Option<&std::path::Path>| -> Result<Box<dyn UserVerifier>> {
        let pinentry = Pinentry::locate(program)
            .map_err(|e| anyhow::anyhow!("--presence pinentry: {e}"))?
            .with_timeout(args.presence_timeout);
        Ok(Box::new(PromptPresence::new(Arc::new(pinentry))))
    };
    let fprint_user = fprint_user(args.verifier.fprint_user.clone());
    let mut choice = match args.verifier.user_verifier {
        VerifierKind::None => VerifierChoice::Presence,
        VerifierKind::Fprintd => VerifierChoice::Fprintd {
            user: fprint_user.clone(),
            finger_presence: false,
        },
    };
    let presence: Box<dyn UserVerifier> = match args.presence {
        PresenceMode::Auto => Box::new(AutoPresence::new()),
        PresenceMode::Terminal => Box::new(TerminalPresence::new(args.presence_timeout)),
        PresenceMode::Pinentry => pinentry_presence(args.pinentry)?,
        PresenceMode::AutoDetect => {
            let detected = presence::detect(&presence::Desktop::probe(
                args.pinentry,
                finger_enrolled(&fprint_user, args.presence_timeout),
            ));
            tracing::info!("--presence auto-detect: {}", detected.describe());
            if detected.fingerprint {
                choice = VerifierChoice::Fprintd {
                    user: fprint_user.clone(),
                    finger_presence: true,
                };
            }
            match &detected.prompt {
                presence::PresencePrompt::Pinentry(program) => pinentry_presence(Some(program))?,
                presence::PresencePrompt::Terminal => {
                    Box::new(TerminalPresence::new(args.presence_timeout))
                }
            }
        }
    };
    Ok(setup::user_verification(
        &choice,
        presence,
        args.presence_timeout,
    )?)
}

/// Whether fprintd has a finger enrolled for `user` (false without fprintd support).
#[cfg(feature = "fprintd")]
fn finger_enrolled(user: &str, timeout: Duration) -> bool {
    use passgate_authenticator::fprintd::FprintdVerifier;
    FprintdVerifier::new(user, timeout, Box::new(AutoPresence::new()))
        .status()
        .enrolled
}

#[cfg(not(feature = "fprintd"))]
fn finger_enrolled(_: &str, _: Duration) -> bool {
    false
}

impl KeyStoreArgs {
    /// The key store these flags choose, with the TPM's TCTI resolved.
    fn choice(&self) -> KeyStoreChoice {
        match self.key_store {
            KeyStoreKind::Software => KeyStoreChoice::Software,
            KeyStoreKind::Tpm => KeyStoreChoice::Tpm { tcti: self.tcti() },
        }
    }

    /// The TPM these flags name (`--tcti`, else the environment, else the default).
    fn tcti(&self) -> String {
        setup::resolve_tcti(self.tcti.as_deref())
    }
}

/// `--state-dir DIR`, or the default state directory.
fn state_dir_or_default(flag: Option<&PathBuf>) -> Result<PathBuf> {
    match flag {
        Some(dir) => Ok(dir.clone()),
        None => Ok(setup::default_state_dir()?),
    }
}

/// The authenticator a client subcommand talks to: `--authenticator` (`unix:PATH` or
/// `tcp://HOST:PORT`), by default the Unix socket in the default state directory. A TCP target
/// sends the connection secret the authenticator wrote there, when there is one.
fn authenticator_client(flag: Option<&str>) -> Result<passgate_bridge::CtapHidSocket> {
    use passgate_authenticator::transport::{secret::SECRET_FILE, stream::Address};
    let state_dir = setup::default_state_dir();
    let target = match (flag, &state_dir) {
        (Some(target), _) => target.to_owned(),
        (None, Ok(dir)) => Address::default_in(dir).to_string(),
        (None, Err(e)) => anyhow::bail!("{e}; pass --authenticator unix:PATH"),
    };
    let client = passgate_bridge::CtapHidSocket::new(&target);
    Ok(match state_dir {
        Ok(dir) => client.with_secret_file(&dir.join(SECRET_FILE))?,
        Err(_) => client,
    })
}
