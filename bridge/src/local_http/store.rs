//! The pairings that outlive the process: `STATE/local-bridge/pairings.json`, so that a page
//! paired before `passgate demo` (or `passgate bridge local-http`) restarts stays paired, and
//! `passgate bridge unpair` can revoke a pairing while the bridge runs.
//!
//! The file holds, per pairing, the origin, the router session's name, when it was made and
//! the SHA-256 of its bearer token, never the token: a copy of the file lets nobody speak
//! to the bridge (finding a 256-bit random token from its hash is out of reach). It is still
//! written as a secret would be: 0600 in a 0700 directory, atomically and durably (temp
//! file, fsync, rename, fsync of the directory), and a file or directory that others may
//! write is not trusted (anyone who could write it could add a pairing of their own).
//!
//! Every change is a read-modify-write under an advisory lock (`pairings.lock` beside it), so
//! the bridge pairing a page and `passgate bridge unpair` never lose each other's change. A
//! running bridge notices a change it did not make by the file's (inode, size, mode, mtime,
//! ctime) stamp,
//! checked before each token is looked up.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::private_file::{self, PrivateFileError};

/// The most pairings kept per origin: pairing again past this forgets that origin's oldest
/// (each pairing needs a code typed from passgate's terminal, so this is a bound, not a
/// policy a person meets).
pub const MAX_PAIRINGS_PER_ORIGIN: usize = 16;

const FORMAT_VERSION: u32 = 1;

/// Why the pairing store cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PairingStoreError {
    /// The file or its directory cannot be used (I/O, or others may write it: then its
    /// pairings are not trusted, as anyone who could write it could add a pairing).
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// The file is not a pairing store of this version.
    #[error("{path} is not a pairing store passgate can read: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// One pairing: a page of `origin` holding the token whose SHA-256 is `token_hash`.
#[derive(Clone)]
pub struct StoredPairing {
    /// The origin that paired.
    pub origin: String,
    /// The router session its requests run in (also how a pairing is named to the person).
    pub id: String,
    /// When it was made, seconds since the Unix epoch.
    pub paired_at: u64,
    /// SHA-256 of its bearer token.
    pub token_hash: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for StoredPairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPairing")
            .field("origin", &self.origin)
            .field("id", &self.id)
            .field("paired_at", &self.paired_at)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    version: u32,
    pairings: Vec<EntryForm>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryForm {
    origin: String,
    id: String,
    paired_at: u64,
    /// Lower-case hex.
    token_sha256: String,
}

impl Drop for EntryForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token_sha256);
    }
}

/// What `passgate bridge unpair` revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// Every pairing of this origin.
    Origin(String),
    /// Every pairing.
    All,
}

