//! [`FileCredentialStore`]: one encrypted file per credential.
//!
//! Layout under the state directory:
//!
//! ```text
//! credentials/<rp-tag>/<cred-tag>.rk     a discoverable credential
//! credentials/<rp-tag>/<cred-tag>.cred   a non-discoverable credential
//! credentials/<rp-tag>/<user-tag>.user   which discoverable credential a user handle has now
//! credentials/<rp-tag>/<cred-tag>.ctr    a credential's signature-counter ceiling
//! ```
//!
//! Tags are the first 16 bytes of HMAC-SHA256 under a key derived from the device key, so file
//! names reveal neither relying parties, users nor credential IDs. Each credential file is
//! `version || nonce || AES-256-GCM(record)` with the tags as associated data, so a file moved
//! to another name or RP directory fails to open. A lookup by (RP ID, credential ID) is one path
//! computation and one file read: no scan, no decryption of other credentials.
//!
//! Every write is atomic and durable (temp file, fsync, rename, directory fsync); temp files
//! left by a crash are removed at `open`. Replacing a discoverable credential (same RP and user
//! handle) writes the new credential, then repoints the user file, then deletes the old
//! credential (after decrypting it to confirm it belongs to that user: the user file is only a
//! hint). If a crash leaves both, `discoverable` keeps the newest (`created_ns`; on a tie, the
//! one the user file names, as it is repointed only once the new credential is durable) and
//! removes the other. A replacement needs no spare capacity.
//!
//! A file that fails decryption or decoding is reported as [`StoreError::Corrupt`] and never
//! deleted or overwritten by the store: not by `open`, not by a replacing `insert` (the corrupt
//! predecessor is kept), and an `insert` never writes over an existing credential file.
//!
//! A record's hmac-secret keys come in two forms: key 13 holds CredRandomWithUV ||
//! CredRandomWithoutUV (64 bytes; every record written before key stores could hold the with-UV
//! key, and the software key store's still), key 18 holds CredRandomWithoutUV and the key
//! store's handle of a with-UV key it keeps (the TPM's). Both are read; a record with both is
//! corrupt.
//!
//! Signature counters are per credential, start at 1 and are reserved in small durable blocks
//! (see [`counter`]): strictly increasing across restarts and crashes, without an fsync per
//! assertion.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::DeviceKey;
use crate::api::credential_store::{CredentialRecord, CredentialStore, StoreError};
use crate::api::key_store::{KeyAlgorithm, KeyStore};
use crate::fs::{
    Durability, NoHook, TEMP_PREFIX, WriteOptions, hex, private_dir, sync_dir, write_atomic,
    write_atomic_with,
};

mod counter;
pub(crate) mod record;
use counter::Counters;
pub use counter::{COUNTER_BLOCK, COUNTER_BLOCK_MAX, counter_block};
/// The epoch in the bytes of the legacy `counter.epoch` (`PGEPOCH1` then a big-endian u32).
pub(crate) fn parse_epoch(bytes: &[u8]) -> Option<u32> {
    let number = bytes.strip_prefix(&EPOCH_MAGIC[..])?;
    Some(u32::from_be_bytes(number.try_into().ok()?))
}

#[cfg(test)]
mod tests;

use record::{decode_record, encode_record};

const RECORD_VERSION: u8 = 1;
const EPOCH_MAGIC: &[u8; 8] = b"PGEPOCH1";
/// A credentials directory being removed by `reset`.
const DELETING_PREFIX: &str = "credentials.deleting-";
const RECORD_CACHE_CAPACITY: usize = 1024;
const RESIDENT_EXT: &str = "rk";
const NON_RESIDENT_EXT: &str = "cred";
const USER_EXT: &str = "user";

type Tag = [u8; 16];

/// Durable, encrypted credential store in the state directory.
pub struct FileCredentialStore {
    state_dir: PathBuf,
    root: PathBuf,
    record_key: LessSafeKey,
    tag_key: hmac::Key,
    counter_key: hmac::Key,
    rng: SystemRandom,
    capacity: usize,
    total: usize,
    discoverable: usize,
    counters: Counters,
    cache: HashMap<Tag, CredentialRecord>,
}

impl std::fmt::Debug for FileCredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCredentialStore")
            .field("root", &self.root)
            .field("total", &self.total)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

