//! An authenticator on a state directory: where the directory is, which key store holds the
//! credential keys (software, or a TPM named by a TCTI string), building the [`Authenticator`]
//! on them, and reading its PIN state without building one.
//!
//! Every front end (`passgate authenticator serve`, `passgate app`, `passgate demo`,
//! `passgate status`) goes through here, so a state directory is always opened the same way:
//! the device key once, the credential store once and the encrypted state store once (the
//! TPM key store and the CTAP commands share that one handle).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::clock::SystemClock;
use crate::api::credential_store::StoreError;
use crate::api::key_store::{KeyStore, KeyStoreError};
use crate::api::rng::SystemRng;
use crate::api::state_store::StateStore;
use crate::api::user_verifier::UserVerifier;
use crate::ctap::{AttestationFormat, AuthenticatorConfig, PinRuntime, StatusCode};
use crate::software::{
    DeviceKey, DeviceKeyError, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use crate::{Authenticator, Env};

/// The TPM used when neither a flag nor the environment names one: the kernel's resource
/// manager, which lets several clients share the TPM.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// Why an authenticator could not be set up on its state directory.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Neither `XDG_STATE_HOME` nor `HOME` says where the state directory is.
    #[error("neither XDG_STATE_HOME nor HOME is set; pass --state-dir")]
    NoStateDir,
    /// The device key could not be loaded or created.
    #[error("opening the device key in {}", dir.display())]
    DeviceKey {
        /// The state directory.
        dir: PathBuf,
        /// What went wrong.
        source: DeviceKeyError,
    },
    /// The credential store could not be opened.
    #[error("opening the credential store in {}", dir.display())]
    CredentialStore {
        /// The state directory.
        dir: PathBuf,
        /// What went wrong.
        source: StoreError,
    },
    /// The encrypted state store could not be opened.
    #[error("opening the state store in {}", dir.display())]
    StateStore {
        /// The state directory.
        dir: PathBuf,
        /// What went wrong.
        source: StoreError,
    },
    /// The stored PIN state does not load (the authenticator fails closed on it too).
    #[error("the PIN state cannot be read ({0:?})")]
    PinState(StatusCode),
    /// The key store (the TPM) could not be opened.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// A TPM was asked for, but this build has no TPM support.
    #[error(
        "this passgate was built without TPM support: rebuild with `--features tpm` (needs libtss2-dev)"
    )]
    TpmUnsupported,
}

/// The state directory used when none is given: `$XDG_STATE_HOME/passgate`, else
/// `~/.local/state/passgate`.
pub fn default_state_dir() -> Result<PathBuf, SetupError> {
    state_dir_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

/// [`default_state_dir`] on given values of `XDG_STATE_HOME` and `HOME` (an empty
/// `XDG_STATE_HOME` counts as unset, as the XDG spec says).
fn state_dir_from(
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, SetupError> {
    if let Some(dir) = xdg_state_home.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("passgate"));
    }
    let home = home.ok_or(SetupError::NoStateDir)?;
    Ok(PathBuf::from(home).join(".local/state/passgate"))
}

/// The TPM to use: `flag` when given, else `$TPM2TOOLS_TCTI`, `$TSS2_TCTI` (the variables
/// tpm2-tools and the TSS read), else [`DEFAULT_TCTI`].
pub fn resolve_tcti(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("TPM2TOOLS_TCTI").ok())
        .or_else(|| std::env::var("TSS2_TCTI").ok())
        .unwrap_or_else(|| DEFAULT_TCTI.to_owned())
}

/// Where credential private keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStoreChoice {
    /// Generated in software, AES-256-GCM wrapped under the device key.
    Software,
    /// Created and used inside the TPM 2.0 at this TCTI (see [`resolve_tcti`]).
    Tpm {
        /// The TCTI string, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
        tcti: String,
    },
}

