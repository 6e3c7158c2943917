//! The vault's attempt counter (issue 19, finding 10) and Identity Vault 3.0's app passcode,
//! per-user identity and background `lockAfter`, on a real in-process authenticator with a
//! scripted sensor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Rig, Touch};
use passgate_app_api::CallerId;
use passgate_app_api::vault::{
    AuthMode, Vault, VaultDescriptor, VaultErrorCode, VaultEvent, VaultOptions,
};
use passgate_authenticator::api::user_verifier::Interaction;
use serde_json::json;

fn caller() -> CallerId {
    CallerId::new("https://bank.example").unwrap()
}

fn descriptor(id: &str, username: &str) -> VaultDescriptor {
    VaultDescriptor {
        vault_id: id.into(),
        username: username.into(),
    }
}

fn open(rig: &Rig, id: &str, options: VaultOptions) -> Vault {
    Vault::open(
        Arc::clone(&rig.platform),
        caller(),
        &descriptor(id, "alice"),
        options,
    )
    .unwrap()
}

fn biometric(max_attempts: u8) -> VaultOptions {
    VaultOptions {
        auth_mode: AuthMode::BiometricOnly,
        max_attempts,
        ..VaultOptions::default()
    }
}

fn i() -> Interaction {
    Interaction::new()
}

fn files_ending(rig: &Rig, extension: &str) -> Vec<PathBuf> {
    common::files(&rig.app_dir())
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect()
}

/// A locked BiometricOnly vault "v" holding `token`, with `max_attempts`.
fn stored_vault(rig: &Rig, max_attempts: u8) -> Vault {
    rig.sensor.enroll("right-index");
    let vault = open(rig, "v", biometric(max_attempts));
    rig.sensor.touch(&[Touch::Match]);
    vault.store_value("token", &json!("t-1"), &i()).unwrap();
    vault.lock();
    vault
}

#[test]
fn a_failure_is_counted_before_the_attempt_is_evaluated() {
    let rig = Rig::new();
    let vault = stored_vault(&rig, 3);
    // What a second process sees while the finger is on the sensor: the attempt is already
    // counted, so killing passgate now does not give the attempt back.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (platform, record) = (Arc::clone(&rig.platform), Arc::clone(&seen));
    rig.sensor.on_scan(move || {
        let observer = Vault::open(
            Arc::clone(&platform),
            caller(),
            &descriptor("v", "alice"),
            biometric(3),
        )
        .unwrap();
        record.lock().unwrap().push(observer.remaining_attempts());
    });
    rig.sensor.touch(&[Touch::NoMatch]);
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![2, 1],
        "counted during each scan"
    );
    assert_eq!(vault.remaining_attempts(), 3, "a success resets it");
    // A cancelled scan is counted while it runs, and given back after.
    vault.lock();
    rig.sensor.touch(&[Touch::Cancel]);
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::UserCanceledInteraction
    );
    assert_eq!(seen.lock().unwrap().last(), Some(&2));
    assert_eq!(vault.remaining_attempts(), 3);
}

#[test]
fn an_unreadable_or_removed_counter_is_exhausted_not_zero() {
    for damage in ["garbage", "{\"failed\": 999, \"generation\": 1}", "remove"] {
        let rig = Rig::new();
        let vault = stored_vault(&rig, 5);
        let counter = files_ending(&rig, "attempts");
        assert_eq!(counter.len(), 1, "{damage}: the vault has its counter");
        if damage == "remove" {
            std::fs::remove_file(&counter[0]).unwrap();
        } else {
            std::fs::write(&counter[0], damage).unwrap();
        }
        assert_eq!(vault.remaining_attempts(), 0, "{damage}");
        let scans = rig.sensor.scans();
        rig.sensor.touch(&[Touch::Match]);
        let err = vault.unlock(false, &i()).unwrap_err();
        assert_eq!(
            err.code,
            VaultErrorCode::TooManyFailedAttempts,
            "{damage}: {err}"
        );
        assert_eq!(rig.sensor.scans(), scans, "{damage}: no attempt was made");
        assert!(files_ending(&rig, "vault").is_empty(), "{damage}: cleared");
    }
}

