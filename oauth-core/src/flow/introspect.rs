//! Token introspection (RFC 7662).
//!
//! The caller must authenticate as a client, and only learns about tokens issued to itself: a token of another
//! client is reported `{"active": false}`, exactly like an invalid one, so introspection cannot be used to probe
//! other clients' tokens. An access token is active when its signature, issuer, lifetime and revocation status
//! hold; a refresh token when it is live, not rotated, and its grant stands.

use crate::flow::token::ClientCredentials;
use crate::server::AuthServer;
use crate::store::RefreshState;
use crate::types::Secret;
use crate::wire::{IntrospectionRequest, IntrospectionResponse};
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
        req: IntrospectionRequest,
    ) -> Result<IntrospectionResponse, Error> {
        let client = self
            .authenticate_client(
                basic,
                req.client_id.as_deref(),
                req.client_secret.as_deref(),
            )
            .await?;
        let token = req
            .token
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let inactive = IntrospectionResponse::default();
        if let Some(claims) = self.decode_own_token(token) {
            let revoked = self.verifier.is_grant_revoked(&claims.sid)
                || self.store.grant(&claims.sid).await?.is_none();
            let token_revoked = self
                .verifier
                .principal(
                    token,
                    &self.keys,
                    &self.config.issuer,
                    self.clock.unix(),
                    self.config.leeway.as_secs(),
                )
                .is_err();
            if claims.client_id != client.client_id || revoked || token_revoked {
                return Ok(inactive);
            }
            return Ok(IntrospectionResponse {
                active: true,
                scope: Some(claims.scope),
                client_id: Some(claims.client_id),
                username: claims.preferred_username,
                token_type: Some("Bearer".into()),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                sub: Some(claims.sub),
                aud: Some(claims.aud),
                iss: Some(claims.iss),
                jti: Some(claims.jti),
            });
        }
        let Some(RefreshState::Active(rec)) =
            self.store.refresh(&Secret::new(token).hash()).await?
        else {
            return Ok(inactive);
        };
        if rec.client_id != client.client_id
            || rec.expires_at <= self.clock.unix()
            || self.verifier.is_grant_revoked(&rec.grant_id)
        {
            return Ok(inactive);
        }
        let Some(grant) = self.store.grant(&rec.grant_id).await? else {
            return Ok(inactive);
        };
        Ok(IntrospectionResponse {
            active: true,
            scope: Some(rec.scope.to_string()),
            client_id: Some(rec.client_id),
            username: grant.identity.username,
            token_type: Some("refresh_token".into()),
            exp: Some(rec.expires_at),
            iat: Some(rec.issued_at),
            sub: Some(grant.identity.subject),
            aud: Some(grant.resource),
            iss: Some(self.config.issuer.clone()),
            jti: None,
        })
    }
}