/// What an authenticator on a state directory is made of, besides the directory's files.
pub struct AuthenticatorParts<'a> {
    /// The state directory (created 0700 when missing).
    pub state_dir: &'a Path,
    /// Where credential keys live.
    pub key_store: &'a KeyStoreChoice,
    /// Presence (and, wrapped by a biometric verifier, verification).
    pub user: Box<dyn UserVerifier>,
    /// Whether a biometric verification may release TPM keys (a fingerprint verifier).
    pub biometric_release: bool,
    /// Attestation used when the client does not ask for a format.
    pub attestation: AttestationFormat,
    /// How many credentials the store holds at most.
    pub capacity: usize,
    /// Failed built-in verifications before built-in UV is blocked.
    pub max_uv_attempts: u8,
    /// How long after start authenticatorReset is accepted (`None`: always).
    pub reset_window: Option<Duration>,
}

/// Opens the device key, credential and state stores in `parts.state_dir`, the chosen key
/// store, and builds the authenticator on them.
pub fn build_authenticator(parts: AuthenticatorParts<'_>) -> Result<Authenticator, SetupError> {
    let state_dir = parts.state_dir;
    let device_key = open_device_key(state_dir)?;
    let credentials =
        FileCredentialStore::open(state_dir, &device_key, parts.capacity).map_err(|source| {
            SetupError::CredentialStore {
                dir: state_dir.to_path_buf(),
                source,
            }
        })?;
    let state = SharedStateStore::new(open_state_store(state_dir, &device_key)?);
    let key_store = open_key_store(
        parts.key_store,
        &device_key,
        state.clone(),
        parts.biometric_release,
    )?;
    tracing::info!(backend = key_store.info().backend, detail = %key_store.info().detail, "key store ready");
    let env = Env {
        key_store,
        credentials: Box::new(credentials),
        state: Box::new(state),
        user: parts.user,
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    let config = AuthenticatorConfig {
        default_attestation: parts.attestation,
        reset_window: parts.reset_window,
        max_uv_attempts: parts.max_uv_attempts,
        ..AuthenticatorConfig::default()
    };
    Ok(Authenticator::new(env, config))
}

fn open_device_key(state_dir: &Path) -> Result<DeviceKey, SetupError> {
    DeviceKey::load_or_create(state_dir).map_err(|source| SetupError::DeviceKey {
        dir: state_dir.to_path_buf(),
        source,
    })
}

fn open_state_store(
    state_dir: &Path,
    device_key: &DeviceKey,
) -> Result<FileStateStore, SetupError> {
    FileStateStore::open(state_dir, device_key).map_err(|source| SetupError::StateStore {
        dir: state_dir.to_path_buf(),
        source,
    })
}

/// Opens the chosen key store. The TPM store keeps its release state (release key, TPM PIN
/// object) in `state`; `biometric_release` lets a biometric verifier release TPM keys.
fn open_key_store(
    choice: &KeyStoreChoice,
    device_key: &DeviceKey,
    state: SharedStateStore,
    biometric_release: bool,
) -> Result<Box<dyn KeyStore>, SetupError> {
    match choice {
        KeyStoreChoice::Software => Ok(Box::new(SoftwareKeyStore::new(device_key))),
        KeyStoreChoice::Tpm { tcti } => open_tpm(tcti, state, biometric_release),
    }
}

#[cfg(feature = "tpm")]
fn open_tpm(
    tcti: &str,
    state: SharedStateStore,
    biometric_release: bool,
) -> Result<Box<dyn KeyStore>, SetupError> {
    let store = crate::tpm::TpmKeyStore::open_with_state(tcti, Box::new(state), biometric_release)?;
    Ok(Box::new(store))
}

/// The TPM key store of the authenticator in `state_dir`, for setup commands (the attestation
/// key): opened as `serve` opens it, without changing who may release keys.
#[cfg(feature = "tpm")]
pub fn open_tpm_key_store(
    state_dir: &Path,
    tcti: &str,
) -> Result<crate::tpm::TpmKeyStore, SetupError> {
    let device_key = open_device_key(state_dir)?;
    let state = open_state_store(state_dir, &device_key)?;
    // Biometric release on: opening never erases a copy kept for a configured verifier
    // (`serve` decides that); it only adds one after a PIN verification, which setup does not do.
    Ok(crate::tpm::TpmKeyStore::open_with_state(
        tcti,
        Box::new(state),
        true,
    )?)
}

#[cfg(not(feature = "tpm"))]
fn open_tpm(_: &str, _: SharedStateStore, _: bool) -> Result<Box<dyn KeyStore>, SetupError> {
    Err(SetupError::TpmUnsupported)
}

/// One [`FileStateStore`] handed to both the key store and the CTAP commands: each write is
/// atomic on its own, and the lock keeps the two owners from interleaving inside one call.
#[derive(Clone)]
struct SharedStateStore(Arc<Mutex<FileStateStore>>);

impl SharedStateStore {
    fn new(store: FileStateStore) -> Self {
        Self(Arc::new(Mutex::new(store)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FileStateStore> {
        // A panic while holding the lock cannot leave a half-written file (writes are atomic
        // renames), so the store behind a poisoned lock is still consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StateStore for SharedStateStore {
    fn load(&mut self, name: &str) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        self.lock().load(name)
    }

    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.lock().save(name, bytes)
    }

    fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        self.lock().remove(name)
    }
}

/// What a state directory says about the PIN and built-in UV retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinSummary {
    /// Whether a PIN is set.
    pub set: bool,
    /// PIN retries left.
    pub retries: u8,
    /// Built-in (fingerprint) verification attempts left.
    pub uv_retries: u8,
}

/// Reads the PIN state without creating anything: `None` when `state_dir` holds no
/// authenticator yet, an error when it holds one whose state cannot be read.
/// `max_uv_attempts` caps the stored UV retries as the served authenticator would.
pub fn read_pin_summary(
    state_dir: &Path,
    max_uv_attempts: u8,
) -> Result<Option<PinSummary>, SetupError> {
    if !state_dir.join("device.key").is_file() {
        return Ok(None);
    }
    let device_key = open_device_key(state_dir)?;
    let mut store = open_state_store(state_dir, &device_key)?;
    let runtime = PinRuntime::load(&mut store, max_uv_attempts);
    let state = runtime.state().map_err(SetupError::PinState)?;
    Ok(Some(PinSummary {
        set: state.is_set(),
        retries: state.retries,
        uv_retries: state.uv_retries,
    }))
}

/// What a TPM reports about itself for `passgate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmProbe {
    /// The TPM's description (manufacturer, firmware).
    pub detail: String,
    /// The dictionary-attack state, when the TPM reports it.
    pub dictionary_attack: Option<DictionaryAttack>,
}

