//! What "embed `oauth-core` in your own Rust service" looks like: the whole authorization server and forward-auth
//! gate on axum, in one file.
//!
//! # Why it exists
//! `forwardauth-svc` is one adapter of the engine (actix-web). This is a second one, written against the same
//! public API, and the flow test of the service (`test_support::walk_the_flow`) passes against both. If a
//! framework needed OAuth logic of its own to pass it, the engine would be leaking its job; here every handler
//! only extracts, makes one [`AuthServer`] call, and maps the result.
//!
//! # Layout
//! * [`router`] is the route table; [`serve`] runs it on a listener until `shutdown` resolves.
//! * Discovery: RFC 8414 metadata, RFC 9728 metadata (found from the URL the client used), the JWK set.
//! * `POST /register` (RFC 7591); `POST /token`, `/revoke`, `/introspect` (form bodies, client authentication
//!   by Basic header or form fields; the engine reconciles the two).
//! * The browser steps ([`oauth_core::Browser`]): `GET /authorize`, `POST /login`, `POST /login/upstream`,
//!   `GET /callback`, `POST /consent`, `GET` and `POST /logout`. The engine decides which page comes next; this
//!   file renders it as plain HTML, every value escaped, and sets the session cookie (`HttpOnly`, `SameSite=Lax`,
//!   `Path=/`, `Secure` with the `__Host-` prefix when the issuer is https).
//! * `/verify`: the gate ([`AuthServer::gate`]) for Traefik-style `X-Forwarded-*` headers (nginx's
//!   `X-Original-*` work too), answering 200 with the identity headers `forwardauth-svc` sends by default
//!   ([`IDENTITY_HEADERS`]), or the engine's 401/403.
//! * [`ApiError`] is the one place an engine error, an error page or a gate refusal becomes a response.
//! * Handlers that see a password, a secret or a token are `#[tracing::instrument(skip_all)]`: none of their
//!   arguments reaches a log.
//!
//! Left out, to stay short: RFC 7592 client management (`/register/{id}`), CORS preflights, per-address rate
//! limits on the OAuth endpoints, health checks, TLS (put a proxy in front).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get, post};
use ipnet::IpNet;
use oauth_core::wire::{self, TokenReference, TokenRequest};
use oauth_core::{AuthServer, ClientCredentials, ConsentPage, EmbeddedStore, ErrorCode, ErrorPage};
use oauth_core::{
    FORM_LIMIT, ForwardedBody, ForwardedHeaders, GateInput, GateOutcome, GateRefusal, HeaderField,
};
use oauth_core::{
    IdentityProvider, LocalUser, LocalUsers, OAuthError, Outcome, Principal, ResourceConfig,
};
use oauth_core::{ServerConfig, SessionCookie, SignInPage, Step, SystemClock, VerifyRejection};
use serde_json::json;

/// The identity headers of a 200 from `/verify`, as `forwardauth-svc` names them by default: subject, login name,
/// e-mail address, client id, granted scopes. Every one is sent, empty when unknown, so that a proxy copying them
/// onto the request always replaces a client's own.
pub const IDENTITY_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-user-id"),
    HeaderName::from_static("x-user-name"),
    HeaderName::from_static("x-user-email"),
    HeaderName::from_static("x-client-id"),
    HeaderName::from_static("x-scopes"),
];

/// The demo user of [`demo_server`].
pub const DEMO_USER: &str = "alice";
/// Their password.
pub const DEMO_PASSWORD: &str = "wonderland";

/// How long a "try again later" page (429, 503) is held before it is sent, so that a client retrying at once
/// costs a timer rather than CPU.
const REFUSAL_DELAY: Duration = Duration::from_millis(500);
/// The largest `/token`, `/revoke` or `/introspect` body.
const CLIENT_FORM_LIMIT: usize = 64 * 1024;

