//! RFC 6749 §4.1.3 / §6 token requests and the §5.1 response.
//!
//! Both carry credentials (codes, verifiers, refresh and access tokens, client secrets and assertions), so their
//! `Debug` shows which fields are present and never their values: a request logged while debugging must not
//! hand out a token.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{REDACTED, redacted};

/// The form of `POST /token`, flat: the grant type decides which fields matter. `Debug` is redacted.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The authorization code (code grant).
    pub code: Option<String>,
    /// The redirect URI used in the authorization request (code grant).
    pub redirect_uri: Option<String>,
    /// The PKCE verifier (code grant).
    pub code_verifier: Option<String>,
    /// The refresh token (refresh grant).
    pub refresh_token: Option<String>,
    /// Narrowed scope (refresh grant).
    pub scope: Option<String>,
    /// The protected resource (RFC 8707).
    pub resource: Option<String>,
    /// Client identifier, for public clients and `client_secret_post`.
    pub client_id: Option<String>,
    /// Client secret, for `client_secret_post`.
    pub client_secret: Option<String>,
    /// RFC 7521 §4.2: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` for `private_key_jwt`.
    pub client_assertion_type: Option<String>,
    /// RFC 7523 §2.2: the signed JWT authenticating the client.
    pub client_assertion: Option<String>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TokenRequest {
            grant_type,
            code,
            redirect_uri,
            code_verifier,
            refresh_token,
            scope,
            resource,
            client_id,
            client_secret,
            client_assertion_type,
            client_assertion,
        } = self;
        f.debug_struct("TokenRequest")
            .field("grant_type", grant_type)
            .field("code", &redacted(code))
            .field("redirect_uri", redirect_uri)
            .field("code_verifier", &redacted(code_verifier))
            .field("refresh_token", &redacted(refresh_token))
            .field("scope", scope)
            .field("resource", resource)
            .field("client_id", client_id)
            .field("client_secret", &redacted(client_secret))
            .field("client_assertion_type", client_assertion_type)
            .field("client_assertion", &redacted(client_assertion))
            .finish()
    }
}

/// The RFC 6749 §5.1 successful token response. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token (a JWT, RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// A refresh token, when the client's grant types include `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope.
    pub scope: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TokenResponse {
            access_token: _,
            token_type,
            expires_in,
            refresh_token,
            scope,
        } = self;
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", token_type)
            .field("expires_in", expires_in)
            .field("refresh_token", &redacted(refresh_token))
            .field("scope", scope)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_request_shows_which_secrets_are_present_but_not_their_values() {
        let req = TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some("code-value-1".into()),
            code_verifier: Some("verifier-value-2".into()),
            refresh_token: Some("refresh-value-3".into()),
            client_id: Some("client-a".into()),
            client_secret: Some("secret-value-4".into()),
            client_assertion: Some("assertion-value-5".into()),
            ..TokenRequest::default()
        };
        let shown = format!("{req:?}");
        for secret in [
            "code-value-1",
            "verifier-value-2",
            "refresh-value-3",
            "secret-value-4",
            "assertion-value-5",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains(r#"code: Some("[redacted]")"#), "{shown}");
        assert!(shown.contains(r#"client_id: Some("client-a")"#), "{shown}");
        assert!(
            shown.contains(r#"grant_type: Some("authorization_code")"#),
            "{shown}"
        );
        assert!(shown.contains("redirect_uri: None"), "{shown}");
    }

    #[test]
    fn a_token_response_shows_neither_token() {
        let res = TokenResponse {
            access_token: "access-value-1".into(),
            token_type: "Bearer".into(),
            expires_in: 3600,
            refresh_token: Some("refresh-value-2".into()),
            scope: "mcp:read".into(),
        };
        let shown = format!("{res:?}");
        assert!(!shown.contains("access-value-1"), "{shown}");
        assert!(!shown.contains("refresh-value-2"), "{shown}");
        assert!(shown.contains(r#"access_token: "[redacted]""#), "{shown}");
        assert!(shown.contains(r#"scope: "mcp:read""#), "{shown}");
    }
}
