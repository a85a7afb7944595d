//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP authorization 2025-11-25
//! §Client ID Metadata Documents, recommended by 2026-07-28).
//!
//! A client may identify itself with an https URL as its `client_id`. The server fetches the JSON document at
//! that URL and treats it as the client's registration: redirect URIs, name, grant types, and how the client
//! authenticates at `/token` (`none`, or `private_key_jwt` with keys from `jwks`/`jwks_uri`). Nothing is
//! registered or persisted: the document is the registration, and it is reread when the cached copy is stale.
//!
//! # Why the fetch is fenced in
//! The URL comes from whoever sends an authorization request, so fetching it is a server-side request on an
//! attacker's behalf (SSRF). The production fetcher ([`ReqwestDocumentFetcher`], feature `cimd`):
//! * fetches `https` only (`http` only for a loopback host, and only when a development setting allows it);
//! * resolves the host itself and refuses loopback, private, link-local (cloud metadata at 169.254.169.254),
//!   shared (CGNAT), documentation and other non-public addresses, with the standard library's address
//!   classification rather than hand-written parsing; the HTTP client then connects only to the addresses that
//!   check returned, so a second DNS answer cannot slip in between check and connect (no rebinding gap). IP
//!   literals, which never reach a resolver, are checked before the request;
//! * follows no redirect (a redirect could point anywhere), ignores proxy settings, bounds the whole exchange
//!   by one timeout, reads at most a few KiB, and accepts only a JSON content type.
//!
//! # Why a cache with bounds
//! Every authorization and token request names the client, so documents are cached in memory for their
//! `Cache-Control: max-age`, clamped to a configured range: a floor so a `no-store` document does not turn each
//! request into a fetch, a ceiling so a changed document (a removed redirect URI, a rotated key) is seen within
//! a day. The time comes from the injected [`Clock`](crate::Clock). A stale entry is fetched again; a failed
//! refetch fails the request rather than serving the stale copy.
//!
//! A failure is remembered too, for [`FAILURE_TTL_SECS`]: anyone can send an authorization request naming any
//! URL, and without this each one would make the server fetch again (a slow document holds a request for the
//! whole timeout). The same error is answered until then, so a fixed document is seen within half a minute.
//!
//! # The seam
//! [`ClientDocumentFetcher`] is the trait the flows depend on; it returns the body and the `Cache-Control` value
//! or a typed [`FetchError`]. Validation, caching and policy live here, above it, so they do not depend on the
//! HTTP client.

pub(crate) mod assertion;
#[cfg(feature = "cimd")]
mod fetch;

#[cfg(feature = "cimd")]
pub use fetch::{AddressFilter, HostLookup, ReqwestDocumentFetcher, StaticHosts, SystemLookup};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::config::{ClientMetadataDocuments, ConfigError, is_loopback_host};
use crate::store::ClientRecord;

/// A fetched document: the body as received and the `Cache-Control` header, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchedDocument {
    /// The response body (at most the configured size).
    pub body: Vec<u8>,
    /// The `Cache-Control` response header.
    pub cache_control: Option<String>,
}

impl FetchedDocument {
    /// A document with this body and `Cache-Control` value.
    pub fn new(body: Vec<u8>, cache_control: Option<String>) -> Self {
        FetchedDocument {
            body,
            cache_control,
        }
    }
}

/// Why a document could not be fetched. The text names what went wrong, for the error page and the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The whole exchange took longer than the configured timeout.
    #[error("the fetch timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The body is larger than the configured cap (by `Content-Length` or as read).
    #[error("the document is larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// The server answered with a redirect; redirects are never followed.
    #[error("the server answered with a redirect (HTTP {status}); redirects are not followed")]
    Redirect {
        /// The 3xx status.
        status: u16,
    },
    /// The server answered with a status other than 200.
    #[error("the server answered with HTTP {0}")]
    Status(u16),
    /// The host is, or resolves to, an address in a refused range.
    #[error(
        "{}, which this server does not fetch from",
        refused_address(host, addr, reason)
    )]
    AddressRefused {
        /// The host name (or IP literal) of the URL.
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// Which range it is in.
        reason: &'static str,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// The response's content type is not JSON.
    #[error("the content type is `{0}`, not application/json")]
    ContentType(String),
    /// The URL's scheme is not fetched (https only; http on loopback only when allowed).
    #[error("only https URLs are fetched")]
    NotHttps,
    /// The connection or TLS handshake failed, or the response was malformed.
    #[error("the request failed: {0}")]
    Connect(String),
}

