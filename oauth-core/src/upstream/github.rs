//! GitHub (github.com or GitHub Enterprise Server) as an upstream identity provider: an OAuth app's web flow, then
//! GitHub's REST API for who the user is.
//!
//! # Why it is shaped this way
//!
//! GitHub is not an OpenID Connect provider: there is no ID token to verify, so who logged in comes from the REST
//! API, asked with the user's token right after the code exchange (GitHub asks apps to revalidate the user with
//! every token they receive). The round trip:
//!
//! 1. `GET {web}/login/oauth/authorize` with `client_id`, `redirect_uri`, `scope`, our single-use `state`, and a
//!    PKCE `S256` challenge (GitHub accepts `S256` only; servers that predate PKCE ignore the parameters, as RFC
//!    6749 §3.1 asks of unknown ones). `allow_signup=false`: a login gate is no place to create GitHub accounts.
//! 2. `POST {web}/login/oauth/access_token` with `Accept: application/json`, the client secret, the code, the same
//!    `redirect_uri` and the `code_verifier`. GitHub answers **200 even for errors** (`{"error":
//!    "bad_verification_code", …}`), so the body decides, not the status.
//! 3. `GET {api}/user`: the numeric `id` (the subject is `<provider id>:<id>`, e.g. `github:583231`: logins can be
//!    renamed and reused, ids cannot), the `login` (the username) and the `name`.
//! 4. `GET {api}/user/emails`: only the address that is both `primary` and `verified` becomes the e-mail. The
//!    `email` field of `/user` is the *public* address, whose verification the API does not state, so it is never
//!    used: an unverified address would let anyone claim a domain that an e-mail policy admits.
//! 5. Only when configured (they need the `read:org` scope): `GET {api}/user/orgs` gives groups named by the org
//!    login (`acme`), `GET {api}/user/teams` groups named `org/team-slug` (`acme/platform`). Both are lower-cased,
//!    as GitHub treats them case-insensitively; access policies must name them in lower case.
//!
//! List endpoints are read with `per_page=100`, following `Link: rel="next"` while it stays below the configured
//! API base, for at most 10 pages (a truncated list can only drop groups, never add one).
//!
//! At refresh, [`GithubProvider`]'s `recheck` asks `/user` (and orgs and teams) again with the stored token: a 401
//! means the user revoked the app, the token was deleted, or the account is gone, and the grant ends; fresh
//! orgs and teams let the access policy notice a removal from an org. User tokens of GitHub Apps that expire are
//! renewed with their refresh token (before they expire, or after a 401).
//!
//! # Failure policy
//!
//! | GitHub's answer | at login ([`UpstreamError`]) | at refresh |
//! |---|---|---|
//! | no connection, timeout, 5xx, 429, 403 with an exhausted rate limit, a body that is not the documented shape | `Unavailable` (→ `temporarily_unavailable`) | `Unavailable` (refresh refused for now, grant kept) |
//! | token endpoint `error` (bad code, wrong client credentials, redirect URI mismatch) | `LoginFailed` (→ `access_denied`) | renewing fails: user gone (grant ends) |
//! | 401 from `/user` (and no refresh token that helps) | `LoginFailed` | user gone (grant ends) |
//! | other 403 from `/user` (suspended account) | `LoginFailed` | user gone (grant ends) |
//! | 403/404 from `/user/emails`, `/user/orgs`, `/user/teams` (scope not granted) | that data is left out (logged) | same |
//!
//! # Security
//!
//! The client secret and the user's GitHub tokens stay in this module and in the grant's [`UpstreamSession`]:
//! they are never logged and never put in our tokens (no token passthrough). Redirects are not followed and
//! pagination links only below the API base, so the bearer token goes nowhere but GitHub. Every request has a
//! connect timeout and a total timeout, and answers are read up to 1 MiB, so a stuck or hostile upstream cannot
//! hang a login or a refresh.
//!
//! # GitHub's contract followed
//!
//! * OAuth web flow: <https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>
//! * PKCE (S256 only): <https://github.blog/changelog/2025-07-14-pkce-support-for-oauth-and-github-app-authentication>
//! * Token errors: <https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors>
//! * Authorization errors (`access_denied`): <https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-authorization-request-errors>
//! * Expiring user tokens: <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens>
//! * Scopes: <https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps>
//! * REST: <https://docs.github.com/en/rest/users/users#get-the-authenticated-user>,
//!   <https://docs.github.com/en/rest/users/emails#list-email-addresses-for-the-authenticated-user>,
//!   <https://docs.github.com/en/rest/orgs/orgs#list-organizations-for-the-authenticated-user>,
//!   <https://docs.github.com/en/rest/teams/teams#list-teams-for-the-authenticated-user>
//! * Headers, pagination, rate limits: <https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api>,
//!   <https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>,
//!   <https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK, RETRY_AFTER};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{
    Credentials, IdentityProvider, Login, LoginStart, Recheck, UpstreamError, UpstreamRequest,
    upstream_http_client,
};
use crate::clock::Clock;
use crate::config::{ConfigError, ConfigProblem, secure_url};
use crate::types::{Identity, UpstreamSession};

