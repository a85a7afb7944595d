//! Token revocation (RFC 7009) and the administrative revocations built on the same mechanism.
//!
//! A refresh token is revoked with its whole grant (RFC 7009 §2.1: "SHOULD also invalidate all access tokens
//! based on the same authorization grant"); an access token alone by its `jti`. Every revocation is appended to the
//! store's log and applied to this instance's in-memory set at once, so `/verify` refuses it on the next call.
//! Revoking an invalid or unknown token, or another client's, is not an error (RFC 7009 §2.2) and changes nothing.

use crate::Error;
use crate::error::{ErrorCode, OAuthError};
use crate::events::Event;
use crate::flow::client::ClientCredentials;
use crate::flow::token::{RefreshToken, Standing};
use crate::jwt::{self, AccessTokenClaims};
use crate::server::AuthServer;
use crate::store::{Revocation, RevokedKind};
use crate::types::Secret;
use crate::wire::TokenReference;

impl AuthServer {
    /// `POST /revoke` (RFC 7009 §2.1).
    ///
    /// # Errors
    /// `invalid_request` without `token`; `invalid_client` (401); `unsupported_token_type` for a hint naming
    /// another type; store failures.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(
        &self,
        basic: Option<ClientCredentials>,
        req: TokenReference,
    ) -> Result<(), Error> {
        let client = self.authenticate_client(basic, &req.client).await?;
        let token = req
            .token
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        match req.token_type_hint.as_deref() {
            None | Some("access_token" | "refresh_token") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedTokenType,
                    format!("token_type_hint `{other}` is not supported"),
                )
                .into());
            }
        }
        if let Some(presented) = RefreshToken::parse(token) {
            // A current or rotated token of the grant (it carries the grant's family secret) revokes the grant.
            if let Some(grant) = self.store.grant(presented.grant_id).await?
                && presented.standing(&Secret::new(token), &grant) != Standing::Unknown
                && grant.client_id == client.client_id
            {
                self.revoke_grant(&grant.grant_id).await?;
                tracing::info!(client_id = %client.client_id, "refresh token revoked with its grant");
                self.emit(Event::TokenRevoked {
                    subject: Some(&grant.identity.subject),
                    client_id: &client.client_id,
                    token_type: "refresh_token",
                });
            }
            return Ok(());
        }
        if let Some(claims) = self.decode_own_token(token)
            && claims.client_id == client.client_id
        {
            self.add_revocation(Revocation {
                kind: RevokedKind::Token,
                id: claims.jti.clone(),
                expires_at: claims.exp.saturating_add(self.config.leeway.as_secs()),
                recorded_at_ms: None,
            })
            .await?;
            tracing::info!(client_id = %client.client_id, "access token revoked");
            self.emit(Event::TokenRevoked {
                subject: Some(&claims.sub),
                client_id: &client.client_id,
                token_type: "access_token",
            });
        }
        Ok(())
    }

    /// Claims of a token we signed whose lifetime has not ended (signature and time only).
    fn decode_own_token(&self, token: &str) -> Option<AccessTokenClaims> {
        let claims = AccessTokenClaims::from_map(self.keys.verify(token).ok()?).ok()?;
        jwt::validate(
            &claims,
            self.clock.unix(),
            self.config.leeway.as_secs(),
            &self.config.issuer,
            None,
        )
        .ok()?;
        Some(claims)
    }

    async fn add_revocation(&self, mut r: Revocation) -> Result<(), Error> {
        r.recorded_at_ms = Some(self.clock.unix_millis());
        self.verifier.apply_local(&r);
        self.store.add_revocation(&r).await?;
        Ok(())
    }

    /// Revokes a grant: every access token (by `sid`) and refresh token of it.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<(), Error> {
        // The entry outlives every access token of the grant (they carry its id as `sid`), and no longer: every
        // instance keeps it in memory, so it must not stay for the refresh token's lifetime (30 days by default).
        // The refresh tokens die with the record deleted below; a refresh racing this revocation cannot write the
        // grant back, because `Store::rotate_grant` swaps only a grant that is still there.
        let expires_at = self
            .clock
            .unix()
            .saturating_add(self.config.access_token_ttl.as_secs())
            .saturating_add(self.config.leeway.as_secs());
        self.add_revocation(Revocation {
            kind: RevokedKind::Grant,
            id: grant_id.to_owned(),
            expires_at,
            recorded_at_ms: None,
        })
        .await?;
        self.store.delete_grant(grant_id).await?;
        Ok(())
    }

    /// Revokes every grant of a client; returns how many.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_client_tokens(&self, client_id: &str) -> Result<usize, Error> {
        let grants = self.store.grants_of_client(client_id).await?;
        for g in &grants {
            self.revoke_grant(g).await?;
        }
        Ok(grants.len())
    }

    /// Revokes every grant of a user (subject); returns how many.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_subject_tokens(&self, subject: &str) -> Result<usize, Error> {
        let grants = self.store.grants_of_subject(subject).await?;
        for g in &grants {
            self.revoke_grant(g).await?;
        }
        Ok(grants.len())
    }
}