/// What the adapter needs besides the engine.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The addresses whose `X-Forwarded-*` / `X-Original-*` headers are believed (the reverse proxy). From
    /// anywhere else, the gate refuses a request that carries them. Default: loopback.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            trusted_proxies: vec![
                IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
        }
    }
}

/// An engine on the embedded store in `dir`, with issuer `issuer`, one local user ([`DEMO_USER`], e-mail
/// `alice@example.com`) and one MCP server, `{issuer}/mcp`, requiring scope `mcp`.
///
/// # Errors
/// The store, the password hash or the engine failing to start.
pub async fn demo_server(
    issuer: &str,
    dir: &Path,
) -> Result<Arc<AuthServer>, Box<dyn std::error::Error + Send + Sync>> {
    let clock = Arc::new(SystemClock);
    let store = Arc::new(EmbeddedStore::open(dir.join("oauth.redb"), clock.clone())?);
    let resource = ResourceConfig::new(format!("{issuer}/mcp"), vec!["mcp".into()])
        .require(vec!["mcp".into()]);
    let config = ServerConfig::new(issuer, vec![resource]);
    let alice = LocalUser::new(DEMO_USER, LocalUsers::hash_password(DEMO_PASSWORD)?)
        .with_email("alice@example.com");
    let users: Arc<dyn IdentityProvider> = Arc::new(LocalUsers::new(vec![alice])?);
    // The key sealing the store's secrets lives as long as this process, as the demo's store does; a real
    // deployment keeps one key apart from the store and passes it at every start.
    let sealer = oauth_core::Sealer::new(oauth_core::KeyEncryptionKey::generate());
    let server = AuthServer::new(config, store, sealer, clock).await?;
    Ok(Arc::new(server.with_providers(vec![users])))
}

/// The handlers' state.
#[derive(Clone)]
struct App {
    auth: Arc<AuthServer>,
    trusted_proxies: Arc<[IpNet]>,
    secure: bool,
}

impl App {
    fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-session"
        } else {
            "session"
        }
    }
}

/// The route table: every endpoint of the authorization server and the gate.
pub fn router(auth: Arc<AuthServer>, settings: Settings) -> Router {
    let paths = auth.config().endpoints.clone();
    let app = App {
        secure: auth.config().issuer.starts_with("https://"),
        trusted_proxies: settings.trusted_proxies.into(),
        auth,
    };
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(as_metadata))
        .route("/.well-known/oauth-protected-resource", get(pr_metadata))
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            get(pr_metadata),
        )
        .route(&paths.jwks, get(jwks))
        .route(&paths.register, post(register))
        .route(&paths.authorize, get(authorize))
        .route("/login", post(login))
        .route("/login/upstream", post(login_upstream))
        .route("/callback", get(callback))
        .route("/consent", post(consent))
        .route("/logout", get(confirm_logout).post(logout))
        .route(&paths.token, post(token))
        .route(&paths.revoke, post(revoke))
        .route(&paths.introspect, post(introspect))
        .route("/verify", any(verify))
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .with_state(app)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then lets open requests finish.
///
/// # Errors
/// The listener failing.
pub async fn serve(
    listener: tokio::net::TcpListener,
    auth: Arc<AuthServer>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(auth, settings).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

// ---- discovery -------------------------------------------------------------------------------------------------

async fn as_metadata(State(app): State<App>) -> Response {
    Json(app.auth.authorization_server_metadata()).into_response()
}

/// RFC 9728 metadata of the resource whose metadata URL the client used (the proxy's `X-Forwarded-Proto`/`-Host`
/// when it is trusted, else the issuer's scheme and `Host`).
async fn pr_metadata(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let forwarded = |name| text(&headers, name).filter(|_| app.trusts(peer.ip()));
    let own_scheme = if app.secure { "https" } else { "http" };
    let scheme = forwarded("x-forwarded-proto").unwrap_or(own_scheme);
    let host = forwarded("x-forwarded-host").or_else(|| text(&headers, "host"));
    let url = format!("{scheme}://{}{}", host.unwrap_or("localhost"), uri.path());
    let resource = app.auth.resource_for_metadata_url(&url);
    let resource = resource.ok_or(ApiError::NotFound(
        "no protected resource is configured here",
    ))?;
    Ok(Json(app.auth.protected_resource_metadata(resource)).into_response())
}

async fn jwks(State(app): State<App>) -> Response {
    Json(app.auth.jwks()).into_response()
}

// ---- registration and the client endpoints ---------------------------------------------------------------------

/// `POST /register` (RFC 7591), with an initial access token as bearer token when the policy asks for one.
#[tracing::instrument(skip_all)]
async fn register(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let max = app.auth.config().registration.max_metadata_bytes;
    let body = axum::body::to_bytes(body, max).await.map_err(|_| {
        let d = format!("the registration request is larger than {max} bytes");
        ApiError::from(OAuthError::new(ErrorCode::InvalidClientMetadata, d))
    })?;
    let bearer = oauth_core::bearer_token(text(&headers, "authorization"));
    let created = app.auth.register(&body, bearer).await;
    let created = created.map_err(|e| ApiError::OAuth(e, Challenge::Bearer))?;
    let location = created.registration_client_uri.clone();
    let res = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(created),
    );
    Ok(no_store(res.into_response()))
}

