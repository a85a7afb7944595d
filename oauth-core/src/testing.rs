//! Test utilities (feature `test-util`): a clock that only moves when told, and fixtures.
//!
//! Expiry tests advance a [`FixedClock`]; nothing sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::Clock;
use crate::config::{ResourceConfig, ServerConfig};

/// A clock standing still at a given time until advanced.
#[derive(Debug)]
pub struct FixedClock {
    secs: AtomicU64,
}

impl FixedClock {
    /// A clock at `secs` seconds since the epoch.
    pub fn at(secs: u64) -> Arc<Self> {
        Arc::new(FixedClock {
            secs: AtomicU64::new(secs),
        })
    }

    /// A clock at a fixed, realistic time (2026-01-01T00:00:00Z).
    pub fn new() -> Arc<Self> {
        Self::at(1_767_225_600)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.secs.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.secs.load(Ordering::SeqCst))
    }
}

/// Issuer used by the fixtures.
pub const ISSUER: &str = "https://auth.example.com";
/// First protected resource of the fixtures (requires scope `mcp`).
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
/// Second protected resource of the fixtures (origin-only, requires nothing).
pub const OTHER_RESOURCE: &str = "https://tools.example.com";

/// A configuration with two resources and scopes `mcp`, `mcp:admin`.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig::new(
        ISSUER,
        vec![
            ResourceConfig::new(RESOURCE, vec!["mcp".into(), "mcp:admin".into()])
                .require(vec!["mcp".into()])
                .named("Example MCP"),
            ResourceConfig::new(OTHER_RESOURCE, vec!["mcp".into()]),
        ],
    );
    c.default_scopes = vec!["mcp".into()];
    c
}
