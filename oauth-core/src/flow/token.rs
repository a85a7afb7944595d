//! The token endpoint (RFC 6749 §3.2): the authorization-code grant (§4.1.3, with PKCE, RFC 7636 §4.6) and the
//! refresh grant (§6) with rotation. The client authenticates first, in the step revocation and introspection
//! share ([`AuthServer::authenticate_client`], in `flow::client`).
//!
//! # Codes
//! A code is consumed atomically on first redemption ([`Store::redeem_code`](crate::Store::redeem_code)); the
//! store keeps a marker, so a second redemption is recognised, refused with `invalid_grant`, and revokes the grant
//! the first one started (RFC 6749 §4.1.2).
//!
//! # Refresh tokens
//! Every use rotates, and reuse of a rotated token revokes the whole grant (OAuth 2.1 §4.3.1, "refresh token reuse
//! detection"), without a record per rotation: a grant's state stays one fixed-size record however often it is
//! refreshed ([`RefreshChain`]).
//!
//! A refresh token reads `{grant_id}.{generation}.{family}.{fresh}`. `family` is a secret drawn once per grant
//! and carried by every refresh token of it; `fresh` is drawn anew at each rotation. The grant keeps the hash of
//! `family`, the current generation and the hash of the current token. So a presented token is:
//! * **current**: its generation is the grant's and its hash is the current one: it rotates, in one
//!   compare-and-swap of the grant on the generation ([`Store::rotate_grant`](crate::Store::rotate_grant)) that
//!   also renews the grant and stores the grace record: one durable commit, so a crash cannot leave two live
//!   tokens or none;
//! * **rotated**: it carries the family secret and an older generation. If it is the token of the grant's last
//!   rotation and the grace window is open, a retry gets the same new refresh token (sealed in the grant under a
//!   key only the old token's holder can derive, see [`crate::seal`]) with a fresh access token; otherwise it is
//!   reuse and revokes the grant. Only the last rotation is kept: a retry of an older token means the chain moved
//!   on twice, so the token the retry would get has been used by someone;
//! * **unknown** otherwise. Knowing a grant id (the `sid` of its access tokens, which resource servers see) is not
//!   enough to revoke a grant by presenting a made-up old token: that takes the family secret, which only holders
//!   of the grant's refresh tokens have.
//!
//! Scope may narrow for the access token, never widen; the resource is kept.
//!
//! # Re-checks
//! Before a rotation the user is asked about at their identity provider again ([`crate::Recheck`]), and the access
//! policy judges the answer: a user who is gone or no longer admitted loses the grant. A refresh must not keep an
//! identity alive that nobody can confirm any more, or a user removed upstream would keep access for as long as
//! the client refreshes; so an unverifiable answer lets the last identity stand only until
//! `max_unverified_age` after the provider last vouched (the session's `verified_at`, else the grant's creation),
//! the grant's expiry never slides past that point, and once it has passed the grant ends (`invalid_grant`).

use super::authorize::{match_resource, requested_scope};
use super::client::ClientCredentials;
use crate::error::{ErrorCode, OAuthError};
use crate::jwt::AccessTokenClaims;
use crate::server::AuthServer;
use crate::store::{ClientRecord, CodeRedemption, GrantRecord, PreviousRotation, RefreshChain};
use crate::types::{ScopeSet, Secret, TokenHash, random_token};
use crate::upstream::Recheck;
use crate::wire::{TokenRequest, TokenResponse};
use crate::{Error, pkce, seal};

/// The grant of a token request, parsed (STYLE.md §2.4).
enum TokenGrant {
    AuthorizationCode {
        code: Secret,
        redirect_uri: Option<String>,
        verifier: String,
    },
    RefreshToken {
        token: Secret,
        scope: Option<String>,
    },
}

impl TryFrom<&TokenRequest> for TokenGrant {
    type Error = OAuthError;

    fn try_from(req: &TokenRequest) -> Result<Self, OAuthError> {
        let need = |v: &Option<String>, name: &str| {
            v.clone()
                .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
        };
        match req.grant_type.as_deref() {
            None => Err(OAuthError::invalid_request("grant_type is required")),
            Some("authorization_code") => Ok(TokenGrant::AuthorizationCode {
                code: Secret::new(need(&req.code, "code")?),
                redirect_uri: req.redirect_uri.clone(),
                verifier: need(&req.code_verifier, "code_verifier")?,
            }),
            Some("refresh_token") => Ok(TokenGrant::RefreshToken {
                token: Secret::new(need(&req.refresh_token, "refresh_token")?),
                scope: req.scope.clone(),
            }),
            Some(other) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type `{other}` is not supported (authorization_code, refresh_token)"
                ),
            )),
        }
    }
}

