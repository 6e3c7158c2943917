//! The identity vault on a real in-process authenticator with a scripted sensor: auth modes,
//! attempts, invalidation, idle lock, events, InMemoryOnly, crash safety.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Rig, Touch};
use passgate_app_api::CallerId;
use passgate_app_api::fs::{WriteHook, WriteStage};
use passgate_app_api::vault::{
    AuthMode, Vault, VaultDescriptor, VaultErrorCode, VaultEvent, VaultOptions,
};
use passgate_authenticator::api::user_verifier::Interaction;
use serde_json::json;

fn caller() -> CallerId {
    CallerId::new("https://bank.example").unwrap()
}

fn descriptor(id: &str) -> VaultDescriptor {
    VaultDescriptor {
        vault_id: id.into(),
        username: "alice".into(),
    }
}

fn open(rig: &Rig, id: &str, auth_mode: AuthMode) -> Vault {
    open_with(
        rig,
        id,
        VaultOptions {
            auth_mode,
            ..VaultOptions::default()
        },
    )
}

fn open_with(rig: &Rig, id: &str, options: VaultOptions) -> Vault {
    Vault::open(
        Arc::clone(&rig.platform),
        caller(),
        &descriptor(id),
        options,
    )
    .unwrap()
}

fn vault_files(rig: &Rig) -> Vec<std::path::PathBuf> {
    common::files(&rig.app_dir())
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.to_string_lossy().contains("/vaults/"))
        .filter(|p| p.extension().is_some_and(|e| e == "vault"))
        .collect()
}

fn counter_files(rig: &Rig) -> Vec<std::path::PathBuf> {
    common::files(&rig.app_dir())
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.extension().is_some_and(|e| e == "attempts"))
        .collect()
}

/// An event, without the configuration it carries (the test compares the rest).
fn described(event: VaultEvent) -> String {
    match event {
        VaultEvent::Lock {
            vault_id,
            username,
            timeout,
            saved,
        } => format!("lock {vault_id} of {username} timeout={timeout} saved={saved}"),
        VaultEvent::Unlock {
            vault_id, username, ..
        } => format!("unlock {vault_id} of {username}"),
        VaultEvent::ConfigChanged { config } => format!("config {}", config.vault_id),
    }
}

fn unlock_of(id: &str) -> String {
    format!("unlock {id} of alice")
}

/// A lock event; InMemoryOnly vaults (named "mem...") lose their data, others are saved.
fn lock_of(id: &str, timeout: bool) -> String {
    let saved = !id.starts_with("mem");
    format!("lock {id} of alice timeout={timeout} saved={saved}")
}

fn i() -> Interaction {
    Interaction::new()
}

#[test]
fn biometric_only_vault_stores_locks_unlocks_and_survives_a_restart() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let vault = open(&rig, "session", AuthMode::BiometricOnly);
    assert!(!vault.is_locked() && !vault.is_in_use());
    assert_eq!(vault.get_keys().unwrap(), Vec::<String>::new());
    assert!(vault.get_value("token").unwrap().is_none());

    rig.sensor.touch(&[Touch::Match]);
    vault
        .store_value("token", &json!("s3cr3t-session-token"), &i())
        .unwrap();
    assert_eq!(
        rig.sensor.scans(),
        1,
        "creating the vault needs one verification"
    );
    vault
        .store_value("profile", &json!({"name": "Alice", "n": 1}), &i())
        .unwrap();
    assert_eq!(
        rig.sensor.scans(),
        1,
        "an unlocked vault writes without a scan"
    );
    assert!(vault.is_in_use());
    for path in vault_files(&rig) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"s3cr3t"),
            "{} holds the value in the clear",
            path.display()
        );
    }
    for (path, mode) in common::files(&rig.app_dir()) {
        assert_eq!(mode, 0o600, "{}", path.display());
    }

    vault.lock();
    assert!(vault.is_locked());
    let locked = vault.get_value("token").unwrap_err();
    assert_eq!(locked.code, VaultErrorCode::VaultLocked);
    assert_eq!(
        vault.store_value("x", &json!(1), &i()).unwrap_err().code,
        VaultErrorCode::VaultLocked
    );
    assert_eq!(
        vault.get_keys().unwrap_err().code,
        VaultErrorCode::VaultLocked
    );
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    assert_eq!(
        vault.get_value("token").unwrap(),
        Some(json!("s3cr3t-session-token"))
    );
    vault.remove_value("profile").unwrap();
    assert_eq!(vault.get_keys().unwrap(), vec!["token".to_owned()]);
    drop(vault);

    // A new process: the vault is on disk, locked, with its own configuration.
    let reopened = open_with(
        &rig,
        "session",
        VaultOptions {
            auth_mode: AuthMode::PasscodeOnly,
            lock_after: 1234,
            max_attempts: 9,
            ..VaultOptions::default()
        },
    );
    assert!(reopened.is_locked() && reopened.is_in_use());
    assert_eq!(reopened.config().auth_mode, AuthMode::BiometricOnly);
    assert_eq!(reopened.config().max_attempts, 5);
    rig.sensor.touch(&[Touch::Match]);
    reopened.unlock(false, &i()).unwrap();
    assert_eq!(reopened.get_keys().unwrap(), vec!["token".to_owned()]);
    reopened.clear().unwrap();
    assert!(!reopened.is_in_use() && !reopened.is_locked());
    assert!(vault_files(&rig).is_empty());
}

