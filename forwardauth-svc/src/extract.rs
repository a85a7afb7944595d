//! Reading requests: credentials, cookies, bounded bodies (as extractors where a handler takes them whole), and the original request behind a forward-auth call.
//!
//! # Forwarded headers
//! Traefik and Caddy describe the guarded request with `X-Forwarded-Method`/`-Proto`/`-Host`/`-Uri`; nginx
//! configs conventionally send `X-Original-URL` (or `X-Original-URI` plus `Host`) and `X-Original-Method`. These
//! headers decide which resource is being accessed, so they are believed only from configured proxy addresses;
//! from anywhere else their presence is refused.
//!
//! This module only collects the headers, raw, noting any that came twice; the engine reads them strictly
//! ([`oauth_core::forwarded`]) and decides ([`oauth_core::AuthServer::gate`]).
//!
//! # Forwarded bodies
//! Traefik's `forwardBody` sends the gate the guarded request's body (on a `GET` to `/verify`, with its
//! `Content-Length` or chunked), from which per-tool rules read the JSON-RPC call. nginx's `auth_request` never
//! does: its subrequest runs before nginx reads the body (with `proxy_pass_request_body on` the gate gets a
//! `Content-Length` and no body, and the check times out); Caddy 2.6's `forward_auth` sends a `GET` without the
//! body. [`forwarded_body`] reads one only from a trusted proxy and never more than `[gate] max_body_kib`.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderName};
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, dev};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use oauth_core::wire;
use oauth_core::{
    ClientCredentials, ErrorCode, ErrorPage, ForwardedBody, ForwardedHeaders, GateInput,
    HeaderField, OAuthError,
};
use serde::de::DeserializeOwned;

use crate::config::GateConfig;
use crate::error::{ApiError, Challenge};
use crate::pages::Pages;
use crate::state::AppState;

/// A header as `&str`, if present and visible ASCII. Take the name from [`names`] (or `actix_web::http::header`):
/// a `&str` name would be parsed into a `HeaderName`, with an allocation, on every lookup.
pub fn header<'a>(req: &'a HttpRequest, name: &HeaderName) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `Authorization` header, if it is UTF-8. (The HTTP parser has already refused control characters; a
/// bearer token with anything but base64url in it fails verification. `HeaderValue::to_str` would check the
/// kilobyte of a JWT byte by byte, on every `/verify`.)
pub fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(&header::AUTHORIZATION)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// Header names the service reads, parsed at compile time.
pub mod names {
    use actix_web::http::header::HeaderName;

    /// Traefik and Caddy: the guarded request's method.
    pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
    /// The guarded request's scheme.
    pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    /// The guarded request's host.
    pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    /// Traefik and Caddy: the guarded request's path and query.
    pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
    /// nginx: the guarded request's absolute URL.
    pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
    /// nginx: the guarded request's path and query.
    pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
    /// nginx: the guarded request's method.
    pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
    /// MCP: the protocol revision of the guarded request.
    pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
    /// MCP (2026-07-28): the JSON-RPC method of the guarded request.
    pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
    /// MCP (2026-07-28): the tool (or other) name of the guarded request.
    pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
    /// The client address chain a proxy appends to.
    pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    /// The request id, kept from the proxy when sane.
    pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
}

/// Client credentials from an `Authorization: Basic` header.
///
/// # Errors
/// `invalid_client` (with a Basic challenge) for a malformed header.
pub fn basic_credentials(req: &HttpRequest) -> Result<Option<ClientCredentials>, ApiError> {
    match authorization(req) {
        None => Ok(None),
        Some(v) => ClientCredentials::from_authorization_header(v)
            .map_err(|e| ApiError::from(e).with_challenge(Challenge::Basic)),
    }
}

/// The bearer token of the request.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    oauth_core::bearer_token(authorization(req))
}

