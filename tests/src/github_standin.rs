//! A stand-in for GitHub that follows GitHub's published OAuth and REST contract, on loopback, for tests of the
//! GitHub identity provider.
//!
//! DEVELOPERS.md allows one exception to "test against the real component": GitHub cannot run on a test machine.
//! So this stand-in serves exactly the requests and answers GitHub documents, laid out as a GitHub Enterprise
//! Server is (web at the root, REST API under `/api/v3`), so tests configure the provider the way an Enterprise
//! user would (`web_base_url = http://127.0.0.1:PORT`, `api_base_url = http://127.0.0.1:PORT/api/v3`).
//!
//! # What it serves
//!
//! * `GET /login/oauth/authorize`: a real GitHub shows a sign-in and consent page; a test has no one to click
//!   it, so the stand-in answers at once as if the user had approved: `302` to `redirect_uri` with `code` and
//!   `state`, for the user the test "signed in" with [`GithubStandIn::sign_in`]. With
//!   [`GithubStandIn::set_user_cancels`] it answers as if the user clicked *Cancel*: `error=access_denied` with
//!   GitHub's documented description and `error_uri`. An unknown `client_id` gets GitHub's 404 page; a
//!   `redirect_uri` that is not below the registered callback URL gets `error=redirect_uri_mismatch` at the
//!   registered callback URL.
//! * `POST /login/oauth/access_token`: checks `client_id`/`client_secret`, the code (single use, 10 minutes), the
//!   `redirect_uri` against the one the code was issued for, and PKCE `S256` (`code_verifier`) when the code was
//!   issued with a challenge. Like GitHub it answers **200** for errors, with GitHub's documented error bodies
//!   (`incorrect_client_credentials`, `redirect_uri_mismatch`, `bad_verification_code`), as JSON when asked with
//!   `Accept: application/json` and form-encoded otherwise. With [`StandInApp::expiring_tokens`] it behaves like
//!   a GitHub App with expiring user tokens: `expires_in`, `refresh_token`, and the `refresh_token` grant, which
//!   retires both old tokens.
//! * `GET /api/v3/user`, `/user/emails`, `/user/orgs`, `/user/teams`: GitHub's response shapes, paginated with
//!   `per_page` (default 30, max 100), `page` and a `Link` header. They need `Authorization: Bearer <token>` (or
//!   `token <token>`) and answer 401 `{"message": "Bad credentials", …}` otherwise; a `User-Agent` (403 without
//!   one, as GitHub); and the scopes GitHub documents (`user:email` for e-mails, else 404; `read:org` or `user`
//!   for orgs, and also `repo` for teams, else 403). Every answer carries `X-OAuth-Scopes` and the rate-limit
//!   headers.
//!
//! Test switches: revoke a user's tokens ([`GithubStandIn::revoke_tokens_of`]), remove a user from an org,
//! expire access tokens, answer 503 ([`GithubStandIn::set_down`]), exhaust the rate limit, or answer slowly.
//!
//! Where GitHub documents no exact answer, the stand-in's choice is marked in a comment.
//!
//! # Sources
//!
//! * <https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>
//! * <https://github.blog/changelog/2025-07-14-pkce-support-for-oauth-and-github-app-authentication>
//! * <https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-authorization-request-errors>
//! * <https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors>
//! * <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens>
//! * <https://docs.github.com/en/rest/users/users#get-the-authenticated-user>
//! * <https://docs.github.com/en/rest/users/emails#list-email-addresses-for-the-authenticated-user>
//! * <https://docs.github.com/en/rest/orgs/orgs#list-organizations-for-the-authenticated-user>
//! * <https://docs.github.com/en/rest/teams/teams#list-teams-for-the-authenticated-user>
//! * <https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>
//! * <https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The API prefix of a GitHub Enterprise Server.
pub const API_PREFIX: &str = "/api/v3";
/// The REST API version the stand-in serves.
pub const API_VERSION: &str = "2022-11-28";
/// Lifetime of an authorization code at GitHub.
const CODE_TTL: Duration = Duration::from_secs(600);
/// Lifetimes GitHub gives expiring user tokens (8 hours) and their refresh tokens (about 6 months).
const EXPIRES_IN: u64 = 28_800;
const REFRESH_EXPIRES_IN: u64 = 15_897_600;

const TOKEN_ERRORS: &str =
    "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";
const AUTHORIZE_ERRORS: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/";

