//! What the bridge's own state files share (the pairings, the account record): a file that is
//! 0600 in a 0700 directory, refused when others may write it or its directory, changed only
//! under an advisory lock beside it (`NAME.lock`), written atomically and durably.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use passgate_platform_api::fs::{NoHook, private_dir, write_atomic};

/// Why a private state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Reading, writing or locking failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The file or its directory may be written by other users: what it holds is not trusted.
    #[error(
        "{path} may be written by other users (mode {mode:o}): it is not trusted; make it private (chmod go-rwx) or remove it"
    )]
    NotPrivate {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PrivateFileError + '_ {
    move |source| PrivateFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Refuses a file or directory that users other than its owner may write.
pub(crate) fn check_private(
    path: &Path,
    metadata: &std::fs::Metadata,
) -> Result<(), PrivateFileError> {
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PrivateFileError::NotPrivate {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Holds the advisory lock until dropped.
pub(crate) struct Locked {
    _file: std::fs::File,
}

/// The directory `path` lives in.
pub(crate) fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or_else(|| Path::new("."))
}

/// Takes the exclusive lock beside `path` (`NAME.lock`), creating the private directory.
pub(crate) fn lock(path: &Path) -> Result<Locked, PrivateFileError> {
    let dir = dir_of(path);
    private_dir(dir).map_err(io_error(dir))?;
    let metadata = std::fs::metadata(dir).map_err(io_error(dir))?;
    check_private(dir, &metadata)?;
    let lock_path = path.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode_private()
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_error(&lock_path)(io::Error::from(e)))?;
    Ok(Locked { _file: file })
}

/// A file's bytes (zeroized when dropped) and the metadata they were read with.
pub(crate) type Contents = (Zeroizing<Vec<u8>>, std::fs::Metadata);

/// The file's bytes and metadata (`None` when there is no file), after checking that
/// neither it nor its directory may be written by others.
pub(crate) fn read(path: &Path) -> Result<Option<Contents>, PrivateFileError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let metadata = file.metadata().map_err(io_error(path))?;
    check_private(path, &metadata)?;
    if let Ok(dir) = std::fs::metadata(dir_of(path)) {
        check_private(dir_of(path), &dir)?;
    }
    let mut bytes = Zeroizing::new(Vec::new());
    io::Read::read_to_end(&mut &file, &mut bytes).map_err(io_error(path))?;
    Ok(Some((bytes, metadata)))
}

/// Replaces the file atomically and durably (0600; call under [`lock`]).
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), PrivateFileError> {
    write_atomic(path, bytes, &NoHook).map_err(io_error(path))
}

/// `OpenOptions::mode(0o600)` under a name that says why.
trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}
