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
use passgate_bridge::{
    Bridge, BridgeError, CtapTransport, InProcess, TransportError, UserInterface, WebAuthnRequest,
};
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

/// The page calls these tests make, each through the bridge's one entry point
/// ([`Bridge::execute`]) the way a host makes it: the JSON decoded once into a
/// [`WebAuthnRequest`], then executed.
pub trait PageCalls {
    /// A request as JSON text from `origin`; the reply as JSON text (`{"error": {...}}` on
    /// failure).
    fn handle(&self, origin: &str, request_json: &str) -> String;
    /// `navigator.credentials.create()` from JSON options.
    fn create(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value, BridgeError>;
    /// `navigator.credentials.get()` from JSON options.
    fn get(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value, BridgeError>;
    /// A request with its origin inside, as the native-messaging host passes it on.
    fn dispatch(
        &self,
        request: &serde_json::Value,
        interaction: Option<&Interaction>,
    ) -> Result<serde_json::Value, BridgeError>;
    /// `isUserVerifyingPlatformAuthenticatorAvailable()`.
    fn is_uvpaa(&self) -> Result<bool, BridgeError>;
}

fn object(
    value: &serde_json::Value,
) -> Result<&serde_json::Map<String, serde_json::Value>, BridgeError> {
    value
        .as_object()
        .ok_or_else(|| BridgeError::type_error("the request is not a JSON object"))
}

impl PageCalls for Bridge {
    fn handle(&self, origin: &str, request_json: &str) -> String {
        let reply = serde_json::from_str::<serde_json::Value>(request_json)
            .map_err(|e| BridgeError::type_error(format!("the request is not JSON: {e}")))
            .and_then(|request| {
                let request = WebAuthnRequest::from_page(origin, None, object(&request)?)?;
                self.execute(&request, None)
            });
        match reply {
            Ok(value) => value.to_string(),
            Err(e) => serde_json::json!({ "error": e.to_json() }).to_string(),
        }
    }

    fn create(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value, BridgeError> {
        let message = serde_json::json!({ "type": "create", "options": options });
        let request = WebAuthnRequest::from_page(origin, top_origin, object(&message)?)?;
        self.execute(&request, None)
    }

    fn get(
        &self,
        origin: &str,
        top_origin: Option<&str>,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value, BridgeError> {
        let message = serde_json::json!({ "type": "get", "options": options });
        let request = WebAuthnRequest::from_page(origin, top_origin, object(&message)?)?;
        self.execute(&request, None)
    }

    fn dispatch(
        &self,
        request: &serde_json::Value,
        interaction: Option<&Interaction>,
    ) -> Result<serde_json::Value, BridgeError> {
        let request = WebAuthnRequest::from_extension(object(request)?)?;
        self.execute(&request, interaction)
    }

    fn is_uvpaa(&self) -> Result<bool, BridgeError> {
        let reply = self.execute(&WebAuthnRequest::IsUvpaa, None)?;
        Ok(reply["result"].as_bool().unwrap_or(false))
    }
}
