//! A real passgate authenticator for the bridge tests: software keys and files in a temporary
//! directory, presence approved automatically, user verification only through its PIN.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_authenticator::presence::AutoPresence;
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};
use passgate_bridge::prompt::{Pinentry, PromptPresence, TrustedPrompt};
use passgate_bridge::{CtapTransport, InProcess, TransportError, UserInterface};
use serde_json::{Value, json};
use zeroize::Zeroizing;

pub const PIN: &str = "482916";

/// The authenticator `passgate authenticator serve --presence auto` would run on `dir`.
pub fn authenticator(dir: &Path) -> Authenticator {
    let device_key = DeviceKey::load_or_create(dir).unwrap();
    let env = Env {
        key_store: Box::new(SoftwareKeyStore::new(&device_key)),
        credentials: Box::new(FileCredentialStore::open(dir, &device_key, 1000).unwrap()),
        state: Box::new(FileStateStore::open(dir, &device_key).unwrap()),
        user: Box::new(AutoPresence::new()),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, AuthenticatorConfig::default())
}

/// A host UI that enters the PIN and counts how often it was asked.
#[derive(Clone, Default)]
pub struct PinEntry {
    pub pin: Option<String>,
    pub asked: Arc<AtomicUsize>,
}

impl PinEntry {
    pub fn with(pin: &str) -> Self {
        Self {
            pin: Some(pin.to_owned()),
            asked: Arc::default(),
        }
    }

    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl UserInterface for PinEntry {
    fn collects_pin(&self) -> bool {
        self.pin.is_some()
    }

    fn pin(&self, _request: &passgate_bridge::PinRequest<'_>) -> Option<Zeroizing<String>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.pin.clone().map(Zeroizing::new)
    }
}

/// Counts the requests that reach the authenticator, by command byte.
#[derive(Clone)]
pub struct Counting {
    pub inner: InProcess,
    pub commands: Arc<std::sync::Mutex<Vec<u8>>>,
    /// makeCredential/getAssertion wait for the ceremony to be cancelled before they reach
    /// the authenticator (a person who never answers).
    pub stall: bool,
}

impl Counting {
    pub fn new(inner: InProcess) -> Self {
        Self {
            inner,
            commands: Arc::default(),
            stall: false,
        }
    }

    pub fn commands(&self) -> Vec<u8> {
        self.commands.lock().unwrap().clone()
    }
}

impl CtapTransport for Counting {
    fn call(
        &mut self,
        request: &[u8],
        interaction: &Interaction,
    ) -> Result<Vec<u8>, TransportError> {
        let cmd = request.first().copied().unwrap_or(0);
        self.commands.lock().unwrap().push(cmd);
        if self.stall && (cmd == 0x01 || cmd == 0x02) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !interaction.is_cancelled() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.inner.call(request, interaction)
    }
}

/// A scripted pinentry in `dir`: a wrapper program, its control file and its log.
pub struct Scripted {
    pub program: PathBuf,
    pub control: PathBuf,
    pub log: PathBuf,
}

impl Scripted {
    pub fn new(dir: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripted-pinentry.py");
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
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Self {
            program,
            control,
            log,
        };
        s.direct(json!({"getpin": PIN, "confirm": "ok"}));
        s
    }

    pub fn direct(&self, control: Value) {
        std::fs::write(&self.control, control.to_string()).unwrap();
    }

    pub fn dialogs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn prompt(&self) -> Arc<dyn TrustedPrompt> {
        Arc::new(Pinentry::new(&self.program).with_timeout(Duration::from_secs(20)))
    }
}

/// An authenticator whose presence is approved (or not) in `prompt`.
pub fn authenticator_with_prompt(dir: &Path, prompt: Arc<dyn TrustedPrompt>) -> Authenticator {
    let device_key = DeviceKey::load_or_create(dir).unwrap();
    let env = Env {
        key_store: Box::new(SoftwareKeyStore::new(&device_key)),
        credentials: Box::new(FileCredentialStore::open(dir, &device_key, 1000).unwrap()),
        state: Box::new(FileStateStore::open(dir, &device_key).unwrap()),
        user: Box::new(PromptPresence::new(prompt)),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, AuthenticatorConfig::default())
}
