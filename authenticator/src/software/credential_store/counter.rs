//! Per-credential signature counters, reserved in durable blocks.
//!
//! Each credential counts on its own: a new passkey's first assertion reads 1, then 2, 3, …
//! (its registration reads 0). A counter is never written at every assertion (that would be
//! an fsync per sign-in): `credentials/<rp-tag>/<cred-tag>.ctr` holds a *ceiling*, the
//! highest value the store may hand out before it writes again, and values up to it are
//! handed out from memory. When a credential reaches its ceiling (or is first used after the
//! store opens) the next ceiling, [`counter_block`] values higher, is written durably before
//! the value is returned. After a crash or a restart the store cannot know how far below the
//! ceiling it got, so it goes on from the ceiling: a counter never repeats, and jumps by at
//! most [`counter_block`] of its value across a restart.
//!
//! The block is [`COUNTER_BLOCK`] for a credential's first 128 sign-ins, then an eighth of its
//! counter, at most [`COUNTER_BLOCK_MAX`]: a rarely used passkey skips at most 16 values
//! across a restart, and a passkey used all the time pays its write (a temporary file, two
//! fsyncs and a rename, milliseconds on a disk) once in 256 sign-ins instead of once in 16.
//!
//! The file is `PGCTR001 || ceiling (u32, big-endian) || 16 bytes of HMAC-SHA256` over the
//! credential's tag and the ceiling, under a key derived from the device key: a file edited
//! to lower a counter, or copied from another credential, is reported corrupt.
//!
//! Stores written before these counters kept one store-wide epoch in `counter.epoch` (a
//! credential's counter was `epoch << 12 | uses`). Opening such a store gives every existing
//! credential a ceiling above every value that scheme could have handed out, then removes
//! `counter.epoch`: counters that relying parties have seen keep increasing.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_lc_rs::hmac;

use super::{FileCredentialStore, Tag, corrupt, io_error, parse_epoch, parse_tag};
use crate::api::credential_store::StoreError;
use crate::fs::{NoHook, hex, private_dir, remove_durably, write_atomic};

/// The smallest block a durable write reserves (a credential's first 128 sign-ins): a
/// restart of a rarely used passkey skips at most this many values.
pub const COUNTER_BLOCK: u32 = 16;
/// The largest block a durable write reserves (from a counter of 2048 on): a passkey in
/// constant use writes its counter once in this many sign-ins, and a restart skips at most
/// this many of its values (an eighth of its counter or fewer).
pub const COUNTER_BLOCK_MAX: u32 = 256;

/// How many values a durable write reserves when a credential's next value is `next`: an
/// eighth of it, at least [`COUNTER_BLOCK`] and at most [`COUNTER_BLOCK_MAX`]. It never
/// decreases as `next` grows, so a restart after handing out `last` goes on at most
/// `counter_block(last)` values higher.
#[must_use]
pub fn counter_block(next: u32) -> u32 {
    (next / 8).clamp(COUNTER_BLOCK, COUNTER_BLOCK_MAX)
}
pub(super) const COUNTER_EXT: &str = "ctr";
const COUNTER_MAGIC: &[u8; 8] = b"PGCTR001";
const COUNTER_FILE_LEN: usize = 8 + 4 + 16;
/// The legacy store-wide epoch file.
pub(super) const EPOCH_FILE: &str = "counter.epoch";
const EPOCH_SHIFT: u32 = 12;

/// The counters in use since the store opened: per credential tag, the last value handed
/// out and the ceiling on disk.
#[derive(Debug, Default)]
pub(super) struct Counters {
    live: HashMap<Tag, (u32, u32)>,
}

impl Counters {
    pub(super) fn forget(&mut self, tag: &Tag) {
        self.live.remove(tag);
    }

    pub(super) fn clear(&mut self) {
        self.live.clear();
    }
}

fn exhausted() -> StoreError {
    StoreError::Crypto("signature counter space exhausted for this credential".into())
}

impl FileCredentialStore {
    fn counter_path(&self, rp_tag: &Tag, cred_tag: &Tag) -> PathBuf {
        self.rp_dir(rp_tag)
            .join(format!("{}.{COUNTER_EXT}", hex(cred_tag)))
    }

    fn counter_mac(&self, cred_tag: &Tag, ceiling: u32) -> [u8; 16] {
        let mut ctx = hmac::Context::with_key(&self.counter_key);
        ctx.update(b"signature counter ceiling");
        ctx.update(cred_tag);
        ctx.update(&ceiling.to_be_bytes());
        let mut mac = [0u8; 16];
        mac.copy_from_slice(&ctx.sign().as_ref()[..16]);
        mac
    }