/// The OAuth app registered at the stand-in.
#[derive(Clone, Debug)]
pub struct StandInApp {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// The registered "Authorization callback URL".
    pub callback_url: String,
    /// Issue expiring user tokens with refresh tokens, as a GitHub App that opted in does.
    pub expiring_tokens: bool,
}

impl StandInApp {
    /// An OAuth app (tokens that do not expire).
    pub fn new(client_id: &str, client_secret: &str, callback_url: &str) -> Self {
        StandInApp {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            callback_url: callback_url.into(),
            expiring_tokens: false,
        }
    }

    /// Behave like a GitHub App with expiring user tokens.
    #[must_use]
    pub fn expiring_tokens(mut self) -> Self {
        self.expiring_tokens = true;
        self
    }
}

/// One e-mail address of a user.
#[derive(Clone, Debug)]
pub struct StandInEmail {
    /// The address.
    pub email: String,
    /// Whether it is the primary address.
    pub primary: bool,
    /// Whether GitHub verified it.
    pub verified: bool,
}

/// A GitHub user of the stand-in.
#[derive(Clone, Debug)]
pub struct StandInUser {
    /// Numeric id.
    pub id: u64,
    /// Login.
    pub login: String,
    /// Display name.
    pub name: Option<String>,
    /// The public profile e-mail (`email` of `GET /user`), whatever its verification.
    pub public_email: Option<String>,
    /// E-mail addresses (`GET /user/emails`).
    pub emails: Vec<StandInEmail>,
    /// Organization logins.
    pub orgs: Vec<String>,
    /// Teams as (org login, team name); the slug is derived from the name as GitHub does.
    pub teams: Vec<(String, String)>,
}

impl StandInUser {
    /// A user with an id and a login, nothing else.
    pub fn new(id: u64, login: &str) -> Self {
        StandInUser {
            id,
            login: login.into(),
            name: None,
            public_email: None,
            emails: Vec::new(),
            orgs: Vec::new(),
            teams: Vec::new(),
        }
    }

    /// Sets the display name.
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the public profile e-mail.
    #[must_use]
    pub fn public_email(mut self, email: &str) -> Self {
        self.public_email = Some(email.into());
        self
    }

    /// Adds an e-mail address.
    #[must_use]
    pub fn email(mut self, email: &str, primary: bool, verified: bool) -> Self {
        self.emails.push(StandInEmail {
            email: email.into(),
            primary,
            verified,
        });
        self
    }

    /// Adds an organization membership.
    #[must_use]
    pub fn in_org(mut self, org: &str) -> Self {
        self.orgs.push(org.into());
        self
    }

    /// Adds a team membership (and the org's, if missing).
    #[must_use]
    pub fn in_team(mut self, org: &str, team_name: &str) -> Self {
        if !self.orgs.iter().any(|o| o == org) {
            self.orgs.push(org.into());
        }
        self.teams.push((org.into(), team_name.into()));
        self
    }
}

struct CodeGrant {
    user: u64,
    redirect_uri: Option<String>,
    challenge: Option<String>,
    scopes: Vec<String>,
    issued: Instant,
}

struct TokenGrant {
    user: u64,
    scopes: Vec<String>,
    expired: bool,
}

#[derive(Default)]
struct State {
    users: Vec<StandInUser>,
    signed_in: Option<u64>,
    user_cancels: bool,
    down: bool,
    rate_limited: bool,
    delay: Option<Duration>,
    codes: HashMap<String, CodeGrant>,
    tokens: HashMap<String, TokenGrant>,
    refresh_tokens: HashMap<String, (u64, Vec<String>)>,
    requests: Vec<String>,
}

struct Shared {
    app: StandInApp,
    web_base: String,
    api_base: String,
    state: Mutex<State>,
}

