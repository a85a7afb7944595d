//! The authorization UI: `GET /authorize`, then `POST /login` and `POST /consent`.
//!
//! `GET /authorize` validates the request in the engine (which decides between rendering an error and
//! redirecting one to the client), then shows the login form, or, for a logged-in user, the consent page, or,
//! when consent is remembered, redirects straight back with the code. Forms carry the pending authorization's
//! handle and the session's CSRF token; the session cookie is `HttpOnly`, `SameSite=Lax`, and `Secure` with the
//! `__Host-` prefix when the issuer is https.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use oauth_core::wire::{self, AuthorizationRequest};
use oauth_core::{AuthorizationPrompt, AuthorizeError, BrowserSession, LoginError, UpstreamError};
use serde::Deserialize;

use crate::error::{ApiError, RetryBody, client_view};
use crate::pages::html;
use crate::state::AppState;

const FORM_LIMIT: usize = 16 * 1024;

fn page(state: &AppState, status: StatusCode, title: &str, message: &str) -> ApiError {
    ApiError::Page {
        status,
        html: state.pages.error(title, message),
    }
}

/// A "try again later" page with `Retry-After`.
pub(crate) fn retry_page(
    state: &AppState,
    status: StatusCode,
    retry_after: std::time::Duration,
    title: &str,
    message: &str,
) -> ApiError {
    ApiError::RetryLater {
        status,
        retry_after_secs: oauth_core::throttle::whole_seconds(retry_after),
        body: RetryBody::Page(state.pages.error(title, message)),
    }
}

