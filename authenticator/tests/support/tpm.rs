//! An authenticator on a TPM key store, as `passgate authenticator serve --key-store tpm`
//! builds it, for the TPM tests.

use std::path::Path;

use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_authenticator::software::{DeviceKey, FileCredentialStore, FileStateStore};
use passgate_authenticator::tpm::TpmKeyStore;
use passgate_authenticator::{Authenticator, Env};
use passgate_testkit::swtpm::Swtpm;

/// The TPM key store behind `tcti`, with its release state in `dir` and biometric release on.
pub fn open_store(tcti: &str, dir: &Path) -> TpmKeyStore {
    let device_key = DeviceKey::load_or_create(dir).unwrap();
    let state = FileStateStore::open(dir, &device_key).unwrap();
    TpmKeyStore::open_with_state(tcti, Box::new(state), true).unwrap()
}

/// An authenticator on `store` with its records in `dir`, every fingerprint scan matching, and
/// `config` (no reset window unless it says otherwise).
pub fn authenticator_with(
    store: TpmKeyStore,
    dir: &Path,
    config: AuthenticatorConfig,
) -> Authenticator {
    let device_key = DeviceKey::load_or_create(dir).unwrap();
    let env = Env {
        key_store: Box::new(store),
        credentials: Box::new(FileCredentialStore::open(dir, &device_key, 100).unwrap()),
        state: Box::new(FileStateStore::open(dir, &device_key).unwrap()),
        user: Box::new(passgate_testkit::EveryScanMatches),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, config)
}

/// An authenticator on `store` with the default configuration, without a reset window.
pub fn authenticator(store: TpmKeyStore, dir: &Path) -> Authenticator {
    authenticator_with(
        store,
        dir,
        AuthenticatorConfig {
            reset_window: None,
            ..AuthenticatorConfig::default()
        },
    )
}

/// An authenticator on swtpm `tpm` with its state in `dir`.
#[allow(dead_code)] // The bus test builds its store itself (behind its recorder).
pub fn tpm_authenticator(tpm: &Swtpm, dir: &Path) -> Authenticator {
    authenticator(open_store(&tpm.tcti(), dir), dir)
}
