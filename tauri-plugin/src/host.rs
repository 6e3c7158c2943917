//! The plugin's host: passgate's authenticator (in this process, or a running one), the bridge
//! (WebAuthn client role) and the app APIs, behind the same channel router every passgate host
//! runs. The Tauri commands only find the caller's origin and hand the message here.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passgate_authenticator::Authenticator;
use passgate_authenticator::ctap::{AttestationFormat, AuthenticatorConfig};
use passgate_authenticator::setup::{
    AuthenticatorParts, KeyStoreChoice, VerifierChoice, build_authenticator, user_verification,
};
use passgate_bridge::channel::ChannelRouter;
use passgate_bridge::prompt::{Pinentry, PromptPresence, PromptUi};
use passgate_bridge::{Bridge, CtapTransport, InProcess, TcpCtapHid};
use passgate_platform_api::host_channel::Sender;
use passgate_platform_api::trusted_prompt::TrustedPrompt;
use serde_json::{Value as Json, json};
use url::Url;

use crate::origin::{OriginPolicy, caller_origin};

/// Where the authenticator runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticatorSource {
    /// In the app's process, on the state directory; keys in software (wrapped under the
    /// state directory's device key) or in a TPM 2.0 ([`crate::Builder::key_store`]; the `tpm`
    /// feature); users verified by the PIN or by fingerprint through fprintd
    /// ([`crate::Builder::user_verifier`]; the `fprintd` feature).
    InProcess,
    /// A running `passgate authenticator serve` (`unix:PATH`, its default socket
    /// `STATE/authenticator.sock`, or `tcp://127.0.0.1:PORT`), with whatever key store and
    /// verifier it has (TPM, fprintd).
    Connect(String),
}

/// Where the PIN is typed and requests are approved: never in the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptChoice {
    /// A pinentry program: `$PASSGATE_PINENTRY`, else `pinentry` on PATH (its GUI flavours
    /// on a desktop).
    Pinentry,
    /// A given pinentry program.
    PinentryProgram(std::path::PathBuf),
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The state directory or a store in it.
    #[error("passgate state in {dir}: {message}")]
    State {
        /// The directory.
        dir: String,
        /// What failed.
        message: String,
    },
    /// No pinentry.
    #[error("passgate needs a trusted prompt: {0}")]
    Prompt(String),
    /// The app APIs' router.
    #[error("passgate app APIs: {0}")]
    AppApis(String),
}

/// How long a prompt waits for the person.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Credentials the in-process authenticator keeps at most.
const CAPACITY: usize = 10_000;

/// The running host.
pub struct Host {
    router: ChannelRouter,
    origins: OriginPolicy,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Opens (or creates, 0700) `dir` and starts the authenticator, bridge and app APIs.
    pub fn start(
        dir: &Path,
        source: &AuthenticatorSource,
        key_store: &KeyStoreChoice,
        verifier: &VerifierChoice,
        prompt: PromptChoice,
        origins: OriginPolicy,
    ) -> Result<Self, HostError> {
        let state = |e: &dyn std::fmt::Display| HostError::State {
            dir: dir.display().to_string(),
            message: e.to_string(),
        };
        let authenticator_dir = dir.join("authenticator");
        for d in [dir, authenticator_dir.as_path()] {
            passgate_authenticator::fs::private_dir(d).map_err(|e| state(&e))?;
        }
        let program = match prompt {
            PromptChoice::Pinentry => None,
            PromptChoice::PinentryProgram(p) => Some(p),
        };
        let pinentry = Pinentry::locate(program.as_deref())
            .map_err(|e| HostError::Prompt(e.to_string()))?
            .with_timeout(PROMPT_TIMEOUT);
        let prompt: Arc<dyn TrustedPrompt> = Arc::new(pinentry);
        let (bridge_transport, device): (Box<dyn CtapTransport>, passgate_app_api::AppDevice) =
            match source {
                AuthenticatorSource::InProcess => {
                    let authenticator = in_process_authenticator(
                        &authenticator_dir,
                        key_store,
                        verifier,
                        Arc::clone(&prompt),
                    )
                    .map_err(|e| state(&e))?;
                    let shared = Arc::new(Mutex::new(authenticator));
                    (
                        Box::new(InProcess::shared(Arc::clone(&shared))),
                        passgate_app_api::AppDevice::in_process(shared),
                    )
                }
                AuthenticatorSource::Connect(target) => (
                    Box::new(TcpCtapHid::new(target)),
                    passgate_app_api::AppDevice::remote(Box::new(TcpCtapHid::new(target))),
                ),
            };
        let bridge = Arc::new(Bridge::new(
            bridge_transport,
            Box::new(PromptUi::new(Arc::clone(&prompt))),
        ));
        let passcodes: Box<dyn passgate_app_api::PasscodeProvider> =
            Box::new(passgate_app_api::PromptPasscode::new(Arc::clone(&prompt)));
        let platform =
            passgate_app_api::Platform::new(device, &authenticator_dir.join("app"), passcodes)
                .map_err(|e| state(&e))?;
        let app = Arc::new(passgate_app_api::router::AppRouter::new(Arc::new(platform)));
        let mut router = ChannelRouter::webauthn(bridge);
        passgate_app_api::channel::register(&mut router, app)
            .map_err(|e| HostError::AppApis(e.to_string()))?;
        Ok(Self { router, origins })
    }

