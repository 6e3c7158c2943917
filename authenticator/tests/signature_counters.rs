//! Per-passkey signature counters of the software credential store: from 1, by one, reserved
//! in durable blocks; strictly increasing across restarts; tamper-evident; migrated from the
//! legacy store-wide epoch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use passgate_authenticator::api::credential_store::{CredentialStore, StoreError};
use passgate_authenticator::software::{
    COUNTER_BLOCK, COUNTER_BLOCK_MAX, DeviceKey, FileCredentialStore, counter_block,
};

mod stores;
use stores::{open, record};

#[test]
fn counters_increase_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 100);
    store
        .insert(&record(&mut keys, "example.com", b"c1", b"u", true, 1))
        .unwrap();
    store
        .insert(&record(&mut keys, "example.com", b"c2", b"v", true, 1))
        .unwrap();
    // Per credential, from 1, by one.
    for n in 1..=5000 {
        assert_eq!(store.next_sign_count("example.com", b"c1").unwrap(), n);
    }
    assert_eq!(store.next_sign_count("example.com", b"c2").unwrap(), 1);
    let mut last = 5000;
    for round in 0..3 {
        drop(store); // no clean shutdown: as after a crash
        let (_k, _keys, reopened) = open(dir.path(), 100);
        store = reopened;
        let after = store.next_sign_count("example.com", b"c1").unwrap();
        // A passkey used 5000 times reserves its largest blocks.
        assert_eq!(counter_block(last), COUNTER_BLOCK_MAX);
        assert!(
            after > last && after <= last + COUNTER_BLOCK_MAX,
            "round {round}: {after} after {last}"
        );
        last = after;
    }
    let other = store.next_sign_count("example.com", b"c2").unwrap();
    assert!(other > 1 && other <= 1 + COUNTER_BLOCK, "{other}");
}

#[test]
fn a_new_credential_counts_from_one_with_a_write_per_block() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 10);
    let counters = |dir: &Path| -> Vec<PathBuf> {
        let mut out = Vec::new();
        for rp in std::fs::read_dir(dir.join("credentials")).unwrap() {
            for f in std::fs::read_dir(rp.unwrap().path()).unwrap() {
                let path = f.unwrap().path();
                if path.extension().is_some_and(|e| e == "ctr") {
                    out.push(path);
                }
            }
        }
        out
    };
    let modified = |path: &Path| std::fs::metadata(path).unwrap().modified().unwrap();
    assert_eq!(store.next_sign_count("r", b"a").unwrap(), 1);
    assert_eq!(store.next_sign_count("r", b"a").unwrap(), 2);
    let [file] = &counters(dir.path())[..] else {
        panic!("one counter file")
    };
    let file = file.clone();
    assert_eq!(store.next_sign_count("r", b"b").unwrap(), 1);
    assert_eq!(
        counters(dir.path()).len(),
        2,
        "one counter file per credential"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Values up to the reserved ceiling come from memory: the file is not rewritten.
    let before = modified(&file);
    let inode = std::fs::metadata(&file).unwrap().ino();
    for n in 3..=COUNTER_BLOCK {
        assert_eq!(store.next_sign_count("r", b"a").unwrap(), n);
    }
    assert_eq!(modified(&file), before);
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
    assert_eq!(
        std::fs::read(&file).unwrap()[8..12],
        COUNTER_BLOCK.to_be_bytes()
    );
    // The next value reserves the next block first.
    assert_eq!(store.next_sign_count("r", b"a").unwrap(), COUNTER_BLOCK + 1);
    assert_eq!(
        std::fs::read(&file).unwrap()[8..12],
        (2 * COUNTER_BLOCK).to_be_bytes()
    );
    drop(store);
    let (_k, _keys, mut store) = open(dir.path(), 10);
    assert_eq!(
        store.next_sign_count("r", b"a").unwrap(),
        2 * COUNTER_BLOCK + 1
    );
    assert_eq!(store.next_sign_count("r", b"b").unwrap(), COUNTER_BLOCK + 1);
    assert!(!dir.path().join("counter.epoch").exists());
}

