//! Who is logging in: the identity-source seam.
//!
//! The engine does not care how a user proved who they are; it needs an [`Identity`] to put in the code and the
//! tokens. Identity sources come in two shapes, and [`IdentityProvider`] covers both so that the service can offer
//! several at once:
//!
//! * **password** sources ([`LocalUsers`]): the service shows a login form and hands the credentials over;
//! * **redirect** sources (GitHub: `GithubProvider`, feature `github`; any OpenID Connect provider:
//!   `OidcProvider`, feature `oidc`): the service redirects to the upstream with our own `state`, nonce and PKCE
//!   challenge, and hands the callback's code over.
//!
//! At every refresh the engine asks the user's provider again ([`IdentityProvider::recheck`]). The answer is one
//! of three ([`Recheck`]): the current identity, the user is gone, or the provider cannot be asked. The last
//! must not pass for the first: an identity nobody re-checked would otherwise keep a grant alive for as long as
//! the client refreshes, so the engine ends such a grant a configured time after the provider last vouched.
//!
//! Library types of upstream clients (openidconnect, oauth2) never cross this boundary.

#[cfg(feature = "github")]
mod github;
mod local;
pub mod password;

#[cfg(feature = "github")]
pub use github::{GithubConfig, GithubProvider};
pub use local::{LocalUser, LocalUsers, LocalUsersError, PasswordHashError};
#[cfg(feature = "oidc")]
mod oidc;
#[cfg(feature = "oidc")]
pub use oidc::{ClaimNames, OidcConfig, OidcProvider, RefreshTokenRequest};

use async_trait::async_trait;

use crate::types::{Identity, REDACTED, UpstreamSession};

/// The HTTP client a redirect provider calls its upstream with, one setup for all of them: redirects not followed,
/// `timeout` on connecting and on each whole request, our user agent. A failure is reported at `section`.
#[cfg(any(feature = "github", feature = "oidc"))]
fn upstream_http_client(
    timeout: std::time::Duration,
    section: &str,
) -> Result<reqwest::Client, crate::config::ConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("oauth-core/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            crate::config::ConfigError::new(
                section,
                crate::config::ConfigProblem::HttpClient(e.to_string()),
            )
        })
}

/// A successful login: who, and (for upstream providers) the session to re-check them with later.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    /// Who logged in.
    pub identity: Identity,
    /// The upstream session, if the provider has one.
    pub session: Option<UpstreamSession>,
}

impl Login {
    /// A login with no upstream session (local users).
    pub fn local(identity: Identity) -> Self {
        Login {
            identity,
            session: None,
        }
    }

    /// A login with an upstream session.
    pub fn upstream(identity: Identity, session: UpstreamSession) -> Self {
        Login {
            identity,
            session: Some(session),
        }
    }
}

/// An identity-source failure.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The credentials or the upstream answer do not identify a user. Shown to the user as a login failure.
    #[error("login failed")]
    LoginFailed,
    /// The provider does not support this kind of login.
    #[error("this identity provider does not support {0}")]
    Unsupported(&'static str),
    /// The upstream could not be reached or answered nonsense; the cause is for logs.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// Too many logins are being checked right now; the check was not started. Answer 503 with `Retry-After`.
    #[error("too many logins at once; retry after {} s", retry_after.as_secs())]
    Busy {
        /// How long the caller should wait.
        retry_after: std::time::Duration,
    },
}

/// How a provider starts a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginStart {
    /// Show a username/password form and call [`IdentityProvider::authenticate`] with
    /// [`Credentials::Password`].
    PasswordForm,
    /// Redirect the user agent here; the callback brings a code for [`Credentials::Callback`].
    Redirect(url::Url),
}

/// How the sign-in page offers a provider ([`IdentityProvider::sign_in`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// A button that sends the user to the provider.
    Button,
    /// The username and password form.
    PasswordForm,
    /// Not offered (a password provider with no accounts).
    Hidden,
}

/// What the upstream needs to bind a login to one pending authorization. `Debug` hides the state and the
/// PKCE verifier.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamRequest {
    /// Our single-use state for the upstream round trip.
    pub state: String,
    /// OIDC nonce.
    pub nonce: String,
    /// Our PKCE verifier towards the upstream.
    pub pkce_verifier: String,
    /// Where the upstream sends the user back.
    pub callback_url: String,
}

