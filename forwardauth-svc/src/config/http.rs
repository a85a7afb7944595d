//! `[http]`: how long the public listener keeps an idle connection, and how many it holds at once.
//!
//! # Why the idle timeout is long
//!
//! A proxy keeps the connections it opened to the gate in a pool and picks one for the next `/verify`. If the gate
//! closes an idle connection at the moment the proxy writes a request on it, the request is lost: Go's HTTP
//! client (Traefik's ForwardAuth) retries such a request only when it can replay it, which a request carrying the
//! forwarded body (`forwardBody`) is not, so Traefik answers the user 500 (`http: server closed idle
//! connection`). The proxy must therefore be the side that closes idle connections: the gate's idle timeout has
//! to be longer than every proxy's. Traefik's ForwardAuth client keeps idle connections 90 s (Go's default),
//! Caddy's `forward_auth` 2 minutes, nginx as long as the snippet's `keepalive_timeout` (60 s); the default here,
//! 300 s, is above all three. actix-web's own default (5 s) was below all of them.
//!
//! # What an idle connection costs
//!
//! A long idle timeout lets anyone who can reach the listener hold connections open for that long with one request
//! each. `max_connections` bounds them: past it the listener stops accepting until a connection closes, so memory
//! (about 9 KiB per idle connection, BENCHMARKS.md "Idle connections") and file descriptors stay bounded whatever the
//! timeout. The limit is split evenly over the worker threads (actix-web counts per worker).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::source::Ctx;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    keep_alive_secs: Option<u64>,
    max_connections: Option<usize>,
}

/// The public listener's connection handling (`[http]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// The most connections open at once, over all worker threads.
    pub max_connections: usize,
}

impl HttpConfig {
    /// The default idle timeout: above Traefik's (90 s), Caddy's (120 s) and the nginx snippet's (60 s).
    pub const DEFAULT_KEEP_ALIVE_SECS: u64 = 300;
    /// The longest idle timeout of the proxies' clients for the gate (Caddy's `forward_auth`: 2 minutes); a
    /// `keep_alive_secs` not above it is warned about at startup.
    pub const PROXY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    /// The longest idle timeout accepted.
    pub const MAX_KEEP_ALIVE_SECS: u64 = 3600;
    /// The default bound on open connections.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// The largest bound accepted (each connection is a file descriptor).
    pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;

    /// `max_connections` as actix-web counts it: per worker, rounded up, at least one.
    pub fn max_connections_per_worker(&self, workers: usize) -> usize {
        self.max_connections.div_ceil(workers.max(1)).max(1)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            keep_alive: Duration::from_secs(Self::DEFAULT_KEEP_ALIVE_SECS),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

pub(super) fn http_config(ctx: &Ctx<'_>, raw: RawHttp) -> Result<HttpConfig, ConfigError> {
    let mut http = HttpConfig::default();
    if let Some(secs) = raw.keep_alive_secs {
        if !(1..=HttpConfig::MAX_KEEP_ALIVE_SECS).contains(&secs) {
            return Err(ctx.invalid(
                "http.keep_alive_secs",
                format!(
                    "must be between 1 and {} (seconds; the default, {}, outlasts the proxies' own idle timeouts), \
                     not {secs}",
                    HttpConfig::MAX_KEEP_ALIVE_SECS,
                    HttpConfig::DEFAULT_KEEP_ALIVE_SECS
                ),
            ));
        }
        http.keep_alive = Duration::from_secs(secs);
    }
    if let Some(n) = raw.max_connections {
        if !(1..=HttpConfig::MAX_MAX_CONNECTIONS).contains(&n) {
            return Err(ctx.invalid(
                "http.max_connections",
                format!(
                    "must be between 1 and {} (the default is {}), not {n}",
                    HttpConfig::MAX_MAX_CONNECTIONS,
                    HttpConfig::DEFAULT_MAX_CONNECTIONS
                ),
            ));
        }
        http.max_connections = n;
    }
    Ok(http)
}
