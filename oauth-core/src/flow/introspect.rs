//! Token introspection (RFC 7662).
//!
//! The caller must authenticate as a client, and only learns about tokens issued to itself: a token of another
//! client is reported `{"active": false}`, exactly like an invalid one, so introspection cannot be used to probe
//! other clients' tokens. An access token is active when its signature, issuer, lifetime and revocation status
//! hold; a refresh token when it is live, not rotated, and its grant stands.

use super::token::{RefreshToken, Standing};
use crate::flow::client::ClientCredentials;
use crate::server::AuthServer;
use crate::types::{ScopeSet, Secret};
use crate::wire::{IntrospectionResponse, TokenReference};
use crate::{Error, OAuthError};

impl AuthServer {
    /// `POST /introspect` (RFC 7662 §2.1).
    ///
    /// # Errors
    /// `invalid_request` without `token`; `invalid_client` (401); store failures.
    #[tracing::instrument(skip_all)]
    pub async fn introspect(
        &self,
        basic: Option<ClientCredentials>,
        req: TokenReference,
    ) -> Result<IntrospectionResponse, Error> {
        let client = self.authenticate_client(basic, &req.client).await?;
        let token = req
            .token
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let inactive = IntrospectionResponse::default();
        // Signature, issuer, lifetime and revocation in one step, as /verify does (but without its cache, which
        // keeps neither `jti` nor `iat`).
        if let Ok(c) = self.verifier.introspect(&self.token_check(token)) {
            if c.client_id != client.client_id || self.store.grant(&c.sid).await?.is_none() {
                return Ok(inactive);
            }
            return Ok(IntrospectionResponse {
                active: true,
                scope: Some(ScopeSet::parse(&c.scope).unwrap_or_default().to_string()),
                client_id: Some(c.client_id),
                username: c.preferred_username,
                token_type: Some("Bearer".into()),
                exp: Some(c.exp),
                iat: Some(c.iat),
                sub: Some(c.sub),
                aud: Some(c.aud),
                iss: Some(self.config.issuer.clone()),
                jti: Some(c.jti),
            });
        }
        let Some(presented) = RefreshToken::parse(token) else {
            return Ok(inactive);
        };
        let Some(grant) = self.store.grant(presented.grant_id).await? else {
            return Ok(inactive);
        };
        let Some(chain) = grant.refresh.as_ref() else {
            return Ok(inactive);
        };
        if presented.standing(&Secret::new(token), &grant) != Standing::Current
            || grant.client_id != client.client_id
            || grant.expires_at <= self.clock.unix()
            || self.verifier.is_grant_revoked(&grant.grant_id)
        {
            return Ok(inactive);
        }
        let issued_at = chain.issued_at;
        Ok(IntrospectionResponse {
            active: true,
            scope: Some(grant.scope.to_string()),
            client_id: Some(grant.client_id),
            username: grant.identity.username,
            token_type: Some("refresh_token".into()),
            exp: Some(grant.expires_at),
            iat: Some(issued_at),
            sub: Some(grant.identity.subject),
            aud: Some(grant.resource),
            iss: Some(self.config.issuer.clone()),
            jti: None,
        })
    }
}