/// "3 seconds", "2 minutes": how long, for a page.
pub(crate) fn in_words(d: std::time::Duration) -> String {
    match oauth_core::throttle::whole_seconds(d) {
        1 => "1 second".to_owned(),
        s if s < 120 => format!("{s} seconds"),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

fn expired(state: &AppState) -> ApiError {
    page(
        state,
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "The authorization request has expired or was already completed.",
    )
}

/// Maps the engine's authorization exits to responses.
fn authorize_error(state: &AppState, e: AuthorizeError) -> Result<HttpResponse, ApiError> {
    match e {
        AuthorizeError::Redirect { to, .. } => Ok(redirect(to.as_str())),
        AuthorizeError::Render(e) => Err(page(
            state,
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            &e.description,
        )),
        AuthorizeError::Forbidden(e) => Err(page(
            state,
            StatusCode::FORBIDDEN,
            "Access denied",
            &e.description,
        )),
        AuthorizeError::Internal(e) => {
            let visible = client_view(&e);
            let status =
                StatusCode::from_u16(visible.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(page(
                state,
                status,
                "Something went wrong",
                &visible.description,
            ))
        }
        other => Err(page(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            &other.to_string(),
        )),
    }
}

fn internal(state: &AppState, e: &oauth_core::Error) -> ApiError {
    let visible = client_view(e);
    let status =
        StatusCode::from_u16(visible.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    page(state, status, "Something went wrong", &visible.description)
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn session_cookie(state: &AppState, session: &BrowserSession) -> Cookie<'static> {
    let max_age = state.auth.config().session_ttl.as_secs();
    Cookie::build(state.cookie_name(), session.id.clone())
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ))
        .finish()
}

fn cookie_value(req: &HttpRequest, state: &AppState) -> Option<String> {
    req.cookie(state.cookie_name())
        .map(|c| c.value().to_owned())
}

fn with_cookie(mut res: HttpResponse, state: &AppState, session: &BrowserSession) -> HttpResponse {
    if session.is_new {
        let _ = res.add_cookie(&session_cookie(state, session));
    }
    res
}

/// The next step for a logged-in user: straight back to the client if consent is remembered, else the consent page.
async fn after_login(
    state: &AppState,
    session: &BrowserSession,
    prompt: &AuthorizationPrompt,
) -> Result<HttpResponse, ApiError> {
    let Some(identity) = &session.identity else {
        // With one upstream and no local accounts there is nothing to choose: go straight there.
        if let ([(only, _)], false) = (state.login.upstream.as_slice(), state.login.password) {
            return start_upstream(state, session, &prompt.handle, only).await;
        }
        return Ok(html(
            StatusCode::OK,
            state
                .pages
                .login(prompt, &state.login, &session.csrf, "", None),
        ));
    };
    // A user the policy refuses gets the 403 page now rather than a consent page (approve spends the request).
    let refused = !state.auth.admits(identity, &prompt.resource);
    let remembered = refused
        || state
            .auth
            .has_consented(&identity.subject, prompt)
            .await
            .map_err(|e| internal(state, &e))?;
    if remembered {
        return match state
            .auth
            .approve_with(&prompt.handle, identity.clone(), session.upstream.clone())
            .await
        {
            Ok(to) => Ok(redirect(to.as_str())),
            Err(e) => authorize_error(state, e),
        };
    }
    let user = identity.username.as_deref().unwrap_or(&identity.subject);
    Ok(html(
        StatusCode::OK,
        state.pages.consent(prompt, &session.csrf, user),
    ))
}

/// `GET /authorize` (RFC 6749 §4.1.1).
#[tracing::instrument(skip_all)]
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: AuthorizationRequest =
        wire::parse_form(req.query_string().as_bytes()).map_err(|e| {
            page(
                &state,
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                &e.description,
            )
        })?;
    let prompt = match state.auth.authorize(query).await {
        Ok(p) => p,
        Err(e) => return authorize_error(&state, e),
    };
    let session = state
        .auth
        .browser_session(cookie_value(&req, &state).as_deref())
        .await
        .map_err(|e| internal(&state, &e))?;
    let res = after_login(&state, &session, &prompt).await?;
    Ok(with_cookie(res, &state, &session))
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    handle: Option<String>,
    csrf: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The session and pending authorization a form refers to, after the CSRF check.
async fn form_context(
    state: &AppState,
    req: &HttpRequest,
    handle: Option<&str>,
    csrf: Option<&str>,
) -> Result<(BrowserSession, AuthorizationPrompt), ApiError> {
    let session = state
        .auth
        .existing_session(cookie_value(req, state).as_deref())
        .await
        .map_err(|e| internal(state, &e))?;
    let session = session.ok_or_else(|| {
        page(
            state,
            StatusCode::BAD_REQUEST,
            "Your session has expired",
            "Cookies must be enabled to sign in.",
        )
    })?;
    if !csrf.is_some_and(|c| session.csrf_matches(c)) {
        return Err(page(
            state,
            StatusCode::FORBIDDEN,
            "Invalid form",
            "The form is out of date or was not sent by this site.",
        ));
    }
    let handle = handle.ok_or_else(|| expired(state))?;
    let prompt = state
        .auth
        .pending_authorization(handle)
        .await
        .map_err(|e| internal(state, &e))?;
    Ok((session, prompt.ok_or_else(|| expired(state))?))
}

async fn read_form<T: serde::de::DeserializeOwned>(
    state: &AppState,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let body = crate::extract::read_body(payload, FORM_LIMIT)
        .await
        .map_err(|_| {
            page(
                state,
                StatusCode::BAD_REQUEST,
                "Invalid form",
                "The form is too large.",
            )
        })?;
    wire::parse_form(&body).map_err(|e| {
        page(
            state,
            StatusCode::BAD_REQUEST,
            "Invalid form",
            &e.description,
        )
    })
}

/// `POST /login`.
#[tracing::instrument(skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form: LoginForm = read_form(&state, payload).await?;
    let (session, prompt) =
        form_context(&state, &req, form.handle.as_deref(), form.csrf.as_deref()).await?;
    let username = form.username.unwrap_or_default();
    let client = crate::extract::client_addr(&req, &state.gate);
    let password = form.password.as_deref().unwrap_or_default();
    let outcome = state.auth.password_login(&username, password, client).await;
    if matches!(
        outcome,
        Err(LoginError::Banned { .. } | LoginError::Busy { .. })
    ) {
        actix_web::rt::time::sleep(crate::error::REFUSAL_DELAY).await;
    }
    match outcome {
        Ok(login) => {
            let session = state
                .auth
                .log_in(&session, login)
                .await
                .map_err(|e| internal(&state, &e))?;
            let res = after_login(&state, &session, &prompt).await?;
            Ok(with_cookie(res, &state, &session))
        }
        Err(LoginError::Failed) => Ok(html(
            StatusCode::UNAUTHORIZED,
            state.pages.login(
                &prompt,
                &state.login,
                &session.csrf,
                &username,
                Some("Invalid username or password."),
            ),
        )),
        Err(LoginError::Banned { retry_after }) => Err(retry_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            retry_after,
            "Too many failed sign-ins",
            &format!(
                "Sign-in is paused for this account or network after too many failed attempts. Try again in {}.",
                in_words(retry_after)
            ),
        )),
        Err(LoginError::Busy { retry_after }) => Err(retry_page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
            "Too many sign-ins right now",
            &format!(
                "The server is busy checking other sign-ins. Go back and try again in {}.",
                in_words(retry_after)
            ),
        )),
        Err(LoginError::NotEnabled) => Err(page(
            &state,
            StatusCode::BAD_REQUEST,
            "Password sign-in is not enabled",
            "This server has no local accounts; choose another way to sign in.",
        )),
        Err(LoginError::Internal(e)) => Err(internal(&state, &e)),
        Err(e) => Err(internal(
            &state,
            &oauth_core::Error::Upstream(UpstreamError::Unavailable(e.to_string())),
        )),
    }
}

