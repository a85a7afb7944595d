//! `[login]` and `[rate_limits]`: what an anonymous caller may cost (password checks, failed logins, requests
//! per minute). Every key is optional; the defaults are the engine's.
//!
//! ```toml
//! [login]                             # password logins; the values shown are the defaults
//! password_checks = 2                 # argon2 checks at once; default: the number of cores
//! password_check_queue = 16           # checks waiting for a turn; default 8 per core; beyond: 503 + Retry-After
//! regulation = true                   # count failed logins and ban past the limits
//! max_failures_per_account = 5        # failures of one username within the window that ban it
//! max_failures_per_address = 20       # failures from one client address (IPv6: its /64) that ban it
//! failure_window_secs = 600           # failures are counted for this long from the first one
//! ban_secs = 900                      # how long a ban lasts; the right password is refused meanwhile
//!
//! [rate_limits]                       # requests per minute per client address; 0 = no limit
//! authorize = 60                      # GET /authorize
//! login = 30                          # POST /login and /login/upstream
//! callback = 30                       # GET /callback (upstream identity providers)
//! token = 300                         # /token, /revoke, /introspect, /register/{client_id}
//! register = 10                       # POST /register
//! failure_cost = 10                   # a failed client authentication counts as this many more requests
//! max_addresses = 65536               # addresses tracked per limit (about 40 bytes each)
//! ```

use std::time::Duration;

use oauth_core::upstream::password::PasswordCheckLimits;
use oauth_core::{Limited, RateLimits, Regulation};
use serde::Deserialize;

use super::ConfigError;
use super::source::{AT_LEAST_ONE, Ctx};

/// `[login]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    password_checks: Option<usize>,
    password_check_queue: Option<usize>,
    regulation: Option<bool>,
    max_failures_per_account: Option<u64>,
    max_failures_per_address: Option<u64>,
    failure_window_secs: Option<u64>,
    ban_secs: Option<u64>,
}

/// `[rate_limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimits {
    authorize: Option<u32>,
    login: Option<u32>,
    callback: Option<u32>,
    token: Option<u32>,
    register: Option<u32>,
    failure_cost: Option<u32>,
    max_addresses: Option<usize>,
}

/// The password-check bounds and the regulation of `[login]`.
pub(super) fn login(
    ctx: &Ctx<'_>,
    raw: RawLogin,
) -> Result<(PasswordCheckLimits, Regulation), ConfigError> {
    let defaults = PasswordCheckLimits::default();
    let concurrent = ctx
        .nonzero("login.password_checks", raw.password_checks, AT_LEAST_ONE)?
        .unwrap_or(defaults.concurrent);
    let queued = raw
        .password_check_queue
        .unwrap_or_else(|| concurrent.saturating_mul(8));
    let mut regulation = Regulation::default();
    if raw.regulation == Some(false) {
        regulation.enabled = false;
    }
    let per_account = ctx.nonzero(
        "login.max_failures_per_account",
        raw.max_failures_per_account,
        AT_LEAST_ONE,
    )?;
    let per_address = ctx.nonzero(
        "login.max_failures_per_address",
        raw.max_failures_per_address,
        AT_LEAST_ONE,
    )?;
    let window = ctx.nonzero(
        "login.failure_window_secs",
        raw.failure_window_secs,
        AT_LEAST_ONE,
    )?;
    let ban = ctx.nonzero("login.ban_secs", raw.ban_secs, AT_LEAST_ONE)?;
    if let Some(n) = per_account {
        regulation.max_failures_per_account = n;
    }
    if let Some(n) = per_address {
        regulation.max_failures_per_address = n;
    }
    if let Some(s) = window {
        regulation.window = Duration::from_secs(s);
    }
    if let Some(s) = ban {
        regulation.ban = Duration::from_secs(s);
    }
    Ok((PasswordCheckLimits::new(concurrent, queued), regulation))
}

/// `[rate_limits]`.
pub(super) fn rate_limits(ctx: &Ctx<'_>, raw: RawRateLimits) -> Result<RateLimits, ConfigError> {
    let mut limits = RateLimits::default();
    let per_minute = [
        (Limited::Authorize, raw.authorize),
        (Limited::Login, raw.login),
        (Limited::Callback, raw.callback),
        (Limited::Token, raw.token),
        (Limited::Register, raw.register),
    ];
    for (what, value) in per_minute {
        if let Some(v) = value {
            limits.set_per_minute(what, v);
        }
    }
    if let Some(cost) = raw.failure_cost {
        limits.failure_cost = cost;
    }
    if let Some(n) = ctx.nonzero("rate_limits.max_addresses", raw.max_addresses, AT_LEAST_ONE)? {
        limits.max_addresses = n;
    }
    Ok(limits)
}
