//! RFC 7009 revocation and RFC 7662 introspection: one request shape for both, and the introspection response.

use serde::{Deserialize, Serialize};

use super::ClientAuthentication;
use crate::types::debug_redacted;

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
    /// The client's credentials, when it authenticates in the body.
    #[serde(flatten)]
    pub client: ClientAuthentication,
}

debug_redacted!(TokenReference {
    token: secret,
    token_type_hint,
    client,
});

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
