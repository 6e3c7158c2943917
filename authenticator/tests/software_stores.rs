//! The default software backends on a real file system.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use passgate_authenticator::api::credential_store::{
    CredRandom, CredRandom32, CredentialRecord, CredentialStore, StoreError,
};
use passgate_authenticator::api::key_store::{KeyAlgorithm, KeyStore};
use passgate_authenticator::software::{DeviceKey, FileCredentialStore, SoftwareKeyStore};

fn record(
    keys: &mut SoftwareKeyStore,
    rp: &str,
    id: &[u8],
    user: &[u8],
    rk: bool,
    created: u64,
) -> CredentialRecord {
    let key = keys.create_key(KeyAlgorithm::Es256).unwrap();
    CredentialRecord {
        id: id.to_vec(),
        rp_id: rp.into(),
        rp_name: Some("Example Corp".into()),
        user_id: user.to_vec(),
        user_name: Some("alice@example.com".into()),
        user_display_name: Some("Alice".into()),
        discoverable: rk,
        algorithm: KeyAlgorithm::Es256,
        key: key.handle,
        public_key: key.public_key,
        created_at: created,
        cred_protect: 1,
        cred_blob: Some(b"blob".to_vec()),
        biometric_set: Some([5; 32]),
        large_blob_key: Some(CredRandom32(zeroize::Zeroizing::new([7; 32]))),
        cred_random: Some(CredRandom(zeroize::Zeroizing::new(
            [created; 64].map(|b| u8::try_from(b % 251).unwrap()),
        ))),
    }
}

fn open(dir: &Path, capacity: usize) -> (DeviceKey, SoftwareKeyStore, FileCredentialStore) {
    let key = DeviceKey::load_or_create(dir).unwrap();
    let keys = SoftwareKeyStore::new(&key);
    let store = FileCredentialStore::open(dir, &key, capacity).unwrap();
    (key, keys, store)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push(path.clone());
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn round_trip_survives_reopen_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    let rk = record(
        &mut keys,
        "example.com",
        b"credential-id-01",
        b"user-1",
        true,
        10,
    );
    let nrk = record(
        &mut keys,
        "example.com",
        b"credential-id-02",
        b"user-2",
        false,
        11,
    );
    store.insert(&rk).unwrap();
    store.insert(&nrk).unwrap();
    drop(store);
    let (_k, _keys, mut store) = open(dir.path(), 100);
    assert_eq!(
        store.get("example.com", b"credential-id-01").unwrap(),
        Some(rk.clone())
    );
    assert_eq!(
        store.get("example.com", b"credential-id-02").unwrap(),
        Some(nrk)
    );
    assert_eq!(
        store.get("other.example", b"credential-id-01").unwrap(),
        None
    );
    assert_eq!(store.get("example.com", b"unknown").unwrap(), None);
    assert_eq!(store.discoverable("example.com").unwrap(), vec![rk]);
    assert_eq!(store.discoverable_count().unwrap(), 1);
    assert_eq!(store.remaining_capacity().unwrap(), 98);
    assert_eq!(
        store.relying_parties().unwrap(),
        vec![(
            "example.com".to_string(),
            Some("Example Corp".to_string()),
            1
        )]
    );
    for path in files(dir.path()) {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{}", path.display());
    }
}

#[test]
fn nothing_identifying_is_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    store
        .insert(&record(
            &mut keys,
            "secret-bank.example",
            b"CREDID-PLAINTEXT",
            b"USERHANDLE-XYZ",
            true,
            1,
        ))
        .unwrap();
    for path in files(dir.path()) {
        let name = path.to_string_lossy().to_string();
        for needle in [
            "secret-bank",
            "CREDID",
            "USERHANDLE",
            "alice",
            "Example Corp",
        ] {
            assert!(!name.contains(needle), "{name}");
        }
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for needle in [
                &b"secret-bank"[..],
                b"CREDID-PLAINTEXT",
                b"USERHANDLE-XYZ",
                b"alice@example.com",
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds plaintext",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn tampered_record_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    store
        .insert(&record(&mut keys, "example.com", b"id-1", b"u", true, 1))
        .unwrap();
    drop(store);
    let cred = files(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "rk"))
        .unwrap();
    let mut bytes = std::fs::read(&cred).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&cred, &bytes).unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    let err = store.get("example.com", b"id-1").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path, .. } if *path == cred),
        "{err}"
    );
    assert!(matches!(
        store.discoverable("example.com"),
        Err(StoreError::Corrupt { .. })
    ));
    // Replacing the same user must not silently destroy the corrupt file either.
    let _ = store.insert(&record(
        &mut keys,
        "example.com",
        b"id-2",
        b"other-user",
        true,
        2,
    ));
    assert_eq!(std::fs::read(&cred).unwrap(), bytes);
}