/// Reads a body of at most `limit` bytes.
///
/// # Errors
/// `invalid_request` naming the limit, or the transport error.
pub async fn read_body(mut payload: dev::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid_request(format!("could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::invalid_request(format!(
                "the request body is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The service state, as the handlers' `web::Data<AppState>` sees it.
pub fn app_state(req: &HttpRequest) -> Result<&web::Data<AppState>, actix_web::Error> {
    req.app_data::<web::Data<AppState>>().ok_or_else(|| {
        actix_web::error::ErrorInternalServerError("the app state is not configured")
    })
}

/// A form of the authorization UI, read under [`oauth_core::FORM_LIMIT`]; a larger one is answered with
/// [`ErrorPage::form_too_large`].
pub struct FormBody(pub Bytes);

impl std::ops::Deref for FormBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for FormBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let payload = payload.take();
        let pages = app_state(req).map_or_else(|_| Pages::default(), |s| s.pages.clone());
        Box::pin(async move {
            read_body(payload, oauth_core::FORM_LIMIT)
                .await
                .map(FormBody)
                .map_err(|_| ApiError::page(ErrorPage::form_too_large(), &pages))
        })
    }
}

/// A form at `/token`, `/revoke` or `/introspect` (RFC 6749 §3.2): the content type checked, the Basic
/// credentials, the parsed form, and the challenge a 401 must carry.
pub struct ClientForm<T> {
    /// Credentials from an `Authorization: Basic` header.
    pub basic: Option<ClientCredentials>,
    /// The form.
    pub form: T,
    /// `Basic` when the client authenticated by Basic (RFC 6749 §5.2), else none.
    pub challenge: Challenge,
}

/// The largest form body `/token`, `/revoke` and `/introspect` read.
const CLIENT_FORM_LIMIT: usize = 64 * 1024;

impl<T: DeserializeOwned + 'static> FromRequest for ClientForm<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let head = require_form(req).and_then(|()| basic_credentials(req));
        let payload = payload.take();
        Box::pin(async move {
            let basic = head?;
            let challenge = if basic.is_some() {
                Challenge::Basic
            } else {
                Challenge::None
            };
            let body = read_body(payload, CLIENT_FORM_LIMIT).await?;
            let form = wire::parse_form(&body)?;
            Ok(ClientForm {
                basic,
                form,
                challenge,
            })
        })
    }
}

/// A client registration body (RFC 7591), read under the policy's limit; a larger one is refused with
/// `invalid_client_metadata`.
pub struct Metadata(pub Bytes);

impl FromRequest for Metadata {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let max = app_state(req).map(|s| s.auth.config().registration.max_metadata_bytes);
        let payload = payload.take();
        Box::pin(async move {
            let max = max?;
            let body = read_body(payload, max).await.map_err(|_| {
                ApiError::from(OAuthError::new(
                    ErrorCode::InvalidClientMetadata,
                    format!("the registration request is larger than {max} bytes"),
                ))
            })?;
            Ok(Metadata(body))
        })
    }
}

/// Requires `Content-Type: application/x-www-form-urlencoded` (RFC 6749 §3.2).
///
/// # Errors
/// `invalid_request`.
pub fn require_form(req: &HttpRequest) -> Result<(), ApiError> {
    let ok = header(req, &header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ))
    }
}

/// Whether the connection comes from a trusted proxy.
pub fn from_trusted_proxy(req: &HttpRequest, gate: &GateConfig) -> bool {
    req.peer_addr().is_some_and(|peer| {
        gate.trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip()))
    })
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the rightmost `X-Forwarded-For`
/// entry that is not itself a trusted proxy (entries further left were written by the client and prove nothing).
/// An entry that is not an IP address ends the walk at the last address believed. `None` without a peer
/// (only in-process tests).
pub fn client_addr(req: &HttpRequest, gate: &GateConfig) -> Option<IpAddr> {
    let trusted = |ip: &IpAddr| gate.trusted_proxies.iter().any(|net| net.contains(ip));
    let mut addr = req.peer_addr()?.ip();
    if !trusted(&addr) {
        return Some(addr);
    }
    let values: Vec<&[u8]> = req
        .headers()
        .get_all(&names::X_FORWARDED_FOR)
        .map(|v| v.as_bytes())
        .collect();
    for value in values.iter().rev() {
        let Ok(list) = std::str::from_utf8(value) else {
            return Some(addr);
        };
        for entry in list.rsplit(',') {
            let Some(ip) = forwarded_for_ip(entry.trim()) else {
                return Some(addr);
            };
            addr = ip;
            if !trusted(&addr) {
                return Some(addr);
            }
        }
    }
    Some(addr)
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn forwarded_for_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

/// One header as the gate reads it: absent, once (raw bytes), or repeated.
pub fn field<'a>(req: &'a HttpRequest, name: &HeaderName) -> HeaderField<'a> {
    HeaderField::from_values(req.headers().get_all(name).map(|v| v.as_bytes()))
}

/// The headers that describe the request a forward-auth call is about, as received.
pub fn forwarded_headers(req: &HttpRequest) -> ForwardedHeaders<'_> {
    ForwardedHeaders {
        forwarded_method: field(req, &names::X_FORWARDED_METHOD),
        forwarded_proto: field(req, &names::X_FORWARDED_PROTO),
        forwarded_host: field(req, &names::X_FORWARDED_HOST),
        forwarded_uri: field(req, &names::X_FORWARDED_URI),
        original_url: field(req, &names::X_ORIGINAL_URL),
        original_uri: field(req, &names::X_ORIGINAL_URI),
        original_method: field(req, &names::X_ORIGINAL_METHOD),
        host: field(req, &header::HOST),
    }
}

