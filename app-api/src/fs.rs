//! Private directories and atomic, durable file replacement.
//!
//! A file is replaced by writing a 0600 temp file in the same directory, fsyncing it, renaming
//! it over the target and fsyncing the directory: a crash at any point leaves the old file or
//! the new one, never a mix. [`WriteHook`] lets tests fail (or "crash") a write between the
//! temp file and the rename, to prove exactly that.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Prefix of temp files; stale ones (left by a crash) are removed by [`remove_stale_temps`].
pub const TEMP_PREFIX: &str = ".tmp-";

/// The stages of an atomic write at which a [`WriteHook`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStage {
    /// The temp file is written and fsynced; the target is untouched.
    TempWritten,
}

/// Runs at each [`WriteStage`]; an error aborts the write there (fault injection in tests).
pub trait WriteHook: Send + Sync {
    /// Called at `stage` of writing `target`.
    fn at(&self, stage: WriteStage, target: &Path) -> io::Result<()>;
}

/// The production hook: does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl WriteHook for NoHook {
    fn at(&self, _stage: WriteStage, _target: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// Creates `dir` (and parents) with mode 0700 where missing, and fsyncs the parent of a new
/// directory.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// fsyncs a directory, making a rename or unlink in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn random_suffix() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| io::Error::other("the system random number generator failed"))?;
    Ok(hex(&bytes))
}

/// Replaces `path` with `bytes` atomically and durably (see the module documentation).
pub fn write_atomic(path: &Path, bytes: &[u8], hook: &dyn WriteHook) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("the path has no parent directory"))?;
    let temp = dir.join(format!("{TEMP_PREFIX}{}", random_suffix()?));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        hook.at(WriteStage::TempWritten, path)?;
        std::fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Removes `path` durably; a missing file is fine.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Removes temp files a crash left in `dir`.
pub fn remove_stale_temps(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FailAfterTemp;

    impl WriteHook for FailAfterTemp {
        fn at(&self, stage: WriteStage, _target: &Path) -> io::Result<()> {
            assert_eq!(stage, WriteStage::TempWritten);
            Err(io::Error::other(
                "injected failure between temp write and rename",
            ))
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_injected_failure_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        write_atomic(&path, b"old", &NoHook).unwrap();
        let err = write_atomic(&path, b"new", &FailAfterTemp).unwrap_err();
        assert!(err.to_string().contains("injected"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["v".to_owned()]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn stale_temps_are_removed_and_private_dirs_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        private_dir(&sub).unwrap();
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(sub.join(".tmp-deadbeef"), b"half").unwrap();
        std::fs::write(sub.join("keep"), b"x").unwrap();
        remove_stale_temps(&sub).unwrap();
        assert_eq!(names(&sub), vec!["keep".to_owned()]);
        remove_durably(&sub.join("keep")).unwrap();
        remove_durably(&sub.join("keep")).unwrap();
        assert!(names(&sub).is_empty());
    }
}
