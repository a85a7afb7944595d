//! Errors, one enum per concern, each carrying what the wire needs.
//!
//! * [`OAuthError`] is an error the client is allowed to see: an RFC error code ([`ErrorCode`]), a description
//!   written for the client developer and, through [`OAuthError::status`], the HTTP status an adapter must use.
//! * [`Error`] is everything a core operation can fail with: an [`OAuthError`], or an internal failure of a seam
//!   (store, keys, upstream, sealed secrets) whose cause is logged by the adapter and never sent to the client.
//!
//! # Layers
//! Each concern's error is defined where the concern is: [`StoreError`] with the store, [`KeyError`] with the
//! keys, [`UpstreamError`] with the identity providers, and [`OAuthError`] with the wire types (`wire::error`),
//! since parsing a request already produces one. This module sits above them all and only gathers and converts:
//! nothing below it imports it, so the dependency runs one way.
//! * [`AuthorizeError`] captures the two exits of the authorization endpoint (RFC 6749 §4.1.2.1): before the
//!   redirect URI is verified the user agent must *not* be redirected, so the error is rendered; after, the error
//!   goes back to the client by redirect.
//!
//! Adapters map these to their framework once, in one place, without a catch-all arm.

pub use crate::wire::error::{ErrorCode, OAuthError};

use crate::keys::KeyError;
use crate::seal::SealError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// Everything a core operation can fail with.
#[derive(Debug, thiserror::Error)]
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
    /// A secret the store keeps sealed could not be sealed or opened (its key-encryption key is not configured,
    /// or the record was altered). Answer `server_error`; log the cause.
    #[error("sealed secret unusable: {0}")]
    Sealed(#[from] SealError),
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
            Error::Store(_) | Error::Keys(_) | Error::Sealed(_) => OAuthError::new(
                ErrorCode::ServerError,
                "the authorization server failed internally",
            ),
            Error::Upstream(_) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the upstream identity provider is unavailable; try again shortly",
            ),
        }
    }

    /// [`Self::to_oauth`] for an answer about to be sent: an internal failure's cause is logged here, once, for
    /// every adapter (never any request data), and the client gets the generic error.
    pub fn client_view(&self) -> OAuthError {
        if !matches!(self, Error::OAuth(_)) {
            tracing::error!(error = %self, "internal failure");
        }
        self.to_oauth()
    }
}

/// The authorization endpoint's two failure exits (RFC 6749 §4.1.2.1).
#[derive(Debug, thiserror::Error)]
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

impl From<SealError> for AuthorizeError {
    fn from(e: SealError) -> Self {
        AuthorizeError::Internal(Error::Sealed(e))
    }
}

/// Shorthand for a result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
