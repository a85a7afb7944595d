//! The routes of [`ENDPOINTS`](crate::endpoints::ENDPOINTS), shared by `main` and every test.
//!
//! Browser-facing discovery, registration and token endpoints get CORS (MCP Inspector and web clients call them
//! with `fetch`), exposing `WWW-Authenticate`; the login and consent pages and `/verify` do not. A path with the
//! wrong method answers 405. Every request gets an id (`X-Request-Id`, kept from the proxy when sane) and one log
//! line with method, path (never the query, which may carry a code) and status: at info level, except for the
//! hot paths (`/verify`, `/health`, `/ready`), whose span and line are debug level.

use std::time::Instant;

use actix_cors::Cors;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, web};
use tracing::Instrument as _;

use crate::endpoints::{ENDPOINTS, Methods};
use crate::extract::names;
use crate::handlers::verify;

fn cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(86_400)
}

fn method_not_allowed() -> actix_web::Route {
    web::route().to(|| async {
        HttpResponse::MethodNotAllowed().json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "this method is not allowed on this endpoint",
        }))
    })
}

/// Any path the service does not serve: `OPTIONS` is a CORS preflight for a protected resource (routed here by
/// the proxy snippets), anything else 404.
fn not_served() -> actix_web::Route {
    web::route().to(
        |state: web::Data<crate::state::AppState>, req: actix_web::HttpRequest| async move {
            if req.method() == actix_web::http::Method::OPTIONS {
                verify::preflight(state, req).await
            } else {
                HttpResponse::NotFound().json(serde_json::json!({
                    "error": "not_found",
                    "error_description": "no such endpoint",
                }))
            }
        },
    )
}

/// Registers every route of [`ENDPOINTS`], and the preflight and 404 answer for every other path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for e in ENDPOINTS {
        let mut resource = web::resource(e.pattern);
        match e.methods {
            Methods::Any(handler) => resource = resource.route(handler()),
            Methods::Only(list) => {
                for (method, handler) in list {
                    resource = resource.route(handler().method(method.clone()));
                }
                resource = resource.default_service(method_not_allowed());
            }
        }
        if e.cors {
            cfg.service(resource.wrap(cors()));
        } else {
            cfg.service(resource);
        }
    }
    cfg.default_service(not_served());
}

/// Request id and one access-log line per request (wrap the `App` with it).
pub fn request_log<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
+ use<S, B>
where
    S: actix_web::dev::Service<
            ServiceRequest,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    S::Future: 'static,
    B: 'static,
{
    let incoming = req
        .headers()
        .get(&names::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    let id = incoming.map_or_else(request_id, str::to_owned);
    // The hot paths' span is debug level too: formatting its fields costs about a sixth of a `/verify`, and at
    // the default level nothing inside it logs but the rare warning (which then lacks the request id).
    let hot = req_is_hot(req.path());
    let span = if hot {
        tracing::debug_span!("request", id = %id, method = %req.method(), path = %req.path())
    } else {
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.path())
    };
    let start = Instant::now();
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        let status = res.status().as_u16();
        let micros = start.elapsed().as_micros();
        if hot {
            tracing::debug!(status, micros, "request");
        } else {
            tracing::info!(status, micros, "request");
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(names::X_REQUEST_ID, v);
        }
        Ok(res)
    }
    .instrument(span)
}

/// `/verify` runs on every proxied request, and `/health` and `/ready` on every probe; their spans and access
/// lines are debug level.
fn req_is_hot(path: &str) -> bool {
    matches!(path, "/verify" | "/health" | "/ready")
}

/// A fresh request id: 96 random bits. From the thread's CSPRNG, not the OS: an id is no secret, and a system
/// call per request is measurable on `/verify`.
fn request_id() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