/// `POST /token` (RFC 6749 §3.2).
#[tracing::instrument(skip_all)]
async fn token(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (basic, form, challenge) = client_form::<TokenRequest>(&headers, body).await?;
    let issued = app.auth.token(basic, form).await;
    let issued = issued.map_err(|e| ApiError::OAuth(e, challenge))?;
    Ok(no_store(Json(issued).into_response()))
}

/// `POST /revoke` (RFC 7009).
#[tracing::instrument(skip_all)]
async fn revoke(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (basic, form, challenge) = client_form::<TokenReference>(&headers, body).await?;
    let revoked = app.auth.revoke(basic, form).await;
    revoked.map_err(|e| ApiError::OAuth(e, challenge))?;
    Ok(no_store(StatusCode::OK.into_response()))
}

/// `POST /introspect` (RFC 7662).
#[tracing::instrument(skip_all)]
async fn introspect(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (basic, form, challenge) = client_form::<TokenReference>(&headers, body).await?;
    let answer = app.auth.introspect(basic, form).await;
    let answer = answer.map_err(|e| ApiError::OAuth(e, challenge))?;
    Ok(no_store(Json(answer).into_response()))
}

/// A client endpoint's request: the form (which must say it is one), its Basic credentials if any, and the
/// challenge a 401 should carry.
async fn client_form<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<(Option<ClientCredentials>, T, Challenge), ApiError> {
    let media_type = text(headers, "content-type").and_then(|v| v.split(';').next());
    if !media_type.is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        let d = "Content-Type must be application/x-www-form-urlencoded";
        return Err(OAuthError::invalid_request(d).into());
    }
    let authorization = text(headers, "authorization");
    let basic = authorization.map(ClientCredentials::from_authorization_header);
    let basic = basic
        .transpose()
        .map_err(|e| ApiError::OAuth(e.into(), Challenge::Basic))?;
    let basic = basic.flatten();
    let challenge = basic.as_ref().map_or(Challenge::None, |_| Challenge::Basic);
    let body = axum::body::to_bytes(body, CLIENT_FORM_LIMIT)
        .await
        .map_err(|_| {
            let d = format!("the request body is larger than {CLIENT_FORM_LIMIT} bytes");
            ApiError::from(OAuthError::invalid_request(d))
        })?;
    Ok((basic, wire::parse_form(&body)?, challenge))
}

// ---- the browser steps -----------------------------------------------------------------------------------------

/// `GET /authorize` (RFC 6749 §4.1.1).
async fn authorize(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let cookie = session(&app, &headers);
    let step = app.auth.browser().authorize(&query, cookie).await;
    respond(&app, step).await
}

