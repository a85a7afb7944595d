//! `/verify`: the forward-auth gate for Traefik ForwardAuth, nginx `auth_request` and Caddy `forward_auth`.
//!
//! It answers only 200, 401 or 403, because nginx turns any other status of an `auth_request` into a 500 for the
//! client:
//! * 200 with the identity headers (never the token) when the token admits the request. Every configured
//!   identity header is present, empty when the value is unknown (a user without an e-mail address): a proxy
//!   that copies the gate's headers onto the request then always replaces a client's own. Caddy 2.6's
//!   `copy_headers`, for one, writes its placeholder text instead of the header when the answer lacks it;
//! * 401 with `WWW-Authenticate: Bearer [error="invalid_token", …] resource_metadata="<PRM URL>"`, which the proxy
//!   passes back so the MCP client can discover the authorization server;
//! * 403 with `insufficient_scope` and the scope needed, or when the user is not admitted, or when the guarded
//!   request cannot be established (untrusted or missing forwarded headers, no configured resource).
//!
//! CORS preflights without credentials and `/.well-known/*` on protected hosts pass (with the identity headers
//! empty), so that one catch-all middleware in front of an MCP server is enough.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use oauth_core::{GateRequest, Principal, RejectionKind, VerifyRejection};

use super::no_store;
use crate::config::IdentityHeaders;
use crate::extract::{self, OriginalError};
use crate::state::AppState;

/// `GET|POST|… /verify`.
#[tracing::instrument(skip_all)]
pub async fn verify(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let original = match extract::original_request(&req, &state.gate) {
        Ok(o) => o,
        Err(OriginalError::Untrusted) => {
            tracing::warn!(peer = ?req.peer_addr(), "forwarded headers from an untrusted address");
            return denied("forwarded request headers are accepted only from trusted proxies");
        }
        Err(OriginalError::Missing) => {
            return denied("the proxy sent no X-Forwarded-* or X-Original-* headers");
        }
        Err(OriginalError::Malformed) => {
            return denied("the forwarded request headers do not form a URL");
        }
        Err(OriginalError::Conflicting) => {
            tracing::warn!("X-Forwarded-* and X-Original-* headers disagree");
            return denied(
                "the X-Forwarded-* and X-Original-* headers describe different requests",
            );
        }
    };
    let authorization = extract::authorization(&req);
    if (original.method == "OPTIONS" && authorization.is_none())
        || original.path.starts_with("/.well-known/")
    {
        return identity(None, &state.gate.headers);
    }
    let Some(resource) = state.auth.resource_for_url(&original.url) else {
        return denied("no protected resource is configured for this URL");
    };
    let gate = GateRequest::new(authorization, &original.method).with_mcp(
        extract::header(&req, "mcp-protocol-version"),
        extract::header(&req, "mcp-method"),
        extract::header(&req, "mcp-name"),
    );
    match state.auth.verify_request_with_reload(&gate, resource).await {
        Ok(principal) => identity(Some(&principal), &state.gate.headers),
        Err(rejection) => rejected(&rejection),
    }
}

/// A 200 with every identity header: the principal's values, or all empty for a request that passes without
/// one (a preflight, `/.well-known/*`), so that no client-sent value survives the proxy's copy.
fn identity(p: Option<&Principal>, names: &IdentityHeaders) -> HttpResponse {
    let mut res = no_store(HttpResponse::Ok());
    let scope = p.map(|p| p.scope.to_string());
    let values = [
        (&names.user_id, p.map(|p| p.subject.as_str())),
        (&names.user_name, p.and_then(|p| p.username.as_deref())),
        (&names.user_email, p.and_then(|p| p.email.as_deref())),
        (&names.client_id, p.map(|p| p.client_id.as_str())),
        (&names.scopes, scope.as_deref()),
    ];
    for (name, value) in values {
        // An empty name in the configuration means "do not send".
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let value = HeaderValue::from_str(value.unwrap_or_default())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        res.insert_header((name, value));
    }
    res.finish()
}

fn rejected(r: &VerifyRejection) -> HttpResponse {
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut res = no_store(HttpResponse::build(status));
    if let Ok(v) = HeaderValue::from_str(&r.www_authenticate()) {
        res.insert_header((header::WWW_AUTHENTICATE, v));
    }
    // RFC 6750 gives a missing token no error code; the body still says what happened.
    let error = match r.kind {
        RejectionKind::MissingToken => "unauthorized",
        RejectionKind::InvalidToken => "invalid_token",
        RejectionKind::InsufficientScope => "insufficient_scope",
        _ => "access_denied",
    };
    res.json(serde_json::json!({ "error": error, "error_description": r.description }))
}

fn denied(description: &str) -> HttpResponse {
    no_store(HttpResponse::Forbidden())
        .json(serde_json::json!({ "error": "access_denied", "error_description": description }))
}