#[test]
fn an_older_vault_file_put_back_does_not_reset_the_counter() {
    let rig = Rig::new();
    let vault = stored_vault(&rig, 3);
    let path = files_ending(&rig, "vault")[0].clone();
    let old_copy = std::fs::read(&path).unwrap();
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    vault.store_value("token", &json!("t-2"), &i()).unwrap();
    vault.lock();
    rig.sensor.touch(&[Touch::NoMatch, Touch::NoMatch]);
    for _ in 0..2 {
        assert_eq!(
            vault.unlock(false, &i()).unwrap_err().code,
            VaultErrorCode::AuthFailed
        );
    }
    assert_eq!(vault.remaining_attempts(), 1);

    // The copy taken earlier is put back: refused, and the count is not reset.
    std::fs::write(&path, &old_copy).unwrap();
    let reopened = open(&rig, "v", biometric(3));
    assert_eq!(reopened.remaining_attempts(), 0);
    let scans = rig.sensor.scans();
    let err = reopened.unlock(false, &i()).unwrap_err();
    assert_eq!(err.code, VaultErrorCode::VaultUnavailable, "{err}");
    assert!(
        err.message.contains("older than its attempt counter"),
        "{err}"
    );
    assert_eq!(rig.sensor.scans(), scans);

    // Exhausting the attempts clears the vault; the copy put back afterwards is refused too.
    std::fs::write(&path, &old_copy).unwrap();
    drop(reopened);
    drop(vault);
    let rig2 = Rig::new();
    let vault = stored_vault(&rig2, 2);
    let path = files_ending(&rig2, "vault")[0].clone();
    let copy = std::fs::read(&path).unwrap();
    rig2.sensor.touch(&[Touch::NoMatch, Touch::NoMatch]);
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::TooManyFailedAttempts
    );
    assert!(!path.exists());
    std::fs::write(&path, &copy).unwrap();
    let restored = open(&rig2, "v", biometric(2));
    assert!(restored.is_locked());
    rig2.sensor.touch(&[Touch::Match]);
    assert_eq!(
        restored.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::VaultUnavailable
    );
    // A new vault after the clear starts past the old generations and works as usual.
    restored.clear().unwrap();
    rig2.sensor.touch(&[Touch::Match]);
    restored.store_value("fresh", &json!(1), &i()).unwrap();
    restored.lock();
    restored.unlock(false, &i()).unwrap();
    assert_eq!(restored.get_value("fresh").unwrap(), Some(json!(1)));
}

#[test]
fn an_app_passcode_is_needed_on_the_passcode_path_and_counted() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let vault = open(
        &rig,
        "custom",
        VaultOptions {
            custom_passcode: true,
            ..VaultOptions::default()
        },
    );
    let config = vault.config();
    assert_eq!(config.auth_mode, AuthMode::BiometricAndPasscode);
    assert!(config.is_passcode_setup_needed && !config.has_app_passcode);
    assert_eq!(
        vault.store_value("k", &json!(1), &i()).unwrap_err().code,
        VaultErrorCode::MissingPasscode
    );
    assert_eq!(
        vault
            .set_passcode(Some("2468"), Some("2469"), &i())
            .unwrap_err()
            .code,
        VaultErrorCode::MismatchedPasscode
    );
    assert_eq!(
        vault.set_passcode(Some(""), None, &i()).unwrap_err().code,
        VaultErrorCode::InvalidArguments
    );
    // No value ("the native prompt"): passgate's PIN prompt is the passcode, nothing to set up.
    let native = open(
        &rig,
        "native",
        VaultOptions {
            custom_passcode: true,
            ..VaultOptions::default()
        },
    );
    assert!(native.config().is_passcode_setup_needed);
    let scans = rig.sensor.scans();
    let config = native.set_passcode(None, None, &i()).unwrap();
    assert!(!config.is_passcode_setup_needed && !config.has_app_passcode);
    assert_eq!(rig.sensor.scans(), scans);
    // Setting it creates the vault: one verification by the authenticator.
    rig.sensor.touch(&[Touch::Match]);
    let config = vault.set_passcode(Some("2468"), None, &i()).unwrap();
    assert!(config.has_app_passcode && !config.is_passcode_setup_needed);
    vault.store_value("k", &json!("secret"), &i()).unwrap();
    let file = std::fs::read(&files_ending(&rig, "vault")[0]).unwrap();
    assert!(
        !file.windows(4).any(|w| w == b"2468"),
        "the passcode is not stored"
    );
    vault.lock();

    // The passcode path: the app passcode *and* the authenticator's verification.
    let scans = rig.sensor.scans();
    assert_eq!(
        vault.unlock_with(true, None, &i()).unwrap_err().code,
        VaultErrorCode::MissingPasscode
    );
    assert_eq!(rig.sensor.scans(), scans);
    assert_eq!(vault.remaining_attempts(), 5, "not an attempt");
    rig.sensor.touch(&[Touch::Match]);
    assert_eq!(
        vault
            .unlock_with(true, Some("0000"), &i())
            .unwrap_err()
            .code,
        VaultErrorCode::AuthFailed
    );
    assert_eq!(vault.remaining_attempts(), 4, "a wrong passcode is counted");
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock_with(true, Some("2468"), &i()).unwrap();
    assert_eq!(rig.sensor.scans(), scans + 2);
    assert_eq!(vault.get_value("k").unwrap(), Some(json!("secret")));
    assert_eq!(vault.remaining_attempts(), 5);
    // The biometric path still opens it.
    vault.lock();
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    // Changing it needs a verification; the old one no longer works.
    rig.sensor.touch(&[Touch::Match]);
    vault.set_passcode(Some("97531"), None, &i()).unwrap();
    vault.lock();
    rig.sensor.touch(&[Touch::Match, Touch::Match]);
    assert_eq!(
        vault
            .unlock_with(true, Some("2468"), &i())
            .unwrap_err()
            .code,
        VaultErrorCode::AuthFailed
    );
    vault.unlock_with(true, Some("97531"), &i()).unwrap();
    assert_eq!(vault.get_value("k").unwrap(), Some(json!("secret")));
}

