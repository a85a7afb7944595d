//! The single place where engine errors become HTTP responses.
//!
//! | error | status | headers / body |
//! |---|---|---|
//! | `invalid_client` at `/token`, `/revoke`, `/introspect` | 401 | `WWW-Authenticate: Basic` when Basic was used (RFC 6749 §5.2); JSON |
//! | `invalid_token` at `/register…` | 401 | `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1); JSON |
//! | any other OAuth error | its status | JSON `{error, error_description}` |
//! | store / keys / upstream failure | 500 or 503 | `server_error` / `temporarily_unavailable`, generic text; the cause is logged |
//! | a page error (authorization UI) | its status | the rendered HTML page |
//!
//! Every JSON error carries `Cache-Control: no-store`. The `/verify` gate never errors through here: its 401 and
//! 403 are outcomes, shaped by its handler.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use oauth_core::{Error, ErrorCode, OAuthError};

/// Which authentication challenge a 401 carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// None.
    None,
    /// `Basic realm="…"` (client authentication by Basic failed).
    Basic,
    /// `Bearer error="invalid_token"` (registration access token or initial access token).
    Bearer,
}

/// An error response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An engine error at a JSON endpoint.
    #[error("{error}")]
    OAuth {
        /// The error.
        error: Error,
        /// The challenge for a 401.
        challenge: Challenge,
    },
    /// A rendered HTML page (authorization UI).
    #[error("page {status}")]
    Page {
        /// Status.
        status: StatusCode,
        /// The page.
        html: String,
    },
}

impl ApiError {
    /// An `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        OAuthError::invalid_request(description).into()
    }

    /// Sets the challenge.
    pub fn with_challenge(self, challenge: Challenge) -> Self {
        match self {
            ApiError::OAuth { error, .. } => ApiError::OAuth { error, challenge },
            page => page,
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::OAuth {
            error,
            challenge: Challenge::None,
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        Error::OAuth(e).into()
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Logs an internal failure (never its request data) and returns what the client may see.
pub fn client_view(error: &Error) -> OAuthError {
    match error {
        Error::OAuth(e) => e.clone(),
        internal => {
            tracing::error!(error = %internal, "internal failure");
            internal.to_oauth()
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::OAuth { error, .. } => status(error.to_oauth().status()),
            ApiError::Page { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::OAuth { error, challenge } => {
                let visible = client_view(error);
                let mut res = HttpResponse::build(status(visible.status()));
                res.insert_header((header::CACHE_CONTROL, "no-store"));
                res.insert_header((header::PRAGMA, "no-cache"));
                let challenge = match (visible.code, challenge) {
                    (ErrorCode::InvalidClient, Challenge::Basic) => {
                        Some("Basic realm=\"oauth\"".to_owned())
                    }
                    (ErrorCode::InvalidToken, Challenge::Bearer) => Some(format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        visible.description
                    )),
                    _ => None,
                };
                if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    res.insert_header((header::WWW_AUTHENTICATE, value));
                }
                res.json(visible.to_response())
            }
            ApiError::Page { status, html } => crate::pages::html(*status, html.clone()),
        }
    }
}
