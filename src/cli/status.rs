//! `passgate status`: the key store backend, user verification and the PIN state, as text or
//! as one JSON object (`--json`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use passgate_authenticator::api::user_verifier::{UserVerifier, VerifierErrorCode, VerifierStatus};
use passgate_authenticator::presence::TerminalPresence;
use passgate_authenticator::setup::{self, DictionaryAttack, PinSummary};
use serde::Serialize;

use super::{KeyStoreArgs, KeyStoreKind, VerifierKind, fprint_user, fprintd_verifier};

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    key_store: KeyStoreArgs,
    /// Which user verifier to report on.
    #[arg(long, value_enum, default_value_t = VerifierKind::None)]
    user_verifier: VerifierKind,
    /// Whose enrolled fingerprints count (default: $USER).
    #[arg(long)]
    fprint_user: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The authenticator's state directory, for its PIN and lockout state (default: the
    /// state directory `authenticator serve` uses).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The `--max-attempts` the authenticator is served with (failed scans before
    /// biometryLockout).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=25))]
    max_attempts: u8,
}

/// `passgate status --json`: one object, printed compact on one line.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    key_store: KeyStoreReport,
    user_verification: UserVerificationReport,
    /// `null` when the state directory holds no authenticator yet.
    pin: Option<PinReport>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyStoreReport {
    backend: &'static str,
    detail: String,
    available: bool,
    error: Option<String>,
    dictionary_attack: Option<DictionaryAttackReport>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DictionaryAttackReport {
    failed_tries: u32,
    max_tries: u32,
    recovery_time: u32,
    lockout_recovery: u32,
    locked_out: bool,
}

impl From<DictionaryAttack> for DictionaryAttackReport {
    fn from(da: DictionaryAttack) -> Self {
        Self {
            failed_tries: da.failed_tries,
            max_tries: da.max_tries,
            recovery_time: da.recovery_time,
            lockout_recovery: da.lockout_recovery,
            locked_out: da.locked_out(),
        }
    }
}

/// The Tauri-style biometric status names (`isAvailable`, `biometryType`, `errorCode`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserVerificationReport {
    is_available: bool,
    biometry_type: &'static str,
    enrolled: bool,
    error_code: Option<&'static str>,
}

