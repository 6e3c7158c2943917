//! The TPM 2.0 key store against a real (software) TPM: swtpm, started by the test.
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use ciborium::value::Value;
use passgate_authenticator::Authenticator;
use passgate_authenticator::api::credential_store::{CredRandom32, CredentialStore};
use passgate_authenticator::api::key_store::{
    CredRandomWithUv, KeyAlgorithm, KeyHandle, KeyRelease, KeyStore, KeyStoreError, PinCheckError,
};
use passgate_authenticator::api::user_verifier::{BiometryType, UserVerified, VerificationMethod};
use passgate_authenticator::ctap::cbor::{int, int_map, text_map};
use passgate_authenticator::ctap::command;
use passgate_authenticator::ctap::pin_protocol::{KeyAgreement, Protocol};
use passgate_authenticator::software::{DeviceKey, FileCredentialStore, FileStateStore};
use passgate_authenticator::tpm::TpmKeyStore;
use passgate_testkit::swtpm::Swtpm;
use support::ctap::{bytes, call, member};
use support::tpm::tpm_authenticator;
use zeroize::Zeroizing;

fn verifies(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public)
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
    let public = created.public_key.to_raw();
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
    let public = key.public_key.to_raw();

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

/// HMAC-SHA-256, computed here independently of the authenticator.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

/// Every 32-byte window of `bytes`: what an attacker holding a record could try as a key.
fn windows32(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.windows(32)
}

