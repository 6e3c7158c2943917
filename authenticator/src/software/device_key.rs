//! The device key: 32 random bytes in `STATE/device.key` (mode 0600) from which every software
//! key is derived with HKDF-SHA256 under a distinct label.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::fs::{create_new_atomic, private_dir};

const FILE_NAME: &str = "device.key";
const MAGIC: &[u8; 8] = b"PGDEVK01";
const FILE_LEN: usize = MAGIC.len() + 32;
const HKDF_SALT: &[u8] = b"passgate device key v1";

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
        match Self::load(&path)? {
            Some(key) => Ok(key),
            None => Self::create(path),
        }
    }

    /// Creates a new key file; if another process created one first, loads that one instead.
    fn create(path: PathBuf) -> Result<Self, DeviceKeyError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| DeviceKeyError::Random)?;
        let mut content = Zeroizing::new(Vec::with_capacity(FILE_LEN));
        content.extend_from_slice(MAGIC);
        content.extend_from_slice(bytes.as_ref());
        let created = create_new_atomic(&path, &content).map_err(|source| DeviceKeyError::Io {
            path: path.clone(),
            source,
        })?;
        if created {
            tracing::info!("created a new device key");
            return Ok(Self { bytes });
        }
        // Lost a race with another process: the existing key wins, whatever it holds.
        Self::load(&path)?.ok_or(DeviceKeyError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "device key vanished while being created",
            ),
        })
    }

    /// Loads the key file, or `None` if there is none.
    fn load(path: &Path) -> Result<Option<Self>, DeviceKeyError> {
        let path = path.to_path_buf();
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
                // One spare byte so that reading a too-long file never reallocates (and leaves
                // an unzeroized copy behind).
                let mut content = Zeroizing::new(Vec::with_capacity(FILE_LEN + 1));
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
                Ok(Some(Self { bytes }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DeviceKeyError::Io { path, source }),
        }
    }

    /// Derives an independent 32-byte key for `label`: HKDF-SHA256 (RFC 5869) with the salt
    /// `passgate device key v1` and `label` as info.
    ///
    /// A 32-byte output is exactly one HKDF-Expand block, `HMAC(PRK, info || 0x01)`, so it is
    /// computed with HMAC directly: unlike `aws_lc_rs::hkdf`'s fallible `expand`/`fill`, this
    /// has no error path that could leave an all-zero key behind. A unit test checks it against
    /// `aws_lc_rs::hkdf`.
    pub(crate) fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let salt = hmac::Key::new(hmac::HMAC_SHA256, HKDF_SALT);
        let mut prk = Zeroizing::new([0u8; 32]);
        prk.copy_from_slice(hmac::sign(&salt, self.bytes.as_ref()).as_ref());
        let prk = hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref());
        let mut ctx = hmac::Context::with_key(&prk);
        ctx.update(label);
        ctx.update(&[1]);
        let block = ctx.sign();
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(block.as_ref());
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
    fn derivation_is_hkdf_sha256() {
        use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
        let key = DeviceKey {
            bytes: Zeroizing::new([0x42; 32]),
        };
        for label in [&b"software key store: key wrapping"[..], b"", b"x"] {
            let mut expected = [0u8; 32];
            Salt::new(HKDF_SHA256, HKDF_SALT)
                .extract(&[0x42; 32])
                .expand(&[label], HKDF_SHA256)
                .unwrap()
                .fill(&mut expected)
                .unwrap();
            assert_eq!(*key.derive(label), expected);
        }
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
