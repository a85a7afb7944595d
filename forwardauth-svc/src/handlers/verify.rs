//! `/verify`: the forward-auth gate for Traefik ForwardAuth, nginx `auth_request` and Caddy `forward_auth`.
//!
//! It answers 200, 401 or 403, because nginx turns any other status of an `auth_request` into a 500 for the
//! client:
//! * 200 with the identity headers (never the token) when the token admits the request. Every configured
//!   identity header is present, empty when the value is unknown (a user without an e-mail address): a proxy
//!   that copies the gate's headers onto the request then always replaces a client's own. Caddy 2.6's
//!   `copy_headers`, for one, writes its placeholder text instead of the header when the answer lacks it;
//! * 401 with `WWW-Authenticate: Bearer [error="invalid_token", …] resource_metadata="<PRM URL>"`, which the proxy
//!   passes back so the MCP client can discover the authorization server;
//! * 403 with `insufficient_scope` and the scope needed, or when the user is not admitted, or when the guarded
//!   request is refused (untrusted, repeated or malformed forwarded headers, a malformed `MCP-Protocol-Version`,
//!   a path not in normal form, no configured resource, an `Origin` not allowed).
//!
//! Only a request body the proxy forwarded (Traefik's `forwardBody`; nginx cannot, see [`crate::extract`]) can
//! get anything else, `invalid_request` both, which Traefik returns as they are: 400 when its
//! `Mcp-Method`/`Mcp-Name`/`MCP-Protocol-Version` headers disagree with the JSON-RPC body, 413 when the body is
//! longer than `[gate] max_body_kib`.
//!
//! The decision is the engine's ([`oauth_core::AuthServer::gate`]); this handler extracts and maps: a 200 here,
//! any refusal as [`ApiError::Gate`], shaped in [`crate::error`]. For an allowed `Origin`, a refusal carries
//! CORS headers (proxies return it to the browser as it is).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use oauth_core::{GateOutcome, GateRefusal, Preflight, Principal};

use crate::error::{ApiError, GateDenial, allow_origin};
use crate::extract;
use crate::identity_headers::IdentityHeaderNames;
use crate::state::AppState;

/// `GET|POST|… /verify`: extract (the forwarded body too, when a proxy sends one), ask the engine, map.
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = extract::forwarded_body(&req, payload, &state.gate).await?;
    let verdict = state
        .auth
        .gate(&extract::gate_input(&req, &state.gate, &body))
        .await;
    let denial = match verdict.outcome {
        GateOutcome::Admit(p) => return Ok(identity(Some(&p), &state.identity_headers)),
        GateOutcome::Pass => return Ok(identity(None, &state.identity_headers)),
        GateOutcome::Reject(r) => GateDenial::Rejected(r),
        GateOutcome::Refuse(r) => GateDenial::Refused(r),
    };
    log_denial(&denial, &req, &state);
    Err(ApiError::Gate {
        denial,
        allow_origin: verdict.allow_origin,
    })
}

/// One line per refusal, at the default level, with the reason and the client's address (never the token):
/// a warning for forwarded headers from an untrusted address (a misconfigured proxy, or someone probing the
/// gate), info for the rest, which are the client's business (a missing, expired or forged token, too little
/// scope, a user the policy does not admit). At most `[gate] refusals_logged_per_sec` a second: a refusal
/// costs an anonymous caller nothing, so the lines it can make us write are bounded; those left out are counted
/// and reported by the next line written (see [`crate::observe::budget`]).
fn log_denial(denial: &GateDenial, req: &HttpRequest, state: &AppState) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    match state
        .refusal_log
        .admit(state.auth.clock().unix_millis() / 1000)
    {
        crate::observe::budget::Admit::Skip => return,
        crate::observe::budget::Admit::Write { left_out: 0 } => {}
        crate::observe::budget::Admit::Write { left_out } => tracing::info!(
            left_out,
            "gate refusals not logged, over [gate] refusals_logged_per_sec"
        ),
    }
    let client =
        extract::client_addr(req, &state.gate).map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    match denial {
        GateDenial::Rejected(r) => tracing::info!(
            status = r.status(),
            error = match r.kind {
                oauth_core::RejectionKind::MissingToken => "unauthorized",
                oauth_core::RejectionKind::InvalidToken => "invalid_token",
                oauth_core::RejectionKind::InsufficientScope => "insufficient_scope",
                oauth_core::RejectionKind::AccessDenied => "access_denied",
            },
            reason = r.description,
            client,
            "gate refused the request"
        ),
        GateDenial::Refused(r) if r.reason == oauth_core::RefusalReason::Untrusted => {
            tracing::warn!(
                status = r.status(),
                error = r.error_code(),
                reason = %r.description,
                client,
                "gate refused forwarded headers from an untrusted address"
            );
        }
        GateDenial::Refused(r) => tracing::info!(
            status = r.status(),
            error = r.error_code(),
            reason = %r.description,
            client,
            "gate refused the request"
        ),
    }
}

/// `OPTIONS` on any path the service does not serve itself: a CORS preflight for a protected resource, routed
/// here by the proxy snippets (a browser needs a 2xx, and the gate's 2xx would reach the MCP server).
pub async fn preflight(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let headers = extract::routed_request(&req, &state.gate);
    let origin = extract::field(&req, &header::ORIGIN);
    let method = extract::field(&req, &header::ACCESS_CONTROL_REQUEST_METHOD);
    let answer = oauth_core::ForwardedRequest::parse(&headers, req.app_config().secure())
        .map_err(|e| GateRefusal::from(oauth_core::RefusalReason::Forwarded(e)))
        .and_then(|r| state.auth.preflight(&r, origin, method));
    match answer {
        Ok(p) => Ok(preflight_allowed(&p)),
        Err(r) => {
            let denial = GateDenial::Refused(r);
            log_denial(&denial, &req, &state);
            Err(ApiError::Gate {
                denial,
                allow_origin: None,
            })
        }
    }
}

/// 204 with the CORS headers that let the origin send the request.
fn preflight_allowed(p: &Preflight) -> HttpResponse {
    let mut res = HttpResponse::NoContent().finish();
    allow_origin(&mut res, &p.allow_origin);
    let h = res.headers_mut();
    for (name, value) in [
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            Preflight::ALLOW_METHODS,
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            Preflight::ALLOW_HEADERS,
        ),
        (header::ACCESS_CONTROL_MAX_AGE, Preflight::MAX_AGE),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
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
    let scope = p.map(|p| p.scope().to_string());
    let values = [
        (&names.user_id, p.map(Principal::subject)),
        (&names.user_name, p.and_then(Principal::username)),
        (&names.user_email, p.and_then(Principal::email)),
        (&names.client_id, p.map(Principal::client_id)),
        (&names.scopes, scope.as_deref()),
    ];
    for (name, value) in values {
        let Some(name) = name else { continue };
        let value = value
            .and_then(|v| HeaderValue::from_str(v).ok())
            .unwrap_or_else(|| HeaderValue::from_static(""));
        headers.insert(name.clone(), value);
    }
    res
}