fn copy_state(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let status = Command::new("cp")
            .arg("-a")
            .arg(entry.unwrap().path())
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

#[test]
fn hmac_secret_keys_are_tpm_hmac_keys_released_only_like_signing_keys() {
    let tpm_state = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    tpm.dictionary_lockout(&[
        "--setup-parameters",
        "--max-tries=4",
        "--recovery-time=600",
        "--lockout-recovery-time=1",
    ]);
    tpm.dictionary_lockout(&["--clear-lockout"]);
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    let open = store.release_for(None).unwrap();
    assert!(matches!(
        store.create_cred_random_with_uv(None),
        Err(KeyStoreError::UserVerificationRequired)
    ));
    let key = store.create_cred_random_with_uv(Some(&open)).unwrap();
    let CredRandomWithUv::InKeyStore(handle) = &key else {
        panic!("the TPM store holds the key: {key:?}");
    };
    assert_eq!(handle.0[0], 3, "an HMAC key handle (version 3)");
    let (salt1, salt2) = ([0x51u8; 32], [0x52u8; 32]);
    let one = store.hmac_with_uv(&key, &salt1, Some(&open)).unwrap();
    assert_eq!(one.len(), 32);
    assert_eq!(store.hmac_with_uv(&key, &salt1, Some(&open)).unwrap(), one);
    let both = store
        .hmac_with_uv(&key, &[salt1, salt2].concat(), Some(&open))
        .unwrap();
    assert_eq!(both.len(), 64);
    assert_eq!(&both[..32], &one[..], "salt1 first, salt2 second");
    assert_ne!(&both[32..], &one[..]);
    let two = Zeroizing::new(both[32..].to_vec());
    let other_key = store.create_cred_random_with_uv(Some(&open)).unwrap();
    assert_ne!(
        store.hmac_with_uv(&other_key, &salt1, Some(&open)).unwrap(),
        one,
        "each credential has its own key"
    );
    // Nothing in the handle is the key: no 32 bytes of it give the output (what someone with
    // the decrypted record could try).
    assert!(windows32(&handle.0).all(|w| hmac_sha256(w, &salt1) != one.as_slice()));
    assert_eq!(
        format!("{key:?}"),
        format!(
            "CredRandomWithUv::InKeyStore(KeyHandle({} bytes))",
            handle.0.len()
        )
    );

    // No release, another authenticator's release, bad salts: no output.
    assert!(matches!(
        store.hmac_with_uv(&key, &salt1, None),
        Err(KeyStoreError::UserVerificationRequired)
    ));
    let forged = KeyRelease::from_secret(Zeroizing::new([0x66; 32]));
    assert!(matches!(
        store.hmac_with_uv(&key, &salt1, Some(&forged)),
        Err(KeyStoreError::InvalidHandle)
    ));
    assert!(matches!(
        store.hmac_with_uv(&key, &[0u8; 31], Some(&open)),
        Err(KeyStoreError::InvalidSalts(31))
    ));
    assert!(matches!(
        store.hmac_with_uv(&key, &[0u8; 96], Some(&open)),
        Err(KeyStoreError::InvalidSalts(96))
    ));
    // Signing-key and HMAC-key handles are not interchangeable.
    let signing = store.create_key(KeyAlgorithm::Es256, Some(&open)).unwrap();
    assert!(matches!(
        store.hmac_with_uv(
            &CredRandomWithUv::InKeyStore(signing.handle.clone()),
            &salt1,
            Some(&open)
        ),
        Err(KeyStoreError::InvalidHandle)
    ));
    assert!(matches!(
        store.sign(handle, b"m", Some(&open)),
        Err(KeyStoreError::InvalidHandle)
    ));
    // A tampered blob does not load.
    let mut tampered = handle.0.clone();
    tampered[40] ^= 1;
    assert!(matches!(
        store.hmac_with_uv(
            &CredRandomWithUv::InKeyStore(KeyHandle(tampered)),
            &salt1,
            Some(&open)
        ),
        Err(KeyStoreError::InvalidHandle)
    ));

    // A key kept in the record (credentials made before the TPM held them) still evaluates,
    // in software, with or without a release: the same HMAC-SHA-256 as before.
    let legacy = CredRandomWithUv::InRecord(CredRandom32(Zeroizing::new([0x4c; 32])));
    assert_eq!(
        store
            .hmac_with_uv(&legacy, &[salt1, salt2].concat(), None)
            .unwrap()
            .as_slice(),
        [
            hmac_sha256(&[0x4c; 32], &salt1),
            hmac_sha256(&[0x4c; 32], &salt2)
        ]
        .concat()
    );

    // With a PIN the release comes only from the TPM's PIN object: a wrong PIN releases
    // nothing (and is counted by the TPM), the right one gives the same output as before.
    store.set_pin(&pin_hash("1234"), None).unwrap();
    assert!(store.release_for(None).is_none());
    let before = store.dictionary_attack_status().unwrap().failed_tries;
    assert!(matches!(
        store.verify_pin(&pin_hash("4321")),
        Err(PinCheckError::Wrong)
    ));
    assert_eq!(
        store.dictionary_attack_status().unwrap().failed_tries,
        before + 1,
        "the wrong PIN is a TPM authorization failure"
    );
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    assert_eq!(
        store.hmac_with_uv(&key, &salt1, Some(&release)).unwrap(),
        one
    );

    // Restart of the daemon and of the TPM: the same output for the same salt.
    drop(store);
    drop(tpm);
    let tpm = Swtpm::start(tpm_state.path());
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    let release = store.verify_pin(&pin_hash("1234")).unwrap();
    let again = store
        .hmac_with_uv(&key, &[salt1, salt2].concat(), Some(&release))
        .unwrap();
    assert_eq!(&again[..32], &one[..]);
    assert_eq!(&again[32..], &two[..]);
    drop(store);

    // The state directory copied next to another TPM: the PIN object does not load, and the
    // HMAC key does not either, even with the release key itself (read from this process).
    let copy = tempfile::tempdir().unwrap();
    copy_state(state_dir.path(), copy.path());
    let other_state = tempfile::tempdir().unwrap();
    let other = Swtpm::start(other_state.path());
    let mut foreign = open_with_state(&other, copy.path(), false);
    assert!(matches!(
        foreign.verify_pin(&pin_hash("1234")),
        Err(PinCheckError::Backend(_))
    ));
    assert!(matches!(
        foreign.hmac_with_uv(&key, &salt1, Some(&release)),
        Err(KeyStoreError::InvalidHandle)
    ));
    drop(foreign);

    // authenticatorReset replaces the release key: the HMAC key's authValue is gone for good.
    let mut store = open_with_state(&tpm, state_dir.path(), false);
    store.reset().unwrap();
    let fresh = store.release_for(None).unwrap();
    assert!(matches!(
        store.hmac_with_uv(&key, &salt1, Some(&fresh)),
        Err(KeyStoreError::InvalidHandle)
    ));
}

/// The platform side of hmac-secret (CTAP 2.1 §12.5), PIN/UV auth protocol 2.
struct HmacSecretClient {
    key: KeyAgreement,
    shared: Zeroizing<Vec<u8>>,
}

impl HmacSecretClient {
    fn new(a: &mut Authenticator) -> Self {
        // clientPIN getKeyAgreement, protocol 2.
        let response = call(a, command::CLIENT_PIN, vec![(1, int(2)), (2, int(2))]);
        let key = KeyAgreement::generate().unwrap();
        let shared = key
            .decapsulate(Protocol::Two, member(&response, &int(1)).clone())
            .unwrap();
        Self { key, shared }
    }

    fn input(&self, salts: &[u8]) -> Value {
        let salt_enc = Protocol::Two.encrypt(&self.shared, salts).unwrap();
        let salt_auth = Protocol::Two.authenticate(&self.shared, &salt_enc);
        int_map([
            (1, Some(self.key.cose_public_key())),
            (2, Some(Value::Bytes(salt_enc))),
            (3, Some(Value::Bytes(salt_auth))),
            (4, Some(int(2))),
        ])
    }

    /// The decrypted output of extension `name` in `auth_data`.
    fn output(&self, auth_data: &[u8], name: &str) -> Zeroizing<Vec<u8>> {
        assert_ne!(auth_data[32] & 0x80, 0, "extension data present");
        let mut rest = &auth_data[37..];
        if auth_data[32] & 0x40 != 0 {
            // Attested credential data: AAGUID, ID length, ID, COSE key.
            let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            rest = &rest[18 + len..];
            let _public_key: Value = ciborium::from_reader(&mut rest).unwrap();
        }
        let Value::Map(extensions) = ciborium::from_reader(&mut rest).unwrap() else {
            panic!("extensions are a map");
        };
        let encrypted = member(&extensions, &Value::Text(name.into()));
        Protocol::Two
            .decrypt(&self.shared, bytes(encrypted))
            .unwrap()
    }
}

const RP: &str = "vault.example";
const UV: u8 = 0x04;

fn make_credential(
    a: &mut Authenticator,
    client: &HmacSecretClient,
    user: &[u8],
    uv: bool,
    mc_salt: &[u8],
) -> (Vec<u8>, Zeroizing<Vec<u8>>) {
    let response = call(
        a,
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(vec![1; 32])),
            (2, text_map([("id", Some(Value::Text(RP.into())))])),
            (3, text_map([("id", Some(Value::Bytes(user.to_vec())))])),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Some(int(-7))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (
                6,
                text_map([
                    ("hmac-secret", Some(Value::Bool(true))),
                    ("hmac-secret-mc", Some(client.input(mc_salt))),
                ]),
            ),
            (7, text_map([("uv", uv.then_some(Value::Bool(true)))])),
        ],
    );
    let auth_data = bytes(member(&response, &int(2))).to_vec();
    assert_eq!(auth_data[32] & UV != 0, uv);
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + len].to_vec();
    (id, client.output(&auth_data, "hmac-secret-mc"))
}

