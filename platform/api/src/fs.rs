//! Private directories and atomic, durable file writes, shared by every passgate crate that
//! keeps state on disk (the software stores here, the app APIs, the bridge's installer, the
//! relying party's receipt key).
//!
//! A file is replaced by writing a temp file in the same directory, fsyncing it, renaming it
//! over the target and fsyncing the directory: a crash at any point leaves the old file or the
//! new one, never a mix. A [`WriteHook`] lets tests fail (or "crash") a write between the temp
//! file and the rename, to prove exactly that.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

#[cfg(any(test, feature = "fault-injection"))]
pub mod faults;
#[cfg(not(any(test, feature = "fault-injection")))]
mod faults {
    //! Fault injection is compiled out: every operation goes ahead.
    use std::io;

    /// The file operations a fault can be injected into.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Op {
        Write,
        Fsync,
        Rename,
    }

    #[inline(always)]
    pub(crate) fn check(_op: Op) -> io::Result<()> {
        Ok(())
    }
}

/// Prefix of temp files; stale ones (left by a crash) are removed by [`remove_stale_temps`] or
/// when a store opens.
pub const TEMP_PREFIX: &str = ".tmp-";

/// The mode of private files: read and write for the owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// The mode of private directories.
const PRIVATE_DIR_MODE: u32 = 0o700;

/// The stages of an atomic write at which a [`WriteHook`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStage {
    /// The temp file is written (and fsynced, for a [`Durability::Synced`] write); the target
    /// is untouched.
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

/// Whether a write is made durable before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it.
    Synced,
    /// No fsync: for bulk work whose caller fsyncs once at the end (a crash still leaves the
    /// old file or the new one, but the new one may be lost).
    Deferred,
}

/// How [`write_atomic_with`] writes a file.
#[derive(Clone, Copy)]
pub struct WriteOptions<'h> {
    /// The file's permission bits, set exactly (the umask does not apply).
    pub mode: u32,
    /// Whether the write is durable before it returns.
    pub durability: Durability,
    /// Runs between the temp file and the rename.
    pub hook: &'h dyn WriteHook,
}

impl std::fmt::Debug for WriteOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("mode", &format_args!("{:o}", self.mode))
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Default for WriteOptions<'static> {
    /// A private (0600), durable write without a hook.
    fn default() -> Self {
        Self {
            mode: PRIVATE_FILE_MODE,
            durability: Durability::Synced,
            hook: &NoHook,
        }
    }
}

/// The directory `path` is in: `.` for a bare file name.
fn parent_dir(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(dir) => Ok(dir),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no parent directory",
        )),
    }
}

/// Creates `dir` (and parents) with mode 0700 where missing. When `dir` itself is created, its
/// mode is set exactly (whatever the umask) and its parent is fsynced, so that the new
/// directory entry is durable. An existing directory is left as it is.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR_MODE))?;
    sync_dir(parent_dir(dir)?)
}

/// fsyncs a directory, making a rename or unlink in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    faults::check(faults::Op::Fsync)?;
    File::open(dir)?.sync_all()
}

fn temp_path(dir: &Path) -> io::Result<std::path::PathBuf> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|_| io::Error::other("the system random number generator failed"))?;
    Ok(dir.join(format!("{TEMP_PREFIX}{}", hex(&bytes))))
}

/// Writes `bytes` to a new temp file in `dir` with exactly `mode`, fsynced when `durability`
/// says so.
fn write_temp(
    dir: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> io::Result<std::path::PathBuf> {
    let temp = temp_path(dir)?;
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        faults::check(faults::Op::Write)?;
        file.write_all(bytes)?;
        if durability == Durability::Synced {
            faults::check(faults::Op::Fsync)?;
            file.sync_all()?;
        }
        Ok(())
    })();
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Replaces `path` with `bytes` atomically and durably, as a private (0600) file; `hook` runs
/// between the temp file and the rename (pass [`NoHook`] outside tests).
pub fn write_atomic(path: &Path, bytes: &[u8], hook: &dyn WriteHook) -> io::Result<()> {
    write_atomic_with(
        path,
        bytes,
        &WriteOptions {
            hook,
            ..WriteOptions::default()
        },
    )
}

/// Replaces `path` with `bytes` atomically (see the module documentation), as `options` say.
pub fn write_atomic_with(path: &Path, bytes: &[u8], options: &WriteOptions<'_>) -> io::Result<()> {
    let dir = parent_dir(path)?;
    let temp = write_temp(dir, bytes, options.mode, options.durability)?;
    let result = (|| {
        options.hook.at(WriteStage::TempWritten, path)?;
        faults::check(faults::Op::Rename)?;
        std::fs::rename(&temp, path)?;
        match options.durability {
            Durability::Synced => sync_dir(dir),
            Durability::Deferred => Ok(()),
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `path` with `bytes` atomically and durably as a private (0600) file, never
/// replacing an existing one: the fsynced temp file is hard-linked to `path` (which fails if
/// `path` exists, even when another process created it a moment ago), then the directory is
/// fsynced. Returns `false`, leaving the existing file untouched, when `path` already exists.
pub fn create_new_atomic(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let dir = parent_dir(path)?;
    let temp = write_temp(dir, bytes, PRIVATE_FILE_MODE, Durability::Synced)?;
    let linked =
        match faults::check(faults::Op::Rename).and_then(|()| std::fs::hard_link(&temp, path)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        };
    let removed = std::fs::remove_file(&temp);
    let created = linked?;
    removed?;
    sync_dir(dir)?;
    Ok(created)
}

/// Removes `path` durably; a missing file is fine.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent_dir(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the temp files a crash left in `dir` (a missing `dir` has none).
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

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_new_never_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(create_new_atomic(&path, b"first").unwrap());
        assert!(!create_new_atomic(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(dir.path()), vec!["f".to_owned()]);
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
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn the_mode_is_set_exactly_and_a_deferred_write_still_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launcher.sh");
        let executable = WriteOptions {
            mode: 0o755,
            ..WriteOptions::default()
        };
        write_atomic_with(&path, b"#!/bin/sh\n", &executable).unwrap();
        assert_eq!(mode(&path), 0o755);
        let deferred = WriteOptions {
            durability: Durability::Deferred,
            ..WriteOptions::default()
        };
        write_atomic_with(&path, b"again", &deferred).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(dir.path()), vec!["launcher.sh".to_owned()]);
    }

    #[test]
    fn stale_temps_are_removed_and_private_dirs_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
        std::fs::write(sub.join(".tmp-deadbeef"), b"half").unwrap();
        std::fs::write(sub.join("keep"), b"x").unwrap();
        remove_stale_temps(&sub).unwrap();
        assert_eq!(names(&sub), vec!["keep".to_owned()]);
        remove_durably(&sub.join("keep")).unwrap();
        remove_durably(&sub.join("keep")).unwrap();
        assert!(names(&sub).is_empty());
    }

    #[test]
    fn a_path_without_a_parent_is_refused() {
        let err = write_atomic(Path::new("/"), b"x", &NoHook).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
