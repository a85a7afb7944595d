//! The single place where engine errors become HTTP responses.
//!
//! | error | status | headers / body |
//! |---|---|---|
//! | `invalid_client` at `/token`, `/revoke`, `/introspect` | 401 | `WWW-Authenticate: Basic` when Basic was used (RFC 6749 §5.2); JSON |
//! | `invalid_token` at `/register…` | 401 | `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1); JSON |
//! | any other OAuth error | its status | JSON `{error, error_description}` |
//! | store / keys / upstream failure | 500 or 503 | `server_error` / `temporarily_unavailable`, generic text; the cause is logged |
//! | an error page of the authorization UI ([`oauth_core::ErrorPage`]) | its status | the rendered HTML page; `Retry-After` when it says when to retry (429 over a limit or banned, 503 too busy) |
//! | over a rate limit at an OAuth endpoint | 429 | `Retry-After`; JSON `temporarily_unavailable` |
//! | a path nothing serves, an unknown resource's metadata, `/.well-known/openid-configuration` | 404 | JSON `not_found` |
//! | a method the endpoint does not answer | 405 | JSON `invalid_request` |
//! | `/ready` while the store does not answer | 503 | JSON `{"status": "unavailable"}` |
//!
//! | the gate refuses a guarded request | 401 or 403 | `WWW-Authenticate: Bearer …, resource_metadata="…"` for a token problem; JSON; CORS headers for an allowed `Origin` |
//! | the gate cannot read a forwarded body as one MCP call | 400 (headers disagree with the body) or 413 (too long) | JSON `invalid_request`; only a proxy that forwards the body (Traefik) causes these, and it returns them as they are |
//!
//! Every JSON error carries `Cache-Control: no-store`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use oauth_core::{
    Error, ErrorCode, ErrorPage, GateRefusal, OAuthError, Preflight, RejectionKind, VerifyRejection,
};
use serde_json::json;

/// How long a "retry later" answer (429, 503) is held before it is sent. A client over its limit that retries at
/// once would otherwise cost about as much per refusal as a `/verify`: 64 connections retrying back to back took
/// half of a 2-core machine from `/verify` in `bench-storm`. Held, each connection costs a timer and no CPU, so a
/// storm's rate is bounded by its connections, not by how fast this server can say no.
pub const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// Which authentication challenge a 401 carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// None.
    None,
    /// `Basic realm="…"` (client authentication by Basic failed).
    Basic,
    /// `Bearer error="invalid_token"` (registration access token or initial access token).
    Bearer,
}

/// An error response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An engine error at a JSON endpoint.
    #[error("{error}")]
    OAuth {
        /// The error.
        error: Error,
        /// The challenge for a 401.
        challenge: Challenge,
    },
    /// An error page of the authorization UI, decided by the engine, and the service's pages to render it with.
    #[error("page {}: {}", .0.0.status, .0.0.title)]
    Page(Box<(ErrorPage, crate::pages::Pages)>),
    /// 429 at an OAuth endpoint: this client address is over the endpoint's rate; `temporarily_unavailable`
    /// with `Retry-After`.
    #[error("rate limited; retry after {retry_after_secs} s")]
    Throttled {
        /// Seconds for `Retry-After`.
        retry_after_secs: u64,
    },
    /// 404 with a JSON `not_found` body saying what is not here.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// 405: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 503 from `/ready`: the store does not answer (the cause is logged where it happened).
    #[error("not ready")]
    NotReady,
    /// The gate's 401 or 403 for a guarded request (`/verify`, or a preflight it refuses), or its 400/413 for a
    /// forwarded body it cannot read as one MCP call, with CORS headers for an allowed `Origin` so a browser
    /// client can read it.
    #[error("gate: {denial:?}")]
    Gate {
        /// Why.
        denial: GateDenial,
        /// The `Origin` to allow, if the request's is allowed.
        allow_origin: Option<String>,
    },
}