#[test]
fn wrong_fingers_count_and_too_many_clear_the_vault() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let vault = open_with(
        &rig,
        "v",
        VaultOptions {
            auth_mode: AuthMode::BiometricOnly,
            lock_after: 0,
            max_attempts: 3,
            ..VaultOptions::default()
        },
    );
    rig.sensor.touch(&[Touch::Match]);
    vault.store_value("token", &json!("t"), &i()).unwrap();
    vault.lock();
    assert_eq!(vault.remaining_attempts(), 3);
    rig.sensor.touch(&[Touch::NoMatch]);
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    assert_eq!(vault.remaining_attempts(), 2);
    // A cancelled scan is not an attempt.
    rig.sensor.touch(&[Touch::Cancel]);
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::UserCanceledInteraction
    );
    assert_eq!(vault.remaining_attempts(), 2);
    // Nobody touches the sensor (the scan times out): not an attempt either.
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::UserCanceledInteraction
    );
    assert_eq!(vault.remaining_attempts(), 2);
    // The counter is durable: a new process sees it.
    let again = open(&rig, "v", AuthMode::BiometricOnly);
    assert_eq!(again.remaining_attempts(), 2);
    // Success resets it.
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    assert_eq!(vault.remaining_attempts(), 3);
    vault.lock();
    rig.sensor
        .touch(&[Touch::NoMatch, Touch::NoMatch, Touch::NoMatch]);
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    let cleared = vault.unlock(false, &i()).unwrap_err();
    assert_eq!(cleared.code, VaultErrorCode::TooManyFailedAttempts);
    assert!(!vault.is_in_use() && !vault.is_locked());
    assert!(
        vault_files(&rig).is_empty(),
        "the vault is gone (its counter stays, a generation ahead)"
    );
    assert_eq!(counter_files(&rig).len(), 1);
    assert!(vault.get_value("token").unwrap().is_none());
}

#[test]
fn an_enrollment_change_invalidates_biometric_only_vaults_only() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    rig.set_pin("246810");
    let bound = open(&rig, "bound", AuthMode::BiometricOnly);
    let free = open(&rig, "free", AuthMode::BiometricAndPasscode);
    rig.sensor.touch(&[Touch::Match, Touch::Match]);
    bound.store_value("k", &json!("b"), &i()).unwrap();
    free.store_value("k", &json!("f"), &i()).unwrap();
    bound.lock();
    free.lock();
    rig.sensor.enroll("left-thumb");
    let err = bound.unlock(false, &i()).unwrap_err();
    assert_eq!(err.code, VaultErrorCode::InvalidatedCredential);
    assert_eq!(
        rig.sensor.scans(),
        2,
        "an invalidated credential asks for no scan"
    );
    assert_eq!(bound.remaining_attempts(), 5, "not a failed attempt");
    rig.sensor.touch(&[Touch::Match]);
    free.unlock(false, &i()).unwrap();
    assert_eq!(free.get_value("k").unwrap(), Some(json!("f")));
}

