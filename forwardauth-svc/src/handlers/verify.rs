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
//!   request is refused (untrusted, repeated or malformed forwarded headers, a path not in normal form, no
//!   configured resource, an `Origin` not allowed).
//!
//! The decision is the engine's ([`oauth_core::AuthServer::gate`]); this handler extracts and maps. For an
//! allowed `Origin`, the 401/403 carries CORS headers (proxies return it to the browser as it is).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use oauth_core::{GateOutcome, GateRefusal, Preflight, Principal, RejectionKind, VerifyRejection};

use super::no_store;
use crate::extract;
use crate::identity_headers::IdentityHeaderNames;
use crate::state::AppState;

/// `GET|POST|… /verify`: extract, ask the engine, map.
pub async fn verify(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let verdict = state
        .auth
        .gate(&extract::gate_input(&req, &state.gate))
        .await;
    let mut res = match &verdict.outcome {
        GateOutcome::Admit(p) => identity(Some(p), &state.identity_headers),
        GateOutcome::Pass => identity(None, &state.identity_headers),
        GateOutcome::Reject(r) => rejected(r),
        GateOutcome::Refuse(r) => refused(r),
    };
    if let Some(origin) = verdict.allow_origin.as_deref()
        && !res.status().is_success()
    {
        cors(&mut res, origin);
    }
    res
}

/// `OPTIONS` on any path the service does not serve itself: a CORS preflight for a protected resource, routed
/// here by the proxy snippets (a browser needs a 2xx, and the gate's 2xx would reach the MCP server).
pub async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let headers = extract::routed_request(&req, &state.gate);
    let answer = oauth_core::ForwardedRequest::parse(&headers, req.app_config().secure())
        .map_err(|e| GateRefusal::from(oauth_core::RefusalReason::Forwarded(e)))
        .and_then(|r| {
            state.auth.preflight(
                &r,
                extract::field(&req, &header::ORIGIN),
                extract::field(&req, &header::ACCESS_CONTROL_REQUEST_METHOD),
            )
        });
    match answer {
        Ok(p) => {
            let mut res = HttpResponse::NoContent().finish();
            cors(&mut res, &p.allow_origin);
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
        Err(r) => refused(&r),
    }
}

/// CORS headers for an allowed origin, so a browser client can read the answer and its `WWW-Authenticate`.
fn cors(res: &mut HttpResponse, origin: &str) {
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

fn refused(r: &GateRefusal) -> HttpResponse {
    if r.reason == oauth_core::RefusalReason::Untrusted {
        tracing::warn!("forwarded headers from an untrusted address");
    } else {
        tracing::debug!(reason = ?r.reason, "gate refusal");
    }
    no_store(HttpResponse::Forbidden()).json(Refusal {
        error: "access_denied",
        error_description: &r.description,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use oauth_core::{GateRefusal, RefusalReason};

    use super::refused;

    /// Captures what is logged while `f` runs, at every level.
    fn logged(f: impl FnOnce()) -> String {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buf = Arc::clone(&buf);
            move || Capture(Arc::clone(&buf))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Forwarded headers from an untrusted address mean a misconfigured proxy or someone probing the gate: the
    /// operator sees a warning. Every other refusal is the client's problem and stays at debug level.
    #[test]
    fn only_an_untrusted_sender_is_a_warning() {
        let untrusted = logged(|| {
            refused(&GateRefusal::from(RefusalReason::Untrusted));
        });
        assert!(untrusted.contains("WARN"), "{untrusted}");
        let other = logged(|| {
            refused(&GateRefusal::from(RefusalReason::NoResource));
        });
        assert!(
            !other.contains("WARN") && other.contains("DEBUG"),
            "{other}"
        );
    }
}
