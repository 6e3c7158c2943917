//! A real passgate authenticator for the bridge tests: software keys and files in a temporary
//! directory, presence approved automatically, user verification only through its PIN.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use passgate_authenticator::Authenticator;
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_bridge::prompt::{Pinentry, PromptPresence};
use passgate_bridge::{CtapTransport, InProcess, TransportError, UserInterface};
use passgate_platform_api::trusted_prompt::TrustedPrompt;
use passgate_testkit::ScriptedPinentry;
use zeroize::Zeroizing;

pub const PIN: &str = passgate_testkit::PIN;

/// The authenticator `passgate authenticator serve --presence auto` would run on `dir`.
pub fn authenticator(dir: &Path) -> Authenticator {
    passgate_testkit::auto_presence_authenticator(dir, 1000)
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

    fn pin(
        &self,
        _request: &passgate_bridge::PinRequest<'_>,
    ) -> Result<Zeroizing<String>, passgate_bridge::Unanswered> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.pin
            .clone()
            .map(Zeroizing::new)
            .ok_or(passgate_bridge::Unanswered::Declined)
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

/// The scripted pinentry in `dir` (passgate-testkit's), with the trusted prompt that runs it.
pub struct Scripted(ScriptedPinentry);

impl std::ops::Deref for Scripted {
    type Target = ScriptedPinentry;

    fn deref(&self) -> &ScriptedPinentry {
        &self.0
    }
}

impl Scripted {
    pub fn new(dir: &Path) -> Self {
        Self(ScriptedPinentry::new(dir))
    }

    pub fn prompt(&self) -> Arc<dyn TrustedPrompt> {
        Arc::new(Pinentry::new(&self.program).with_timeout(Duration::from_secs(20)))
    }
}

/// An authenticator whose presence is approved (or not) in `prompt`.
pub fn authenticator_with_prompt(dir: &Path, prompt: Arc<dyn TrustedPrompt>) -> Authenticator {
    passgate_testkit::software_authenticator(
        dir,
        Box::new(PromptPresence::new(prompt)),
        1000,
        AuthenticatorConfig::default(),
    )
}