impl std::fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let UpstreamRequest {
            state: _,
            nonce,
            pkce_verifier: _,
            callback_url,
        } = self;
        f.debug_struct("UpstreamRequest")
            .field("state", &REDACTED)
            .field("nonce", nonce)
            .field("pkce_verifier", &REDACTED)
            .field("callback_url", callback_url)
            .finish()
    }
}

impl UpstreamRequest {
    /// A request with the given state, nonce, PKCE verifier and callback URL.
    pub fn new(state: String, nonce: String, pkce_verifier: String, callback_url: String) -> Self {
        UpstreamRequest {
            state,
            nonce,
            pkce_verifier,
            callback_url,
        }
    }
}

/// Credentials handed to [`IdentityProvider::authenticate`]. `Debug` hides the password and the code.
pub enum Credentials<'a> {
    /// From the login form.
    Password {
        /// Username as typed.
        username: &'a str,
        /// Password as typed.
        password: &'a str,
    },
    /// From the upstream's callback.
    Callback {
        /// The upstream's authorization code.
        code: &'a str,
        /// The request the login was started with.
        request: &'a UpstreamRequest,
    },
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password {
                username,
                password: _,
            } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &REDACTED)
                .finish(),
            Credentials::Callback { code: _, request } => f
                .debug_struct("Callback")
                .field("code", &REDACTED)
                .field("request", request)
                .finish(),
        }
    }
}

/// An identity source.
#[async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// A short stable identifier (`local`, `github`, …), also the namespace of subject ids.
    fn id(&self) -> &str;
    /// A name to show on a chooser page.
    fn display_name(&self) -> &str;
    /// How the sign-in page offers this provider: a button (the default, for providers that redirect), the
    /// password form, or not at all.
    fn sign_in(&self) -> SignIn {
        SignIn::Button
    }
    /// How a login with this provider starts.
    ///
    /// # Errors
    /// [`UpstreamError`] if the upstream's URL cannot be built.
    async fn start(&self, request: &UpstreamRequest) -> Result<LoginStart, UpstreamError>;
    /// Turns credentials into a login.
    ///
    /// # Errors
    /// [`UpstreamError::LoginFailed`] for wrong credentials or an answer that does not verify,
    /// [`UpstreamError::Unavailable`] for upstream failures.
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Login, UpstreamError>;

    /// Re-validates a user at refresh time, with the session of their login (or of the last re-check): see
    /// [`Recheck`] for the three answers. A provider never answers with the old identity as if it had checked it:
    /// what it could not ask about is [`Recheck::Unverifiable`], and the engine decides how long that may last.
    ///
    /// # Errors
    /// [`UpstreamError::Unavailable`] if the upstream cannot answer now (the refresh is refused for now, the grant
    /// kept).
    async fn recheck(
        &self,
        identity: &Identity,
        session: Option<&UpstreamSession>,
    ) -> Result<Recheck, UpstreamError>;
}

/// What a re-check at refresh found ([`IdentityProvider::recheck`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// The provider vouched for the user just now: their current identity (the access policy decides on it), and
    /// the session to keep (renewed if its tokens were refreshed).
    Current(Login),
    /// The provider could not be asked (no upstream refresh token once the access token expired, no userinfo
    /// endpoint, answers without the user id): the last identity stands, but only until
    /// [`max_unverified_age`](crate::ServerConfig::max_unverified_age) after the provider last vouched. Carries
    /// the session to keep if it changed (a token refresh that succeeded), `None` to keep the one held.
    Unverifiable(Option<UpstreamSession>),
    /// The user is gone (deleted, disabled, upstream session or refresh token revoked, the token now names someone
    /// else): the grant ends.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_upstream_requests_hide_passwords_codes_and_verifiers() {
        let request = UpstreamRequest::new(
            "state-value-1".into(),
            "nonce-a".into(),
            "verifier-value-2".into(),
            "https://as.example/callback".into(),
        );
        let password = Credentials::Password {
            username: "alice",
            password: "password-value-3",
        };
        let callback = Credentials::Callback {
            code: "code-value-4",
            request: &request,
        };
        let shown = format!("{password:?} {callback:?}");
        for secret in [
            "state-value-1",
            "verifier-value-2",
            "password-value-3",
            "code-value-4",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains(r#"username: "alice""#), "{shown}");
        assert!(shown.contains(r#"password: "[redacted]""#), "{shown}");
        assert!(shown.contains("https://as.example/callback"), "{shown}");
    }
}
