//! The browser side of an authorization, one call per step: open the request, sign in with a password, choose
//! an identity provider, come back from it, consent, sign out.
//!
//! # Why in the core
//! Which page comes next is protocol, not HTTP: after `GET /authorize` a signed-in user whose consent is
//! remembered goes straight back to the client, a user the access policy refuses gets a 403 page before any
//! consent page (approving spends the request), and a wrong password shows the form again with a 401.
//!
//! # Consent
//! The consent page lists what the token will carry: the scopes asked for that this user may hold, each with its
//! configured description, and those left out. It comes before any redirect to an upstream identity provider
//! (MCP security best practices, confused deputy): a user who has not signed in yet approves the request (the
//! scopes the resource knows) and only then leaves for the provider, and only then does an upstream `state`
//! exist. Back from the provider, a grant of everything approved needs no second page; a grant of less shows the
//! page again with exactly what is granted. Consent is remembered only on request, and never for a client whose
//! redirect URI is on a loopback host: any program on the user's machine can listen there and claim to be that
//! client, so the user is asked every time. Written in an adapter,
//! each framework would decide this again, and differently. Here every step returns a [`Step`]: what to show
//! ([`Outcome`]: the sign-in page, the consent page, a redirect, an error page) and what to do with the session
//! cookie ([`SessionCookie`]). An adapter reads the cookie and the raw query or form, makes one call, and renders
//! the outcome; the access policy is checked in one place ([`AuthServer::approve_with`]).
//!
//! # Inputs
//! Steps take the query string or form body as sent (`application/x-www-form-urlencoded`), parsed here by
//! [`wire::parse_form`](crate::wire::parse_form), so that every adapter refuses the same malformed input with the
//! same page. Adapters cap form bodies at [`FORM_LIMIT`] bytes and answer [`ErrorPage::form_too_large`] beyond.
//!
//! # Forms and sessions
//! Every form carries the pending authorization's single-use handle and the session's CSRF token, compared in
//! constant time. POST steps never create a session: a form must follow a page that set the cookie. A sign-in
//! replaces the session (new id, new CSRF token), so a session id fixed before the sign-in is worthless after.
//!
//! # Signing out
//! Signing out is a step like the others, and only ever a POST with the session's CSRF token: a GET of
//! `/logout` shows a page that asks ([`Outcome::ConfirmSignOut`]), so that no link or image on another site
//! can end a session. The session ends in the store, not only in the browser. A page shown to a signed-in user
//! (consent, or an error such as the access policy's 403) offers "Not you?": the same form, and on the consent
//! page it carries the pending authorization's handle, so that after signing out the browser gets that
//! authorization's sign-in page in a new session and someone else can sign in. Without a handle (or once the
//! authorization is gone) the step ends on the signed-out page.

// A step that ends early returns its answer as `Err(Step)`: a whole page or redirect, built once per request. Boxing
// it would only add an allocation to that path.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::error::{AuthorizeError, Error};
use crate::flow::authorize::AuthorizationPrompt;
use crate::flow::login::LoginError;
use crate::flow::session::BrowserSession;
use crate::flow::upstream::UpstreamCallback;
use crate::server::AuthServer;
use crate::upstream::{Login, SignIn};
use crate::wire::{self, AuthorizationRequest};

/// The largest form body a step accepts; an adapter refuses a larger one with [`ErrorPage::form_too_large`].
pub const FORM_LIMIT: usize = 16 * 1024;

/// The result of one step: what to show, and what to do with the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the browser gets.
    pub outcome: Outcome,
    /// What to do with the session cookie.
    pub cookie: SessionCookie,
}

/// What the browser gets from a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sign-in page: the password form, a button per identity provider, or both.
    SignIn(SignInPage),
    /// The consent page.
    Consent(ConsentPage),
    /// Send the browser here (302, `Cache-Control: no-store`): back to the client with a code or an error, or on
    /// to an identity provider.
    Redirect(Url),
    /// The session ended; say so (200).
    SignedOut,
    /// `GET /logout`: the page that asks before signing out (200). A GET never signs anyone out.
    ConfirmSignOut(SignOutPage),
    /// An error page with its status.
    Error(ErrorPage),
}

