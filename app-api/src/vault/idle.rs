//! `lockAfter`: when an open vault locks by itself.
//!
//! Identity Vault counts `lockAfter` as time *in the background*. A host that reports the
//! app's visibility ([`super::Vault::set_visibility`]: the Tauri plugin, a webview shim on
//! `visibilitychange`) gets exactly that: the vault locks `lockAfter` ms after the app was
//! hidden, and never while it is shown. A host that never reports visibility (a CLI, a plain
//! page without the shim's listener) gets idle time instead: `lockAfter` ms without a vault
//! operation. Either way a timer locks the vault, not only the next call.

use std::sync::{PoisonError, Weak};
use std::time::{Duration, Instant};

use super::{Inner, VaultState, lock};

/// What the host said about the app's visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Visibility {
    /// Never reported: `lockAfter` counts idle time.
    Unreported,
    /// Shown: no time counts.
    Shown,
    /// Hidden since then: `lockAfter` counts from it.
    Hidden(Instant),
}

impl Inner {
    /// When the vault locks by itself, if it does.
    pub(super) fn lock_deadline(&self) -> Option<Instant> {
        if self.config.lock_after == 0 || !self.is_open() {
            return None;
        }
        let after = Duration::from_millis(self.config.lock_after);
        match self.visibility {
            Visibility::Unreported => Some(self.last_activity + after),
            Visibility::Shown => None,
            Visibility::Hidden(since) => Some(since + after),
        }
    }

    /// Whether the vault should have locked by `now`.
    pub(super) fn idle_expired(&self, now: Instant) -> bool {
        self.lock_deadline().is_some_and(|deadline| now >= deadline)
    }
}

/// Locks the vault at its deadline, even if nobody calls it.
pub(super) fn spawn_timer(shared: Weak<VaultState>) {
    let spawned = std::thread::Builder::new()
        .name("vault-idle-lock".into())
        .spawn(move || {
            loop {
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                let mut inner = lock(&strong);
                if inner.closed {
                    return;
                }
                let now = Instant::now();
                if inner.idle_expired(now) {
                    inner.lock_now(true);
                }
                let wait = match inner.lock_deadline() {
                    Some(deadline) => {
                        deadline.saturating_duration_since(now) + Duration::from_millis(5)
                    }
                    // Nothing to time: wake up on activity (or every few seconds).
                    None => Duration::from_secs(5),
                };
                let (guard, _) = strong
                    .wake
                    .wait_timeout(inner, wait)
                    .unwrap_or_else(PoisonError::into_inner);
                drop(guard);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the vault's idle timer: it locks on access only");
    }
}
