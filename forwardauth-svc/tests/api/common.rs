//! An in-process app over an in-memory store, and helpers that walk the browser flow through HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::{App, test, web};
use forwardauth_svc::config::Config;
use forwardauth_svc::{AppState, routes};
use oauth_core::{
    AccessPolicy, AuthServer, EmbeddedStore, LocalUser, LocalUsers, ResourceConfig, SystemClock,
    ToolScope,
};
use serde_json::Value;

pub const ISSUER: &str = "https://auth.example.com";
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const ADMIN_RESOURCE: &str = "https://admin.example.com/mcp";
pub const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
pub const REDIRECT: &str = "http://127.0.0.1:9999/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";
pub const PROXY: &str = "127.0.0.1:40000";
pub const STRANGER: &str = "203.0.113.9:40000";

static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hash() -> String {
    HASH.get_or_init(|| LocalUsers::hash_password("wonderland").unwrap())
        .clone()
}

pub fn config() -> Config {
    let mut c = Config::defaults("127.0.0.1:8080".parse().unwrap());
    let server =
        oauth_core::ServerConfig::new(
            ISSUER,
            vec![
                ResourceConfig::new(RESOURCE, vec!["mcp".into(), "mcp:admin".into()])
                    .require(vec!["mcp".into()])
                    .named("Demo")
                    .with_tool_scopes(vec![ToolScope::new(
                        "tools/call:delete_all",
                        vec!["mcp:admin".into()],
                    )])
                    // So that 2026-07-28 headers name the call without a forwarded body (tests/api/tools.rs
                    // covers both settings).
                    .mcp_server_validates_headers(true),
                ResourceConfig::new(ADMIN_RESOURCE, vec!["mcp".into()]).with_policy(
                    AccessPolicy::new(vec!["local:bob".into()], vec![], vec![], vec![]),
                ),
            ],
        );
    c.server = server;
    c.users = vec![
        LocalUser::new("alice", hash())
            .with_email("alice@example.com")
            .with_name("Alice"),
        LocalUser::new("bob", hash()),
    ];
    c
}

pub async fn state_with(config: Config) -> AppState {
    let clock = Arc::new(SystemClock);
    let store = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let providers = forwardauth_svc::state::build_providers(&config, clock.clone()).unwrap();
    let auth = Arc::new(
        AuthServer::new(
            config.server.clone(),
            store,
            oauth_core::testing::sealer(),
            clock,
        )
        .await
        .unwrap()
        .with_providers(providers),
    );
    AppState::with_auth(&config, auth).unwrap()
}

pub async fn app_with(
    state: AppState,
) -> impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error> {
    test::init_service(
        App::new()
            .app_data(web::Data::new(state))
            .configure(routes::configure),
    )
    .await
}

pub async fn app() -> (
    impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error>,
    AppState,
) {
    let state = state_with(config()).await;
    (app_with(state.clone()).await, state)
}

pub fn peer(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
}

/// Status, a header map as lower-case name → value, and the body.
pub struct Answer {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body with minijinja's HTML escapes of `/` undone, for readable assertions on pages.
    pub fn page(&self) -> String {
        self.text().replace("&#x2f;", "/")
    }
    /// All `Set-Cookie` values.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

pub async fn call<S, B>(app: &S, req: test::TestRequest) -> Answer
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    Answer {
        status,
        headers,
        body,
    }
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn form_post(path: &str, body: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri(path)
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .set_payload(body.to_owned())
}

/// Registers a public client with a loopback redirect; returns the registration JSON.
pub async fn register<S, B>(app: &S, extra: Value) -> Value
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut body = serde_json::json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "API test client",
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let a = call(
        app,
        test::TestRequest::post().uri("/register").set_json(body),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    a.json()
}

pub fn authorize_uri(client_id: &str, extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=xyz&resource={}{extra}",
        enc(REDIRECT),
        oauth_core::pkce::s256(VERIFIER),
        enc(RESOURCE)
    )
}

/// The value of a hidden form field in a page.
pub use test_support::field;

/// The `name=value` part of the session cookie from a response.
pub fn session_cookie(a: &Answer) -> String {
    a.cookies()
        .iter()
        .find(|c| c.contains("fa_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Opens the authorization request `uri` and logs in as `user` (password `wonderland`): the answer to the login,
/// which is the consent page when all goes well, and the pending authorization's handle.
pub async fn log_in<S, B>(app: &S, uri: &str, user: &str) -> (Answer, String)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let page = call(app, test::TestRequest::get().uri(uri)).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let cookie = session_cookie(&page);
    let (handle, csrf) = (field(&page.text(), "handle"), field(&page.text(), "csrf"));
    let login = call(
        app,
        form_post(
            "/login",
            &format!(
                "handle={}&csrf={}&username={user}&password=wonderland",
                enc(&handle),
                enc(&csrf)
            ),
        )
        .insert_header((header::COOKIE, cookie)),
    )
    .await;
    (login, handle)
}

/// Walks authorize → login → consent (approve) and returns the redirect's code and the session cookie.
pub async fn login_and_consent<S, B>(app: &S, client_id: &str, user: &str) -> (String, String)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (login, handle) = log_in(app, &authorize_uri(client_id, ""), user).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = session_cookie(&login);
    let csrf = field(&login.text(), "csrf");
    let consent = call(
        app,
        form_post(
            "/consent",
            &format!(
                "handle={}&csrf={}&decision=approve",
                enc(&handle),
                enc(&csrf)
            ),
        )
        .insert_header((header::COOKIE, cookie.clone())),
    )
    .await;
    assert_eq!(consent.status, 302, "{}", consent.text());
    let location = url::Url::parse(consent.header("location").unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    (code, cookie)
}

/// The whole flow for a new public client and `user`: client id and token response.
pub async fn tokens<S, B>(app: &S, user: &str) -> (String, Value)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let client = register(app, serde_json::json!({})).await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let (code, _) = login_and_consent(app, &client_id, user).await;
    let a = call(
        app,
        form_post(
            "/token",
            &format!("grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}&client_id={client_id}", enc(&code), enc(REDIRECT)),
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    (client_id, a.json())
}

/// A forward-auth call as Traefik sends it.
pub fn traefik(method: &str, url: &str) -> test::TestRequest {
    let u = url::Url::parse(url).unwrap();
    let uri = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    test::TestRequest::get()
        .uri("/verify")
        .peer_addr(peer(PROXY))
        .insert_header(("X-Forwarded-Method", method))
        .insert_header(("X-Forwarded-Proto", u.scheme()))
        .insert_header(("X-Forwarded-Host", u.host_str().unwrap()))
        .insert_header(("X-Forwarded-Uri", uri))
}
