//! Login at any OpenID Connect provider (Keycloak, Google, Microsoft Entra, Auth0, Okta, Authentik, Dex, …).
//!
//! The provider is discovered from its issuer URL (OpenID Connect Discovery 1.0), lazily and cached, so an
//! upstream that is down at startup makes logins answer `temporarily_unavailable` rather than stopping the
//! service; discovery is retried on the next login. The login is the authorization-code flow with our own PKCE
//! (S256), `state` and `nonce`; the ID token is verified by the `openidconnect` crate (signature against the
//! provider's JWKS, `iss`, `aud`, `nonce`, expiry against our [`Clock`]). Claims that are not in the ID token are
//! read from the userinfo endpoint, whose `sub` must match (OIDC Core §5.3.2).
//!
//! # Re-checks at refresh
//! A grant must not outlive the user's standing at the provider (the MCP authorization spec binds our tokens to
//! the upstream session), so every refresh asks the provider again, with the session held from the login:
//!
//! | what we hold | what is asked | the answer ([`Recheck`]) |
//! |---|---|---|
//! | a live upstream access token | userinfo | its claims; a 401 means gone, unless a refresh token can say more |
//! | an expired one (or userinfo lacking claims the login had) and a refresh token | the token endpoint, then the new ID token and userinfo | a refused refresh token means gone; otherwise the fresh claims |
//! | an expired one and no refresh token, or no userinfo endpoint and no refresh token | nothing | unverifiable |
//!
//! Fresh claims that name another user mean gone; fresh claims without the user id claim are unverifiable (who
//! they are cannot be told); fresh claims without the groups claim mean no groups, never the old ones. An
//! unverifiable identity stands only until the engine's `max_unverified_age`, so to keep users re-checkable we
//! ask for a refresh token ([`RefreshTokenRequest`]): `offline_access` when discovery offers it. The refresh
//! path matters most where userinfo lacks claims the ID token has: Entra's userinfo carries neither `oid` nor
//! groups, so without a refresh token an Entra user can be re-checked only by a new login. A rotated upstream
//! refresh token replaces the held one; the engine stores the renewed session with the grant.
//!
//! # Security
//! The HTTP client never follows redirects (SSRF, openidconnect's advice) and has connect and request timeouts,
//! so a hanging upstream cannot hang a login. E-mail addresses are used only when the provider says they are
//! verified (`email_verified: true`), unless configured otherwise. The upstream's tokens stay in the grant for
//! re-checks and never reach the client. The subject is `<provider id>:<user id claim>`, so the same person at two
//! providers is two subjects.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, Scope, TokenResponse as _,
};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::{
    Credentials, IdentityProvider, Login, LoginStart, Recheck, UpstreamError, UpstreamRequest,
    upstream_http_client,
};
use crate::clock::Clock;
use crate::config::{ConfigError, ConfigProblem, secure_url};
use crate::types::{Identity, UpstreamSession};

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Which claims hold what.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimNames {
    /// The stable user id (default `sub`; Entra users may prefer `oid`).
    pub user_id: String,
    /// The login name (default `preferred_username`).
    pub username: String,
    /// The e-mail address (default `email`).
    pub email: String,
    /// The display name (default `name`).
    pub name: String,
    /// Group memberships (default `groups`).
    pub groups: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            user_id: "sub".into(),
            username: "preferred_username".into(),
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
        }
    }
}

/// How to ask an OpenID Connect provider for a refresh token. A refresh token is what lets a refresh re-check the
/// user after the upstream access token expires (the provider refuses it once the user is disabled or their
/// session revoked, and the claims read with the new access token are current); without one, the user can be
/// re-checked only while the access token lives, and after that their grant ends at
/// [`max_unverified_age`](crate::ServerConfig::max_unverified_age).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefreshTokenRequest {
    /// The scope `offline_access` with `prompt=consent` (as OpenID Connect Core §11 asks) when the provider's
    /// discovery document lists `offline_access` in `scopes_supported`; nothing otherwise.
    #[default]
    Auto,
    /// The scope `offline_access` with `prompt=consent`, whatever discovery says.
    OfflineAccess,
    /// Google's way: `access_type=offline` with `prompt=consent`.
    AccessTypeOffline,
    /// Nothing beyond the configured scopes. For providers that issue refresh tokens anyway (Keycloak's are
    /// bound to the user's single-sign-on session), or that grant `offline_access` listed in the scopes without
    /// `prompt=consent` (Microsoft Entra, whose `prompt=consent` would show a consent page at every login).
    Off,
}

