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
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use forwardauth_svc::config::{Config, ProviderConfig, StoreConfig};
use oauth_core::upstream::OidcConfig;
use oauth_core::{AccessPolicy, AuthServer, Clock, EmbeddedStore, ResourceConfig, Secret, Store};
use serde_json::{Value, json};
use test_support::{Running, field, free_port};
use tokio::process::Command;

const CLIENT_REDIRECT: &str = "http://127.0.0.1:53999/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";

/// The OpenID Provider, killed when dropped.
struct Upstream {
    _process: Running,
    issuer: String,
}

async fn start_upstream(redirect_uri: &str) -> Upstream {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "oidc-provider is not installed: `.ci/run` runs `npm ci --prefix tests/oidc-provider`"
    );
    let port = free_port();
    let mut node = Command::new("node");
    node.arg(dir.join("provider.js"))
        .arg(port.to_string())
        .arg(redirect_uri)
        .stderr(Stdio::null());
    Upstream {
        _process: Running::start(node, "ready").await,
        issuer: format!("http://127.0.0.1:{port}"),
    }
}

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
) -> (Service, Upstream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = start_upstream(&format!("{base}/callback")).await;
    let mut config = Config::defaults(listener.local_addr().unwrap());
    config.store = StoreConfig::Memory;
    config.server = oauth_core::ServerConfig::new(
        base.clone(),
        vec![
            ResourceConfig::new(format!("{base}{RESOURCE_PATH}"), vec!["mcp".into()])
                .with_policy(policy),
        ],
    );
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

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
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
    let mut u = url::Url::parse(&format!("{base}/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CLIENT_REDIRECT)
        .append_pair("code_challenge", &oauth_core::pkce::s256(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "client-state")
        .append_pair("resource", &format!("{base}{RESOURCE_PATH}"));
    u.into()
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

fn absolute(current: &str, location: &str) -> String {
    url::Url::parse(current)
        .unwrap()
        .join(location)
        .unwrap()
        .into()
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

async fn approve(
    http: &reqwest::Client,
    base: &str,
    consent_page: &str,
) -> HashMap<String, String> {
    let res = http
        .post(format!("{base}/consent"))
        .form(&[
            ("handle", field(consent_page, "handle")),
            ("csrf", field(consent_page, "csrf")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    url::Url::parse(res.headers()["location"].to_str().unwrap())
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
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
    let End::Page(200, consent) = walk(
        &http,
        authorize_url(&svc.base, &client_id),
        &svc.base,
        AtUpstream::LogIn("alice"),
        false,
    )
    .await
    .unwrap() else {
        panic!("expected our consent page")
    };
    assert!(consent.contains("Authorize e2e client?"), "{consent}");
    assert!(consent.contains("Signed in as <strong>alice</strong>"));
    let back = approve(&http, &svc.base, &consent).await;
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
    let groups = AccessPolicy::new(vec![], vec![], vec![], vec!["admins".into()]);
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

    let domains = AccessPolicy::new(vec![], vec![], vec!["example.com".into()], vec![]);
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
    assert!(matches!(end, End::Page(200, _)), "{end:?}");
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
    assert_eq!(
        http.get(&callback).send().await.unwrap().status(),
        200,
        "first use: our consent page"
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
    let res = http
        .get(authorize_url(&svc.base, &client_id))
        .send()
        .await
        .unwrap();
    let to_upstream = res.headers()["location"].to_str().unwrap().to_owned();
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
