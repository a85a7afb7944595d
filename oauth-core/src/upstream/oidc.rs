//! Login at any OpenID Connect provider (Keycloak, Google, Microsoft Entra, Auth0, Okta, Authentik, Dex, …).
//!
//! The provider is discovered from its issuer URL (OpenID Connect Discovery 1.0), lazily and cached, so an
//! upstream that is down at startup makes logins answer `temporarily_unavailable` rather than stopping the
//! service; discovery is retried on the next login. The login is the authorization-code flow with our own PKCE
//! (S256), `state` and `nonce`; the ID token is verified by the `openidconnect` crate (signature against the
//! provider's JWKS, `iss`, `aud`, `nonce`, expiry against our [`Clock`]). Claims that are not in the ID token are
//! read from the userinfo endpoint, whose `sub` must match (OIDC Core §5.3.2).
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
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, Scope, TokenResponse as _,
};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::{
    Credentials, IdentityProvider, Login, LoginStart, UpstreamError, UpstreamRequest,
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
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        );
        let d = Arc::new(Discovered {
            client,
            userinfo_url,
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
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            auth = auth.add_scope(Scope::new(scope.clone()));
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
        };
        Ok(Login::upstream(self.identity(&claims)?, session))
    }

    /// Re-reads the user's claims from userinfo, refreshing the upstream access token first if it expired and a
    /// refresh token is held. An upstream that refuses the refresh token or the access token means the user is
    /// gone. Without a usable token or userinfo endpoint, the last known identity stands.
    async fn recheck(
        &self,
        identity: &Identity,
        session: Option<&UpstreamSession>,
    ) -> Result<Option<Login>, UpstreamError> {
        let Some(session) = session else {
            return Ok(Some(Login::local(identity.clone())));
        };
        let d = self.discovered().await?;
        let mut current = session.clone();
        let expired = current.expires_at.is_some_and(|e| e <= self.clock.unix());
        if expired {
            let Some(refresh) = current.refresh_token.clone() else {
                return Ok(Some(Login::upstream(identity.clone(), current)));
            };
            let renewed = d
                .client
                .exchange_refresh_token(&RefreshToken::new(refresh))
                .map_err(|e| unavailable("token endpoint", e))?
                .request_async(&self.http)
                .await;
            match renewed {
                Ok(t) => {
                    current.access_token = t.access_token().secret().clone();
                    if let Some(r) = t.refresh_token() {
                        current.refresh_token = Some(r.secret().clone());
                    }
                    current.expires_at = self.expiry(t.expires_in());
                }
                Err(openidconnect::RequestTokenError::ServerResponse(_)) => return Ok(None),
                Err(e) => return Err(unavailable("refresh", e)),
            }
        }
        let Some(url) = &d.userinfo_url else {
            return Ok(Some(Login::upstream(identity.clone(), current)));
        };
        let Some(info) = self.userinfo(url, &current.access_token).await? else {
            return Ok(None);
        };
        let mut fresh = self.identity(&info)?;
        if fresh.subject != identity.subject {
            return Ok(None);
        }
        if !info.contains_key(&self.config.claims.groups) {
            fresh.groups = identity.groups.clone();
        }
        Ok(Some(Login::upstream(fresh, current)))
    }
}
