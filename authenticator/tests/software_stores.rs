//! The default software backends on a real file system.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use passgate_authenticator::api::credential_store::{CredentialStore, StoreError};
use passgate_authenticator::api::key_store::{KeyAlgorithm, KeyStore};
use passgate_authenticator::software::DeviceKey;

mod stores;
use stores::{open, record};

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
fn discoverable_order_is_newest_first_within_one_second() {
    // Same creation second, IDs in the opposite order of creation: only the nanosecond
    // creation order can put the newest first (known bug ga-29).
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    let ids: [&[u8]; 3] = [b"zz-oldest", b"mm-middle", b"aa-newest"];
    for (i, id) in ids.iter().enumerate() {
        let mut r = record(&mut keys, "example.com", id, id, true, 5);
        r.created_ns += u64::try_from(i).unwrap();
        store.insert(&r).unwrap();
    }
    let order: Vec<Vec<u8>> = store
        .discoverable("example.com")
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        order,
        vec![
            b"aa-newest".to_vec(),
            b"mm-middle".to_vec(),
            b"zz-oldest".to_vec()
        ]
    );
    // And after a reopen (the order is persisted, not only cached).
    drop(store);
    let (_k, _keys, mut store) = open(dir.path(), 10);
    let first = store.discoverable("example.com").unwrap().remove(0);
    assert_eq!(first.id, b"aa-newest");
    assert_eq!(first.created_ns, 5_000_000_002);
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

fn rk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rk"))
        .collect();
    out.sort();
    out
}

#[test]
fn replacing_a_user_needs_no_spare_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 2);
    store
        .insert(&record(&mut keys, "example.com", b"a1", b"alice", true, 1))
        .unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"b1", b"bob", true, 1))
        .unwrap();
    assert_eq!(store.remaining_capacity().unwrap(), 0);
    let carol = record(&mut keys, "example.com", b"c1", b"carol", true, 2);
    assert!(matches!(
        store.insert(&carol),
        Err(StoreError::Full { capacity: 2 })
    ));
    store
        .insert(&record(&mut keys, "example.com", b"a2", b"alice", true, 2))
        .unwrap();
    assert_eq!(store.remaining_capacity().unwrap(), 0);
    assert_eq!(store.discoverable_count().unwrap(), 2);
    assert_eq!(store.get("example.com", b"a1").unwrap(), None);
    assert_eq!(rk_files(dir.path()).len(), 2);
}

#[test]
fn an_existing_credential_id_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    let first = record(&mut keys, "example.com", b"same-id", b"alice", true, 1);
    store.insert(&first).unwrap();
    let file = rk_files(dir.path()).remove(0);
    let bytes = std::fs::read(&file).unwrap();
    for rk in [true, false] {
        let again = record(&mut keys, "example.com", b"same-id", b"bob", rk, 2);
        let err = store.insert(&again).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { path, source }
                if *path == file && source.kind() == std::io::ErrorKind::AlreadyExists),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(store.remaining_capacity().unwrap(), 9);
    assert_eq!(store.get("example.com", b"same-id").unwrap(), Some(first));
}

#[test]
fn replacing_a_user_keeps_a_corrupt_predecessor_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    store
        .insert(&record(&mut keys, "example.com", b"old", b"alice", true, 1))
        .unwrap();
    drop(store);
    let old_file = rk_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&old_file).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&old_file, &bytes).unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    store
        .insert(&record(&mut keys, "example.com", b"new", b"alice", true, 2))
        .unwrap();
    assert_eq!(std::fs::read(&old_file).unwrap(), bytes);
    assert_eq!(
        store.get("example.com", b"new").unwrap().unwrap().id,
        b"new"
    );
    assert!(matches!(
        store.discoverable("example.com"),
        Err(StoreError::Corrupt { path, .. }) if path == old_file
    ));
    assert_eq!(std::fs::read(&old_file).unwrap(), bytes);
}

/// Replaces alice's credential at the same creation time, then restores the old file (and,
/// with `index_repointed == false`, the old user index), as a crash would leave them.
fn crash_with_equal_times(index_repointed: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    store
        .insert(&record(&mut keys, "example.com", b"old", b"alice", true, 7))
        .unwrap();
    let old_file = rk_files(dir.path()).remove(0);
    let old_bytes = std::fs::read(&old_file).unwrap();
    let index = files(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "user"))
        .unwrap();
    let old_index = std::fs::read(&index).unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"new", b"alice", true, 7))
        .unwrap();
    drop(store);
    std::fs::write(&old_file, &old_bytes).unwrap();
    if !index_repointed {
        std::fs::write(&index, &old_index).unwrap();
    }
    let (_k, _keys, mut store) = open(dir.path(), 10);
    let found = store.discoverable("example.com").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(rk_files(dir.path()).len(), 1, "the loser is removed");
    assert_eq!(store.discoverable_count().unwrap(), 1);
    assert_eq!(store.remaining_capacity().unwrap(), 9);
    found[0].id.clone()
}