/// Configuration of one OpenID Connect provider.
#[derive(Clone)]
#[non_exhaustive]
pub struct OidcConfig {
    /// Short stable id, also the subject namespace (`keycloak`, `google`, …).
    pub id: String,
    /// Shown on the chooser page.
    pub display_name: String,
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer_url: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret, for confidential clients.
    pub client_secret: Option<String>,
    /// Scopes to ask for (default `openid email profile`).
    pub scopes: Vec<String>,
    /// How to ask for a refresh token (default [`RefreshTokenRequest::Auto`]).
    pub refresh_token_request: RefreshTokenRequest,
    /// Claim names.
    pub claims: ClaimNames,
    /// Use `email` only when `email_verified` is true (default).
    pub require_verified_email: bool,
    /// Timeout for each upstream request.
    pub timeout: Duration,
}

impl OidcConfig {
    /// A configuration with defaults for everything but the id, issuer and client.
    pub fn new(
        id: impl Into<String>,
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<String>,
    ) -> Self {
        let id = id.into();
        OidcConfig {
            display_name: id.clone(),
            id,
            issuer_url: issuer_url.into(),
            client_id: client_id.into(),
            client_secret,
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            refresh_token_request: RefreshTokenRequest::default(),
            claims: ClaimNames::default(),
            require_verified_email: true,
            timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("id", &self.id)
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

struct Discovered {
    client: Client,
    userinfo_url: Option<String>,
    /// Whether discovery lists `offline_access` in `scopes_supported`.
    offers_offline_access: bool,
}

/// An OpenID Connect identity provider.
pub struct OidcProvider {
    config: OidcConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    discovered: Mutex<Option<Arc<Discovered>>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable(format!("{what}: {e}"))
}

impl OidcProvider {
    /// A provider; nothing is fetched until the first login.
    ///
    /// # Errors
    /// [`ConfigError`] at `oidc.issuer_url` if the issuer is not a URL, or not https (http only on a loopback
    /// host: [`secure_url`]); at `oidc` if the HTTP client cannot be built.
    pub fn new(config: OidcConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        secure_url(&config.issuer_url)
            .map_err(|p| ConfigError::new("issuer_url", p).within("oidc"))?;
        IssuerUrl::new(config.issuer_url.clone()).map_err(|e| {
            ConfigError::new("issuer_url", ConfigProblem::NotAUrl(e)).within("oidc")
        })?;
        let http = upstream_http_client(config.timeout, "oidc")?;
        Ok(OidcProvider {
            config,
            http,
            clock,
            discovered: Mutex::new(None),
        })
    }

    async fn discovered(&self) -> Result<Arc<Discovered>, UpstreamError> {
        let mut slot = self.discovered.lock().await;
        if let Some(d) = slot.as_ref() {
            return Ok(Arc::clone(d));
        }
        let issuer = IssuerUrl::new(self.config.issuer_url.clone())
            .map_err(|e| unavailable("issuer URL", e))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| unavailable("discovery", e))?;
        let userinfo_url = metadata.userinfo_endpoint().map(|u| u.url().to_string());
        let offers_offline_access = metadata
            .scopes_supported()
            .is_some_and(|s| s.iter().any(|s| s.as_str() == "offline_access"));
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        );
        let d = Arc::new(Discovered {
            client,
            userinfo_url,
            offers_offline_access,
        });
        *slot = Some(Arc::clone(&d));
        Ok(d)
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, UpstreamError> {
        let names = &self.config.claims;
        let text = |name: &str| match claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let user_id = text(&names.user_id).ok_or(UpstreamError::LoginFailed)?;
        let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
            || matches!(claims.get("email_verified"), Some(Value::String(s)) if s == "true");
        let groups = match claims.get(&names.groups) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            subject: format!("{}:{user_id}", self.config.id),
            username: text(&names.username),
            email: text(&names.email).filter(|_| verified || !self.config.require_verified_email),
            name: text(&names.name),
            groups,
        })
    }

