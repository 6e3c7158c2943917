//! An identity vault in the shape of Ionic Identity Vault: named vaults (`vaultId`,
//! `username`) holding key/value data, locked and unlocked by the user.
//!
//! - **Key**: each persistent vault has its own passgate credential (credProtect 3, with
//!   hmac-secret). Unlocking is a getAssertion with user verification — a matching finger or
//!   the PIN — whose hmac-secret output (the credential's *with-UV* secret over the vault's
//!   salt) is stretched by HKDF into the AES-256-GCM key. Without verification the
//!   authenticator computes a different secret, so nothing is readable without the user.
//! - **Auth modes**: `BiometricOnly` (fingerprint only; the credential is bound to the current
//!   biometric set, so enrolling or removing a finger gives `InvalidatedCredential`),
//!   `BiometricAndPasscode` (fingerprint, or the PIN when biometrics cannot be used or
//!   `unlock(usingPasscode)`), `BiometricOrPasscode` (the same), `PasscodeOnly` (the PIN),
//!   `InMemoryOnly` (never touches disk; locking clears it).
//! - **Files**: one per vault, written atomically (temp file, fsync, rename, fsync; 0600), so a
//!   crash leaves the old or the new vault, never a half-written one.
//! - **Attempts**: failed unlocks (a finger not recognised, a wrong PIN) are counted durably;
//!   after `maxAttempts` the vault is cleared (`TooManyFailedAttempts`). The authenticator
//!   counts them too (built-in UV lockout, PIN retries), so a counter reset on disk does not
//!   buy unlimited guesses.
//! - **Idle lock**: `lockAfter` milliseconds without a vault operation lock it (the key and
//!   the values are dropped and zeroized), by a timer, not only on the next call.
//! - **Events**: [`Vault::subscribe`] gets [`VaultEvent`]s for lock, unlock, config change.

mod file;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use passgate_authenticator::api::user_verifier::{Interaction, VerifierErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use crate::device::{AssertRequest, CRED_PROTECT_UV_REQUIRED, CreateRequest, user_verified};
use crate::verify::{self, Accept, Failure, PasscodeRequest, PlanError};
use crate::{CallerId, Platform, sha256};
pub use file::{FileError, MAX_FILE_BYTES};
use file::{Header, Values, VaultKey};

/// How a vault is unlocked (Identity Vault's `AuthMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// Fingerprint only; invalidated by a biometric enrollment change.
    BiometricOnly,
    /// Fingerprint, or the PIN.
    BiometricAndPasscode,
    /// Fingerprint if it can be used, else the PIN.
    BiometricOrPasscode,
    /// The PIN only.
    PasscodeOnly,
    /// Kept in memory only; never written; locking clears it.
    InMemoryOnly,
}

impl AuthMode {
    /// The name as apps write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::BiometricOnly => "BiometricOnly",
            Self::BiometricAndPasscode => "BiometricAndPasscode",
            Self::BiometricOrPasscode => "BiometricOrPasscode",
            Self::PasscodeOnly => "PasscodeOnly",
            Self::InMemoryOnly => "InMemoryOnly",
        }
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::BiometricOnly,
            Self::BiometricAndPasscode,
            Self::BiometricOrPasscode,
            Self::PasscodeOnly,
            Self::InMemoryOnly,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    fn accept(self, using_passcode: bool) -> Accept {
        match self {
            Self::BiometricOnly => Accept::Biometric,
            Self::PasscodeOnly => Accept::Passcode,
            Self::BiometricAndPasscode | Self::BiometricOrPasscode | Self::InMemoryOnly => {
                Accept::BiometricOrPasscode {
                    passcode_first: using_passcode,
                }
            }
        }
    }

    fn allows_passcode(self) -> bool {
        !matches!(self, Self::BiometricOnly)
    }
}

/// Identity Vault's `VaultErrorCodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaultErrorCode {
    /// Anything else.
    Unknown,
    /// The user was not recognised (a wrong finger or PIN); counted.
    AuthFailed,
    /// Biometrics are not available or not enrolled, and the mode needs them.
    BiometricsNotEnabled,
    /// Biometrics are locked out after too many failures (the PIN unlocks them).
    BiometricsLockedOut,
    /// An argument is invalid.
    InvalidArguments,
    /// The auth mode is not one of [`AuthMode`].
    InvalidAuthMode,
    /// The credential was invalidated by a biometric enrollment change.
    InvalidatedCredential,
    /// The vault's key (its credential) is no longer on the authenticator.
    KeyNotFound,
    /// The mode needs a PIN and none is set on the authenticator.
    MissingPasscode,
    /// A PIN unlock was asked of a vault whose mode does not allow it.
    PasscodeNotEnabled,
    /// The authenticator cannot provide the verification the mode needs.
    SecurityNotAvailable,
    /// Too many failed unlocks: the vault was cleared.
    TooManyFailedAttempts,
    /// The user cancelled (or did not answer).
    UserCanceledInteraction,
    /// The vault is locked: unlock it first.
    VaultLocked,
}