fn parse_tag(name: &str) -> Option<Tag> {
    if name.len() != 32 {
        return None;
    }
    let mut tag = [0u8; 16];
    for (i, out) in tag.iter_mut().enumerate() {
        *out = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(tag)
}

/// What a directory entry in an RP directory is.
enum Entry {
    Resident(Tag),
    NonResident,
    User,
    Temp,
    Other,
}

fn classify(name: &str) -> Entry {
    if name.starts_with(TEMP_PREFIX) {
        return Entry::Temp;
    }
    match name.rsplit_once('.') {
        Some((stem, RESIDENT_EXT)) => parse_tag(stem).map_or(Entry::Other, Entry::Resident),
        Some((stem, NON_RESIDENT_EXT)) => {
            parse_tag(stem).map_or(Entry::Other, |_| Entry::NonResident)
        }
        Some((_, USER_EXT)) => Entry::User,
        _ => Entry::Other,
    }
}

impl FileCredentialStore {
    /// Opens (creating if needed) the store in `state_dir`, holding at most `capacity`
    /// credentials. Counts stored credentials from directory entries (no decryption), removes
    /// temp files left by a crash, and moves a store with the legacy counter epoch to
    /// per-credential counters.
    pub fn open(
        state_dir: &Path,
        device_key: &DeviceKey,
        capacity: usize,
    ) -> Result<Self, StoreError> {
        let root = state_dir.join("credentials");
        private_dir(&root).map_err(io_error(&root))?;
        // Leftovers of a crash: a reset that was interrupted, temp files of device-key (or
        // legacy counter-epoch) writes; counters' temp files are in the RP directories, below.
        for entry in std::fs::read_dir(state_dir).map_err(io_error(state_dir))? {
            let entry = entry.map_err(io_error(state_dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if name.starts_with(DELETING_PREFIX) {
                std::fs::remove_dir_all(&path).map_err(io_error(&path))?;
            } else if name.starts_with(TEMP_PREFIX) && path.is_file() {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        let mut total = 0;
        let mut discoverable = 0;
        for rp_dir in std::fs::read_dir(&root).map_err(io_error(&root))? {
            let rp_dir = rp_dir.map_err(io_error(&root))?.path();
            if !rp_dir.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&rp_dir).map_err(io_error(&rp_dir))? {
                let entry = entry.map_err(io_error(&rp_dir))?;
                match classify(&entry.file_name().to_string_lossy()) {
                    Entry::Resident(_) => {
                        total += 1;
                        discoverable += 1;
                    }
                    Entry::NonResident => total += 1,
                    Entry::Temp => {
                        let path = entry.path();
                        std::fs::remove_file(&path).map_err(io_error(&path))?;
                    }
                    Entry::User | Entry::Other => {}
                }
            }
        }
        let record_key = device_key.derive(b"credential store: record encryption");
        let record_key = UnboundKey::new(&AES_256_GCM, record_key.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| StoreError::Crypto("invalid record key".into()))?;
        let tag_key = device_key.derive(b"credential store: file name tags");
        let tag_key = hmac::Key::new(hmac::HMAC_SHA256, tag_key.as_ref());
        let counter_key = device_key.derive(b"credential store: signature counters");
        let counter_key = hmac::Key::new(hmac::HMAC_SHA256, counter_key.as_ref());
        let mut store = Self {
            state_dir: state_dir.to_path_buf(),
            root,
            record_key,
            tag_key,
            counter_key,
            rng: SystemRandom::new(),
            capacity,
            total,
            discoverable,
            counters: Counters::default(),
            cache: HashMap::new(),
        };
        store.migrate_epoch()?;
        Ok(store)
    }

    fn tag(&self, domain: &[u8], parts: &[&[u8]]) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.tag_key);
        ctx.update(domain);
        for part in parts {
            // Length-prefix each part so that concatenations cannot collide.
            ctx.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            ctx.update(part);
        }
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&ctx.sign().as_ref()[..16]);
        tag
    }

    fn rp_tag(&self, rp_id: &str) -> Tag {
        self.tag(b"rp", &[rp_id.as_bytes()])
    }

    fn cred_tag(&self, id: &[u8]) -> Tag {
        self.tag(b"credential", &[id])
    }

    fn user_tag(&self, rp_id: &str, user_id: &[u8]) -> Tag {
        self.tag(b"user", &[rp_id.as_bytes(), user_id])
    }

    fn rp_dir(&self, rp_tag: &Tag) -> PathBuf {
        self.root.join(hex(rp_tag))
    }

    fn cred_path(&self, rp_tag: &Tag, cred_tag: &Tag, resident: bool) -> PathBuf {
        let ext = if resident {
            RESIDENT_EXT
        } else {
            NON_RESIDENT_EXT
        };
        self.rp_dir(rp_tag).join(format!("{}.{ext}", hex(cred_tag)))
    }

    fn user_path(&self, rp_tag: &Tag, user_tag: &Tag) -> PathBuf {
        self.rp_dir(rp_tag)
            .join(format!("{}.{USER_EXT}", hex(user_tag)))
    }

    fn aad(rp_tag: &Tag, cred_tag: &Tag) -> Vec<u8> {
        let mut aad = Vec::with_capacity(33);
        aad.push(RECORD_VERSION);
        aad.extend_from_slice(rp_tag);
        aad.extend_from_slice(cred_tag);
        aad
    }

    fn seal(
        &self,
        record: &CredentialRecord,
        rp_tag: &Tag,
        cred_tag: &Tag,
    ) -> Result<Vec<u8>, StoreError> {
        let mut plain = Zeroizing::new(encode_record(record));
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("random number generator failed".into()))?;
        self.record_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(rp_tag, cred_tag)),
                &mut *plain,
            )
            .map_err(|_| StoreError::Crypto("record encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        Ok(out)
    }

    fn open_file(
        &self,
        path: &Path,
        rp_tag: &Tag,
        cred_tag: &Tag,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path)(e)),
        };
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(corrupt(path, "empty file"));
        };
        if version != RECORD_VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(corrupt(path, "unknown version or truncated"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt(path, "bad nonce"))?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let plain = self
            .record_key
            .open_in_place(
                nonce,
                Aad::from(Self::aad(rp_tag, cred_tag)),
                buffer.as_mut_slice(),
            )
            .map_err(|_| corrupt(path, "integrity check failed"))?;
        decode_record(plain)
            .map(Some)
            .ok_or_else(|| corrupt(path, "record does not decode"))
    }

    /// Reads a credential file of either kind.
    fn load(
        &self,
        rp_tag: &Tag,
        cred_tag: &Tag,
    ) -> Result<Option<(CredentialRecord, PathBuf)>, StoreError> {
        for resident in [true, false] {
            let path = self.cred_path(rp_tag, cred_tag, resident);
            if let Some(record) = self.open_file(&path, rp_tag, cred_tag)? {
                return Ok(Some((record, path)));
            }
        }
        Ok(None)
    }

    fn cache_put(&mut self, tag: Tag, record: &CredentialRecord) {
        if self.cache.len() >= RECORD_CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(tag, record.clone());
    }

    fn remove_file(&self, path: &Path, durability: Durability) -> Result<bool, StoreError> {
        match std::fs::remove_file(path) {
            Ok(()) => {
                if durability == Durability::Synced {
                    if let Some(dir) = path.parent() {
                        sync_dir(dir).map_err(io_error(dir))?;
                    }
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(path)(e)),
        }
    }

    fn insert_with(
        &mut self,
        record: &CredentialRecord,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let rp_tag = self.rp_tag(&record.rp_id);
        let cred_tag = self.cred_tag(&record.id);
        let path = self.cred_path(&rp_tag, &cred_tag, record.discoverable);
        // The discoverable credential this one replaces (same RP and user handle), if any.
        let replaced = if record.discoverable {
            let user_tag = self.user_tag(&record.rp_id, &record.user_id);
            let user_path = self.user_path(&rp_tag, &user_tag);
            let previous = match self
                .indexed(&rp_tag, &record.rp_id, &record.user_id)
                .filter(|old| *old != cred_tag)
            {
                Some(old) => self.replaceable(record, &rp_tag, &old)?.then_some(old),
                None => None,
            };
            Some((user_path, previous))
        } else {
            None
        };
        let replaces_one = matches!(replaced, Some((_, Some(_))));
        if self.total >= self.capacity && !replaces_one {
            return Err(StoreError::Full {
                capacity: self.capacity,
            });
        }
        // Never overwrite a stored credential (it may be a corrupt file kept for inspection);
        // credential IDs are random, so this only happens on a caller bug.
        for resident in [true, false] {
            let existing = self.cred_path(&rp_tag, &cred_tag, resident);
            if existing.exists() {
                return Err(StoreError::Io {
                    path: existing,
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "a credential with this ID is already stored",
                    ),
                });
            }
        }
        let dir = self.rp_dir(&rp_tag);
        // Creates the RP directory (and makes its entry durable) when missing.
        private_dir(&dir).map_err(io_error(&dir))?;
        let sealed = self.seal(record, &rp_tag, &cred_tag)?;
        let options = WriteOptions {
            durability,
            ..WriteOptions::default()
        };
        write_atomic_with(&path, &sealed, &options).map_err(io_error(&path))?;
        self.total += 1;
        if let Some((user_path, previous)) = replaced {
            self.discoverable += 1;
            write_atomic_with(&user_path, hex(&cred_tag).as_bytes(), &options)
                .map_err(io_error(&user_path))?;
            if let Some(old) = previous {
                let old_path = self.cred_path(&rp_tag, &old, true);
                if self.remove_file(&old_path, durability)? {
                    self.total = self.total.saturating_sub(1);
                    self.discoverable = self.discoverable.saturating_sub(1);
                }
                self.remove_counter(&rp_tag, &old);
                self.cache.remove(&old);
            }
        }
        self.cache_put(cred_tag, record);
        Ok(())
    }

    /// Whether the discoverable credential `old` (named by the user index) is really `record`'s
    /// predecessor and may be deleted once `record` is stored. The index is not authenticated,
    /// so the old record is decrypted and its RP and user handle compared. A corrupt old file
    /// is kept (never deleted silently): it will surface as `StoreError::Corrupt`.
    fn replaceable(
        &self,
        record: &CredentialRecord,
        rp_tag: &Tag,
        old: &Tag,
    ) -> Result<bool, StoreError> {
        let old_path = self.cred_path(rp_tag, old, true);
        match self.open_file(&old_path, rp_tag, old) {
            Ok(Some(existing)) => {
                Ok(existing.rp_id == record.rp_id && existing.user_id == record.user_id)
            }
            Ok(None) => Ok(false),
            Err(StoreError::Corrupt { path, reason }) => {
                tracing::warn!(
                    path = %path.display(),
                    %reason,
                    "keeping a corrupt credential file instead of replacing it"
                );
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The credential the user index of (`rp_id`, `user_id`) names, if any.
    fn indexed(&self, rp_tag: &Tag, rp_id: &str, user_id: &[u8]) -> Option<Tag> {
        let path = self.user_path(rp_tag, &self.user_tag(rp_id, user_id));
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| parse_tag(s.trim()))
    }

    /// Forgets the decoded records cached in memory, so that the next lookups read their
    /// files. For benchmarks (cold lookups) only.
    #[doc(hidden)]
    pub fn clear_record_cache(&mut self) {
        self.cache.clear();
    }

    /// Fills a state directory with `count` discoverable credentials for `rp_id`, without an
    /// fsync per credential, and returns their IDs. For benchmarks and scale tests only.
    #[doc(hidden)]
    pub fn populate_for_benchmark(
        state_dir: &Path,
        device_key: &DeviceKey,
        key_store: &mut dyn KeyStore,
        rp_id: &str,
        count: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut store = Self::open(state_dir, device_key, usize::MAX)?;
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let key = key_store
                .create_key(KeyAlgorithm::Es256, None)
                .map_err(|e| StoreError::Crypto(e.to_string()))?;
            let mut id = vec![0u8; 16];
            store
                .rng
                .fill(&mut id)
                .map_err(|_| StoreError::Crypto("random number generator failed".into()))?;
            let record = CredentialRecord {
                id: id.clone(),
                rp_id: rp_id.to_owned(),
                rp_name: None,
                user_id: u64::try_from(i).unwrap_or(u64::MAX).to_be_bytes().to_vec(),
                user_name: Some(format!("user{i}")),
                user_display_name: None,
                discoverable: true,
                algorithm: KeyAlgorithm::Es256,
                key: key.handle,
                public_key: key.public_key,
                created_at: 0,
                created_ns: 0,
                cred_protect: 1,
                hmac_secret: None,
                cred_blob: None,
                large_blob_key: None,
                biometric_set: None,
            };
            store.insert_with(&record, Durability::Deferred)?;
            ids.push(id);
        }
        store.cache.clear();
        Ok(ids)
    }
}