/// The REST API version we speak (`X-GitHub-Api-Version`).
const API_VERSION: &str = "2022-11-28";
/// The largest answer we read from GitHub.
const MAX_BODY: usize = 1 << 20;
/// Page size for list endpoints (GitHub's maximum).
const PER_PAGE: u32 = 100;
/// Pages read at most per list endpoint.
const MAX_PAGES: usize = 10;
/// An expiring upstream token is renewed this long before it expires.
const RENEW_AHEAD_SECS: u64 = 60;

/// Settings of a [`GithubProvider`]: an OAuth app (or a GitHub App's user authorization) on github.com or on a
/// GitHub Enterprise Server.
///
/// `Debug` leaves the client secret out.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GithubConfig {
    /// Provider id, also the namespace of subjects (`github:<numeric id>`). Default `github`.
    pub id: String,
    /// Name on the login chooser. Default `GitHub`.
    pub display_name: String,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// Where users log in: `https://github.com` (default), or `https://HOST` for GitHub Enterprise Server.
    pub web_base_url: String,
    /// The REST API: `https://api.github.com` (default), or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_base_url: String,
    /// OAuth scopes to request. Default `read:user` and `user:email`; `read:org` is added when
    /// [`fetch_orgs`](Self::fetch_orgs) or [`fetch_teams`](Self::fetch_teams) is on.
    pub scopes: Vec<String>,
    /// Read the user's organizations into groups (`acme`).
    pub fetch_orgs: bool,
    /// Read the user's teams into groups (`acme/platform`).
    pub fetch_teams: bool,
    /// Connect and total timeout of each request to GitHub. Default 10 s.
    pub timeout: Duration,
}

impl GithubConfig {
    /// A github.com configuration for the app with these credentials, with the defaults above.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        GithubConfig {
            id: "github".into(),
            display_name: "GitHub".into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            web_base_url: "https://github.com".into(),
            api_base_url: "https://api.github.com".into(),
            scopes: vec!["read:user".into(), "user:email".into()],
            fetch_orgs: false,
            fetch_teams: false,
            timeout: Duration::from_secs(10),
        }
    }

    /// Points at another GitHub, e.g. a GitHub Enterprise Server: `https://HOST` and `https://HOST/api/v3`.
    #[must_use]
    pub fn with_base_urls(mut self, web: impl Into<String>, api: impl Into<String>) -> Self {
        self.web_base_url = web.into();
        self.api_base_url = api.into();
        self
    }

    /// Reads organizations and teams into groups, as access policies on groups need.
    #[must_use]
    pub fn with_groups(mut self, orgs: bool, teams: bool) -> Self {
        self.fetch_orgs = orgs;
        self.fetch_teams = teams;
        self
    }

    /// Sets the timeout of each request to GitHub.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the provider id and display name (to offer github.com and an Enterprise Server side by side).
    #[must_use]
    pub fn named(mut self, id: impl Into<String>, display_name: impl Into<String>) -> Self {
        self.id = id.into();
        self.display_name = display_name.into();
        self
    }
}

impl fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubConfig")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("web_base_url", &self.web_base_url)
            .field("api_base_url", &self.api_base_url)
            .field("scopes", &self.scopes)
            .field("fetch_orgs", &self.fetch_orgs)
            .field("fetch_teams", &self.fetch_teams)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Logs users in with GitHub or a GitHub Enterprise Server, through an OAuth app's web flow (PKCE `S256`), then
