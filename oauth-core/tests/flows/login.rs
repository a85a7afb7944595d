//! Abuse resistance on the engine's clock: login regulation (bans per account and per address), the bound on
//! password checks, and the per-address rate limits.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use oauth_core::testing;
use oauth_core::upstream::password::{PasswordCheckLimits, PasswordChecker};
use oauth_core::upstream::{Credentials, LoginStart, UpstreamRequest};
use oauth_core::{
    Identity, IdentityProvider, Limited, LocalUser, LocalUsers, Login, LoginError, RateLimits,
    Regulation, UpstreamError, UpstreamSession,
};

use crate::common::*;

/// A password source that accepts `right` for anyone and counts how often it was asked: a banned login must not
/// reach it (that is what keeps a guessing run cheap to refuse).
#[derive(Default)]
struct Counting {
    asked: AtomicUsize,
}

#[async_trait]
impl IdentityProvider for Counting {
    fn id(&self) -> &str {
        "local"
    }
    fn display_name(&self) -> &str {
        "Local"
    }
    async fn start(&self, _: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        Ok(LoginStart::PasswordForm)
    }
    async fn authenticate(&self, c: Credentials<'_>) -> Result<Login, UpstreamError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        match c {
            Credentials::Password {
                username,
                password: "right",
            } => Ok(Login::local(Identity {
                subject: format!("local:{username}"),
                username: Some(username.to_owned()),
                ..Identity::default()
            })),
            _ => Err(UpstreamError::LoginFailed),
        }
    }
    async fn recheck(
        &self,
        _: &Identity,
        _: Option<&UpstreamSession>,
    ) -> Result<oauth_core::Recheck, UpstreamError> {
        Ok(oauth_core::Recheck::Gone)
    }
}

