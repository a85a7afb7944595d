//! The authorization endpoint (RFC 6749 §4.1.1) with PKCE S256 (RFC 7636) and resource indicators (RFC 8707).
//!
//! `authorize` validates the request and parks it as a pending authorization; the service then logs the user in
//! (any [`IdentityProvider`](crate::IdentityProvider)), asks for consent, and calls `approve` or `deny`, which
//! consume the pending authorization exactly once and produce the redirect back to the client.
//!
//! A `client_id` may be a registered client or the URL of a client metadata document (see [`crate::cimd`]);
//! problems with the document are rendered, never redirected, since its redirect URIs are not verified then.
//!
//! # The two exits (RFC 6749 §4.1.2.1)
//! Until `client_id` and `redirect_uri` are verified, an error must not redirect: it is rendered
//! ([`AuthorizeError::Render`]) and does not say which of the two failed. After, every error is a redirect carrying
//! `error`, `error_description`, `state` and `iss` (RFC 9207).

use url::Url;

use crate::config::{ResourceConfig, is_loopback_host};
use crate::error::{AuthorizeError, ErrorCode, OAuthError};
use crate::server::AuthServer;
use crate::store::{ClientRecord, CodeRecord, PendingAuthorization};
use crate::types::{Identity, ScopeSet, Secret, UpstreamSession, random_token};
use crate::wire::AuthorizationRequest;
use crate::{Error, pkce};

/// Longest `state` accepted.
const MAX_STATE: usize = 1024;

/// What the service needs to show the login and consent pages for a pending authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationPrompt {
    /// The single-use handle of the pending authorization (secret: put it in a form, never in a log).
    pub handle: String,
    /// The client.
    pub client_id: String,
    /// The client's registered name (or the name in its metadata document), if any.
    pub client_name: Option<String>,
    /// For a client identified by its metadata document URL: the host serving the document, which is who the
    /// client really is (its name is only what the document claims).
    pub client_host: Option<String>,
    /// Where the code will go.
    pub redirect_uri: String,
    /// The host of `redirect_uri`, to show on the consent page.
    pub redirect_host: String,
    /// Whether the redirect goes to a loopback host (worth a warning on the consent page).
    pub redirect_is_loopback: bool,
    /// The scope to be granted.
    pub scope: ScopeSet,
    /// The resource the token will be for.
    pub resource: String,
    /// When the pending authorization expires.
    pub expires_at: u64,
    /// Whether the user approved the request before signing in at an upstream identity provider.
    pub consented: bool,
}

/// What a user gets of the scope asked for ([`AuthServer::scope_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScopeChoice {
    /// What the token will carry.
    pub granted: ScopeSet,
    /// What was asked for and is left out: the user may not hold it, or the resource does not know it.
    pub withheld: Vec<String>,
}

/// Whether `requested` matches the `registered` redirect URI: exactly, or for a loopback http URI with any port
/// (RFC 8252 §7.3; `localhost` included for interoperability with MCP clients).
pub(crate) fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    reg.scheme() == "http"
        && req.scheme() == "http"
        && is_loopback_host(&reg)
        && reg.host() == req.host()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
}

/// A requested `scope` parameter as a set, `offline_access` tolerated and dropped: the one parse `/authorize` and
/// narrowing at refresh share.
pub(crate) fn requested_scope(requested: &str) -> Result<ScopeSet, OAuthError> {
    ScopeSet::parse(requested)
        .map(|s| s.without("offline_access"))
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidScope,
                "scope contains a character RFC 6749 §3.3 forbids",
            )
        })
}

/// The configured resource a requested `resource` value names: exactly, or ignoring a trailing slash for an
/// origin-only resource (`https://mcp.example.com` = `https://mcp.example.com/`).
pub(crate) fn match_resource<'a>(
    resources: &'a [ResourceConfig],
    requested: &str,
) -> Result<&'a ResourceConfig, OAuthError> {
    let parsed = Url::parse(requested).map_err(|_| {
        OAuthError::new(ErrorCode::InvalidTarget, "resource must be an absolute URI")
    })?;
    if parsed.fragment().is_some() || requested.contains('#') {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource must not contain a fragment (RFC 8707 §2)",
        ));
    }
    let origin_only = |s: &str| Url::parse(s).is_ok_and(|u| u.path() == "/" && u.query().is_none());
    resources
        .iter()
        .find(|r| {
            r.resource == requested
                || (origin_only(&r.resource)
                    && origin_only(requested)
                    && r.resource.trim_end_matches('/') == requested.trim_end_matches('/'))
        })
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidTarget,
                format!("resource `{requested}` is not served by this authorization server"),
            )
        })
}

