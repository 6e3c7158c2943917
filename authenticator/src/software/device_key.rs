//! The device key: 32 random bytes in `STATE/device.key` (mode 0600) from which every software
//! key is derived with HKDF-SHA256 under a distinct label.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::fs::{private_dir, write_atomic};

const FILE_NAME: &str = "device.key";
const MAGIC: &[u8; 8] = b"PGDEVK01";
const FILE_LEN: usize = MAGIC.len() + 32;

/// Why the device key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum DeviceKeyError {
    /// Reading or writing failed.
    #[error("device key I/O error at {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file exists but is not a passgate device key. It is left untouched.
    #[error("{path} is not a valid passgate device key ({reason}); it was left untouched")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is readable or writable by other users.
    #[error("{path} has mode {mode:o}; it must be 0600 (run: chmod 600 {path})")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No randomness.
    #[error("the system random number generator failed")]
    Random,
}

/// The root secret of the software backends. Zeroized on drop; never printed.
pub struct DeviceKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

impl DeviceKey {
    /// Loads `STATE/device.key`, creating the state directory (0700) and the key (0600) when
    /// missing. A malformed or world-readable key file is an error, never overwritten.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, DeviceKeyError> {
        private_dir(state_dir).map_err(|source| DeviceKeyError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(FILE_NAME);
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                let io = |source| DeviceKeyError::Io {
                    path: path.clone(),
                    source,
                };
                let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(DeviceKeyError::InsecurePermissions { path, mode });
                }
                let mut content = Zeroizing::new(Vec::with_capacity(FILE_LEN));
                file.by_ref()
                    .take(u64::try_from(FILE_LEN + 1).unwrap_or(u64::MAX))
                    .read_to_end(&mut content)
                    .map_err(|source| DeviceKeyError::Io {
                        path: path.clone(),
                        source,
                    })?;
                if content.len() != FILE_LEN {
                    return Err(DeviceKeyError::Corrupt {
                        path,
                        reason: format!("expected {FILE_LEN} bytes, found {}", content.len()),
                    });
                }
                if &content[..MAGIC.len()] != MAGIC {
                    return Err(DeviceKeyError::Corrupt {
                        path,
                        reason: "wrong magic header".into(),
                    });
                }
                let mut bytes = Zeroizing::new([0u8; 32]);
                bytes.copy_from_slice(&content[MAGIC.len()..]);
                Ok(Self { bytes })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                SystemRandom::new()
                    .fill(bytes.as_mut())
                    .map_err(|_| DeviceKeyError::Random)?;
                let mut content = Zeroizing::new(Vec::with_capacity(FILE_LEN));
                content.extend_from_slice(MAGIC);
                content.extend_from_slice(bytes.as_ref());
                write_atomic(&path, &content, true)
                    .map_err(|source| DeviceKeyError::Io { path, source })?;
                tracing::info!("created a new device key");
                Ok(Self { bytes })
            }
            Err(source) => Err(DeviceKeyError::Io { path, source }),
        }
    }

    /// Derives an independent 32-byte key for `label` (HKDF-SHA256).
    pub(crate) fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let prk = Salt::new(HKDF_SHA256, b"passgate device key v1").extract(self.bytes.as_ref());
        // Expanding 32 bytes from HKDF-SHA256 cannot fail (the limit is 255 * 32).
        if let Ok(okm) = prk.expand(&[label], HKDF_SHA256) {
            let _ = okm.fill(out.as_mut());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let a = DeviceKey::load_or_create(&state).unwrap();
        let b = DeviceKey::load_or_create(&state).unwrap();
        assert_eq!(*a.derive(b"x"), *b.derive(b"x"));
        assert_ne!(*a.derive(b"x"), *a.derive(b"y"));
        let mode = std::fs::metadata(state.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(format!("{a:?}"), "DeviceKey(..)");
    }

    #[test]
    fn corrupt_or_exposed_key_is_an_error_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        DeviceKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"garbage").unwrap();
        let err = DeviceKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, DeviceKeyError::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"garbage");

        let mut good = MAGIC.to_vec();
        good.extend_from_slice(&[1; 32]);
        std::fs::write(&path, &good).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = DeviceKey::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, DeviceKeyError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
}
