//! Wall-clock and monotonic time, behind a trait so tests can control it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of time for the authenticator.
pub trait Clock: Send {
    /// Seconds since the Unix epoch (used for credential creation times).
    fn unix_seconds(&self) -> u64;
    /// A monotonic instant (used for timeouts).
    fn now(&self) -> Instant;
}

/// The operating system's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_seconds(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}
