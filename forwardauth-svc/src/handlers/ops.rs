//! Operations endpoints: liveness and readiness.

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /health`: the process is alive.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /ready`: the store answers and signing keys are loaded (they are, once the state exists).
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.ready().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::NotReady
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}
