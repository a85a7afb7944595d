//! `POST /token`, `POST /revoke`, `POST /introspect`: form bodies, client authentication by Basic header or form
//! fields (the engine reconciles the two, in its one client-authentication step), `Cache-Control: no-store`.
//! The three read their request the same way ([`ClientForm`]) and answer a failure the same way (`refused`).

use actix_web::{HttpResponse, web};
use oauth_core::wire::{TokenReference, TokenRequest};

use super::no_store;
use crate::error::{ApiError, Challenge};
use crate::extract::ClientForm;
use crate::state::AppState;

/// An engine error at one of these endpoints: `WWW-Authenticate: Basic` on a 401 when the client authenticated
/// by Basic (RFC 6749 §5.2).
fn refused(challenge: Challenge) -> impl FnOnce(oauth_core::Error) -> ApiError {
    move |e| ApiError::from(e).with_challenge(challenge)
}

/// `POST /token` (RFC 6749 §3.2).
#[tracing::instrument(skip_all)]
pub async fn token(
    state: web::Data<AppState>,
    client: ClientForm<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let issued = state
        .auth
        .token(client.basic, client.form)
        .await
        .map_err(refused(client.challenge))?;
    Ok(no_store(HttpResponse::Ok()).json(issued))
}

/// `POST /revoke` (RFC 7009 §2).
#[tracing::instrument(skip_all)]
pub async fn revoke(
    state: web::Data<AppState>,
    client: ClientForm<TokenReference>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .revoke(client.basic, client.form)
        .await
        .map_err(refused(client.challenge))?;
    Ok(no_store(HttpResponse::Ok()).finish())
}

/// `POST /introspect` (RFC 7662 §2).
#[tracing::instrument(skip_all)]
pub async fn introspect(
    state: web::Data<AppState>,
    client: ClientForm<TokenReference>,
) -> Result<HttpResponse, ApiError> {
    let answer = state
        .auth
        .introspect(client.basic, client.form)
        .await
        .map_err(refused(client.challenge))?;
    Ok(no_store(HttpResponse::Ok()).json(answer))
}
