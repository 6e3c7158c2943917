//! The TPM 2.0 key store against a real (software) TPM: swtpm, started by the test.
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use passgate_authenticator::api::key_store::{
    KeyAlgorithm, KeyHandle, KeyStore, KeyStoreError, PinCheckError,
};
use passgate_authenticator::api::user_verifier::{BiometryType, UserVerified, VerificationMethod};
use passgate_authenticator::software::{DeviceKey, FileStateStore};
use passgate_authenticator::tpm::TpmKeyStore;

/// A running swtpm; killed on drop.
struct Swtpm {
    child: Child,
    port: u16,
}

impl Swtpm {
    fn start(state: &Path) -> Self {
        // Two consecutive free ports (server and control).
        let port = loop {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = probe.local_addr().unwrap().port();
            if port < 65000 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is installed (cargo xtask test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs `tpm2_dictionarylockout` with `args` (no client may be connected meanwhile).
    fn dictionary_lockout(&self, args: &[&str]) {
        let out = Command::new("tpm2_dictionarylockout")
            .args(["-T", &self.tcti()])
            .args(args)
            .output()
            .expect("tpm2-tools is installed (cargo xtask test installs it)");
        assert!(
            out.status.success(),
            "tpm2_dictionarylockout {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn verifies(public: &[u8; 65], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public[..])
        .verify(message, signature)
        .is_ok()
}

#[test]
fn keys_sign_in_the_tpm_survive_restart_and_stay_on_their_tpm() {
    let state = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(state.path());
    let mut store = TpmKeyStore::open(&tpm.tcti()).unwrap();
    assert_eq!(store.info().backend, "tpm");
    assert_eq!(
        store.manufacturer(),
        "IBM",
        "swtpm reports IBM as its vendor"
    );
    // No PIN: the open release key, without any verification.
    assert!(!store.requires_uv());
    let release = store.release_for(None).expect("no PIN: keys are released");

    let created = store
        .create_key(KeyAlgorithm::Es256, Some(&release))
        .unwrap();
    let public = created.public_key.to_sec1_uncompressed();
    let signature = store
        .sign(&created.handle, b"authenticator data", Some(&release))
        .unwrap();
    assert!(verifies(&public, b"authenticator data", &signature));
    assert!(!verifies(&public, b"other data", &signature));
    // The key's authValue is in the handle only encrypted: no release, no signature.
    assert!(matches!(
        store.sign(&created.handle, b"m", None),
        Err(KeyStoreError::UserVerificationRequired)
    ));
    assert!(matches!(
        store.create_key(KeyAlgorithm::Es256, None),
        Err(KeyStoreError::UserVerificationRequired)
    ));
    let second = store
        .create_key(KeyAlgorithm::Es256, Some(&release))
        .unwrap();
    assert_ne!(second.public_key, created.public_key);

    // Restart the TPM on the same state: the same primary is re-derived, the key still signs.
    drop(store);
    drop(tpm);
    let tpm = Swtpm::start(state.path());
    let mut store = TpmKeyStore::open(&tpm.tcti()).unwrap();
    let signature = store
        .sign(&created.handle, b"after restart", Some(&release))
        .unwrap();
    assert!(verifies(&public, b"after restart", &signature));
    // Another store's release key does not decrypt this key's authorization.
    let other_release = store.release_for(None).unwrap();
    assert!(matches!(
        store.sign(&created.handle, b"m", Some(&other_release)),
        Err(KeyStoreError::InvalidHandle)
    ));

    // Tampered handles are refused.
    let mut tampered = created.handle.0.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        store.sign(&KeyHandle(tampered), b"m", Some(&release)),
        Err(KeyStoreError::InvalidHandle)
    ));
    assert!(matches!(
        store.sign(&KeyHandle(vec![1, 2]), b"m", Some(&release)),
        Err(KeyStoreError::InvalidHandle)
    ));

    // Another TPM (a copied state directory on another machine) cannot use the key.
    let other_state = tempfile::tempdir().unwrap();
    let other = Swtpm::start(other_state.path());
    let mut foreign = TpmKeyStore::open(&other.tcti()).unwrap();
    assert!(matches!(
        foreign.sign(&created.handle, b"m", Some(&release)),
        Err(KeyStoreError::InvalidHandle)
    ));
}

fn pin_hash(pin: &str) -> [u8; 16] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.as_bytes());
    digest.as_ref()[..16].try_into().unwrap()
}

fn open_with_state(tpm: &Swtpm, dir: &Path, biometric: bool) -> TpmKeyStore {
    let device_key = DeviceKey::load_or_create(dir).unwrap();
    let state = FileStateStore::open(dir, &device_key).unwrap();
    TpmKeyStore::open_with_state(&tpm.tcti(), Box::new(state), biometric).unwrap()
}

#[test]
fn a_pin_in_the_tpm_gates_keys_and_wrong_pins_hit_the_dictionary_attack_lockout() {
    let tpm_state = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    // Four failures lock out; failures are forgotten only after 600 s, so the counts below are
    // exact.
    tpm.dictionary_lockout(&[
        "--setup-parameters",
        "--max-tries=4",
        "--recovery-time=600",
        "--lockout-recovery-time=1",
    ]);
    tpm.dictionary_lockout(&["--clear-lockout"]);

    let mut store = open_with_state(&tpm, state_dir.path(), false);
    let da = store.dictionary_attack_status().unwrap();
    assert_eq!(
        (da.failed_tries, da.max_tries, da.recovery_time),
        (0, 4, 600)
    );
    let open = store.release_for(None).unwrap();
    let key = store.create_key(KeyAlgorithm::Es256, Some(&open)).unwrap();
    let public = key.public_key.to_sec1_uncompressed();

    // Set the PIN: the release key is sealed in the TPM PIN object; nothing releases keys
    // without it (no biometric release configured here).
    store.set_pin(&pin_hash("1234"), None).unwrap();
    assert!(store.requires_uv());
    assert!(store.release_for(None).is_none());
    let fingerprint = UserVerified::by(VerificationMethod::Biometric(BiometryType::Fingerprint));
    assert!(store.release_for(Some(&fingerprint)).is_none());
    let started = Instant::now();
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    let unseal = started.elapsed();
    let signature = store
        .sign(&key.handle, b"with PIN", Some(&release))
        .unwrap();
    assert!(verifies(&public, b"with PIN", &signature));
    // Latency of one authorized signature (decrypt the authValue, Load, Sign in a password
    // session, FlushContext), for the record.
    let rounds: u32 = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        store.sign(&key.handle, b"timing", Some(&release)).unwrap();
    }
    println!(
        "swtpm: PIN unseal {:.1} ms; authorized sign {:.1} ms (mean of {rounds})",
        unseal.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3 / f64::from(rounds)
    );
    // Keys made after the PIN need the release too.
    let later = store
        .create_key(KeyAlgorithm::Es256, Some(&release))
        .unwrap();
    assert!(matches!(
        store.sign(&later.handle, b"m", None),
        Err(KeyStoreError::UserVerificationRequired)
    ));

