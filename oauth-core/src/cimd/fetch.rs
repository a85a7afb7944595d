//! The production [`ClientDocumentFetcher`]: reqwest with every safeguard the module documentation lists.
//!
//! Address checks happen in a reqwest [`Resolve`] implementation: it looks the host up ([`HostLookup`], the
//! system resolver in production, a fixed table in tests), refuses the answer if any address is in a refused
//! range ([`AddressFilter`]), and otherwise hands exactly those addresses to the connector. Because reqwest
//! connects only to what the resolver returned, the address that was checked is the address connected to.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use url::{Host, Url};

use super::{ClientDocumentFetcher, FetchError, FetchedDocument};
use crate::config::{ClientMetadataDocuments, ConfigError, ConfigProblem, is_loopback_host};

/// Looks up the addresses of a host name.
#[async_trait]
pub trait HostLookup: Send + Sync + 'static {
    /// The addresses of `host`.
    ///
    /// # Errors
    /// The resolver's failure.
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The system resolver (through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

#[async_trait]
impl HostLookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// A fixed table of host names and their addresses; names not in it do not resolve. For tests (`client.test`
/// → 127.0.0.1) and for deployments that pin their clients' hosts.
#[derive(Clone, Debug, Default)]
pub struct StaticHosts(HashMap<String, Vec<IpAddr>>);

impl StaticHosts {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `host` → `addrs`.
    #[must_use]
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.0.insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

#[async_trait]
impl HostLookup for StaticHosts {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        self.0
            .get(&host.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host"))
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// IPv4 ranges the standard library has no stable predicate for.
const V4_RANGES: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "\"this network\" (0.0.0.0/8)"),
    (v4(100, 64, 0, 0, 10), "shared (CGNAT, 100.64.0.0/10)"),
    (
        v4(192, 0, 0, 0, 24),
        "IETF protocol assignment (192.0.0.0/24)",
    ),
    (v4(198, 18, 0, 0, 15), "benchmarking (198.18.0.0/15)"),
    (v4(240, 0, 0, 0, 4), "reserved (240.0.0.0/4)"),
];

/// IPv6 ranges the standard library has no stable predicate for.
const V6_RANGES: &[(Ipv6Net, &str)] = &[
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation (2001:db8::/32)",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "site-local (fec0::/10)",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "discard-only (100::/64)",
    ),
];

/// IPv6 prefixes that embed an IPv4 address in their last 32 bits (NAT64) or bits 16–48 (6to4).
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);
const V4_COMPATIBLE: Ipv6Net = v6([0, 0, 0, 0, 0, 0, 0, 0], 96);

fn v4_refusal(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata services live here)")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        V4_RANGES
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, why)| *why)
    }
}

fn v6_refusal(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return v4_refusal(mapped).map(|_| "IPv4-mapped non-public");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if ip.is_unique_local() {
        return Some("private (unique local)");
    }
    if ip.is_unicast_link_local() {
        return Some("link-local");
    }
    let bits = u128::from(ip);
    // The embedded IPv4 address: low 32 bits for NAT64, bits 80..112 for 6to4. Truncation is the point.
    #[allow(clippy::cast_possible_truncation)]
    let embedded = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
    if NAT64.contains(&ip) && v4_refusal(embedded(0)).is_some() {
        return Some("NAT64 of a non-public IPv4");
    }
    if SIX_TO_FOUR.contains(&ip) && v4_refusal(embedded(80)).is_some() {
        return Some("6to4 of a non-public IPv4");
    }
    if V4_COMPATIBLE.contains(&ip) {
        return Some("IPv4-compatible (deprecated)");
    }
    V6_RANGES
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

/// Which addresses may be fetched from: public unicast addresses, plus configured networks; everything (but
/// the unspecified and multicast addresses) in development.
#[derive(Clone, Debug, Default)]
pub struct AddressFilter {
    allow_private: bool,
    allowed: Vec<IpNet>,
}

impl AddressFilter {
    /// A filter refusing non-public addresses except those in `allowed`; `allow_private` lifts the refusal.
    pub fn new(allow_private: bool, allowed: Vec<IpNet>) -> Self {
        AddressFilter {
            allow_private,
            allowed,
        }
    }

    /// `Ok` if `ip` may be connected to, else which kind of address it is.
    ///
    /// # Errors
    /// The range `ip` is in, as words.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.allowed.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let refusal = match ip {
            IpAddr::V4(a) => v4_refusal(a),
            IpAddr::V6(a) => v6_refusal(a),
        };
        match refusal {
            None => Ok(()),
            Some(_) if self.allow_private && !ip.is_unspecified() && !ip.is_multicast() => Ok(()),
            Some(why) => Err(why),
        }
    }
}

