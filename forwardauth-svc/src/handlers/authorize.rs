//! The authorization UI: `GET /authorize`, `POST /login`, `POST /login/upstream`, `GET /callback`,
//! `POST /consent`, and `GET` (asks) and `POST` (signs out) `/logout`.
//!
//! Which page comes next is the engine's decision ([`oauth_core::Browser`]): each handler takes the session
//! cookie ([`Visit`]) and the query or form ([`FormBody`]), makes one call, and renders the [`Step`] it gets back. The session cookie is
//! `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` with the `__Host-` prefix when the issuer is https.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use oauth_core::{Browser, Outcome, SessionCookie, Step};

use crate::error::{ApiError, REFUSAL_DELAY, status};
use crate::extract::{FormBody, app_state, client_addr};
use crate::state::AppState;

/// `GET /authorize` (RFC 6749 §4.1.1).
#[tracing::instrument(skip_all)]
pub async fn authorize(visit: Visit, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = req.query_string();
    let step = visit.browser().authorize(query, visit.cookie()).await;
    visit.respond(step).await
}

/// `POST /login`: the password form.
#[tracing::instrument(skip_all)]
pub async fn login(
    visit: Visit,
    req: HttpRequest,
    form: FormBody,
) -> Result<HttpResponse, ApiError> {
    let client = client_addr(&req, &visit.state.gate);
    let step = visit.browser().sign_in(&form, visit.cookie(), client).await;
    visit.respond(step).await
}

/// `POST /login/upstream`: off to the chosen identity provider.
#[tracing::instrument(skip_all)]
pub async fn login_upstream(visit: Visit, form: FormBody) -> Result<HttpResponse, ApiError> {
    let step = visit.browser().choose_provider(&form, visit.cookie()).await;
    visit.respond(step).await
}

/// `GET /callback`: the identity provider sends the user back.
#[tracing::instrument(skip_all)]
pub async fn callback(visit: Visit, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = req.query_string();
    let step = visit.browser().callback(query, visit.cookie()).await;
    visit.respond(step).await
}

/// `POST /consent`.
#[tracing::instrument(skip_all)]
pub async fn consent(visit: Visit, form: FormBody) -> Result<HttpResponse, ApiError> {
    let step = visit.browser().consent(&form, visit.cookie()).await;
    visit.respond(step).await
}

/// `GET /logout`: asks before signing out; a GET never signs anyone out.
#[tracing::instrument(skip_all)]
pub async fn confirm_logout(visit: Visit, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let step = visit
        .browser()
        .confirm_sign_out(req.query_string(), visit.cookie())
        .await;
    visit.respond(step).await
}

/// `POST /logout`: ends the session; with a pending authorization's `handle`, back to its sign-in page.
#[tracing::instrument(skip_all)]
pub async fn logout(visit: Visit, form: FormBody) -> Result<HttpResponse, ApiError> {
    let step = visit.browser().sign_out(&form, visit.cookie()).await;
    visit.respond(step).await
}

/// What every step of the UI starts from: the service state and the session cookie's value, if the browser
/// sent one.
pub struct Visit {
    state: web::Data<AppState>,
    cookie: Option<String>,
}

impl FromRequest for Visit {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        ready(app_state(req).map(|state| {
            Visit {
                cookie: req
                    .cookie(state.cookie_name())
                    .map(|c| c.value().to_owned()),
                state: state.clone(),
            }
        }))
    }
}

impl Visit {
    fn browser(&self) -> Browser<'_> {
        self.state.auth.browser()
    }

    fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    async fn respond(&self, step: Step) -> Result<HttpResponse, ApiError> {
        respond(&self.state, step).await
    }
}

/// Renders a step: the page or redirect, with the cookie change. An error page that says when to retry is held
/// for [`REFUSAL_DELAY`] first.
async fn respond(state: &AppState, step: Step) -> Result<HttpResponse, ApiError> {
    let pages = &state.pages;
    let mut res = match step.outcome {
        Outcome::SignIn(page) => pages.html(status(page.status()), pages.sign_in(&page)),
        Outcome::Consent(page) => pages.html(status(200), pages.consent(&page)),
        Outcome::SignedOut => pages.html(status(200), pages.signed_out()),
        Outcome::ConfirmSignOut(page) => pages.html(status(200), pages.sign_out(&page)),
        Outcome::Redirect(to) => HttpResponse::Found()
            .insert_header((header::LOCATION, to.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Outcome::Error(page) => {
            if page.retry_after.is_some() {
                actix_web::rt::time::sleep(REFUSAL_DELAY).await;
            }
            return Err(ApiError::page(page, pages));
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