    // Reload after a restart of the daemon and of the TPM: the PIN still releases the key.
    drop(store);
    drop(tpm);
    let tpm = Swtpm::start(tpm_state.path());
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    assert!(store.requires_uv());
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    assert!(verifies(
        &public,
        b"after restart",
        &store
            .sign(&key.handle, b"after restart", Some(&release))
            .unwrap()
    ));

    // Wrong PINs are TPM authorization failures, counted by the TPM. (Killing swtpm was not
    // an orderly TPM shutdown: the TPM counts that as one failure already, as the TPM 2.0
    // specification asks, so a power cut is no way around the lockout.)
    let base = store.dictionary_attack_status().unwrap().failed_tries;
    assert_eq!(base, 1, "the unclean restart counts once");
    for expected in base + 1..=4 {
        assert!(matches!(
            store.verify_pin(&pin_hash("0000")),
            Err(PinCheckError::Wrong)
        ));
        assert_eq!(
            store.dictionary_attack_status().unwrap().failed_tries,
            expected
        );
    }
    // Locked out: the right PIN is refused too, and nothing is counted.
    let da = store.dictionary_attack_status().unwrap();
    assert!(da.locked_out(), "{da:?}");
    assert!(matches!(
        store.verify_pin(&pin_hash("1234")),
        Err(PinCheckError::LockedOut)
    ));
    assert!(matches!(
        store.verify_pin(&pin_hash("0000")),
        Err(PinCheckError::LockedOut)
    ));
    // Restarting the daemon does not help; the TPM keeps the count.
    drop(store);
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    assert!(matches!(
        store.verify_pin(&pin_hash("1234")),
        Err(PinCheckError::LockedOut)
    ));
    // The owner of the lockout hierarchy recovers the TPM; then the right PIN works again.
    drop(store);
    tpm.dictionary_lockout(&["--clear-lockout"]);
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    store
        .sign(&key.handle, b"recovered", Some(&release))
        .unwrap();