#[test]
fn passcode_modes_and_the_pin_fallback() {
    let rig = Rig::with(2, |p| p);
    rig.sensor.enroll("right-index");
    let pin_only = open(&rig, "pin", AuthMode::PasscodeOnly);
    assert_eq!(
        pin_only.store_value("k", &json!(1), &i()).unwrap_err().code,
        VaultErrorCode::MissingPasscode
    );
    rig.set_pin("135790");
    pin_only.store_value("k", &json!(1), &i()).unwrap();
    assert_eq!(rig.sensor.scans(), 0, "PasscodeOnly never scans");
    pin_only.lock();
    rig.answer_pin("000000");
    assert_eq!(
        pin_only.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    assert_eq!(pin_only.remaining_attempts(), 4);
    rig.decline_pin();
    assert_eq!(
        pin_only.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::UserCanceledInteraction
    );
    rig.answer_pin("135790");
    pin_only.unlock(false, &i()).unwrap();
    assert_eq!(pin_only.get_value("k").unwrap(), Some(json!(1)));

    let bio = open(&rig, "bio", AuthMode::BiometricOnly);
    assert_eq!(
        bio.unlock(true, &i()).unwrap_err().code,
        VaultErrorCode::PasscodeNotEnabled
    );
    let both = open(&rig, "both", AuthMode::BiometricAndPasscode);
    rig.sensor.touch(&[Touch::Match]);
    both.store_value("k", &json!("both"), &i()).unwrap();
    both.lock();
    // usingPasscode skips the sensor.
    let scans = rig.sensor.scans();
    both.unlock(true, &i()).unwrap();
    assert_eq!(rig.sensor.scans(), scans);
    both.lock();
    // Two failed scans lock the sensor out: a BiometricOnly vault cannot be used then ...
    rig.sensor.touch(&[Touch::NoMatch, Touch::NoMatch]);
    assert_eq!(
        bio.store_value("k", &json!(1), &i()).unwrap_err().code,
        VaultErrorCode::AuthFailed
    );
    let err = bio.store_value("k", &json!(1), &i()).unwrap_err();
    assert_eq!(err.code, VaultErrorCode::BiometricsLockedOut, "{err}");
    // ... while BiometricAndPasscode falls back to the PIN (which also unblocks the sensor).
    let scans = rig.sensor.scans();
    both.unlock(false, &i()).unwrap();
    assert_eq!(
        rig.sensor.scans(),
        scans,
        "the locked-out sensor was not asked"
    );
    assert_eq!(both.get_value("k").unwrap(), Some(json!("both")));
    rig.sensor.touch(&[Touch::Match]);
    bio.store_value("k", &json!(1), &i()).unwrap();
}

#[test]
fn no_sensor_means_biometrics_not_enabled() {
    let rig = Rig::new();
    let vault = open(&rig, "v", AuthMode::BiometricOnly);
    assert_eq!(
        vault.store_value("k", &json!(1), &i()).unwrap_err().code,
        VaultErrorCode::BiometricsNotEnabled
    );
    assert!(vault_files(&rig).is_empty());
}

#[test]
fn idle_vaults_lock_by_themselves_and_events_report_it() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let vault = open_with(
        &rig,
        "idle",
        VaultOptions {
            auth_mode: AuthMode::BiometricOnly,
            lock_after: 300,
            max_attempts: 5,
            ..VaultOptions::default()
        },
    );
    let events = vault.subscribe();
    rig.sensor.touch(&[Touch::Match]);
    vault.store_value("k", &json!("v"), &i()).unwrap();
    assert_eq!(
        described(events.recv_timeout(Duration::from_secs(1)).unwrap()),
        unlock_of("idle")
    );
    // Activity keeps it open.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(vault.get_value("k").unwrap(), Some(json!("v")));
    }
    // Idle: the timer locks it without anyone calling.
    let started = std::time::Instant::now();
    let event = events.recv_timeout(Duration::from_secs(3)).unwrap();
    assert_eq!(described(event), lock_of("idle", true));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(vault.is_locked());
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    vault.lock();
    assert_eq!(described(events.recv().unwrap()), unlock_of("idle"));
    assert_eq!(described(events.recv().unwrap()), lock_of("idle", false));
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    let config = vault
        .update_config(
            VaultOptions {
                auth_mode: AuthMode::BiometricOnly,
                lock_after: 0,
                max_attempts: 7,
                ..VaultOptions::default()
            },
            &i(),
        )
        .unwrap();
    assert_eq!(config.max_attempts, 7);
    assert_eq!(described(events.recv().unwrap()), unlock_of("idle"));
    assert_eq!(
        events.recv().unwrap(),
        VaultEvent::ConfigChanged {
            config: config.clone()
        }
    );
    assert_eq!(
        serde_json::to_value(VaultEvent::Lock {
            vault_id: "idle".into(),
            username: "alice".into(),
            timeout: true,
            saved: true,
        })
        .unwrap(),
        json!({"event": "lock", "vaultId": "idle", "username": "alice", "timeout": true, "saved": true})
    );
    // The new settings are in the (authenticated) header: a new process sees them.
    drop(vault);
    assert_eq!(
        open(&rig, "idle", AuthMode::BiometricOnly)
            .config()
            .max_attempts,
        7
    );
}

