//! Private files (the receipt key, the SQLite database's directory): created 0600 in 0700
//! directories, atomically and durably. The relying party keeps this small module instead of
//! depending on the authenticator crate for it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// The mode of a private file.
const FILE_MODE: u32 = 0o600;
/// The mode of a directory this crate creates.
const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents as 0700 (existing directories keep their mode).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Creates `path` with `bytes` as a private (0600) file, atomically and durably, never
/// replacing an existing one: a fsynced temp file in the same directory is hard-linked to
/// `path` (which fails if `path` exists, even when another process created it a moment ago),
/// then the directory is fsynced. Returns `false`, leaving the existing file untouched, when
/// `path` already exists. Missing parent directories are created 0700.
pub fn create_new_atomic(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| io::Error::other("no randomness"))?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        u64::from_le_bytes(nonce)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| match std::fs::hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let removed = std::fs::remove_file(&temp);
    let created = linked?;
    removed?;
    File::open(dir)?.sync_all()?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_private_in_a_private_dir() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b/key");
        assert!(create_new_atomic(&path, b"one").unwrap());
        assert!(!create_new_atomic(&path, b"two").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&root.path().join("a/b")), 0o700);
        // No temp file is left behind.
        assert_eq!(
            std::fs::read_dir(root.path().join("a/b")).unwrap().count(),
            1
        );
    }
}
