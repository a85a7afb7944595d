//! The error a client may see, as the RFCs name it: the error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
//! RFC 7009 §2.2.1, RFC 7591 §3.2.2, RFC 8707 §2), [`OAuthError`] (a code with a description for the client
//! developer) and its RFC 6749 §5.2 body, [`ErrorResponse`].
//!
//! They live with the wire types because reading a request already fails with one (`parse_form` answers
//! `invalid_request`), and because they depend on nothing else of the engine: every layer above (store, keys,
//! flows, `crate::error`, which gathers every concern's error) can use them without a loop back down here.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The OAuth error codes this engine emits: RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
/// RFC 7591 §3.2.2 and RFC 8707 §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
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
    pub fn to_response(&self) -> ErrorResponse {
        ErrorResponse {
            error: self.code.as_str().to_owned(),
            error_description: Some(self.description.to_string()),
        }
    }
}

/// The RFC 6749 §5.2 error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error code.
    pub error: String,
    /// A description for the client developer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}