/// A TPM's dictionary-attack counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictionaryAttack {
    /// Failed authorizations counted now.
    pub failed_tries: u32,
    /// The count at which the TPM locks out.
    pub max_tries: u32,
    /// Seconds after which one failure is forgotten.
    pub recovery_time: u32,
    /// Seconds before lockout authorization may be tried again after a failure.
    pub lockout_recovery: u32,
}

impl DictionaryAttack {
    /// Whether the TPM refuses every DA-protected authorization now (the right PIN too).
    pub fn locked_out(&self) -> bool {
        self.failed_tries >= self.max_tries
    }
}

/// Connects to the TPM at `tcti` and reads its description and dictionary-attack state,
/// creating nothing.
#[cfg(feature = "tpm")]
pub fn probe_tpm(tcti: &str) -> Result<TpmProbe, SetupError> {
    let mut store = crate::tpm::TpmKeyStore::open(tcti)?;
    let dictionary_attack = store
        .dictionary_attack_status()
        .ok()
        .map(|d| DictionaryAttack {
            failed_tries: d.failed_tries,
            max_tries: d.max_tries,
            recovery_time: d.recovery_time,
            lockout_recovery: d.lockout_recovery,
        });
    Ok(TpmProbe {
        detail: store.info().detail,
        dictionary_attack,
    })
}