/// Which version of the file was last read or written: a change by another process shows
/// as a different stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    inode: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    /// Changes with the permissions too (a file made writable by others is re-checked).
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            inode: m.ino(),
            size: m.size(),
            mode: m.mode(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The pairing file and its lock.
#[derive(Debug, Clone)]
pub struct PairingStore {
    path: PathBuf,
}

/// The store's file in a state directory.
pub fn pairings_path(state_dir: &Path) -> PathBuf {
    state_dir.join("local-bridge").join("pairings.json")
}

fn from_hex(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = Zeroizing::new([0u8; 32]);
    for (slot, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        *slot = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

impl PairingStore {
    /// The store at `path` (created, with its 0700 directory, on the first write).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Where the pairings are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current stamp (`None` when there is no file).
    pub(super) fn stamp(&self) -> Result<Option<Stamp>, PairingStoreError> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(Some(Stamp::of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(private_file::io_error(&self.path)(e).into()),
        }
    }

    /// Every stored pairing, and the stamp of the file they were read from.
    pub fn load(&self) -> Result<Vec<StoredPairing>, PairingStoreError> {
        Ok(self.load_stamped()?.0)
    }

    pub(super) fn load_stamped(
        &self,
    ) -> Result<(Vec<StoredPairing>, Option<Stamp>), PairingStoreError> {
        let path = &self.path;
        let Some((bytes, metadata)) = private_file::read(path)? else {
            return Ok((Vec::new(), None));
        };
        let malformed = |reason: String| PairingStoreError::Malformed {
            path: path.clone(),
            reason,
        };
        let form: FileForm =
            serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        if form.version != FORMAT_VERSION {
            return Err(malformed(format!("version {}", form.version)));
        }
        let mut pairings = Vec::with_capacity(form.pairings.len());
        for entry in &form.pairings {
            let token_hash = from_hex(&entry.token_sha256)
                .ok_or_else(|| malformed(format!("pairing {}: token_sha256", entry.id)))?;
            pairings.push(StoredPairing {
                origin: entry.origin.clone(),
                id: entry.id.clone(),
                paired_at: entry.paired_at,
                token_hash,
            });
        }
        Ok((pairings, Some(Stamp::of(&metadata))))
    }

    fn save(&self, pairings: &[StoredPairing]) -> Result<(), PairingStoreError> {
        let form = FileForm {
            version: FORMAT_VERSION,
            pairings: pairings
                .iter()
                .map(|p| EntryForm {
                    origin: p.origin.clone(),
                    id: p.id.clone(),
                    paired_at: p.paired_at,
                    token_sha256: passgate_platform_api::fs::hex(p.token_hash.as_ref()),
                })
                .collect(),
        };
        let bytes = Zeroizing::new(serde_json::to_vec_pretty(&form).map_err(|e| {
            PairingStoreError::Malformed {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        })?);
        Ok(private_file::write(&self.path, &bytes)?)
    }

    /// Applies `change` to the stored pairings under the lock and writes the result; returns
    /// what `change` returned and the pairings now stored.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Vec<StoredPairing>) -> T,
    ) -> Result<(T, Vec<StoredPairing>, Option<Stamp>), PairingStoreError> {
        let _locked = private_file::lock(&self.path)?;
        let mut pairings = self.load()?;
        let out = change(&mut pairings);
        self.save(&pairings)?;
        let stamp = self.stamp()?;
        Ok((out, pairings, stamp))
    }

    /// Adds `pairing`, forgetting its origin's oldest past [`MAX_PAIRINGS_PER_ORIGIN`].
    pub(super) fn add(
        &self,
        pairing: StoredPairing,
    ) -> Result<(Vec<StoredPairing>, Option<Stamp>), PairingStoreError> {
        let ((), pairings, stamp) = self.update(|pairings| {
            let origin = pairing.origin.clone();
            pairings.push(pairing);
            let mut of_origin = pairings.iter().filter(|p| p.origin == origin).count();
            pairings.retain(|p| {
                if p.origin == origin && of_origin > MAX_PAIRINGS_PER_ORIGIN {
                    of_origin -= 1;
                    false
                } else {
                    true
                }
            });
        })?;
        Ok((pairings, stamp))
    }

    /// Removes the pairing named `id` (a page unpairing itself).
    pub(super) fn remove_id(
        &self,
        id: &str,
    ) -> Result<(Vec<StoredPairing>, Option<Stamp>), PairingStoreError> {
        let ((), pairings, stamp) = self.update(|pairings| pairings.retain(|p| p.id != id))?;
        Ok((pairings, stamp))
    }

    /// Revokes pairings (`passgate bridge unpair`); returns the ones revoked. A running bridge
    /// sees the change before it answers its next request.
    pub fn revoke(&self, which: &Revoke) -> Result<Vec<StoredPairing>, PairingStoreError> {
        if self.stamp()?.is_none() {
            // Nothing was ever paired here: nothing to revoke, and no directory to create.
            return Ok(Vec::new());
        }
        let (revoked, _, _) = self.update(|pairings| {
            let (gone, kept): (Vec<_>, Vec<_>) =
                std::mem::take(pairings)
                    .into_iter()
                    .partition(|p| match which {
                        Revoke::All => true,
                        Revoke::Origin(origin) => p.origin == *origin,
                    });
            *pairings = kept;
            gone
        })?;
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use passgate_platform_api::fs::{NoHook, faults, write_atomic};

    fn pairing(origin: &str, id: &str, byte: u8) -> StoredPairing {
        StoredPairing {
            origin: origin.into(),
            id: id.into(),
            paired_at: 1_700_000_000,
            token_hash: Zeroizing::new([byte; 32]),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn pairings_round_trip_in_a_private_file() {
        let state = tempfile::tempdir().unwrap();
        let store = PairingStore::new(pairings_path(state.path()));
        assert!(store.load().unwrap().is_empty());
        store
            .add(pairing("http://localhost:8080", "a1", 1))
            .unwrap();
        store
            .add(pairing("http://localhost:3000", "b2", 2))
            .unwrap();
        let loaded = store.load().unwrap();
        let summary: Vec<_> = loaded
            .iter()
            .map(|p| (p.origin.as_str(), p.id.as_str(), p.token_hash[0]))
            .collect();
        assert_eq!(
            summary,
            [
                ("http://localhost:8080", "a1", 1),
                ("http://localhost:3000", "b2", 2)
            ]
        );
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(store.path().parent().unwrap()), 0o700);
        // Only hashes are written: the file names no token, and no temp file is left.
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.contains(&"01".repeat(32)), "{text}");
        let names: Vec<_> = std::fs::read_dir(store.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["pairings.json", "pairings.lock"]);
    }

    #[test]
    fn revoking_by_origin_or_all_changes_the_stamp() {
        let state = tempfile::tempdir().unwrap();
        let store = PairingStore::new(pairings_path(state.path()));
        store
            .add(pairing("http://localhost:8080", "a1", 1))
            .unwrap();
        store
            .add(pairing("http://localhost:8080", "a2", 2))
            .unwrap();
        let (_, before) = store
            .add(pairing("http://localhost:3000", "b1", 3))
            .unwrap();
        let revoked = store
            .revoke(&Revoke::Origin("http://localhost:8080".into()))
            .unwrap();
        let ids: Vec<_> = revoked.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a1", "a2"]);
        assert_ne!(store.stamp().unwrap(), before);
        let left: Vec<_> = store.load().unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(left, ["b1"]);
        assert!(
            store
                .revoke(&Revoke::Origin("http://nowhere:1".into()))
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.revoke(&Revoke::All).unwrap().len(), 1);
        assert!(store.load().unwrap().is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_pairings_stored_before() {
        let state = tempfile::tempdir().unwrap();
        let store = PairingStore::new(pairings_path(state.path()));
        store
            .add(pairing("http://localhost:8080", "a1", 1))
            .unwrap();
        for op in [faults::Op::Write, faults::Op::Fsync, faults::Op::Rename] {
            let fault = faults::inject(op, 1, rustix::io::Errno::NOSPC.raw_os_error());
            let error = store
                .add(pairing("http://localhost:8080", "a2", 2))
                .unwrap_err();
            assert!(
                matches!(error, PairingStoreError::File(PrivateFileError::Io { .. })),
                "{op:?}: {error}"
            );
            assert!(fault.fired() >= 1, "{op:?}");
            drop(fault);
            let ids: Vec<_> = store.load().unwrap().into_iter().map(|p| p.id).collect();
            assert_eq!(ids, ["a1"], "{op:?}");
        }
        let names = std::fs::read_dir(store.path().parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(names, 2, "no temp file is left behind");
    }

    #[test]
    fn a_file_others_may_write_is_not_trusted() {
        let state = tempfile::tempdir().unwrap();
        let store = PairingStore::new(pairings_path(state.path()));
        store
            .add(pairing("http://localhost:8080", "a1", 1))
            .unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(matches!(
            store.load(),
            Err(PairingStoreError::File(PrivateFileError::NotPrivate {
                mode: 0o622,
                ..
            }))
        ));
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let dir = store.path().parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            store.add(pairing("http://localhost:8080", "a2", 2)),
            Err(PairingStoreError::File(PrivateFileError::NotPrivate {
                mode: 0o777,
                ..
            }))
        ));
    }

    #[test]
    fn malformed_files_and_the_per_origin_bound() {
        let state = tempfile::tempdir().unwrap();
        let store = PairingStore::new(pairings_path(state.path()));
        for n in 0..MAX_PAIRINGS_PER_ORIGIN + 2 {
            let byte = u8::try_from(n).unwrap();
            store
                .add(pairing("http://localhost:8080", &format!("p{n}"), byte))
                .unwrap();
        }
        let ids: Vec<_> = store.load().unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), MAX_PAIRINGS_PER_ORIGIN);
        assert_eq!(ids[0], "p2", "the oldest two were forgotten");
        for bad in [
            "{",
            r#"{"version": 2, "pairings": []}"#,
            r#"{"version": 1, "pairings": [{"origin": "o", "id": "i", "paired_at": 1, "token_sha256": "zz"}]}"#,
        ] {
            write_atomic(store.path(), bad.as_bytes(), &NoHook).unwrap();
            assert!(
                matches!(store.load(), Err(PairingStoreError::Malformed { .. })),
                "{bad}"
            );
        }
    }
}
