//! An identity vault in the shape of Ionic Identity Vault 3.0: named vaults — identified by
//! (caller, `vaultId`, `username`), as Identity Vault's per-user vaults are — holding key/value
//! data, locked and unlocked by the user.
//!
//! - **Key**: each persistent vault has its own passgate credential (credProtect 3, with
//!   hmac-secret). Unlocking is a getAssertion with user verification — a matching finger or
//!   the PIN — whose hmac-secret output (the credential's *with-UV* secret over the vault's
//!   salt) is stretched by HKDF into the AES-256-GCM key. Without verification the
//!   authenticator computes a different secret, so nothing is readable without the user.
//! - **Auth modes** (default `BiometricAndPasscode`, as in Identity Vault): `BiometricOnly`
//!   (fingerprint only; the credential is bound to the current biometric set, so enrolling or
//!   removing a finger gives `InvalidatedCredential`), `BiometricAndPasscode` (fingerprint, or
//!   the passcode when biometrics cannot be used or `unlock(usingPasscode)`),
//!   `BiometricOrPasscode` (the same), `PasscodeOnly` (the passcode), `InMemoryOnly` (never
//!   touches disk; locking clears it).
//! - **Passcode**: the authenticator PIN, typed in passgate's trusted prompt (Identity Vault's
//!   "native prompt"), unless the app sets its own with `setPasscode` (Identity Vault's custom
//!   passcode, [`passcode`]): then the passcode path needs the app passcode *and* the
//!   authenticator's verification, the key being derived from both (argon2id + hmac-secret).
//! - **Files**: one per vault, written atomically (temp file, fsync, rename, fsync; 0600), so a
//!   crash leaves the old or the new vault, never a half-written one.
//! - **Attempts** ([`attempts`]): failed unlocks (a finger not recognised, a wrong PIN or app
//!   passcode) are counted durably, before each attempt is evaluated, in a counter bound to
//!   the vault file's generation; after `maxAttempts` the vault is cleared
//!   (`TooManyFailedAttempts`). The authenticator counts them too (built-in UV lockout, PIN
//!   retries).
//! - **Lock after** ([`idle`]): `lockAfter` ms in the background (hosts that report
//!   visibility) or idle (hosts that do not) lock the vault: the key and the values are
//!   dropped and zeroized, by a timer, not only on the next call.
//! - **Events**: [`Vault::subscribe`] gets [`VaultEvent`]s for lock (with `timeout` and
//!   `saved`), unlock (with the configuration), config change.

mod attempts;
mod config;
mod error;
mod file;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod idle;
pub mod passcode;
pub mod routes;
mod unlock;
mod values;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use passgate_platform_api::user_verifier::Interaction;

use crate::{CallerId, Platform, sha256};
pub use config::{AuthMode, VaultConfig, VaultDescriptor, VaultEvent, VaultOptions};
pub use error::{VaultError, VaultErrorCode};
pub use file::{FileError, MAX_FILE_BYTES};
use file::{Header, Values, VaultKey};
use idle::Visibility;

/// The largest value (as JSON text) and the most keys a vault takes.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
pub(crate) const MAX_KEYS: usize = 1024;

/// Where the vault is.
enum State {
    /// No vault file yet (or cleared): nothing to protect.
    Absent,
    /// On disk, locked.
    Locked,
    /// Unlocked: the key and the values in memory.
    Unlocked {
        header: Box<Header>,
        key: VaultKey,
        values: Values,
    },
    /// InMemoryOnly.
    Memory { values: Values },
}

struct Inner {
    config: VaultConfig,
    custom_passcode: bool,
    has_app_passcode: bool,
    state: State,
    path: PathBuf,
    attempts_path: PathBuf,
    /// The generation of the vault file last read or written.
    generation: u64,
    last_activity: Instant,
    visibility: Visibility,
    closed: bool,
    subscribers: Vec<Sender<VaultEvent>>,
}

struct VaultState {
    inner: Mutex<Inner>,
    wake: Condvar,
}

