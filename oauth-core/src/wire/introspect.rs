//! RFC 7009 revocation and RFC 7662 introspection: one request shape for both, and the introspection response.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::redacted;

/// A token named to the server by a client that authenticates itself: the form of `POST /revoke` and of
/// `POST /introspect`.
///
/// RFC 7009 §2.1 and RFC 7662 §2.1 define the same request: `token`, an optional `token_type_hint`, and the
/// client's credentials when it authenticates in the body (RFC 6749 §2.3.1 `client_secret_post`, RFC 7523
/// `private_key_jwt`). One type for both keeps the two endpoints from drifting apart. `Debug` shows which
/// secrets are present, never their values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenReference {
    /// The token to revoke or introspect.
    pub token: Option<String>,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    /// Client identifier (public clients, `client_secret_post`).
    pub client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    pub client_secret: Option<String>,
    /// RFC 7521 §4.2 assertion type (`private_key_jwt`).
    pub client_assertion_type: Option<String>,
    /// RFC 7523 §2.2 client assertion (`private_key_jwt`).
    pub client_assertion: Option<String>,
}

impl fmt::Debug for TokenReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TokenReference {
            token,
            token_type_hint,
            client_id,
            client_secret,
            client_assertion_type,
            client_assertion,
        } = self;
        f.debug_struct("TokenReference")
            .field("token", &redacted(token))
            .field("token_type_hint", token_type_hint)
            .field("client_id", client_id)
            .field("client_secret", &redacted(client_secret))
            .field("client_assertion_type", client_assertion_type)
            .field("client_assertion", &redacted(client_assertion))
            .finish()
    }
}

/// The RFC 7662 §2.2 response. An inactive token is `{"active": false}` and nothing else.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    /// Whether the token is currently active.
    pub active: bool,
    /// Granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The resource owner's login name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issue time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience: the protected resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reference_shows_which_secrets_are_present_but_not_their_values() {
        let form = TokenReference {
            token: Some("token-value-1".into()),
            token_type_hint: Some("refresh_token".into()),
            client_id: Some("client-a".into()),
            client_secret: Some("secret-value-2".into()),
            client_assertion_type: None,
            client_assertion: Some("assertion-value-3".into()),
        };
        let shown = format!("{form:?}");
        for secret in ["token-value-1", "secret-value-2", "assertion-value-3"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains(r#"token: Some("[redacted]")"#), "{shown}");
        assert!(shown.contains(r#"client_id: Some("client-a")"#), "{shown}");
        assert!(
            shown.contains(r#"token_type_hint: Some("refresh_token")"#),
            "{shown}"
        );
        assert!(shown.contains("client_assertion_type: None"), "{shown}");
    }
}
