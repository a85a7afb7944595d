//! The route table, shared by `main` and every test.
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

use crate::extract::names;
use crate::handlers::{authorize, metadata, ops, register, token, verify};

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

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/verify").route(web::route().to(verify::verify)))
        .service(
            web::resource("/authorize")
                .route(web::get().to(authorize::authorize))
                .default_service(method_not_allowed()),
        )
        .service(
            web::resource("/login")
                .route(web::post().to(authorize::login))
                .default_service(method_not_allowed()),
        )
        .service(
            web::resource("/login/upstream")
                .route(web::post().to(authorize::login_upstream))
                .default_service(method_not_allowed()),
        )
        .service(
            web::resource("/callback")
                .route(web::get().to(authorize::callback))
                .default_service(method_not_allowed()),
        )
        .service(
            web::resource("/consent")
                .route(web::post().to(authorize::consent))
                .default_service(method_not_allowed()),
        )
        .service(web::resource("/health").route(web::get().to(ops::health)))
        .service(web::resource("/ready").route(web::get().to(ops::ready)))
        .service(
            web::scope("")
                .wrap(cors())
                .service(
                    web::resource("/.well-known/oauth-authorization-server")
                        .route(web::get().to(metadata::authorization_server))
                        .default_service(method_not_allowed()),
                )
                .service(
                    web::resource("/.well-known/openid-configuration")
                        .route(web::get().to(metadata::openid_configuration)),
                )
                .service(
                    web::resource([
                        "/.well-known/oauth-protected-resource",
                        "/.well-known/oauth-protected-resource/{tail:.*}",
                    ])
                    .route(web::get().to(metadata::protected_resource))
                    .default_service(method_not_allowed()),
                )
                .service(
                    web::resource("/jwks.json")
                        .route(web::get().to(metadata::jwks))
                        .default_service(method_not_allowed()),
                )
                .service(
                    web::resource("/token")
                        .route(web::post().to(token::token))
                        .default_service(method_not_allowed()),
                )
                .service(
                    web::resource("/revoke")
                        .route(web::post().to(token::revoke))
                        .default_service(method_not_allowed()),
                )
                .service(
                    web::resource("/introspect")
                        .route(web::post().to(token::introspect))
                        .default_service(method_not_allowed()),
                )
                .service(
                    web::resource("/register")
                        .route(web::post().to(register::register))
                        .default_service(method_not_allowed()),
                )
                .service(
                    web::resource("/register/{client_id}")
                        .route(web::get().to(register::read))
                        .route(web::put().to(register::update))
                        .route(web::delete().to(register::delete))
                        .default_service(method_not_allowed()),
                ),
        );
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
