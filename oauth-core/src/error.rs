//! Errors, one enum per concern, each carrying what the wire needs.
//!
//! * [`OAuthError`] is an error the client is allowed to see: an RFC error code ([`ErrorCode`]), a description
//!   written for the client developer and, through [`OAuthError::status`], the HTTP status an adapter must use.
//! * [`Error`] is everything a core operation can fail with: an [`OAuthError`], or an internal failure of a seam
//!   (store, keys, upstream) whose cause is logged by the adapter and never sent to the client.
//! * [`AuthorizeError`] captures the two exits of the authorization endpoint (RFC 6749 §4.1.2.1): before the
//!   redirect URI is verified the user agent must *not* be redirected, so the error is rendered; after, the error
//!   goes back to the client by redirect.
//!
//! Adapters map these to their framework once, in one place, without a catch-all arm.

use std::borrow::Cow;

use serde::Serialize;

use crate::keys::KeyError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// The OAuth error codes this engine emits: RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
/// RFC 7591 §3.2.2 and RFC 8707 §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is missing a parameter, repeats one, or is otherwise malformed (RFC 6749 §5.2).
    InvalidRequest,
    /// Client authentication failed (RFC 6749 §5.2); answered with 401.
    InvalidClient,
    /// The code or refresh token is invalid, expired, revoked, or was issued to another client (RFC 6749 §5.2).
    InvalidGrant,
    /// The client is not allowed to use this grant or response type (RFC 6749 §5.2).
    UnauthorizedClient,
    /// The grant type is not supported (RFC 6749 §5.2).
    UnsupportedGrantType,
    /// The response type is not supported (RFC 6749 §4.1.2.1).
    UnsupportedResponseType,
    /// The requested scope is invalid, unknown, or exceeds what was granted (RFC 6749 §5.2).
    InvalidScope,
    /// The requested resource is invalid or unknown (RFC 8707 §2).
    InvalidTarget,
    /// The resource owner or the server denied the request (RFC 6749 §4.1.2.1).
    AccessDenied,
    /// The access token (or registration access token) is invalid, expired or revoked (RFC 6750 §3.1).
    InvalidToken,
    /// The token is valid but lacks the scope the resource requires (RFC 6750 §3.1); answered with 403.
    InsufficientScope,
    /// A redirect URI in a registration request is invalid (RFC 7591 §3.2.2).
    InvalidRedirectUri,
    /// A metadata field in a registration request is invalid (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// The token type named in a revocation request is not supported (RFC 7009 §2.2.1).
    UnsupportedTokenType,
    /// The server failed internally (RFC 6749 §4.1.2.1).
    ServerError,
    /// The server is temporarily unable to handle the request (RFC 6749 §4.1.2.1).
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status an adapter must answer with when this code is returned directly (not by redirect).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope | ErrorCode::AccessDenied => 403,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::InvalidScope
            | ErrorCode::InvalidTarget
            | ErrorCode::InvalidRedirectUri
            | ErrorCode::InvalidClientMetadata
            | ErrorCode::UnsupportedTokenType => 400,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error the client is allowed to see. `description` is written for the client developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The RFC error code.
    pub code: ErrorCode,
    /// A human-readable explanation for the client developer (`error_description`).
    pub description: Cow<'static, str>,
}

impl OAuthError {
    /// An error with the given code and description.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// The HTTP status an adapter must use when answering with this error directly.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The RFC 6749 §5.2 JSON body for this error.
    pub fn to_response(&self) -> crate::wire::ErrorResponse {
        crate::wire::ErrorResponse {
            error: self.code.as_str().to_owned(),
            error_description: Some(self.description.to_string()),
        }
    }
}

/// Everything a core operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error for the client: answer with its code, description and status.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The storage backend failed. Answer `temporarily_unavailable`/`server_error`; log the cause.
    #[error("storage backend failed: {0}")]
    Store(#[from] StoreError),
    /// Signing keys are unavailable or unusable. Answer `server_error`; log the cause.
    #[error("signing keys unavailable: {0}")]
    Keys(#[from] KeyError),
    /// The upstream identity provider failed. Answer `temporarily_unavailable`; log the cause.
    #[error("upstream identity provider failed: {0}")]
    Upstream(#[from] UpstreamError),
}

impl Error {
    /// The error a client may see: the [`OAuthError`] itself, or a generic one for internal failures (whose cause
    /// must be logged, never sent).
    pub fn to_oauth(&self) -> OAuthError {
        match self {
            Error::OAuth(e) => e.clone(),
            Error::Store(StoreError::Unavailable(_)) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the authorization server's storage is unavailable; try again shortly",
            ),
            Error::Store(_) | Error::Keys(_) => OAuthError::new(
                ErrorCode::ServerError,
                "the authorization server failed internally",
            ),
            Error::Upstream(_) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the upstream identity provider is unavailable; try again shortly",
            ),
        }
    }
}

/// The authorization endpoint's two failure exits (RFC 6749 §4.1.2.1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// `client_id` or `redirect_uri` could not be verified: the user agent MUST NOT be redirected. Render an error
    /// page with this error (status 400).
    #[error("{0}")]
    Render(OAuthError),
    /// The redirect URI is verified: redirect the user agent to this URL, which already carries `error`,
    /// `error_description`, `state` and `iss` (RFC 9207).
    #[error("redirect with {error}")]
    Redirect {
        /// The complete redirect URL.
        to: url::Url,
        /// The error it carries, for logging.
        error: OAuthError,
    },
    /// The user logged in but the resource's access policy does not admit them: render a 403 page; no code is
    /// issued and the pending authorization is spent.
    #[error("{0}")]
    Forbidden(OAuthError),
    /// An internal failure; render a generic error page (5xx) and log the cause.
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<StoreError> for AuthorizeError {
    fn from(e: StoreError) -> Self {
        AuthorizeError::Internal(Error::Store(e))
    }
}

/// Shorthand for a result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