/// `POST /login`: the password form, regulated per client address.
#[tracing::instrument(skip_all)]
async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    let client = client_addr(&app, peer.ip(), &headers);
    let cookie = session(&app, &headers);
    let step = app
        .auth
        .browser()
        .sign_in(&form, cookie, Some(client))
        .await;
    respond(&app, step).await
}

/// `POST /login/upstream`: off to the chosen identity provider.
async fn login_upstream(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    let cookie = session(&app, &headers);
    let step = app.auth.browser().choose_provider(&form, cookie).await;
    respond(&app, step).await
}

/// `GET /callback`: the identity provider sends the user back.
async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let cookie = session(&app, &headers);
    let step = app.auth.browser().callback(&query, cookie).await;
    respond(&app, step).await
}

/// `POST /consent`.
async fn consent(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    let cookie = session(&app, &headers);
    let step = app.auth.browser().consent(&form, cookie).await;
    respond(&app, step).await
}

/// `GET /logout`: asks before signing out (a GET never does).
async fn confirm_logout(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let cookie = session(&app, &headers);
    let step = app.auth.browser().confirm_sign_out(&query, cookie).await;
    respond(&app, step).await
}

/// `POST /logout`.
async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = read_form(body).await?;
    let cookie = session(&app, &headers);
    let step = app.auth.browser().sign_out(&form, cookie).await;
    respond(&app, step).await
}

async fn read_form(body: Body) -> Result<Bytes, ApiError> {
    let form = axum::body::to_bytes(body, FORM_LIMIT).await;
    form.map_err(|_| ApiError::Page(ErrorPage::form_too_large()))
}

/// The session cookie's value, if the browser sent one.
fn session<'a>(app: &App, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = app.cookie_name();
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let mut pairs = cookies
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='));
    pairs.find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The client's address: the peer's, or behind a trusted proxy the rightmost `X-Forwarded-For` entry that is not
/// itself a trusted proxy (entries further left were written by the client and prove nothing).
fn client_addr(app: &App, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let mut addr = peer;
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        if !app.trusts(addr) {
            break;
        }
        match entry.trim().parse() {
            Ok(ip) => addr = ip,
            Err(_) => break,
        }
    }
    addr
}

