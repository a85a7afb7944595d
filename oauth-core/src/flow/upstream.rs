//! Login at an upstream identity provider (GitHub, any OpenID Connect provider), between `/authorize` and
//! consent.
//!
//! Before the user leaves for the upstream, the pending MCP authorization is moved under a fresh, single-use
//! `state` (and the form's handle dies): the record is stored under the state's hash, with our nonce and PKCE
//! verifier towards the upstream (sealed, see [`crate::Sealer`]) and the hash of the browser session that started
//! the round trip. The callback
//! must present that state exactly, once, from the same browser (login CSRF); then the upstream answer is
//! verified by the provider, and the pending authorization is parked again under a new handle for consent.
//!
//! Upstream failures never end in a 500 or a hang: a user who cancels or is refused upstream goes back to the
//! client with `access_denied`; an upstream that cannot be reached or answers nonsense sends the client
//! `temporarily_unavailable` (or `access_denied` when the answer failed verification); a state that is unknown,
//! expired, replayed or from another browser renders an error page, since the client cannot be trusted then.

use url::Url;

use crate::error::{AuthorizeError, ErrorCode, OAuthError};
use crate::flow::authorize::AuthorizationPrompt;
use crate::flow::session::BrowserSession;
use crate::seal::{SealError, Sealed};
use crate::server::AuthServer;
use crate::store::{PendingAuthorization, UpstreamBinding, UpstreamVerifier};
use crate::types::{Secret, UpstreamSession, debug_redacted, random_token};
use crate::upstream::{Credentials, Login, LoginStart, UpstreamError, UpstreamRequest};

/// The query of the upstream's redirect back to us (RFC 6749 §4.1.2 / §4.1.2.1). `Debug` hides the code and
/// the state.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct UpstreamCallback {
    /// The upstream's authorization code.
    pub code: Option<String>,
    /// Our state, echoed.
    pub state: Option<String>,
    /// The upstream's error code, if the login did not happen.
    pub error: Option<String>,
    /// The upstream's error description.
    pub error_description: Option<String>,
    /// RFC 9207 issuer of the upstream (checked by the provider where supported).
    pub iss: Option<String>,
}

debug_redacted!(UpstreamCallback {
    code: secret,
    state: secret,
    error,
    error_description,
    iss,
});

fn bad_state() -> AuthorizeError {
    AuthorizeError::Render(OAuthError::invalid_request(
        "this sign-in link is unknown, expired, already used, or was opened in another browser; start again from the application",
    ))
}

impl AuthServer {
    /// Sends the user of a pending authorization, who has approved it, to an upstream identity provider: returns
    /// the URL to redirect the browser to. The form handle is spent; the pending authorization now waits under
    /// the upstream state, marked as approved. Call it only after the user approved the request on the consent
    /// page: consent comes before any upstream redirect (MCP security best practices, confused deputy), so no
    /// upstream `state` exists for a request nobody approved.
    ///
    /// # Errors
    /// [`AuthorizeError::Render`] for an unknown provider or an expired handle; a redirect with
    /// `temporarily_unavailable` when the provider cannot build its URL (e.g. discovery failed).
    #[tracing::instrument(skip_all, fields(provider = %provider_id))]
    pub async fn start_upstream(
        &self,
        handle: &str,
        provider_id: &str,
        session: &BrowserSession,
        callback_url: &str,
    ) -> Result<Url, AuthorizeError> {
        let provider = self.provider(provider_id).cloned().ok_or_else(|| {
            AuthorizeError::Render(OAuthError::invalid_request(format!(
                "unknown identity provider `{provider_id}`"
            )))
        })?;
        let mut pending = self.take_pending_for_upstream(handle).await?;
        let request = UpstreamRequest::new(
            random_token(32),
            random_token(16),
            random_token(32),
            callback_url.to_owned(),
        );
        let url = match provider.start(&request).await {
            Ok(LoginStart::Redirect(url)) => url,
            Ok(_) => {
                return Err(AuthorizeError::Render(OAuthError::invalid_request(
                    format!("identity provider `{provider_id}` does not use a redirect"),
                )));
            }
            Err(e) => return Err(self.upstream_failed(&pending, &e)),
        };
        let browser = Secret::new(session.id.as_str()).hash();
        pending.upstream = Some(UpstreamBinding {
            provider: provider_id.to_owned(),
            nonce: request.nonce.clone(),
            pkce_verifier: self.sealer.seal(
                &UpstreamVerifier::new(request.pkce_verifier.as_str()),
                &browser.to_hex(),
            )?,
            session: browser,
            callback_url: callback_url.to_owned(),
        });
        pending.consented = true;
        self.store
            .put_pending(
                &Secret::new(request.state.as_str()).hash(),
                &pending,
                self.config.pending_ttl,
            )
            .await?;
        Ok(url)
    }

    async fn take_pending_for_upstream(
        &self,
        handle: &str,
    ) -> Result<PendingAuthorization, AuthorizeError> {
        let pending = self.store.take_pending(&Secret::new(handle).hash()).await?;
        pending.filter(|p| p.expires_at > self.clock.unix() && p.upstream.is_none()).ok_or_else(|| {
            AuthorizeError::Render(OAuthError::invalid_request(
                "this authorization request has expired or was already completed; start again from the client",
            ))
        })
    }

