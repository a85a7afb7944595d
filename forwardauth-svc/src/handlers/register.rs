//! `POST /register` (RFC 7591) and `GET`/`PUT`/`DELETE /register/{client_id}` (RFC 7592), authenticated by an
//! initial access token (when the policy asks) or the registration access token, both as bearer tokens.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::no_store;
use crate::error::{ApiError, Challenge};
use crate::extract::{self, Metadata};
use crate::state::AppState;

fn bearer_failure(e: oauth_core::Error) -> ApiError {
    ApiError::from(e).with_challenge(Challenge::Bearer)
}

/// `POST /register`.
#[tracing::instrument(skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    Metadata(body): Metadata,
) -> Result<HttpResponse, ApiError> {
    let created = state
        .auth
        .register(&body, extract::bearer(&req))
        .await
        .map_err(bearer_failure)?;
    Ok(no_store(HttpResponse::Created())
        .insert_header((header::LOCATION, created.registration_client_uri.clone()))
        .json(created))
}

/// `GET /register/{client_id}`.
#[tracing::instrument(skip_all)]
pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .auth
        .read_client(&path, extract::bearer(&req))
        .await
        .map_err(bearer_failure)?;
    Ok(no_store(HttpResponse::Ok()).json(client))
}

/// `PUT /register/{client_id}`.
#[tracing::instrument(skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Metadata(body): Metadata,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .auth
        .update_client(&path, extract::bearer(&req), &body)
        .await
        .map_err(bearer_failure)?;
    Ok(no_store(HttpResponse::Ok()).json(client))
}

/// `DELETE /register/{client_id}`.
#[tracing::instrument(skip_all)]
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .delete_client(&path, extract::bearer(&req))
        .await
        .map_err(bearer_failure)?;
    Ok(no_store(HttpResponse::NoContent()).finish())
}
