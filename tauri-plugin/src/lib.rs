//! passgate for Tauri v2 apps: passkeys (`navigator.credentials.create/get` for WebKitGTK, which
//! has none), a biometric check that returns a verifiable proof, an identity vault and
//! SOTER-style signing, all answered by passgate's authenticator — keys in a key store, the
//! person verified by fingerprint (fprintd) or a PIN typed in a trusted prompt, never in the page.
//!
//! ```text
//! tauri::Builder::default()
//!     .plugin(tauri_plugin_passgate::Builder::new().build())
//!     .run(tauri::generate_context!())?;
//! ```
//!
//! The page talks to the plugin through the host channel of passgate's webview shim
//! (`plugin:passgate|message`): the same messages as every other passgate host (WebAuthn
//! `create`/`get`, `biometric.*`, `vault.*`, `soter.*`). **The caller's origin is the webview's
//! URL, read by the plugin**: anything the page writes in a message is a request, never a claim.
//! Only origins the app allows get answers ([`Builder::allow_origin`]); the app's own pages
//! (`tauri://localhost`, `http(s)://tauri.localhost`) are mapped to [`Builder::app_origin`].
//!
//! The companion crate `tauri-plugin-passgate-biometric` answers the official biometric
//! plugin's commands (`plugin:biometric|status`, `plugin:biometric|authenticate`) from the same
//! state, so an app using the unmodified `@tauri-apps/plugin-biometric` works on Linux.

mod host;
mod origin;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value as Json;
use tauri::plugin::{Builder as PluginBuilder, TauriPlugin};
use tauri::{Manager, Runtime, Webview};

pub use host::{AuthenticatorSource, Host, HostError, PromptChoice};
pub use origin::{OriginPolicy, caller_origin};
pub use passgate_authenticator::setup::{KeyStoreChoice, VerifierChoice};

/// The shim injected into every page of the app's windows (document start): it installs
/// `navigator.credentials.create/get` and the app APIs on the host channel.
const SHIM: &str = include_str!("../../web-demo/site/shim/passgate-webview.js");

/// Configures the plugin.
#[derive(Debug, Clone)]
pub struct Builder {
    state_dir: Option<PathBuf>,
    source: AuthenticatorSource,
    key_store: KeyStoreChoice,
    verifier: VerifierChoice,
    prompt: PromptChoice,
    origins: OriginPolicy,
    inject_shim: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// An in-process authenticator with a software key store in the app's data directory
    /// (`$PASSGATE_KEY_STORE=tpm`: a TPM, see [`Builder::key_store`]), the PIN typed in
    /// pinentry (`$PASSGATE_PINENTRY`, else `pinentry` on PATH); `$PASSGATE_USER_VERIFIER=fprintd`
    /// adds fingerprints through fprintd (`$PASSGATE_FPRINT_USER`'s fingers, else `$USER`'s;
    /// see [`Builder::user_verifier`]); the app's own pages allowed.
    /// `$PASSGATE_AUTHENTICATOR` (`unix:PATH` or `tcp://127.0.0.1:PORT`) connects to a running
    /// `passgate authenticator serve` instead (its key store, its verifier), as
    /// [`Builder::authenticator`] with [`AuthenticatorSource::Connect`].
    pub fn new() -> Self {
        let source = match std::env::var("PASSGATE_AUTHENTICATOR") {
            Ok(target) if !target.is_empty() => AuthenticatorSource::Connect(target),
            _ => AuthenticatorSource::InProcess,
        };
        // `$PASSGATE_KEY_STORE=tpm`: the in-process authenticator's keys in the TPM at
        // `$PASSGATE_TCTI` (else `$TPM2TOOLS_TCTI`, `$TSS2_TCTI`, the default device).
        let key_store = match std::env::var("PASSGATE_KEY_STORE").as_deref() {
            Ok("tpm") => KeyStoreChoice::Tpm {
                tcti: passgate_authenticator::setup::resolve_tcti(
                    std::env::var("PASSGATE_TCTI").ok().as_deref(),
                ),
            },
            _ => KeyStoreChoice::Software,
        };
        let verifier = match std::env::var("PASSGATE_USER_VERIFIER").as_deref() {
            Ok("fprintd") => VerifierChoice::Fprintd {
                user: passgate_authenticator::setup::fprint_user(
                    std::env::var("PASSGATE_FPRINT_USER").ok().as_deref(),
                ),
                finger_presence: false,
            },
            _ => VerifierChoice::Presence,
        };
        Self {
            state_dir: std::env::var_os("PASSGATE_STATE_DIR").map(PathBuf::from),
            source,
            key_store,
            verifier,
            prompt: PromptChoice::Pinentry,
            origins: OriginPolicy::default(),
            inject_shim: true,
        }
    }