    /// GET userinfo with a bearer token: `Ok(None)` on 401 (the token is no longer good).
    async fn userinfo(
        &self,
        url: &str,
        access_token: &str,
    ) -> Result<Option<Map<String, Value>>, UpstreamError> {
        let res = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| unavailable("userinfo", e))?;
        if res.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        if !res.status().is_success() {
            return Err(unavailable("userinfo", res.status()));
        }
        res.json::<Map<String, Value>>()
            .await
            .map(Some)
            .map_err(|e| unavailable("userinfo body", e))
    }

    fn missing_claims(&self, claims: &Map<String, Value>) -> bool {
        let n = &self.config.claims;
        [&n.user_id, &n.username, &n.email, &n.groups]
            .iter()
            .any(|c| !claims.contains_key(c.as_str()))
    }

    /// Whether userinfo `info` is enough to re-check `identity` by: it names the user, and it says which groups
    /// they are in unless they had none.
    fn answers_for(&self, info: &Map<String, Value>, identity: &Identity) -> bool {
        let names = &self.config.claims;
        info.contains_key(&names.user_id)
            && (identity.groups.is_empty() || info.contains_key(&names.groups))
    }

    /// What a re-check makes of `claims` read just now, keeping `session`: unverifiable without the user id (who
    /// they are cannot be told), gone if they name someone else, the current identity otherwise. An absent groups
    /// claim means no groups: the old ones are never carried forward.
    fn judge(
        &self,
        identity: &Identity,
        claims: &Map<String, Value>,
        session: UpstreamSession,
    ) -> Recheck {
        let Ok(fresh) = self.identity(claims) else {
            tracing::warn!(subject = %identity.subject, claim = %self.config.claims.user_id, "the provider's answer lacks the user id claim; the user cannot be re-checked");
            return Recheck::Unverifiable(Some(session));
        };
        if fresh.subject != identity.subject {
            tracing::warn!(subject = %identity.subject, now = %fresh.subject, "the provider's answer names another user");
            return Recheck::Gone;
        }
        Recheck::Current(Login::upstream(fresh, session))
    }

    /// The claims of an ID token that came with a refreshed access token, and its subject, once it verifies
    /// (signature, issuer, audience, expiry; OpenID Connect Core §12.2 puts no nonce in it). One that does not
    /// verify is left out (logged): the claims then come from userinfo alone.
    fn refreshed_id_token_claims(
        &self,
        d: &Discovered,
        id_token: &openidconnect::core::CoreIdToken,
    ) -> (Map<String, Value>, Option<String>) {
        let clock = Arc::clone(&self.clock);
        let verifier = d
            .client
            .id_token_verifier()
            .set_time_fn(move || chrono::DateTime::<chrono::Utc>::from(clock.now()));
        match id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())) {
            Ok(verified) => {
                let sub = verified.subject().to_string();
                (
                    payload(&id_token.to_string()).unwrap_or_default(),
                    Some(sub),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "the refreshed ID token failed verification; left out");
                (Map::new(), None)
            }
        }
    }

    fn expiry(&self, expires_in: Option<Duration>) -> Option<u64> {
        expires_in.map(|d| self.clock.unix().saturating_add(d.as_secs()))
    }
}