/// GitHub's REST API.
///
/// The identity it gives: subject `<id>:<numeric GitHub id>` (`github:583231`), username = the login, name, the
/// e-mail only if it is the user's *verified primary* address, and, when configured, groups: each org login
/// (`acme`) and each team as `org/team-slug` (`acme/platform`), lower-cased. An [`AccessPolicy`] can therefore
/// admit GitHub users by numeric id (`583231`), login (any case), verified e-mail or domain, org or team.
///
/// At refresh the user is asked about again with the stored GitHub token (renewing an expiring GitHub App token
/// with its refresh token): a revoked token or suspended account ends the grant, and a fresh org and team list
/// lets the access policy notice a removal. GitHub's tokens never leave the server.
///
/// Failures: GitHub unreachable, slow past the timeout, answering 5xx, rate-limited, or answering outside its
/// documented shape is [`UpstreamError::Unavailable`] (the client gets `temporarily_unavailable`; at refresh the
/// grant is kept); a refused code or client credentials, or a token the API refuses, is
/// [`UpstreamError::LoginFailed`] (`access_denied`).
///
/// [`AccessPolicy`]: crate::AccessPolicy
pub struct GithubProvider {
    id: String,
    display_name: String,
    client_id: String,
    client_secret: String,
    authorize_url: url::Url,
    token_url: String,
    /// API base without a trailing slash.
    api: String,
    scope: String,
    fetch_orgs: bool,
    fetch_teams: bool,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for GithubProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubProvider")
            .field("id", &self.id)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl GithubProvider {
    /// A provider for `config`; `clock` dates the expiry of upstream tokens.
    ///
    /// # Errors
    /// [`ConfigError`] at `github.<field>`: an empty id or credential, an id with `:` or whitespace, a base URL
    /// that is not https (http only on a loopback host) or carries credentials, a query or a fragment, a zero
    /// timeout, or (at `github`) an HTTP client that cannot be built.
    pub fn new(config: GithubConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let at = |field: &str, problem| ConfigError::new(field, problem).within("github");
        for (field, value) in [
            ("id", &config.id),
            ("client_id", &config.client_id),
            ("client_secret", &config.client_secret),
        ] {
            if value.trim().is_empty() {
                return Err(at(field, ConfigProblem::Empty));
            }
        }
        if config.id.contains(|c: char| c == ':' || c.is_whitespace()) {
            return Err(at("id", ConfigProblem::NotASubjectPrefix));
        }
        if config.timeout.is_zero() {
            return Err(at("timeout", ConfigProblem::Zero));
        }
        let web = base_url(&config.web_base_url).map_err(|p| at("web_base_url", p))?;
        let api = base_url(&config.api_base_url).map_err(|p| at("api_base_url", p))?;
        let authorize_url = url::Url::parse(&format!("{web}/login/oauth/authorize"))
            .map_err(|e| at("web_base_url", ConfigProblem::NotAUrl(e)))?;
        let mut scopes = config.scopes.clone();
        if (config.fetch_orgs || config.fetch_teams) && !scopes.iter().any(|s| s == "read:org") {
            scopes.push("read:org".into());
        }
        let http = upstream_http_client(config.timeout, "github")?;
        Ok(GithubProvider {
            id: config.id,
            display_name: config.display_name,
            client_id: config.client_id,
            client_secret: config.client_secret,
            authorize_url,
            token_url: format!("{web}/login/oauth/access_token"),
            api,
            scope: scopes.join(" "),
            fetch_orgs: config.fetch_orgs,
            fetch_teams: config.fetch_teams,
            http,
            clock,
        })
    }

    /// `POST /login/oauth/access_token` with `form`: a session, or GitHub's error code.
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenOutcome, UpstreamError> {
        let response = self
            .http
            .post(&self.token_url)
            .header(ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(UpstreamError::Unavailable(format!(
                "GitHub's token endpoint answered {status}"
            )));
        }
        let body = read_body(response).await?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            UpstreamError::Unavailable(format!(
                "GitHub's token endpoint answered {status} with an unexpected body: {e}"
            ))
        })?;
        if let Some(error) = answer.error {
            return Ok(TokenOutcome::Refused(error));
        }
        let access_token = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                UpstreamError::Unavailable(
                    "GitHub's token endpoint answered without an access_token".into(),
                )
            })?;
        if !answer
            .token_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("bearer"))
        {
            return Err(UpstreamError::Unavailable(
                "GitHub's token endpoint issued a token that is not a bearer token".into(),
            ));
        }
        let now = self.clock.unix();
        Ok(TokenOutcome::Issued(UpstreamSession {
            provider: self.id.clone(),
            access_token,
            refresh_token: answer.refresh_token.filter(|t| !t.is_empty()),
            expires_at: answer.expires_in.map(|s| now.saturating_add(s)),
            verified_at: None,
        }))
    }

    /// One API request: the body and the `rel="next"` link, if any.
    async fn get(&self, url: &str, token: &str) -> Result<(Vec<u8>, Option<String>), ApiError> {
        let response = self
            .http
            .get(url)
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .map_err(|e| ApiError::Unavailable(unreachable(e).to_string()))?;
        let status = response.status();
        match status.as_u16() {
            200 => {
                let next = next_link(response.headers());
                let body = read_body(response)
                    .await
                    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
                Ok((body, next))
            }
            401 => Err(ApiError::Unauthorized),
            403 if !rate_limited(response.headers()) => {
                Err(ApiError::Forbidden(format!("{url} answered {status}")))
            }
            404 => Err(ApiError::NotFound(format!("{url} answered {status}"))),
            _ => Err(ApiError::Unavailable(format!("{url} answered {status}"))),
        }
    }

    /// `GET {api}{path}` as one JSON object.
    async fn get_one<T: DeserializeOwned>(&self, path: &str, token: &str) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.api);
        let (body, _) = self.get(&url, token).await?;
        parse(&url, &body)
    }

    /// `GET {api}{path}` as a list, page by page.
    async fn get_list<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<Vec<T>, ApiError> {
        let mut url = format!("{}{path}?per_page={PER_PAGE}", self.api);
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let (body, next) = self.get(&url, token).await?;
            all.extend(parse::<Vec<T>>(&url, &body)?);
            match next {
                None => return Ok(all),
                Some(next) if next.starts_with(&format!("{}/", self.api)) => url = next,
                Some(_) => {
                    return Err(ApiError::Unavailable(format!(
                        "{url}: the next page is not below the API base"
                    )));
                }
            }
        }
        tracing::warn!(path, pages = MAX_PAGES, "GitHub list truncated");
        Ok(all)
    }

    /// A list the identity can do without when the token may not read it (scope not granted).
    async fn optional_list<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<Vec<T>, ApiError> {
        match self.get_list(path, token).await {
            Err(ApiError::Forbidden(why) | ApiError::NotFound(why)) => {
                tracing::warn!(provider = %self.id, cause = %why, "GitHub withheld data; left out of the identity");
                Ok(Vec::new())
            }
            other => other,
        }
    }

    /// Who the token belongs to, with the verified primary e-mail and, as configured, orgs and teams.
    async fn identity(&self, token: &str) -> Result<Identity, ApiError> {
        let user: GithubUser = self
            .get_one("/user", token)
            .await
            .map_err(ApiError::required)?;
        let (emails, orgs, teams) = tokio::join!(
            self.optional_list::<GithubEmail>("/user/emails", token),
            async {
                if self.fetch_orgs {
                    self.optional_list::<GithubOrg>("/user/orgs", token).await
                } else {
                    Ok(Vec::new())
                }
            },
            async {
                if self.fetch_teams {
                    self.optional_list::<GithubTeam>("/user/teams", token).await
                } else {
                    Ok(Vec::new())
                }
            },
        );
        let email = emails?
            .into_iter()
            .find(|e| e.primary && e.verified)
            .map(|e| e.email);
        let mut groups: Vec<String> = orgs?
            .into_iter()
            .map(|o| o.login.to_lowercase())
            .chain(teams?.into_iter().map(|t| {
                format!(
                    "{}/{}",
                    t.organization.login.to_lowercase(),
                    t.slug.to_lowercase()
                )
            }))
            .collect();
        groups.sort();
        groups.dedup();
        Ok(Identity {
            subject: format!("{}:{}", self.id, user.id),
            username: Some(user.login),
            email,
            name: user.name.filter(|n| !n.trim().is_empty()),
            groups,
        })
    }

    /// Renews an expiring upstream token: the new session, or `None` if GitHub refuses (the user is gone).
    async fn renew(
        &self,
        session: &UpstreamSession,
    ) -> Result<Option<UpstreamSession>, UpstreamError> {
        let Some(refresh_token) = session.refresh_token.as_deref() else {
            return Ok(None);
        };
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        match self.token_request(&form).await? {
            TokenOutcome::Issued(mut renewed) => {
                // GitHub rotates the refresh token with every renewal; should an answer lack one, the held one
                // is still the latest.
                if renewed.refresh_token.is_none() {
                    renewed.refresh_token = session.refresh_token.clone();
                }
                Ok(Some(renewed))
            }
            TokenOutcome::Refused(error) => {
                tracing::info!(provider = %self.id, error = %error, "GitHub refused to renew the user's token");
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl IdentityProvider for GithubProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    async fn start(&self, request: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        let mut url = self.authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &request.callback_url)
            .append_pair("scope", &self.scope)
            .append_pair("state", &request.state)
            .append_pair("code_challenge", &crate::pkce::s256(&request.pkce_verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("allow_signup", "false");
        Ok(LoginStart::Redirect(url))
    }

    #[tracing::instrument(skip_all, fields(provider = %self.id))]
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Login, UpstreamError> {
        let Credentials::Callback { code, request } = credentials else {
            return Err(UpstreamError::Unsupported("password logins"));
        };
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("code", code),
            ("redirect_uri", request.callback_url.as_str()),
            ("code_verifier", request.pkce_verifier.as_str()),
        ];
        let session = match self.token_request(&form).await? {
            TokenOutcome::Issued(session) => session,
            TokenOutcome::Refused(error) => {
                if matches!(
                    error.as_str(),
                    "incorrect_client_credentials" | "redirect_uri_mismatch"
                ) {
                    tracing::error!(error = %error, "GitHub refused the app: check client_id, client_secret and the callback URL in the GitHub app's settings");
                } else {
                    tracing::info!(error = %error, "GitHub refused the code");
                }
                return Err(UpstreamError::LoginFailed);
            }
        };
        let identity = self
            .identity(&session.access_token)
            .await
            .map_err(|e| match e {
                ApiError::Unavailable(cause) => UpstreamError::Unavailable(cause),
                ApiError::Unauthorized | ApiError::Forbidden(_) | ApiError::NotFound(_) => {
                    tracing::info!(cause = %e, "GitHub did not accept the token it just issued");
                    UpstreamError::LoginFailed
                }
            })?;
        Ok(Login::upstream(identity, session))
    }

    /// Asks GitHub again who the stored token belongs to (renewing an expiring token first), so the answer is
    /// always current or gone, never unverifiable: [`Recheck::Gone`] when the token is no longer accepted (app
    /// revoked, account suspended or deleted, an expired token with no refresh token) or now names another
    /// account.
    #[tracing::instrument(skip_all, fields(provider = %self.id))]
    async fn recheck(
        &self,
        identity: &Identity,
        session: Option<&UpstreamSession>,
    ) -> Result<Recheck, UpstreamError> {
        let Some(mut session) = session.filter(|s| s.provider == self.id).cloned() else {
            tracing::info!(subject = %identity.subject, "no GitHub session to re-check the user with");
            return Ok(Recheck::Gone);
        };
        let renew_now = session.refresh_token.is_some()
            && session
                .expires_at
                .is_some_and(|t| t <= self.clock.unix().saturating_add(RENEW_AHEAD_SECS));
        if renew_now {
            match self.renew(&session).await? {
                Some(renewed) => session = renewed,
                None => return Ok(Recheck::Gone),
            }
        }
        let mut fetched = self.identity(&session.access_token).await;
        if matches!(fetched, Err(ApiError::Unauthorized))
            && !renew_now
            && let Some(renewed) = self.renew(&session).await?
        {
            session = renewed;
            fetched = self.identity(&session.access_token).await;
        }
        match fetched {
            Ok(fresh) if fresh.subject == identity.subject => {
                Ok(Recheck::Current(Login::upstream(fresh, session)))
            }
            Ok(fresh) => {
                tracing::warn!(subject = %identity.subject, now = %fresh.subject, "the GitHub token now names another account");
                Ok(Recheck::Gone)
            }
            Err(ApiError::Unavailable(cause)) => Err(UpstreamError::Unavailable(cause)),
            Err(e) => {
                tracing::info!(subject = %identity.subject, cause = %e, "GitHub no longer accepts the user's token");
                Ok(Recheck::Gone)
            }
        }
    }
}

/// Checks a base URL ([`secure_url`], then nothing that paths cannot be appended to) and returns it without a
/// trailing slash.
fn base_url(value: &str) -> Result<String, ConfigProblem> {
    let url = secure_url(value)?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(ConfigProblem::NotABaseUrl);
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn unreachable(e: reqwest::Error) -> UpstreamError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    UpstreamError::Unavailable(format!("GitHub {what}: {e}"))
}

/// The body, read up to [`MAX_BODY`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len().saturating_add(chunk.len()) > MAX_BODY {
            return Err(UpstreamError::Unavailable(
                "GitHub's answer is larger than 1 MiB".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Unavailable(format!("{url}: unexpected answer: {e}")))
}

/// Whether a 403 is GitHub's rate limit (primary: no requests left; secondary: `retry-after`) rather than a
/// refusal.
fn rate_limited(headers: &HeaderMap) -> bool {
    headers.contains_key(RETRY_AFTER)
        || headers
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v.as_bytes() == b"0")
}

/// The `rel="next"` target of a `Link` header (RFC 8288), as GitHub paginates.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(LINK)?.to_str().ok()?;
    value.split(',').find_map(|link| {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .strip_prefix("rel=")
                .is_some_and(|rel| rel.trim_matches('"').split(' ').any(|r| r == "next"))
        });
        is_next.then(|| target.to_owned())
    })
}