    /// The reply to `message` from a page at `url` (`None`: the webview has no URL).
    pub fn message(&self, url: Option<&Url>, message: &Json) -> Json {
        let origin = match url.map(|u| caller_origin(u, &self.origins)) {
            Some(Ok(origin)) => origin,
            Some(Err(why)) => return refusal(message, &why),
            None => return refusal(message, "the webview has no URL"),
        };
        let sender = Sender::new(origin);
        self.router.handle_value(&sender, message, None)
    }

    /// The origin a page at `url` has, as the host channel uses it.
    pub fn origin_of(&self, url: &Url) -> Result<String, String> {
        caller_origin(url, &self.origins)
    }
}

/// The in-process authenticator on `dir`: keys in `key_store` (software keys wrapped under the
/// device key in `dir`, or a TPM), presence and the PIN in `prompt`, wrapped by `verifier`
/// (fprintd) as `passgate authenticator serve --presence pinentry --user-verifier fprintd`
/// builds it.
fn in_process_authenticator(
    dir: &Path,
    key_store: &KeyStoreChoice,
    verifier: &VerifierChoice,
    prompt: Arc<dyn TrustedPrompt>,
) -> Result<Authenticator, passgate_authenticator::setup::SetupError> {
    let chosen = user_verification(
        verifier,
        Box::new(PromptPresence::new(prompt)),
        PROMPT_TIMEOUT,
    )?;
    build_authenticator(AuthenticatorParts {
        state_dir: dir,
        key_store,
        user: chosen.user,
        // A fingerprint verifier releases TPM keys too; presence alone leaves that to the PIN.
        biometric_release: chosen.biometric_release,
        attestation: AttestationFormat::None,
        capacity: CAPACITY,
        max_uv_attempts: AuthenticatorConfig::default().max_uv_attempts,
        reset_window: Some(Duration::from_secs(10)),
    })
}

/// `NotAllowedError` for a page that may not use the plugin.
fn refusal(message: &Json, why: &str) -> Json {
    json!({
        "requestId": message.get("requestId").cloned().unwrap_or(Json::Null),
        "ok": false,
        "error": { "name": "NotAllowedError", "message": why },
    })
}

/// The reply while the plugin is not set up yet.
pub(crate) fn not_ready(message: &Json) -> Json {
    json!({
        "requestId": message.get("requestId").cloned().unwrap_or(Json::Null),
        "ok": false,
        "error": { "name": "InvalidStateError", "message": "passgate is not ready" },
    })
}

/// The reply when the worker thread failed.
pub(crate) fn internal_error(what: &str) -> Json {
    json!({
        "requestId": Json::Null,
        "ok": false,
        "error": { "name": "UnknownError", "message": format!("passgate: {what}") },
    })
}
