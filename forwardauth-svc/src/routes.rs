//! The routes of [`ENDPOINTS`](crate::endpoints::ENDPOINTS), shared by `main` and every test.
//!
//! Browser-facing discovery, registration and token endpoints get CORS (MCP Inspector and web clients call them
//! with `fetch`), exposing `WWW-Authenticate`; the login and consent pages and `/verify` do not. A path with the
//! wrong method answers 405. An entry with a rate limit ([`Endpoint::limit`](crate::endpoints::Endpoint::limit))
//! is counted per client address before its handler runs; over the limit it answers 429 with `Retry-After`,
//! held for [`REFUSAL_DELAY`](crate::error::REFUSAL_DELAY). Every request gets an id (`X-Request-Id`, kept from the proxy when sane) and one log
//! line with method, path (never the query, which may carry a code) and status: at info level, except for the
//! hot paths (`/verify`, `/health`, `/ready`), whose span and line are debug level.

use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::web;
use oauth_core::{Limited, Throttled};
use tracing::Instrument as _;

use crate::endpoints::{ENDPOINTS, Methods};
use crate::error::ApiError;
use crate::extract::names;
use crate::handlers::verify;
use crate::state::AppState;

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
    web::route().to(|| async { ApiError::MethodNotAllowed })
}

/// Any path the service does not serve: `OPTIONS` is a CORS preflight for a protected resource (routed here by
/// the proxy snippets), anything else 404.
fn not_served() -> actix_web::Route {
    web::route().to(
        |state: web::Data<crate::state::AppState>, req: actix_web::HttpRequest| async move {
            if req.method() == actix_web::http::Method::OPTIONS {
                Ok(verify::preflight(state, req).await)
            } else {
                Err(ApiError::NotFound("no such endpoint"))
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
        // CORS outermost, so that a browser client can read a 429 too.
        match (e.cors, e.limit) {
            (cors_too, Some(limit)) => {
                let limited =
                    resource.wrap(from_fn(move |req, next| rate_limited(limit, req, next)));
                if cors_too {
                    cfg.service(limited.wrap(cors()));
                } else {
                    cfg.service(limited);
                }
            }
            (true, None) => {
                cfg.service(resource.wrap(cors()));
            }
            (false, None) => {
                cfg.service(resource);
            }
        }
    }
    cfg.default_service(not_served());
}

/// Counts the request against its endpoint's per-address limit, answering 429 with `Retry-After` in the
/// endpoint's own format when it is over; a failed client authentication (401) at a `token` endpoint is charged
/// extra ([`oauth_core::RateLimits::failure_cost`]).
async fn rate_limited(
    limit: Limited,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let Some(client) = crate::extract::client_addr(req.request(), &state.gate) else {
        return next.call(req).await;
    };
    if let Err(throttled) = state.auth.throttle(limit, client) {
        let error = throttled_error(limit, throttled, &state.pages);
        actix_web::rt::time::sleep(crate::error::REFUSAL_DELAY).await;
        return Ok(req.error_response(error));
    }
    let res = next.call(req).await?;
    if limit == Limited::Token && res.status() == actix_web::http::StatusCode::UNAUTHORIZED {
        state.auth.penalize(limit, client);
    }
    Ok(res)
}

/// A 429 in the endpoint's format: a page in the authorization UI, OAuth JSON elsewhere.
fn throttled_error(limit: Limited, throttled: Throttled, pages: &crate::pages::Pages) -> ApiError {
    match limit {
        Limited::Authorize | Limited::Login | Limited::Callback => ApiError::page(
            oauth_core::ErrorPage::throttled(throttled.retry_after),
            pages,
        ),
        Limited::Register | Limited::Token => ApiError::Throttled {
            retry_after_secs: throttled.retry_after_secs(),
        },
    }
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