/// A failed vault operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct VaultError {
    /// The code.
    pub code: VaultErrorCode,
    /// What happened.
    pub message: String,
}

impl VaultError {
    fn new(code: VaultErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn io(e: &std::io::Error) -> Self {
        Self::new(
            VaultErrorCode::Unknown,
            format!("the vault file could not be written or read: {e}"),
        )
    }

    /// `{"code": "VaultLocked", "message": "..."}`.
    pub fn to_json(&self) -> Json {
        json!({ "code": self.code, "message": self.message })
    }
}

/// Which vault (Identity Vault's `VaultDescriptor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultDescriptor {
    /// The vault's ID (1 to 128 printable characters).
    pub vault_id: String,
    /// The username it is for.
    pub username: String,
}

/// Options for a new vault; an existing vault keeps its own until [`Vault::update_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultOptions {
    /// How it is unlocked.
    pub auth_mode: AuthMode,
    /// Idle milliseconds before it locks; 0 never.
    #[serde(default)]
    pub lock_after: u64,
    /// Failed unlocks before the vault is cleared (1 to 20, default 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: u8,
}

fn default_attempts() -> u8 {
    5
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::BiometricOnly,
            lock_after: 0,
            max_attempts: default_attempts(),
        }
    }
}

/// The vault's configuration, as event handlers and `getConfig` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultConfig {
    /// The vault's ID.
    pub vault_id: String,
    /// The username.
    pub username: String,
    /// How it is unlocked.
    pub auth_mode: AuthMode,
    /// Idle milliseconds before it locks.
    pub lock_after: u64,
    /// Failed unlocks before it is cleared.
    pub max_attempts: u8,
}

/// What a vault reports to subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum VaultEvent {
    /// The vault locked (Identity Vault's `LockEvent`).
    Lock {
        /// The vault's ID.
        #[serde(rename = "vaultId")]
        vault_id: String,
        /// Whether the idle timer locked it.
        timeout: bool,
    },
    /// The vault unlocked.
    Unlock {
        /// The vault's ID.
        #[serde(rename = "vaultId")]
        vault_id: String,
    },
    /// The configuration changed.
    ConfigChanged {
        /// The new configuration.
        config: VaultConfig,
    },
}

/// The largest value (as JSON text) and the most keys a vault takes.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
const MAX_KEYS: usize = 1024;

/// Where the vault is.
enum State {
    /// No vault file yet (or cleared): nothing to protect.
    Absent,
    /// On disk, locked.
    Locked,
    /// Unlocked: the key and the values in memory.
    Unlocked {
        header: Header,
        key: VaultKey,
        values: Values,
    },
    /// InMemoryOnly.
    Memory { values: Values },
}

struct Inner {
    config: VaultConfig,
    state: State,
    path: PathBuf,
    attempts_path: PathBuf,
    last_activity: Instant,
    closed: bool,
    subscribers: Vec<Sender<VaultEvent>>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Condvar,
}

/// One vault of one caller. Cheap to share between threads.
pub struct Vault {
    shared: Arc<Shared>,
    platform: Arc<Platform>,
    caller: CallerId,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        let mut inner = lock(&self.shared);
        inner.closed = true;
        // Nothing stays in memory after the handle is gone.
        inner.state = match inner.state {
            State::Unlocked { .. } => State::Locked,
            State::Memory { .. } => State::Absent,
            State::Locked => State::Locked,
            State::Absent => State::Absent,
        };
        drop(inner);
        self.shared.wake.notify_all();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared.inner.lock().unwrap_or_else(PoisonError::into_inner)
}

fn check_id(what: &str, value: &str, max: usize) -> Result<(), VaultError> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(VaultError::new(
            VaultErrorCode::InvalidArguments,
            format!("{what} must be 1 to {max} printable characters"),
        ));
    }
    Ok(())
}