enum TokenOutcome {
    Issued(UpstreamSession),
    /// GitHub's `error` code.
    Refused(String),
}

/// How an API request failed.
#[derive(Debug)]
enum ApiError {
    /// 401: the token is not (or no longer) valid.
    Unauthorized,
    /// 403 other than a rate limit: e.g. a suspended account, or a scope not granted.
    Forbidden(String),
    /// 404: a scope not granted (GitHub hides what a token may not see), or a wrong API base.
    NotFound(String),
    /// The request did not get a usable answer.
    Unavailable(String),
}

impl ApiError {
    /// For `/user`, which must answer: a 404 there means a wrong API base, not a missing scope.
    fn required(self) -> Self {
        match self {
            ApiError::NotFound(why) => ApiError::Unavailable(why),
            other => other,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized => f.write_str("401 Unauthorized"),
            ApiError::Forbidden(why) | ApiError::NotFound(why) | ApiError::Unavailable(why) => {
                f.write_str(why)
            }
        }
    }
}

/// The token endpoint's JSON answer (success or error). No `Debug`: it holds tokens.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    error: Option<String>,
}

/// `GET /user`, the fields we use.
#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// One entry of `GET /user/orgs`, or a team's `organization`.
#[derive(Deserialize)]
struct GithubOrg {
    login: String,
}