impl From<&VerifierStatus> for UserVerificationReport {
    fn from(status: &VerifierStatus) -> Self {
        Self {
            is_available: status.available,
            biometry_type: status.biometry.as_str(),
            enrolled: status.enrolled,
            error_code: status.error.map(VerifierErrorCode::as_str),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum PinReport {
    State {
        set: bool,
        retries: u8,
        #[serde(rename = "uvRetries")]
        uv_retries: u8,
        /// `passcodeNotSet` when no PIN is set.
        #[serde(rename = "errorCode")]
        error_code: Option<&'static str>,
    },
    Unreadable {
        error: String,
    },
}

impl From<&PinSummary> for PinReport {
    fn from(pin: &PinSummary) -> Self {
        Self::State {
            set: pin.set,
            retries: pin.retries,
            uv_retries: pin.uv_retries,
            error_code: (!pin.set).then(|| VerifierErrorCode::PasscodeNotSet.as_str()),
        }
    }
}

/// What the key store flags lead to: the backend's name, its description, the dictionary
/// attack state of a TPM, or why it is unavailable.
struct KeyStoreProbe {
    backend: &'static str,
    detail: String,
    error: Option<String>,
    dictionary_attack: Option<DictionaryAttack>,
}

fn probe_key_store(args: &KeyStoreArgs) -> KeyStoreProbe {
    match args.key_store {
        KeyStoreKind::Software => KeyStoreProbe {
            backend: "software",
            detail: "P-256 keys wrapped with AES-256-GCM under the device key".to_owned(),
            error: None,
            dictionary_attack: None,
        },
        KeyStoreKind::Tpm => match setup::probe_tpm(&args.tcti()) {
            Ok(tpm) => KeyStoreProbe {
                backend: "tpm",
                detail: tpm.detail,
                error: None,
                dictionary_attack: tpm.dictionary_attack,
            },
            Err(e) => KeyStoreProbe {
                backend: "tpm",
                detail: String::new(),
                error: Some(error_chain(&e)),
                dictionary_attack: None,
            },
        },
    }
}

/// Runs `passgate status`; fails when the key store is unavailable.
pub fn main(args: StatusArgs) -> Result<std::process::ExitCode> {
    let key_store = probe_key_store(&args.key_store);
    let mut verifier = match args.user_verifier {
        VerifierKind::None => passgate_authenticator::presence::no_verification_status(),
        VerifierKind::Fprintd => {
            let name = fprint_user(args.fprint_user.clone());
            let presence: Box<dyn UserVerifier> =
                Box::new(TerminalPresence::new(Duration::from_secs(1)));
            fprintd_verifier(&name, Duration::from_secs(1), presence)?.status()
        }
    };
    let state_dir = super::state_dir_or_default(args.state_dir.as_ref())?;
    let pin = setup::read_pin_summary(&state_dir, args.max_attempts);
    if let Ok(Some(pin)) = &pin {
        // The sensor works and a finger is enrolled, but the failed-scan limit is spent: only
        // the PIN verifies now (and restores the attempts).
        if verifier.available && verifier.enrolled && pin.uv_retries == 0 {
            verifier.available = false;
            verifier.error = Some(VerifierErrorCode::BiometryLockout);
        }
    }
    if args.json {
        let report = StatusReport {
            key_store: KeyStoreReport {
                backend: key_store.backend,
                detail: key_store.detail.clone(),
                available: key_store.error.is_none(),
                error: key_store.error.clone(),
                dictionary_attack: key_store.dictionary_attack.map(Into::into),
            },
            user_verification: (&verifier).into(),
            pin: match &pin {
                Ok(None) => None,
                Ok(Some(p)) => Some(p.into()),
                Err(e) => Some(PinReport::Unreadable {
                    error: error_chain(e),
                }),
            },
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&args, &key_store, &verifier, &pin, &state_dir);
    }
    Ok(if key_store.error.is_none() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn print_text(
    args: &StatusArgs,
    key_store: &KeyStoreProbe,
    verifier: &VerifierStatus,
    pin: &Result<Option<PinSummary>, setup::SetupError>,
    state_dir: &std::path::Path,
) {
    let KeyStoreProbe {
        backend,
        detail,
        error,
        dictionary_attack,
    } = key_store;
    match error {
        None => println!("key store: {backend} ({detail})"),
        Some(e) => println!("key store: {backend} UNAVAILABLE: {e}"),
    }
    if let Some(da) = dictionary_attack {
        // The TPM PIN object is DA-protected: in lockout, every PIN (the right one too)
        // is refused until failures are forgotten.
        println!(
            "TPM dictionary-attack lockout: {} ({} of {} failed authorizations; one forgotten every {} s; lockout-auth recovery {} s)",
            if da.locked_out() {
                "LOCKED OUT, PIN verification refused"
            } else {
                "not locked out"
            },
            da.failed_tries,
            da.max_tries,
            da.recovery_time,
            da.lockout_recovery,
        );
    }
    println!(
        "user verification: {} (biometry {}, enrolled {}{})",
        if verifier.available {
            "available"
        } else {
            "not available"
        },
        verifier.biometry.as_str(),
        verifier.enrolled,
        verifier
            .error
            .map(|e| format!(", {}", e.as_str()))
            .unwrap_or_default()
    );
    match pin {
        Ok(None) => println!("PIN: no authenticator state in {} yet", state_dir.display()),
        Ok(Some(p)) if p.set => println!(
            "PIN: set ({} retries left; {} of {} fingerprint attempts left)",
            p.retries, p.uv_retries, args.max_attempts
        ),
        Ok(Some(_)) => println!("PIN: not set (passcodeNotSet)"),
        Err(e) => println!("PIN: state unreadable: {}", error_chain(e)),
    }
}

/// `error` and its sources, `: `-separated (as anyhow's `{:#}` prints them).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