/// Renders a step: the page or redirect, with the cookie change. A "try again later" page is held briefly.
async fn respond(app: &App, step: Step) -> Result<Response, ApiError> {
    let mut res = match step.outcome {
        Outcome::SignIn(page) => html(status(page.status()), sign_in_page(&page)),
        Outcome::Consent(page) => html(StatusCode::OK, consent_page(&page)),
        Outcome::SignedOut => html(
            StatusCode::OK,
            page("Signed out", "<p>You are signed out.</p>"),
        ),
        Outcome::ConfirmSignOut(p) => html(StatusCode::OK, sign_out_page(&p)),
        Outcome::Redirect(to) => {
            no_store((StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response())
        }
        Outcome::Error(page) => {
            if page.retry_after.is_some() {
                tokio::time::sleep(REFUSAL_DELAY).await;
            }
            return Err(ApiError::Page(page));
        }
    };
    let (value, max_age) = match step.cookie {
        SessionCookie::Keep => return Ok(res),
        SessionCookie::Set { value, max_age } => (value, max_age.as_secs()),
        SessionCookie::Clear => (String::new(), 0),
    };
    let secure = if app.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        app.cookie_name()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

// ---- the gate --------------------------------------------------------------------------------------------------

/// `/verify` (any method): extract the forwarded request, ask the engine, map its decision.
async fn verify(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let input = GateInput {
        forwarded: ForwardedHeaders {
            forwarded_method: field(&headers, "x-forwarded-method"),
            forwarded_proto: field(&headers, "x-forwarded-proto"),
            forwarded_host: field(&headers, "x-forwarded-host"),
            forwarded_uri: field(&headers, "x-forwarded-uri"),
            original_url: field(&headers, "x-original-url"),
            original_uri: field(&headers, "x-original-uri"),
            original_method: field(&headers, "x-original-method"),
            host: field(&headers, "host"),
        },
        from_trusted_proxy: app.trusts(peer.ip()),
        listener_https: false,
        authorization: field(&headers, "authorization"),
        origin: field(&headers, "origin"),
        mcp_protocol_version: field(&headers, "mcp-protocol-version"),
        mcp_method: field(&headers, "mcp-method"),
        mcp_name: field(&headers, "mcp-name"),
        // No proxy in front of this example forwards the body: per-tool rules read headers or fail closed.
        body: ForwardedBody::Absent,
    };
    let verdict = app.auth.gate(&input).await;
    match verdict.outcome {
        GateOutcome::Admit(p) => Ok(identity(Some(&p))),
        GateOutcome::Pass => Ok(identity(None)),
        GateOutcome::Reject(r) => Err(ApiError::Rejected(r, verdict.allow_origin)),
        GateOutcome::Refuse(r) => Err(ApiError::Refused(r, verdict.allow_origin)),
    }
}

/// One header as the gate reads it: absent, once (raw bytes), or repeated.
fn field<'a>(headers: &'a HeaderMap, name: &'static str) -> HeaderField<'a> {
    HeaderField::from_values(headers.get_all(name).iter().map(HeaderValue::as_bytes))
}

/// 200 with every identity header: the principal's values, or all empty (a discovery document passes).
fn identity(p: Option<&Principal>) -> Response {
    let scope = p.map(|p| p.scope().to_string());
    let values = [
        p.map(Principal::subject),
        p.and_then(Principal::username),
        p.and_then(Principal::email),
        p.map(Principal::client_id),
        scope.as_deref(),
    ];
    let mut res = no_store(StatusCode::OK.into_response());
    for (name, value) in IDENTITY_HEADERS.into_iter().zip(values) {
        let value = value.and_then(|v| HeaderValue::from_str(v).ok());
        res.headers_mut()
            .insert(name, value.unwrap_or(HeaderValue::from_static("")));
    }
    res
}

// ---- errors ----------------------------------------------------------------------------------------------------

/// Which authentication challenge a 401 from a client endpoint carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// None.
    None,
    /// `Basic` (client authentication by Basic failed; RFC 6749 §5.2).
    Basic,
    /// `Bearer error="invalid_token"` (a wrong initial access token at `/register`; RFC 6750 §3.1).
    Bearer,
}

/// Every error response of the adapter, mapped to HTTP in one place ([`IntoResponse`]).
#[derive(Debug)]
pub enum ApiError {
    /// An engine error at a JSON endpoint: its RFC status and `{error, error_description}` body. An internal
    /// failure is logged and shown as `server_error` / `temporarily_unavailable` with a generic text.
    OAuth(oauth_core::Error, Challenge),
    /// An error page of the browser steps, with `Retry-After` when it says when to retry.
    Page(ErrorPage),
    /// The gate's 401 or 403 with a Bearer challenge (RFC 6750 §3, RFC 9728 §5.1), and the allowed `Origin`.
    Rejected(VerifyRejection, Option<String>),
    /// The gate's 403 for a request refused whatever its token, and the allowed `Origin`.
    Refused(GateRefusal, Option<String>),
    /// 404.
    NotFound(&'static str),
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        ApiError::OAuth(e.into(), Challenge::None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::OAuth(error, challenge) => {
                let visible = error.client_view();
                let challenge = match (visible.code, challenge) {
                    (ErrorCode::InvalidClient, Challenge::Basic) => {
                        Some("Basic realm=\"oauth\"".to_owned())
                    }
                    (ErrorCode::InvalidToken, Challenge::Bearer) => Some(format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        visible.description
                    )),
                    _ => None,
                };
                let body = Json(visible.to_response());
                let res = no_store((status(visible.status()), body).into_response());
                with_header(res, header::WWW_AUTHENTICATE, challenge.as_deref())
            }
            ApiError::Page(page) => {
                let res = html(status(page.status), error_page(&page));
                let wait = page
                    .retry_after
                    .map(|d| oauth_core::throttle::whole_seconds(d).to_string());
                with_header(res, header::RETRY_AFTER, wait.as_deref())
            }
            ApiError::Rejected(r, origin) => {
                let fallback = if r.status() == 401 {
                    "unauthorized"
                } else {
                    "access_denied"
                };
                let body = json!({ "error": r.error_code().unwrap_or(fallback), "error_description": r.description });
                let res = no_store((status(r.status()), Json(body)).into_response());
                let res = with_header(res, header::WWW_AUTHENTICATE, Some(&r.www_authenticate()));
                cors(res, origin.as_deref())
            }
            ApiError::Refused(r, origin) => {
                let body = json!({ "error": r.error_code(), "error_description": r.description });
                let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::FORBIDDEN);
                cors(
                    no_store((status, Json(body)).into_response()),
                    origin.as_deref(),
                )
            }
            ApiError::NotFound(what) => {
                let body = json!({ "error": "not_found", "error_description": what });
                (StatusCode::NOT_FOUND, Json(body)).into_response()
            }
        }
    }
}