/// A running stand-in; stops when dropped.
pub struct GithubStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl GithubStandIn {
    /// Starts the stand-in on `127.0.0.1:0` with one registered app and these users.
    ///
    /// # Errors
    /// Binding or starting the server failed.
    pub fn start(app: StandInApp, users: Vec<StandInUser>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let web_base = format!("http://{addr}");
        let shared = Arc::new(Shared {
            app,
            api_base: format!("{web_base}{API_PREFIX}"),
            web_base,
            state: Mutex::new(State {
                users,
                ..State::default()
            }),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/login/oauth/authorize", web::get().to(authorize))
                .route("/login/oauth/access_token", web::post().to(access_token))
                .service(
                    web::scope(API_PREFIX)
                        .route("/user", web::get().to(user))
                        .route("/user/emails", web::get().to(emails))
                        .route("/user/orgs", web::get().to(orgs))
                        .route("/user/teams", web::get().to(teams)),
                )
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(GithubStandIn {
            addr,
            shared,
            handle,
        })
    }

    /// `http://127.0.0.1:PORT`: the web base URL (as a GHES `https://HOST`).
    pub fn web_base_url(&self) -> String {
        self.shared.web_base.clone()
    }

    /// `http://127.0.0.1:PORT/api/v3`: the REST API base URL (as a GHES `https://HOST/api/v3`).
    pub fn api_base_url(&self) -> String {
        self.shared.api_base.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The user whose browser is signed in at GitHub (who the next authorization is for).
    pub fn sign_in(&self, user_id: u64) {
        self.shared.state.lock().signed_in = Some(user_id);
    }

    /// Whether the user clicks *Cancel* on GitHub's authorization page.
    pub fn set_user_cancels(&self, cancels: bool) {
        self.shared.state.lock().user_cancels = cancels;
    }

    /// Revokes every token of a user, as when they revoke the app in their settings.
    pub fn revoke_tokens_of(&self, user_id: u64) {
        let mut s = self.shared.state.lock();
        s.tokens.retain(|_, t| t.user != user_id);
        s.refresh_tokens.retain(|_, (u, _)| *u != user_id);
    }

    /// Removes a user from an org (and its teams).
    pub fn remove_from_org(&self, user_id: u64, org: &str) {
        let mut s = self.shared.state.lock();
        if let Some(u) = s.users.iter_mut().find(|u| u.id == user_id) {
            u.orgs.retain(|o| !o.eq_ignore_ascii_case(org));
            u.teams.retain(|(o, _)| !o.eq_ignore_ascii_case(org));
        }
    }

    /// Lets every access token issued so far expire (refresh tokens stay valid).
    pub fn expire_access_tokens(&self) {
        for t in self.shared.state.lock().tokens.values_mut() {
            t.expired = true;
        }
    }

    /// Answers every request with 503, as GitHub does during an outage.
    pub fn set_down(&self, down: bool) {
        self.shared.state.lock().down = down;
    }

    /// Answers API requests with GitHub's primary rate-limit 403.
    pub fn set_rate_limited(&self, limited: bool) {
        self.shared.state.lock().rate_limited = limited;
    }

    /// Waits this long before answering any request.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.shared.state.lock().delay = delay;
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.state.lock().requests.clone()
    }

    /// Stops the server; connections to its port are refused afterwards.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Drop for GithubStandIn {
    fn drop(&mut self) {
        // Stopping is asynchronous; the returned future only waits for it, so dropping it is fine.
        drop(self.handle.stop(false));
    }
}

/// Logs the request, then applies the outage switches: the answer to give instead, if any.
async fn disruption(s: &Shared, req: &HttpRequest) -> Option<HttpResponse> {
    let delay = {
        let mut st = s.state.lock();
        let line = match req.query_string() {
            "" => format!("{} {}", req.method(), req.path()),
            q => format!("{} {}?{q}", req.method(), req.path()),
        };
        st.requests.push(line);
        st.delay
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    s.state.lock().down.then(|| {
        // GitHub's outage page is HTML; the body shape does not matter to clients, the status does.
        HttpResponse::ServiceUnavailable()
            .content_type("text/html; charset=utf-8")
            .body("<html><body><h1>Unicorn!</h1><p>This page is taking too long to load.</p></body></html>")
    })
}

fn pairs_to_map(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    map
}

fn random_alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Whether `candidate` is allowed for the registered callback URL: same scheme, host and port, and a path at or
/// below the registered one (GitHub's rule for OAuth apps, "Redirect URLs").
fn redirect_allowed(registered: &str, candidate: &str) -> bool {
    let (Ok(r), Ok(c)) = (url::Url::parse(registered), url::Url::parse(candidate)) else {
        return false;
    };
    r.scheme() == c.scheme()
        && r.host_str() == c.host_str()
        && r.port_or_known_default() == c.port_or_known_default()
        && c.path().starts_with(r.path().trim_end_matches('/'))
}

fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

fn found(location: String) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `GET /login/oauth/authorize`.
async fn authorize(
    s: web::Data<Shared>,
    req: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    if let Some(r) = disruption(&s, &req).await {
        return r;
    }
    let q = pairs_to_map(query.into_inner());
    if q.get("client_id") != Some(&s.app.client_id) {
        // GitHub renders its 404 page for an unknown client_id.
        return HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body("<html><body><h1>404</h1><p>This is not the web page you are looking for.</p></body></html>");
    }
    let state = q.get("state").cloned();
    let state_param = state.as_deref().map(|st| ("state", st));
    let registered = s.app.callback_url.as_str();
    let redirect_uri = q.get("redirect_uri").cloned();
    let target = redirect_uri
        .clone()
        .unwrap_or_else(|| registered.to_owned());
    if !redirect_allowed(registered, &target) {
        let mut params = vec![
            ("error", "redirect_uri_mismatch"),
            (
                "error_description",
                "The redirect_uri MUST match the registered callback URL for this application.",
            ),
        ];
        let uri = format!("{AUTHORIZE_ERRORS}#redirect-uri-mismatch");
        params.push(("error_uri", uri.as_str()));
        params.extend(state_param);
        return found(with_query(registered, &params));
    }
    let challenge = q.get("code_challenge").cloned();
    let method_ok = match q.get("code_challenge_method").map(String::as_str) {
        None | Some("S256") => true,
        Some(_) => false,
    };
    if !method_ok || challenge.as_deref().is_some_and(|c| c.len() != 43) {
        // GitHub accepts S256 only; it documents no error for other methods, so the stand-in refuses with the
        // RFC 6749 code `invalid_request`.
        let mut params = vec![
            ("error", "invalid_request"),
            (
                "error_description",
                "code_challenge_method must be S256 with a 43-character code_challenge",
            ),
        ];
        params.extend(state_param);
        return found(with_query(&target, &params));
    }
    let (cancels, signed_in) = {
        let st = s.state.lock();
        (st.user_cancels, st.signed_in)
    };
    if cancels {
        let uri = format!("{AUTHORIZE_ERRORS}#access-denied");
        let mut params = vec![
            ("error", "access_denied"),
            (
                "error_description",
                "The user has denied your application access.",
            ),
            ("error_uri", uri.as_str()),
        ];
        params.extend(state_param);
        return found(with_query(&target, &params));
    }
    let Some(user) = signed_in else {
        // Nobody is signed in: GitHub shows its sign-in form.
        return HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body("<html><body><h1>Sign in to GitHub</h1></body></html>");
    };
    // A real GitHub shows the consent page here; the stand-in answers as if the user clicked "Authorize".
    let scopes: Vec<String> = q
        .get("scope")
        .map(|sc| {
            sc.split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let code = random_hex(20);
    s.state.lock().codes.insert(
        code.clone(),
        CodeGrant {
            user,
            redirect_uri,
            challenge,
            scopes,
            issued: Instant::now(),
        },
    );
    let mut params = vec![("code", code.as_str())];
    params.extend(state_param);
    found(with_query(&target, &params))
}

/// Answers the token endpoint as GitHub does: JSON if asked for, form-encoded by default.
fn token_answer(req: &HttpRequest, fields: Vec<(&str, Value)>) -> HttpResponse {
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let body: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        return HttpResponse::Ok().json(Value::Object(body));
    }
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (*k, text)
        }))
        .finish();
    HttpResponse::Ok()
        .content_type("application/x-www-form-urlencoded; charset=utf-8")
        .body(encoded)
}

fn token_error(req: &HttpRequest, error: &str, description: &str, anchor: &str) -> HttpResponse {
    token_answer(
        req,
        vec![
            ("error", json!(error)),
            ("error_description", json!(description)),
            ("error_uri", json!(format!("{TOKEN_ERRORS}#{anchor}"))),
        ],
    )
}

fn issue_tokens(s: &Shared, req: &HttpRequest, user: u64, scopes: Vec<String>) -> HttpResponse {
    let scope = scopes.join(",");
    let mut st = s.state.lock();
    if s.app.expiring_tokens {
        let access = format!("ghu_{}", random_alnum(36));
        let refresh = format!("ghr_{}", random_alnum(76));
        st.tokens.insert(
            access.clone(),
            TokenGrant {
                user,
                scopes: scopes.clone(),
                expired: false,
            },
        );
        st.refresh_tokens.insert(refresh.clone(), (user, scopes));
        drop(st);
        token_answer(
            req,
            vec![
                ("access_token", json!(access)),
                ("expires_in", json!(EXPIRES_IN)),
                ("refresh_token", json!(refresh)),
                ("refresh_token_expires_in", json!(REFRESH_EXPIRES_IN)),
                ("scope", json!("")),
                ("token_type", json!("bearer")),
            ],
        )
    } else {
        let access = format!("gho_{}", random_alnum(36));
        st.tokens.insert(
            access.clone(),
            TokenGrant {
                user,
                scopes,
                expired: false,
            },
        );
        drop(st);
        token_answer(
            req,
            vec![
                ("access_token", json!(access)),
                ("scope", json!(scope)),
                ("token_type", json!("bearer")),
            ],
        )
    }
}

/// `POST /login/oauth/access_token`.
async fn access_token(
    s: web::Data<Shared>,
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    if let Some(r) = disruption(&s, &req).await {
        return r;
    }
    let f = pairs_to_map(form.into_inner());
    if f.get("client_id") != Some(&s.app.client_id)
        || f.get("client_secret") != Some(&s.app.client_secret)
    {
        return token_error(
            &req,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            "incorrect-client-credentials",
        );
    }
    if f.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh(&s, &req, &f);
    }
    let grant = f
        .get("code")
        .and_then(|c| s.state.lock().codes.remove(c))
        .filter(|g| g.issued.elapsed() < CODE_TTL);
    let Some(grant) = grant else {
        return token_error(
            &req,
            "bad_verification_code",
            "The code passed is incorrect or expired.",
            "bad-verification-code",
        );
    };
    if let (Some(issued_for), Some(given)) = (&grant.redirect_uri, f.get("redirect_uri"))
        && issued_for != given
    {
        return token_error(
            &req,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
            "redirect-uri-mismatch2",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verified = f
            .get("code_verifier")
            .is_some_and(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == *challenge);
        if !verified {
            // GitHub documents no separate error for a PKCE failure; the code is refused like a wrong code.
            return token_error(
                &req,
                "bad_verification_code",
                "The code passed is incorrect or expired.",
                "bad-verification-code",
            );
        }
    }
    issue_tokens(&s, &req, grant.user, grant.scopes)
}

/// The `refresh_token` grant of GitHub Apps with expiring user tokens: both old tokens stop working.
fn refresh(s: &Shared, req: &HttpRequest, f: &HashMap<String, String>) -> HttpResponse {
    let found = {
        let mut st = s.state.lock();
        let found = f
            .get("refresh_token")
            .and_then(|t| st.refresh_tokens.remove(t));
        if let Some((user, _)) = &found {
            st.tokens.retain(|_, t| t.user != *user);
        }
        found
    };
    match found {
        Some((user, scopes)) if s.app.expiring_tokens => issue_tokens(s, req, user, scopes),
        // The refresh error is not in the pages cited above; this is the code GitHub answers with.
        _ => token_error(
            req,
            "bad_refresh_token",
            "The refresh token passed is incorrect or expired.",
            "bad-refresh-token",
        ),
    }
}

fn api_error(status: StatusCode, message: &str, documentation_url: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "message": message,
        "documentation_url": documentation_url,
        "status": status.as_u16().to_string(),
    }))
}

