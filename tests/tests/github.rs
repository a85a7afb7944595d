//! The GitHub identity provider against the GitHub stand-in (`e2e::github_standin`), configured the way a GitHub
//! Enterprise Server user configures it (web base + `/api/v3` API base).
//!
//! Some tests drive the provider alone (start → the stand-in's authorize → authenticate); most run the engine's
//! real flow: `/authorize` → `start_upstream` → the stand-in → `finish_upstream` → approval → `/token` → refresh,
//! with the embedded store in memory and a fixed clock.

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
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use e2e::github_standin::{GithubStandIn, StandInApp, StandInUser};
use oauth_core::testing::FixedClock;
use oauth_core::upstream::{
    Credentials, GithubConfig, GithubProvider, LoginStart, UpstreamRequest,
};
use oauth_core::wire::{self, TokenResponse};
use oauth_core::{
    AccessPolicy, AuthServer, AuthorizationPrompt, AuthorizeError, Clock as _, EmbeddedStore,
    ErrorCode, IdentityProvider, Login, ResourceConfig, ServerConfig, Store, UpstreamCallback,
    UpstreamError,
};

const CLIENT_ID: &str = "Iv1.0123456789abcdef";
const CLIENT_SECRET: &str = "0123456789abcdef0123456789abcdef01234567";
const ISSUER: &str = "https://auth.example.com";
const CALLBACK: &str = "https://auth.example.com/upstream/github/callback";
const RESOURCE: &str = "https://mcp.example.com/mcp";
/// The MCP client's redirect URI and PKCE verifier towards us.
const LOOPBACK: &str = "http://127.0.0.1/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";

const OCTOCAT: u64 = 583_231;
const MALLORY: u64 = 9_001;

/// A member of `acme` (through the "Platform Team") and of `Octo-Org`, with a verified primary address and an
/// unverified public one.
fn octocat() -> StandInUser {
    StandInUser::new(OCTOCAT, "Octocat")
        .named("The Octocat")
        .public_email("octocat@unverified.example")
        .email("octocat@github.example", true, true)
        .email("octo@side.example", false, true)
        .in_team("acme", "Platform Team")
        .in_org("Octo-Org")
}

/// Claims `ceo@acme.example` as primary address without having verified it; in no org.
fn mallory() -> StandInUser {
    StandInUser::new(MALLORY, "mallory")
        .public_email("ceo@acme.example")
        .email("ceo@acme.example", true, false)
        .email("mallory@elsewhere.example", false, true)
}

fn app() -> StandInApp {
    StandInApp::new(CLIENT_ID, CLIENT_SECRET, CALLBACK)
}

fn standin(app: StandInApp) -> GithubStandIn {
    GithubStandIn::start(app, vec![octocat(), mallory()]).unwrap()
}

fn github_config(gh: &GithubStandIn) -> GithubConfig {
    GithubConfig::new(CLIENT_ID, CLIENT_SECRET)
        .with_base_urls(gh.web_base_url(), gh.api_base_url())
        .with_groups(true, true)
        .with_timeout(Duration::from_secs(2))
}