fn check_options(options: &VaultOptions) -> Result<(), VaultError> {
    if !(1..=20).contains(&options.max_attempts) {
        return Err(VaultError::new(
            VaultErrorCode::InvalidArguments,
            "maxAttempts must be 1 to 20",
        ));
    }
    if options.lock_after > 24 * 3600 * 1000 {
        return Err(VaultError::new(
            VaultErrorCode::InvalidArguments,
            "lockAfter is at most one day (86400000 ms)",
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Attempts {
    failed: u8,
}

impl Inner {
    fn emit(&mut self, event: &VaultEvent) {
        self.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    fn failed_attempts(&self) -> u8 {
        std::fs::read(&self.attempts_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Attempts>(&b).ok())
            .map_or(0, |a| a.failed)
    }

    /// Whether something is open to lock: an unlocked vault, or an InMemoryOnly one holding
    /// data (an empty one has nothing to lock).
    fn is_open(&self) -> bool {
        match &self.state {
            State::Unlocked { .. } => true,
            State::Memory { values } => !values.is_empty(),
            State::Locked | State::Absent => false,
        }
    }

    fn idle_expired(&self, now: Instant) -> bool {
        self.config.lock_after > 0
            && self.is_open()
            && now.saturating_duration_since(self.last_activity)
                >= Duration::from_millis(self.config.lock_after)
    }

    /// Locks (dropping and zeroizing the key and values); InMemoryOnly loses its data.
    fn lock_now(&mut self, timeout: bool) {
        let was_open = self.is_open();
        self.state = match self.state {
            State::Unlocked { .. } => State::Locked,
            State::Memory { .. } => State::Memory {
                values: Values::new(),
            },
            State::Locked => State::Locked,
            State::Absent => State::Absent,
        };
        if was_open {
            tracing::info!(vault = %self.config.vault_id, timeout, "vault locked");
            let event = VaultEvent::Lock {
                vault_id: self.config.vault_id.clone(),
                timeout,
            };
            self.emit(&event);
        }
    }
}

impl Vault {
    /// Opens the vault `descriptor` of `caller`. An existing vault keeps its stored
    /// configuration (as Identity Vault does); `options` configure a new one.
    pub fn open(
        platform: Arc<Platform>,
        caller: CallerId,
        descriptor: &VaultDescriptor,
        options: VaultOptions,
    ) -> Result<Self, VaultError> {
        check_id("vaultId", &descriptor.vault_id, 128)?;
        check_id("username", &descriptor.username, 256)?;
        check_options(&options)?;
        // Created at the first write: an InMemoryOnly vault never touches the disk.
        let dir = platform.caller_path(&caller).join("vaults");
        crate::fs::remove_stale_temps(&dir).map_err(|e| VaultError::io(&e))?;
        let stem = crate::fs::hex(&sha256(descriptor.vault_id.as_bytes())[..16]);
        let path = dir.join(format!("{stem}.vault"));
        let attempts_path = dir.join(format!("{stem}.attempts"));
        let mut config = VaultConfig {
            vault_id: descriptor.vault_id.clone(),
            username: descriptor.username.clone(),
            auth_mode: options.auth_mode,
            lock_after: options.lock_after,
            max_attempts: options.max_attempts,
        };
        let state = if options.auth_mode == AuthMode::InMemoryOnly && !path.exists() {
            State::Memory {
                values: Values::new(),
            }
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let header = file::read_header(&bytes)
                        .map_err(|e| VaultError::new(VaultErrorCode::Unknown, e.to_string()))?;
                    if header.vault_id != descriptor.vault_id {
                        return Err(VaultError::new(
                            VaultErrorCode::Unknown,
                            "the vault file belongs to another vault ID",
                        ));
                    }
                    config.username = header.username.clone();
                    config.auth_mode = header.auth_mode;
                    config.lock_after = header.lock_after_ms;
                    config.max_attempts = header.max_attempts;
                    State::Locked
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::Absent,
                Err(e) => return Err(VaultError::io(&e)),
            }
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                config,
                state,
                path,
                attempts_path,
                last_activity: Instant::now(),
                closed: false,
                subscribers: Vec::new(),
            }),
            wake: Condvar::new(),
        });
        spawn_idle_timer(Arc::downgrade(&shared));
        Ok(Self {
            shared,
            platform,
            caller,
        })
    }

    /// Events from now on.
    pub fn subscribe(&self) -> Receiver<VaultEvent> {
        let (tx, rx) = channel();
        lock(&self.shared).subscribers.push(tx);
        rx
    }

    /// The configuration.
    pub fn config(&self) -> VaultConfig {
        self.guard().config.clone()
    }

    /// A guard with the idle timeout applied first.
    fn guard(&self) -> MutexGuard<'_, Inner> {
        let mut inner = lock(&self.shared);
        if inner.idle_expired(Instant::now()) {
            inner.lock_now(true);
        }
        inner
    }

    /// Marks activity (restarting the idle timer).
    fn touch(&self, inner: &mut Inner) {
        inner.last_activity = Instant::now();
        self.shared.wake.notify_all();
    }

    /// Whether the vault is locked (a vault with nothing stored yet is not).
    pub fn is_locked(&self) -> bool {
        matches!(self.guard().state, State::Locked)
    }

    /// Whether the vault holds data (on disk, or in memory for InMemoryOnly).
    pub fn is_in_use(&self) -> bool {
        match &self.guard().state {
            State::Absent => false,
            State::Locked | State::Unlocked { .. } => true,
            State::Memory { values } => !values.is_empty(),
        }
    }

    /// Unlocks attempts left before the vault is cleared.
    pub fn remaining_attempts(&self) -> u8 {
        let inner = self.guard();
        inner
            .config
            .max_attempts
            .saturating_sub(inner.failed_attempts())
    }

    /// Locks the vault now.
    pub fn lock(&self) {
        self.guard().lock_now(false);
    }

    /// Unlocks the vault: one verification (a finger; the PIN where the mode allows it, first
    /// when `using_passcode`). A vault with nothing stored yet is created here.
    pub fn unlock(
        &self,
        using_passcode: bool,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        let mut inner = self.guard();
        if using_passcode && !inner.config.auth_mode.allows_passcode() {
            return Err(VaultError::new(
                VaultErrorCode::PasscodeNotEnabled,
                "this vault's auth mode (BiometricOnly) does not allow the PIN",
            ));
        }
        match inner.state {
            State::Unlocked { .. } | State::Memory { .. } => {
                self.touch(&mut inner);
                Ok(())
            }
            State::Absent => {
                self.create(&mut inner, Values::new(), using_passcode, interaction)?;
                self.unlocked(&mut inner);
                Ok(())
            }
            State::Locked => {
                self.unlock_locked(&mut inner, using_passcode, interaction)?;
                self.unlocked(&mut inner);
                Ok(())
            }
        }
    }

    fn unlocked(&self, inner: &mut Inner) {
        self.touch(inner);
        tracing::info!(vault = %inner.config.vault_id, "vault unlocked");
        let event = VaultEvent::Unlock {
            vault_id: inner.config.vault_id.clone(),
        };
        inner.emit(&event);
    }

    /// What the PIN prompt says this is for.
    fn passcode_reason(inner: &Inner) -> String {
        format!(
            "open the vault \u{201c}{}\u{201d} of {}",
            inner.config.vault_id, inner.config.username
        )
    }

    /// Creates the vault's credential with a verification and writes `values` under its key.
    fn create(
        &self,
        inner: &mut Inner,
        values: Values,
        using_passcode: bool,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        let mode = inner.config.auth_mode;
        let device = self.platform.device();
        let rp_id = self.caller.rp_id();
        let mut accept = mode.accept(using_passcode);
        let reason = Self::passcode_reason(inner);
        let created = loop {
            let planned = verify::plan(
                device,
                accept,
                self.platform.passcodes(),
                &PasscodeRequest {
                    caller: self.caller.name(),
                    reason: &reason,
                    attempt: 1,
                    labels: verify::PromptLabels::default(),
                },
                passgate_proto::ctap::Permissions::MAKE_CREDENTIAL,
                &rp_id,
                interaction,
            )
            .map_err(|e| plan_error(e, mode))?;
            let verification = planned.verification();
            let salt: [u8; 32] = crate::random().map_err(|e| VaultError::io(&e))?;
            let mut user_id = b"vault:".to_vec();
            user_id.extend_from_slice(&sha256(inner.config.vault_id.as_bytes())[..16]);
            let biometric_bound = mode == AuthMode::BiometricOnly;
            let result = device.make_credential(
                &CreateRequest {
                    rp_id: &rp_id,
                    user_id: &user_id,
                    user_name: &inner.config.username,
                    client_data_hash: sha256(b"passgate vault creation"),
                    verification,
                    cred_protect: Some(CRED_PROTECT_UV_REQUIRED),
                    biometric_set: biometric_bound,
                    hmac_secret: Some(Some(salt)),
                },
                interaction,
            );
            match result {
                Ok(created) => break (created, salt, biometric_bound),
                Err(e) => match verify::classify(&e) {
                    failure
                        if verify::retries_with_passcode(
                            failure,
                            accept,
                            mode.allows_passcode(),
                        ) =>
                    {
                        accept = verify::PASSCODE_FIRST;
                    }
                    failure => return Err(failure_error(failure, mode, &e.to_string())),
                },
            }
        };
        let (created, salt, biometric_bound) = created;
        let output = match created.hmac_output {
            Some(output) if user_verified(created.flags) => output,
            _ => {
                return Err(VaultError::new(
                    VaultErrorCode::SecurityNotAvailable,
                    "the authenticator did not verify the user while creating the vault key",
                ));
            }
        };
        let header = Header {
            vault_id: inner.config.vault_id.clone(),
            username: inner.config.username.clone(),
            auth_mode: mode,
            lock_after_ms: inner.config.lock_after,
            max_attempts: inner.config.max_attempts,
            rp_id: rp_id.clone(),
            credential_id: created.credential_id,
            salt,
            biometric_bound,
        };
        let key = VaultKey::derive(&output, &rp_id, &inner.config.vault_id)
            .map_err(|e| VaultError::new(VaultErrorCode::Unknown, e.to_string()))?;
        drop(output);
        self.write(&inner.path, true, &header, &values, &key)?;
        self.reset_attempts(inner)?;
        inner.state = State::Unlocked {
            header,
            key,
            values,
        };
        Ok(())
    }

    /// Seals `values` under `key` and writes the vault file at `path` (its directory created
    /// first when `create_dir`).
    fn write(
        &self,
        path: &std::path::Path,
        create_dir: bool,
        header: &Header,
        values: &Values,
        key: &VaultKey,
    ) -> Result<(), VaultError> {
        let bytes = file::seal(header, values, key)
            .map_err(|e| VaultError::new(VaultErrorCode::Unknown, e.to_string()))?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(VaultError::new(
                VaultErrorCode::InvalidArguments,
                "the vault would exceed 4 MiB",
            ));
        }
        if create_dir {
            ensure_dir(path)?;
        }
        crate::fs::write_atomic(path, &bytes, self.platform.write_hook())
            .map_err(|e| VaultError::io(&e))
    }

    fn reset_attempts(&self, inner: &Inner) -> Result<(), VaultError> {
        if inner.failed_attempts() == 0 {
            return Ok(());
        }
        crate::fs::remove_durably(&inner.attempts_path).map_err(|e| VaultError::io(&e))
    }

    /// Counts a failed unlock; at the limit the vault is cleared.
    fn count_failure(&self, inner: &mut Inner, error: VaultError) -> VaultError {
        let failed = inner.failed_attempts().saturating_add(1);
        if failed >= inner.config.max_attempts {
            tracing::warn!(vault = %inner.config.vault_id, "too many failed unlocks: clearing the vault");
            if let Err(e) = self.clear_files(inner) {
                return VaultError::io(&e);
            }
            return VaultError::new(
                VaultErrorCode::TooManyFailedAttempts,
                format!("{failed} failed unlocks: the vault was cleared and its data is gone"),
            );
        }
        let bytes = serde_json::to_vec(&Attempts { failed }).unwrap_or_default();
        if let Err(e) = ensure_dir(&inner.attempts_path) {
            return e;
        }
        if let Err(e) =
            crate::fs::write_atomic(&inner.attempts_path, &bytes, self.platform.write_hook())
        {
            return VaultError::io(&e);
        }
        error
    }

    fn clear_files(&self, inner: &mut Inner) -> std::io::Result<()> {
        inner.state = if inner.config.auth_mode == AuthMode::InMemoryOnly {
            State::Memory {
                values: Values::new(),
            }
        } else {
            State::Absent
        };
        crate::fs::remove_durably(&inner.path)?;
        crate::fs::remove_durably(&inner.attempts_path)
    }

    fn unlock_locked(
        &self,
        inner: &mut Inner,
        using_passcode: bool,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        let bytes = std::fs::read(&inner.path).map_err(|e| VaultError::io(&e))?;
        let header = file::read_header(&bytes)
            .map_err(|e| VaultError::new(VaultErrorCode::Unknown, e.to_string()))?;
        let mode = header.auth_mode;
        let device = self.platform.device();
        let mut accept = mode.accept(using_passcode);
        let attempt = u32::from(inner.failed_attempts()) + 1;
        let reason = Self::passcode_reason(inner);
        let assertion = loop {
            let planned = verify::plan(
                device,
                accept,
                self.platform.passcodes(),
                &PasscodeRequest {
                    caller: self.caller.name(),
                    reason: &reason,
                    attempt,
                    labels: verify::PromptLabels::default(),
                },
                passgate_proto::ctap::Permissions::GET_ASSERTION,
                &header.rp_id,
                interaction,
            );
            let planned = match planned {
                Ok(p) => p,
                Err(e @ PlanError::PasscodeWrong { .. }) => {
                    let error = plan_error(e, mode);
                    return Err(self.count_failure(inner, error));
                }
                Err(e) => return Err(plan_error(e, mode)),
            };
            let verification = planned.verification();
            let result = device.get_assertion(
                &AssertRequest {
                    rp_id: &header.rp_id,
                    credential_id: &header.credential_id,
                    client_data_hash: sha256(b"passgate vault unlock"),
                    verification,
                    hmac_salt: Some(header.salt),
                },
                interaction,
            );
            match result {
                Ok(assertion) => break assertion,
                Err(e) => match verify::classify(&e) {
                    Failure::NotRecognised => {
                        let error = failure_error(Failure::NotRecognised, mode, "");
                        return Err(self.count_failure(inner, error));
                    }
                    failure
                        if verify::retries_with_passcode(
                            failure,
                            accept,
                            mode.allows_passcode(),
                        ) =>
                    {
                        accept = verify::PASSCODE_FIRST;
                    }
                    failure => return Err(failure_error(failure, mode, &e.to_string())),
                },
            }
        };
        let output = match assertion.hmac_output {
            Some(output) if user_verified(assertion.flags) => output,
            _ => {
                let error = VaultError::new(
                    VaultErrorCode::AuthFailed,
                    "the authenticator did not verify the user",
                );
                return Err(self.count_failure(inner, error));
            }
        };
        let key = VaultKey::derive(&output, &header.rp_id, &header.vault_id)
            .map_err(|e| VaultError::new(VaultErrorCode::Unknown, e.to_string()))?;
        drop(output);
        let values = file::open(&bytes, &key)
            .map_err(|e| VaultError::new(VaultErrorCode::Unknown, e.to_string()))?;
        self.reset_attempts(inner)?;
        inner.state = State::Unlocked {
            header,
            key,
            values,
        };
        Ok(())
    }

    fn values_or_locked(inner: &mut Inner) -> Result<Option<&mut Values>, VaultError> {
        match &mut inner.state {
            State::Locked => Err(VaultError::new(
                VaultErrorCode::VaultLocked,
                "the vault is locked: unlock it first",
            )),
            State::Absent => Ok(None),
            State::Unlocked { values, .. } | State::Memory { values } => Ok(Some(values)),
        }
    }

    /// The value stored under `key` (`None` when there is none).
    pub fn get_value(&self, key: &str) -> Result<Option<Json>, VaultError> {
        let mut inner = self.guard();
        let found = match Self::values_or_locked(&mut inner)? {
            None => None,
            Some(values) => match values.get(key) {
                None => None,
                Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                    VaultError::new(VaultErrorCode::Unknown, format!("stored value: {e}"))
                })?),
            },
        };
        self.touch(&mut inner);
        Ok(found)
    }

    /// The keys stored.
    pub fn get_keys(&self) -> Result<Vec<String>, VaultError> {
        let mut inner = self.guard();
        let keys = Self::values_or_locked(&mut inner)?
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        self.touch(&mut inner);
        Ok(keys)
    }

    /// Stores `value` under `key` (written before this returns). A vault with nothing stored
    /// yet is created first, which needs a verification.
    pub fn store_value(
        &self,
        key: &str,
        value: &Json,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        check_id("key", key, 256)?;
        let text = Zeroizing::new(value.to_string());
        if text.len() > MAX_VALUE_BYTES {
            return Err(VaultError::new(
                VaultErrorCode::InvalidArguments,
                format!("a value is at most {MAX_VALUE_BYTES} bytes of JSON"),
            ));
        }
        self.change(interaction, |values| {
            if !values.contains_key(key) && values.len() >= MAX_KEYS {
                return Err(VaultError::new(
                    VaultErrorCode::InvalidArguments,
                    format!("a vault holds at most {MAX_KEYS} keys"),
                ));
            }
            values.insert(key.to_owned(), text.clone());
            Ok(())
        })
    }

    /// Removes `key` (nothing happens when it is absent).
    pub fn remove_value(&self, key: &str) -> Result<(), VaultError> {
        let interaction = Interaction::new();
        let mut inner = self.guard();
        if matches!(inner.state, State::Absent) {
            self.touch(&mut inner);
            return Ok(());
        }
        drop(inner);
        self.change(&interaction, |values| {
            values.remove(key);
            Ok(())
        })
    }

    /// Applies `edit` to a copy of the values and writes it; the vault changes only when the
    /// write succeeded.
    fn change(
        &self,
        interaction: &Interaction,
        edit: impl FnOnce(&mut Values) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let mut inner = self.guard();
        let Inner { state, path, .. } = &mut *inner;
        match state {
            State::Locked => {
                return Err(VaultError::new(
                    VaultErrorCode::VaultLocked,
                    "the vault is locked: unlock it first",
                ));
            }
            State::Memory { values } => {
                edit(values)?;
            }
            State::Absent => {
                let mut values = Values::new();
                edit(&mut values)?;
                self.create(&mut inner, values, false, interaction)?;
                self.unlocked(&mut inner);
                return Ok(());
            }
            State::Unlocked {
                header,
                key,
                values,
            } => {
                let mut next = values.clone();
                edit(&mut next)?;
                self.write(path, false, header, &next, key)?;
                *values = next;
            }
        }
        self.touch(&mut inner);
        Ok(())
    }

    /// Deletes the vault and its data (no verification needed, as in Identity Vault).
    pub fn clear(&self) -> Result<(), VaultError> {
        let mut inner = self.guard();
        self.clear_files(&mut inner)
            .map_err(|e| VaultError::io(&e))?;
        self.touch(&mut inner);
        Ok(())
    }

    /// Changes the configuration. A new auth mode re-keys the vault under a new credential
    /// (one verification in the new mode); `lockAfter` and `maxAttempts` need the vault
    /// unlocked (they are part of the authenticated header).
    pub fn update_config(
        &self,
        options: VaultOptions,
        interaction: &Interaction,
    ) -> Result<VaultConfig, VaultError> {
        check_options(&options)?;
        let mut inner = self.guard();
        let old_mode = inner.config.auth_mode;
        let values = match &inner.state {
            State::Locked => {
                return Err(VaultError::new(
                    VaultErrorCode::VaultLocked,
                    "unlock the vault before changing its configuration",
                ));
            }
            State::Absent => None,
            State::Unlocked { values, .. } | State::Memory { values } => Some(values.clone()),
        };
        let previous = inner.config.clone();
        inner.config.lock_after = options.lock_after;
        inner.config.max_attempts = options.max_attempts;
        inner.config.auth_mode = options.auth_mode;
        let result = match (values, old_mode == options.auth_mode) {
            (None, _) => {
                if options.auth_mode == AuthMode::InMemoryOnly {
                    inner.state = State::Memory {
                        values: Values::new(),
                    };
                }
                Ok(())
            }
            (Some(values), _) if options.auth_mode == AuthMode::InMemoryOnly => {
                crate::fs::remove_durably(&inner.path)
                    .and_then(|()| crate::fs::remove_durably(&inner.attempts_path))
                    .map_err(|e| VaultError::io(&e))
                    .map(|()| inner.state = State::Memory { values })
            }
            (Some(values), false) => self.create(&mut inner, values, false, interaction),
            (Some(values), true) => {
                if let State::Unlocked { header, key, .. } = &inner.state {
                    let mut header = header.clone();
                    header.lock_after_ms = options.lock_after;
                    header.max_attempts = options.max_attempts;
                    let written = self.write(&inner.path, true, &header, &values, key);
                    written.map(|()| {
                        if let State::Unlocked { header: h, .. } = &mut inner.state {
                            *h = header;
                        }
                    })
                } else {
                    Ok(())
                }
            }
        };
        if let Err(e) = result {
            inner.config = previous;
            return Err(e);
        }
        self.touch(&mut inner);
        let config = inner.config.clone();
        inner.emit(&VaultEvent::ConfigChanged {
            config: config.clone(),
        });
        Ok(config)
    }
}

