//! [`FileStateStore`]: named state blobs in `STATE/state/<name>.bin`, each AES-256-GCM
//! encrypted under a key derived from the device key, with the name as associated data.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::DeviceKey;
use crate::api::credential_store::StoreError;
use crate::api::state_store::StateStore;
use crate::fs::{NoHook, private_dir, sync_dir, write_atomic};

const VERSION: u8 = 1;

/// Encrypted, durable named state in the state directory.
pub struct FileStateStore {
    dir: PathBuf,
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for FileStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStateStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FileStateStore {
    /// Opens `STATE/state`, creating it (0700) if needed.
    pub fn open(state_dir: &Path, device_key: &DeviceKey) -> Result<Self, StoreError> {
        let dir = state_dir.join("state");
        private_dir(&dir).map_err(io(&dir))?;
        let key = device_key.derive(b"state store: encryption");
        let key = UnboundKey::new(&AES_256_GCM, key.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| StoreError::Crypto("invalid state key".into()))?;
        Ok(Self {
            dir,
            key,
            rng: SystemRandom::new(),
        })
    }

    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(StoreError::Crypto(format!("invalid state name {name:?}")));
        }
        Ok(self.dir.join(format!("{name}.bin")))
    }
}

impl StateStore for FileStateStore {
    fn load(&mut self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let path = self.path(name)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(corrupt("empty file"));
        };
        if version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(corrupt("unknown version or truncated"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt("bad nonce"))?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), buffer.as_mut_slice())
            .map_err(|_| corrupt("integrity check failed"))?
            .len();
        buffer.truncate(len);
        Ok(Some(buffer))
    }

    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(name)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("random number generator failed".into()))?;
        let mut buffer = Zeroizing::new(bytes.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut *buffer,
            )
            .map_err(|_| StoreError::Crypto("state encryption failed".into()))?;
        let content = [&[VERSION][..], &nonce, &buffer].concat();
        write_atomic(&path, &content, &NoHook).map_err(io(&path))
    }

    fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(io(&self.dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_tamper_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::load_or_create(dir.path()).unwrap();
        let mut store = FileStateStore::open(dir.path(), &key).unwrap();
        assert!(store.load("pin").unwrap().is_none());
        store.save("pin", b"secret-state").unwrap();
        let mut reopened = FileStateStore::open(dir.path(), &key).unwrap();
        assert_eq!(
            reopened.load("pin").unwrap().unwrap().as_slice(),
            b"secret-state"
        );
        let path = dir.path().join("state/pin.bin");
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"secret"));
        // The name is authenticated: a file copied to another name does not open.
        std::fs::copy(&path, dir.path().join("state/other.bin")).unwrap();
        assert!(matches!(
            reopened.load("other"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(reopened.load("../x").is_err());
        reopened.remove("pin").unwrap();
        assert!(reopened.load("pin").unwrap().is_none());
    }
}
