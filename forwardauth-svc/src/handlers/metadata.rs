//! Discovery: RFC 8414 authorization-server metadata, RFC 9728 protected-resource metadata (found from the host
//! and path the client used, so a proxy can route `/.well-known/oauth-protected-resource*` on every MCP host
//! here), and the JWK set.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::extract;
use crate::state::AppState;

/// `GET /.well-known/oauth-authorization-server`.
pub async fn authorization_server(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.auth.authorization_server_metadata())
}

/// `GET /.well-known/openid-configuration`: we are not an OpenID provider; a 404 is the valid answer (a
/// malformed OIDC document breaks strict clients).
pub async fn openid_configuration() -> ApiError {
    ApiError::NotFound(
        "this server is an OAuth 2.0 authorization server; see /.well-known/oauth-authorization-server",
    )
}

/// `GET /.well-known/oauth-protected-resource[/{path}]`.
pub async fn protected_resource(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let url = extract::public_url(&req, &state.gate);
    let found = state.auth.resource_for_metadata_url(&url).or_else(|| {
        // Behind a TLS-terminating proxy that does not say so, the scheme we see is wrong; host and path decide.
        let without_scheme = |u: &str| u.split_once("://").map(|(_, rest)| rest.to_owned());
        let wanted = without_scheme(&url)?;
        state.auth.config().resources.iter().find(|r| {
            without_scheme(&r.metadata_url()).as_deref() == Some(wanted.trim_end_matches('/'))
        })
    });
    let resource = found.ok_or(ApiError::NotFound(
        "no protected resource is configured for this URL",
    ))?;
    Ok(HttpResponse::Ok().json(state.auth.protected_resource_metadata(resource)))
}

/// `GET /jwks.json`.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.auth.jwks())
}
