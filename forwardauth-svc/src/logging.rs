//! Logging setup: `tracing` events to stderr, human-readable or one JSON object per line.
//!
//! The filter comes from `RUST_LOG` (e.g. `RUST_LOG=debug,actix_server=warn`); without it, [`DEFAULT_FILTER`].
//! stdout is left to the command's own output (the `serve` banner, `clients list`, hashes), so scripts can read
//! it while logs go elsewhere.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,actix_server=warn";

/// Installs the global subscriber. Calling it again (tests, embedders that installed their own) does nothing.
pub fn init(format: LogFormat) {
    let (filter, bad_rust_log) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(e.to_string())),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if installed.is_ok()
        && let Some(e) = bad_rust_log
    {
        tracing::warn!(error = %e, default = DEFAULT_FILTER, "RUST_LOG is not a valid filter; using the default");
    }
}