/// The status of a numeric code from the engine (which only names valid ones; anything else is a 500).
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn with_header(mut res: Response, name: HeaderName, value: Option<&str>) -> Response {
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
        res.headers_mut().insert(name, v);
    }
    res
}

fn no_store(res: Response) -> Response {
    with_header(res, header::CACHE_CONTROL, Some("no-store"))
}

/// CORS headers for an allowed origin, so a browser client can read a refusal and its `WWW-Authenticate`.
fn cors(res: Response, origin: Option<&str>) -> Response {
    let Some(origin) = origin else { return res };
    let res = with_header(res, header::ACCESS_CONTROL_ALLOW_ORIGIN, Some(origin));
    let res = with_header(
        res,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        Some(oauth_core::Preflight::EXPOSE_HEADERS),
    );
    with_header(res, header::VARY, Some("Origin"))
}

fn text<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ---- pages -----------------------------------------------------------------------------------------------------

/// An HTML response that can be neither framed (clickjacking the consent button) nor cached.
fn html(status: StatusCode, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (status, headers, body).into_response()
}

/// `s` safe inside HTML text and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: a title (escaped here) and an HTML body (escaped by the caller).
fn page(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{title}</title><body>{body}</body></html>"
    )
}

/// The hidden inputs every form of an authorization carries.
fn hidden(handle: &str, csrf: &str) -> String {
    let (handle, csrf) = (escape(handle), escape(csrf));
    format!(
        "<input type=\"hidden\" name=\"handle\" value=\"{handle}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">"
    )
}

fn client_name(prompt: &oauth_core::AuthorizationPrompt) -> String {
    escape(prompt.client_name.as_deref().unwrap_or(&prompt.client_id))
}

fn sign_in_page(p: &SignInPage) -> String {
    let form = hidden(&p.prompt.handle, &p.csrf);
    let mut body = format!(
        "<h1>Sign in</h1><p>to continue to an application calling itself “{}” (not verified)</p>",
        client_name(&p.prompt)
    );
    if let Some(error) = p.error {
        body.push_str(&format!("<p role=\"alert\">{}</p>", escape(error)));
    }
    for provider in &p.providers {
        let (id, name) = (escape(&provider.id), escape(&provider.name));
        body.push_str(&format!(
            "<form method=\"post\" action=\"/login/upstream\">{form}<input type=\"hidden\" name=\"provider\" \
             value=\"{id}\"><button>Sign in with {name}</button></form>"
        ));
    }
    if p.password {
        let username = escape(&p.username);
        body.push_str(&format!(
            "<form method=\"post\" action=\"/login\">{form}\
             <label>Username <input name=\"username\" value=\"{username}\" autocomplete=\"username\" required></label>\
             <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             </label><button>Sign in</button></form>"
        ));
    }
    page("Sign in", &body)
}