impl AuthServer {
    /// The redirect back to the client with `params`, plus `state` and `iss`.
    fn redirect(
        &self,
        redirect_uri: &str,
        params: &[(&str, &str)],
        state: Option<&str>,
    ) -> Result<Url, AuthorizeError> {
        let mut url = Url::parse(redirect_uri).map_err(|_| {
            AuthorizeError::Render(OAuthError::invalid_request(
                "the redirect URI is not a valid URI",
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &self.config.issuer);
        }
        Ok(url)
    }

    pub(crate) fn redirect_error(
        &self,
        redirect_uri: &str,
        error: OAuthError,
        state: Option<&str>,
    ) -> AuthorizeError {
        match self.redirect(
            redirect_uri,
            &[
                ("error", error.code.as_str()),
                ("error_description", &error.description),
            ],
            state,
        ) {
            Ok(to) => AuthorizeError::Redirect { to, error },
            Err(e) => e,
        }
    }

    /// The scope asked for: the request's (unknown scopes refused, `offline_access` tolerated and dropped), or
    /// the resource's default scopes; never beyond what the client registered. What the user gets of it is
    /// decided once they are known ([`Self::scope_for`]).
    pub(crate) fn resolve_scope(
        &self,
        requested: Option<&str>,
        client: &ClientRecord,
        resource: &ResourceConfig,
    ) -> Result<ScopeSet, OAuthError> {
        let registered = client.metadata.scope.as_deref().and_then(ScopeSet::parse);
        let Some(requested) = requested else {
            let defaults = ScopeSet::from_tokens(resource.defaults().iter().cloned());
            return Ok(match registered {
                Some(r) if !r.without("offline_access").is_empty() => ScopeSet::from_tokens(
                    defaults.iter().filter(|t| r.contains(t)).map(str::to_owned),
                ),
                _ => defaults,
            });
        };
        let scope = requested_scope(requested)?;
        for token in scope.iter() {
            if !self.config.scopes_supported.iter().any(|s| s == token) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope `{token}` is not supported"),
                ));
            }
            if registered
                .as_ref()
                .is_some_and(|r| !r.without("offline_access").is_empty() && !r.contains(token))
            {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope `{token}` was not registered for this client"),
                ));
            }
        }
        Ok(scope)
    }

    /// What of `scope` a user may hold at `resource` (RFC 6749 §3.3: the server may grant less than was asked,
    /// and says what in the token response). `None` for a user not known yet: then only what the resource does
    /// not know is left out. The rest is [`ScopeChoice::withheld`], in the order asked.
    pub fn scope_for(
        &self,
        identity: Option<&Identity>,
        scope: &ScopeSet,
        resource: &str,
    ) -> ScopeChoice {
        let config = self
            .config
            .resources
            .iter()
            .find(|r| r.resource == resource);
        let (mut granted, mut withheld) = (Vec::new(), Vec::new());
        for token in scope.iter() {
            let holds = config.is_some_and(|r| match identity {
                Some(who) => r.may_hold(who, token),
                None => r.scopes_supported.iter().any(|s| s == token),
            });
            if holds {
                granted.push(token.to_owned());
            } else {
                withheld.push(token.to_owned());
            }
        }
        ScopeChoice {
            granted: ScopeSet::from_tokens(granted),
            withheld,
        }
    }

    /// `GET /authorize`: validates the request and parks it for login and consent.
    ///
    /// # Errors
    /// [`AuthorizeError::Render`] while the client or redirect URI is unverified; [`AuthorizeError::Redirect`]
    /// after (`unsupported_response_type`, `invalid_request` for PKCE problems, `invalid_scope`, `invalid_target`).
    #[tracing::instrument(skip_all)]
    pub async fn authorize(
        &self,
        req: AuthorizationRequest,
    ) -> Result<AuthorizationPrompt, AuthorizeError> {
        let unverified = || {
            AuthorizeError::Render(OAuthError::invalid_request(
                "unknown client, or redirect_uri is not registered for this client",
            ))
        };
        let client_id = req.client_id.as_deref().ok_or_else(|| {
            AuthorizeError::Render(OAuthError::invalid_request("client_id is required"))
        })?;
        let client = match self.find_client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(unverified()),
            Err(Error::OAuth(e)) => return Err(AuthorizeError::Render(e)),
            Err(e) => return Err(AuthorizeError::Internal(e)),
        };
        let client_host = client.document_host().map(str::to_owned);
        let client = client.into_record();
        let registered = &client.metadata.redirect_uris;
        let (redirect_uri, explicit) = match req.redirect_uri.as_deref() {
            Some(r) if registered.iter().any(|reg| redirect_matches(reg, r)) => {
                (r.to_owned(), true)
            }
            // A document is public, so saying which check failed reveals nothing.
            Some(r) if client_host.is_some() => {
                return Err(AuthorizeError::Render(OAuthError::invalid_request(
                    format!("redirect_uri `{r}` is not listed in the client's metadata document"),
                )));
            }
            Some(_) => return Err(unverified()),
            None => match registered.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    return Err(AuthorizeError::Render(OAuthError::invalid_request(
                        "redirect_uri is required when the client has several registered",
                    )));
                }
            },
        };
        // From here on, errors go back to the client.
        let state = req.state.as_deref();
        if state.is_some_and(|s| s.len() > MAX_STATE) {
            return Err(AuthorizeError::Render(OAuthError::invalid_request(
                format!("state is longer than {MAX_STATE} bytes"),
            )));
        }
        let fail = |e: OAuthError| self.redirect_error(&redirect_uri, e, state);
        match req.response_type.as_deref() {
            None => {
                return Err(fail(OAuthError::invalid_request(
                    "response_type is required",
                )));
            }
            Some("code") => {}
            Some(other) => {
                return Err(fail(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    format!("response_type `{other}` is not supported; use `code`"),
                )));
            }
        }
        if !client.metadata.response_types.iter().any(|r| r == "code") {
            return Err(fail(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the client is not registered for the code flow",
            )));
        }
        let challenge = req.code_challenge.as_deref().ok_or_else(|| {
            fail(OAuthError::invalid_request(
                "code_challenge is required (PKCE with S256)",
            ))
        })?;
        match req.code_challenge_method.as_deref() {
            Some("S256") => {}
            None => {
                return Err(fail(OAuthError::invalid_request(
                    "code_challenge_method is required and must be S256",
                )));
            }
            Some(m) => {
                return Err(fail(OAuthError::invalid_request(format!(
                    "code_challenge_method `{m}` is not supported; use S256"
                ))));
            }
        }
        pkce::check_challenge(challenge).map_err(fail)?;
        let resource = match req.resource.as_deref() {
            Some(r) => match_resource(&self.config.resources, r).map_err(fail)?,
            None => match self.config.resources.as_slice() {
                [only] => only,
                _ => {
                    return Err(fail(OAuthError::new(
                        ErrorCode::InvalidTarget,
                        "resource is required (RFC 8707)",
                    )))?;
                }
            },
        };
        let scope = self
            .resolve_scope(req.scope.as_deref(), &client, resource)
            .map_err(fail)?;
        let resource = resource.resource.clone();
        let expires_at = self
            .clock
            .unix()
            .saturating_add(self.config.pending_ttl.as_secs());
        let pending = PendingAuthorization {
            client_id: client.client_id.clone(),
            redirect_uri,
            redirect_uri_explicit: explicit,
            code_challenge: challenge.to_owned(),
            scope,
            resource,
            state: req.state.clone(),
            expires_at,
            upstream: None,
            consented: false,
        };
        let handle = Secret::generate();
        self.store
            .put_pending(&handle.hash(), &pending, self.config.pending_ttl)
            .await?;
        Ok(prompt(handle.into_exposed(), &client, client_host, pending))
    }

    /// Looks up a pending authorization by its handle, without consuming it (to render login and consent).
    ///
    /// # Errors
    /// Store failures. An unknown or expired handle is `Ok(None)`.
    pub async fn pending_authorization(
        &self,
        handle: &str,
    ) -> Result<Option<AuthorizationPrompt>, Error> {
        let Some(pending) = self.store.pending(&Secret::new(handle).hash()).await? else {
            return Ok(None);
        };
        if pending.expires_at <= self.clock.unix() {
            return Ok(None);
        }
        let Some(client) = self.find_client(&pending.client_id).await? else {
            return Ok(None);
        };
        let client_host = client.document_host().map(str::to_owned);
        Ok(Some(prompt(
            handle.to_owned(),
            &client.into_record(),
            client_host,
            pending,
        )))
    }

    async fn take_pending(&self, handle: &str) -> Result<PendingAuthorization, AuthorizeError> {
        let expired = || {
            AuthorizeError::Render(OAuthError::invalid_request(
                "this authorization request has expired or was already completed; start again from the client",
            ))
        };
        let pending = self
            .store
            .take_pending(&Secret::new(handle).hash())
            .await?
            .ok_or_else(expired)?;
        if pending.expires_at <= self.clock.unix() {
            return Err(expired());
        }
        Ok(pending)
    }

    /// The user logged in as `identity` and consented: issue a code and return the redirect to the client
    /// (`code`, `state`, `iss`).
    ///
    /// # Errors
    /// [`AuthorizeError::Render`] if the handle is unknown, expired or already used.
    #[tracing::instrument(skip_all)]
    pub async fn approve(&self, handle: &str, identity: Identity) -> Result<Url, AuthorizeError> {
        self.approve_with(handle, identity, None).await
    }

    /// [`Self::approve`] for a login that has an upstream session: the session goes into the grant, so that the
    /// user can be re-checked upstream at every refresh.
    ///
    /// # Errors
    /// As [`Self::approve`].
    #[tracing::instrument(skip_all)]
    pub async fn approve_with(
        &self,
        handle: &str,
        identity: Identity,
        upstream: Option<UpstreamSession>,
    ) -> Result<Url, AuthorizeError> {
        let pending = self.take_pending(handle).await?;
        if !self.admits(&identity, &pending.resource) {
            tracing::info!(subject = %identity.subject, "access policy refused the user; no code issued");
            self.emit(crate::events::Event::AuthorizationRefused {
                subject: &identity.subject,
                client_id: &pending.client_id,
                reason: "access_policy",
            });
            // The resource by its configured name where it has one, as the consent page names it.
            let named = self
                .config
                .resources
                .iter()
                .find(|r| r.resource == pending.resource)
                .and_then(|r| r.name.as_deref());
            let resource = match named {
                Some(name) => format!("{name} ({})", pending.resource),
                None => pending.resource.clone(),
            };
            return Err(AuthorizeError::Forbidden(OAuthError::new(
                ErrorCode::AccessDenied,
                format!(
                    "{} may not use {resource}",
                    identity.username.as_deref().unwrap_or(&identity.subject),
                ),
            )));
        }
        let choice = self.scope_for(Some(&identity), &pending.scope, &pending.resource);
        if choice.granted.is_empty() && !pending.scope.is_empty() {
            tracing::info!(subject = %identity.subject, "the user may hold none of the scopes asked for; no code issued");
            self.emit(crate::events::Event::AuthorizationRefused {
                subject: &identity.subject,
                client_id: &pending.client_id,
                reason: "no_scope",
            });
            return Err(self.redirect_error(
                &pending.redirect_uri,
                OAuthError::new(
                    ErrorCode::AccessDenied,
                    format!("this user may not hold any of: {}", pending.scope),
                ),
                pending.state.as_deref(),
            ));
        }
        let mut pending = pending;
        pending.scope = choice.granted;
        let code = Secret::generate();
        let upstream = self.seal_upstream(&identity.subject, upstream.as_ref())?;
        let record = CodeRecord {
            grant_id: random_token(16),
            identity,
            upstream,
            expires_at: self
                .clock
                .unix()
                .saturating_add(self.config.code_ttl.as_secs()),
            pending,
        };
        self.store
            .put_code(&code.hash(), &record, self.config.code_ttl)
            .await?;
        tracing::info!(client_id = %record.pending.client_id, "authorization code issued");
        self.emit(crate::events::Event::CodeIssued {
            subject: &record.identity.subject,
            client_id: &record.pending.client_id,
            resource: &record.pending.resource,
        });
        self.redirect(
            &record.pending.redirect_uri,
            &[("code", code.expose())],
            record.pending.state.as_deref(),
        )
    }

    /// Whether the global access policy and that of `resource` both admit `identity` (an unknown resource admits
    /// nobody).
    pub fn admits(&self, identity: &Identity, resource: &str) -> bool {
        self.config.policy.admits(identity)
            && self
                .config
                .resources
                .iter()
                .find(|r| r.resource == resource)
                .is_some_and(|r| r.policy.admits(identity))
    }

    /// The user denied consent: return the `access_denied` redirect to the client.
    ///
    /// # Errors
    /// [`AuthorizeError::Render`] if the handle is unknown, expired or already used.
    pub async fn deny(&self, handle: &str) -> Result<Url, AuthorizeError> {
        let pending = self.take_pending(handle).await?;
        match self.redirect_error(
            &pending.redirect_uri,
            OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
            pending.state.as_deref(),
        ) {
            AuthorizeError::Redirect { to, .. } => Ok(to),
            other => Err(other),
        }
    }
}

fn prompt(
    handle: String,
    client: &ClientRecord,
    client_host: Option<String>,
    pending: PendingAuthorization,
) -> AuthorizationPrompt {
    let parsed = Url::parse(&pending.redirect_uri).ok();
    AuthorizationPrompt {
        handle,
        client_id: client.client_id.clone(),
        client_name: client.metadata.client_name.clone(),
        client_host,
        redirect_host: parsed
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| pending.redirect_uri.clone()),
        redirect_is_loopback: parsed.as_ref().is_some_and(is_loopback_host),
        redirect_uri: pending.redirect_uri,
        scope: pending.scope,
        resource: pending.resource,
        expires_at: pending.expires_at,
        consented: pending.consented,
    }
}
