//! Wall-clock and monotonic time, behind a trait so tests can control it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of time for the authenticator.
pub trait Clock: Send {
    /// Seconds since the Unix epoch (used for credential creation times).
    fn unix_seconds(&self) -> u64;
    /// Nanoseconds since the Unix epoch (used to order credentials by creation). Clocks that
    /// only know seconds need not override it: the authenticator makes the values it stores
    /// strictly increasing itself.
    fn unix_nanos(&self) -> u64 {
        self.unix_seconds().saturating_mul(1_000_000_000)
    }
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

    fn unix_nanos(&self) -> u64 {
        // u64 nanoseconds last until the year 2554; saturate rather than wrap after that.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}