fn refused_address(host: &str, addr: &IpAddr, reason: &str) -> String {
    if host.trim_start_matches('[').trim_end_matches(']') == addr.to_string() {
        format!("{host} is a {reason} address")
    } else {
        format!("{host} resolves to {addr}, a {reason} address")
    }
}

/// Fetches client metadata documents (and the JWK sets they point to). The production implementation is
/// [`ReqwestDocumentFetcher`] (feature `cimd`); an implementation must apply the same safeguards.
#[async_trait]
pub trait ClientDocumentFetcher: Send + Sync + 'static {
    /// Fetches `url`.
    ///
    /// # Errors
    /// [`FetchError`] naming what went wrong.
    async fn fetch(&self, url: &Url) -> Result<FetchedDocument, FetchError>;
}

/// How a document client authenticates at the token endpoint, and with which keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClientKeys {
    /// `none`: a public client (PKCE protects the code).
    None,
    /// `private_key_jwt` with the keys in the document.
    Jwks(serde_json::Value),
    /// `private_key_jwt` with the keys at this URL.
    JwksUri(Url),
}

/// A client resolved from its metadata document.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedClient {
    /// The document as the flows use a registered client (never stored).
    pub record: ClientRecord,
    /// Its token-endpoint keys.
    pub keys: ClientKeys,
    /// The host of the `client_id` URL, to show on the consent page.
    pub host: String,
}

#[derive(Clone)]
struct Cached<T> {
    value: Arc<T>,
    expires_at: u64,
}

/// How long a failed resolution of a client document is answered from memory, in seconds.
pub const FAILURE_TTL_SECS: u64 = 30;

/// The fetcher, the policy and the caches of resolved clients and JWK sets.
pub(crate) struct ClientDocuments {
    pub config: ClientMetadataDocuments,
    pub fetcher: Arc<dyn ClientDocumentFetcher>,
    clients: quick_cache::sync::Cache<String, Cached<ResolvedClient>>,
    /// Recent failures to resolve a client document, with the error that was answered.
    failures: quick_cache::sync::Cache<String, Cached<crate::wire::error::OAuthError>>,
    jwks: quick_cache::sync::Cache<String, Cached<serde_json::Value>>,
}

impl ClientDocuments {
    pub fn new(config: ClientMetadataDocuments, fetcher: Arc<dyn ClientDocumentFetcher>) -> Self {
        let capacity = config.cache_capacity.max(1);
        ClientDocuments {
            clients: quick_cache::sync::Cache::new(capacity),
            failures: quick_cache::sync::Cache::new(capacity),
            jwks: quick_cache::sync::Cache::new(capacity),
            config,
            fetcher,
        }
    }

    /// The production setup for `config`: `None` when disabled.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting when the fetcher cannot be built (a certificate that is not PEM).
    #[cfg(feature = "cimd")]
    pub fn from_config(config: &ClientMetadataDocuments) -> Result<Option<Self>, ConfigError> {
        if !config.enabled {
            return Ok(None);
        }
        let fetcher = ReqwestDocumentFetcher::new(config)?;
        Ok(Some(Self::new(config.clone(), Arc::new(fetcher))))
    }

    /// Without the `cimd` feature there is no built-in fetcher: an embedder supplies one with
    /// [`AuthServer::with_client_document_fetcher`](crate::AuthServer::with_client_document_fetcher).
    #[cfg(not(feature = "cimd"))]
    pub fn from_config(_config: &ClientMetadataDocuments) -> Result<Option<Self>, ConfigError> {
        Ok(None)
    }