/// The consent form.
#[derive(Deserialize)]
pub struct ConsentForm {
    handle: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
    remember: Option<String>,
}

/// `POST /consent`.
#[tracing::instrument(skip_all)]
pub async fn consent(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form: ConsentForm = read_form(&state, payload).await?;
    let (session, prompt) =
        form_context(&state, &req, form.handle.as_deref(), form.csrf.as_deref()).await?;
    let Some(identity) = session.identity else {
        return Err(page(
            &state,
            StatusCode::FORBIDDEN,
            "Not signed in",
            "Sign in before approving access.",
        ));
    };
    let outcome = match form.decision.as_deref() {
        Some("approve") => {
            if form.remember.as_deref() == Some("on")
                && state.auth.admits(&identity, &prompt.resource)
            {
                state
                    .auth
                    .remember_consent(&identity.subject, &prompt)
                    .await
                    .map_err(|e| internal(&state, &e))?;
            }
            state
                .auth
                .approve_with(&prompt.handle, identity, session.upstream.clone())
                .await
        }
        Some("deny") => state.auth.deny(&prompt.handle).await,
        _ => {
            return Err(page(
                &state,
                StatusCode::BAD_REQUEST,
                "Invalid form",
                "Choose Approve or Deny.",
            ));
        }
    };
    match outcome {
        Ok(to) => Ok(redirect(to.as_str())),
        Err(e) => authorize_error(&state, e),
    }
}

async fn start_upstream(
    state: &AppState,
    session: &BrowserSession,
    handle: &str,
    provider: &str,
) -> Result<HttpResponse, ApiError> {
    let callback = state.auth.config().url("/callback");
    match state
        .auth
        .start_upstream(handle, provider, session, &callback)
        .await
    {
        Ok(to) => Ok(redirect(to.as_str())),
        Err(e) => authorize_error(state, e),
    }
}

/// The upstream-login form (a button on the login page).
#[derive(Deserialize)]
pub struct UpstreamForm {
    handle: Option<String>,
    csrf: Option<String>,
    provider: Option<String>,
}

/// `POST /login/upstream`: off to the chosen identity provider.
#[tracing::instrument(skip_all)]
pub async fn login_upstream(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let form: UpstreamForm = read_form(&state, payload).await?;
    let (session, prompt) =
        form_context(&state, &req, form.handle.as_deref(), form.csrf.as_deref()).await?;
    let provider = form.provider.unwrap_or_default();
    start_upstream(&state, &session, &prompt.handle, &provider).await
}

/// `GET /callback`: the identity provider sends the user back.
#[tracing::instrument(skip_all)]
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: oauth_core::UpstreamCallback = wire::parse_form(req.query_string().as_bytes())
        .map_err(|e| {
            page(
                &state,
                StatusCode::BAD_REQUEST,
                "Invalid sign-in response",
                &e.description,
            )
        })?;
    let session = state
        .auth
        .existing_session(cookie_value(&req, &state).as_deref())
        .await
        .map_err(|e| internal(&state, &e))?;
    let (prompt, login) = match state.auth.finish_upstream(&query, session.as_ref()).await {
        Ok(done) => done,
        Err(e) => return authorize_error(&state, e),
    };
    let Some(session) = session else {
        return Err(expired(&state));
    };
    let session = state
        .auth
        .log_in(&session, login)
        .await
        .map_err(|e| internal(&state, &e))?;
    let res = after_login(&state, &session, &prompt).await?;
    Ok(with_cookie(res, &state, &session))
}