/// What to do with the session cookie.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionCookie {
    /// Leave it as it is.
    Keep,
    /// Set it (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` on https) to `value` for `max_age`.
    Set {
        /// The session id (secret).
        value: String,
        /// The cookie's lifetime.
        max_age: Duration,
    },
    /// Remove it.
    Clear,
}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionCookie::Keep => f.write_str("Keep"),
            SessionCookie::Set { max_age, .. } => f
                .debug_struct("Set")
                .field("value", &"<redacted>")
                .field("max_age", max_age)
                .finish(),
            SessionCookie::Clear => f.write_str("Clear"),
        }
    }
}

/// An identity provider offered on the sign-in page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderChoice {
    /// Its id, sent back in the provider form.
    pub id: String,
    /// Its name, for the button.
    pub name: String,
}

/// Everything the sign-in page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInPage {
    /// The pending authorization (the form carries its handle).
    pub prompt: AuthorizationPrompt,
    /// The session's CSRF token, for every form on the page.
    pub csrf: String,
    /// Whether to show the username and password form.
    pub password: bool,
    /// The identity providers to offer, in configuration order.
    pub providers: Vec<ProviderChoice>,
    /// The username to fill in again after a failed attempt.
    pub username: String,
    /// Set after a failed attempt: the message to show; the page then goes out with 401.
    pub error: Option<&'static str>,
}

impl SignInPage {
    /// 401 after a failed attempt, else 200.
    pub fn status(&self) -> u16 {
        if self.error.is_some() { 401 } else { 200 }
    }
}

/// Everything the consent page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPage {
    /// The pending authorization: client, redirect host, scope asked for, resource, handle.
    pub prompt: AuthorizationPrompt,
    /// The session's CSRF token.
    pub csrf: String,
    /// Who is signed in, as a name to show; `None` before sign-in (the user approves, then signs in at
    /// [`Self::provider`]).
    pub user: Option<String>,
    /// The resource's configured name, if any.
    pub resource_name: Option<String>,
    /// What the token will carry, each scope with its configured description.
    pub scopes: Vec<ScopeLine>,
    /// Scopes asked for and left out: this user may not hold them, or the resource does not know them.
    pub withheld: Vec<String>,
    /// Before sign-in: the identity provider the user is sent to on approval (the form carries its id as
    /// `provider`).
    pub provider: Option<ProviderChoice>,
    /// Whether to offer to remember the decision: never before sign-in, never for a loopback redirect URI.
    pub rememberable: bool,
}

/// Who is signed in, on a page that offers to sign out ("Not you?"): the name to show and the CSRF token for
/// the sign-out form.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The user, as a name to show (username, or subject without one).
    pub user: String,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl SignedIn {
    fn of(session: &BrowserSession) -> Option<Self> {
        session.identity.as_ref().map(|who| SignedIn {
            user: shown_name(who),
            csrf: session.csrf.clone(),
        })
    }
}

/// The page `GET /logout` shows: the sign-out form, or, with nobody signed in, that there is nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOutPage {
    /// Who is signed in; `None` when nobody is (the page then has no form).
    pub signed_in: Option<SignedIn>,
    /// The pending authorization to return to once signed out (its sign-in page), from the query's `handle`.
    pub handle: Option<String>,
}

/// One scope on the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeLine {
    /// The scope.
    pub scope: String,
    /// What it allows, from the resource's configuration.
    pub description: Option<String>,
}

/// An error page: status, title and message, and for a "try again later" page how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    /// The HTTP status.
    pub status: u16,
    /// The page's title.
    pub title: Cow<'static, str>,
    /// What happened, for the user.
    pub message: String,
    /// For 429 and 503: when to try again (`Retry-After`). An adapter should hold such an answer briefly before
    /// sending it, so that a client retrying at once costs a timer rather than CPU.
    pub retry_after: Option<Duration>,
    /// Who is signed in, when the browser holds a signed-in session: the page offers to sign out ("Not you?").
    pub signed_in: Option<SignedIn>,
}

impl ErrorPage {
    fn new(status: u16, title: &'static str, message: impl Into<String>) -> Self {
        ErrorPage {
            status,
            title: Cow::Borrowed(title),
            message: message.into(),
            retry_after: None,
            signed_in: None,
        }
    }