/// The checks every REST request passes: outage switches, `User-Agent`, API version, rate limit, and the token.
/// Returns the user and the token's scopes.
async fn api_auth(
    s: &Shared,
    req: &HttpRequest,
    doc: &str,
) -> Result<(StandInUser, Vec<String>), HttpResponse> {
    if let Some(r) = disruption(s, req).await {
        return Err(r);
    }
    let headers = req.headers();
    if !headers.contains_key(header::USER_AGENT) {
        return Err(HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n"));
    }
    if let Some(v) = headers.get("x-github-api-version")
        && v.as_bytes() != API_VERSION.as_bytes()
    {
        // The stand-in serves one version; GitHub answers 400 for versions it does not support.
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "Unsupported 'X-GitHub-Api-Version' header value",
            "https://docs.github.com/rest/about-the-rest-api/api-versions",
        ));
    }
    let st = s.state.lock();
    if st.rate_limited {
        let mut r = api_error(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded for user.",
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        );
        let h = r.headers_mut();
        for (k, v) in [
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-used", "5000"),
            ("x-ratelimit-resource", "core"),
        ] {
            h.insert(
                header::HeaderName::from_static(k),
                header::HeaderValue::from_static(v),
            );
        }
        return Err(r);
    }
    let Some(token) = bearer(headers) else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
            doc,
        ));
    };
    let grant = st.tokens.get(&token).filter(|t| !t.expired);
    let found = grant.and_then(|g| {
        st.users
            .iter()
            .find(|u| u.id == g.user)
            .map(|u| (u.clone(), g.scopes.clone()))
    });
    found.ok_or_else(|| {
        api_error(
            StatusCode::UNAUTHORIZED,
            "Bad credentials",
            "https://docs.github.com/rest",
        )
    })
}

