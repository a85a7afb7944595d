//! Password login, regulated: bans are checked before any password is, failures are counted, and every refusal
//! is logged with the username and client address (never the password).
//!
//! # Why here
//! The counts and bans must hold for every instance sharing a store and for every way a password reaches the
//! engine, so they live beside the store rather than in a handler. The order matters for cost: a banned account
//! or address is refused with two store reads and no argon2 check, which is what keeps a password-guessing run
//! cheap to refuse after its first few guesses.
//!
//! Accounts are counted by a hash of the name as typed (names of accounts that do not exist are counted too,
//! so a ban says nothing about whether the account exists); addresses by [`ClientKey`] (an IPv6 client by its
//! /64). A successful login clears its account's count, not its address's: one user behind a shared address
//! must not reset an attacker's count there.

use std::net::IpAddr;
use std::time::Duration;

use crate::Error;
use crate::events::Event;
use crate::server::AuthServer;
use crate::store::StoreError;
use crate::throttle::{ClientKey, Limited, Throttled};
use crate::types::TokenHash;
use crate::upstream::{Credentials, Login, UpstreamError};

/// Longest username written to a log line; the rest is cut (the form allows 16 KiB).
const LOGGED_NAME_CHARS: usize = 64;

/// Why a password login did not log anyone in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong username or password. Show the form again with a generic message (401).
    #[error("invalid username or password")]
    Failed,
    /// The account or the client address is banned after too many failures: refuse (429 with `Retry-After`)
    /// whatever the password, and say when to try again.
    #[error("too many failed logins; retry after {} s", retry_after.as_secs())]
    Banned {
        /// Until the ban ends.
        retry_after: Duration,
    },
    /// Too many password checks at once; nothing was checked or counted. Answer 503 with `Retry-After`.
    #[error("too many logins at once; retry after {} s", retry_after.as_secs())]
    Busy {
        /// How long to wait.
        retry_after: Duration,
    },
    /// No local accounts are configured.
    #[error("password login is not enabled")]
    NotEnabled,
    /// The store or the identity source failed; log the cause, answer 5xx.
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Internal(Error::Store(e))
    }
}

fn account_key(username: &str) -> String {
    format!(
        "account:{}",
        TokenHash::of(format!("local\0{username}").as_bytes()).to_hex()
    )
}

fn address_key(client: IpAddr) -> String {
    format!("address:{}", ClientKey::of(client))
}

fn shown(username: &str) -> String {
    username.chars().take(LOGGED_NAME_CHARS).collect()
}

impl AuthServer {
    /// Logs a local user in with a password, under regulation ([`crate::Regulation`]). `client` is the client's
    /// address (from a trusted proxy's `X-Forwarded-For`, or the peer); `None` counts the account only.
    ///
    /// # Errors
    /// [`LoginError`].
    #[tracing::instrument(skip_all)]
    pub async fn password_login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Login, LoginError> {
        let provider = self
            .provider("local")
            .cloned()
            .ok_or(LoginError::NotEnabled)?;
        let rules = &self.config.regulation;
        let keys = [Some(account_key(username)), client.map(address_key)];
        let user = shown(username);
        let address = client.map(ClientKey::of);
        if rules.enabled
            && let Some(retry_after) = self.banned(&keys).await?
        {
            tracing::warn!(username = %user, client = ?address, "login refused: banned after too many failures");
            self.emit(Event::LoginFailed {
                provider: "local",
                username: Some(&user),
                reason: "banned",
            });
            return Err(LoginError::Banned { retry_after });
        }
        let credentials = Credentials::Password { username, password };
        match provider.authenticate(credentials).await {
            Ok(login) => {
                if let (true, Some(account)) = (rules.enabled, &keys[0]) {
                    self.store.clear_failures(account).await?;
                }
                self.emit(Event::LoginSucceeded {
                    provider: "local",
                    subject: &login.identity.subject,
                    username: login.identity.username.as_deref(),
                });
                Ok(login)
            }
            Err(UpstreamError::LoginFailed) => {
                tracing::warn!(username = %user, client = ?address, "login failed: wrong username or password");
                self.emit(Event::LoginFailed {
                    provider: "local",
                    username: Some(&user),
                    reason: "wrong_credentials",
                });
                if rules.enabled {
                    self.count_failure(&keys, &user, address).await?;
                }
                Err(LoginError::Failed)
            }
            Err(UpstreamError::Busy { retry_after }) => {
                tracing::warn!(username = %user, client = ?address, "login refused: too many password checks at once");
                self.emit(Event::LoginFailed {
                    provider: "local",
                    username: Some(&user),
                    reason: "busy",
                });
                Err(LoginError::Busy { retry_after })
            }
            Err(e) => Err(LoginError::Internal(Error::Upstream(e))),
        }
    }

