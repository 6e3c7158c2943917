//! The failed-unlock counter of one vault (`<stem>.attempts`, 0600), bound to the vault file.
//!
//! - A failure is counted *before* the attempt is evaluated (as CTAP's PIN retries are): the
//!   counter is written with one more failure, then the authenticator is asked; success
//!   resets it, an outcome that is not the person's failure (a cancel, a device error) puts the
//!   old count back. Killing passgate mid-attempt leaves the attempt counted.
//! - A counter that is unreadable or malformed reads as *exhausted*, not as zero.
//! - The counter records the vault file's *generation* (incremented by every write of the
//!   vault). A vault file whose generation is behind the counter's is an older copy put back,
//!   and is refused; a vault written with generations but with no counter beside it had its
//!   counter removed, and reads as exhausted. Clearing a vault keeps the counter, one
//!   generation ahead, so no earlier copy opens afterwards.
//!
//! What this cannot stop: putting back an older vault *and* its older counter together (a
//! rollback of the whole directory). The authenticator's own counters (built-in UV lockout,
//! PIN retries) still bound the guesses then.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    /// Failed unlocks since the last success.
    pub failed: u8,
    /// The generation of the latest vault file written (or the floor after a clear); absent
    /// (0) in counters written before generations existed.
    #[serde(default)]
    pub generation: u64,
}

/// What is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// No counter file.
    Missing,
    /// A counter file that cannot be read or parsed: exhausted.
    Unreadable,
    /// A counter.
    Valid(Counter),
}

/// Reads the counter at `path`.
pub fn load(path: &Path) -> Stored {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Counter>(&bytes) {
            Ok(counter) => Stored::Valid(counter),
            Err(_) => {
                tracing::warn!(path = %path.display(), "the vault's attempt counter is malformed: treating the vault as exhausted");
                Stored::Unreadable
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::Missing,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the vault's attempt counter is unreadable: treating the vault as exhausted");
            Stored::Unreadable
        }
    }
}

/// What the counter says about a vault file of `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Usable, with this many failures so far.
    Failed(u8),
    /// No attempt left (counted out, or the counter is unreadable or was removed).
    Exhausted,
    /// The vault file is older than the counter: a copy put back.
    RolledBack {
        /// The file's generation.
        file: u64,
        /// The counter's.
        counter: u64,
    },
}

/// Judges a vault file of `generation` against `stored`, with `max_attempts` allowed.
pub fn judge(stored: Stored, generation: u64, max_attempts: u8) -> Verdict {
    match stored {
        // Vaults written before generations existed had no counter until a failure.
        Stored::Missing if generation == 0 => Verdict::Failed(0),
        Stored::Missing | Stored::Unreadable => Verdict::Exhausted,
        Stored::Valid(c) if generation < c.generation => Verdict::RolledBack {
            file: generation,
            counter: c.generation,
        },
        Stored::Valid(c) if c.failed >= max_attempts => Verdict::Exhausted,
        Stored::Valid(c) => Verdict::Failed(c.failed),
    }
}

/// Writes `counter` at `path` atomically and durably (0600).
pub fn store(
    path: &Path,
    counter: Counter,
    hook: &dyn crate::fs::WriteHook,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&counter).map_err(std::io::Error::other)?;
    crate::fs::write_atomic(path, &bytes, hook)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_counters() {
        let valid = |failed, generation| Stored::Valid(Counter { failed, generation });
        assert_eq!(judge(Stored::Missing, 0, 5), Verdict::Failed(0));
        assert_eq!(judge(Stored::Missing, 3, 5), Verdict::Exhausted);
        assert_eq!(judge(Stored::Unreadable, 0, 5), Verdict::Exhausted);
        assert_eq!(judge(valid(2, 4), 4, 5), Verdict::Failed(2));
        assert_eq!(
            judge(valid(2, 4), 5, 5),
            Verdict::Failed(2),
            "a crash between the vault's and the counter's write"
        );
        assert_eq!(judge(valid(5, 4), 4, 5), Verdict::Exhausted);
        assert_eq!(
            judge(valid(0, 9), 4, 5),
            Verdict::RolledBack {
                file: 4,
                counter: 9
            }
        );
    }

    #[test]
    fn malformed_and_unreadable_files_are_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.attempts");
        assert_eq!(load(&path), Stored::Missing);
        std::fs::write(&path, b"{\"failed\": 300, \"generation\": 1}").unwrap();
        assert_eq!(load(&path), Stored::Unreadable);
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(load(&path), Stored::Unreadable);
        std::fs::write(&path, b"{\"failed\": 1}").unwrap();
        assert_eq!(
            load(&path),
            Stored::Valid(Counter {
                failed: 1,
                generation: 0
            }),
            "a counter from before generations"
        );
        store(
            &path,
            Counter {
                failed: 3,
                generation: 8,
            },
            &crate::fs::NoHook,
        )
        .unwrap();
        assert_eq!(
            load(&path),
            Stored::Valid(Counter {
                failed: 3,
                generation: 8
            })
        );
    }
}