/// Everything the gate reads of a forward-auth call; the engine parses and judges it
/// ([`oauth_core::AuthServer::gate`]).
pub fn gate_input<'a>(
    req: &'a HttpRequest,
    gate: &GateConfig,
    body: &'a ForwardedBodyRead,
) -> GateInput<'a> {
    GateInput {
        forwarded: forwarded_headers(req),
        from_trusted_proxy: from_trusted_proxy(req, gate),
        listener_https: req.app_config().secure(),
        authorization: field(req, &header::AUTHORIZATION),
        origin: field(req, &header::ORIGIN),
        mcp_protocol_version: field(req, &names::MCP_PROTOCOL_VERSION),
        mcp_method: field(req, &names::MCP_METHOD),
        mcp_name: field(req, &names::MCP_NAME),
        body: match body {
            ForwardedBodyRead::Absent => ForwardedBody::Absent,
            ForwardedBodyRead::Read(b) => ForwardedBody::Present(b),
            ForwardedBodyRead::TooLarge => ForwardedBody::TooLarge {
                limit: gate.max_body_bytes,
            },
        },
    }
}

/// A forward-auth call's body, as [`forwarded_body`] read it.
#[derive(Debug)]
pub enum ForwardedBodyRead {
    /// None sent, an empty one, or one from an address that is not a trusted proxy (not read: the gate refuses
    /// such a call anyway).
    Absent,
    /// The whole body.
    Read(Bytes),
    /// Longer than `[gate] max_body_kib`; the rest was left unread.
    TooLarge,
}

/// The body a trusted proxy forwarded with a forward-auth call (Traefik's `forwardBody`), read up to
/// `[gate] max_body_kib` and no further: a `Content-Length` above it is not read at all, a chunked body only up
/// to it. Never on `HEAD` (nginx's way of asking, without a body).
///
/// # Errors
/// `invalid_request` when the body cannot be read (the proxy's connection broke).
pub async fn forwarded_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    gate: &GateConfig,
) -> Result<ForwardedBodyRead, ApiError> {
    let length = header(req, &header::CONTENT_LENGTH).map(str::parse::<u64>);
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    // nginx asks with HEAD and never sends a body; were its snippet to pass the request's Content-Length on
    // (nginx does unless told not to), waiting for that body would hang the check.
    if req.method() == actix_web::http::Method::HEAD
        || !from_trusted_proxy(req, gate)
        || (!chunked && matches!(length, None | Some(Ok(0))))
    {
        return Ok(ForwardedBodyRead::Absent);
    }
    let limit = gate.max_body_bytes;
    if let Some(Ok(n)) = length
        && n > limit as u64
    {
        return Ok(ForwardedBodyRead::TooLarge);
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid_request(format!("could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Ok(ForwardedBodyRead::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(if body.is_empty() {
        ForwardedBodyRead::Absent
    } else {
        ForwardedBodyRead::Read(body.freeze())
    })
}

/// A request routed to this service from an MCP host (a CORS preflight), described as the gate describes a
/// guarded one: the method and raw request target of this request, the host and scheme from the proxy's
/// `X-Forwarded-Host`/`-Proto` when it is trusted, else from `Host` and this listener.
pub fn routed_request<'a>(req: &'a HttpRequest, gate: &GateConfig) -> ForwardedHeaders<'a> {
    let trusted = from_trusted_proxy(req, gate);
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", actix_web::http::uri::PathAndQuery::as_str);
    let (proto, host) = if trusted {
        (
            field(req, &names::X_FORWARDED_PROTO),
            field(req, &names::X_FORWARDED_HOST),
        )
    } else {
        (HeaderField::Absent, HeaderField::Absent)
    };
    ForwardedHeaders {
        forwarded_method: HeaderField::One(req.method().as_str().as_bytes()),
        forwarded_proto: proto,
        forwarded_host: host,
        forwarded_uri: HeaderField::One(target.as_bytes()),
        host: field(req, &header::HOST),
        ..ForwardedHeaders::default()
    }
}

/// The absolute URL this service was reached at for `path`, as the client saw it: the proxy's
/// `X-Forwarded-Proto`/`-Host` when it is trusted, else the request's own scheme and `Host`.
pub fn public_url(req: &HttpRequest, gate: &GateConfig) -> String {
    let trusted = from_trusted_proxy(req, gate);
    let proto = header(req, &names::X_FORWARDED_PROTO)
        .filter(|_| trusted)
        .unwrap_or(own_scheme(req));
    let host = header(req, &names::X_FORWARDED_HOST)
        .filter(|_| trusted)
        .or_else(|| header(req, &header::HOST))
        .unwrap_or("localhost");
    format!("{proto}://{host}{}", req.path())
}

/// The scheme of this listener itself. (actix's `ConnectionInfo` would believe `X-Forwarded-Proto` from anyone.)
fn own_scheme(req: &HttpRequest) -> &'static str {
    if req.app_config().secure() {
        "https"
    } else {
        "http"
    }
}