    /// Where the authenticator keeps its keys and the app APIs their files (default: the
    /// app's local data directory, `passgate/` in it; `$PASSGATE_STATE_DIR` overrides).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Where the authenticator runs.
    pub fn authenticator(mut self, source: AuthenticatorSource) -> Self {
        self.source = source;
        self
    }

    /// Where the in-process authenticator keeps credential keys (default: software, wrapped
    /// under the state directory's device key). A TPM needs the crate's `tpm` feature.
    pub fn key_store(mut self, key_store: KeyStoreChoice) -> Self {
        self.key_store = key_store;
        self
    }

    /// How the in-process authenticator verifies users (default: the PIN, typed in the
    /// prompt). [`VerifierChoice::Fprintd`] verifies by fingerprint through fprintd (the PIN
    /// stays the fallback), lets a fingerprint release TPM keys, and makes `status()` report a
    /// fingerprint reader; it needs the crate's `fprintd` feature (on by default). The same
    /// verifier as `passgate authenticator serve --user-verifier fprintd`.
    pub fn user_verifier(mut self, verifier: VerifierChoice) -> Self {
        self.verifier = verifier;
        self
    }

    /// Where the PIN is typed and requests are approved.
    pub fn prompt(mut self, prompt: PromptChoice) -> Self {
        self.prompt = prompt;
        self
    }

    /// The origin the app's own pages (served by Tauri's custom protocol) have for WebAuthn
    /// and the app APIs (default `http://tauri.localhost`, what Tauri itself uses on Windows).
    /// Passkeys made there are for this RP ID.
    pub fn app_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.app_origin = origin.into();
        self
    }

    /// Also answers pages of `origin` (e.g. `https://example.com`, a remote page the app's
    /// capability lets use the plugin). Pages of any other origin get `NotAllowedError`.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.allowed.push(origin.into());
        self
    }

    /// Whether the shim and the app APIs are injected into every page (default yes).
    pub fn inject_shim(mut self, inject: bool) -> Self {
        self.inject_shim = inject;
        self
    }

    /// The plugin, named `passgate`.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let Self {
            state_dir,
            source,
            key_store,
            verifier,
            prompt,
            origins,
            inject_shim,
        } = self;
        let mut plugin = PluginBuilder::<R>::new("passgate")
            .invoke_handler(tauri::generate_handler![message])
            .setup(move |app, _api| {
                let dir = match state_dir {
                    Some(dir) => dir,
                    None => app.path().app_local_data_dir()?.join("passgate"),
                };
                let host = Host::start(&dir, &source, &key_store, &verifier, prompt, origins)?;
                app.manage(Arc::new(host));
                Ok(())
            });
        if inject_shim {
            plugin = plugin.js_init_script(format!(
                "{SHIM}\n;if (window.passgateWebview && !window.passgateWebview.channel) window.passgateWebview.install({{channel: 'tauri'}});"
            ));
        }
        plugin.build()
    }
}

/// The host channel: one message from the page, its reply. The sender is the webview's URL.
#[tauri::command]
async fn message<R: Runtime>(webview: Webview<R>, message: Json) -> Json {
    let url = webview.url().ok();
    let Some(host) = webview.try_state::<Arc<Host>>().map(|s| Arc::clone(&s)) else {
        return host::not_ready(&message);
    };
    let answer =
        tauri::async_runtime::spawn_blocking(move || host.message(url.as_ref(), &message)).await;
    answer.unwrap_or_else(|e| host::internal_error(&e.to_string()))
}

/// The plugin's shared state, for the companion biometric plugin and for apps' own Rust code.
pub trait PassgateExt<R: Runtime> {
    /// The host, once the plugin is set up.
    fn passgate(&self) -> Option<Arc<Host>>;
}

impl<R: Runtime, T: Manager<R>> PassgateExt<R> for T {
    fn passgate(&self) -> Option<Arc<Host>> {
        self.try_state::<Arc<Host>>().map(|s| Arc::clone(&s))
    }
}