/// The resolver error for an address the filter refused (found again in reqwest's error chain).
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {addr} ({reason})")]
struct Refused {
    host: String,
    addr: IpAddr,
    reason: &'static str,
}

/// The resolver error for a name that does not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {reason}")]
struct Unresolved {
    host: String,
    reason: String,
}

/// reqwest's resolver: look up, then refuse the whole answer if any address is refused.
struct FilteringResolver {
    lookup: Arc<dyn HostLookup>,
    filter: AddressFilter,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = Arc::clone(&self.lookup);
        let filter = self.filter.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = lookup.lookup(&host).await.map_err(|e| Unresolved {
                host: host.clone(),
                reason: e.to_string(),
            })?;
            if addrs.is_empty() {
                return Err(Unresolved {
                    host,
                    reason: "no addresses".into(),
                }
                .into());
            }
            for addr in &addrs {
                if let Err(reason) = filter.check(*addr) {
                    return Err(Refused {
                        host,
                        addr: *addr,
                        reason,
                    }
                    .into());
                }
            }
            let out: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(out)
        })
    }
}

/// What the fetcher's HTTP client is built from.
struct ClientSettings {
    timeout: Duration,
    https_only: bool,
    builtin_roots: bool,
    roots: Vec<reqwest::Certificate>,
    resolver: Arc<FilteringResolver>,
}

impl ClientSettings {
    fn build(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .https_only(self.https_only)
            .user_agent(concat!(
                "oauth-core/",
                env!("CARGO_PKG_VERSION"),
                " (client metadata)"
            ))
            .tls_built_in_root_certs(self.builtin_roots)
            .dns_resolver(Arc::clone(&self.resolver));
        for cert in &self.roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder.build()
    }
}

/// Fetches client metadata documents and JWK sets with reqwest, behind the SSRF safeguards.
///
/// The HTTP client is built on the first fetch, not at start: its TLS context loads the system's root
/// certificates, about 3 MB, which a deployment no document client ever visits need not hold.
pub struct ReqwestDocumentFetcher {
    client: std::sync::OnceLock<reqwest::Client>,
    /// What the client is built from.
    settings: ClientSettings,
    filter: AddressFilter,
    allow_http_loopback: bool,
    max_bytes: usize,
    timeout: Duration,
}