/// `Authorization: Bearer <token>` or GitHub's older `token <token>`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    (ok && !token.trim().is_empty()).then(|| token.trim().to_owned())
}

fn has_any(scopes: &[String], wanted: &[&str]) -> bool {
    scopes.iter().any(|s| wanted.contains(&s.as_str()))
}

/// A successful REST answer with GitHub's informational headers.
fn api_ok(scopes: &[String], accepted: &str, body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("x-oauth-scopes", scopes.join(", ")))
        .insert_header(("x-accepted-oauth-scopes", accepted))
        .insert_header(("x-github-api-version-selected", API_VERSION))
        .insert_header(("x-ratelimit-limit", "5000"))
        .insert_header(("x-ratelimit-remaining", "4999"))
        .insert_header(("x-ratelimit-used", "1"))
        .insert_header(("x-ratelimit-resource", "core"))
        .json(body)
}

/// One page of a list, with GitHub's `Link` header.
fn api_page(
    s: &Shared,
    req: &HttpRequest,
    scopes: &[String],
    accepted: &str,
    items: Vec<Value>,
) -> HttpResponse {
    let q = pairs_to_map(
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect(),
    );
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let path = req.path();
    let link = |p: usize, rel: &str| {
        format!(
            "<{}{}?per_page={per_page}&page={p}>; rel=\"{rel}\"",
            s.web_base, path
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut r = api_ok(scopes, accepted, Value::Array(body));
    if !links.is_empty()
        && let Ok(v) = header::HeaderValue::from_str(&links.join(", "))
    {
        r.headers_mut().insert(header::LINK, v);
    }
    r
}

fn org_simple(s: &Shared, login: &str) -> Value {
    let api = &s.api_base;
    json!({
        "login": login,
        "id": org_id(login),
        "node_id": format!("O_kgDO{}", org_id(login)),
        "url": format!("{api}/orgs/{login}"),
        "repos_url": format!("{api}/orgs/{login}/repos"),
        "events_url": format!("{api}/orgs/{login}/events"),
        "hooks_url": format!("{api}/orgs/{login}/hooks"),
        "issues_url": format!("{api}/orgs/{login}/issues"),
        "members_url": format!("{api}/orgs/{login}/members{{/member}}"),
        "public_members_url": format!("{api}/orgs/{login}/public_members{{/member}}"),
        "avatar_url": format!("{}/avatars/{login}", s.web_base),
        "description": Value::Null,
    })
}

/// A stable id per org login.
fn org_id(login: &str) -> u64 {
    login.to_lowercase().bytes().fold(1000_u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }) % 100_000_000
}

/// GitHub's slug of a team name: lower case, runs of other characters become `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// `GET /user`.
async fn user(s: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let doc = "https://docs.github.com/rest/users/users#get-the-authenticated-user";
    let (u, scopes) = match api_auth(&s, &req, doc).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let (api, web) = (&s.api_base, &s.web_base);
    let login = &u.login;
    // Built in two parts: one `json!` this large exceeds the default macro recursion limit.
    let mut body = json!({
        "login": login,
        "id": u.id,
        "node_id": format!("U_kgDO{}", u.id),
        "avatar_url": format!("{web}/avatars/u/{}", u.id),
        "gravatar_id": "",
        "url": format!("{api}/users/{login}"),
        "html_url": format!("{web}/{login}"),
        "followers_url": format!("{api}/users/{login}/followers"),
        "following_url": format!("{api}/users/{login}/following{{/other_user}}"),
        "gists_url": format!("{api}/users/{login}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/users/{login}/subscriptions"),
        "organizations_url": format!("{api}/users/{login}/orgs"),
        "repos_url": format!("{api}/users/{login}/repos"),
        "events_url": format!("{api}/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("{api}/users/{login}/received_events"),
        "type": "User",
        "user_view_type": "private",
        "site_admin": false,
    });
    let profile = json!({
        "name": u.name,
        "company": Value::Null,
        "blog": "",
        "location": Value::Null,
        "email": u.public_email,
        "hireable": Value::Null,
        "bio": Value::Null,
        "twitter_username": Value::Null,
        "notification_email": u.public_email,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    });
    let private = json!({
        "private_gists": 0,
        "total_private_repos": 0,
        "owned_private_repos": 0,
        "disk_usage": 0,
        "collaborators": 0,
        "two_factor_authentication": true,
        "plan": { "name": "free", "space": 976_562_499, "collaborators": 0, "private_repos": 10000 },
    });
    if let (Value::Object(all), Value::Object(p1), Value::Object(p2)) =
        (&mut body, profile, private)
    {
        all.extend(p1);
        all.extend(p2);
    }
    api_ok(&scopes, "", body)
}

/// `GET /user/emails` (needs `user:email` or `user`).
async fn emails(s: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let doc =
        "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user";
    let (u, scopes) = match api_auth(&s, &req, doc).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if !has_any(&scopes, &["user:email", "user"]) {
        return api_error(StatusCode::NOT_FOUND, "Not Found", doc);
    }
    let items = u
        .emails
        .iter()
        .map(|e| {
            json!({
                "email": e.email,
                "verified": e.verified,
                "primary": e.primary,
                "visibility": if e.primary { json!("private") } else { Value::Null },
            })
        })
        .collect();
    api_page(&s, &req, &scopes, "user, user:email", items)
}

/// `GET /user/orgs` (needs `read:org` or `user`; 403 otherwise, as documented).
async fn orgs(s: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let doc =
        "https://docs.github.com/rest/orgs/orgs#list-organizations-for-the-authenticated-user";
    let (u, scopes) = match api_auth(&s, &req, doc).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if !has_any(&scopes, &["read:org", "write:org", "admin:org", "user"]) {
        return api_error(
            StatusCode::FORBIDDEN,
            "You need at least read:org scope or user scope to list your organizations.",
            doc,
        );
    }
    let items = u.orgs.iter().map(|o| org_simple(&s, o)).collect();
    api_page(
        &s,
        &req,
        &scopes,
        "admin:org, read:org, repo, user, write:org",
        items,
    )
}

/// `GET /user/teams` (needs `read:org`, `repo` or `user`).
async fn teams(s: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let doc = "https://docs.github.com/rest/teams/teams#list-teams-for-the-authenticated-user";
    let (u, scopes) = match api_auth(&s, &req, doc).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if !has_any(
        &scopes,
        &["read:org", "write:org", "admin:org", "repo", "user"],
    ) {
        // The message is the stand-in's own; the status is GitHub's for a missing scope.
        return api_error(
            StatusCode::FORBIDDEN,
            "You need at least read:org, repo or user scope to list your teams.",
            doc,
        );
    }
    let api = &s.api_base;
    let items = u
        .teams
        .iter()
        .enumerate()
        .map(|(i, (org, name))| {
            let slug = slug(name);
            let id = org_id(org).saturating_mul(100).saturating_add(i as u64);
            let mut organization = org_simple(&s, org);
            if let Value::Object(o) = &mut organization {
                o.insert("type".into(), json!("Organization"));
                o.insert("html_url".into(), json!(format!("{}/{org}", s.web_base)));
                o.insert("name".into(), json!(org));
            }
            json!({
                "id": id,
                "node_id": format!("T_kwDO{id}"),
                "url": format!("{api}/teams/{id}"),
                "html_url": format!("{}/orgs/{org}/teams/{slug}", s.web_base),
                "name": name,
                "slug": slug,
                "description": "",
                "privacy": "closed",
                "notification_setting": "notifications_enabled",
                "permission": "pull",
                "members_url": format!("{api}/teams/{id}/members{{/member}}"),
                "repositories_url": format!("{api}/teams/{id}/repos"),
                "parent": Value::Null,
                "members_count": 1,
                "repos_count": 0,
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2025-01-01T00:00:00Z",
                "organization": organization,
            })
        })
        .collect();
    api_page(
        &s,
        &req,
        &scopes,
        "admin:org, read:org, repo, user, write:org",
        items,
    )
}

/// Anything else: GitHub's JSON 404.
async fn not_found(s: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if let Some(r) = disruption(&s, &req).await {
        return r;
    }
    api_error(
        StatusCode::NOT_FOUND,
        "Not Found",
        "https://docs.github.com/rest",
    )
}