    /// A cached client that is still fresh at `now`.
    pub fn cached_client(&self, url: &str, now: u64) -> Option<Arc<ResolvedClient>> {
        self.clients
            .get(url)
            .filter(|c| c.expires_at > now)
            .map(|c| c.value)
    }

    pub fn remember_client(&self, url: &str, client: Arc<ResolvedClient>, expires_at: u64) {
        self.clients.insert(
            url.to_owned(),
            Cached {
                value: client,
                expires_at,
            },
        );
    }

    /// The error a recent failure to resolve `url` was answered with, if it is still remembered at `now`.
    pub fn recent_failure(&self, url: &str, now: u64) -> Option<crate::wire::error::OAuthError> {
        self.failures
            .get(url)
            .filter(|c| c.expires_at > now)
            .map(|c| crate::wire::error::OAuthError::clone(&c.value))
    }

    /// Remembers that resolving `url` failed with `error` at `now`.
    pub fn remember_failure(&self, url: &str, error: &crate::wire::error::OAuthError, now: u64) {
        self.failures.insert(
            url.to_owned(),
            Cached {
                value: Arc::new(error.clone()),
                expires_at: now.saturating_add(FAILURE_TTL_SECS),
            },
        );
    }

    pub fn cached_jwks(&self, url: &str, now: u64) -> Option<Arc<serde_json::Value>> {
        self.jwks
            .get(url)
            .filter(|c| c.expires_at > now)
            .map(|c| c.value)
    }

    pub fn remember_jwks(&self, url: &str, jwks: Arc<serde_json::Value>, expires_at: u64) {
        self.jwks.insert(
            url.to_owned(),
            Cached {
                value: jwks,
                expires_at,
            },
        );
    }

    /// How long a document fetched with this `Cache-Control` is reused: `max-age` clamped to the configured
    /// range; the floor for `no-store`, `no-cache` or no directive.
    pub fn lifetime(&self, cache_control: Option<&str>) -> Duration {
        cache_lifetime(cache_control, self.config.cache_min, self.config.cache_max)
    }
}

/// `max-age` of a `Cache-Control` value clamped to `[min, max]`; `min` for `no-store`, `no-cache` or none.
pub(crate) fn cache_lifetime(
    cache_control: Option<&str>,
    min: Duration,
    max: Duration,
) -> Duration {
    let mut max_age = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return min;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<u64>().ok();
        }
    }
    max_age.map_or(min, |s| Duration::from_secs(s).clamp(min, max))
}

/// Whether a `client_id` is a URL, and so names a metadata document rather than a registered client. Registered
/// ids are base64url and never contain `:`, so the two cannot collide.
pub(crate) fn is_url_client_id(client_id: &str) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    lower.starts_with("https:") || lower.starts_with("http:")
}