/// A getAssertion of `id` with hmac-secret over `salts`, with the built-in verification or
/// without any.
fn evaluate(
    a: &mut Authenticator,
    client: &HmacSecretClient,
    id: &[u8],
    uv: bool,
    salts: &[u8],
) -> Zeroizing<Vec<u8>> {
    let response = call(
        a,
        command::GET_ASSERTION,
        vec![
            (1, Value::Text(RP.into())),
            (2, Value::Bytes(vec![2; 32])),
            (
                3,
                Value::Array(vec![text_map([
                    ("id", Some(Value::Bytes(id.to_vec()))),
                    ("type", Some(Value::Text("public-key".into()))),
                ])]),
            ),
            (4, text_map([("hmac-secret", Some(client.input(salts)))])),
            (5, text_map([("uv", uv.then_some(Value::Bool(true)))])),
        ],
    );
    let auth_data = bytes(member(&response, &int(2)));
    assert_eq!(auth_data[32] & UV != 0, uv, "UV flag as asked");
    client.output(auth_data, "hmac-secret")
}

#[test]
fn hmac_secret_over_ctap_is_computed_in_the_tpm_and_old_records_still_evaluate() {
    let tpm_state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start(tpm_state.path());
    let mut a = tpm_authenticator(&tpm, dir.path());
    let client = HmacSecretClient::new(&mut a);
    let (salt1, salt2) = ([0x11u8; 32], [0x22u8; 32]);
    let salts = [salt1, salt2].concat();

    // hmac-secret-mc with the verification of the creating ceremony gives the with-UV output;
    // without, the without-UV one.
    let (tpm_id, mc_uv) = make_credential(&mut a, &client, b"tpm", true, &salt1);
    let (old_id, mc_plain) = make_credential(&mut a, &client, b"old", false, &salt1);
    let with_uv = evaluate(&mut a, &client, &tpm_id, true, &salts);
    let without_uv = evaluate(&mut a, &client, &tpm_id, false, &salts);
    assert_eq!(with_uv.len(), 64);
    assert_eq!(
        &with_uv[..32],
        &mc_uv[..],
        "hmac-secret-mc with UV = a later UV output"
    );
    assert_ne!(&with_uv[..32], &with_uv[32..], "salt1 and salt2 differ");
    assert_ne!(
        &with_uv[..32],
        &without_uv[..32],
        "UV and non-UV outputs differ"
    );
    assert_ne!(&with_uv[32..], &without_uv[32..]);
    assert_eq!(evaluate(&mut a, &client, &tpm_id, true, &salts), with_uv);
    let old_without_uv = evaluate(&mut a, &client, &old_id, false, &salt1);
    assert_eq!(
        &old_without_uv[..],
        &mc_plain[..],
        "mc without UV = a later non-UV output"
    );
    drop(a);

    // What someone with a copy of the state directory reads from the record: the without-UV
    // key (so the non-UV output is computable offline, by design), and for the with-UV key only
    // a TPM blob, none of whose 32-byte windows gives the UV output.
    let device_key = DeviceKey::load_or_create(dir.path()).unwrap();
    let mut credentials = FileCredentialStore::open(dir.path(), &device_key, 100).unwrap();
    let record = credentials.get(RP, &tpm_id).unwrap().unwrap();
    let keys = record.hmac_secret.clone().unwrap();
    assert_eq!(
        hmac_sha256(keys.without_uv.0.as_ref(), &salt1),
        without_uv[..32]
    );
    let CredRandomWithUv::InKeyStore(handle) = &keys.with_uv else {
        panic!("the with-UV key is in the TPM: {:?}", keys.with_uv);
    };
    assert!(windows32(&handle.0).all(|w| hmac_sha256(w, &salt1) != with_uv[..32]));
    assert!(
        windows32(&record.key.0)
            .chain(windows32(keys.without_uv.0.as_ref()))
            .all(|w| hmac_sha256(w, &salt1) != with_uv[..32])
    );

    // A credential as stored before the TPM held hmac-secret keys: both keys in the record.
    let mut old = credentials.get(RP, &old_id).unwrap().unwrap();
    let mut old_keys = old.hmac_secret.clone().unwrap();
    old_keys.with_uv = CredRandomWithUv::InRecord(CredRandom32(Zeroizing::new([0x0d; 32])));
    old.hmac_secret = Some(old_keys);
    credentials.update(&old).unwrap();
    drop(credentials);

    // After a restart of the authenticator and of the TPM: the same outputs.
    drop(tpm);
    let tpm = Swtpm::start(tpm_state.path());
    let mut a = tpm_authenticator(&tpm, dir.path());
    let client = HmacSecretClient::new(&mut a);
    assert_eq!(evaluate(&mut a, &client, &tpm_id, true, &salts), with_uv);
    assert_eq!(
        evaluate(&mut a, &client, &tpm_id, false, &salts),
        without_uv
    );
    // The old-format record evaluates with its software key.
    assert_eq!(
        evaluate(&mut a, &client, &old_id, true, &salts).as_slice(),
        [
            hmac_sha256(&[0x0d; 32], &salt1),
            hmac_sha256(&[0x0d; 32], &salt2)
        ]
        .concat()
    );
    assert_eq!(
        evaluate(&mut a, &client, &old_id, false, &salt1),
        old_without_uv
    );
}
