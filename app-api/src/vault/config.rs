//! A vault's public configuration types, in Identity Vault 3.0's shapes: [`AuthMode`],
//! [`VaultDescriptor`], [`VaultOptions`] (what the app asks for), [`VaultConfig`] (what the
//! vault reports) and [`VaultEvent`].

use serde::{Deserialize, Serialize};

use crate::verify::Accept;

/// How a vault is unlocked (Identity Vault's `AuthMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// Fingerprint only; invalidated by a biometric enrollment change.
    BiometricOnly,
    /// Fingerprint, or the passcode (the default).
    BiometricAndPasscode,
    /// Fingerprint if it can be used, else the passcode.
    BiometricOrPasscode,
    /// The passcode only.
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

    /// The mode with biometrics and the passcode enabled as given (Identity Vault's
    /// `setBiometricsEnabled` / `setPasscodeEnabled`); `None` for neither.
    pub fn with_methods(self, biometrics: bool, passcode: bool) -> Option<Self> {
        match (biometrics, passcode) {
            (true, true) if self == Self::BiometricOrPasscode => Some(self),
            (true, true) => Some(Self::BiometricAndPasscode),
            (true, false) => Some(Self::BiometricOnly),
            (false, true) => Some(Self::PasscodeOnly),
            (false, false) => None,
        }
    }

    /// Which verifications an operation of this mode accepts. With an app passcode, the
    /// passcode path still needs the authenticator's own verification (a finger where it can,
    /// else its PIN): the app passcode is added to it, never instead of it.
    pub(super) fn accept(self, using_passcode: bool, app_passcode: bool) -> Accept {
        match self {
            Self::BiometricOnly => Accept::Biometric,
            _ if app_passcode => Accept::BiometricOrPasscode {
                passcode_first: false,
            },
            Self::PasscodeOnly => Accept::Passcode,
            Self::BiometricAndPasscode | Self::BiometricOrPasscode | Self::InMemoryOnly => {
                Accept::BiometricOrPasscode {
                    passcode_first: using_passcode,
                }
            }
        }
    }

    pub(super) fn allows_passcode(self) -> bool {
        matches!(
            self,
            Self::BiometricAndPasscode | Self::BiometricOrPasscode | Self::PasscodeOnly
        )
    }

    pub(super) fn allows_biometrics(self) -> bool {
        matches!(
            self,
            Self::BiometricOnly | Self::BiometricAndPasscode | Self::BiometricOrPasscode
        )
    }
}

/// Which vault (Identity Vault's `VaultDescriptor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultDescriptor {
    /// The vault's ID (1 to 128 printable characters).
    pub vault_id: String,
    /// The username it is for (1 to 256 printable characters).
    pub username: String,
}

/// Options for a new vault; an existing vault keeps its own until [`Vault::update_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultOptions {
    /// How it is unlocked (default `BiometricAndPasscode`).
    #[serde(default = "default_mode")]
    pub auth_mode: AuthMode,
    /// Milliseconds in the background (or idle) before it locks; 0 never.
    #[serde(default)]
    pub lock_after: u64,
    /// Failed unlocks before the vault is cleared (1 to 20, default 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: u8,
    /// Identity Vault's `hideScreenOnBackground`: recorded and reported to the host, which
    /// decides (a desktop window has no app-switcher snapshot to hide).
    #[serde(default)]
    pub hide_screen_on_background: bool,
    /// The app supplies its own passcode (`setPasscode` with a value, `onPasscodeRequest`):
    /// `isPasscodeSetupNeeded` is true until it has set one.
    #[serde(default)]
    pub custom_passcode: bool,
}

fn default_mode() -> AuthMode {
    AuthMode::BiometricAndPasscode
}

fn default_attempts() -> u8 {
    5
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            auth_mode: default_mode(),
            lock_after: 0,
            max_attempts: default_attempts(),
            hide_screen_on_background: false,
            custom_passcode: false,
        }
    }
}

/// The vault's configuration, as event handlers and `getConfig` see it (Identity Vault's
/// `VaultConfig` / `PluginConfiguration`, plus `vaultId`, `username` and `maxAttempts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultConfig {
    /// The vault's ID.
    pub vault_id: String,
    /// The username.
    pub username: String,
    /// Both, as Identity Vault's `descriptor`.
    pub descriptor: VaultDescriptor,
    /// How it is unlocked.
    pub auth_mode: AuthMode,
    /// Milliseconds in the background (or idle) before it locks.
    pub lock_after: u64,
    /// Failed unlocks before it is cleared.
    pub max_attempts: u8,
    /// As given at open.
    pub hide_screen_on_background: bool,
    /// Whether the mode allows biometrics.
    pub is_biometrics_enabled: bool,
    /// Whether the mode allows the passcode.
    pub is_passcode_enabled: bool,
    /// Whether the app must call `setPasscode` before storing (a custom passcode not set yet).
    pub is_passcode_setup_needed: bool,
    /// Whether an app passcode is set (an extension).
    pub has_app_passcode: bool,
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
        /// Its username.
        username: String,
        /// Whether `lockAfter` locked it.
        timeout: bool,
        /// Whether its data was on disk when it locked (false for InMemoryOnly: gone).
        saved: bool,
    },
    /// The vault unlocked.
    Unlock {
        /// The vault's ID.
        #[serde(rename = "vaultId")]
        vault_id: String,
        /// Its username.
        username: String,
        /// The configuration.
        config: VaultConfig,
    },
    /// The configuration changed.
    ConfigChanged {
        /// The new configuration.
        config: VaultConfig,
    },
}