fn invalid_grant(description: &'static str) -> Error {
    OAuthError::new(ErrorCode::InvalidGrant, description).into()
}

/// Refuses a grant type the client did not register (RFC 6749 §5.2 `unauthorized_client`).
fn may_use_grant(client: &ClientRecord, grant_type: &str) -> Result<(), Error> {
    if client.metadata.grant_types.iter().any(|g| g == grant_type) {
        return Ok(());
    }
    Err(OAuthError::new(
        ErrorCode::UnauthorizedClient,
        format!("the client may not use the {grant_type} grant"),
    )
    .into())
}

const INVALID_REFRESH: &str = "the refresh token is invalid, expired or revoked";

/// A presented refresh token, parsed (see the module documentation for the format).
pub(crate) struct RefreshToken<'a> {
    /// The grant it claims to belong to.
    pub(crate) grant_id: &'a str,
    generation: u64,
    family: &'a str,
}

impl<'a> RefreshToken<'a> {
    /// `None` for anything that is not four non-empty dot-separated parts with a decimal generation.
    pub(crate) fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.split('.');
        let (grant_id, generation, family, fresh) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Digits only: `u64::from_str` would also take a leading `+`, a second spelling of one generation.
        if parts.next().is_some()
            || [grant_id, family, fresh].iter().any(|p| p.is_empty())
            || !generation.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(RefreshToken {
            grant_id,
            generation: generation.parse().ok()?,
            family,
        })
    }

    /// A new token of generation `generation` of the grant `grant_id` with the family secret `family`.
    fn mint(grant_id: &str, generation: u64, family: &str) -> Secret {
        Secret::new(format!(
            "{grant_id}.{generation}.{family}.{}",
            random_token(32)
        ))
    }

    /// What this token (whose whole text is `whole`) is to `grant`.
    pub(crate) fn standing(&self, whole: &Secret, grant: &GrantRecord) -> Standing {
        let Some(chain) = &grant.refresh else {
            return Standing::Unknown;
        };
        if grant.grant_id != self.grant_id
            || !TokenHash::of(self.family.as_bytes()).ct_eq(&chain.family)
        {
            return Standing::Unknown;
        }
        if self.generation == chain.generation && whole.matches(&chain.current) {
            Standing::Current
        } else if self.generation < chain.generation {
            Standing::Rotated
        } else {
            Standing::Unknown
        }
    }
}

/// What a presented refresh token is to the grant it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The grant's current token.
    Current,
    /// A token of the grant that has been rotated.
    Rotated,
    /// Not a token of this grant (made up, or altered).
    Unknown,
}

impl AuthServer {
    /// A `resource` at the token endpoint may only name the resource the code or grant is already for; `differs`
    /// says which.
    fn same_resource(
        &self,
        requested: Option<&str>,
        bound: &str,
        differs: &'static str,
    ) -> Result<(), Error> {
        match requested {
            Some(r) if match_resource(&self.config.resources, r)?.resource != bound => {
                Err(OAuthError::new(ErrorCode::InvalidTarget, differs).into())
            }
            _ => Ok(()),
        }
    }

    /// `POST /token`.
    ///
    /// # Errors
    /// The RFC 6749 §5.2 codes: `invalid_request`, `invalid_client` (401), `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, and `invalid_target` (RFC 8707).
    #[tracing::instrument(skip_all, fields(grant_type = req.grant_type.as_deref().unwrap_or("")))]
    pub async fn token(
        &self,
        basic: Option<ClientCredentials>,
        req: TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = self.authenticate_client(basic, &req.client).await?;
        let issued = match TokenGrant::try_from(&req)? {
            TokenGrant::AuthorizationCode {
                code,
                redirect_uri,
                verifier,
            } => {
                self.exchange_code(
                    &client,
                    code,
                    redirect_uri,
                    &verifier,
                    req.resource.as_deref(),
                )
                .await?
            }
            TokenGrant::RefreshToken { token, scope } => {
                self.refresh(&client, token, scope.as_deref(), req.resource.as_deref())
                    .await?
            }
        };
        // The tokens exist by now: a failure to record the use must not withhold them (the client would retry
        // the code and revoke its own grant). The next use records it.
        if !crate::cimd::is_url_client_id(&client.client_id)
            && let Err(e) = self.note_client_use(&client.client_id).await
        {
            tracing::warn!(error = %e, client_id = %client.client_id, "recording the client's use failed");
        }
        Ok(issued)
    }