/// Why the gate said no.
#[derive(Debug)]
pub enum GateDenial {
    /// The token is missing, invalid, or lacks a scope: 401 or 403 with a Bearer challenge that leads an MCP
    /// client to discovery (RFC 6750 §3, RFC 9728 §5.1).
    Rejected(VerifyRejection),
    /// The guarded request itself is refused, whatever its token: 403 `access_denied`, or 400/413
    /// `invalid_request` for a forwarded body the gate cannot read as one MCP call ([`GateRefusal::status`]).
    Refused(GateRefusal),
}

/// The JSON body of a gate refusal (RFC 6750 §3 codes; `access_denied` for the gate's own refusals).
#[derive(serde::Serialize)]
struct Refusal<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl GateDenial {
    fn status(&self) -> StatusCode {
        match self {
            GateDenial::Rejected(r) => status(r.status()),
            GateDenial::Refused(r) => status(r.status()),
        }
    }

    fn response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status());
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        res.insert_header((header::PRAGMA, "no-cache"));
        match self {
            GateDenial::Rejected(r) => {
                if let Ok(v) = HeaderValue::from_str(&r.www_authenticate()) {
                    res.insert_header((header::WWW_AUTHENTICATE, v));
                }
                // RFC 6750 gives a missing token no error code; the body still says what happened.
                let error = match r.kind {
                    RejectionKind::MissingToken => "unauthorized",
                    RejectionKind::InvalidToken => "invalid_token",
                    RejectionKind::InsufficientScope => "insufficient_scope",
                    RejectionKind::AccessDenied => "access_denied",
                };
                res.json(Refusal {
                    error,
                    error_description: r.description,
                })
            }
            // Logged by the handler, which knows who sent the request.
            GateDenial::Refused(r) => res.json(Refusal {
                error: r.error_code(),
                error_description: &r.description,
            }),
        }
    }
}

/// CORS headers for an allowed origin, so a browser client can read the answer and its `WWW-Authenticate`.
pub fn allow_origin(res: &mut HttpResponse, origin: &str) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(Preflight::EXPOSE_HEADERS),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

impl ApiError {
    /// An error page, rendered with `pages`.
    pub fn page(page: ErrorPage, pages: &crate::pages::Pages) -> Self {
        ApiError::Page(Box::new((page, pages.clone())))
    }

    /// An `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        OAuthError::invalid_request(description).into()
    }

    /// Sets the challenge.
    pub fn with_challenge(self, challenge: Challenge) -> Self {
        match self {
            ApiError::OAuth { error, .. } => ApiError::OAuth { error, challenge },
            other => other,
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::OAuth {
            error,
            challenge: Challenge::None,
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        Error::OAuth(e).into()
    }
}

/// The status of a numeric code from the engine (which only names valid ones; anything else is a 500).
pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A handler may return the error itself (an endpoint that only ever refuses).
impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::OAuth { error, .. } => status(error.to_oauth().status()),
            ApiError::Page(page) => status(page.0.status),
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Gate { denial, .. } => denial.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::OAuth { error, challenge } => {
                let visible = error.client_view();
                let mut res = HttpResponse::build(status(visible.status()));
                res.insert_header((header::CACHE_CONTROL, "no-store"));
                res.insert_header((header::PRAGMA, "no-cache"));
                let challenge = match (visible.code, challenge) {
                    (ErrorCode::InvalidClient, Challenge::Basic) => {
                        Some("Basic realm=\"oauth\"".to_owned())
                    }
                    (ErrorCode::InvalidToken, Challenge::Bearer) => Some(format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        visible.description
                    )),
                    _ => None,
                };
                if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    res.insert_header((header::WWW_AUTHENTICATE, value));
                }
                res.json(visible.to_response())
            }
            ApiError::Page(page) => {
                let (page, pages) = page.as_ref();
                pages.error_response(page)
            }
            ApiError::Throttled { retry_after_secs } => HttpResponse::build(
                StatusCode::TOO_MANY_REQUESTS,
            )
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)))
            .json(
                OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    format!(
                        "too many requests from this address; retry after {retry_after_secs} s"
                    ),
                )
                .to_response(),
            ),
            ApiError::NotFound(description) => HttpResponse::NotFound().json(json!({
                "error": "not_found",
                "error_description": description,
            })),
            ApiError::MethodNotAllowed => HttpResponse::MethodNotAllowed().json(json!({
                "error": "invalid_request",
                "error_description": "this method is not allowed on this endpoint",
            })),
            ApiError::NotReady => HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "reason": "store unreachable" })),
            ApiError::Gate {
                denial,
                allow_origin: origin,
            } => {
                let mut res = denial.response();
                if let Some(origin) = origin {
                    allow_origin(&mut res, origin);
                }
                res
            }
        }
    }
}