#[test]
fn moved_record_fails_its_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    store
        .insert(&record(&mut keys, "example.com", b"id-a", b"ua", false, 1))
        .unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"id-b", b"ub", false, 1))
        .unwrap();
    drop(store);
    let creds: Vec<PathBuf> = files(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cred"))
        .collect();
    std::fs::copy(&creds[0], &creds[1]).unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 100);
    let results = [
        store.get("example.com", b"id-a"),
        store.get("example.com", b"id-b"),
    ];
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Corrupt { .. })))
            .count(),
        1
    );
}

#[test]
fn discoverable_credential_of_same_user_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    store
        .insert(&record(&mut keys, "example.com", b"old", b"alice", true, 1))
        .unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"bob", b"bob", true, 2))
        .unwrap();
    let new = record(&mut keys, "example.com", b"new", b"alice", true, 3);
    store.insert(&new).unwrap();
    let ids: Vec<Vec<u8>> = store
        .discoverable("example.com")
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![b"new".to_vec(), b"bob".to_vec()]);
    assert_eq!(store.get("example.com", b"old").unwrap(), None);
    assert_eq!(store.discoverable_count().unwrap(), 2);
    assert_eq!(store.remaining_capacity().unwrap(), 98);
}

#[test]
fn crash_between_write_and_replace_keeps_the_newest() {
    // Simulate a crash after the new credential was written but before the old one was
    // removed: copy the old file back in after a replacement.
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    store
        .insert(&record(&mut keys, "example.com", b"old", b"alice", true, 1))
        .unwrap();
    let old_file = files(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "rk"))
        .unwrap();
    let old_bytes = std::fs::read(&old_file).unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"new", b"alice", true, 2))
        .unwrap();
    drop(store);
    std::fs::write(&old_file, &old_bytes).unwrap();
    // A stale temp file from the crash, too.
    let rp_dir = old_file.parent().unwrap();
    std::fs::write(rp_dir.join(".tmp-deadbeef"), b"partial").unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 100);
    assert!(
        !rp_dir.join(".tmp-deadbeef").exists(),
        "stale temp file removed at open"
    );
    let found = store.discoverable("example.com").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, b"new");
    assert!(
        !old_file.exists(),
        "the superseded credential is cleaned up"
    );
}

#[test]
fn counters_increase_across_reopen_and_epoch_rollover() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    store
        .insert(&record(&mut keys, "example.com", b"c1", b"u", true, 1))
        .unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"c2", b"v", true, 1))
        .unwrap();
    let mut last = 0;
    for _ in 0..5000 {
        let c = store.next_sign_count("example.com", b"c1").unwrap();
        assert!(c > last, "{c} after {last}");
        last = c;
    }
    let other = store.next_sign_count("example.com", b"c2").unwrap();
    assert!(other > 0);
    drop(store); // no clean shutdown needed: nothing is written per assertion
    let (_k, _keys, mut store) = open(dir.path(), 100);
    let after = store.next_sign_count("example.com", b"c1").unwrap();
    assert!(after > last, "{after} after reopen must exceed {last}");
    assert!(store.next_sign_count("example.com", b"c2").unwrap() > other);
}

#[test]
fn capacity_delete_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 2);
    store
        .insert(&record(&mut keys, "a.example", b"1", b"u1", true, 1))
        .unwrap();
    store
        .insert(&record(&mut keys, "b.example", b"2", b"u2", false, 1))
        .unwrap();
    let third = record(&mut keys, "a.example", b"3", b"u3", true, 1);
    assert!(matches!(
        store.insert(&third),
        Err(StoreError::Full { capacity: 2 })
    ));
    let deleted = store.delete(b"2").unwrap().unwrap();
    assert_eq!(deleted.rp_id, "b.example");
    assert_eq!(store.delete(b"2").unwrap(), None);
    store.insert(&third).unwrap();
    assert_eq!(store.remaining_capacity().unwrap(), 0);
    store.reset().unwrap();
    assert_eq!(store.remaining_capacity().unwrap(), 2);
    assert_eq!(store.get("a.example", b"1").unwrap(), None);
    assert_eq!(store.discoverable("a.example").unwrap(), vec![]);
    drop(store);
    let (_k, _keys, mut store) = open(dir.path(), 2);
    assert_eq!(store.remaining_capacity().unwrap(), 2);
}

#[test]
fn update_rewrites_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    let mut r = record(&mut keys, "example.com", b"id", b"u", true, 1);
    store.insert(&r).unwrap();
    r.user_name = Some("renamed".into());
    store.update(&r).unwrap();
    drop(store);
    let (_k, _keys, mut store) = open(dir.path(), 10);
    assert_eq!(
        store
            .get("example.com", b"id")
            .unwrap()
            .unwrap()
            .user_name
            .as_deref(),
        Some("renamed")
    );
}