impl CredentialStore for FileCredentialStore {
    fn get(&mut self, rp_id: &str, id: &[u8]) -> Result<Option<CredentialRecord>, StoreError> {
        let cred_tag = self.cred_tag(id);
        if let Some(record) = self.cache.get(&cred_tag) {
            return Ok((record.rp_id == rp_id && record.id == id).then(|| record.clone()));
        }
        let rp_tag = self.rp_tag(rp_id);
        match self.load(&rp_tag, &cred_tag)? {
            Some((record, path)) => {
                if record.rp_id != rp_id || record.id != id {
                    return Err(corrupt(&path, "record does not match its file name"));
                }
                self.cache_put(cred_tag, &record);
                Ok(Some(record))
            }
            None => Ok(None),
        }
    }

    fn insert(&mut self, record: &CredentialRecord) -> Result<(), StoreError> {
        self.insert_with(record, Durability::Synced)
    }

    fn update(&mut self, record: &CredentialRecord) -> Result<(), StoreError> {
        let rp_tag = self.rp_tag(&record.rp_id);
        let cred_tag = self.cred_tag(&record.id);
        let Some((existing, path)) = self.load(&rp_tag, &cred_tag)? else {
            return Err(StoreError::Io {
                path: self.cred_path(&rp_tag, &cred_tag, record.discoverable),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such credential"),
            });
        };
        if existing.discoverable != record.discoverable {
            return Err(StoreError::Crypto(
                "a credential's discoverability cannot change".into(),
            ));
        }
        let sealed = self.seal(record, &rp_tag, &cred_tag)?;
        write_atomic(&path, &sealed, &NoHook).map_err(io_error(&path))?;
        self.cache_put(cred_tag, record);
        Ok(())
    }

