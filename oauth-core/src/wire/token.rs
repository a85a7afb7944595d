//! RFC 6749 §4.1.3 / §6 token requests and the §5.1 response.
//!
//! Both carry credentials (codes, verifiers, refresh and access tokens, client secrets and assertions), so their
//! `Debug` shows which fields are present and never their values: a request logged while debugging must not
//! hand out a token.

use serde::{Deserialize, Serialize};

use crate::types::debug_redacted;

/// How a client authenticates in a form body, the same in the token, revocation and introspection requests:
/// `client_id` alone (a public client), with `client_secret` (RFC 6749 §2.3.1 `client_secret_post`), or with a
/// signed assertion (RFC 7523 §2.2 `private_key_jwt`). `Debug` hides the secret and the assertion.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientAuthentication {
    /// Client identifier.
    pub client_id: Option<String>,
    /// Client secret, for `client_secret_post`.
    pub client_secret: Option<String>,
    /// RFC 7521 §4.2: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` for `private_key_jwt`.
    pub client_assertion_type: Option<String>,
    /// RFC 7523 §2.2: the signed JWT authenticating the client.
    pub client_assertion: Option<String>,
}

debug_redacted!(ClientAuthentication {
    client_id,
    client_secret: secret,
    client_assertion_type,
    client_assertion: secret,
});

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
    /// The client's credentials, when it authenticates in the body.
    #[serde(flatten)]
    pub client: ClientAuthentication,
}

debug_redacted!(TokenRequest {
    grant_type,
    code: secret,
    redirect_uri,
    code_verifier: secret,
    refresh_token: secret,
    scope,
    resource,
    client,
});

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

debug_redacted!(TokenResponse {
    access_token: hidden,
    token_type,
    expires_in,
    refresh_token: secret,
    scope,
});