    /// How long the longest ban among `keys` still runs, if any does.
    async fn banned(&self, keys: &[Option<String>; 2]) -> Result<Option<Duration>, StoreError> {
        let now = self.clock.unix();
        let mut longest = None;
        for key in keys.iter().flatten() {
            if let Some(until) = self.store.ban(key).await?
                && until > now
            {
                longest = longest.max(Some(Duration::from_secs(until - now)));
            }
        }
        Ok(longest)
    }

    async fn count_failure(
        &self,
        keys: &[Option<String>; 2],
        user: &str,
        address: Option<ClientKey>,
    ) -> Result<(), StoreError> {
        let rules = &self.config.regulation;
        let limits = [
            rules.max_failures_per_account,
            rules.max_failures_per_address,
        ];
        for (key, limit) in keys.iter().zip(limits) {
            let Some(key) = key else { continue };
            let failures = self.store.count_failure(key, rules.window).await?;
            if failures >= limit {
                let until = self.clock.unix().saturating_add(rules.ban.as_secs());
                self.store.put_ban(key, until, rules.ban).await?;
                let what = if key.starts_with("account:") {
                    "account"
                } else {
                    "address"
                };
                tracing::warn!(username = %user, client = ?address, failures, banned = what, ban_secs = rules.ban.as_secs(), "login banned after too many failures");
                self.emit(Event::LoginBanned {
                    username: user,
                    banned: what,
                    failures,
                    ban_secs: rules.ban.as_secs(),
                });
            }
        }
        Ok(())
    }

    /// Counts one request of `client` to a rate-limited endpoint ([`crate::RateLimits`]).
    ///
    /// # Errors
    /// [`Throttled`] when the client is over the endpoint's rate: answer 429 with `Retry-After`.
    pub fn throttle(&self, what: Limited, client: IpAddr) -> Result<(), Throttled> {
        let verdict = self.throttle.check(what, client);
        if verdict.is_err() {
            tracing::info!(client = %ClientKey::of(client), endpoint = ?what, "rate limited");
            self.emit(Event::Throttled {
                endpoint: what.name(),
            });
        }
        verdict
    }

    /// Charges `client` the extra cost of a failed client authentication at `what`.
    pub fn penalize(&self, what: Limited, client: IpAddr) {
        self.throttle.penalize(what, client);
    }

    /// Drops rate-limit entries that carry no information any more (call it periodically).
    pub fn tidy_rate_limits(&self) {
        self.throttle.tidy();
    }

    /// How many client addresses the rate limiters track now (all endpoints together).
    pub fn rate_limited_addresses(&self) -> usize {
        self.throttle.tracked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_names_are_cut_at_64_characters() {
        assert_eq!(shown("alice"), "alice");
        let long = "é".repeat(100);
        assert_eq!(shown(&long), "é".repeat(64));
    }

    #[test]
    fn keys_name_their_kind_and_never_the_raw_name() {
        let k = account_key("alice");
        assert!(k.starts_with("account:") && !k.contains("alice"), "{k}");
        assert_ne!(k, account_key("Alice"), "names are counted as typed");
        assert_eq!(
            address_key("2001:db8::7".parse().unwrap()),
            "address:2001:db8::/64"
        );
    }
}