/// Creates the vaults directory (0700, with the caller's directory) before a file is written.
fn ensure_dir(file: &std::path::Path) -> Result<(), VaultError> {
    match file.parent() {
        Some(dir) => crate::fs::private_dir(dir).map_err(|e| VaultError::io(&e)),
        None => Ok(()),
    }
}

fn plan_error(e: PlanError, mode: AuthMode) -> VaultError {
    match e {
        PlanError::Biometry(
            VerifierErrorCode::BiometryNotAvailable | VerifierErrorCode::BiometryNotEnrolled,
        ) => VaultError::new(
            VaultErrorCode::BiometricsNotEnabled,
            format!(
                "{} needs a fingerprint, and none can be verified on this device",
                mode.name()
            ),
        ),
        PlanError::Biometry(VerifierErrorCode::BiometryLockout) => VaultError::new(
            VaultErrorCode::BiometricsLockedOut,
            "fingerprint verification is locked out; the authenticator PIN unlocks it",
        ),
        PlanError::Biometry(code) => VaultError::new(
            VaultErrorCode::Unknown,
            format!("biometrics: {}", crate::biometric::error_code_name(code)),
        ),
        PlanError::PasscodeNotSet => VaultError::new(
            VaultErrorCode::MissingPasscode,
            "the authenticator has no PIN: set one first",
        ),
        PlanError::PasscodeCancelled => VaultError::new(
            VaultErrorCode::UserCanceledInteraction,
            "the PIN prompt was cancelled",
        ),
        e @ PlanError::PasscodeWrong { .. } => {
            VaultError::new(VaultErrorCode::AuthFailed, e.to_string())
        }
        PlanError::PasscodeBlocked => VaultError::new(
            VaultErrorCode::AuthFailed,
            "the authenticator PIN is blocked",
        ),
        PlanError::Device(e) => VaultError::new(VaultErrorCode::Unknown, e.to_string()),
    }
}

