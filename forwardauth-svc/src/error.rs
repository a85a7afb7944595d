//! The single place where engine errors become HTTP responses.
//!
//! | error | status | headers / body |
//! |---|---|---|
//! | `invalid_client` at `/token`, `/revoke`, `/introspect` | 401 | `WWW-Authenticate: Basic` when Basic was used (RFC 6749 §5.2); JSON |
//! | `invalid_token` at `/register…` | 401 | `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1); JSON |
//! | any other OAuth error | its status | JSON `{error, error_description}` |
//! | store / keys / upstream failure | 500 or 503 | `server_error` / `temporarily_unavailable`, generic text; the cause is logged |
//! | an error page of the authorization UI ([`oauth_core::ErrorPage`]) | its status | the rendered HTML page; `Retry-After` when it says when to retry (429 over a limit or banned, 503 too busy) |
//! | over a rate limit at an OAuth endpoint | 429 | `Retry-After`; JSON `temporarily_unavailable` |
//!
//! Every JSON error carries `Cache-Control: no-store`. The `/verify` gate never errors through here: its 401 and
//! 403 are outcomes, shaped by its handler.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use oauth_core::{Error, ErrorCode, ErrorPage, OAuthError};

/// How long a "retry later" answer (429, 503) is held before it is sent. A client over its limit that retries at
/// once would otherwise cost about as much per refusal as a `/verify`: 64 connections retrying back to back took
/// half of a 2-core machine from `/verify` in `bench-storm`. Held, each connection costs a timer and no CPU, so a
/// storm's rate is bounded by its connections, not by how fast this server can say no.
pub const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

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
    /// An error page of the authorization UI, decided by the engine.
    #[error("page {}: {}", .0.status, .0.title)]
    Page(ErrorPage),
    /// 429 at an OAuth endpoint: this client address is over the endpoint's rate; `temporarily_unavailable`
    /// with `Retry-After`.
    #[error("rate limited; retry after {retry_after_secs} s")]
    Throttled {
        /// Seconds for `Retry-After`.
        retry_after_secs: u64,
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
            other => other,
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

/// The status of a numeric code from the engine (which only names valid ones; anything else is a 500).
pub fn status(code: u16) -> StatusCode {
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
            ApiError::Page(page) => status(page.status),
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
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
            ApiError::Page(page) => {
                let mut res = crate::pages::html(status(page.status), crate::pages::error(page));
                if let Some(wait) = page.retry_after {
                    res.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(oauth_core::throttle::whole_seconds(wait)),
                    );
                }
                res
            }
            ApiError::Throttled { retry_after_secs } => HttpResponse::build(
                StatusCode::TOO_MANY_REQUESTS,
            )
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)))
            .json(
                OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    format!(
                        "too many requests from this address; retry after {retry_after_secs} s"
                    ),
                )
                .to_response(),
            ),
        }
    }
}