/// Without TPM support there is nothing to probe.
#[cfg(not(feature = "tpm"))]
pub fn probe_tpm(_tcti: &str) -> Result<TpmProbe, SetupError> {
    Err(SetupError::TpmUnsupported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::AutoPresence;

    fn parts<'a>(dir: &'a Path, key_store: &'a KeyStoreChoice) -> AuthenticatorParts<'a> {
        AuthenticatorParts {
            state_dir: dir,
            key_store,
            user: Box::new(AutoPresence::new()),
            biometric_release: false,
            attestation: AttestationFormat::None,
            capacity: 16,
            max_uv_attempts: 5,
            reset_window: None,
        }
    }

    #[test]
    fn state_dir_prefers_xdg_then_home() {
        assert_eq!(
            state_dir_from(Some("/x/state".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/x/state/passgate")
        );
        assert_eq!(
            state_dir_from(Some("".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/home/u/.local/state/passgate")
        );
        assert!(matches!(
            state_dir_from(None, None),
            Err(SetupError::NoStateDir)
        ));
    }

    #[test]
    fn tcti_flag_wins() {
        assert_eq!(resolve_tcti(Some("swtpm:port=1")), "swtpm:port=1");
    }

    #[test]
    fn pin_summary_of_an_empty_directory_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("absent");
        assert_eq!(read_pin_summary(&state_dir, 8).unwrap(), None);
        assert!(!state_dir.exists());
    }

    #[test]
    fn built_authenticator_leaves_a_readable_pin_state() {
        let dir = tempfile::tempdir().unwrap();
        let software = KeyStoreChoice::Software;
        let authenticator = build_authenticator(parts(dir.path(), &software)).unwrap();
        drop(authenticator);
        assert!(dir.path().join("device.key").is_file());
        // No PIN yet: the retries are the CTAP defaults, UV retries capped by the caller.
        let summary = read_pin_summary(dir.path(), 3).unwrap().unwrap();
        assert!(!summary.set);
        assert_eq!(summary.retries, 8);
        assert_eq!(summary.uv_retries, 3);
        // The same directory opens again (one device key, no lock held after drop).
        build_authenticator(parts(dir.path(), &software)).unwrap();
    }

    #[test]
    fn unreadable_device_key_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("device.key"), b"not a key").unwrap();
        let software = KeyStoreChoice::Software;
        let Err(err) = build_authenticator(parts(dir.path(), &software)) else {
            panic!("a corrupt device key must not open");
        };
        assert!(matches!(err, SetupError::DeviceKey { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("opening the device key in {}", dir.path().display())
        );
        // read_pin_summary reports the same instead of replacing the file.
        assert!(matches!(
            read_pin_summary(dir.path(), 8),
            Err(SetupError::DeviceKey { .. })
        ));
        assert_eq!(
            std::fs::read(dir.path().join("device.key")).unwrap(),
            b"not a key"
        );
    }

    #[test]
    fn shared_state_store_is_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::load_or_create(dir.path()).unwrap();
        let mut a = SharedStateStore::new(FileStateStore::open(dir.path(), &key).unwrap());
        let mut b = a.clone();
        a.save("x", b"one").unwrap();
        assert_eq!(b.load("x").unwrap().unwrap().as_slice(), b"one");
        b.remove("x").unwrap();
        assert!(a.load("x").unwrap().is_none());
    }

    #[cfg(not(feature = "tpm"))]
    #[test]
    fn tpm_without_support_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let tpm = KeyStoreChoice::Tpm {
            tcti: DEFAULT_TCTI.to_owned(),
        };
        let Err(err) = build_authenticator(parts(dir.path(), &tpm)) else {
            panic!("no TPM support in this build");
        };
        assert!(matches!(err, SetupError::TpmUnsupported), "{err:?}");
        assert!(matches!(
            probe_tpm(DEFAULT_TCTI),
            Err(SetupError::TpmUnsupported)
        ));
    }
}