fn form<T: serde::de::DeserializeOwned>(s: &str) -> T {
    wire::parse_form(s.as_bytes()).unwrap()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What the browser does at GitHub: GET the authorization URL, get GitHub's 302 back to our callback.
async fn browse(url: url::Url) -> url::Url {
    let response = no_redirects().get(url).send().await.unwrap();
    assert_eq!(response.status(), 302, "GitHub answers with a redirect");
    let location = response.headers()["location"].to_str().unwrap();
    let back = url::Url::parse(location).unwrap();
    assert!(
        back.as_str().starts_with(CALLBACK),
        "GitHub sends the browser to our callback: {back}"
    );
    back
}

// ---------------------------------------------------------------------------------------------------------------
// The provider alone.

fn upstream_request() -> UpstreamRequest {
    UpstreamRequest::new(
        "upstream-state-1".into(),
        "nonce".into(),
        "a-pkce-verifier-towards-github-of-enough-length-0123456789".into(),
        CALLBACK.into(),
    )
}

async fn code_from(provider: &GithubProvider, request: &UpstreamRequest) -> String {
    let LoginStart::Redirect(url) = provider.start(request).await.unwrap() else {
        panic!("GitHub logins start with a redirect");
    };
    let back = query(&browse(url).await);
    assert_eq!(back["state"], request.state, "GitHub echoes our state");
    back["code"].clone()
}

#[tokio::test]
async fn login_gives_the_numeric_subject_login_verified_primary_email_and_groups() {
    let gh = standin(app());
    gh.sign_in(OCTOCAT);
    let provider = GithubProvider::new(github_config(&gh), FixedClock::new()).unwrap();
    assert_eq!(provider.id(), "github");
    let request = upstream_request();

    let LoginStart::Redirect(url) = provider.start(&request).await.unwrap() else {
        panic!("GitHub logins start with a redirect");
    };
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        format!("{}/login/oauth/authorize", gh.web_base_url())
    );
    let params = query(&url);
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["redirect_uri"], CALLBACK);
    assert_eq!(params["scope"], "read:user user:email read:org");
    assert_eq!(params["state"], "upstream-state-1");
    assert_eq!(
        params["code_challenge"],
        oauth_core::pkce::s256(&request.pkce_verifier)
    );
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["allow_signup"], "false");

    let code = query(&browse(url).await)["code"].clone();
    let login = provider
        .authenticate(Credentials::Callback {
            code: &code,
            request: &request,
        })
        .await
        .unwrap();
    let id = &login.identity;
    assert_eq!(
        id.subject, "github:583231",
        "subject: provider + numeric id"
    );
    assert_eq!(id.username.as_deref(), Some("Octocat"));
    assert_eq!(id.name.as_deref(), Some("The Octocat"));
    assert_eq!(
        id.email.as_deref(),
        Some("octocat@github.example"),
        "the verified primary address, not the public profile address"
    );
    assert_eq!(id.groups, vec!["acme", "acme/platform-team", "octo-org"]);
    let session = login.session.as_ref().unwrap();
    assert_eq!(session.provider, "github");
    assert!(session.access_token.starts_with("gho_"));
    assert_eq!(
        session.refresh_token, None,
        "OAuth app tokens do not expire"
    );
    assert_eq!(session.expires_at, None);
    assert!(
        !format!("{session:?}").contains(&session.access_token),
        "the upstream token stays out of Debug"
    );

    // The GHES layout: the web flow at the root, every API call below /api/v3, pages of 100.
    let mut seen = gh.requests();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            "GET /api/v3/user",
            "GET /api/v3/user/emails?per_page=100",
            "GET /api/v3/user/orgs?per_page=100",
            "GET /api/v3/user/teams?per_page=100",
            &format!(
                "GET /login/oauth/authorize?{}",
                url_query(&provider, &request).await
            ),
            "POST /login/oauth/access_token",
        ]
    );

    // The code was single use.
    let again = provider
        .authenticate(Credentials::Callback {
            code: &code,
            request: &request,
        })
        .await
        .unwrap_err();
    assert!(matches!(again, UpstreamError::LoginFailed), "{again:?}");
}

async fn url_query(provider: &GithubProvider, request: &UpstreamRequest) -> String {
    let LoginStart::Redirect(url) = provider.start(request).await.unwrap() else {
        panic!("redirect expected");
    };
    url.query().unwrap().to_owned()
}

#[tokio::test]
async fn groups_are_read_only_when_configured_and_all_pages_are_read() {
    let mut many = StandInUser::new(42, "joiner").email("j@example.com", true, true);
    for i in 0..105 {
        many = many.in_org(&format!("Org-{i:03}"));
    }
    let gh = GithubStandIn::start(app(), vec![many]).unwrap();
    gh.sign_in(42);

    let plain = GithubConfig::new(CLIENT_ID, CLIENT_SECRET)
        .with_base_urls(gh.web_base_url(), gh.api_base_url());
    let provider = GithubProvider::new(plain, FixedClock::new()).unwrap();
    let request = upstream_request();
    let code = code_from(&provider, &request).await;
    let login = provider
        .authenticate(Credentials::Callback {
            code: &code,
            request: &request,
        })
        .await
        .unwrap();
    assert!(login.identity.groups.is_empty());
    assert!(
        !gh.requests().iter().any(|r| r.contains("/user/orgs")),
        "no org request without an org policy"
    );

    let provider = GithubProvider::new(github_config(&gh), FixedClock::new()).unwrap();
    let code = code_from(&provider, &request).await;
    let login = provider
        .authenticate(Credentials::Callback {
            code: &code,
            request: &request,
        })
        .await
        .unwrap();
    assert_eq!(login.identity.groups.len(), 105);
    assert_eq!(login.identity.groups[0], "org-000");
    assert_eq!(login.identity.groups[104], "org-104");
    assert!(
        gh.requests()
            .iter()
            .any(|r| r == "GET /api/v3/user/orgs?per_page=100&page=2"),
        "the Link header's next page was followed: {:?}",
        gh.requests()
    );
}

