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
use crate::extract::{self, OriginalError, names};
use crate::state::AppState;

/// `GET|POST|… /verify`.
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
    let Some(target) = state.auth.request_target(&original.url) else {
        return denied("the forwarded request headers do not form an http(s) URL");
    };
    let authorization = extract::authorization(&req);
    if (original.method == "OPTIONS" && authorization.is_none()) || target.well_known {
        return identity(None, &state.identity_headers);
    }
    let Some(resource) = target.resource else {
        return denied("no protected resource is configured for this URL");
    };
    let gate = GateRequest::new(authorization, &original.method).with_mcp(
        extract::header(&req, &names::MCP_PROTOCOL_VERSION),
        extract::header(&req, &names::MCP_METHOD),
        extract::header(&req, &names::MCP_NAME),
    );
    match state.auth.verify_request_with_reload(&gate, resource).await {
        Ok(principal) => identity(Some(&principal), &state.identity_headers),
        Err(rejection) => rejected(&rejection),
    }
}

/// The identity header names of the configuration, parsed once (an empty name: the header is not sent).
#[derive(Clone, Debug)]
pub struct IdentityHeaderNames {
    user_id: Option<HeaderName>,
    user_name: Option<HeaderName>,
    user_email: Option<HeaderName>,
    client_id: Option<HeaderName>,
    scopes: Option<HeaderName>,
}

impl IdentityHeaderNames {
    /// Parses the configured names. The configuration has already refused invalid ones; an empty name parses
    /// to `None`, "do not send".
    pub fn new(names: &IdentityHeaders) -> Self {
        let parse = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
        IdentityHeaderNames {
            user_id: parse(&names.user_id),
            user_name: parse(&names.user_name),
            user_email: parse(&names.user_email),
            client_id: parse(&names.client_id),
            scopes: parse(&names.scopes),
        }
    }
}

/// A 200 with every identity header: the principal's values, or all empty for a request that passes without
/// one (a preflight, `/.well-known/*`), so that no client-sent value survives the proxy's copy.
fn identity(p: Option<&Principal>, names: &IdentityHeaderNames) -> HttpResponse {
    let mut res = HttpResponse::Ok().finish();
    let headers = res.headers_mut();
    // Room for every header up front, rather than growing the map two or three times per answer.
    headers.reserve(6);
    // No `Pragma`: it means nothing on a response (RFC 9111 §5.4), and this one only ever reaches the proxy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let scope = p.map(|p| p.scope.to_string());
    let values = [
        (&names.user_id, p.map(|p| p.subject.as_str())),
        (&names.user_name, p.and_then(|p| p.username.as_deref())),
        (&names.user_email, p.and_then(|p| p.email.as_deref())),
        (&names.client_id, p.map(|p| p.client_id.as_str())),
        (&names.scopes, scope.as_deref()),
    ];
    for (name, value) in values {
        let Some(name) = name else { continue };
        let value = match value {
            Some(v) if !v.is_empty() => {
                HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
            }
            _ => HeaderValue::from_static(""),
        };
        headers.insert(name.clone(), value);
    }
    res
}

/// The JSON body of a refusal (RFC 6750 §3 codes; `access_denied` for the gate's own refusals).
#[derive(serde::Serialize)]
struct Refusal<'a> {
    error: &'a str,
    error_description: &'a str,
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
    res.json(Refusal {
        error,
        error_description: r.description,
    })
}

fn denied(description: &str) -> HttpResponse {
    no_store(HttpResponse::Forbidden()).json(Refusal {
        error: "access_denied",
        error_description: description,
    })
}