/// One entry of `GET /user/teams`.
#[derive(Deserialize)]
struct GithubTeam {
    slug: String,
    organization: GithubOrg,
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(link: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(link).unwrap());
        h
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let h = headers(
            r#"<https://api.github.com/user/orgs?per_page=100&page=2>; rel="next", <https://api.github.com/user/orgs?per_page=100&page=3>; rel="last""#,
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/user/orgs?per_page=100&page=2")
        );
        let last = headers(
            r#"<https://api.github.com/user/orgs?page=1>; rel="prev", <https://api.github.com/user/orgs?page=1>; rel="first""#,
        );
        assert_eq!(next_link(&last), None);
    }

    #[test]
    fn base_urls_must_be_https_except_on_loopback() {
        assert_eq!(
            base_url("https://ghe.example.com/api/v3/").unwrap(),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            base_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("http://ghe.example.com").unwrap_err(),
            ConfigProblem::Insecure
        );
        assert_eq!(
            base_url("https://x.example.com/?a=b").unwrap_err(),
            ConfigProblem::NotABaseUrl
        );
        let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock);
        let config = GithubConfig::new("id", "secret")
            .with_base_urls("http://ghe.example.com", "https://ghe.example.com/api/v3");
        assert_eq!(
            GithubProvider::new(config, clock).unwrap_err().to_string(),
            "github.web_base_url: must be https (http only on a loopback host)"
        );
    }

    #[test]
    fn the_secret_stays_out_of_debug() {
        let c = GithubConfig::new("Iv1.abc", "very-secret");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("Iv1.abc") && !shown.contains("very-secret"),
            "{shown}"
        );
    }

    #[test]
    fn orgs_and_teams_add_the_read_org_scope() {
        let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock);
        let p = GithubProvider::new(
            GithubConfig::new("id", "secret").with_groups(true, false),
            clock.clone(),
        )
        .unwrap();
        assert_eq!(p.scope, "read:user user:email read:org");
        let p = GithubProvider::new(GithubConfig::new("id", "secret"), clock.clone()).unwrap();
        assert_eq!(p.scope, "read:user user:email");
        let e = GithubProvider::new(GithubConfig::new("id", " "), clock).unwrap_err();
        assert_eq!(e.to_string(), "github.client_secret: must not be empty");
    }
}