    fn retry(status: u16, title: &'static str, message: String, retry_after: Duration) -> Self {
        ErrorPage {
            retry_after: Some(retry_after),
            ..ErrorPage::new(status, title, message)
        }
    }

    /// 400 for a form body over [`FORM_LIMIT`].
    pub fn form_too_large() -> Self {
        ErrorPage::new(400, "Invalid form", "The form is too large.")
    }

    /// 429 for a client address over the sign-in endpoints' rate ([`crate::RateLimits`]).
    pub fn throttled(retry_after: Duration) -> Self {
        ErrorPage::retry(
            429,
            "Too many requests",
            format!(
                "Too many sign-in requests came from your network. Try again in {}.",
                in_words(retry_after)
            ),
            retry_after,
        )
    }

    fn expired() -> Self {
        ErrorPage::new(
            400,
            "This sign-in has expired",
            "The authorization request has expired or was already completed.",
        )
    }

    /// A generic page for an internal failure; the cause is logged, never shown.
    fn internal(e: &Error) -> Self {
        let visible = e.client_view();
        ErrorPage::new(
            visible.status(),
            "Something went wrong",
            visible.description,
        )
    }

    fn login(e: LoginError) -> Self {
        match e {
            LoginError::Banned { retry_after } => ErrorPage::retry(
                429,
                "Too many failed sign-ins",
                format!(
                    "Sign-in is paused for this account or network after too many failed attempts. Try again in {}.",
                    in_words(retry_after)
                ),
                retry_after,
            ),
            LoginError::Busy { retry_after } => ErrorPage::retry(
                503,
                "Too many sign-ins right now",
                format!(
                    "The server is busy checking other sign-ins. Go back and try again in {}.",
                    in_words(retry_after)
                ),
                retry_after,
            ),
            LoginError::NotEnabled => ErrorPage::new(
                400,
                "Password sign-in is not enabled",
                "This server has no local accounts; choose another way to sign in.",
            ),
            LoginError::Failed => {
                ErrorPage::new(401, "Sign-in failed", "Invalid username or password.")
            }
            LoginError::Internal(e) => ErrorPage::internal(&e),
        }
    }
}

/// "3 seconds", "2 minutes": how long, for a page.
pub fn in_words(d: Duration) -> String {
    match crate::throttle::whole_seconds(d) {
        1 => "1 second".to_owned(),
        s if s < 120 => format!("{s} seconds"),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

/// An exit of the authorization endpoint, as the browser sees it.
fn authorize_exit(e: AuthorizeError) -> Outcome {
    match e {
        AuthorizeError::Redirect { to, .. } => Outcome::Redirect(to),
        AuthorizeError::Render(e) => Outcome::Error(ErrorPage::new(
            400,
            "Invalid authorization request",
            e.description,
        )),
        AuthorizeError::Forbidden(e) => {
            Outcome::Error(ErrorPage::new(403, "Access denied", e.description))
        }
        AuthorizeError::Internal(e) => Outcome::Error(ErrorPage::internal(&e)),
    }
}

impl From<ErrorPage> for Step {
    fn from(page: ErrorPage) -> Self {
        Step {
            outcome: Outcome::Error(page),
            cookie: SessionCookie::Keep,
        }
    }
}

impl From<Outcome> for Step {
    fn from(outcome: Outcome) -> Self {
        Step {
            outcome,
            cookie: SessionCookie::Keep,
        }
    }
}

/// A form of a pending authorization: its handle and the session's CSRF token, which every such form carries,
/// and the fields of the step (`T`).
#[derive(Deserialize)]
struct PromptForm<T> {
    handle: Option<String>,
    csrf: Option<String>,
    #[serde(flatten)]
    fields: T,
}

/// The sign-in form's own fields.
#[derive(Deserialize)]
struct SignInForm {
    username: Option<String>,
    password: Option<String>,
}

/// The own field of a provider button on the sign-in page.
#[derive(Deserialize)]
struct ProviderForm {
    provider: Option<String>,
}

/// The consent form's own fields.
#[derive(Deserialize)]
struct ConsentForm {
    decision: Option<String>,
    remember: Option<String>,
    /// Before sign-in: the identity provider to continue with.
    provider: Option<String>,
}

/// The sign-out form: the session's CSRF token, and the pending authorization to return to, if any.
#[derive(Deserialize)]
struct SignOutForm {
    csrf: Option<String>,
    handle: Option<String>,
}

/// The query of `GET /logout`.
#[derive(Deserialize)]
struct SignOutQuery {
    handle: Option<String>,
}

/// The browser steps of an authorization (sign-in, provider choice, callback, consent, sign-out), one call per
/// step, each returning a [`Step`]. From [`AuthServer::browser`].
#[derive(Debug, Clone, Copy)]
pub struct Browser<'a> {
    server: &'a AuthServer,
}

impl AuthServer {
    /// The browser steps of an authorization (sign-in, provider choice, callback, consent, sign-out).
    pub fn browser(&self) -> Browser<'_> {
        Browser { server: self }
    }
}

