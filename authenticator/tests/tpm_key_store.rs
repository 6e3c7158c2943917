//! The TPM 2.0 key store against a real (software) TPM: swtpm, started by the test.
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use passgate_authenticator::api::key_store::{KeyAlgorithm, KeyHandle, KeyStore, KeyStoreError};
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

    let created = store.create_key(KeyAlgorithm::Es256).unwrap();
    let public = created.public_key.to_sec1_uncompressed();
    let signature = store.sign(&created.handle, b"authenticator data").unwrap();
    assert!(verifies(&public, b"authenticator data", &signature));
    assert!(!verifies(&public, b"other data", &signature));
    let second = store.create_key(KeyAlgorithm::Es256).unwrap();
    assert_ne!(second.public_key, created.public_key);

    // Restart the TPM on the same state: the same primary is re-derived, the key still signs.
    drop(store);
    drop(tpm);
    let tpm = Swtpm::start(state.path());
    let mut store = TpmKeyStore::open(&tpm.tcti()).unwrap();
    let signature = store.sign(&created.handle, b"after restart").unwrap();
    assert!(verifies(&public, b"after restart", &signature));

    // Tampered handles are refused.
    let mut tampered = created.handle.0.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        store.sign(&KeyHandle(tampered), b"m"),
        Err(KeyStoreError::InvalidHandle)
    ));
    assert!(matches!(
        store.sign(&KeyHandle(vec![1, 2]), b"m"),
        Err(KeyStoreError::InvalidHandle)
    ));

    // Another TPM (a copied state directory on another machine) cannot use the key.
    let other_state = tempfile::tempdir().unwrap();
    let other = Swtpm::start(other_state.path());
    let mut foreign = TpmKeyStore::open(&other.tcti()).unwrap();
    assert!(matches!(
        foreign.sign(&created.handle, b"m"),
        Err(KeyStoreError::InvalidHandle)
    ));
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