    async fn exchange_code(
        &self,
        client: &ClientRecord,
        code: Secret,
        redirect_uri: Option<String>,
        verifier: &str,
        resource: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        may_use_grant(client, "authorization_code")?;
        let replay_ttl = self
            .config
            .refresh_token_ttl
            .max(self.config.access_token_ttl);
        let record = match self.store.redeem_code(&code.hash(), replay_ttl).await? {
            CodeRedemption::Fresh(r) => *r,
            CodeRedemption::Replayed { grant_id } => {
                tracing::warn!(client_id = %client.client_id, "authorization code replayed; revoking its grant");
                self.emit(crate::events::Event::CodeReplayed {
                    client_id: &client.client_id,
                });
                self.revoke_grant(&grant_id).await?;
                return Err(invalid_grant(
                    "the authorization code was already used; tokens issued from it are revoked",
                ));
            }
            CodeRedemption::Unknown => {
                return Err(invalid_grant(
                    "the authorization code is invalid or expired",
                ));
            }
        };
        let p = &record.pending;
        if record.expires_at <= self.clock.unix() {
            return Err(invalid_grant(
                "the authorization code is invalid or expired",
            ));
        }
        if p.client_id != client.client_id {
            return Err(invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
        match redirect_uri.as_deref() {
            Some(r) if r == p.redirect_uri => {}
            None if !p.redirect_uri_explicit => {}
            _ => {
                return Err(invalid_grant(
                    "redirect_uri does not match the authorization request",
                ));
            }
        }
        if !pkce::verify(&p.code_challenge, verifier) {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        self.same_resource(
            resource,
            &p.resource,
            "resource differs from the authorization request",
        )?;
        let now = self.clock.unix();
        let refresh = client
            .metadata
            .grant_types
            .iter()
            .any(|g| g == "refresh_token")
            .then(|| {
                let family = random_token(32);
                let token = RefreshToken::mint(&record.grant_id, 0, &family);
                let chain = RefreshChain {
                    generation: 0,
                    family: TokenHash::of(family.as_bytes()),
                    current: token.hash(),
                    issued_at: now,
                    previous: None,
                };
                (token, chain)
            });
        let grant = GrantRecord {
            grant_id: record.grant_id.clone(),
            client_id: client.client_id.clone(),
            identity: record.identity.clone(),
            scope: p.scope.clone(),
            resource: p.resource.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.config.refresh_token_ttl.as_secs()),
            upstream: record.upstream.clone(),
            refresh: refresh.as_ref().map(|(_, chain)| chain.clone()),
        };
        // One write: the grant with its refresh chain.
        self.store
            .put_grant(&grant, self.config.refresh_token_ttl)
            .await?;
        let access_token = self.sign_access_token(&grant, &grant.scope)?;
        let refresh_token = refresh.map(|(token, _)| token.into_exposed());
        tracing::info!(client_id = %client.client_id, "tokens issued for an authorization code");
        self.emit(crate::events::Event::TokenIssued {
            subject: &grant.identity.subject,
            client_id: &client.client_id,
            grant_type: "authorization_code",
            scope: &grant.scope.to_string(),
        });
        Ok(self.token_response(access_token, refresh_token, &grant.scope))
    }

    fn token_response(
        &self,
        access_token: String,
        refresh_token: Option<String>,
        scope: &ScopeSet,
    ) -> TokenResponse {
        TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: self.config.access_token_ttl.as_secs(),
            refresh_token,
            scope: scope.to_string(),
        }
    }

    pub(crate) fn sign_access_token(
        &self,
        grant: &GrantRecord,
        scope: &ScopeSet,
    ) -> Result<String, Error> {
        let now = self.clock.unix();
        let claims = AccessTokenClaims {
            iss: self.config.issuer.clone(),
            sub: grant.identity.subject.clone(),
            aud: grant.resource.clone(),
            client_id: grant.client_id.clone(),
            scope: scope.to_string(),
            exp: now.saturating_add(self.config.access_token_ttl.as_secs()),
            iat: now,
            jti: random_token(16),
            sid: grant.grant_id.clone(),
            preferred_username: grant.identity.username.clone(),
            email: grant.identity.email.clone(),
            name: grant.identity.name.clone(),
            groups: grant.identity.groups.clone(),
            nbf: None,
        };
        Ok(self.keys.sign(&claims.to_map(), now)?)
    }

    async fn refresh(
        &self,
        client: &ClientRecord,
        token: Secret,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        may_use_grant(client, "refresh_token")?;
        let Some(presented) = RefreshToken::parse(token.expose()) else {
            return Err(invalid_grant(INVALID_REFRESH));
        };
        // At most two rounds: a lost compare-and-swap means a concurrent rotation won, and the second round sees
        // the token as rotated, with the grace record the winner left.
        for _ in 0..2 {
            let Some(grant) = self.store.grant(presented.grant_id).await? else {
                return Err(invalid_grant(INVALID_REFRESH));
            };
            let standing = presented.standing(&token, &grant);
            if standing != Standing::Unknown && grant.client_id != client.client_id {
                return Err(invalid_grant(
                    "the refresh token was issued to another client",
                ));
            }
            match standing {
                Standing::Unknown => return Err(invalid_grant(INVALID_REFRESH)),
                Standing::Rotated => return self.refresh_retry(client, &token, &grant).await,
                Standing::Current => {
                    if let Some(done) = self
                        .rotate(client, &token, &presented, grant, scope, resource)
                        .await?
                    {
                        return Ok(done);
                    }
                }
            }
        }
        Err(invalid_grant(INVALID_REFRESH))
    }

    /// One rotation attempt; `Ok(None)` if a concurrent rotation won the compare-and-swap.
    async fn rotate(
        &self,
        client: &ClientRecord,
        token: &Secret,
        presented: &RefreshToken<'_>,
        grant: GrantRecord,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Option<TokenResponse>, Error> {
        let now = self.clock.unix();
        let Some(chain) = grant.refresh.clone() else {
            return Err(invalid_grant(INVALID_REFRESH));
        };
        if grant.expires_at <= now || self.verifier.is_grant_revoked(&grant.grant_id) {
            return Err(invalid_grant(INVALID_REFRESH));
        }
        let (mut grant, unverified_until) = self.recheck(grant).await?;
        // What the user may hold may have shrunk since consent (a group left upstream, a grant edited in the
        // configuration): the grant narrows to it, and never widens again without a new authorization.
        let holdable = self
            .scope_for(Some(&grant.identity), &grant.scope, &grant.resource)
            .granted;
        if holdable.is_empty() && !grant.scope.is_empty() {
            tracing::info!(subject = %grant.identity.subject, "the user may no longer hold any scope of the grant; revoking it");
            self.revoke_grant(&grant.grant_id).await?;
            return Err(invalid_grant(
                "this user may no longer hold any scope of this grant; sign in again",
            ));
        }
        let narrowed = match scope {
            None => holdable.clone(),
            Some(s) => {
                let s = requested_scope(s)?;
                if !s.is_subset_of(&grant.scope) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        "the requested scope exceeds the scope originally granted",
                    )
                    .into());
                }
                ScopeSet::from_tokens(s.iter().filter(|t| holdable.contains(t)).map(str::to_owned))
            }
        };
        grant.scope = holdable;
        self.same_resource(
            resource,
            &grant.resource,
            "resource differs from the one the grant is for",
        )?;
        let access_token = self.sign_access_token(&grant, &narrowed)?;
        let generation = chain.generation.saturating_add(1);
        let next = RefreshToken::mint(&grant.grant_id, generation, presented.family);
        let response = self.token_response(access_token, Some(next.expose().to_owned()), &narrowed);
        // Slides with each refresh, but never past the point where an identity nobody could re-check lapses.
        grant.expires_at = now
            .saturating_add(self.config.refresh_token_ttl.as_secs())
            .min(unverified_until.unwrap_or(u64::MAX));
        let ttl = std::time::Duration::from_secs(grant.expires_at.saturating_sub(now));
        grant.refresh = Some(RefreshChain {
            generation,
            family: chain.family,
            current: next.hash(),
            issued_at: now,
            previous: None,
        });
        let previous = if self.config.refresh_grace.is_zero() {
            None
        } else {
            let retry = Retry {
                refresh_token: next.expose().to_owned(),
                scope: narrowed.to_string(),
            };
            let plaintext = serde_json::to_vec(&retry)
                .map_err(|e| crate::keys::KeyError::Material(e.to_string()))?;
            let sealed = seal::seal(token.expose(), &plaintext).ok_or_else(|| {
                crate::keys::KeyError::Material("sealing the rotation failed".into())
            })?;
            Some(PreviousRotation {
                token: token.hash(),
                grace_until: now.saturating_add(self.config.refresh_grace.as_secs()),
                sealed,
            })
        };
        if let Some(chain) = grant.refresh.as_mut() {
            chain.previous = previous;
        }
        let swapped = self
            .store
            .rotate_grant(&grant, chain.generation, ttl)
            .await?;
        if !swapped {
            return Ok(None);
        }
        // A revocation that landed while this refresh ran (the rotation saw the grant before its deletion) must
        // not be undone by the write above.
        if self.verifier.is_grant_revoked(&grant.grant_id) {
            self.store.delete_grant(&grant.grant_id).await?;
            return Err(invalid_grant(INVALID_REFRESH));
        }
        tracing::info!(client_id = %client.client_id, "refresh token rotated");
        self.emit(crate::events::Event::TokenRefreshed {
            subject: &grant.identity.subject,
            client_id: &client.client_id,
            retry: false,
        });
        Ok(Some(response))
    }

    /// Re-checks the user of a grant before a refresh: still known to their identity provider (which may renew
    /// the identity and the upstream session), and still admitted by the access policy. A user who is gone or no
    /// longer admitted loses the whole grant; an upstream that cannot answer now refuses this refresh only.
    ///
    /// A provider that cannot be asked ([`Recheck::Unverifiable`], or no provider of that id configured any
    /// more) leaves the last identity standing until `max_unverified_age` after the provider last vouched, and
    /// that point is returned: the grant must not outlive it. Past it the grant ends, as for a user who is gone.
    /// The upstream session is sealed afresh: with the current key-encryption key, to the subject as it is now.
    async fn recheck(&self, mut grant: GrantRecord) -> Result<(GrantRecord, Option<u64>), Error> {
        let now = self.clock.unix();
        let mut session = self.open_upstream(&grant.identity.subject, grant.upstream.as_ref())?;
        let provider_id = match &session {
            Some(u) => Some(u.provider.as_str()),
            None => grant.identity.subject.split_once(':').map(|(p, _)| p),
        };
        let provider = provider_id.and_then(|id| self.provider(id)).cloned();
        let answer = match provider {
            Some(provider) => provider.recheck(&grant.identity, session.as_ref()).await,
            None => {
                tracing::info!(subject = %grant.identity.subject, "the user's identity provider is not configured; the identity cannot be re-checked");
                Ok(Recheck::Unverifiable(None))
            }
        };
        let mut unverified_until = None;
        match answer {
            Ok(Recheck::Current(login)) => {
                grant.identity = login.identity;
                if let Some(mut renewed) = login.session {
                    renewed.verified_at = Some(now);
                    session = Some(renewed);
                }
            }
            Ok(Recheck::Unverifiable(renewed)) => {
                if let Some(renewed) = renewed {
                    session = Some(renewed);
                }
                let vouched = session
                    .as_ref()
                    .and_then(|s| s.verified_at)
                    .unwrap_or(grant.created_at);
                let until = vouched.saturating_add(self.config.max_unverified_age.as_secs());
                if until <= now {
                    tracing::info!(subject = %grant.identity.subject, "the identity provider has not vouched for the user within max_unverified_age; revoking the grant");
                    self.revoke_grant(&grant.grant_id).await?;
                    return Err(invalid_grant(
                        "the identity provider could not confirm this user recently enough; sign in again",
                    ));
                }
                unverified_until = Some(until);
            }
            Ok(Recheck::Gone) => {
                tracing::info!(subject = %grant.identity.subject, "user gone upstream; revoking the grant");
                self.revoke_grant(&grant.grant_id).await?;
                return Err(invalid_grant(
                    "the user is no longer known to the identity provider; sign in again",
                ));
            }
            Err(crate::UpstreamError::Unavailable(cause)) => {
                return Err(crate::UpstreamError::Unavailable(cause).into());
            }
            Err(_) => {
                self.revoke_grant(&grant.grant_id).await?;
                return Err(invalid_grant(
                    "the identity provider no longer vouches for this user; sign in again",
                ));
            }
        }
        if !self.admits(&grant.identity, &grant.resource) {
            tracing::info!(subject = %grant.identity.subject, "access policy no longer admits the user; revoking the grant");
            self.revoke_grant(&grant.grant_id).await?;
            return Err(invalid_grant(
                "this user may no longer use this resource; sign in again",
            ));
        }
        grant.upstream = self.seal_upstream(&grant.identity.subject, session.as_ref())?;
        Ok((grant, unverified_until))
    }

    /// A rotated token came back: the same refresh token within the grace window, family revocation after it.
    async fn refresh_retry(
        &self,
        client: &ClientRecord,
        token: &Secret,
        grant: &GrantRecord,
    ) -> Result<TokenResponse, Error> {
        let retry = grant
            .refresh
            .as_ref()
            .and_then(|c| c.previous.as_ref())
            .filter(|p| token.matches(&p.token) && self.clock.unix() <= p.grace_until)
            .filter(|_| !self.verifier.is_grant_revoked(&grant.grant_id))
            .and_then(|p| seal::open(token.expose(), &p.sealed))
            .and_then(|plain| serde_json::from_slice::<Retry>(&plain).ok());
        if let Some(retry) = retry {
            let scope = ScopeSet::parse(&retry.scope).unwrap_or_default();
            let access_token = self.sign_access_token(grant, &scope)?;
            tracing::info!(client_id = %client.client_id, "refresh retried within the grace window");
            self.emit(crate::events::Event::TokenRefreshed {
                subject: &grant.identity.subject,
                client_id: &client.client_id,
                retry: true,
            });
            return Ok(self.token_response(access_token, Some(retry.refresh_token), &scope));
        }
        tracing::warn!(client_id = %client.client_id, "rotated refresh token reused; revoking its grant");
        self.emit(crate::events::Event::RefreshTokenReused {
            subject: &grant.identity.subject,
            client_id: &client.client_id,
        });
        self.revoke_grant(&grant.grant_id).await?;
        Err(invalid_grant(
            "the refresh token was already used; every token of this grant is revoked",
        ))
    }
}