impl Browser<'_> {
    /// `GET /authorize?…`: validates the request (RFC 6749 §4.1.1), then shows the sign-in page, or for a
    /// signed-in user the consent page, or goes straight back to the client when consent is remembered. Sets a
    /// session cookie when the browser had none.
    #[tracing::instrument(skip_all)]
    pub async fn authorize(&self, query: &str, cookie: Option<&str>) -> Step {
        settle(
            async {
                let request: AuthorizationRequest =
                    parse(query.as_bytes(), "Invalid authorization request")?;
                let prompt = self.server.authorize(request).await.map_err(exit)?;
                let session = self
                    .server
                    .browser_session(cookie)
                    .await
                    .map_err(internal)?;
                Ok(self.next(session, prompt, None).await)
            }
            .await,
        )
    }

    /// `POST /login`: a username and password from the sign-in page, under the engine's regulation (bans,
    /// concurrent checks). A wrong password shows the page again (401).
    #[tracing::instrument(skip_all)]
    pub async fn sign_in(&self, form: &[u8], cookie: Option<&str>, client: Option<IpAddr>) -> Step {
        settle(
            async {
                let (form, session, prompt) = self.prompt_form::<SignInForm>(form, cookie).await?;
                let username = form.username.unwrap_or_default();
                let password = form.password.unwrap_or_default();
                let login = match self
                    .server
                    .password_login(&username, &password, client)
                    .await
                {
                    Ok(login) => login,
                    Err(LoginError::Failed) => {
                        return Ok(self.next(session, prompt, Some(username)).await);
                    }
                    Err(e) => return Err(ErrorPage::login(e).into()),
                };
                self.logged_in(&session, prompt, login).await
            }
            .await,
        )
    }

    /// `POST /login/upstream`: the user chose an identity provider; off to it.
    #[tracing::instrument(skip_all)]
    pub async fn choose_provider(&self, form: &[u8], cookie: Option<&str>) -> Step {
        settle(
            async {
                let (form, session, prompt) =
                    self.prompt_form::<ProviderForm>(form, cookie).await?;
                let provider = form.provider.unwrap_or_default();
                if prompt.consented {
                    return Ok(self
                        .start_upstream(&session, &prompt, &provider)
                        .await
                        .into());
                }
                let choice = self.button(&provider).ok_or_else(|| {
                    Step::from(ErrorPage::new(
                        400,
                        "Invalid form",
                        format!("unknown identity provider `{provider}`"),
                    ))
                })?;
                Ok(
                    Outcome::Consent(self.consent_page(&session, prompt, None, Some(choice)))
                        .into(),
                )
            }
            .await,
        )
    }

    /// `GET /callback?…`: the identity provider sent the user back. Verifies the state (exactly, once, from the
    /// browser that left), signs the user in, and goes on as after a password sign-in.
    #[tracing::instrument(skip_all)]
    pub async fn callback(&self, query: &str, cookie: Option<&str>) -> Step {
        settle(
            async {
                let query: UpstreamCallback = parse(query.as_bytes(), "Invalid sign-in response")?;
                let session = self
                    .server
                    .existing_session(cookie)
                    .await
                    .map_err(internal)?;
                let (prompt, login) = self
                    .server
                    .finish_upstream(&query, session.as_ref())
                    .await
                    .map_err(exit)?;
                let session = session.ok_or_else(|| Step::from(ErrorPage::expired()))?;
                self.logged_in(&session, prompt, login).await
            }
            .await,
        )
    }

    /// `POST /consent`: approve (optionally remembering the consent) or deny; back to the client either way.
    #[tracing::instrument(skip_all)]
    pub async fn consent(&self, form: &[u8], cookie: Option<&str>) -> Step {
        settle(
            async {
                let (form, session, prompt) = self.prompt_form::<ConsentForm>(form, cookie).await?;
                let to = match (form.decision.as_deref(), session.identity.clone()) {
                    // Approved before sign-in: only now is the user sent to the provider.
                    (Some("approve"), None) => {
                        let provider = form.provider.unwrap_or_default();
                        return Ok(self
                            .start_upstream(&session, &prompt, &provider)
                            .await
                            .into());
                    }
                    (Some("approve"), Some(identity)) => {
                        let subject = identity.subject.clone();
                        let granted = self
                            .server
                            .scope_for(Some(&identity), &prompt.scope, &prompt.resource)
                            .granted;
                        let to = self
                            .server
                            .approve_with(&prompt.handle, identity, session.upstream.clone())
                            .await
                            .map_err(|e| signed_in(exit(e), &session))?;
                        // Remembered only once approved, so the access policy is judged in one place.
                        let remembered =
                            form.remember.as_deref() == Some("on") && rememberable(&prompt);
                        if remembered {
                            self.server
                                .remember_consent(&subject, &prompt, &granted)
                                .await
                                .map_err(internal)?;
                        }
                        self.server.emit(crate::events::Event::ConsentGiven {
                            subject: &subject,
                            client_id: &prompt.client_id,
                            scope: &granted.to_string(),
                            remembered,
                        });
                        to
                    }
                    (Some("deny"), identity) => {
                        let to = self.server.deny(&prompt.handle).await.map_err(exit)?;
                        self.server.emit(crate::events::Event::ConsentRefused {
                            subject: identity.as_ref().map(|i| i.subject.as_str()),
                            client_id: &prompt.client_id,
                        });
                        to
                    }
                    _ => {
                        return Err(
                            ErrorPage::new(400, "Invalid form", "Choose Approve or Deny.").into(),
                        );
                    }
                };
                Ok(Outcome::Redirect(to).into())
            }
            .await,
        )
    }

    /// `GET /logout?handle=…`: the page that asks before signing out. Nothing changes: no session is created or
    /// ended, and the cookie is kept.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_sign_out(&self, query: &str, cookie: Option<&str>) -> Step {
        settle(
            async {
                let query: SignOutQuery = parse(query.as_bytes(), "Invalid request")?;
                let session = self
                    .server
                    .existing_session(cookie)
                    .await
                    .map_err(internal)?;
                Ok(Outcome::ConfirmSignOut(SignOutPage {
                    signed_in: session.as_ref().and_then(SignedIn::of),
                    handle: query.handle,
                })
                .into())
            }
            .await,
        )
    }

    /// `POST /logout`: ends the session in the store (the form carries its CSRF token) and clears the cookie.
    /// With the `handle` of a pending authorization, the browser gets that authorization's sign-in page in a new
    /// session ("Not you?"); without one, or once it has expired, the signed-out page. Without a session there
    /// is nothing to end, and the answer is the signed-out page.
    #[tracing::instrument(skip_all)]
    pub async fn sign_out(&self, form: &[u8], cookie: Option<&str>) -> Step {
        settle(
            async {
                let form: SignOutForm = parse(form, "Invalid form")?;
                let signed_out = Step {
                    outcome: Outcome::SignedOut,
                    cookie: SessionCookie::Clear,
                };
                let Some(session) = self
                    .server
                    .existing_session(cookie)
                    .await
                    .map_err(internal)?
                else {
                    return Ok(signed_out);
                };
                if !form
                    .csrf
                    .as_deref()
                    .is_some_and(|c| session.csrf_matches(c))
                {
                    return Err(forged_form().into());
                }
                self.server.log_out(&session).await.map_err(internal)?;
                let Some(handle) = form.handle else {
                    return Ok(signed_out);
                };
                let Some(prompt) = self
                    .server
                    .pending_authorization(&handle)
                    .await
                    .map_err(internal)?
                else {
                    return Ok(signed_out);
                };
                let fresh = self.server.browser_session(None).await.map_err(internal)?;
                Ok(self.next(fresh, prompt, None).await)
            }
            .await,
        )
    }

    /// A form of a pending authorization parsed, with the session and the pending authorization it refers to,
    /// after the CSRF check.
    async fn prompt_form<T: serde::de::DeserializeOwned>(
        &self,
        body: &[u8],
        cookie: Option<&str>,
    ) -> Result<(T, BrowserSession, AuthorizationPrompt), Step> {
        let PromptForm {
            handle,
            csrf,
            fields,
        } = parse(body, "Invalid form")?;
        let session = self
            .server
            .existing_session(cookie)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                Step::from(ErrorPage::new(
                    400,
                    "Your session has expired",
                    "Cookies must be enabled to sign in.",
                ))
            })?;
        if !csrf.as_deref().is_some_and(|c| session.csrf_matches(c)) {
            return Err(forged_form().into());
        }
        let expired = || Step::from(ErrorPage::expired());
        let handle = handle.ok_or_else(expired)?;
        let prompt = self
            .server
            .pending_authorization(&handle)
            .await
            .map_err(internal)?
            .ok_or_else(expired)?;
        Ok((fields, session, prompt))
    }

    /// After a successful login, by password or upstream: the session is replaced by a signed-in one, and the
    /// authorization goes on.
    async fn logged_in(
        &self,
        session: &BrowserSession,
        prompt: AuthorizationPrompt,
        login: Login,
    ) -> Result<Step, Step> {
        let session = self.server.log_in(session, login).await.map_err(internal)?;
        Ok(self.next(session, prompt, None).await)
    }

    /// What follows for `session` and `prompt`: for nobody signed in, the sign-in page (or the only provider);
    /// for a user the policy refuses, the 403 page; for remembered consent, the redirect with the code; else the
    /// consent page. `failed` is the username of a failed password attempt. The cookie is set when the session
    /// is new, and only then.
    async fn next(
        &self,
        session: BrowserSession,
        prompt: AuthorizationPrompt,
        failed: Option<String>,
    ) -> Step {
        let mut outcome = self.next_outcome(&session, prompt, failed).await;
        // A signed-in user refused here may sign out, if the browser holds the session (a new one's cookie is
        // not set with an error page).
        if let (Outcome::Error(page), false) = (&mut outcome, session.is_new) {
            page.signed_in = SignedIn::of(&session);
        }
        let cookie = match (&outcome, session.is_new) {
            (Outcome::Error(_), _) | (_, false) => SessionCookie::Keep,
            (_, true) => SessionCookie::Set {
                value: session.id,
                max_age: self.server.config.session_ttl,
            },
        };
        Step { outcome, cookie }
    }

    async fn next_outcome(
        &self,
        session: &BrowserSession,
        prompt: AuthorizationPrompt,
        failed: Option<String>,
    ) -> Outcome {
        let Some(identity) = &session.identity else {
            let (password, providers) = self.sign_in_choices();
            // With one provider and no local accounts there is nothing to choose: the user approves, then goes
            // there.
            if let ([only], false, None) = (providers.as_slice(), password, &failed) {
                let only = only.clone();
                return Outcome::Consent(self.consent_page(session, prompt, None, Some(only)));
            }
            return Outcome::SignIn(SignInPage {
                prompt,
                csrf: session.csrf.clone(),
                password,
                providers,
                error: failed.is_some().then_some("Invalid username or password."),
                username: failed.unwrap_or_default(),
            });
        };
        let choice = self
            .server
            .scope_for(Some(identity), &prompt.scope, &prompt.resource);
        // Approved before sign-in, and granted all that was approved then.
        let approved_before = prompt.consented
            && choice.granted
                == self
                    .server
                    .scope_for(None, &prompt.scope, &prompt.resource)
                    .granted;
        let remembered = rememberable(&prompt)
            && match self
                .server
                .has_consented(&identity.subject, &prompt, &choice.granted)
                .await
            {
                Ok(c) => c,
                Err(e) => return Outcome::Error(ErrorPage::internal(&e)),
            };
        // A user the policy refuses is refused now rather than after a consent page: approve judges the policy
        // and spends the request.
        if approved_before || remembered || !self.server.admits(identity, &prompt.resource) {
            return match self
                .server
                .approve_with(&prompt.handle, identity.clone(), session.upstream.clone())
                .await
            {
                Ok(to) => Outcome::Redirect(to),
                Err(e) => authorize_exit(e),
            };
        }
        Outcome::Consent(self.consent_page(session, prompt, Some(identity), None))
    }

    /// The consent page for `prompt`: for a signed-in user (`identity`), exactly what they would be granted;
    /// before sign-in, what the resource knows of what was asked, and the `provider` the user goes to on approval.
    fn consent_page(
        &self,
        session: &BrowserSession,
        prompt: AuthorizationPrompt,
        identity: Option<&crate::Identity>,
        provider: Option<ProviderChoice>,
    ) -> ConsentPage {
        let user = identity.map(shown_name);
        let choice = self
            .server
            .scope_for(identity, &prompt.scope, &prompt.resource);
        let resource = self
            .server
            .config
            .resources
            .iter()
            .find(|r| r.resource == prompt.resource);
        let scopes = choice
            .granted
            .iter()
            .map(|scope| ScopeLine {
                scope: scope.to_owned(),
                description: resource.and_then(|r| r.describe(scope)).map(str::to_owned),
            })
            .collect();
        ConsentPage {
            rememberable: identity.is_some() && rememberable(&prompt),
            resource_name: resource.and_then(|r| r.name.clone()),
            scopes,
            withheld: choice.withheld,
            user,
            provider,
            prompt,
            csrf: session.csrf.clone(),
        }
    }

    /// The provider offered as a button with this id.
    fn button(&self, id: &str) -> Option<ProviderChoice> {
        self.sign_in_choices().1.into_iter().find(|p| p.id == id)
    }

    /// Whether to show the password form, and the providers to offer, from the registered providers.
    fn sign_in_choices(&self) -> (bool, Vec<ProviderChoice>) {
        let mut password = false;
        let mut providers = Vec::new();
        for p in self.server.providers() {
            match p.sign_in() {
                SignIn::PasswordForm => password = true,
                SignIn::Button => providers.push(ProviderChoice {
                    id: p.id().to_owned(),
                    name: p.display_name().to_owned(),
                }),
                SignIn::Hidden => {}
            }
        }
        (password, providers)
    }

    async fn start_upstream(
        &self,
        session: &BrowserSession,
        prompt: &AuthorizationPrompt,
        provider: &str,
    ) -> Outcome {
        let callback = self.server.config.url("/callback");
        match self
            .server
            .start_upstream(&prompt.handle, provider, session, &callback)
            .await
        {
            Ok(to) => Outcome::Redirect(to),
            Err(e) => authorize_exit(e),
        }
    }
}

