//! passgate's app-facing APIs, in the shapes hybrid-app developers already know, on top of
//! passgate's authenticator (hardware keys, biometric user verification):
//!
//! - [`biometric`]: Tauri's biometric plugin — `checkStatus()` and `authenticate(reason,
//!   options)` with the mobile error codes — except that `authenticate` can return a *proof*:
//!   a WebAuthn assertion over the caller's challenge by a device-bound key, with UV set only
//!   after a real verification, that any WebAuthn verifier accepts.
//! - [`vault`]: an identity vault in the shape of Ionic Identity Vault (auth modes, lock,
//!   unlock, `lockAfter`, `storeValue`/`getValue`, `remainingAttempts`, events, the
//!   `VaultErrorCodes`), encrypted at rest with AES-256-GCM under a key only a UV-gated
//!   passgate credential can produce (hmac-secret with the credential's with-UV secret).
//! - [`soter`]: WeChat SOTER's `checkIsSupportSoterAuthentication`,
//!   `checkIsSoterEnrolledInDevice` and `startSoterAuthentication`: a `resultJSON` with the
//!   challenge, a strictly increasing counter and device fields, signed RSASSA-PSS SHA-256
//!   (salt 20) by an RSA-2048 key that lives in the TPM when there is one.
//! - [`router`]: `handle(caller, json) -> json`, the message types a webview's host channel
//!   (or `passgate app serve`) carries to these APIs; [`channel::register`] puts them on the
//!   bridge's host-channel router next to WebAuthn.
//!
//! Everything is scoped by the *caller* — a web page's true origin (supplied by the host,
//! never by the page) or a native app's ID: its credentials live under the RP ID
//! `passgate-app:<caller>`, which no web origin can ask the bridge for, and its files under
//! its own directory.

pub mod biometric;
pub mod channel;
pub mod device;
pub mod router;
pub mod scan_prompt;
pub mod soter;
pub mod vault;
pub mod verify;

/// Private directories and atomic, durable writes (with the fault-injection hook the vault tests
/// use): platform-api's, the authenticator's too, so that every store keeps its files the same way.
pub use passgate_platform_api::fs;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use device::AppDevice;
pub use verify::{NoPasscode, PasscodeFile, PasscodeProvider, PasscodeRequest, PromptPasscode};

/// base64url without padding, as WebAuthn JSON uses it: the project's one (`passgate_proto::b64`).
pub use passgate_proto::b64::encode as b64;

/// Decodes base64url (padding tolerated); `None` when the text is not base64url.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    passgate_proto::b64::decode(text).ok()
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref());
    out
}

pub(crate) fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out)
        .map_err(|_| std::io::Error::other("the system random number generator failed"))?;
    Ok(out)
}

/// Who calls the app APIs: a page's true origin or a native app's ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerId {
    name: String,
}

/// A caller name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid caller {0:?}: 1 to 256 printable characters")]
pub struct InvalidCaller(pub String);

impl CallerId {
    /// A caller named `name` (`https://app.example.com`, `com.example.app`).
    pub fn new(name: &str) -> Result<Self, InvalidCaller> {
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(InvalidCaller(name.chars().take(64).collect()));
        }
        Ok(Self {
            name: name.to_owned(),
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The authenticator RP ID of this caller's credentials. It contains a `:`, so the bridge
    /// never accepts it for a web origin.
    pub fn rp_id(&self) -> String {
        format!("{}{}", passgate_proto::APP_RP_ID_PREFIX, self.name)
    }

    fn dir_name(&self) -> String {
        fs::hex(&sha256(self.name.as_bytes())[..16])
    }
}

/// What the app APIs run on: the authenticator, the state directory, the trusted PIN prompt
/// and where SOTER keys live. Shared by every caller.
pub struct Platform {
    device: AppDevice,
    state_dir: PathBuf,
    passcodes: Box<dyn PasscodeProvider>,
    soter_keys: soter::KeyBackend,
    write_hook: Arc<dyn fs::WriteHook>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("device", &self.device)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// The app APIs on `device`, keeping their files under `state_dir` (created 0700), with
    /// PINs from `passcodes` and software SOTER keys.
    pub fn new(
        device: AppDevice,
        state_dir: &Path,
        passcodes: Box<dyn PasscodeProvider>,
    ) -> std::io::Result<Self> {
        fs::private_dir(state_dir)?;
        Ok(Self {
            device,
            state_dir: state_dir.to_path_buf(),
            passcodes,
            soter_keys: soter::KeyBackend::Software,
            write_hook: Arc::new(fs::NoHook),
        })
    }

    /// Where SOTER device keys are created (software, or a TPM).
    pub fn with_soter_keys(mut self, backend: soter::KeyBackend) -> Self {
        self.soter_keys = backend;
        self
    }

    /// Runs `hook` inside every vault write (fault injection in tests).
    pub fn with_write_hook(mut self, hook: Arc<dyn fs::WriteHook>) -> Self {
        self.write_hook = hook;
        self
    }

    /// The authenticator.
    pub fn device(&self) -> &AppDevice {
        &self.device
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub(crate) fn passcodes(&self) -> &dyn PasscodeProvider {
        self.passcodes.as_ref()
    }

    pub(crate) fn soter_keys(&self) -> &soter::KeyBackend {
        &self.soter_keys
    }

    pub(crate) fn write_hook(&self) -> &dyn fs::WriteHook {
        self.write_hook.as_ref()
    }

    /// This caller's directory (created 0700 on first use).
    pub(crate) fn caller_dir(&self, caller: &CallerId) -> std::io::Result<PathBuf> {
        let dir = self.caller_path(caller);
        fs::private_dir(&dir)?;
        Ok(dir)
    }

    /// Where this caller's directory is (not created).
    pub(crate) fn caller_path(&self, caller: &CallerId) -> PathBuf {
        self.state_dir.join("callers").join(caller.dir_name())
    }
}