fn failure_error(failure: Failure, mode: AuthMode, detail: &str) -> VaultError {
    let (code, message) = match failure {
        Failure::NotRecognised => (VaultErrorCode::AuthFailed, "the user was not recognised"),
        Failure::LockedOut => (
            VaultErrorCode::BiometricsLockedOut,
            "fingerprint verification is locked out; the authenticator PIN unlocks it",
        ),
        Failure::Cancelled | Failure::Denied | Failure::TimedOut => (
            VaultErrorCode::UserCanceledInteraction,
            "the verification was cancelled, declined or not answered",
        ),
        Failure::Unavailable => (
            VaultErrorCode::BiometricsNotEnabled,
            "the authenticator cannot verify with biometrics now",
        ),
        Failure::Invalidated => (
            VaultErrorCode::InvalidatedCredential,
            "the enrolled fingerprints changed: this vault's key was invalidated; clear it and sign in again",
        ),
        Failure::CredentialMissing => (
            VaultErrorCode::KeyNotFound,
            "the vault's key is no longer on the authenticator (reset or deleted)",
        ),
        Failure::PasscodeRequired => (
            VaultErrorCode::SecurityNotAvailable,
            if mode.allows_passcode() {
                "the authenticator needs its PIN"
            } else {
                "the authenticator needs its PIN, which this vault's auth mode does not allow"
            },
        ),
        Failure::Other => (VaultErrorCode::Unknown, "the authenticator failed"),
    };
    if detail.is_empty() || failure != Failure::Other {
        VaultError::new(code, message)
    } else {
        VaultError::new(code, format!("{message}: {detail}"))
    }
}

/// Locks the vault when it has been idle for `lockAfter`, even if nobody calls it.
fn spawn_idle_timer(shared: Weak<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("vault-idle-lock".into())
        .spawn(move || {
            loop {
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                let mut inner = lock(&strong);
                if inner.closed {
                    return;
                }
                let now = Instant::now();
                if inner.idle_expired(now) {
                    inner.lock_now(true);
                }
                let wait = match inner.state {
                    _ if inner.is_open() && inner.config.lock_after > 0 => {
                        let deadline =
                            inner.last_activity + Duration::from_millis(inner.config.lock_after);
                        deadline.saturating_duration_since(now) + Duration::from_millis(5)
                    }
                    // Nothing to time: wake up on activity (or every few seconds).
                    _ => Duration::from_secs(5),
                };
                let (guard, _) = strong
                    .wake
                    .wait_timeout(inner, wait)
                    .unwrap_or_else(PoisonError::into_inner);
                drop(guard);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the vault's idle timer: it locks on access only");
    }
}