/// Checks a `client_id` URL against the draft's §3 rules and the deployment's policy, returning it parsed.
///
/// The URL must be https (http on loopback only if allowed), have a path other than `/`, and carry no
/// fragment, userinfo or dot segments; it must also be written in canonical form, since the document's
/// `client_id` is compared with it byte for byte and it keys consent and grants.
pub(crate) fn document_url(
    raw: &str,
    config: &ClientMetadataDocuments,
    what: &str,
) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{what} is not a valid URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if config.allow_http_loopback && is_loopback_host(&url) => {}
        "http" => return Err(format!("{what} must be https")),
        other => return Err(format!("{what} must be https, not `{other}`")),
    }
    if raw.contains('#') {
        return Err(format!("{what} must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} must not contain a user name or password"));
    }
    let path = raw
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .split(['?'])
        .next()
        .unwrap_or_default();
    let path = path.find('/').and_then(|i| path.get(i..)).unwrap_or("");
    let dot = |s: &str| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dot) {
        return Err(format!("{what} must not contain `.` or `..` path segments"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(format!("{what} must have a path (not just `/`)"));
    }
    if url.as_str() != raw {
        return Err(format!(
            "{what} must be written in canonical form (`{}`)",
            url.as_str()
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if !config
        .hosts
        .permits(host.trim_start_matches('[').trim_end_matches(']'))
    {
        return Err(format!(
            "clients hosted at {host} are not accepted by this server"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HostPattern, HostPolicy};

    fn cfg() -> ClientMetadataDocuments {
        ClientMetadataDocuments::enabled()
    }

    #[test]
    fn lifetime_is_max_age_clamped() {
        let (min, max) = (Duration::from_secs(300), Duration::from_secs(86400));
        let l = |h: Option<&str>| cache_lifetime(h, min, max).as_secs();
        assert_eq!(l(None), 300);
        assert_eq!(l(Some("max-age=3600")), 3600);
        assert_eq!(l(Some("public, Max-Age=\"7200\"")), 7200);
        assert_eq!(l(Some("max-age=10")), 300);
        assert_eq!(l(Some("max-age=99999999")), 86400);
        assert_eq!(l(Some("max-age=3600, no-store")), 300);
        assert_eq!(l(Some("no-cache")), 300);
        assert_eq!(l(Some("max-age=abc")), 300);
    }

    #[test]
    fn client_id_urls() {
        let ok = |u: &str| document_url(u, &cfg(), "a client_id URL").map(|u| u.to_string());
        assert_eq!(
            ok("https://claude.ai/oauth/claude-code-client-metadata").unwrap(),
            "https://claude.ai/oauth/claude-code-client-metadata"
        );
        assert!(ok("https://app.example.com:8443/client.json?v=1").is_ok());
        for (bad, why) in [
            ("http://app.example.com/client.json", "must be https"),
            ("https://app.example.com/", "must have a path"),
            ("https://app.example.com", "must have a path"),
            ("https://app.example.com/c#x", "fragment"),
            ("https://u:p@app.example.com/c", "user name"),
            ("https://app.example.com/a/../c", "path segments"),
            ("https://app.example.com/a/%2E%2e/c", "path segments"),
            ("https://app.example.com/./c", "path segments"),
            ("https://APP.example.com/c", "canonical"),
            ("https://app.example.com:443/c", "canonical"),
            ("ftp://app.example.com/c", "must be https"),
        ] {
            let e = ok(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let mut dev = cfg();
        dev.allow_http_loopback = true;
        assert!(document_url("http://127.0.0.1:8000/c.json", &dev, "u").is_ok());
        assert!(document_url("http://app.example.com/c.json", &dev, "u").is_err());
    }

    #[test]
    fn host_policy() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        let mut c = cfg();
        c.hosts = HostPolicy::Allow(vec![p("claude.ai"), p("*.example.com")]);
        assert!(document_url("https://claude.ai/oauth/x", &c, "u").is_ok());
        assert!(document_url("https://a.b.example.com/x", &c, "u").is_ok());
        let e = document_url("https://example.com/x", &c, "u").unwrap_err();
        assert_eq!(
            e,
            "clients hosted at example.com are not accepted by this server"
        );
        assert!(document_url("https://evilclaude.ai/x", &c, "u").is_err());
        c.hosts = HostPolicy::Deny(vec![p("*.evil.test")]);
        assert!(document_url("https://claude.ai/oauth/x", &c, "u").is_ok());
        assert!(document_url("https://x.evil.test/x", &c, "u").is_err());
        assert!(HostPattern::parse("a*.b").is_err());
        assert!(HostPattern::parse("").is_err());
        assert!(HostPattern::parse("*.").is_err());
    }

    #[test]
    fn url_client_ids() {
        assert!(is_url_client_id("https://claude.ai/x"));
        assert!(is_url_client_id("HTTP://x/y"));
        assert!(!is_url_client_id("abcDEF-_123"));
        assert!(!is_url_client_id("ht"));
    }
}