#[test]
fn in_memory_only_never_touches_disk_and_locking_clears_it() {
    let rig = Rig::new();
    let vault = open(&rig, "mem", AuthMode::InMemoryOnly);
    vault.store_value("k", &json!("v"), &i()).unwrap();
    assert_eq!(vault.get_value("k").unwrap(), Some(json!("v")));
    assert!(vault.is_in_use() && !vault.is_locked());
    assert!(vault_files(&rig).is_empty());
    assert!(
        !rig.app_dir().join("callers").exists(),
        "not even a directory is created"
    );
    assert_eq!(rig.sensor.scans(), 0);
    vault.lock();
    assert!(!vault.is_in_use());
    assert!(vault.get_value("k").unwrap().is_none());
    vault.store_value("k", &json!(2), &i()).unwrap();
    drop(vault);
    // With lockAfter, idling clears it once: one event, not one per timer tick.
    let idle = open_with(
        &rig,
        "mem2",
        VaultOptions {
            auth_mode: AuthMode::InMemoryOnly,
            lock_after: 100,
            max_attempts: 5,
            ..VaultOptions::default()
        },
    );
    let events = idle.subscribe();
    idle.store_value("k", &json!(1), &i()).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let seen: Vec<String> = events.try_iter().map(described).collect();
    assert_eq!(seen, vec![lock_of("mem2", true)]);
    assert!(idle.get_value("k").unwrap().is_none());
    let fresh = open(&rig, "mem", AuthMode::InMemoryOnly);
    assert!(
        fresh.get_value("k").unwrap().is_none(),
        "gone with the process"
    );
    assert!(vault_files(&rig).is_empty());
}

#[test]
fn changing_the_auth_mode_rekeys_under_a_new_credential() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    rig.set_pin("112233");
    let vault = open(&rig, "v", AuthMode::BiometricOnly);
    rig.sensor.touch(&[Touch::Match]);
    vault.store_value("k", &json!("kept"), &i()).unwrap();
    let before = std::fs::read(&vault_files(&rig)[0]).unwrap();
    let config = vault
        .update_config(
            VaultOptions {
                auth_mode: AuthMode::PasscodeOnly,
                ..VaultOptions::default()
            },
            &i(),
        )
        .unwrap();
    assert_eq!(config.auth_mode, AuthMode::PasscodeOnly);
    let after = std::fs::read(&vault_files(&rig)[0]).unwrap();
    assert_ne!(before, after);
    drop(vault);
    let reopened = open(&rig, "v", AuthMode::BiometricOnly);
    assert_eq!(reopened.config().auth_mode, AuthMode::PasscodeOnly);
    let scans = rig.sensor.scans();
    reopened.unlock(false, &i()).unwrap();
    assert_eq!(rig.sensor.scans(), scans, "unlocked with the PIN");
    assert_eq!(reopened.get_value("k").unwrap(), Some(json!("kept")));
    // To InMemoryOnly: the file goes, the data stays in memory.
    reopened
        .update_config(
            VaultOptions {
                auth_mode: AuthMode::InMemoryOnly,
                ..VaultOptions::default()
            },
            &i(),
        )
        .unwrap();
    assert!(vault_files(&rig).is_empty());
    assert_eq!(reopened.get_value("k").unwrap(), Some(json!("kept")));
    // Locked vaults cannot be reconfigured.
    let locked = open(&rig, "w", AuthMode::PasscodeOnly);
    locked.store_value("a", &json!(1), &i()).unwrap();
    locked.lock();
    assert_eq!(
        locked
            .update_config(VaultOptions::default(), &i())
            .unwrap_err()
            .code,
        VaultErrorCode::VaultLocked
    );
}

/// Fails every write between the temp file and the rename, as a crash there would.
struct FailBeforeRename;