/// What a grace-window retry is answered with, sealed in the grant: the rotation's new refresh token and the
/// scope of its access token (a fresh access token is signed for the retry).
#[derive(serde::Serialize, serde::Deserialize)]
struct Retry {
    refresh_token: String,
    scope: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_has_four_non_empty_parts_and_a_decimal_generation() {
        let t = RefreshToken::parse("g.12.fam.fresh").unwrap();
        assert_eq!((t.grant_id, t.generation, t.family), ("g", 12, "fam"));
        for bad in [
            "",
            "g",
            "g.1",
            "g.1.fam",
            "g.1.fam.fresh.extra",
            ".1.fam.fresh",
            "g..fam.fresh",
            "g.1..fresh",
            "g.1.fam.",
            "g.+1.fam.fresh",
            "g.-1.fam.fresh",
            "g.1a.fam.fresh",
            "g.99999999999999999999999.fam.fresh",
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    fn grant_with(generation: u64, family: &str, current: &str) -> GrantRecord {
        GrantRecord {
            grant_id: "g".into(),
            client_id: "c".into(),
            identity: crate::Identity::default(),
            scope: ScopeSet::default(),
            resource: "r".into(),
            created_at: 0,
            expires_at: 0,
            upstream: None,
            refresh: Some(RefreshChain {
                generation,
                family: TokenHash::of(family.as_bytes()),
                current: TokenHash::of(current.as_bytes()),
                issued_at: 0,
                previous: None,
            }),
        }
    }

    #[test]
    fn standing_needs_the_family_secret_and_the_current_hash() {
        let current = "g.3.fam.now";
        let grant = grant_with(3, "fam", current);
        let standing = |token: &str| {
            RefreshToken::parse(token)
                .unwrap()
                .standing(&Secret::new(token), &grant)
        };
        assert_eq!(standing(current), Standing::Current);
        assert_eq!(standing("g.2.fam.old"), Standing::Rotated);
        assert_eq!(standing("g.0.fam.old"), Standing::Rotated);
        assert_eq!(
            standing("g.3.fam.other"),
            Standing::Unknown,
            "current generation, wrong token"
        );
        assert_eq!(
            standing("g.4.fam.next"),
            Standing::Unknown,
            "a generation not issued yet"
        );
        assert_eq!(
            standing("g.2.other.old"),
            Standing::Unknown,
            "without the family secret"
        );
        assert_eq!(
            standing("h.2.fam.old"),
            Standing::Unknown,
            "another grant's id"
        );
        let mut plain = grant.clone();
        plain.refresh = None;
        assert_eq!(
            RefreshToken::parse(current)
                .unwrap()
                .standing(&Secret::new(current), &plain),
            Standing::Unknown,
            "a grant without a chain has no refresh tokens"
        );
    }
}
