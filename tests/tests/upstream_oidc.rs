//! Upstream login through a real OpenID Provider: the npm package `oidc-provider` (installed from
//! `tests/oidc-provider/package-lock.json` by `.ci/run`), started on a free loopback port and stopped by PID.
//! forwardauth-svc runs in process (so the test can reach its store), with the provider as its only way to log
//! in; a cookie-jar HTTP client plays the browser through both sites' real pages.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use forwardauth_svc::config::{Config, ProviderConfig, StoreConfig};
use oauth_core::upstream::{OidcConfig, RefreshTokenRequest};
use oauth_core::{AccessPolicy, AuthServer, Clock, EmbeddedStore, ResourceConfig, Secret, Store};
use serde_json::{Value, json};
use test_support::{OidcProvider, VERIFIER, absolute, browser, field, free_port};

const CLIENT_REDIRECT: &str = "http://127.0.0.1:53999/cb";

/// forwardauth-svc in process; stopped when dropped.
struct Service {
    base: String,
    /// The engine's store, for tests that tamper with a stored record.
    store: Arc<dyn Store>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

const RESOURCE_PATH: &str = "/mcp";

async fn start_service(
    issuer_of: impl FnOnce(&str) -> String,
    policy: AccessPolicy,
) -> (Service, OidcProvider) {
    start_service_with(issuer_of, policy, Setup::default()).await
}

/// What a test changes in the provider and the service beyond the policy.
#[derive(Default)]
struct Setup {
    /// The provider's access-token lifetime in seconds (default one hour).
    upstream_access_token_ttl: Option<u64>,
    /// How the service asks the provider for a refresh token (default: `auto`, which gets one here).
    refresh_token_request: RefreshTokenRequest,
    /// The service's `max_unverified_age` (default 24 hours).
    max_unverified_age: Option<Duration>,
}

async fn start_service_with(
    issuer_of: impl FnOnce(&str) -> String,
    policy: AccessPolicy,
    setup: Setup,
) -> (Service, OidcProvider) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream =
        OidcProvider::start(&format!("{base}/callback"), setup.upstream_access_token_ttl).await;
    let mut config = Config::defaults(listener.local_addr().unwrap());
    config.store = StoreConfig::Memory;
    config.server = oauth_core::ServerConfig::new(
        base.clone(),
        vec![
            ResourceConfig::new(format!("{base}{RESOURCE_PATH}"), vec!["mcp".into()])
                .with_policy(policy),
        ],
    );
    if let Some(age) = setup.max_unverified_age {
        config.server.max_unverified_age = age;
    }
    let mut oidc = OidcConfig::new(
        "corp",
        issuer_of(&upstream.issuer),
        "forwardauth",
        Some("forwardauth-secret".into()),
    );
    oidc.display_name = "Corp SSO".into();
    oidc.scopes = vec![
        "openid".into(),
        "email".into(),
        "profile".into(),
        "groups".into(),
    ];
    oidc.timeout = Duration::from_secs(3);
    oidc.refresh_token_request = setup.refresh_token_request;
    config.providers = vec![ProviderConfig::Oidc(oidc)];
    // The engine over a store this test holds too (the service itself never sees the store).
    let clock: Arc<dyn Clock> = Arc::new(oauth_core::SystemClock);
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let providers = forwardauth_svc::state::build_providers(&config, clock.clone()).unwrap();
    let auth = AuthServer::new(
        config.server.clone(),
        store.clone(),
        oauth_core::testing::sealer(),
        clock,
    )
    .await
    .unwrap()
    .with_providers(providers);
    let state = forwardauth_svc::AppState::with_auth(&config, Arc::new(auth)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(forwardauth_svc::serve(state, listener, async move {
        let _ = stopped.await;
    }));
    (
        Service {
            base,
            store,
            _stop: stop,
        },
        upstream,
    )
}

async fn register(http: &reqwest::Client, base: &str) -> String {
    let r: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"], "client_name": "e2e client"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["client_id"].as_str().unwrap().to_owned()
}

fn authorize_url(base: &str, client_id: &str) -> String {
    test_support::authorize_url(
        &format!("{base}/authorize"),
        client_id,
        CLIENT_REDIRECT,
        "client-state",
        None,
        &format!("{base}{RESOURCE_PATH}"),
    )
    .into()
}

/// Where a walk through the pages ended.
#[derive(Debug)]
enum End {
    /// Redirected back to the MCP client.
    Client(HashMap<String, String>),
    /// One of our pages (consent or error).
    Page(u16, String),
}

/// What the user does at the upstream.
#[derive(Clone, Copy)]
enum AtUpstream<'a> {
    LogIn(&'a str),
    Cancel,
}

/// Follows redirects from `url`, logging in (or cancelling) at the upstream's interaction pages, until the
/// browser lands back at the client or on one of our pages. `stop_at_callback` returns the callback URL unvisited.
async fn walk(
    http: &reqwest::Client,
    mut url: String,
    base: &str,
    user: AtUpstream<'_>,
    stop_at_callback: bool,
) -> Result<End, String> {
    let mut body: Option<Vec<(&str, String)>> = None;
    for _ in 0..20 {
        if url.starts_with(CLIENT_REDIRECT) {
            let q = url::Url::parse(&url)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
            return Ok(End::Client(q));
        }
        if stop_at_callback && url.starts_with(&format!("{base}/callback")) {
            return Err(url);
        }
        let res = match body.take() {
            Some(form) => http.post(&url).form(&form).send().await.unwrap(),
            None => http.get(&url).send().await.unwrap(),
        };
        let status = res.status().as_u16();
        if (300..400).contains(&status) {
            url = absolute(&url, res.headers()["location"].to_str().unwrap());
            continue;
        }
        let text = res.text().await.unwrap();
        if status == 200
            && url.starts_with(base)
            && text.contains("name=\"provider\"")
            && text.contains("name=\"decision\" value=\"approve\"")
        {
            // Our consent page before sign-in: the user approves, and only then goes to the provider.
            body = Some(vec![
                ("handle", field(&text, "handle")),
                ("csrf", field(&text, "csrf")),
                ("provider", field(&text, "provider")),
                ("decision", "approve".into()),
            ]);
            url = format!("{base}/consent");
            continue;
        }
        if url.contains("/interaction/") && status == 200 {
            match (user, text.contains("name=\"prompt\" value=\"login\"")) {
                (AtUpstream::Cancel, _) => url = format!("{url}/abort"),
                (AtUpstream::LogIn(name), true) => {
                    body = Some(vec![
                        ("prompt", "login".into()),
                        ("login", name.into()),
                        ("password", "any".into()),
                    ]);
                }
                (AtUpstream::LogIn(_), false) => body = Some(vec![("prompt", "consent".into())]),
            }
            continue;
        }
        return Ok(End::Page(status, text.replace("&#x2f;", "/")));
    }
    panic!("too many redirects");
}

/// Opens the authorization: our consent page comes first (before any upstream redirect); approving it sends
/// the browser to the upstream. The page, and the URL at the upstream.
async fn to_upstream(http: &reqwest::Client, base: &str, client_id: &str) -> (String, String) {
    let page = http
        .get(authorize_url(base, client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "our consent page first");
    let page = page.text().await.unwrap();
    let res = http
        .post(format!("{base}/consent"))
        .form(&[
            ("handle", field(&page, "handle")),
            ("csrf", field(&page, "csrf")),
            ("provider", field(&page, "provider")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    (page, location)
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

async fn exchange(http: &reqwest::Client, base: &str, client_id: &str, code: &str) -> Value {
    http.post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CLIENT_REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_the_upstream_puts_its_claims_in_our_token() {
    let (svc, _up) = start_service(|i| i.to_owned(), AccessPolicy::default()).await;
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    let (consent, upstream) = to_upstream(&http, &svc.base, &client_id).await;
    assert!(
        consent.contains("calling itself <strong>“e2e client”</strong>"),
        "{consent}"
    );
    assert!(
        consent.contains("you sign in with <strong>Corp SSO</strong>"),
        "{consent}"
    );
    // Approved before leaving, and granted all of it: back at the client without a second page.
    let End::Client(back) = walk(
        &http,
        upstream,
        &svc.base,
        AtUpstream::LogIn("alice"),
        false,
    )
    .await
    .unwrap() else {
        panic!("expected the redirect back to the client")
    };
    assert_eq!(
        (back["state"].as_str(), back["iss"].as_str()),
        ("client-state", svc.base.as_str()),
        "our iss, never the upstream's"
    );
    let tokens = exchange(&http, &svc.base, &client_id, &back["code"]).await;
    let c = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "corp:alice", "subject namespaced by provider");
    assert_eq!(c["email"], "alice@example.com");
    assert_eq!(c["groups"], json!(["staff"]));
    assert_eq!(c["preferred_username"], "alice");
    assert_eq!(c["iss"], svc.base.as_str());
    let raw = serde_json::to_string(&tokens).unwrap();
    assert!(!raw.contains("forwardauth-secret"));
    // The refresh re-checks alice at the upstream (userinfo with the upstream token we hold).
    let refreshed: Value = http
        .post(format!("{}/token", svc.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims(refreshed["access_token"].as_str().unwrap())["email"],
        "alice@example.com",
        "{refreshed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_email_domain_policies_refuse_with_a_403_page_and_no_code() {
    let groups = AccessPolicy::new(vec![], vec![], vec![], vec!["corp:admins".into()]);
    let (svc, _up) = start_service(|i| i.to_owned(), groups).await;
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    let end = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("alice"),
        false,
    )
    .await
    .unwrap();
    let End::Page(403, page) = end else {
        panic!("expected a 403 page, got {end:?}")
    };
    assert!(page.contains("alice may not use"), "{page}");

    let domains = AccessPolicy::new(vec![], vec![], vec!["corp:example.com".into()], vec![]);
    let (svc, _up) = start_service(|i| i.to_owned(), domains).await;
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    let end = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("bob"),
        false,
    )
    .await
    .unwrap();
    assert!(
        matches!(end, End::Page(403, _)),
        "bob@other.org refused: {end:?}"
    );
    // carol's address is at example.com but unverified upstream: it does not count.
    let http = browser();
    let end = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("carol"),
        false,
    )
    .await
    .unwrap();
    assert!(
        matches!(end, End::Page(403, _)),
        "an unverified e-mail does not satisfy the policy: {end:?}"
    );
    // alice passes.
    let http = browser();
    let end = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("alice"),
        false,
    )
    .await
    .unwrap();
    assert!(
        matches!(&end, End::Client(q) if q.contains_key("code")),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_upstream_sends_access_denied_to_the_client() {
    let (svc, _up) = start_service(|i| i.to_owned(), AccessPolicy::default()).await;
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    let end = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::Cancel,
        false,
    )
    .await
    .unwrap();
    let End::Client(q) = end else {
        panic!("expected a redirect to the client, got {end:?}")
    };
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("access_denied", "client-state", svc.base.as_str())
    );
    assert!(!q.contains_key("code"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_cross_browser_states_are_refused() {
    let (svc, _up) = start_service(|i| i.to_owned(), AccessPolicy::default()).await;
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    let forged = http
        .get(format!("{}/callback?code=abc&state=forged", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("unknown, expired, already used, or was opened in another browser")
    );

    let callback = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("alice"),
        true,
    )
    .await
    .unwrap_err();
    // Another browser (no session cookie) presenting the callback is refused, and spends the state.
    let other = browser().get(&callback).send().await.unwrap();
    assert_eq!(other.status(), 400);
    let replay = http.get(&callback).send().await.unwrap();
    assert_eq!(
        replay.status(),
        400,
        "single use: spent by the first presentation"
    );

    let callback = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("alice"),
        true,
    )
    .await
    .unwrap_err();
    let first = http.get(&callback).send().await.unwrap();
    assert_eq!(
        first.status(),
        302,
        "first use: approved before, back to the client"
    );
    assert!(
        first.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(CLIENT_REDIRECT)
    );
    assert_eq!(
        http.get(&callback).send().await.unwrap().status(),
        400,
        "replayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_with_the_wrong_nonce_is_refused() {
    let (svc, _up) = start_service(|i| i.to_owned(), AccessPolicy::default()).await;
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    // Leave for the upstream, then change the nonce we expect (as if the ID token were for another login).
    let (_, to_upstream) = to_upstream(&http, &svc.base, &client_id).await;
    let state = url::Url::parse(&to_upstream)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let key = Secret::new(state.as_str()).hash();
    let mut pending = svc.store.take_pending(&key).await.unwrap().unwrap();
    pending.upstream.as_mut().unwrap().nonce = "not-the-nonce-that-was-sent".into();
    svc.store
        .put_pending(&key, &pending, Duration::from_secs(600))
        .await
        .unwrap();
    let end = walk(
        &http,
        to_upstream,
        &svc.base,
        AtUpstream::LogIn("alice"),
        false,
    )
    .await
    .unwrap();
    let End::Client(q) = end else {
        panic!("expected a redirect to the client, got {end:?}")
    };
    assert_eq!(q["error"], "access_denied");
    assert_eq!(
        q["error_description"],
        "the identity provider's answer could not be verified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_temporarily_unavailable_quickly() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (svc, _up) = start_service(move |_| closed, AccessPolicy::default()).await;
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    let started = Instant::now();
    let end = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("alice"),
        false,
    )
    .await
    .unwrap();
    let End::Client(q) = end else {
        panic!("expected a redirect to the client, got {end:?}")
    };
    assert_eq!(q["error"], "temporarily_unavailable");
    assert_eq!(q["state"], "client-state");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "never a hang: bounded by the upstream timeout"
    );
}

// Re-checks at refresh: a user removed from a group at the provider loses access at the next refresh, whether the
// service holds an upstream refresh token or not, and an identity the provider can no longer be asked about lasts
// only `max_unverified_age`.

/// The policy's name for the group `group` of the `corp` provider.
fn policy_group(group: &str) -> String {
    format!("corp:{group}")
}

/// Only members of `staff` at the provider may use the resource.
fn staff_only() -> AccessPolicy {
    AccessPolicy::new(vec![], vec![], vec![], vec![policy_group("staff")])
}

/// A new client, and `user` logged in through the provider: the tokens of the code exchange.
async fn logged_in(svc: &Service, user: &str) -> (String, Value) {
    let http = browser();
    let client_id = register(&http, &svc.base).await;
    let end = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn(user),
        false,
    )
    .await
    .unwrap();
    // Approved before leaving for the provider (`walk` approves our consent page), and granted all of it.
    let End::Client(back) = end else {
        panic!("expected the redirect back to the client, got {end:?}")
    };
    let tokens = exchange(&http, &svc.base, &client_id, &back["code"]).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    (client_id, tokens)
}

/// A refresh with the refresh token of `tokens`: the status and the body.
async fn refresh(svc: &Service, client_id: &str, tokens: &Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/token", svc.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// `/verify`'s status for a request to the resource with the access token of `tokens`.
async fn verify_status(svc: &Service, tokens: &Value) -> u16 {
    test_support::verify(
        &reqwest::Client::new(),
        &svc.base,
        &format!("{}{RESOURCE_PATH}", svc.base),
        tokens["access_token"].as_str(),
    )
    .await
    .status()
    .as_u16()
}

/// The grant the tokens belong to, as stored.
async fn grant_of(svc: &Service, tokens: &Value) -> oauth_core::store::GrantRecord {
    let grant_id = tokens["refresh_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    svc.store.grant(grant_id).await.unwrap().unwrap()
}

/// The upstream session the grant of `tokens` holds, opened with the service's key-encryption key.
async fn upstream_of(svc: &Service, tokens: &Value) -> oauth_core::UpstreamSession {
    let grant = grant_of(svc, tokens).await;
    oauth_core::testing::sealer()
        .open(grant.upstream.as_ref().unwrap(), &grant.identity.subject)
        .unwrap()
}

fn refused(description: &str) -> (u16, Value) {
    (
        400,
        json!({"error": "invalid_grant", "error_description": description}),
    )
}

const NOT_ADMITTED: &str = "this user may no longer use this resource; sign in again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_from_the_group_upstream_loses_access_at_the_next_refresh_through_the_upstream_refresh_token()
 {
    let setup = Setup {
        upstream_access_token_ttl: Some(2),
        ..Setup::default()
    };
    let (svc, up) = start_service_with(|i| i.to_owned(), staff_only(), setup).await;
    let (client_id, t0) = logged_in(&svc, "alice").await;
    assert_eq!(verify_status(&svc, &t0).await, 200);
    let held = upstream_of(&svc, &t0).await;
    assert!(
        held.refresh_token.is_some(),
        "offline_access (with prompt=consent) brought an upstream refresh token"
    );
    // The upstream access token expires: the re-check goes through the upstream refresh token.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, t1) = refresh(&svc, &client_id, &t0).await;
    assert_eq!(status, 200, "{t1}");
    assert_eq!(
        claims(t1["access_token"].as_str().unwrap())["groups"],
        json!(["staff"])
    );
    let renewed = upstream_of(&svc, &t1).await;
    assert!(
        renewed.expires_at > held.expires_at,
        "a new upstream access token: {:?} after {:?}",
        renewed.expires_at,
        held.expires_at
    );
    up.set_groups("alice", json!(["guests"])).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(refresh(&svc, &client_id, &t1).await, refused(NOT_ADMITTED));
    assert_eq!(
        verify_status(&svc, &t1).await,
        401,
        "the grant ended, its access tokens with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_from_every_group_upstream_loses_access_at_the_next_refresh_through_userinfo() {
    let setup = Setup {
        refresh_token_request: RefreshTokenRequest::Off,
        ..Setup::default()
    };
    let (svc, up) = start_service_with(|i| i.to_owned(), staff_only(), setup).await;
    let (client_id, t0) = logged_in(&svc, "alice").await;
    assert_eq!(verify_status(&svc, &t0).await, 200);
    assert_eq!(
        upstream_of(&svc, &t0).await.refresh_token,
        None,
        "no offline_access asked for, no upstream refresh token"
    );
    let (status, t1) = refresh(&svc, &client_id, &t0).await;
    assert_eq!(status, 200, "{t1}");
    // The provider now answers without a groups claim: no groups, not the ones alice had.
    up.set_groups("alice", Value::Null).await;
    assert_eq!(refresh(&svc, &client_id, &t1).await, refused(NOT_ADMITTED));
    assert_eq!(verify_status(&svc, &t1).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_upstream_refresh_token_an_expired_upstream_session_ends_the_grant_at_max_unverified_age()
 {
    let setup = Setup {
        upstream_access_token_ttl: Some(2),
        refresh_token_request: RefreshTokenRequest::Off,
        max_unverified_age: Some(Duration::from_secs(5)),
    };
    let (svc, up) = start_service_with(|i| i.to_owned(), staff_only(), setup).await;
    let (client_a, a0) = logged_in(&svc, "alice").await;
    let (client_b, b0) = logged_in(&svc, "alice").await;
    let vouched = upstream_of(&svc, &a0).await.verified_at.unwrap();
    up.set_groups("alice", json!(["guests"])).await;
    // The upstream access token has expired and there is no refresh token: the provider cannot be asked, so
    // alice's identity from the login stands (the change at the provider goes unseen), but only until
    // max_unverified_age after the login, and the grant's expiry stops there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, a1) = refresh(&svc, &client_a, &a0).await;
    assert_eq!(status, 200, "{a1}");
    assert_eq!(
        claims(a1["access_token"].as_str().unwrap())["groups"],
        json!(["staff"])
    );
    assert_eq!(grant_of(&svc, &a1).await.expires_at, vouched + 5);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        refresh(&svc, &client_a, &a1).await,
        refused("the refresh token is invalid, expired or revoked"),
        "the grant lapsed at max_unverified_age"
    );
    // A grant first refreshed after the age has passed (its expiry not yet capped) ends at that refresh.
    assert_eq!(
        refresh(&svc, &client_b, &b0).await,
        refused("the identity provider could not confirm this user recently enough; sign in again")
    );
    assert_eq!(verify_status(&svc, &b0).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_unreachable_at_refresh_refuses_that_refresh_and_keeps_the_grant() {
    let (svc, up) = start_service_with(|i| i.to_owned(), staff_only(), Setup::default()).await;
    let (client_id, t0) = logged_in(&svc, "alice").await;
    drop(up);
    let (status, body) = refresh(&svc, &client_id, &t0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    assert!(
        grant_of(&svc, &t0).await.refresh.is_some(),
        "the grant is kept for a later try"
    );
    assert_eq!(verify_status(&svc, &t0).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_token_is_asked_for_as_configured() {
    for (mode, scope, extra) in [
        (
            RefreshTokenRequest::Auto,
            "openid email profile groups offline_access",
            vec![("prompt", "consent")],
        ),
        (
            RefreshTokenRequest::OfflineAccess,
            "openid email profile groups offline_access",
            vec![("prompt", "consent")],
        ),
        (
            RefreshTokenRequest::AccessTypeOffline,
            "openid email profile groups",
            vec![("access_type", "offline"), ("prompt", "consent")],
        ),
        (
            RefreshTokenRequest::Off,
            "openid email profile groups",
            vec![],
        ),
    ] {
        let setup = Setup {
            refresh_token_request: mode,
            ..Setup::default()
        };
        let (svc, _up) = start_service_with(|i| i.to_owned(), AccessPolicy::default(), setup).await;
        let http = browser();
        let client_id = register(&http, &svc.base).await;
        let (_, to_upstream) = to_upstream(&http, &svc.base, &client_id).await;
        let to_upstream = url::Url::parse(&to_upstream).unwrap();
        let q: HashMap<String, String> = to_upstream.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], scope, "{mode:?}");
        for (name, value) in &extra {
            assert_eq!(q.get(*name).map(String::as_str), Some(*value), "{mode:?}");
        }
        for name in ["prompt", "access_type"] {
            if !extra.iter().any(|(n, _)| *n == name) {
                assert!(!q.contains_key(name), "{mode:?} sends no {name}");
            }
        }
    }
}
