//! Time as an injected dependency.
//!
//! Every expiry decision in the engine (codes, pending authorizations, refresh tokens, JWT `exp`/`nbf`, the
//! embedded store's TTLs) reads the time through [`Clock`], never through `SystemTime::now()` directly. That is
//! what lets the tests advance a fixed clock instead of sleeping, and what `clippy.toml` enforces: the one
//! sanctioned wall-clock read is [`SystemClock::now`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch, the unit of JWT `exp`/`iat` and of stored expiries.
    fn unix(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }

    /// The current time as milliseconds since the Unix epoch (how fresh the revocation state is).
    fn unix_millis(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
