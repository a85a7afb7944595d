//! Reading requests: credentials, cookies, bounded bodies, and the original request behind a forward-auth call.
//!
//! # Forwarded headers
//! Traefik and Caddy describe the guarded request with `X-Forwarded-Method`/`-Proto`/`-Host`/`-Uri`; nginx
//! configs conventionally send `X-Original-URL` (or `X-Original-URI` plus `Host`) and `X-Original-Method`. These
//! headers decide which resource is being accessed, so they are believed only from configured proxy addresses;
//! from anywhere else their presence is refused.
//!
//! A proxy sets one family and, by default, passes the client's other headers through to the gate unchanged
//! (Traefik without `authRequestHeaders`, Caddy, ingress-nginx). A client could then add the *other* family,
//! say `X-Original-URL: https://mcp.example.com/.well-known/x` behind Traefik, to make the gate judge a
//! request it is not making. So when both families are present they must describe the same request, or the
//! gate refuses it: no choice of precedence would be safe behind every proxy.

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};
use actix_web::web::{self, Bytes};
use futures_util::StreamExt as _;
use oauth_core::ClientCredentials;

use crate::config::GateConfig;
use crate::error::{ApiError, Challenge};

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
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
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

/// The request a forward-auth call is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original<'a> {
    /// Its HTTP method, upper case (borrowed from the header when it already is).
    pub method: std::borrow::Cow<'a, str>,
    /// Its absolute URL, as the proxy described it (not yet parsed: the engine locates it, memoised).
    pub url: String,
}

/// Why the original request could not be established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalError {
    /// Forwarded headers from an address that is not a trusted proxy.
    Untrusted,
    /// No forwarded headers at all.
    Missing,
    /// The headers do not form a URL.
    Malformed,
    /// The `X-Forwarded-*` and `X-Original-*` headers describe different requests.
    Conflicting,
}

const FORWARDED: [HeaderName; 7] = [
    names::X_FORWARDED_METHOD,
    names::X_FORWARDED_PROTO,
    names::X_FORWARDED_HOST,
    names::X_FORWARDED_URI,
    names::X_ORIGINAL_URL,
    names::X_ORIGINAL_URI,
    names::X_ORIGINAL_METHOD,
];

/// Reconstructs the guarded request from the proxy's headers. Whether the URL parses is for the caller to find
/// out ([`oauth_core::AuthServer::request_target`]).
///
/// # Errors
/// [`OriginalError`].
pub fn original_request<'a>(
    req: &'a HttpRequest,
    gate: &GateConfig,
) -> Result<Original<'a>, OriginalError> {
    // Each header is looked up once: this runs on every proxied request.
    let raw = FORWARDED.map(|name| req.headers().get(name));
    if raw.iter().all(Option::is_none) {
        return Err(OriginalError::Missing);
    }
    if !from_trusted_proxy(req, gate) {
        return Err(OriginalError::Untrusted);
    }
    // A header that is present but not visible ASCII counts as absent.
    let [
        method,
        proto,
        host,
        uri,
        original_url,
        original_uri,
        original_method,
    ] = raw.map(|v| v.and_then(|v| v.to_str().ok()));
    let method = match (method, original_method) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
            return Err(OriginalError::Conflicting);
        }
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) => "GET",
    };
    let proto = || proto.unwrap_or(own_scheme(req));
    let host = || {
        host.or_else(|| header(req, &header::HOST))
            .ok_or(OriginalError::Malformed)
    };
    // Traefik and Caddy: X-Forwarded-Uri. nginx: X-Original-URL, or X-Original-URI with the host.
    let absolute = |uri: &str| -> Result<String, OriginalError> {
        let (proto, host) = (proto(), host()?);
        let mut url = String::with_capacity(proto.len() + 3 + host.len() + uri.len());
        url.push_str(proto);
        url.push_str("://");
        url.push_str(host);
        url.push_str(uri);
        Ok(url)
    };
    let forwarded = uri.map(absolute).transpose()?;
    let original = match (original_url, original_uri) {
        (Some(full), _) => Some(full.to_owned()),
        (None, Some(uri)) => Some(absolute(uri)?),
        (None, None) => None,
    };
    let url = match (forwarded, original) {
        (Some(f), Some(o)) if f != o => return Err(OriginalError::Conflicting),
        (Some(u), _) | (None, Some(u)) => u,
        (None, None) => return Err(OriginalError::Malformed),
    };
    let method = if method.bytes().any(|b| b.is_ascii_lowercase()) {
        std::borrow::Cow::Owned(method.to_ascii_uppercase())
    } else {
        std::borrow::Cow::Borrowed(method)
    };
    Ok(Original { method, url })
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
