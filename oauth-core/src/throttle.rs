//! Rate limits per client address on the anonymous endpoints.
//!
//! # Why
//! `/authorize`, the login form, the upstream callback, `/token` and `/register` answer anyone. Each request
//! costs a store write or more (a session, a pending authorization, a client) and the login form an argon2
//! check, so each endpoint has a rate per client address that an operator can set, answered with 429 and
//! `Retry-After` in the endpoint's own error format. Failed client authentication at `/token` costs
//! [`RateLimits::failure_cost`] requests, so guessing client secrets runs out of budget long before ordinary
//! use does.
//!
//! The limiters are GCRA ([`governor`]) on the engine's [`Clock`], one per endpoint, keyed by
//! [`ClientKey`]: the IPv4 address, or the /64 network of an IPv6 address (one host usually holds a whole /64,
//! so per-address keys would give it four billion billion budgets).
//!
//! # Bounded memory
//! A limiter keeps one entry (about 40 bytes) per key it has seen recently. When a table reaches
//! [`RateLimits::max_addresses`], entries indistinguishable from fresh ones are dropped; if it is still full,
//! every further new address shares one overflow budget until the table drains. So the tables never hold more
//! than `max_addresses` entries each, however many addresses an attacker has, at the price of sharing a budget
//! during such a flood.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use governor::clock::Clock as _;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::clock::Clock;

/// An endpoint with a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limited {
    /// `GET /authorize` (each starts a pending authorization and a session).
    Authorize,
    /// The login form's `POST` (each may cost a password check).
    Login,
    /// The upstream identity provider's callback.
    Callback,
    /// `POST /token` (and the other client-authenticated endpoints: revocation, introspection).
    Token,
    /// `POST /register` (each may store a client).
    Register,
}

impl Limited {
    /// Every limited endpoint.
    pub const ALL: [Limited; 5] = [
        Limited::Authorize,
        Limited::Login,
        Limited::Callback,
        Limited::Token,
        Limited::Register,
    ];

    /// The endpoint's name in events and metrics: `authorize`, `login`, `callback`, `token`, `register`.
    pub fn name(self) -> &'static str {
        match self {
            Limited::Authorize => "authorize",
            Limited::Login => "login",
            Limited::Callback => "callback",
            Limited::Token => "token",
            Limited::Register => "register",
        }
    }

    fn index(self) -> usize {
        match self {
            Limited::Authorize => 0,
            Limited::Login => 1,
            Limited::Callback => 2,
            Limited::Token => 3,
            Limited::Register => 4,
        }
    }
}

/// Requests per minute per client address, for each limited endpoint; 0 turns a limit off. Each allows a burst
/// of its whole minute's budget.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// `GET /authorize`. Default 60.
    pub authorize_per_minute: u32,
    /// Login form posts. Default 30.
    pub login_per_minute: u32,
    /// Upstream callbacks. Default 30.
    pub callback_per_minute: u32,
    /// `/token`, `/revoke`, `/introspect`. Default 300.
    pub token_per_minute: u32,
    /// `POST /register`. Default 10.
    pub register_per_minute: u32,
    /// How many requests a failed client authentication costs on top of its own. Default 10.
    pub failure_cost: u32,
    /// Most addresses each limiter tracks (about 40 bytes each). Default 65,536.
    pub max_addresses: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            authorize_per_minute: 60,
            login_per_minute: 30,
            callback_per_minute: 30,
            token_per_minute: 300,
            register_per_minute: 10,
            failure_cost: 10,
            max_addresses: 65_536,
        }
    }
}

impl RateLimits {
    /// Every limit off.
    pub fn off() -> Self {
        RateLimits {
            authorize_per_minute: 0,
            login_per_minute: 0,
            callback_per_minute: 0,
            token_per_minute: 0,
            register_per_minute: 0,
            ..RateLimits::default()
        }
    }

    /// The per-minute budget of `what`.
    pub fn per_minute(&self, what: Limited) -> u32 {
        *self.budget(what)
    }

    /// Sets the per-minute budget of `what`; 0 turns its limit off.
    pub fn set_per_minute(&mut self, what: Limited, per_minute: u32) {
        *self.budget_mut(what) = per_minute;
    }

    fn budget(&self, what: Limited) -> &u32 {
        match what {
            Limited::Authorize => &self.authorize_per_minute,
            Limited::Login => &self.login_per_minute,
            Limited::Callback => &self.callback_per_minute,
            Limited::Token => &self.token_per_minute,
            Limited::Register => &self.register_per_minute,
        }
    }

    fn budget_mut(&mut self, what: Limited) -> &mut u32 {
        match what {
            Limited::Authorize => &mut self.authorize_per_minute,
            Limited::Login => &mut self.login_per_minute,
            Limited::Callback => &mut self.callback_per_minute,
            Limited::Token => &mut self.token_per_minute,
            Limited::Register => &mut self.register_per_minute,
        }
    }
}