#[test]
fn the_block_grows_with_the_counter_up_to_its_largest() {
    assert_eq!(counter_block(1), COUNTER_BLOCK);
    assert_eq!(counter_block(128), COUNTER_BLOCK);
    assert_eq!(counter_block(136), 17);
    assert_eq!(counter_block(2047), 255);
    assert_eq!(counter_block(2048), COUNTER_BLOCK_MAX);
    assert_eq!(counter_block(u32::MAX), COUNTER_BLOCK_MAX);
    let dir = tempfile::tempdir().unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 10);
    let ceiling = |dir: &Path| -> u32 {
        let rp = std::fs::read_dir(dir.join("credentials"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let file = std::fs::read_dir(rp)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        u32::from_be_bytes(std::fs::read(file).unwrap()[8..12].try_into().unwrap())
    };
    // Every ceiling written on the way is the value that needed it plus its block, minus one;
    // the file changes only when the counter passes the ceiling.
    let mut writes = Vec::new();
    let mut on_disk = 0;
    for n in 1..=5000 {
        assert_eq!(store.next_sign_count("r", b"a").unwrap(), n);
        let now = ceiling(dir.path());
        if now != on_disk {
            assert_eq!(now, n + counter_block(n) - 1, "after {n}");
            writes.push(n);
            on_disk = now;
        }
    }
    // 16 values a write up to 128, then growing blocks, then one write in 256.
    assert_eq!(&writes[..9], &[1, 17, 33, 49, 65, 81, 97, 113, 129]);
    let tail: Vec<u32> = writes
        .windows(2)
        .map(|w| w[1] - w[0])
        .rev()
        .take(5)
        .collect();
    assert_eq!(tail, vec![COUNTER_BLOCK_MAX; 5]);
    // 8 writes for the first 128, 24 growing blocks to 2048, 12 blocks of 256 to 5000.
    assert_eq!(writes.len(), 44);
}

#[test]
fn a_counter_file_edited_or_copied_is_corrupt_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 10);
    store.next_sign_count("r", b"a").unwrap();
    store.next_sign_count("r", b"b").unwrap();
    for _ in 0..40 {
        store.next_sign_count("r", b"b").unwrap();
    }
    drop(store);
    let rp = std::fs::read_dir(dir.path().join("credentials"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| std::fs::read(p).unwrap()[8..12].to_vec());
    let (low, high) = (files[0].clone(), files[1].clone());
    // Copying the lower counter over the higher one (rolling it back) is detected.
    let rolled_back = std::fs::read(&low).unwrap();
    std::fs::write(&high, &rolled_back).unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 10);
    let a = store.next_sign_count("r", b"a").unwrap();
    assert_eq!(a, COUNTER_BLOCK + 1);
    let err = store.next_sign_count("r", b"b").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path, .. } if *path == high),
        "{err}"
    );
    assert_eq!(std::fs::read(&high).unwrap(), rolled_back, "left as it was");
}

#[test]
fn a_store_with_the_legacy_epoch_keeps_its_counters_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    store
        .insert(&record(&mut keys, "example.com", b"old", b"u", true, 1))
        .unwrap();
    store
        .insert(&record(
            &mut keys,
            "example.com",
            b"also-old",
            b"w",
            false,
            1,
        ))
        .unwrap();
    drop(store);
    // As the epoch scheme left it after its third open: values up to (3 << 12) | 4095.
    let mut epoch = b"PGEPOCH1".to_vec();
    epoch.extend_from_slice(&3u32.to_be_bytes());
    std::fs::write(dir.path().join("counter.epoch"), &epoch).unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    assert!(!dir.path().join("counter.epoch").exists(), "migrated");
    assert_eq!(
        store.next_sign_count("example.com", b"old").unwrap(),
        4 << 12
    );
    assert_eq!(
        store.next_sign_count("example.com", b"also-old").unwrap(),
        4 << 12
    );
    // A credential made after the move counts from 1.
    store
        .insert(&record(&mut keys, "example.com", b"new", b"v", true, 1))
        .unwrap();
    assert_eq!(store.next_sign_count("example.com", b"new").unwrap(), 1);
    drop(store);
    let (_k, _keys, mut store) = open(dir.path(), 10);
    let old = store.next_sign_count("example.com", b"old").unwrap();
    // From the ceiling the migration wrote: 16384 needed a block of 256 (an eighth of it).
    assert_eq!(old, (4 << 12) + COUNTER_BLOCK_MAX);
}

#[test]
fn counter_exhaustion_is_an_error_never_a_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let (_k, mut keys, mut store) = open(dir.path(), 10);
    store
        .insert(&record(&mut keys, "r", b"a", b"u", true, 1))
        .unwrap();
    drop(store);
    // The last legacy epoch, 2^20 - 1, handed out values up to u32::MAX.
    let mut epoch = b"PGEPOCH1".to_vec();
    epoch.extend_from_slice(&((1u32 << 20) - 1).to_be_bytes());
    std::fs::write(dir.path().join("counter.epoch"), &epoch).unwrap();
    let (_k, _keys, mut store) = open(dir.path(), 10);
    assert!(store.next_sign_count("r", b"a").is_err());
    assert!(store.next_sign_count("r", b"a").is_err());
    // Other credentials are not held up.
    assert_eq!(store.next_sign_count("r", b"b").unwrap(), 1);
}

#[test]
fn corrupt_epoch_file_is_an_error_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let key = DeviceKey::load_or_create(dir.path()).unwrap();
    let epoch_file = dir.path().join("counter.epoch");
    std::fs::write(&epoch_file, b"junk").unwrap();
    let err = FileCredentialStore::open(dir.path(), &key, 10).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path, .. } if *path == epoch_file),
        "{err}"
    );
    assert_eq!(std::fs::read(&epoch_file).unwrap(), b"junk");
}