    /// The upstream sent the browser back: verify the state (exactly, once, same browser), the upstream's answer,
    /// and return the login together with the pending authorization, parked again under a fresh handle.
    ///
    /// # Errors
    /// [`AuthorizeError::Render`] for a bad state; [`AuthorizeError::Redirect`] to the client with
    /// `access_denied` or `temporarily_unavailable` for upstream refusals and failures.
    #[tracing::instrument(skip_all)]
    pub async fn finish_upstream(
        &self,
        callback: &UpstreamCallback,
        session: Option<&BrowserSession>,
    ) -> Result<(AuthorizationPrompt, Login), AuthorizeError> {
        let state = callback.state.as_deref().ok_or_else(bad_state)?;
        let mut pending = self
            .store
            .take_pending(&Secret::new(state).hash())
            .await?
            .ok_or_else(bad_state)?;
        let binding = pending.upstream.take().ok_or_else(bad_state)?;
        let same_browser =
            session.is_some_and(|s| Secret::new(s.id.as_str()).matches(&binding.session));
        if pending.expires_at <= self.clock.unix() || !same_browser {
            return Err(bad_state());
        }
        if let Some(error) = callback.error.as_deref() {
            tracing::info!(upstream_error = %error, "the upstream did not log the user in");
            self.emit(crate::events::Event::LoginFailed {
                provider: &binding.provider,
                username: None,
                reason: "upstream",
            });
            let code = if matches!(error, "temporarily_unavailable" | "server_error") {
                ErrorCode::TemporarilyUnavailable
            } else {
                ErrorCode::AccessDenied
            };
            return Err(self.redirect_to_client(
                &pending,
                OAuthError::new(code, "the identity provider did not sign the user in"),
            ));
        }
        let code = callback.code.as_deref().ok_or_else(|| {
            self.redirect_to_client(
                &pending,
                OAuthError::new(
                    ErrorCode::AccessDenied,
                    "the identity provider returned no code",
                ),
            )
        })?;
        let provider = self
            .provider(&binding.provider)
            .cloned()
            .ok_or_else(bad_state)?;
        let verifier = self
            .sealer
            .open(&binding.pkce_verifier, &binding.session.to_hex())?;
        let request = UpstreamRequest::new(
            state.to_owned(),
            binding.nonce,
            verifier.into_exposed(),
            binding.callback_url,
        );
        let mut login = provider
            .authenticate(Credentials::Callback {
                code,
                request: &request,
            })
            .await
            .map_err(|e| {
                self.emit(crate::events::Event::LoginFailed {
                    provider: &binding.provider,
                    username: None,
                    reason: "upstream",
                });
                self.upstream_failed(&pending, &e)
            })?;
        self.emit(crate::events::Event::LoginSucceeded {
            provider: &binding.provider,
            subject: &login.identity.subject,
            username: login.identity.username.as_deref(),
        });
        // The provider vouched for the user just now: a grant that cannot re-check them later counts from here.
        if let Some(session) = login.session.as_mut() {
            session.verified_at = Some(self.clock.unix());
        }
        let handle = Secret::generate();
        self.store
            .put_pending(&handle.hash(), &pending, self.config.pending_ttl)
            .await?;
        let prompt = self
            .pending_authorization(handle.expose())
            .await?
            .ok_or_else(bad_state)?;
        Ok((prompt, login))
    }

    /// An upstream session as the records hold it: sealed with the current key-encryption key, bound to the
    /// subject it belongs to (so it opens only in a session, code or grant of that user).
    pub(crate) fn seal_upstream(
        &self,
        subject: &str,
        session: Option<&UpstreamSession>,
    ) -> Result<Option<Sealed<UpstreamSession>>, SealError> {
        session.map(|s| self.sealer.seal(s, subject)).transpose()
    }

    /// The upstream session a record holds for `subject`, opened.
    pub(crate) fn open_upstream(
        &self,
        subject: &str,
        sealed: Option<&Sealed<UpstreamSession>>,
    ) -> Result<Option<UpstreamSession>, SealError> {
        sealed.map(|s| self.sealer.open(s, subject)).transpose()
    }

    fn upstream_failed(&self, pending: &PendingAuthorization, e: &UpstreamError) -> AuthorizeError {
        tracing::warn!(error = %e, "upstream login failed");
        let error = match e {
            UpstreamError::Unavailable(_) | UpstreamError::Busy { .. } => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the identity provider is unavailable; try again shortly",
            ),
            UpstreamError::LoginFailed | UpstreamError::Unsupported(_) => OAuthError::new(
                ErrorCode::AccessDenied,
                "the identity provider's answer could not be verified",
            ),
        };
        self.redirect_to_client(pending, error)
    }

    fn redirect_to_client(
        &self,
        pending: &PendingAuthorization,
        error: OAuthError,
    ) -> AuthorizeError {
        self.redirect_error(&pending.redirect_uri, error, pending.state.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::UpstreamCallback;
    use crate::types::assert_debug;

    #[test]
    fn debug_hides_the_code_and_the_state() {
        let cb: UpstreamCallback = crate::wire::parse_form(
            b"code=upstream-code-123&state=our-state-456&iss=https://idp.example",
        )
        .unwrap();
        assert_debug(
            &cb,
            &["upstream-code-123", "our-state-456"],
            &["https://idp.example"],
        );
    }
}
