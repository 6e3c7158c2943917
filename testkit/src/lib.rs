//! Fixtures shared by passgate's tests and benches, so that every crate tests against the same
//! real parts instead of its own copy of them:
//!
//! - [`software_authenticator`] / [`auto_presence_authenticator`]: passgate's authenticator in
//!   this process, on software keys and files in a (temporary) directory — what
//!   `passgate authenticator serve --presence auto` runs;
//! - [`ScriptedPinentry`]: a real pinentry program (an Assuan speaker, `scripted-pinentry.py`)
//!   standing in for the person at the trusted prompt, answering as a control file says and
//!   logging every dialog;
//! - [`soft_credential`]: a software passkey and WebAuthn client for relying-party tests
//!   (`SoftCredential`, with `Tamper` to change any part of a ceremony), and a webauthn-rs
//!   relying party with one of its credentials registered, as a peer.
//!
//! - [`swtpm::Swtpm`]: a real software TPM on two free loopback ports, for the TPM tests;
//! - [`EveryScanMatches`]: a verifier whose every scan matches, for the TPM tests and benches.
//!
//! Test code only: it unwraps, and it is a dev-dependency of the crates that use it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod every_scan_matches;
pub mod soft_credential;
pub mod swtpm;
pub mod tpm_ca;

pub use every_scan_matches::EveryScanMatches;

use std::path::{Path, PathBuf};

use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::UserVerifier;
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_authenticator::presence::AutoPresence;
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};
use serde_json::Value;

/// The PIN the fixtures' people know (the scripted pinentry types it by default).
pub const PIN: &str = "482916";

/// passgate's authenticator on `dir` with software keys: its device key, credential store
/// (holding at most `capacity` credentials) and state store, `user` for presence and
/// verification, and `config`.
pub fn software_authenticator(
    dir: &Path,
    user: Box<dyn UserVerifier>,
    capacity: usize,
    config: AuthenticatorConfig,
) -> Authenticator {
    let device_key = DeviceKey::load_or_create(dir).expect("device key");
    let env = Env {
        key_store: Box::new(SoftwareKeyStore::new(&device_key)),
        credentials: Box::new(
            FileCredentialStore::open(dir, &device_key, capacity).expect("credential store"),
        ),
        state: Box::new(FileStateStore::open(dir, &device_key).expect("state store")),
        user,
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, config)
}

/// The authenticator `passgate authenticator serve --presence auto` would run on `dir`:
/// presence approved at once, user verification only through its PIN, room for `capacity`
/// credentials, the default configuration.
pub fn auto_presence_authenticator(dir: &Path, capacity: usize) -> Authenticator {
    software_authenticator(
        dir,
        Box::new(AutoPresence::new()),
        capacity,
        AuthenticatorConfig::default(),
    )
}

/// The scripted pinentry (`testkit/scripted-pinentry.py`, a real Assuan speaker) set up in a
/// directory: a wrapper program to hand to passgate as its pinentry, the control file that
/// says how to answer, and the log of the dialogs shown.
#[derive(Debug)]
pub struct ScriptedPinentry {
    /// The program passgate runs (`--pinentry PROGRAM`).
    pub program: PathBuf,
    /// How to answer: `{"getpin": PIN | "cancel", "confirm": "ok" | "cancel" | "notok",
    /// "script": {...}}`, read afresh for every dialog.
    pub control: PathBuf,
    /// One JSON line per dialog: the command, the texts passgate set and the answer given.
    pub log: PathBuf,
}

impl ScriptedPinentry {
    /// A pinentry in `dir` that types [`PIN`] and confirms every request.
    pub fn new(dir: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripted-pinentry.py");
        let control = dir.join("pinentry-control.json");
        let log = dir.join("pinentry-log.jsonl");
        let program = dir.join("pinentry");
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nexec python3 '{}' --control '{}' --log '{}'\n",
                script.display(),
                control.display(),
                log.display()
            ),
        )
        .expect("writing the pinentry wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .expect("making the pinentry wrapper executable");
        let pinentry = Self {
            program,
            control,
            log,
        };
        pinentry.direct(serde_json::json!({"getpin": PIN, "confirm": "ok"}));
        pinentry
    }

    /// Replaces the control file: how the next dialogs are answered.
    pub fn direct(&self, control: Value) {
        std::fs::write(&self.control, control.to_string()).expect("writing the control file");
    }

    /// The dialogs shown so far, oldest first.
    pub fn dialogs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authenticator_reopens_its_directory() {
        let dir = std::env::temp_dir().join(format!("passgate-testkit-{}", std::process::id()));
        drop(auto_presence_authenticator(&dir, 10));
        assert!(dir.join("device.key").is_file());
        drop(auto_presence_authenticator(&dir, 10));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_pinentry_speaks_assuan_and_logs() {
        use std::io::{BufRead, BufReader, Write};
        let dir = std::env::temp_dir().join(format!("passgate-testkit-pe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pinentry = ScriptedPinentry::new(&dir);
        let mut child = std::process::Command::new(&pinentry.program)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with("OK"), "{line}");
        stdin.write_all(b"GETPIN\n").unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), format!("D {PIN}"));
        stdin.write_all(b"BYE\n").unwrap();
        drop(stdin);
        child.wait().unwrap();
        let dialogs = pinentry.dialogs();
        assert_eq!(dialogs.len(), 1, "{dialogs:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
