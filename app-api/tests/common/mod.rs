//! A real in-process authenticator (software key store, file credential store in a temp dir)
//! with a scripted fingerprint sensor: a test double for the unit-level tests only. The same
//! flows run against the real fprintd on libfprint's virtual sensor in
//! ctap-tests/python/test_app_api.py.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use passgate_app_api::{AppDevice, PasscodeFile, PasscodeProvider, Platform};
use passgate_authenticator::Authenticator;
use passgate_authenticator::api::user_verifier::{
    BiometryType, Interaction, Prompt, UserActionError, UserVerified, UserVerifier,
    VerificationMethod, VerifierErrorCode, VerifierStatus,
};
use passgate_authenticator::ctap::AuthenticatorConfig;

/// What the next touch of the scripted sensor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// An enrolled finger.
    Match,
    /// A finger that is not enrolled.
    NoMatch,
    /// The person cancels.
    Cancel,
}

#[derive(Debug)]
pub struct SensorState {
    pub present: bool,
    pub enrolled: Vec<String>,
    pub touches: VecDeque<Touch>,
    pub scans: usize,
}

/// Runs when a scan starts, before its outcome (what the test wants to observe then).
pub type ScanHook = Box<dyn FnMut() + Send>;

/// A fingerprint sensor driven by the test.
#[derive(Clone)]
pub struct Sensor(
    pub Arc<Mutex<SensorState>>,
    pub Arc<Mutex<Option<ScanHook>>>,
);

impl std::fmt::Debug for Sensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sensor")
            .field(&self.0)
            .finish_non_exhaustive()
    }
}

impl Sensor {
    pub fn new() -> Self {
        Self(
            Arc::new(Mutex::new(SensorState {
                present: true,
                enrolled: Vec::new(),
                touches: VecDeque::new(),
                scans: 0,
            })),
            Arc::new(Mutex::new(None)),
        )
    }

    /// Runs `hook` at the start of every scan from now on.
    pub fn on_scan(&self, hook: impl FnMut() + Send + 'static) {
        *self.1.lock().unwrap() = Some(Box::new(hook));
    }

    pub fn enroll(&self, finger: &str) {
        self.0.lock().unwrap().enrolled.push(finger.to_owned());
    }

    pub fn touch(&self, touches: &[Touch]) {
        self.0
            .lock()
            .unwrap()
            .touches
            .extend(touches.iter().copied());
    }

    pub fn scans(&self) -> usize {
        self.0.lock().unwrap().scans
    }

    pub fn unplug(&self) {
        self.0.lock().unwrap().present = false;
    }
}

struct ScriptedVerifier(Sensor);

impl UserVerifier for ScriptedVerifier {
    fn status(&self) -> VerifierStatus {
        let s = self.0.0.lock().unwrap();
        if !s.present {
            return VerifierStatus {
                available: false,
                biometry: BiometryType::None,
                enrolled: false,
                error: Some(VerifierErrorCode::BiometryNotAvailable),
            };
        }
        VerifierStatus {
            available: true,
            biometry: BiometryType::Fingerprint,
            enrolled: !s.enrolled.is_empty(),
            error: s
                .enrolled
                .is_empty()
                .then_some(VerifierErrorCode::BiometryNotEnrolled),
        }
    }

    fn check_presence(
        &mut self,
        _prompt: &Prompt<'_>,
        _interaction: &Interaction,
    ) -> Result<(), UserActionError> {
        Ok(())
    }

    fn verify_user(
        &mut self,
        _prompt: &Prompt<'_>,
        _interaction: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        if let Some(hook) = self.0.1.lock().unwrap().as_mut() {
            hook();
        }
        let mut s = self.0.0.lock().unwrap();
        s.scans += 1;
        match s.touches.pop_front() {
            Some(Touch::Match) => Ok(UserVerified::by(VerificationMethod::Biometric(
                BiometryType::Fingerprint,
            ))),
            Some(Touch::NoMatch) => Err(UserActionError::Failed),
            Some(Touch::Cancel) => Err(UserActionError::Cancelled),
            None => Err(UserActionError::Timeout),
        }
    }

    fn enrollment_state(&self) -> Option<[u8; 32]> {
        let s = self.0.0.lock().unwrap();
        let mut state = [0u8; 32];
        for (i, finger) in s.enrolled.iter().enumerate() {
            for (j, b) in finger.bytes().enumerate() {
                state[(i * 7 + j) % 32] ^= b;
            }
            state[31] = state[31].wrapping_add(1);
        }
        Some(state)
    }
}

/// A test platform: the authenticator, its sensor and the temp dir everything lives in.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub sensor: Sensor,
    pub authenticator: Arc<Mutex<Authenticator>>,
    pub platform: Arc<Platform>,
}

pub fn authenticator(state: &Path, sensor: &Sensor, max_uv_attempts: u8) -> Authenticator {
    passgate_testkit::software_authenticator(
        state,
        Box::new(ScriptedVerifier(sensor.clone())),
        1000,
        AuthenticatorConfig {
            reset_window: None,
            max_uv_attempts,
            ..AuthenticatorConfig::default()
        },
    )
}

impl Rig {
    pub fn new() -> Self {
        Self::with(8, |p| p)
    }

    /// A rig whose authenticator locks built-in UV after `max_uv_attempts`, with `adjust`
    /// applied to the platform.
    pub fn with(max_uv_attempts: u8, adjust: impl FnOnce(Platform) -> Platform) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sensor = Sensor::new();
        let authenticator = Arc::new(Mutex::new(authenticator(
            &dir.path().join("state"),
            &sensor,
            max_uv_attempts,
        )));
        let passcodes: Box<dyn PasscodeProvider> =
            Box::new(PasscodeFile::new(dir.path().join("pin")));
        let platform = Platform::new(
            AppDevice::in_process(Arc::clone(&authenticator)),
            &dir.path().join("state/app"),
            passcodes,
        )
        .unwrap();
        Self {
            dir,
            sensor,
            authenticator,
            platform: Arc::new(adjust(platform)),
        }
    }

    /// Sets the authenticator PIN and lets the passcode prompt answer `pin`.
    pub fn set_pin(&self, pin: &str) {
        self.platform.device().set_pin(pin).unwrap();
        self.answer_pin(pin);
    }

    /// What the trusted PIN prompt answers from now on (`None`: the person declines).
    pub fn answer_pin(&self, pin: &str) {
        std::fs::write(self.dir.path().join("pin"), pin).unwrap();
    }

    pub fn decline_pin(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("pin"));
    }

    pub fn app_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state/app")
    }
}

/// Every file under `dir`, recursively, with its mode.
pub fn files(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.permissions().mode() & 0o777));
            }
        }
    }
    out.sort();
    out
}