    // Changing the PIN: the old one stops working, the keys stay.
    store.set_pin(&pin_hash("5678"), Some(&release)).unwrap();
    assert!(matches!(
        store.verify_pin(&pin_hash("1234")),
        Err(PinCheckError::Wrong)
    ));
    let release = store.verify_pin(&pin_hash("5678")).unwrap();
    store.sign(&key.handle, b"new PIN", Some(&release)).unwrap();

    // The state directory copied next to another TPM: neither the PIN object nor the keys load.
    drop(store);
    let copy = tempfile::tempdir().unwrap();
    for name in ["device.key", "state"] {
        let status = Command::new("cp")
            .arg("-a")
            .arg(state_dir.path().join(name))
            .arg(copy.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let other_state = tempfile::tempdir().unwrap();
    let other = Swtpm::start(other_state.path());
    let mut foreign = open_with_state(&other, copy.path(), false);
    assert!(foreign.requires_uv());
    assert!(matches!(
        foreign.verify_pin(&pin_hash("5678")),
        Err(PinCheckError::Backend(_))
    ));
    assert!(matches!(
        foreign.sign(&key.handle, b"m", Some(&release)),
        Err(KeyStoreError::InvalidHandle)
    ));
    drop(foreign);

    // Delete and reset: a reset forgets the PIN and the release key; old handles are dead.
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    store.delete_key(&key.handle).unwrap();
    store.reset().unwrap();
    assert!(!store.requires_uv());
    let fresh = store.release_for(None).unwrap();
    assert!(matches!(
        store.sign(&key.handle, b"m", Some(&fresh)),
        Err(KeyStoreError::InvalidHandle)
    ));
}

#[test]
fn a_biometric_verifier_releases_keys_only_when_configured() {
    let tpm_state = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let fingerprint = UserVerified::by(VerificationMethod::Biometric(BiometryType::Fingerprint));
    let pin = UserVerified::by(VerificationMethod::Pin);
    let mut store = open_with_state(&tpm, state_dir.path(), true);
    let open = store.release_for(None).unwrap();
    let key = store.create_key(KeyAlgorithm::Es256, Some(&open)).unwrap();
    store.set_pin(&pin_hash("1234"), None).unwrap();
    assert!(store.release_for(None).is_none());
    assert!(
        store.release_for(Some(&pin)).is_none(),
        "a PIN goes through the TPM"
    );
    let release = store
        .release_for(Some(&fingerprint))
        .expect("biometric release");
    store.sign(&key.handle, b"m", Some(&release)).unwrap();
    // Without a biometric verifier configured, the daemon-held copy is erased at start.
    drop(store);
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    assert!(store.release_for(Some(&fingerprint)).is_none());
    drop(store);
    let mut store = open_with_state(&tpm, state_dir.path(), true);
    assert!(
        store.release_for(Some(&fingerprint)).is_none(),
        "only a PIN verification restores the biometric release"
    );
    store.verify_pin(&pin_hash("1234")).unwrap();
    assert!(store.release_for(Some(&fingerprint)).is_some());
}

#[test]
fn unreachable_tpm_is_reported_clearly() {
    let err = TpmKeyStore::open("swtpm:host=127.0.0.1,port=1").unwrap_err();
    assert!(err.to_string().contains("no TPM reachable"), "{err}");
    let err = TpmKeyStore::open("nonsense:").unwrap_err();
    assert!(
        err.to_string().contains("TCTI") || err.to_string().contains("TPM"),
        "{err}"
    );
}
