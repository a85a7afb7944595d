//! RFC 7009 revocation and RFC 7662 introspection.

use serde::{Deserialize, Serialize};

/// The form of `POST /revoke` (RFC 7009 §2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RevocationRequest {
    /// The token to revoke.
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

/// The form of `POST /introspect` (RFC 7662 §2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IntrospectionRequest {
    /// The token to introspect.
    pub token: Option<String>,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    /// Client identifier.
    pub client_id: Option<String>,
    /// Client secret.
    pub client_secret: Option<String>,
    /// RFC 7521 §4.2 assertion type (`private_key_jwt`).
    pub client_assertion_type: Option<String>,
    /// RFC 7523 §2.2 client assertion (`private_key_jwt`).
    pub client_assertion: Option<String>,
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
