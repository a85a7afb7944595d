//! The authorization UI: `GET /authorize`, `POST /login`, `POST /login/upstream`, `GET /callback`,
//! `POST /consent` and `POST /logout`.
//!
//! Which page comes next is the engine's decision ([`oauth_core::Browser`]): each handler takes the session
//! cookie ([`Session`]) and the query or form ([`FormBody`]), makes one call, and renders the [`Step`] it gets back. The session cookie is
//! `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` with the `__Host-` prefix when the issuer is https.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use oauth_core::{Outcome, SessionCookie, Step};

use crate::error::{ApiError, REFUSAL_DELAY, status};
use crate::extract::{FormBody, Session, client_addr};
use crate::pages::{self, html};
use crate::state::AppState;

/// `GET /authorize` (RFC 6749 §4.1.1).
#[tracing::instrument(skip_all)]
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    Session(cookie): Session,
) -> Result<HttpResponse, ApiError> {
    let browser = state.auth.browser();
    let step = browser
        .authorize(req.query_string(), cookie.as_deref())
        .await;
    respond(&state, step).await
}

/// `POST /login`: the password form.
#[tracing::instrument(skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    FormBody(form): FormBody,
    Session(cookie): Session,
) -> Result<HttpResponse, ApiError> {
    let client = client_addr(&req, &state.gate);
    let browser = state.auth.browser();
    let step = browser.sign_in(&form, cookie.as_deref(), client).await;
    respond(&state, step).await
}

/// `POST /login/upstream`: off to the chosen identity provider.
#[tracing::instrument(skip_all)]
pub async fn login_upstream(
    state: web::Data<AppState>,
    FormBody(form): FormBody,
    Session(cookie): Session,
) -> Result<HttpResponse, ApiError> {
    let browser = state.auth.browser();
    let step = browser.choose_provider(&form, cookie.as_deref()).await;
    respond(&state, step).await
}

/// `GET /callback`: the identity provider sends the user back.
#[tracing::instrument(skip_all)]
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    Session(cookie): Session,
) -> Result<HttpResponse, ApiError> {
    let browser = state.auth.browser();
    let step = browser
        .callback(req.query_string(), cookie.as_deref())
        .await;
    respond(&state, step).await
}

/// `POST /consent`.
#[tracing::instrument(skip_all)]
pub async fn consent(
    state: web::Data<AppState>,
    FormBody(form): FormBody,
    Session(cookie): Session,
) -> Result<HttpResponse, ApiError> {
    let browser = state.auth.browser();
    let step = browser.consent(&form, cookie.as_deref()).await;
    respond(&state, step).await
}

/// `POST /logout`.
#[tracing::instrument(skip_all)]
pub async fn logout(
    state: web::Data<AppState>,
    FormBody(form): FormBody,
    Session(cookie): Session,
) -> Result<HttpResponse, ApiError> {
    let browser = state.auth.browser();
    let step = browser.sign_out(&form, cookie.as_deref()).await;
    respond(&state, step).await
}

/// Renders a step: the page or redirect, with the cookie change. An error page that says when to retry is held
/// for [`REFUSAL_DELAY`] first.
async fn respond(state: &AppState, step: Step) -> Result<HttpResponse, ApiError> {
    let mut res = match step.outcome {
        Outcome::SignIn(page) => html(status(page.status()), pages::sign_in(&page)),
        Outcome::Consent(page) => html(status(200), pages::consent(&page)),
        Outcome::SignedOut => html(status(200), pages::signed_out()),
        Outcome::Redirect(to) => HttpResponse::Found()
            .insert_header((header::LOCATION, to.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Outcome::Error(page) => {
            if page.retry_after.is_some() {
                actix_web::rt::time::sleep(REFUSAL_DELAY).await;
            }
            return Err(ApiError::Page(page));
        }
    };
    let cookie = match step.cookie {
        SessionCookie::Keep => return Ok(res),
        SessionCookie::Set { value, max_age } => cookie(state, value, max_age.as_secs()),
        SessionCookie::Clear => cookie(state, String::new(), 0),
    };
    let _ = res.add_cookie(&cookie);
    Ok(res)
}

fn cookie(state: &AppState, value: String, max_age_secs: u64) -> Cookie<'static> {
    Cookie::build(state.cookie_name(), value)
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .finish()
}