fn consent_page(p: &ConsentPage) -> String {
    let prompt = &p.prompt;
    let name = client_name(prompt);
    let resource = escape(p.resource_name.as_deref().unwrap_or(&prompt.resource));
    let to = escape(&prompt.redirect_host);
    // Any client can register under any name: the name is shown as a claim, never as the heading, and a
    // metadata-document client is named by the host that serves its document.
    let client = match &prompt.client_host {
        Some(host) => format!(
            "<strong>{}</strong> (calling itself “{name}”)",
            escape(host)
        ),
        None => format!("An application calling itself <strong>“{name}”</strong> (not verified)"),
    };
    let who = match (&p.user, &p.provider) {
        (Some(user), _) => format!(
            "<form method=\"post\" action=\"/logout\">Signed in as <strong>{}</strong>. {}\
             <button>Not you? Sign out</button></form>",
            escape(user),
            hidden(&prompt.handle, &p.csrf)
        ),
        (None, Some(provider)) => format!(
            "After you approve, you sign in with <strong>{}</strong>.",
            escape(&provider.name)
        ),
        (None, None) => String::new(),
    };
    let scopes: Vec<String> = p
        .scopes
        .iter()
        .map(|s| match &s.description {
            Some(d) => format!("<li><code>{}</code>: {}</li>", escape(&s.scope), escape(d)),
            None => format!("<li><code>{}</code></li>", escape(&s.scope)),
        })
        .collect();
    let mut body = format!(
        "<h1>Allow access to {resource}?</h1><p>{client} wants to access <strong>{resource}</strong>; \
         you will be sent back to <strong>{to}</strong>.</p>{who}<ul>{}</ul>",
        scopes.concat()
    );
    if !p.withheld.is_empty() {
        body.push_str(&format!(
            "<p>Not granted: <code>{}</code></p>",
            escape(&p.withheld.join(" "))
        ));
    }
    if prompt.redirect_is_loopback {
        body.push_str("<p><strong>Warning:</strong> the authorization goes to a program on your own computer. Approve only if you started this sign-in yourself, just now.</p>");
    }
    let provider = p.provider.as_ref().map_or_else(String::new, |pr| {
        format!(
            "<input type=\"hidden\" name=\"provider\" value=\"{}\">",
            escape(&pr.id)
        )
    });
    let remember = if p.rememberable {
        "<label><input type=\"checkbox\" name=\"remember\" value=\"on\"> Remember this decision</label>"
    } else {
        ""
    };
    body.push_str(&format!(
        "<form method=\"post\" action=\"/consent\">{}{provider}{remember}\
         <button name=\"decision\" value=\"approve\">Approve</button>\
         <button name=\"decision\" value=\"deny\">Deny</button></form>",
        hidden(&prompt.handle, &p.csrf)
    ));
    page("Authorize access", &body)
}

fn sign_out_page(p: &oauth_core::SignOutPage) -> String {
    let Some(who) = &p.signed_in else {
        return page("Sign out", "<p>You are not signed in.</p>");
    };
    let handle = p.handle.as_deref().map_or_else(String::new, |h| {
        format!(
            "<input type=\"hidden\" name=\"handle\" value=\"{}\">",
            escape(h)
        )
    });
    page(
        "Sign out",
        &format!(
            "<p>Signed in as {}.</p><form method=\"post\" action=\"/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">{handle}<button>Sign out</button></form>",
            escape(&who.user),
            escape(&who.csrf)
        ),
    )
}

fn error_page(p: &ErrorPage) -> String {
    page(
        &p.title,
        &format!("<h1>{}</h1><p>{}</p>", escape(&p.title), escape(&p.message)),
    )
}