#[test]
fn crash_during_replacement_at_equal_times_resolves_by_the_user_index() {
    // Crash after the index was repointed: the new state.
    assert_eq!(crash_with_equal_times(true), b"new");
    // Crash before the index was repointed: insert never returned, the old state.
    assert_eq!(crash_with_equal_times(false), b"old");
}

#[test]
fn delete_removes_the_empty_rp_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    store
        .insert(&record(&mut keys, "a.example", b"1", b"u", true, 1))
        .unwrap();
    store
        .insert(&record(&mut keys, "b.example", b"2", b"u", false, 1))
        .unwrap();
    let root = dir.path().join("credentials");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
    assert_eq!(store.delete(b"1").unwrap().unwrap().id, b"1");
    assert_eq!(store.delete(b"2").unwrap().unwrap().id, b"2");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    assert_eq!(store.relying_parties().unwrap(), vec![]);
    assert_eq!(store.remaining_capacity().unwrap(), 10);
}

#[test]
fn stale_temp_files_in_the_state_directory_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, _keys, store) = open(dir.path(), 10);
    drop(store);
    std::fs::write(dir.path().join(".tmp-0011223344556677"), b"partial").unwrap();
    std::fs::create_dir(dir.path().join("credentials.deleting-00")).unwrap();
    std::fs::write(dir.path().join("unrelated"), b"keep").unwrap();
    let (_k, _keys, _store) = open(dir.path(), 10);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["credentials", "device.key", "unrelated"]);
}

#[test]
fn device_key_never_appears_in_other_files_and_corrupt_key_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    let rk = record(&mut keys, "example.com", b"id", b"alice", true, 1);
    store.insert(&rk).unwrap();
    drop(store);
    let key_file = dir.path().join("device.key");
    let key_bytes = std::fs::read(&key_file).unwrap();
    assert_eq!(key_bytes.len(), 40);
    let secret = &key_bytes[8..];
    for path in files(dir.path()) {
        if path.is_file() && path != key_file {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(32).any(|w| w == secret),
                "{}",
                path.display()
            );
            assert!(
                !bytes.windows(rk.key.0.len()).any(|w| w == rk.key.0),
                "key handle in plaintext in {}",
                path.display()
            );
        }
    }
    let mut truncated = key_bytes.clone();
    truncated.pop();
    std::fs::write(&key_file, &truncated).unwrap();
    let err = DeviceKey::load_or_create(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains(&key_file.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&key_file).unwrap(), truncated);
}

#[test]
fn key_handles_sign_verifiably_and_only_under_their_device_key() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    use passgate_authenticator::api::key_store::KeyStoreError;
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let (_k, mut keys, _store) = open(dir.path(), 10);
    let (_k2, mut foreign, _store2) = open(other.path(), 10);
    assert_eq!(keys.info().backend, "software");
    let created = keys.create_key(KeyAlgorithm::Es256, None).unwrap();
    let public = created.public_key.to_raw();
    let signature = keys.sign(&created.handle, b"client data", None).unwrap();
    let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public[..]);
    verifier.verify(b"client data", &signature).unwrap();
    assert!(verifier.verify(b"other data", &signature).is_err());
    assert!(matches!(
        foreign.sign(&created.handle, b"client data", None),
        Err(KeyStoreError::InvalidHandle)
    ));
    // After delete_key the handle still works from the record (it is the wrapped key).
    keys.delete_key(&created.handle).unwrap();
    let again = keys.sign(&created.handle, b"client data", None).unwrap();
    verifier.verify(b"client data", &again).unwrap();
}

#[test]
fn resolving_a_crash_duplicate_repoints_the_user_index() {
    // Crash before the index was repointed, but the new credential is newer: it wins, and the
    // index must follow it so that deleting it leaves nothing behind.
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    store
        .insert(&record(&mut keys, "example.com", b"old", b"alice", true, 1))
        .unwrap();
    let old_file = rk_files(dir.path()).remove(0);
    let old_bytes = std::fs::read(&old_file).unwrap();
    let index = files(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "user"))
        .unwrap();
    let old_index = std::fs::read(&index).unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"new", b"alice", true, 2))
        .unwrap();
    let new_index = std::fs::read(&index).unwrap();
    assert_ne!(new_index, old_index);
    drop(store);
    std::fs::write(&old_file, &old_bytes).unwrap();
    std::fs::write(&index, &old_index).unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 10);
    let found = store.discoverable("example.com").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, b"new");
    assert!(!old_file.exists());
    assert_eq!(std::fs::read(&index).unwrap(), new_index);
    assert_eq!(store.delete(b"new").unwrap().unwrap().id, b"new");
    assert_eq!(
        std::fs::read_dir(dir.path().join("credentials"))
            .unwrap()
            .count(),
        0
    );
}