/// One vault of one caller. Cheap to share between threads.
pub struct Vault {
    shared: Arc<VaultState>,
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

fn lock(shared: &VaultState) -> MutexGuard<'_, Inner> {
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

/// Creates the vaults directory (0700, with the caller's directory) before a file is written.
fn ensure_dir(file: &std::path::Path) -> Result<(), VaultError> {
    match file.parent() {
        Some(dir) => crate::fs::private_dir(dir).map_err(|e| VaultError::io(&e)),
        None => Ok(()),
    }
}

/// The file stem of a vault: its identity is (caller — the directory —, vault ID, username).
fn stem(descriptor: &VaultDescriptor) -> String {
    let mut identity = descriptor.vault_id.as_bytes().to_vec();
    identity.push(0);
    identity.extend_from_slice(descriptor.username.as_bytes());
    crate::fs::hex(&sha256(&identity)[..16])
}

/// Vaults written before the username was part of the identity were named by the vault ID
/// alone: one for this username is renamed to its new name.
fn migrate_legacy(
    dir: &std::path::Path,
    descriptor: &VaultDescriptor,
    path: &std::path::Path,
    attempts_path: &std::path::Path,
) -> Result<(), VaultError> {
    let old_stem = crate::fs::hex(&sha256(descriptor.vault_id.as_bytes())[..16]);
    let old = dir.join(format!("{old_stem}.vault"));
    if path.exists() || !old.exists() {
        return Ok(());
    }
    let bytes = std::fs::read(&old).map_err(|e| VaultError::io(&e))?;
    match file::read_header(&bytes) {
        Ok(header) if header.username == descriptor.username => {}
        _ => return Ok(()),
    }
    let old_attempts = dir.join(format!("{old_stem}.attempts"));
    if old_attempts.exists() {
        std::fs::rename(&old_attempts, attempts_path).map_err(|e| VaultError::io(&e))?;
    }
    std::fs::rename(&old, path).map_err(|e| VaultError::io(&e))?;
    crate::fs::sync_dir(dir).map_err(|e| VaultError::io(&e))
}

impl Inner {
    fn emit(&mut self, event: &VaultEvent) {
        self.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    /// Recomputes the flags the configuration reports.
    fn refresh_flags(&mut self) {
        let mode = self.config.auth_mode;
        self.config.is_biometrics_enabled = mode.allows_biometrics();
        self.config.is_passcode_enabled = mode.allows_passcode();
        self.config.has_app_passcode = self.has_app_passcode;
        self.config.is_passcode_setup_needed =
            mode.allows_passcode() && self.custom_passcode && !self.has_app_passcode;
        self.config.descriptor = VaultDescriptor {
            vault_id: self.config.vault_id.clone(),
            username: self.config.username.clone(),
        };
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

    /// Locks (dropping and zeroizing the key and values); InMemoryOnly loses its data.
    fn lock_now(&mut self, timeout: bool) {
        let was_open = self.is_open();
        let saved = matches!(self.state, State::Unlocked { .. });
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
                username: self.config.username.clone(),
                timeout,
                saved,
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
        let stem = stem(descriptor);
        let path = dir.join(format!("{stem}.vault"));
        let attempts_path = dir.join(format!("{stem}.attempts"));
        migrate_legacy(&dir, descriptor, &path, &attempts_path)?;
        let mut config = VaultConfig {
            vault_id: descriptor.vault_id.clone(),
            username: descriptor.username.clone(),
            descriptor: descriptor.clone(),
            auth_mode: options.auth_mode,
            lock_after: options.lock_after,
            max_attempts: options.max_attempts,
            hide_screen_on_background: options.hide_screen_on_background,
            is_biometrics_enabled: false,
            is_passcode_enabled: false,
            is_passcode_setup_needed: false,
            has_app_passcode: false,
        };
        let mut generation = 0;
        let mut has_app_passcode = false;
        let state = if options.auth_mode == AuthMode::InMemoryOnly && !path.exists() {
            State::Memory {
                values: Values::new(),
            }
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let header = file::read_header(&bytes).map_err(|e| {
                        VaultError::new(VaultErrorCode::VaultUnavailable, e.to_string())
                    })?;
                    if header.vault_id != descriptor.vault_id
                        || header.username != descriptor.username
                    {
                        return Err(VaultError::new(
                            VaultErrorCode::VaultUnavailable,
                            "the vault file belongs to another vault ID or username",
                        ));
                    }
                    config.auth_mode = header.auth_mode;
                    config.lock_after = header.lock_after_ms;
                    config.max_attempts = header.max_attempts;
                    generation = header.generation;
                    has_app_passcode = header.passcode.is_some();
                    State::Locked
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::Absent,
                Err(e) => return Err(VaultError::io(&e)),
            }
        };
        let mut inner = Inner {
            config,
            custom_passcode: options.custom_passcode,
            has_app_passcode,
            state,
            path,
            attempts_path,
            generation,
            last_activity: Instant::now(),
            visibility: Visibility::Unreported,
            closed: false,
            subscribers: Vec::new(),
        };
        inner.refresh_flags();
        let shared = Arc::new(VaultState {
            inner: Mutex::new(inner),
            wake: Condvar::new(),
        });
        idle::spawn_timer(Arc::downgrade(&shared));
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

    /// A guard with the lock deadline applied first.
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

    /// The host reports the app hidden (in the background) or shown: from then on
    /// `lockAfter` counts background time, not idle time.
    pub fn set_visibility(&self, hidden: bool) {
        let mut inner = self.guard();
        inner.visibility = match (hidden, inner.visibility) {
            (true, Visibility::Hidden(since)) => Visibility::Hidden(since),
            (true, _) => Visibility::Hidden(Instant::now()),
            (false, _) => Visibility::Shown,
        };
        drop(inner);
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

    /// Unlocks attempts left before the vault is cleared (0 when its counter is unreadable,
    /// removed, or ahead of the vault file).
    pub fn remaining_attempts(&self) -> u8 {
        let inner = self.guard();
        let max = inner.config.max_attempts;
        if matches!(inner.state, State::Absent | State::Memory { .. }) {
            return max;
        }
        match attempts::judge(attempts::load(&inner.attempts_path), inner.generation, max) {
            attempts::Verdict::Failed(n) => max.saturating_sub(n),
            attempts::Verdict::Exhausted | attempts::Verdict::RolledBack { .. } => 0,
        }
    }

    /// Whether the authenticator can verify a fingerprint now.
    pub fn is_biometrics_available(&self) -> bool {
        matches!(
            crate::verify::biometric_readiness(self.platform.device()),
            Ok(Ok(()))
        )
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
        self.unlock_with(using_passcode, None, interaction)
    }

    /// [`Self::unlock`] with the app passcode, for a vault that has one (Identity Vault's
    /// `unlock(usingPasscode, passcode)`).
    pub fn unlock_with(
        &self,
        using_passcode: bool,
        passcode: Option<&str>,
        interaction: &Interaction,
    ) -> Result<(), VaultError> {
        let mut inner = self.guard();
        if using_passcode && !inner.config.auth_mode.allows_passcode() {
            return Err(VaultError::new(
                VaultErrorCode::PasscodeNotEnabled,
                format!(
                    "this vault's auth mode ({}) does not allow the passcode",
                    inner.config.auth_mode.name()
                ),
            ));
        }
        match inner.state {
            State::Unlocked { .. } | State::Memory { .. } => {
                self.touch(&mut inner);
                Ok(())
            }
            State::Absent => {
                self.create(&mut inner, Values::new(), using_passcode, None, interaction)?;
                self.unlocked(&mut inner);
                Ok(())
            }
            State::Locked => {
                self.unlock_locked(&mut inner, using_passcode, passcode, interaction)?;
                self.unlocked(&mut inner);
                Ok(())
            }
        }
    }

    fn unlocked(&self, inner: &mut Inner) {
        self.touch(inner);
        inner.refresh_flags();
        tracing::info!(vault = %inner.config.vault_id, "vault unlocked");
        let event = VaultEvent::Unlock {
            vault_id: inner.config.vault_id.clone(),
            username: inner.config.username.clone(),
            config: inner.config.clone(),
        };
        inner.emit(&event);
    }

    /// Sets the app passcode (`Some`), or makes the authenticator PIN (typed in passgate's
    /// trusted prompt) the passcode (`None`, Identity Vault's "native prompt"). A vault with nothing stored yet is created with it (one verification); an
    /// unlocked one is re-keyed (one verification); a locked one must be unlocked first.
    /// `confirmation`, when given, must equal the passcode (`MismatchedPasscode`).
    pub fn set_passcode(
        &self,
        passcode: Option<&str>,
        confirmation: Option<&str>,
        interaction: &Interaction,
    ) -> Result<VaultConfig, VaultError> {
        if let (Some(code), Some(again)) = (passcode, confirmation) {
            if aws_lc_rs::constant_time::verify_slices_are_equal(code.as_bytes(), again.as_bytes())
                .is_err()
            {
                return Err(VaultError::new(
                    VaultErrorCode::MismatchedPasscode,
                    "the passcode and its confirmation differ",
                ));
            }
        }
        let mut inner = self.guard();
        if !inner.config.auth_mode.allows_passcode() {
            return Err(VaultError::new(
                VaultErrorCode::PasscodeNotEnabled,
                format!(
                    "this vault's auth mode ({}) does not allow a passcode",
                    inner.config.auth_mode.name()
                ),
            ));
        }
        match inner.state {
            State::Locked => return Err(VaultError::locked()),
            State::Memory { .. } => {
                return Err(VaultError::new(
                    VaultErrorCode::PasscodeNotEnabled,
                    "an InMemoryOnly vault has no passcode",
                ));
            }
            State::Absent => {
                if passcode.is_some() {
                    self.create(&mut inner, Values::new(), true, passcode, interaction)?;
                    self.unlocked(&mut inner);
                }
            }
            State::Unlocked { .. } => {
                if passcode.is_some() || inner.has_app_passcode {
                    self.rekey_passcode(&mut inner, passcode, interaction)?;
                }
            }
        }
        // With a value the app manages the passcode from now on; without one ("use the native
        // prompt") passgate's trusted PIN prompt is the passcode, and no setup is pending.
        inner.custom_passcode = passcode.is_some();
        self.touch(&mut inner);
        Ok(self.config_changed(&mut inner))
    }

    fn config_changed(&self, inner: &mut Inner) -> VaultConfig {
        inner.refresh_flags();
        let config = inner.config.clone();
        inner.emit(&VaultEvent::ConfigChanged {
            config: config.clone(),
        });
        config
    }

    /// Identity Vault's `setBiometricsEnabled`: the auth mode with biometrics on or off.
    pub fn set_biometrics_enabled(
        &self,
        enabled: bool,
        interaction: &Interaction,
    ) -> Result<VaultConfig, VaultError> {
        if enabled && !self.is_biometrics_available() {
            return Err(VaultError::new(
                VaultErrorCode::BiometricsNotEnabled,
                "no fingerprint can be verified on this device",
            ));
        }
        let config = self.config();
        self.set_methods(enabled, config.is_passcode_enabled, interaction)
    }

    /// Identity Vault's `setPasscodeEnabled`: the auth mode with the passcode on or off.
    pub fn set_passcode_enabled(
        &self,
        enabled: bool,
        interaction: &Interaction,
    ) -> Result<VaultConfig, VaultError> {
        let config = self.config();
        self.set_methods(config.is_biometrics_enabled, enabled, interaction)
    }

    fn set_methods(
        &self,
        biometrics: bool,
        passcode: bool,
        interaction: &Interaction,
    ) -> Result<VaultConfig, VaultError> {
        let config = self.config();
        let Some(mode) = config.auth_mode.with_methods(biometrics, passcode) else {
            return Err(VaultError::new(
                VaultErrorCode::InvalidArguments,
                "biometrics and the passcode cannot both be disabled (InMemoryOnly is an auth mode of its own)",
            ));
        };
        if mode == config.auth_mode {
            return Ok(config);
        }
        self.update_config(
            VaultOptions {
                auth_mode: mode,
                lock_after: config.lock_after,
                max_attempts: config.max_attempts,
                hide_screen_on_background: config.hide_screen_on_background,
                custom_passcode: false,
            },
            interaction,
        )
    }
}