/// The request was over its endpoint's rate: answer 429 with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry after {} s", self.retry_after_secs())]
pub struct Throttled {
    /// When the next request would be allowed.
    pub retry_after: Duration,
}

impl Throttled {
    /// `retry_after` in whole seconds, rounded up (at least 1), for the `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        whole_seconds(self.retry_after)
    }
}

/// A wait in whole seconds, rounded up and at least 1, as `Retry-After` needs it (`0` would invite an
/// immediate retry).
pub fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    if wait.subsec_nanos() > 0 || secs == 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

/// The key a client is counted under: its IPv4 address, or the /64 of its IPv6 address (an IPv4-mapped IPv6
/// address counts as the IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let net = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(net)))
                }
            },
        }
    }

    /// The address (for an IPv6 client, its /64 network address).
    pub fn addr(&self) -> IpAddr {
        self.0
    }

    /// The key every new address shares while a table is full.
    const OVERFLOW: ClientKey = ClientKey(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) if self.0 != ClientKey::OVERFLOW.0 => write!(f, "{v6}/64"),
            other => write!(f, "{other}"),
        }
    }
}

/// The engine's clock as a governor clock: nanoseconds since the epoch.
#[derive(Clone)]
struct EngineClock(Arc<dyn Clock>);

impl governor::clock::Clock for EngineClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let since = self.0.now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Nanos::new(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

type Limiter = RateLimiter<
    ClientKey,
    DashMapStateStore<ClientKey>,
    EngineClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

/// The per-address limiters of one engine.
pub(crate) struct Throttle {
    limiters: [Option<Limiter>; 5],
    clock: EngineClock,
    failure_cost: Option<NonZeroU32>,
    max_addresses: usize,
}

impl Throttle {
    pub(crate) fn new(limits: &RateLimits, clock: Arc<dyn Clock>) -> Self {
        let clock = EngineClock(clock);
        let limiters = Limited::ALL.map(|what| {
            NonZeroU32::new(limits.per_minute(what))
                .map(|n| RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock.clone()))
        });
        Throttle {
            limiters,
            clock,
            failure_cost: NonZeroU32::new(limits.failure_cost),
            max_addresses: limits.max_addresses.max(1),
        }
    }

    fn limiter(&self, what: Limited) -> Option<&Limiter> {
        self.limiters.get(what.index()).and_then(Option::as_ref)
    }

    /// The key to count `client` under: its own, or the shared overflow key while the table is full.
    fn key_in(&self, limiter: &Limiter, client: IpAddr) -> ClientKey {
        if limiter.len() >= self.max_addresses {
            limiter.retain_recent();
            if limiter.len() >= self.max_addresses {
                return ClientKey::OVERFLOW;
            }
        }
        ClientKey::of(client)
    }

    /// Counts one request of `client` to `what`.
    pub(crate) fn check(&self, what: Limited, client: IpAddr) -> Result<(), Throttled> {
        let Some(limiter) = self.limiter(what) else {
            return Ok(());
        };
        let key = self.key_in(limiter, client);
        limiter.check_key(&key).map_err(|not_until| Throttled {
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// Charges `client` the extra cost of a failed client authentication at `what` (as much as is left of the
    /// budget, if less).
    pub(crate) fn penalize(&self, what: Limited, client: IpAddr) {
        let (Some(limiter), Some(cost)) = (self.limiter(what), self.failure_cost) else {
            return;
        };
        let key = self.key_in(limiter, client);
        for _ in 0..cost.get() {
            if limiter.check_key(&key).is_err() {
                return;
            }
        }
    }

    /// Drops entries indistinguishable from fresh ones (the service calls this periodically).
    pub(crate) fn tidy(&self) {
        for limiter in self.limiters.iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many addresses each limiter tracks now.
    pub(crate) fn tracked(&self) -> usize {
        self.limiters.iter().flatten().map(RateLimiter::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        let secs = |ms| {
            Throttled {
                retry_after: Duration::from_millis(ms),
            }
            .retry_after_secs()
        };
        assert_eq!(
            secs(0),
            1,
            "`Retry-After: 0` would invite an immediate retry"
        );
        assert_eq!(secs(1), 1);
        assert_eq!(secs(999), 1);
        assert_eq!(secs(1000), 1);
        assert_eq!(secs(1001), 2);
        assert_eq!(secs(2500), 3);
        assert_eq!(secs(10_000), 10);
    }

    #[test]
    fn keys_print_as_the_address_or_the_64_and_the_overflow_key_as_itself() {
        assert_eq!(
            ClientKey::of("192.0.2.1".parse().unwrap()).to_string(),
            "192.0.2.1"
        );
        assert_eq!(
            ClientKey::of("2001:db8::1".parse().unwrap()).to_string(),
            "2001:db8::/64"
        );
        assert_eq!(ClientKey::OVERFLOW.to_string(), "::");
    }
}