fn addr(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

async fn regulated(regulation: Regulation) -> (Harness, Arc<Counting>) {
    let mut config = testing::config();
    config.regulation = regulation;
    let mut h = harness_with(config).await;
    let counting = Arc::new(Counting::default());
    h.server = h
        .server
        .with_providers(vec![counting.clone() as Arc<dyn IdentityProvider>]);
    (h, counting)
}

fn banned_for(r: Result<Login, LoginError>) -> Duration {
    match r {
        Err(LoginError::Banned { retry_after }) => retry_after,
        other => panic!("expected a ban, got {other:?}"),
    }
}

#[tokio::test]
async fn an_account_is_banned_after_its_failures_and_the_right_password_is_refused_until_the_ban_ends()
 {
    let (h, counting) = regulated(Regulation::default()).await;
    let s = &h.server;
    for i in 1..=4 {
        let r = s
            .password_login("alice", "wrong", addr(&format!("198.51.100.{i}")))
            .await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
    }
    // The fifth failure (from yet another address) reaches the account's limit.
    let r = s
        .password_login("alice", "wrong", addr("198.51.100.5"))
        .await;
    assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
    let asked = counting.asked.load(Ordering::SeqCst);
    assert_eq!(asked, 5);

    let wait = banned_for(s.password_login("alice", "right", addr("192.0.2.7")).await);
    assert_eq!(wait, Duration::from_secs(900), "the whole ban is left");
    assert_eq!(
        counting.asked.load(Ordering::SeqCst),
        asked,
        "a banned login is refused before any password check"
    );
    // Another account is not affected.
    s.password_login("bob", "right", addr("192.0.2.7"))
        .await
        .unwrap();

    h.clock.advance(Duration::from_secs(600));
    let wait = banned_for(s.password_login("alice", "right", addr("192.0.2.7")).await);
    assert_eq!(
        wait,
        Duration::from_secs(300),
        "the ban runs down with the clock"
    );
    h.clock.advance(Duration::from_secs(300));
    let login = s
        .password_login("alice", "right", addr("192.0.2.7"))
        .await
        .unwrap();
    assert_eq!(
        login.identity.subject, "local:alice",
        "the ban is lifted after its time"
    );
}

#[tokio::test]
async fn an_address_is_banned_after_its_failures_whatever_the_usernames() {
    let (h, _) = regulated(Regulation::default()).await;
    let s = &h.server;
    for i in 0..20 {
        let r = s
            .password_login(&format!("user{i}"), "wrong", addr("203.0.113.9"))
            .await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
    }
    banned_for(
        s.password_login("alice", "right", addr("203.0.113.9"))
            .await,
    );
    // From elsewhere alice logs in: the ban is the address's, and alice had no failures.
    s.password_login("alice", "right", addr("203.0.113.10"))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(901));
    s.password_login("alice", "right", addr("203.0.113.9"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_ipv6_client_is_counted_by_its_64() {
    let mut rules = Regulation::default();
    rules.max_failures_per_address = 3;
    let (h, _) = regulated(rules).await;
    let s = &h.server;
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
        let _ = s
            .password_login(&format!("u{host}"), "wrong", addr(host))
            .await;
    }
    banned_for(
        s.password_login("alice", "right", addr("2001:db8:1:2::77"))
            .await,
    );
    s.password_login("alice", "right", addr("2001:db8:1:3::1"))
        .await
        .unwrap();
    // An IPv4-mapped address is the IPv4 address.
    let (h, _) = regulated(rules_with_address_limit(2)).await;
    let _ = h
        .server
        .password_login("x", "wrong", addr("::ffff:192.0.2.1"))
        .await;
    let _ = h
        .server
        .password_login("y", "wrong", addr("192.0.2.1"))
        .await;
    banned_for(
        h.server
            .password_login("alice", "right", addr("192.0.2.1"))
            .await,
    );
}

fn rules_with_address_limit(n: u64) -> Regulation {
    let mut rules = Regulation::default();
    rules.max_failures_per_address = n;
    rules
}

#[tokio::test]
async fn failures_outside_the_window_and_before_a_success_do_not_add_up() {
    let (h, _) = regulated(Regulation::default()).await;
    let s = &h.server;
    for _ in 0..4 {
        let _ = s.password_login("alice", "wrong", None).await;
    }
    h.clock.advance(Duration::from_secs(601));
    for _ in 0..4 {
        let _ = s.password_login("alice", "wrong", None).await;
    }
    s.password_login("alice", "right", None).await.unwrap();
    for _ in 0..4 {
        let _ = s.password_login("alice", "wrong", None).await;
    }
    // 4 + 4 + 4 failures, none five within one window without a success between: no ban.
    s.password_login("alice", "right", None).await.unwrap();
}

#[tokio::test]
async fn without_regulation_nothing_is_counted_or_banned() {
    let (h, counting) = regulated(Regulation::off()).await;
    for _ in 0..30 {
        let _ = h
            .server
            .password_login("alice", "wrong", addr("203.0.113.9"))
            .await;
    }
    h.server
        .password_login("alice", "right", addr("203.0.113.9"))
        .await
        .unwrap();
    assert_eq!(counting.asked.load(Ordering::SeqCst), 31);
}

#[tokio::test]
async fn bans_are_shared_through_the_store() {
    // Two engines on one store: a ban earned on one is enforced by the other. (The same on a real Redis is in
    // store_redis.rs.)
    let (a, _) = regulated(Regulation::default()).await;
    let mut b = oauth_core::AuthServer::new(
        testing::config(),
        a.store.clone(),
        oauth_core::testing::sealer(),
        a.clock.clone(),
    )
    .await
    .unwrap();
    b = b.with_providers(vec![
        Arc::new(Counting::default()) as Arc<dyn IdentityProvider>
    ]);
    for _ in 0..5 {
        let _ = a.server.password_login("alice", "wrong", None).await;
    }
    banned_for(b.password_login("alice", "right", None).await);
}

#[tokio::test]
async fn password_login_needs_local_accounts() {
    let h = harness().await;
    let r = h.server.password_login("alice", "x", None).await;
    assert!(matches!(r, Err(LoginError::NotEnabled)), "{r:?}");
}

#[tokio::test]
async fn real_local_users_log_in_through_the_engine() {
    let hash = LocalUsers::hash_password("correct horse").unwrap();
    let users = LocalUsers::new(vec![LocalUser::new("alice", hash)]).unwrap();
    let h = harness().await;
    let server = h
        .server
        .with_providers(vec![Arc::new(users) as Arc<dyn IdentityProvider>]);
    let r = server.password_login("alice", "nope", None).await;
    assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
    let r = server.password_login("mallory", "nope", None).await;
    assert!(
        matches!(r, Err(LoginError::Failed)),
        "unknown users fail the same way: {r:?}"
    );
    let login = server
        .password_login("alice", "correct horse", None)
        .await
        .unwrap();
    assert_eq!(login.identity.subject, "local:alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_beyond_the_running_and_waiting_places_are_refused_at_once() {
    let hash = slow_hash("pw");
    let checker = PasswordChecker::new(PasswordCheckLimits::new(1, 1));
    let first = tokio::spawn({
        let (c, h) = (checker.clone(), hash.clone());
        async move { c.verify(h, "pw".into()).await }
    });
    let second = tokio::spawn({
        let (c, h) = (checker.clone(), hash.clone());
        async move { c.verify(h, "nope".into()).await }
    });
    until(|| checker.in_flight() >= 2).await;
    let busy = checker.verify(hash.clone(), "pw".into()).await.unwrap_err();
    assert_eq!(busy.retry_after, Duration::from_secs(2));
    assert_eq!(first.await.unwrap(), Ok(true));
    assert_eq!(
        second.await.unwrap(),
        Ok(false),
        "the waiting check ran after its turn came"
    );
    assert_eq!(checker.in_flight(), 0, "every place is freed");
    assert_eq!(checker.verify(hash, "pw".into()).await, Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_check_keeps_its_place_until_it_leaves_the_queue_unstarted() {
    let hash = slow_hash("pw");
    let checker = PasswordChecker::new(PasswordCheckLimits::new(1, 1));
    let running = tokio::spawn({
        let (c, h) = (checker.clone(), hash.clone());
        async move { c.verify(h, "pw".into()).await }
    });
    until(|| checker.in_flight() >= 1).await;
    let abandoned = tokio::spawn({
        let (c, h) = (checker.clone(), hash.clone());
        async move { c.verify(h, "pw".into()).await }
    });
    until(|| checker.in_flight() >= 2).await;
    abandoned.abort();
    // Its caller is gone, but the job still waits in the queue behind the running check: its place is not free.
    assert!(
        checker.verify(hash.clone(), "pw".into()).await.is_err(),
        "the abandoned check still holds its place"
    );
    assert_eq!(running.await.unwrap(), Ok(true));
    // Then it is dropped without being computed, and every place is free again.
    until(|| checker.in_flight() == 0).await;
    assert_eq!(checker.verify(hash, "pw".into()).await, Ok(true));
}

#[tokio::test]
async fn a_busy_local_directory_says_busy_and_nothing_is_counted() {
    let hash = slow_hash("pw");
    let users = LocalUsers::new(vec![LocalUser::new("alice", hash)])
        .unwrap()
        .with_limits(PasswordCheckLimits::new(1, 0));
    let checker = users.checker().clone();
    let h = harness().await;
    let server = Arc::new(
        h.server
            .with_providers(vec![Arc::new(users) as Arc<dyn IdentityProvider>]),
    );
    let running = tokio::spawn({
        let s = server.clone();
        async move { s.password_login("alice", "wrong", None).await }
    });
    until(|| checker.in_flight() >= 1).await;
    let r = server.password_login("alice", "wrong", None).await;
    assert!(
        matches!(r, Err(LoginError::Busy { retry_after }) if retry_after == Duration::from_secs(2)),
        "{r:?}"
    );
    assert!(matches!(running.await.unwrap(), Err(LoginError::Failed)));
    // Only the check that ran counted: four more failures reach the limit of five, not three.
    for _ in 0..3 {
        let r = server.password_login("alice", "wrong", None).await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
    }
    server.password_login("alice", "pw", None).await.unwrap();
}

/// Waits until `done` holds, failing the test after 60 s rather than hanging it.
async fn until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "the condition never held"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// An argon2id hash that takes long to check (many passes over little memory), so that a test can see checks
/// running and waiting however loaded the machine is.
fn slow_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let params = argon2::Params::new(1024, 200, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(
            password.as_bytes(),
            &SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap(),
        )
        .unwrap()
        .to_string()
}

async fn limited(limits: RateLimits) -> Harness {
    let mut config = testing::config();
    config.rate_limits = limits;
    harness_with(config).await
}

fn only(what: Limited, per_minute: u32) -> RateLimits {
    let mut limits = RateLimits::off();
    limits.set_per_minute(what, per_minute);
    limits
}

#[tokio::test]
async fn each_endpoint_allows_its_budget_per_address_then_says_when_to_come_back() {
    for what in Limited::ALL {
        let h = limited(only(what, 6)).await;
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        for i in 0..6 {
            assert!(h.server.throttle(what, a).is_ok(), "{what:?} request {i}");
        }
        let t = h.server.throttle(what, a).unwrap_err();
        // Six a minute: one comes back every ten seconds.
        assert_eq!(t.retry_after, Duration::from_secs(10), "{what:?}");
        assert_eq!(t.retry_after_secs(), 10);
        assert!(
            h.server
                .throttle(what, "198.51.100.2".parse().unwrap())
                .is_ok(),
            "{what:?}: another address has its own budget"
        );
        // The other endpoints are not counted against this one.
        for other in [Limited::Authorize, Limited::Login, Limited::Token] {
            if other != what {
                assert!(h.server.throttle(other, a).is_ok());
            }
        }
        h.clock.advance(Duration::from_secs(10));
        assert!(
            h.server.throttle(what, a).is_ok(),
            "{what:?}: one more after ten seconds"
        );
        assert!(h.server.throttle(what, a).is_err());
    }
}

#[tokio::test]
async fn a_failed_client_authentication_costs_more() {
    let mut limits = only(Limited::Token, 30);
    limits.failure_cost = 10;
    let h = limited(limits).await;
    let a: IpAddr = "198.51.100.1".parse().unwrap();
    // Each failure: its own request plus ten.
    for _ in 0..2 {
        h.server.throttle(Limited::Token, a).unwrap();
        h.server.penalize(Limited::Token, a);
    }
    for _ in 0..8 {
        h.server.throttle(Limited::Token, a).unwrap();
    }
    assert!(
        h.server.throttle(Limited::Token, a).is_err(),
        "2×11 + 8 = 30"
    );
}

#[tokio::test]
async fn a_limit_of_zero_is_off() {
    let h = limited(RateLimits::off()).await;
    let a: IpAddr = "198.51.100.1".parse().unwrap();
    for what in Limited::ALL {
        assert_eq!(RateLimits::off().per_minute(what), 0, "{what:?}");
        for _ in 0..1000 {
            h.server.throttle(what, a).unwrap();
        }
    }
    assert_eq!(h.server.rate_limited_addresses(), 0, "nothing is tracked");
}

#[tokio::test]
async fn the_tables_stay_within_their_bound_and_new_addresses_share_one_budget_when_full() {
    let mut limits = only(Limited::Register, 2);
    limits.max_addresses = 100;
    let h = limited(limits).await;
    for i in 0..1000u32 {
        let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let _ = h.server.throttle(Limited::Register, a);
        assert!(h.server.rate_limited_addresses() <= 101, "at {i}");
    }
    assert_eq!(
        h.server.rate_limited_addresses(),
        101,
        "the table is full, plus the shared overflow entry"
    );
    // The overflow budget is spent by now.
    assert!(
        h.server
            .throttle(Limited::Register, "192.0.2.200".parse().unwrap())
            .is_err()
    );
    // Once entries carry no information (every budget full again, and one more interval), tidying empties the
    // table and budgets are personal again.
    h.clock.advance(Duration::from_secs(90));
    h.server.tidy_rate_limits();
    assert_eq!(h.server.rate_limited_addresses(), 0);
    assert!(
        h.server
            .throttle(Limited::Register, "192.0.2.200".parse().unwrap())
            .is_ok()
    );
}

#[test]
fn client_keys_group_ipv6_by_64_and_unmap_ipv4() {
    use oauth_core::ClientKey;
    let k = |s: &str| ClientKey::of(s.parse().unwrap());
    assert_eq!(k("2001:db8:a:b:1::1"), k("2001:db8:a:b:ffff::"));
    assert_ne!(k("2001:db8:a:b::1"), k("2001:db8:a:c::1"));
    assert_eq!(k("::ffff:192.0.2.1"), k("192.0.2.1"));
    assert_eq!(k("2001:db8:a:b:1::1").to_string(), "2001:db8:a:b::/64");
    assert_eq!(k("192.0.2.1").to_string(), "192.0.2.1");
}