#[test]
fn passcode_only_with_an_app_passcode_encrypts_under_both_factors() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let options = VaultOptions {
        auth_mode: AuthMode::PasscodeOnly,
        custom_passcode: true,
        max_attempts: 2,
        ..VaultOptions::default()
    };
    let vault = open(&rig, "p", options);
    rig.sensor.touch(&[Touch::Match]);
    vault.set_passcode(Some("1357"), None, &i()).unwrap();
    vault.store_value("k", &json!("both"), &i()).unwrap();
    vault.lock();
    // Without the passcode nothing opens it, not even a recognised finger.
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::MissingPasscode
    );
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock_with(false, Some("1357"), &i()).unwrap();
    assert_eq!(vault.get_value("k").unwrap(), Some(json!("both")));
    vault.lock();
    rig.sensor.touch(&[Touch::Match, Touch::Match]);
    assert_eq!(
        vault.unlock_with(false, Some("1"), &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    assert_eq!(
        vault.unlock_with(false, Some("2"), &i()).unwrap_err().code,
        VaultErrorCode::TooManyFailedAttempts
    );
    assert!(files_ending(&rig, "vault").is_empty());
}

#[test]
fn a_vault_is_its_caller_id_and_username() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let alice = open(&rig, "session", biometric(5));
    let bob = Vault::open(
        Arc::clone(&rig.platform),
        caller(),
        &descriptor("session", "bob"),
        biometric(5),
    )
    .unwrap();
    rig.sensor.touch(&[Touch::Match, Touch::Match]);
    alice.store_value("k", &json!("a"), &i()).unwrap();
    bob.store_value("k", &json!("b"), &i()).unwrap();
    assert_eq!(files_ending(&rig, "vault").len(), 2);
    assert_eq!(alice.get_value("k").unwrap(), Some(json!("a")));
    assert_eq!(bob.get_value("k").unwrap(), Some(json!("b")));
    bob.clear().unwrap();
    assert_eq!(alice.get_value("k").unwrap(), Some(json!("a")));
}

#[test]
fn lock_after_counts_background_time_when_the_host_reports_visibility() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let vault = open(
        &rig,
        "bg",
        VaultOptions {
            lock_after: 300,
            ..biometric(5)
        },
    );
    let events = vault.subscribe();
    rig.sensor.touch(&[Touch::Match]);
    vault.store_value("k", &json!(1), &i()).unwrap();
    // Shown: idle time does not count.
    vault.set_visibility(false);
    std::thread::sleep(Duration::from_millis(700));
    assert!(!vault.is_locked(), "shown apps do not lock by idling");
    // Hidden: it locks lockAfter later, by itself.
    vault.set_visibility(true);
    std::thread::sleep(Duration::from_millis(150));
    assert!(!vault.is_locked());
    let lock = events
        .iter()
        .find(|e| matches!(e, VaultEvent::Lock { .. }))
        .unwrap();
    assert_eq!(
        lock,
        VaultEvent::Lock {
            vault_id: "bg".into(),
            username: "alice".into(),
            timeout: true,
            saved: true
        }
    );
    assert!(vault.is_locked());
}