    fn delete(&mut self, id: &[u8]) -> Result<Option<CredentialRecord>, StoreError> {
        let cred_tag = self.cred_tag(id);
        let root = self.root.clone();
        for rp_dir in std::fs::read_dir(&root).map_err(io_error(&root))? {
            let rp_dir = rp_dir.map_err(io_error(&root))?;
            let Some(rp_tag) = parse_tag(&rp_dir.file_name().to_string_lossy()) else {
                continue;
            };
            let Some((record, path)) = self.load(&rp_tag, &cred_tag)? else {
                continue;
            };
            if record.id != id {
                continue;
            }
            self.remove_file(&path, Durability::Synced)?;
            self.cache.remove(&cred_tag);
            self.total = self.total.saturating_sub(1);
            if record.discoverable {
                self.discoverable = self.discoverable.saturating_sub(1);
                let user_path =
                    self.user_path(&rp_tag, &self.user_tag(&record.rp_id, &record.user_id));
                let points_here = std::fs::read_to_string(&user_path)
                    .ok()
                    .and_then(|s| parse_tag(s.trim()))
                    == Some(cred_tag);
                if points_here {
                    self.remove_file(&user_path, Durability::Synced)?;
                }
            }
            self.remove_counter(&rp_tag, &cred_tag);
            let dir = rp_dir.path();
            // Removing an empty RP directory fails harmlessly when it is not empty.
            if std::fs::remove_dir(&dir).is_ok() {
                sync_dir(&root).map_err(io_error(&root))?;
            }
            return Ok(Some(record));
        }
        Ok(None)
    }