#[tokio::test]
async fn an_unverified_primary_email_is_never_used() {
    let gh = standin(app());
    gh.sign_in(MALLORY);
    let provider = GithubProvider::new(github_config(&gh), FixedClock::new()).unwrap();
    let request = upstream_request();
    let code = code_from(&provider, &request).await;
    let login = provider
        .authenticate(Credentials::Callback {
            code: &code,
            request: &request,
        })
        .await
        .unwrap();
    assert_eq!(login.identity.subject, "github:9001");
    assert_eq!(
        login.identity.email, None,
        "neither the unverified primary nor the public address, nor a verified secondary one"
    );
    let domain_policy =
        AccessPolicy::new(vec![], vec![], vec!["github:acme.example".into()], vec![]);
    let id = &login.identity;
    assert!(!domain_policy.allows(
        &id.subject,
        id.username.as_deref(),
        id.email.as_deref(),
        &id.groups
    ));
}

#[tokio::test]
async fn token_endpoint_refusals_are_login_failures() {
    let gh = standin(app());
    gh.sign_in(OCTOCAT);
    let request = upstream_request();

    // Wrong client secret: GitHub's 200 with `incorrect_client_credentials`.
    let wrong = GithubProvider::new(
        GithubConfig::new(CLIENT_ID, "not-the-secret")
            .with_base_urls(gh.web_base_url(), gh.api_base_url()),
        FixedClock::new(),
    )
    .unwrap();
    let code = code_from(&wrong, &request).await;
    let e = wrong
        .authenticate(Credentials::Callback {
            code: &code,
            request: &request,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::LoginFailed), "{e:?}");

    // The PKCE verifier must match the challenge sent at the start.
    let provider = GithubProvider::new(github_config(&gh), FixedClock::new()).unwrap();
    let code = code_from(&provider, &request).await;
    let other = UpstreamRequest::new(
        request.state.clone(),
        request.nonce.clone(),
        "another-verifier-that-github-never-saw-0123456789-abcdef".into(),
        request.callback_url.clone(),
    );
    let e = provider
        .authenticate(Credentials::Callback {
            code: &code,
            request: &other,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::LoginFailed), "{e:?}");

    // Password logins are not GitHub's.
    let e = provider
        .authenticate(Credentials::Password {
            username: "octocat",
            password: "x",
        })
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Unsupported(_)), "{e:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// The engine's flow with GitHub as the upstream.

struct World {
    gh: GithubStandIn,
    server: AuthServer,
    clock: Arc<FixedClock>,
    client_id: String,
}

async fn world(
    policy: AccessPolicy,
    app: StandInApp,
    config: impl Fn(&GithubStandIn) -> GithubConfig,
) -> World {
    let gh = standin(app);
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let server_config = ServerConfig::new(
        ISSUER,
        vec![
            ResourceConfig::new(RESOURCE, vec!["mcp".into()])
                .require(vec!["mcp".into()])
                .with_policy(policy),
        ],
    );
    let provider = GithubProvider::new(config(&gh), clock.clone()).unwrap();
    let server = AuthServer::new(
        server_config,
        store,
        oauth_core::testing::sealer(),
        clock.clone(),
    )
    .await
    .unwrap()
    .with_providers(vec![Arc::new(provider)]);
    let registration = serde_json::json!({
        "redirect_uris": [LOOPBACK],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Test MCP client",
    });
    let client = server
        .register(registration.to_string().as_bytes(), None)
        .await
        .unwrap();
    World {
        gh,
        server,
        clock,
        client_id: client.client_id,
    }
}

fn acme_only() -> AccessPolicy {
    AccessPolicy::new(vec![], vec![], vec![], vec!["github:acme".into()])
}

