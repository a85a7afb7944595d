//! The routes of [`ENDPOINTS`], shared by `main` and every test.
//!
//! Browser-facing discovery, registration and token endpoints get CORS (MCP Inspector and web clients call them
//! with `fetch`), exposing `WWW-Authenticate`; the login and consent pages and `/verify` do not. A path with the
//! wrong method answers 405. An entry with a rate limit ([`Endpoint::limit`](crate::endpoints::Endpoint::limit))
//! is counted per client address before its handler runs; over the limit it answers 429 with `Retry-After`,
//! held for [`REFUSAL_DELAY`](crate::error::REFUSAL_DELAY). Every request gets an id (`X-Request-Id`, kept from the proxy when sane) and one log
//! line with method, path (never the query, which may carry a code), status, time taken, client address and user
//! agent: at info level, except for the hot paths (`/verify`, `/health`, `/ready`), whose span and line are debug
//! level. When spans are exported, the request span continues the W3C `traceparent` of a trusted proxy (from
//! anyone else it starts a trace of its own).

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

/// The request span when spans are exported: a server span, whose OpenTelemetry attributes are set on the
/// exported span only ([`trace_context::answered`]), so the log lines do not repeat them.
macro_rules! exported_span {
    ($level:expr, $id:expr, $req:expr) => {
        tracing::span!(
            $level,
            "request",
            id = %$id,
            method = %$req.method(),
            path = %$req.path(),
            "otel.kind" = "server",
        )
    };
}

/// Request id, the request's span and one access-log line per request (wrap the `App` with it).
///
/// The line carries the status, the time taken in microseconds (a number), the client's address (behind a
/// trusted proxy, the client the proxy names in `X-Forwarded-For`) and its `User-Agent`. When spans
/// are exported ([`crate::logging`]), the span continues the W3C `traceparent` of the request and carries the
/// OpenTelemetry HTTP attributes: method, route pattern, path (never the query, which may hold a code or a
/// state), status, client address and user agent.
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
    let exporting = crate::logging::exporting();
    let span = match (hot, exporting) {
        (true, false) => {
            tracing::debug_span!("request", id = %id, method = %req.method(), path = %req.path())
        }
        (false, false) => {
            tracing::info_span!("request", id = %id, method = %req.method(), path = %req.path())
        }
        (true, true) => exported_span!(tracing::Level::DEBUG, id, req),
        (false, true) => exported_span!(tracing::Level::INFO, id, req),
    };
    // Only a trusted proxy's `traceparent` is continued: anyone else could pick the trace id, or mark the trace
    // as not sampled and so keep their requests out of the export.
    if exporting
        && req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|state| crate::extract::from_trusted_proxy(req.request(), &state.gate))
    {
        trace_context::continue_trace(&span, req.headers());
    }
    let logged = if hot {
        tracing::enabled!(tracing::Level::DEBUG)
    } else {
        tracing::enabled!(tracing::Level::INFO)
    };
    let seen = (logged || exporting).then(|| Seen::of(&req));
    let start = Instant::now();
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        let status = res.status().as_u16();
        // A number in JSON: `u128` would be written as a string.
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let (client, user_agent) = seen
            .as_ref()
            .map_or(("-", "-"), |s| (s.client.as_str(), s.user_agent.as_str()));
        if exporting {
            trace_context::answered(
                &tracing::Span::current(),
                res.request(),
                status,
                client,
                user_agent,
            );
        }
        if hot {
            tracing::debug!(status, micros, client, user_agent, "request");
        } else {
            tracing::info!(status, micros, client, user_agent, "request");
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(names::X_REQUEST_ID, v);
        }
        Ok(res)
    }
    .instrument(span)
}

/// Who sent a request, as the access line names it.
struct Seen {
    /// The client's address, `-` when unknown.
    client: String,
    /// The `User-Agent`, at most [`USER_AGENT_MAX`] characters, `-` when absent.
    user_agent: String,
}

/// The most of a `User-Agent` logged.
const USER_AGENT_MAX: usize = 256;

impl Seen {
    fn of(req: &ServiceRequest) -> Self {
        let client = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| crate::extract::client_addr(req.request(), &state.gate))
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(USER_AGENT_MAX)
                    .collect()
            })
            .unwrap_or_else(|| "-".to_owned());
        Seen { client, user_agent }
    }
}

/// W3C Trace Context (`traceparent`, `tracestate`) from the request headers.
mod trace_context {
    use actix_web::http::header::HeaderMap;
    use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    struct Headers<'a>(&'a HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }

    /// Makes `span` a child of the caller's span when the request names one; a malformed or absent
    /// `traceparent` starts a new trace.
    pub(super) fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        // Fails only for a span the exporter does not see, which then has no parent to set.
        let _ = span.set_parent(cx);
    }

    /// Names the exported span after its route (`GET /verify`; the span started when the request was first
    /// polled, before routing, so this goes to the OpenTelemetry span itself) and sets the HTTP attributes of
    /// the OpenTelemetry semantic conventions: method, route, path (the query stays out: it may hold a code or a
    /// state), status, client address and user agent. A 5xx marks the span as failed.
    pub(super) fn answered(
        span: &tracing::Span,
        req: &actix_web::HttpRequest,
        status: u16,
        client: &str,
        user_agent: &str,
    ) {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Status, TraceContextExt as _};
        let cx = span.context();
        let otel = cx.span();
        let method = req.method().as_str();
        let route = req.match_pattern();
        otel.update_name(
            route
                .as_deref()
                .map_or_else(|| method.to_owned(), |r| format!("{method} {r}")),
        );
        otel.set_attributes([
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("url.path", req.path().to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("client.address", client.to_owned()),
            KeyValue::new("user_agent.original", user_agent.to_owned()),
        ]);
        if let Some(r) = route {
            otel.set_attribute(KeyValue::new("http.route", r));
        }
        if status >= 500 {
            otel.set_status(Status::error(format!("HTTP {status}")));
        }
    }
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