    /// The ceiling stored for a credential (`None`: never used).
    fn read_ceiling(&self, rp_tag: &Tag, cred_tag: &Tag) -> Result<Option<u32>, StoreError> {
        let path = self.counter_path(rp_tag, cred_tag);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let bad = || corrupt(&path, "not a passgate signature counter file");
        if bytes.len() != COUNTER_FILE_LEN {
            return Err(bad());
        }
        let (magic, rest) = bytes.split_at(8);
        let (value, mac) = rest.split_at(4);
        if magic != COUNTER_MAGIC {
            return Err(bad());
        }
        let ceiling = u32::from_be_bytes(value.try_into().map_err(|_| bad())?);
        aws_lc_rs::constant_time::verify_slices_are_equal(
            mac,
            &self.counter_mac(cred_tag, ceiling),
        )
        .map_err(|_| corrupt(&path, "signature counter integrity check failed"))?;
        Ok(Some(ceiling))
    }

    fn write_ceiling(&self, rp_tag: &Tag, cred_tag: &Tag, ceiling: u32) -> Result<(), StoreError> {
        let path = self.counter_path(rp_tag, cred_tag);
        let dir = self.rp_dir(rp_tag);
        private_dir(&dir).map_err(io_error(&dir))?;
        let mut bytes = Vec::with_capacity(COUNTER_FILE_LEN);
        bytes.extend_from_slice(COUNTER_MAGIC);
        bytes.extend_from_slice(&ceiling.to_be_bytes());
        bytes.extend_from_slice(&self.counter_mac(cred_tag, ceiling));
        write_atomic(&path, &bytes, &NoHook).map_err(io_error(&path))
    }

    /// The next counter value of a credential (see the module documentation).
    pub(super) fn next_count(&mut self, rp_id: &str, id: &[u8]) -> Result<u32, StoreError> {
        let rp_tag = self.rp_tag(rp_id);
        let cred_tag = self.cred_tag(id);
        let (last, ceiling) = match self.counters.live.get(&cred_tag) {
            Some(&state) => state,
            None => {
                let ceiling = self.read_ceiling(&rp_tag, &cred_tag)?.unwrap_or(0);
                (ceiling, ceiling)
            }
        };
        let next = last.checked_add(1).ok_or_else(exhausted)?;
        let ceiling = if next > ceiling {
            // Reserve next ..= next + block - 1 before handing out `next`: if the write fails,
            // nothing is handed out and memory stays as it was.
            let reserved = next.saturating_add(counter_block(next) - 1);
            self.write_ceiling(&rp_tag, &cred_tag, reserved)?;
            reserved
        } else {
            ceiling
        };
        self.counters.live.insert(cred_tag, (next, ceiling));
        Ok(next)
    }

    /// Removes a credential's counter (it was deleted or replaced). Not fsynced: a counter
    /// file that outlives its credential names nothing and only keeps its directory.
    pub(super) fn remove_counter(&mut self, rp_tag: &Tag, cred_tag: &Tag) {
        self.counters.forget(cred_tag);
        let _ = std::fs::remove_file(self.counter_path(rp_tag, cred_tag));
    }

    /// Moves a store from the legacy store-wide epoch to per-credential counters (see the
    /// module documentation); nothing to do for a store without `counter.epoch`. Safe to
    /// repeat after a crash: the epoch file goes last.
    pub(super) fn migrate_epoch(&mut self) -> Result<(), StoreError> {
        let path = self.state_dir.join(EPOCH_FILE);
        let epoch = match std::fs::read(&path) {
            Ok(bytes) => parse_epoch(&bytes)
                .ok_or_else(|| corrupt(&path, "not a passgate counter epoch file"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&path)(e)),
        };
        // Epoch E handed out values up to (E << 12) | 4095 = ((E + 1) << 12) - 1.
        let highest = (u64::from(epoch) + 1) << EPOCH_SHIFT;
        let ceiling = u32::try_from(highest.saturating_sub(1)).unwrap_or(u32::MAX);
        let root = self.root.clone();
        for rp_dir in std::fs::read_dir(&root).map_err(io_error(&root))? {
            let rp_dir = rp_dir.map_err(io_error(&root))?;
            let Some(rp_tag) = parse_tag(&rp_dir.file_name().to_string_lossy()) else {
                continue;
            };
            let dir = rp_dir.path();
            for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
                let name = entry.map_err(io_error(&dir))?.file_name();
                let name = name.to_string_lossy();
                let Some((stem, ext)) = name.rsplit_once('.') else {
                    continue;
                };
                if ext != super::RESIDENT_EXT && ext != super::NON_RESIDENT_EXT {
                    continue;
                }
                let Some(cred_tag) = parse_tag(stem) else {
                    continue;
                };
                if self.read_ceiling(&rp_tag, &cred_tag)?.is_none() {
                    self.write_ceiling(&rp_tag, &cred_tag, ceiling)?;
                }
            }
        }
        remove_durably(&path).map_err(io_error(&path))
    }
}