impl WriteHook for FailBeforeRename {
    fn at(&self, stage: WriteStage, target: &Path) -> std::io::Result<()> {
        if stage == WriteStage::TempWritten && target.to_string_lossy().ends_with(".vault") {
            return Err(std::io::Error::other("injected crash before rename"));
        }
        Ok(())
    }
}

#[test]
fn a_write_that_fails_before_the_rename_leaves_the_old_vault_intact() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let vault = open(&rig, "v", AuthMode::BiometricOnly);
    rig.sensor.touch(&[Touch::Match]);
    vault.store_value("k", &json!("old"), &i()).unwrap();
    let before = std::fs::read(&vault_files(&rig)[0]).unwrap();
    drop(vault);

    // The same state directory, with a platform whose vault writes fail before the rename.
    let platform = passgate_app_api::Platform::new(
        passgate_app_api::AppDevice::in_process(Arc::clone(&rig.authenticator)),
        &rig.app_dir(),
        Box::new(passgate_app_api::NoPasscode),
    )
    .unwrap()
    .with_write_hook(Arc::new(FailBeforeRename));
    let vault = Vault::open(
        Arc::new(platform),
        caller(),
        &descriptor("v"),
        VaultOptions::default(),
    )
    .unwrap();
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    let err = vault.store_value("k", &json!("new"), &i()).unwrap_err();
    assert_eq!(err.code, VaultErrorCode::VaultUnavailable);
    assert!(err.message.contains("injected"), "{}", err.message);
    assert_eq!(
        vault.get_value("k").unwrap(),
        Some(json!("old")),
        "memory unchanged"
    );
    let files = vault_files(&rig);
    assert_eq!(files.len(), 1, "no temp file left: {files:?}");
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        before,
        "the file is the old vault"
    );

    // A crash that left a temp file behind: the next open removes it; the vault opens.
    let stale = files[0].parent().unwrap().join(".tmp-0123456789abcdef");
    std::fs::write(&stale, &before[..before.len() / 2]).unwrap();
    drop(vault);
    let vault = open(&rig, "v", AuthMode::BiometricOnly);
    assert!(!stale.exists());
    rig.sensor.touch(&[Touch::Match]);
    vault.unlock(false, &i()).unwrap();
    assert_eq!(vault.get_value("k").unwrap(), Some(json!("old")));
}

#[test]
fn a_missing_credential_is_key_not_found_and_a_modified_file_does_not_open() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let vault = open(&rig, "v", AuthMode::BiometricOnly);
    rig.sensor.touch(&[Touch::Match]);
    vault.store_value("k", &json!("v"), &i()).unwrap();
    vault.lock();
    let path = vault_files(&rig)[0].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    rig.sensor.touch(&[Touch::Match]);
    let err = vault.unlock(false, &i()).unwrap_err();
    assert_eq!(err.code, VaultErrorCode::VaultUnavailable);
    assert!(err.message.contains("does not decrypt"), "{}", err.message);
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    // The authenticator loses its credentials (a reset, a new state directory).
    let other = tempfile::tempdir().unwrap();
    *rig.authenticator.lock().unwrap() = common::authenticator(other.path(), &rig.sensor, 8);
    rig.sensor.touch(&[Touch::Match]);
    assert_eq!(
        vault.unlock(false, &i()).unwrap_err().code,
        VaultErrorCode::KeyNotFound
    );
}

#[test]
fn bad_arguments_are_invalid_arguments() {
    let rig = Rig::new();
    let long = "x".repeat(200);
    for (id, user) in [("", "u"), (long.as_str(), "u"), ("v", ""), ("a\u{7}", "u")] {
        let err = Vault::open(
            Arc::clone(&rig.platform),
            caller(),
            &VaultDescriptor {
                vault_id: id.into(),
                username: user.into(),
            },
            VaultOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, VaultErrorCode::InvalidArguments, "{id:?}");
    }
    let bad = Vault::open(
        Arc::clone(&rig.platform),
        caller(),
        &descriptor("v"),
        VaultOptions {
            max_attempts: 0,
            ..VaultOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(bad.code, VaultErrorCode::InvalidArguments);
    let vault = open(&rig, "m", AuthMode::InMemoryOnly);
    assert_eq!(
        vault.store_value("", &json!(1), &i()).unwrap_err().code,
        VaultErrorCode::InvalidArguments
    );
    let big = json!("x".repeat(300 * 1024));
    assert_eq!(
        vault.store_value("k", &big, &i()).unwrap_err().code,
        VaultErrorCode::InvalidArguments
    );
}