/// Every kind of error response, pinned: status, headers and body. A change to what a client sees shows up as a
/// snapshot diff (`INSTA_UPDATE=always cargo test -p forwardauth-svc --lib error` rewrites them for review).
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use oauth_core::{ErrorPage, StoreError};

    use super::*;

    async fn wire(e: ApiError) -> String {
        let res = e.error_response();
        let mut out = format!("{}\n", res.status());
        let mut headers: Vec<_> = res
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        headers.sort();
        for h in headers {
            out.push_str(&h);
            out.push('\n');
        }
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        out.push('\n');
        out.push_str(std::str::from_utf8(&body).unwrap());
        out
    }

    #[actix_web::test]
    async fn oauth_errors() {
        insta::assert_snapshot!(
            "invalid_request",
            wire(ApiError::invalid_request("grant_type is required")).await
        );
        let client = OAuthError::new(ErrorCode::InvalidClient, "client authentication failed");
        insta::assert_snapshot!(
            "invalid_client_basic",
            wire(ApiError::from(client.clone()).with_challenge(Challenge::Basic)).await
        );
        insta::assert_snapshot!("invalid_client_form", wire(ApiError::from(client)).await);
        insta::assert_snapshot!(
            "invalid_token_bearer",
            wire(
                ApiError::from(OAuthError::new(
                    ErrorCode::InvalidToken,
                    "the registration access token is invalid"
                ))
                .with_challenge(Challenge::Bearer)
            )
            .await
        );
        insta::assert_snapshot!(
            "internal_store_failure",
            wire(ApiError::from(Error::Store(StoreError::Unavailable(
                "connection refused to 10.0.0.7:6379 (secret detail)".into()
            ))))
            .await
        );
    }

    #[actix_web::test]
    async fn pages() {
        let pages = crate::pages::Pages::build(
            &crate::pages::PagesConfig::default(),
            "https://auth.example.com",
        )
        .unwrap();
        let page = ErrorPage::form_too_large();
        insta::assert_snapshot!(
            "page_invalid_form",
            wire(ApiError::page(page, &pages)).await
        );
        let throttled = ErrorPage::throttled(Duration::from_millis(2500));
        insta::assert_snapshot!(
            "page_throttled",
            wire(ApiError::page(throttled, &pages)).await
        );
    }

    #[actix_web::test]
    async fn service_answers() {
        insta::assert_snapshot!(
            "throttled_json",
            wire(ApiError::Throttled {
                retry_after_secs: 3
            })
            .await
        );
        insta::assert_snapshot!(
            "not_found",
            wire(ApiError::NotFound("no such endpoint")).await
        );
        insta::assert_snapshot!("method_not_allowed", wire(ApiError::MethodNotAllowed).await);
        insta::assert_snapshot!("not_ready", wire(ApiError::NotReady).await);
    }

    #[test]
    fn an_allowed_origin_can_read_a_refusal() {
        let res = ApiError::Gate {
            denial: GateDenial::Refused(GateRefusal::from(oauth_core::RefusalReason::NoResource)),
            allow_origin: Some("https://app.example".into()),
        }
        .error_response();
        let h = |name: &str| res.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(h("access-control-allow-origin"), "https://app.example");
        assert_eq!(h("vary"), "Origin");
        assert!(h("access-control-expose-headers").contains("WWW-Authenticate"));
    }
}