/// The claims of a JWT whose signature has already been verified.
fn payload(jwt: &str) -> Option<Map<String, Value>> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn display_name(&self) -> &str {
        &self.config.display_name
    }

    async fn start(&self, request: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        let d = self.discovered().await?;
        let redirect = RedirectUrl::new(request.callback_url.clone())
            .map_err(|e| unavailable("callback URL", e))?;
        let (state, nonce) = (request.state.clone(), request.nonce.clone());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            request.pkce_verifier.clone(),
        ));
        let mut auth = d
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_redirect_uri(Cow::Owned(redirect))
            .set_pkce_challenge(challenge);
        let offline_access = match self.config.refresh_token_request {
            RefreshTokenRequest::Auto => d.offers_offline_access,
            RefreshTokenRequest::OfflineAccess => true,
            RefreshTokenRequest::AccessTypeOffline | RefreshTokenRequest::Off => false,
        };
        for scope in self
            .config
            .scopes
            .iter()
            .filter(|s| *s != "openid" && !(offline_access && *s == "offline_access"))
        {
            auth = auth.add_scope(Scope::new(scope.clone()));
        }
        if offline_access {
            auth = auth
                .add_scope(Scope::new("offline_access".into()))
                .add_prompt(CoreAuthPrompt::Consent);
        }
        if self.config.refresh_token_request == RefreshTokenRequest::AccessTypeOffline {
            auth = auth
                .add_extra_param("access_type", "offline")
                .add_prompt(CoreAuthPrompt::Consent);
        }
        let (url, _, _) = auth.url();
        Ok(LoginStart::Redirect(url))
    }

    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Login, UpstreamError> {
        let Credentials::Callback { code, request } = credentials else {
            return Err(UpstreamError::Unsupported("passwords"));
        };
        let d = self.discovered().await?;
        let redirect = RedirectUrl::new(request.callback_url.clone())
            .map_err(|e| unavailable("callback URL", e))?;
        let tokens = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| unavailable("token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(request.pkce_verifier.clone()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    tracing::info!(error = %r.error(), "upstream refused the code");
                    UpstreamError::LoginFailed
                }
                other => unavailable("token request", other),
            })?;
        let id_token = tokens.id_token().ok_or(UpstreamError::LoginFailed)?;
        let clock = Arc::clone(&self.clock);
        let verifier = d
            .client
            .id_token_verifier()
            .set_time_fn(move || chrono::DateTime::<chrono::Utc>::from(clock.now()));
        let verified = id_token
            .claims(&verifier, &Nonce::new(request.nonce.clone()))
            .map_err(|e| {
                tracing::warn!(error = %e, "upstream ID token failed verification");
                UpstreamError::LoginFailed
            })?;
        let id_sub = verified.subject().to_string();
        // The token verified above, so its payload can be read for claims beyond the standard set.
        let mut claims = payload(&id_token.to_string()).ok_or(UpstreamError::LoginFailed)?;
        let access_token = tokens.access_token().secret().clone();
        if self.missing_claims(&claims)
            && let Some(url) = &d.userinfo_url
            && let Some(info) = self.userinfo(url, &access_token).await?
        {
            if info.get("sub").and_then(Value::as_str) != Some(id_sub.as_str()) {
                tracing::warn!("userinfo `sub` differs from the ID token's");
                return Err(UpstreamError::LoginFailed);
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        let session = UpstreamSession {
            provider: self.config.id.clone(),
            access_token,
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            expires_at: self.expiry(tokens.expires_in()),
            verified_at: None,
        };
        Ok(Login::upstream(self.identity(&claims)?, session))
    }

    /// Re-reads the user's claims at the provider (see the module documentation, "Re-checks at refresh").
    async fn recheck(
        &self,
        identity: &Identity,
        session: Option<&UpstreamSession>,
    ) -> Result<Recheck, UpstreamError> {
        let Some(session) = session.filter(|s| s.provider == self.config.id) else {
            tracing::info!(subject = %identity.subject, "no upstream session to re-check the user with");
            return Ok(Recheck::Unverifiable(None));
        };
        let d = self.discovered().await?;
        let expired = session.expires_at.is_some_and(|e| e <= self.clock.unix());
        if !expired && let Some(url) = &d.userinfo_url {
            match self.userinfo(url, &session.access_token).await? {
                // Enough to judge by, or nothing better to be had.
                Some(info)
                    if self.answers_for(&info, identity) || session.refresh_token.is_none() =>
                {
                    return Ok(self.judge(identity, &info, session.clone()));
                }
                // Claims the ID token carried are missing (Entra's userinfo has neither `oid` nor groups): a
                // refresh brings a new ID token.
                Some(_) => {}
                None if session.refresh_token.is_none() => {
                    tracing::info!(subject = %identity.subject, "the provider no longer accepts the user's access token");
                    return Ok(Recheck::Gone);
                }
                // Refused before its time (revoked, or keys rotated): the refresh token decides.
                None => {}
            }
        }
        let Some(refresh) = session.refresh_token.as_deref() else {
            return Ok(Recheck::Unverifiable(None));
        };
        let renewed = match d
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh.to_owned()))
            .map_err(|e| unavailable("token endpoint", e))?
            .request_async(&self.http)
            .await
        {
            Ok(t) => t,
            Err(openidconnect::RequestTokenError::ServerResponse(r)) => {
                tracing::info!(subject = %identity.subject, error = %r.error(), "the provider refused the user's refresh token");
                return Ok(Recheck::Gone);
            }
            Err(e) => return Err(unavailable("refresh", e)),
        };
        let current = UpstreamSession {
            access_token: renewed.access_token().secret().clone(),
            // A provider that does not rotate its refresh tokens sends none back: the held one stays good.
            refresh_token: renewed
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| session.refresh_token.clone()),
            expires_at: self.expiry(renewed.expires_in()),
            ..session.clone()
        };
        let (mut claims, id_sub) = match renewed.id_token() {
            Some(id_token) => self.refreshed_id_token_claims(&d, id_token),
            None => (Map::new(), None),
        };
        if self.missing_claims(&claims)
            && let Some(url) = &d.userinfo_url
        {
            let Some(info) = self.userinfo(url, &current.access_token).await? else {
                tracing::info!(subject = %identity.subject, "the provider refused the access token it just issued");
                return Ok(Recheck::Gone);
            };
            if let Some(sub) = &id_sub
                && info.get("sub").and_then(Value::as_str) != Some(sub.as_str())
            {
                tracing::warn!(subject = %identity.subject, "userinfo `sub` differs from the refreshed ID token's");
                return Ok(Recheck::Gone);
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        Ok(self.judge(identity, &claims, current))
    }
}
