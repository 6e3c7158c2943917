//! `passgate app …`: the app-facing APIs (biometric, identity vault, SOTER) from the command
//! line, on passgate's authenticator in this process (or one served over CTAPHID/TCP).
//!
//! `passgate app serve` is the host channel for scripts and tests: JSON lines on stdin,
//! `{"caller": "<origin or app ID>", "message": {"type": ..., ...}}`, each answered by one
//! line with the router's reply. The process is the trusted host, so it names the caller.
//! The other subcommands are one-shot conveniences built from the same messages.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use passgate_app_api::router::{AppRouter, MESSAGE_TYPES};
use passgate_app_api::soter::KeyBackend;
use passgate_app_api::{
    AppDevice, NoPasscode, PasscodeFile, PasscodeProvider, Platform, PromptPasscode,
};
use passgate_authenticator::Authenticator;
use passgate_authenticator::ctap::AttestationFormat;
use serde_json::{Value as Json, json};

use passgate_authenticator::setup::{AuthenticatorParts, build_authenticator};
use passgate_platform_api::trusted_prompt::TrustedPrompt;

use super::{
    KeyStoreArgs, KeyStoreKind, PresenceMode, UserArgs, VerifierArgs, state_dir_or_default,
    user_verifier,
};

#[derive(Subcommand)]
pub enum AppCommand {
    /// Serve the app APIs as JSON lines on stdin/stdout (`{"caller":..,"message":{..}}`).
    Serve(PlatformArgs),
    /// Tauri-style biometric status and authentication with a proof.
    Biometric {
        #[command(subcommand)]
        command: BiometricCommand,
    },
    /// The identity vault.
    Vault {
        #[command(subcommand)]
        action: VaultAction,
    },
    /// SOTER-compatible challenge signing.
    Soter {
        #[command(subcommand)]
        command: SoterCommand,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SoterKeyStore {
    /// RSA key in software, encrypted under a UV-gated secret.
    Software,
    /// RSA key in the TPM (binary built with `--features tpm`).
    Tpm,
}

/// The authenticator and host settings every `passgate app` command runs with.
#[derive(Args, Clone)]
pub struct PlatformArgs {
    /// State directory (the authenticator's; app data lives in its `app/`). Default:
    /// $XDG_STATE_HOME/passgate or ~/.local/state/passgate.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Use the authenticator served at `unix:PATH` or `tcp://HOST:PORT` (a `passgate
    /// authenticator serve`) instead of one in this process.
    #[arg(long)]
    authenticator: Option<String>,
    /// How user presence is collected (the in-process authenticator).
    #[arg(long, value_enum, default_value_t = PresenceMode::Terminal)]
    presence: PresenceMode,
    /// Seconds to wait for the person (presence prompt, fingerprint scan).
    #[arg(long, default_value_t = 30)]
    presence_timeout: u64,
    #[command(flatten)]
    key_store: KeyStoreArgs,
    #[command(flatten)]
    verifier: VerifierArgs,
    /// Read the authenticator PIN from this file when a PIN is needed (its first line);
    /// without it the PIN is asked on this terminal (echo off).
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// Ask in this pinentry program (PINs, and the dialogs around a fingerprint scan)
    /// instead of this terminal.
    #[arg(long, conflicts_with = "pin_file")]
    pinentry: Option<PathBuf>,
    /// Where SOTER device keys are created (default: like --key-store).
    #[arg(long, value_enum)]
    soter_key_store: Option<SoterKeyStore>,
    /// The TPM for SOTER keys (default: --tcti).
    #[arg(long)]
    soter_tcti: Option<String>,
}

#[derive(Subcommand)]
pub enum BiometricCommand {
    /// checkStatus(): prints `{isAvailable, biometryType, error?, errorCode?}`.
    Status(CallerPlatform),
    /// authenticate(reason, options): with --challenge, prints a proof.
    Authenticate(AuthenticateArgs),
    /// The device-bound key that signs proofs (created on first use).
    ProofKey(CallerPlatform),
}

#[derive(Args)]
pub struct CallerPlatform {
    /// The caller: a page origin or an app ID.
    #[arg(long, default_value = "passgate-cli")]
    caller: String,
    #[command(flatten)]
    platform: PlatformArgs,
}

#[derive(Args)]
pub struct AuthenticateArgs {
    #[command(flatten)]
    target: CallerPlatform,
    /// Why (shown to the user).
    #[arg(long)]
    reason: String,
    /// base64url bytes to sign into a proof.
    #[arg(long)]
    challenge: Option<String>,
    /// Fall back to the PIN when biometrics cannot be used.
    #[arg(long)]
    allow_device_credential: bool,
    /// Failed scans accepted in this call (1 to 5).
    #[arg(long)]
    attempts: Option<u8>,
}

#[derive(Args)]
pub struct VaultTarget {
    #[command(flatten)]
    target: CallerPlatform,
    /// The vault.
    #[arg(long, default_value = "default")]
    vault_id: String,
    /// The vault's user.
    #[arg(long, default_value = "user")]
    username: String,
    /// Auth mode of a new vault: BiometricOnly, BiometricAndPasscode, BiometricOrPasscode,
    /// PasscodeOnly.
    #[arg(long)]
    auth_mode: Option<String>,
    /// Unlock with the PIN.
    #[arg(long)]
    using_passcode: bool,
}

#[derive(Subcommand)]
pub enum VaultAction {
    /// Config, isLocked, isInUse, remainingAttempts.
    Status(VaultTarget),
    /// Unlock (creates a vault with nothing in it yet).
    Unlock(VaultTarget),
    /// Unlock and store a JSON value.
    Store {
        #[command(flatten)]
        vault: VaultTarget,
        /// The key.
        key: String,
        /// The value, as JSON (`'"token"'`, `'{"a":1}'`).
        value: String,
    },
    /// Unlock and print a value.
    Get {
        #[command(flatten)]
        vault: VaultTarget,
        /// The key.
        key: String,
    },
    /// Unlock and remove a value.
    Remove {
        #[command(flatten)]
        vault: VaultTarget,
        /// The key.
        key: String,
    },
    /// Unlock and list the keys.
    Keys(VaultTarget),
    /// Delete the vault and its data.
    Clear(VaultTarget),
}

#[derive(Subcommand)]
pub enum SoterCommand {
    /// checkIsSupportSoterAuthentication().
    Support(CallerPlatform),
    /// checkIsSoterEnrolledInDevice({checkAuthMode}).
    Enrolled {
        #[command(flatten)]
        target: CallerPlatform,
        /// fingerPrint, facial or speech.
        #[arg(long, default_value = "fingerPrint")]
        check_auth_mode: String,
    },
    /// Create the device key (one fingerprint verification); prints keyJson to register.
    Prepare(CallerPlatform),
    /// Print the prepared keyJson and its signature.
    AuthKey(CallerPlatform),
    /// startSoterAuthentication({challenge, requestAuthModes, authContent}).
    Start {
        #[command(flatten)]
        target: CallerPlatform,
        /// The challenge (signed as `raw`).
        #[arg(long)]
        challenge: String,
        /// The prompt text.
        #[arg(long, default_value = "")]
        auth_content: String,
    },
}

/// The app APIs' router (one per process) on `device`, with their files in `state_dir` and
/// PINs asked in `prompt` (the one WebAuthn uses); without a prompt no PIN can be given.
pub(super) fn app_router(
    device: AppDevice,
    state_dir: &std::path::Path,
    prompt: Option<&Arc<dyn TrustedPrompt>>,
) -> Result<Arc<AppRouter>> {
    let passcodes: Box<dyn PasscodeProvider> = match prompt {
        Some(p) => Box::new(PromptPasscode::new(Arc::clone(p))),
        None => Box::new(NoPasscode),
    };
    let platform = Platform::new(device, state_dir, passcodes)
        .with_context(|| format!("opening {}", state_dir.display()))?;
    Ok(Arc::new(AppRouter::new(Arc::new(platform))))
}

/// Builds the platform the app APIs run on.
fn platform(args: &PlatformArgs) -> Result<Arc<Platform>> {
    let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
    let device = match &args.authenticator {
        Some(target) => AppDevice::remote(Box::new(super::authenticator_client(Some(target))?)),
        None => AppDevice::in_process(Arc::new(Mutex::new(authenticator(args, &state_dir)?))),
    };
    let passcodes: Box<dyn PasscodeProvider> = match (&args.pin_file, &args.pinentry) {
        (Some(path), _) => Box::new(PasscodeFile::new(path)),
        (None, Some(program)) => {
            let pinentry = passgate_bridge::prompt::Pinentry::locate(Some(program))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_timeout(Duration::from_secs(args.presence_timeout));
            Box::new(PromptPasscode::new(Arc::new(pinentry)))
        }
        // The terminal running passgate: a prompt the page cannot see or type into, with
        // the same timeout as presence (an unattended prompt gives up, as the bridge's do).
        (None, None) => match passgate_bridge::prompt::TerminalPrompt::open() {
            Ok(terminal) => Box::new(PromptPasscode::new(Arc::new(
                terminal.with_timeout(Duration::from_secs(args.presence_timeout)),
            ))),
            Err(why) => {
                tracing::warn!(%why, "no terminal for the PIN prompt: PIN requests are declined (use --pin-file)");
                Box::new(NoPasscode)
            }
        },
    };
    let soter = soter_backend(args)?;
    let platform = Platform::new(device, &state_dir.join("app"), passcodes)
        .with_context(|| format!("opening {}", state_dir.join("app").display()))?
        .with_soter_keys(soter);
    Ok(Arc::new(platform))
}

fn soter_backend(args: &PlatformArgs) -> Result<KeyBackend> {
    let kind = args
        .soter_key_store
        .unwrap_or(match args.key_store.key_store {
            KeyStoreKind::Software => SoterKeyStore::Software,
            KeyStoreKind::Tpm => SoterKeyStore::Tpm,
        });
    match kind {
        SoterKeyStore::Software => Ok(KeyBackend::Software),
        SoterKeyStore::Tpm => tpm_backend(args),
    }
}

#[cfg(feature = "tpm")]
fn tpm_backend(args: &PlatformArgs) -> Result<KeyBackend> {
    let soter_tcti = args
        .soter_tcti
        .clone()
        .unwrap_or_else(|| args.key_store.tcti());
    if args.authenticator.is_none()
        && args.key_store.key_store == KeyStoreKind::Tpm
        && soter_tcti == args.key_store.tcti()
        && soter_tcti.starts_with("swtpm")
    {
        bail!(
            "swtpm serves one client at a time and the authenticator keeps its TPM connection open: \
             give SOTER keys another TPM (--soter-tcti) or --soter-key-store software, or use a \
             resource manager (device:/dev/tpmrm0, tpm2-abrmd)"
        );
    }
    Ok(KeyBackend::Tpm { tcti: soter_tcti })
}

#[cfg(not(feature = "tpm"))]
fn tpm_backend(_: &PlatformArgs) -> Result<KeyBackend> {
    bail!("this passgate was built without TPM support: rebuild with `--features tpm`")
}

/// The authenticator in this process, on the state directory (as `authenticator serve`, with
/// pinentry from $PASSGATE_PINENTRY or PATH and no reset window).
fn authenticator(args: &PlatformArgs, state_dir: &std::path::Path) -> Result<Authenticator> {
    let chosen = user_verifier(&UserArgs {
        presence: args.presence,
        presence_timeout: Duration::from_secs(args.presence_timeout),
        pinentry: None,
        verifier: &args.verifier,
    })?;
    Ok(build_authenticator(AuthenticatorParts {
        state_dir,
        key_store: &args.key_store.choice(),
        user: chosen.user,
        biometric_release: chosen.biometric_release,
        attestation: AttestationFormat::None,
        capacity: 250_000,
        max_uv_attempts: args.verifier.max_attempts,
        reset_window: None,
    })?)
}

fn serve(args: &PlatformArgs) -> Result<std::process::ExitCode> {
    let router = AppRouter::new(platform(args)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "{}",
        json!({ "ready": true, "messageTypes": MESSAGE_TYPES })
    )?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Json>(&line) {
            Ok(envelope) => match (
                envelope.get("caller").and_then(Json::as_str),
                envelope.get("message"),
            ) {
                (Some(caller), Some(message)) => router.dispatch(
                    caller,
                    message,
                    &passgate_authenticator::api::user_verifier::Interaction::new(),
                ),
                _ => {
                    json!({ "error": { "code": "invalidRequest", "message": "a line is {\"caller\": ..., \"message\": {...}}" } })
                }
            },
            Err(e) => {
                json!({ "error": { "code": "invalidRequest", "message": format!("not JSON: {e}") } })
            }
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Sends `messages` in order, stopping at the first error; prints the last reply.
fn run(target: &CallerPlatform, messages: &[Json]) -> Result<std::process::ExitCode> {
    let router = AppRouter::new(platform(&target.platform)?);
    let mut reply = Json::Null;
    for message in messages {
        reply = router.dispatch(
            &target.caller,
            message,
            &passgate_authenticator::api::user_verifier::Interaction::new(),
        );
        if reply.get("error").is_some() {
            break;
        }
    }
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(if reply.get("error").is_some() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn vault(action: VaultAction) -> Result<std::process::ExitCode> {
    let v = match &action {
        VaultAction::Status(v)
        | VaultAction::Clear(v)
        | VaultAction::Unlock(v)
        | VaultAction::Keys(v)
        | VaultAction::Store { vault: v, .. }
        | VaultAction::Get { vault: v, .. }
        | VaultAction::Remove { vault: v, .. } => v,
    };
    let id = json!(v.vault_id);
    let mut open = json!({"type": "vault.open", "vaultId": id, "username": v.username});
    if let Some(mode) = &v.auth_mode {
        open["authMode"] = json!(mode);
    }
    let unlock = json!({"type": "vault.unlock", "vaultId": id, "usingPasscode": v.using_passcode});
    // What to do once the vault is open (and unlocked, when it is locked).
    let then = match &action {
        VaultAction::Status(_) | VaultAction::Unlock(_) => None,
        VaultAction::Store { key, value, .. } => {
            let value: Json = serde_json::from_str(value)
                .context("the value must be JSON (quote strings: '\"text\"')")?;
            Some(json!({"type": "vault.storeValue", "vaultId": id, "key": key, "value": value}))
        }
        VaultAction::Get { key, .. } => {
            Some(json!({"type": "vault.getValue", "vaultId": id, "key": key}))
        }
        VaultAction::Remove { key, .. } => {
            Some(json!({"type": "vault.removeValue", "vaultId": id, "key": key}))
        }
        VaultAction::Keys(_) => Some(json!({"type": "vault.getKeys", "vaultId": id})),
        VaultAction::Clear(_) => Some(json!({"type": "vault.clear", "vaultId": id})),
    };
    let router = AppRouter::new(platform(&v.target.platform)?);
    let send = |message: &Json| {
        router.dispatch(
            &v.target.caller,
            message,
            &passgate_authenticator::api::user_verifier::Interaction::new(),
        )
    };
    let mut reply = send(&open);
    let locked = reply["result"]["isLocked"] == json!(true);
    if reply.get("error").is_none() {
        let explicit_unlock = matches!(action, VaultAction::Unlock(_));
        let needs_unlock = !matches!(action, VaultAction::Status(_) | VaultAction::Clear(_));
        // A locked vault is unlocked first (one verification); an absent one is created by
        // `store` (or `unlock`), and is simply empty for the read commands.
        if explicit_unlock || (needs_unlock && locked) {
            reply = send(&unlock);
        }
        if let (None, Some(message)) = (reply.get("error"), &then) {
            reply = send(message);
        }
    }
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(if reply.get("error").is_some() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

/// Runs `passgate app …`.
pub fn main(command: AppCommand) -> Result<std::process::ExitCode> {
    match command {
        AppCommand::Serve(args) => serve(&args),
        AppCommand::Biometric { command } => match command {
            BiometricCommand::Status(t) => run(&t, &[json!({"type": "biometric.checkStatus"})]),
            BiometricCommand::ProofKey(t) => run(&t, &[json!({"type": "biometric.getProofKey"})]),
            BiometricCommand::Authenticate(a) => {
                let mut options = json!({ "allowDeviceCredential": a.allow_device_credential });
                if let Some(c) = &a.challenge {
                    options["challenge"] = json!(c);
                }
                if let Some(n) = a.attempts {
                    options["maxAttempts"] = json!(n);
                }
                run(
                    &a.target,
                    &[
                        json!({"type": "biometric.authenticate", "reason": a.reason, "options": options}),
                    ],
                )
            }
        },
        AppCommand::Vault { action } => vault(action),
        AppCommand::Soter { command } => match command {
            SoterCommand::Support(t) => run(
                &t,
                &[json!({"type": "soter.checkIsSupportSoterAuthentication"})],
            ),
            SoterCommand::Enrolled {
                target,
                check_auth_mode,
            } => run(
                &target,
                &[
                    json!({"type": "soter.checkIsSoterEnrolledInDevice", "checkAuthMode": check_auth_mode}),
                ],
            ),
            SoterCommand::Prepare(t) => run(&t, &[json!({"type": "soter.prepareAuthKey"})]),
            SoterCommand::AuthKey(t) => run(&t, &[json!({"type": "soter.getAuthKey"})]),
            SoterCommand::Start {
                target,
                challenge,
                auth_content,
            } => run(
                &target,
                &[json!({
                    "type": "soter.startSoterAuthentication",
                    "challenge": challenge,
                    "requestAuthModes": ["fingerPrint"],
                    "authContent": auth_content,
                })],
            ),
        },
    }
}