/// `/authorize` → `start_upstream` → the stand-in: the callback GitHub sent the browser to, and the browser
/// session it must come back with.
async fn to_github_and_back(w: &World) -> (UpstreamCallback, oauth_core::BrowserSession) {
    let prompt = w
        .server
        .authorize(form(&format!(
            "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=st-1&resource={}",
            enc(&w.client_id),
            enc(LOOPBACK),
            oauth_core::pkce::s256(VERIFIER),
            enc(RESOURCE)
        )))
        .await
        .unwrap();
    let session = w.server.browser_session(None).await.unwrap();
    let url = w
        .server
        .start_upstream(&prompt.handle, "github", &session, CALLBACK)
        .await
        .unwrap();
    let back = browse(url).await;
    let callback: UpstreamCallback = form(back.query().unwrap_or_default());
    (callback, session)
}

async fn log_in(w: &World) -> Result<(AuthorizationPrompt, Login), AuthorizeError> {
    let (callback, session) = to_github_and_back(w).await;
    w.server.finish_upstream(&callback, Some(&session)).await
}

/// The error redirect to the MCP client, as query parameters.
fn client_redirect(e: AuthorizeError) -> HashMap<String, String> {
    match e {
        AuthorizeError::Redirect { to, .. } => {
            assert!(to.as_str().starts_with(LOOPBACK), "{to}");
            query(&to)
        }
        other => panic!("expected a redirect to the client, got {other:?}"),
    }
}

/// The whole flow up to tokens.
async fn tokens(w: &World) -> TokenResponse {
    let (prompt, login) = log_in(w).await.unwrap();
    let url = w
        .server
        .approve_with(&prompt.handle, login.identity, login.session)
        .await
        .unwrap();
    let code = query(&url)["code"].clone();
    w.server
        .token(
            None,
            form(&format!(
                "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={VERIFIER}",
                enc(&w.client_id),
                enc(&code),
                enc(LOOPBACK)
            )),
        )
        .await
        .unwrap()
}

async fn refresh(w: &World, refresh_token: &str) -> Result<TokenResponse, oauth_core::Error> {
    w.server
        .token(
            None,
            form(&format!(
                "grant_type=refresh_token&client_id={}&refresh_token={}",
                enc(&w.client_id),
                enc(refresh_token)
            )),
        )
        .await
}

fn code_of(e: &oauth_core::Error) -> ErrorCode {
    e.to_oauth().code
}

fn verified(w: &World, access_token: &str) -> bool {
    let resource = w.server.resource_for_url(RESOURCE).unwrap();
    w.server
        .verify(Some(&format!("Bearer {access_token}")), resource)
        .is_ok()
}