    fn discoverable(&mut self, rp_id: &str) -> Result<Vec<CredentialRecord>, StoreError> {
        let rp_tag = self.rp_tag(rp_id);
        let dir = self.rp_dir(&rp_tag);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&dir)(e)),
        };
        let mut records: Vec<(Tag, CredentialRecord)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            if let Entry::Resident(cred_tag) = classify(&entry.file_name().to_string_lossy()) {
                if let Some(record) = self.open_file(&entry.path(), &rp_tag, &cred_tag)? {
                    if record.rp_id == rp_id {
                        records.push((cred_tag, record));
                    }
                }
            }
        }
        // Newest first (nanosecond creation order, strictly increasing per process); tie-break
        // on the ID for a stable order among records that predate `created_ns`.
        records.sort_by(|a, b| {
            b.1.created_ns
                .cmp(&a.1.created_ns)
                .then(a.1.id.cmp(&b.1.id))
        });
        // A crash during replacement can leave two credentials for one user: keep the newest
        // (on equal creation times, the one the user index names: it is repointed only after
        // the new credential is durable), remove the other.
        let mut kept: HashMap<Vec<u8>, usize> = HashMap::with_capacity(records.len());
        let mut result: Vec<(Tag, CredentialRecord)> = Vec::with_capacity(records.len());
        let mut stale: Vec<Tag> = Vec::new();
        let mut resolved: Vec<usize> = Vec::new();
        for (tag, record) in records {
            let Some(&at) = kept.get(&record.user_id) else {
                kept.insert(record.user_id.clone(), result.len());
                result.push((tag, record));
                continue;
            };
            let Some(winner) = result.get_mut(at) else {
                continue;
            };
            let indexed = winner.1.created_ns == record.created_ns
                && self.indexed(&rp_tag, rp_id, &record.user_id) == Some(tag);
            if indexed {
                stale.push(winner.0);
                *winner = (tag, record);
            } else {
                stale.push(tag);
            }
            resolved.push(at);
        }
        // Point the user index at each winner before removing the losers, so that the index
        // never names a removed file (a later delete then removes index and RP directory too).
        for at in resolved {
            if let Some((tag, record)) = result.get(at) {
                let user_path = self.user_path(&rp_tag, &self.user_tag(rp_id, &record.user_id));
                if self.indexed(&rp_tag, rp_id, &record.user_id) != Some(*tag) {
                    write_atomic(&user_path, hex(tag).as_bytes(), &NoHook)
                        .map_err(io_error(&user_path))?;
                }
            }
        }
        for tag in stale {
            if self.remove_file(&self.cred_path(&rp_tag, &tag, true), Durability::Synced)? {
                self.total = self.total.saturating_sub(1);
                self.discoverable = self.discoverable.saturating_sub(1);
            }
            self.remove_counter(&rp_tag, &tag);
            self.cache.remove(&tag);
        }
        Ok(result.into_iter().map(|(_, record)| record).collect())
    }

    fn relying_parties(&mut self) -> Result<Vec<(String, Option<String>, usize)>, StoreError> {
        let root = self.root.clone();
        let mut out = Vec::new();
        for rp_dir in std::fs::read_dir(&root).map_err(io_error(&root))? {
            let rp_dir = rp_dir.map_err(io_error(&root))?;
            let Some(rp_tag) = parse_tag(&rp_dir.file_name().to_string_lossy()) else {
                continue;
            };
            let dir = rp_dir.path();
            let mut count = 0;
            let mut first = None;
            for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
                let entry = entry.map_err(io_error(&dir))?;
                if let Entry::Resident(tag) = classify(&entry.file_name().to_string_lossy()) {
                    count += 1;
                    if first.is_none() {
                        first = Some((tag, entry.path()));
                    }
                }
            }
            if let Some((tag, path)) = first {
                if let Some(record) = self.open_file(&path, &rp_tag, &tag)? {
                    out.push((record.rp_id, record.rp_name, count));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn discoverable_count(&mut self) -> Result<usize, StoreError> {
        Ok(self.discoverable)
    }

    fn remaining_capacity(&mut self) -> Result<usize, StoreError> {
        Ok(self.capacity.saturating_sub(self.total))
    }

    fn next_sign_count(&mut self, rp_id: &str, id: &[u8]) -> Result<u32, StoreError> {
        self.next_count(rp_id, id)
    }

    fn reset(&mut self) -> Result<(), StoreError> {
        let mut suffix = [0u8; 8];
        self.rng
            .fill(&mut suffix)
            .map_err(|_| StoreError::Crypto("random number generator failed".into()))?;
        let doomed = self
            .state_dir
            .join(format!("{DELETING_PREFIX}{}", hex(&suffix)));
        std::fs::rename(&self.root, &doomed).map_err(io_error(&self.root))?;
        private_dir(&self.root).map_err(io_error(&self.root))?;
        sync_dir(&self.state_dir).map_err(io_error(&self.state_dir))?;
        // From here on the credentials are gone for readers; removing the files is cleanup
        // (redone at the next open if interrupted).
        std::fs::remove_dir_all(&doomed).map_err(io_error(&doomed))?;
        self.total = 0;
        self.discoverable = 0;
        self.cache.clear();
        self.counters.clear();
        Ok(())
    }
}