/// A step's answer, whether it ran to the end or left early with an error page or a redirect.
fn settle(step: Result<Step, Step>) -> Step {
    step.unwrap_or_else(|early| early)
}

/// A query or form, or the 400 page titled `title` naming what is wrong with it.
fn parse<T: serde::de::DeserializeOwned>(input: &[u8], title: &'static str) -> Result<T, Step> {
    wire::parse_form(input).map_err(|e| ErrorPage::new(400, title, e.description).into())
}

/// A user's name on a page: the username, or the subject without one.
fn shown_name(identity: &crate::Identity) -> String {
    identity
        .username
        .clone()
        .unwrap_or_else(|| identity.subject.clone())
}

/// `step` with the sign-out offer for `session`'s user, if it is an error page.
fn signed_in(mut step: Step, session: &BrowserSession) -> Step {
    if let Outcome::Error(page) = &mut step.outcome {
        page.signed_in = SignedIn::of(session);
    }
    step
}

/// An internal failure's page (the cause is logged).
fn internal(e: Error) -> Step {
    ErrorPage::internal(&e).into()
}

/// An exit of the authorization endpoint.
fn exit(e: AuthorizeError) -> Step {
    authorize_exit(e).into()
}

fn forged_form() -> ErrorPage {
    ErrorPage::new(
        403,
        "Invalid form",
        "The form is out of date or was not sent by this site.",
    )
}

/// Whether consent to `prompt` may be remembered: not for a loopback redirect URI, where any local program can
/// receive the code and claim to be the client.
fn rememberable(prompt: &AuthorizationPrompt) -> bool {
    !prompt.redirect_is_loopback
}