#[tokio::test]
async fn an_org_member_gets_tokens_that_carry_no_github_token() {
    let w = world(acme_only(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let (prompt, login) = log_in(&w).await.unwrap();
    assert_eq!(prompt.resource, RESOURCE);
    let github_token = login.session.as_ref().unwrap().access_token.clone();
    let url = w
        .server
        .approve_with(&prompt.handle, login.identity, login.session)
        .await
        .unwrap();
    let back = query(&url);
    assert_eq!(back["state"], "st-1");
    let code = back["code"].clone();
    let issued = w
        .server
        .token(
            None,
            form(&format!(
                "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={VERIFIER}",
                enc(&w.client_id),
                enc(&code),
                enc(LOOPBACK)
            )),
        )
        .await
        .unwrap();
    let resource = w.server.resource_for_url(RESOURCE).unwrap();
    let principal = w
        .server
        .verify(Some(&format!("Bearer {}", issued.access_token)), resource)
        .unwrap();
    assert_eq!(principal.subject(), "github:583231");
    assert_eq!(principal.username(), Some("Octocat"));
    assert_eq!(principal.email(), Some("octocat@github.example"));
    assert_eq!(
        principal.groups(),
        ["acme", "acme/platform-team", "octo-org"]
    );

    // No passthrough: GitHub's token appears nowhere in what the client gets, JWT payload included.
    let wire = serde_json::to_string(&issued).unwrap();
    assert!(!wire.contains(&github_token));
    let payload = issued.access_token.split('.').nth(1).unwrap();
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(
        claims.contains("github:583231") && !claims.contains(&github_token),
        "{claims}"
    );
    assert!(!claims.contains("gho_"), "{claims}");
}

#[tokio::test]
async fn a_user_outside_the_org_is_refused_at_approval() {
    let w = world(acme_only(), app(), github_config).await;
    w.gh.sign_in(MALLORY);
    let (prompt, login) = log_in(&w).await.unwrap();
    let e = w
        .server
        .approve_with(&prompt.handle, login.identity, login.session)
        .await
        .unwrap_err();
    match e {
        AuthorizeError::Forbidden(o) => {
            assert_eq!(o.code, ErrorCode::AccessDenied);
            assert_eq!(o.description, format!("mallory may not use {RESOURCE}"));
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn an_email_domain_policy_ignores_an_unverified_address() {
    let policy = AccessPolicy::new(vec![], vec![], vec!["github:acme.example".into()], vec![]);
    let w = world(policy, app(), github_config).await;
    w.gh.sign_in(MALLORY);
    let (prompt, login) = log_in(&w).await.unwrap();
    assert_eq!(login.identity.email, None);
    let e = w
        .server
        .approve_with(&prompt.handle, login.identity, login.session)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthorizeError::Forbidden(_)), "{e:?}");
}

#[tokio::test]
async fn users_are_matched_by_numeric_id_or_login_in_any_case() {
    for entry in ["github:583231", "github:OCTOCAT"] {
        let policy = AccessPolicy::new(vec![entry.into()], vec![], vec![], vec![]);
        let w = world(policy, app(), github_config).await;
        w.gh.sign_in(OCTOCAT);
        let issued = tokens(&w).await;
        assert!(verified(&w, &issued.access_token), "{entry}");
    }
}

#[tokio::test]
async fn a_name_vouched_for_by_another_provider_does_not_match_a_github_user() {
    for entry in ["local:octocat", "keycloak:583231", "keycloak:octocat"] {
        let policy = AccessPolicy::new(vec![entry.into()], vec![], vec![], vec![]);
        let w = world(policy, app(), github_config).await;
        w.gh.sign_in(OCTOCAT);
        let (prompt, login) = log_in(&w).await.unwrap();
        let e = w
            .server
            .approve_with(&prompt.handle, login.identity, login.session)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthorizeError::Forbidden(_)), "{entry}: {e:?}");
    }
}

#[tokio::test]
async fn the_user_cancelling_at_github_sends_access_denied_to_the_client() {
    let w = world(AccessPolicy::default(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    w.gh.set_user_cancels(true);
    let (callback, session) = to_github_and_back(&w).await;
    assert_eq!(callback.error.as_deref(), Some("access_denied"));
    let e = w
        .server
        .finish_upstream(&callback, Some(&session))
        .await
        .unwrap_err();
    let back = client_redirect(e);
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "st-1");
    assert_eq!(back["iss"], ISSUER);
}

#[tokio::test]
async fn a_bad_code_sends_access_denied_to_the_client() {
    let w = world(AccessPolicy::default(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let (mut callback, session) = to_github_and_back(&w).await;
    callback.code = Some("0123456789abcdef0123".into());
    let e = w
        .server
        .finish_upstream(&callback, Some(&session))
        .await
        .unwrap_err();
    let back = client_redirect(e);
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "st-1");
}

#[tokio::test]
async fn github_down_sends_temporarily_unavailable_to_the_client_at_once() {
    let w = world(AccessPolicy::default(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let (callback, session) = to_github_and_back(&w).await;
    // GitHub goes away between the redirect and the code exchange: the port now refuses connections.
    let World { gh, server, .. } = w;
    gh.stop().await;
    let started = Instant::now();
    let e = server
        .finish_upstream(&callback, Some(&session))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let back = client_redirect(e);
    assert_eq!(back["error"], "temporarily_unavailable");
    assert_eq!(back["state"], "st-1");
}

#[tokio::test]
async fn a_github_that_does_not_answer_is_cut_off_by_the_timeout() {
    let short = |gh: &GithubStandIn| github_config(gh).with_timeout(Duration::from_millis(300));
    let w = world(AccessPolicy::default(), app(), short).await;
    w.gh.sign_in(OCTOCAT);
    let (callback, session) = to_github_and_back(&w).await;
    w.gh.set_delay(Some(Duration::from_secs(30)));
    let started = Instant::now();
    let e = w
        .server
        .finish_upstream(&callback, Some(&session))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "bounded by the 300 ms timeout: {took:?}"
    );
    assert_eq!(client_redirect(e)["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn github_answering_503_sends_temporarily_unavailable_to_the_client() {
    let w = world(AccessPolicy::default(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let (callback, session) = to_github_and_back(&w).await;
    w.gh.set_down(true);
    let e = w
        .server
        .finish_upstream(&callback, Some(&session))
        .await
        .unwrap_err();
    assert_eq!(client_redirect(e)["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn removal_from_the_org_ends_the_grant_at_the_next_refresh() {
    let w = world(acme_only(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let first = tokens(&w).await;
    let second = refresh(&w, first.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert!(verified(&w, &second.access_token));

    w.gh.remove_from_org(OCTOCAT, "acme");
    let e = refresh(&w, second.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InvalidGrant);
    assert_eq!(
        e.to_oauth().description,
        "this user may no longer use this resource; sign in again"
    );
    assert!(
        !verified(&w, &second.access_token),
        "the grant's access tokens are revoked too"
    );
    let e = refresh(&w, second.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InvalidGrant, "and stay revoked");
}

#[tokio::test]
async fn revoking_the_app_at_github_ends_the_grant_at_the_next_refresh() {
    let w = world(AccessPolicy::default(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let issued = tokens(&w).await;
    w.gh.revoke_tokens_of(OCTOCAT);
    let e = refresh(&w, issued.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InvalidGrant);
    assert_eq!(
        e.to_oauth().description,
        "the user is no longer known to the identity provider; sign in again"
    );
    assert!(!verified(&w, &issued.access_token));
}

#[tokio::test]
async fn github_unavailable_at_refresh_refuses_for_now_and_keeps_the_grant() {
    let w = world(acme_only(), app(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let issued = tokens(&w).await;
    let refresh_token = issued.refresh_token.as_deref().unwrap();

    w.gh.set_down(true);
    let e = refresh(&w, refresh_token).await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::TemporarilyUnavailable);
    w.gh.set_down(false);

    w.gh.set_rate_limited(true);
    let e = refresh(&w, refresh_token).await.unwrap_err();
    assert_eq!(
        code_of(&e),
        ErrorCode::TemporarilyUnavailable,
        "GitHub's rate-limit 403 is not a refusal"
    );
    w.gh.set_rate_limited(false);

    assert!(verified(&w, &issued.access_token), "the grant was kept");
    let renewed = refresh(&w, refresh_token).await.unwrap();
    assert!(verified(&w, &renewed.access_token));
}

#[tokio::test]
async fn expiring_github_app_tokens_are_renewed_at_refresh() {
    let w = world(acme_only(), app().expiring_tokens(), github_config).await;
    w.gh.sign_in(OCTOCAT);
    let (prompt, login) = log_in(&w).await.unwrap();
    let session = login.session.clone().unwrap();
    assert!(session.access_token.starts_with("ghu_"));
    assert!(
        session
            .refresh_token
            .as_deref()
            .unwrap()
            .starts_with("ghr_")
    );
    assert_eq!(
        session.expires_at,
        Some(w.clock.unix() + 28_800),
        "dated by the injected clock"
    );
    let url = w
        .server
        .approve_with(&prompt.handle, login.identity, login.session)
        .await
        .unwrap();
    let code = query(&url)["code"].clone();
    let issued = w
        .server
        .token(
            None,
            form(&format!(
                "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={VERIFIER}",
                enc(&w.client_id),
                enc(&code),
                enc(LOOPBACK)
            )),
        )
        .await
        .unwrap();
    let exchanges = |gh: &GithubStandIn| {
        gh.requests()
            .iter()
            .filter(|r| *r == "POST /login/oauth/access_token")
            .count()
    };
    assert_eq!(exchanges(&w.gh), 1);

    // GitHub expired the token early: the 401 leads to a renewal, then the check passes.
    w.gh.expire_access_tokens();
    let second = refresh(&w, issued.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(exchanges(&w.gh), 2, "one renewal");

    // Eight hours later the token is renewed before it is used.
    w.clock.advance(Duration::from_secs(8 * 3600));
    let before = w.gh.requests().len();
    let third = refresh(&w, second.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        w.gh.requests().get(before).map(String::as_str),
        Some("POST /login/oauth/access_token"),
        "renewed first: {:?}",
        w.gh.requests()
    );
    assert!(verified(&w, &third.access_token));

    // Once GitHub refuses the refresh token (the user revoked the app), the grant ends.
    w.gh.revoke_tokens_of(OCTOCAT);
    let e = refresh(&w, third.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InvalidGrant);
}