impl std::fmt::Debug for ReqwestDocumentFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestDocumentFetcher")
            .field("filter", &self.filter)
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ReqwestDocumentFetcher {
    /// The fetcher for `config`, resolving with the system resolver.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting (`client_metadata.extra_root_certificates[0]`) when an extra root
    /// certificate is not PEM.
    pub fn new(config: &ClientMetadataDocuments) -> Result<Self, ConfigError> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// The fetcher for `config`, resolving host names with `lookup` (the address filter still applies).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_lookup(
        config: &ClientMetadataDocuments,
        lookup: Arc<dyn HostLookup>,
    ) -> Result<Self, ConfigError> {
        let filter = AddressFilter::new(
            config.allow_private_addresses,
            config.allowed_networks.clone(),
        );
        let mut roots = Vec::with_capacity(config.extra_root_certificates.len());
        for (i, pem) in config.extra_root_certificates.iter().enumerate() {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                ConfigError::new(
                    format!("client_metadata.extra_root_certificates[{i}]"),
                    ConfigProblem::NotPem(e.to_string()),
                )
            })?;
            roots.push(cert);
        }
        let settings = ClientSettings {
            timeout: config.timeout,
            https_only: !config.allow_http_loopback,
            builtin_roots: config.builtin_roots,
            roots,
            resolver: Arc::new(FilteringResolver {
                lookup,
                filter: filter.clone(),
            }),
        };
        Ok(ReqwestDocumentFetcher {
            client: std::sync::OnceLock::new(),
            settings,
            filter,
            allow_http_loopback: config.allow_http_loopback,
            max_bytes: config.max_document_bytes,
            timeout: config.timeout,
        })
    }

    /// The HTTP client, built on first use.
    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = self
            .settings
            .build()
            .map_err(|e| FetchError::Connect(format!("cannot build the HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    fn classify(&self, e: &reqwest::Error) -> FetchError {
        if e.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut causes = Vec::new();
        while let Some(s) = source {
            if let Some(r) = s.downcast_ref::<Refused>() {
                return FetchError::AddressRefused {
                    host: r.host.clone(),
                    addr: r.addr,
                    reason: r.reason,
                };
            }
            if let Some(u) = s.downcast_ref::<Unresolved>() {
                return FetchError::Resolve {
                    host: u.host.clone(),
                    reason: u.reason.clone(),
                };
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return FetchError::Timeout(self.timeout);
            }
            causes.push(s.to_string());
            source = s.source();
        }
        causes.dedup();
        FetchError::Connect(causes.join(": "))
    }

    async fn get(&self, url: &Url) -> Result<FetchedDocument, FetchError> {
        let mut res = self
            .client()?
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let status = res.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect {
                status: status.as_u16(),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let content_type = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let json = essence == "application/json"
            || essence
                .strip_prefix("application/")
                .is_some_and(|sub| sub.ends_with("+json"));
        if !json {
            return Err(FetchError::ContentType(content_type));
        }
        if res
            .content_length()
            .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > self.max_bytes))
        {
            return Err(FetchError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let cache_control = res
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| self.classify(&e))? {
            if body.len().saturating_add(chunk.len()) > self.max_bytes {
                return Err(FetchError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchedDocument {
            body,
            cache_control,
        })
    }
}

#[async_trait]
impl ClientDocumentFetcher for ReqwestDocumentFetcher {
    #[tracing::instrument(skip_all, fields(url = %url))]
    async fn fetch(&self, url: &Url) -> Result<FetchedDocument, FetchError> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http_loopback && is_loopback_host(url) => {}
            _ => return Err(FetchError::NotHttps),
        }
        // IP literals never reach the resolver: check them here.
        let literal = match url.host() {
            Some(Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => Some(IpAddr::V6(a)),
            Some(Host::Domain(_)) => None,
            None => return Err(FetchError::Connect("the URL has no host".into())),
        };
        if let Some(addr) = literal
            && let Err(reason) = self.filter.check(addr)
        {
            return Err(FetchError::AddressRefused {
                host: url.host_str().unwrap_or_default().to_owned(),
                addr,
                reason,
            });
        }
        let result = tokio::time::timeout(self.timeout, self.get(url))
            .await
            .unwrap_or(Err(FetchError::Timeout(self.timeout)));
        if let Err(e) = &result {
            tracing::info!(error = %e, "client metadata fetch failed");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> Option<&'static str> {
        AddressFilter::default().check(s.parse().unwrap()).err()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for (addr, why) in [
            ("127.0.0.1", "loopback"),
            ("10.0.0.7", "private"),
            ("172.16.1.1", "private"),
            ("192.168.1.1", "private"),
            (
                "169.254.169.254",
                "link-local (cloud metadata services live here)",
            ),
            ("100.64.0.1", "shared (CGNAT, 100.64.0.0/10)"),
            ("100.100.100.200", "shared (CGNAT, 100.64.0.0/10)"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "\"this network\" (0.0.0.0/8)"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("192.0.2.1", "documentation"),
            ("198.18.0.1", "benchmarking (198.18.0.0/15)"),
            ("240.0.0.1", "reserved (240.0.0.0/4)"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:10.0.0.1", "IPv4-mapped non-public"),
            ("::ffff:127.0.0.1", "IPv4-mapped non-public"),
            ("64:ff9b::a00:1", "NAT64 of a non-public IPv4"),
            ("2002:a00:1::", "6to4 of a non-public IPv4"),
            ("::10.0.0.1", "IPv4-compatible (deprecated)"),
            ("2001:db8::1", "documentation (2001:db8::/32)"),
            ("fec0::1", "site-local (fec0::/10)"),
        ] {
            assert_eq!(refused(addr), Some(why), "{addr}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
        ] {
            assert_eq!(refused(public), None, "{public}");
        }
    }

    #[test]
    fn allowed_networks_and_development() {
        let f = AddressFilter::new(false, vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(f.check("127.0.0.1".parse().unwrap()).is_ok());
        assert_eq!(f.check("127.0.0.2".parse().unwrap()), Err("loopback"));
        let dev = AddressFilter::new(true, Vec::new());
        assert!(dev.check("10.0.0.7".parse().unwrap()).is_ok());
        assert!(dev.check("0.0.0.0".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_an_answer_with_a_refused_address() {
        let lookup = StaticHosts::new()
            .with("client.test", &["127.0.0.1".parse().unwrap()])
            .with(
                "mixed.test",
                &["1.1.1.1".parse().unwrap(), "10.0.0.7".parse().unwrap()],
            );
        let resolver = FilteringResolver {
            lookup: Arc::new(lookup),
            filter: AddressFilter::new(false, vec!["127.0.0.1/32".parse().unwrap()]),
        };
        let ok: Vec<SocketAddr> = resolver
            .resolve("client.test".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(ok, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        let err = resolver
            .resolve("mixed.test".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "mixed.test resolves to 10.0.0.7 (private)");
        let err = resolver
            .resolve("nowhere.test".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "cannot resolve nowhere.test: unknown host");
    }
}
