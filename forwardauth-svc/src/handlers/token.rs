//! `POST /token`, `POST /revoke`, `POST /introspect`: form bodies, client authentication by Basic header or form
//! fields (the engine reconciles the two, in its one client-authentication step), `Cache-Control: no-store`.
//! The three read their request the same way (`read`) and answer a failure the same way (`refused`).

use actix_web::{HttpRequest, HttpResponse, web};
use oauth_core::wire::{self, TokenReference, TokenRequest};

use super::no_store;
use crate::error::{ApiError, Challenge};
use crate::extract;
use crate::state::AppState;

const FORM_LIMIT: usize = 64 * 1024;

/// Content type, Basic credentials and the parsed form, with the challenge a 401 must carry.
async fn read<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Option<oauth_core::ClientCredentials>, T, Challenge), ApiError> {
    extract::require_form(req)?;
    let basic = extract::basic_credentials(req)?;
    let challenge = if basic.is_some() {
        Challenge::Basic
    } else {
        Challenge::None
    };
    let body = extract::read_body(payload, FORM_LIMIT).await?;
    let form = wire::parse_form(&body)?;
    Ok((basic, form, challenge))
}

/// An engine error at one of these endpoints: `WWW-Authenticate: Basic` on a 401 when the client authenticated
/// by Basic (RFC 6749 §5.2).
fn refused(challenge: Challenge) -> impl FnOnce(oauth_core::Error) -> ApiError {
    move |e| ApiError::from(e).with_challenge(challenge)
}

/// `POST /token` (RFC 6749 §3.2).
#[tracing::instrument(skip_all)]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (basic, form, challenge) = read::<TokenRequest>(&req, payload).await?;
    let issued = state
        .auth
        .token(basic, form)
        .await
        .map_err(refused(challenge))?;
    Ok(no_store(HttpResponse::Ok()).json(issued))
}

/// `POST /revoke` (RFC 7009 §2).
#[tracing::instrument(skip_all)]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (basic, form, challenge) = read::<TokenReference>(&req, payload).await?;
    state
        .auth
        .revoke(basic, form)
        .await
        .map_err(refused(challenge))?;
    Ok(no_store(HttpResponse::Ok()).finish())
}

/// `POST /introspect` (RFC 7662 §2).
#[tracing::instrument(skip_all)]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (basic, form, challenge) = read::<TokenReference>(&req, payload).await?;
    let answer = state
        .auth
        .introspect(basic, form)
        .await
        .map_err(refused(challenge))?;
    Ok(no_store(HttpResponse::Ok()).json(answer))
}
