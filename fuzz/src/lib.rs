//! What passgate's fuzz targets share: a scratch directory on tmpfs, the authenticator they
//! drive, a Tokio runtime for the HTTP services, and the invariants checked on CTAP messages
//! (typed decode → encode → decode equal, answers in canonical CBOR).
//!
//! Test code: it panics on a broken invariant, which is how a fuzz target reports one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod ctap;
pub mod rp;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty directory for state files, on tmpfs when there is one (every
/// makeCredential fsyncs: on a disk that would dominate the run), removed and recreated if it
/// exists.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "passgate-fuzz-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A single-threaded Tokio runtime (a fuzz target runs one input at a time).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Splits `data` at the first `sep` byte: `(before, after)`, or `(data, [])`.
pub fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
