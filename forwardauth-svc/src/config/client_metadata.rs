//! `[client_metadata]`: Client ID Metadata Documents, clients whose `client_id` is an https URL. Enabled by
//! default, because the MCP specification says an authorization server SHOULD support them.
//!
//! Extra CA certificates are read here, at startup, so that an unreadable file is a configuration error and not
//! a failed login later.

use std::path::PathBuf;
use std::time::Duration;

use oauth_core::{ClientMetadataDocuments, HostPattern, HostPolicy};
use serde::Deserialize;

use super::ConfigError;
use super::gate::networks;
use super::source::{Ctx, GREATER_THAN_ZERO};

/// `[client_metadata]`: Client ID Metadata Documents (URL `client_id`s).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientMetadata {
    enabled: Option<bool>,
    allowed_hosts: Option<Vec<String>>,
    denied_hosts: Option<Vec<String>>,
    allow_private_addresses: Option<bool>,
    allowed_networks: Option<Vec<String>>,
    allow_http_loopback: Option<bool>,
    timeout_ms: Option<u64>,
    max_document_bytes: Option<usize>,
    cache_min_secs: Option<u64>,
    cache_max_secs: Option<u64>,
    cache_capacity: Option<usize>,
    ca_certificates: Option<Vec<PathBuf>>,
    builtin_roots: Option<bool>,
}

/// A `[client_metadata]` duration or size, refused when zero.
fn positive<T: PartialOrd + From<u8>>(
    ctx: &Ctx<'_>,
    key: &str,
    value: Option<T>,
) -> Result<Option<T>, ConfigError> {
    ctx.nonzero(format!("client_metadata.{key}"), value, GREATER_THAN_ZERO)
}

/// `[client_metadata]`: enabled by default (the MCP specification says an authorization server SHOULD support
/// Client ID Metadata Documents), any host, public addresses only.
pub(super) fn client_metadata(
    ctx: &Ctx<'_>,
    raw: RawClientMetadata,
) -> Result<ClientMetadataDocuments, ConfigError> {
    let mut c = ClientMetadataDocuments::enabled();
    if let Some(e) = raw.enabled {
        c.enabled = e;
    }
    let patterns = |key: &str, list: Vec<String>| {
        list.iter()
            .enumerate()
            .map(|(i, p)| {
                HostPattern::parse(p)
                    .map_err(|problem| ctx.invalid(format!("{key}[{i}]"), problem.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    c.hosts = match (raw.allowed_hosts, raw.denied_hosts) {
        (Some(_), Some(_)) => {
            return Err(ctx.invalid(
                "client_metadata.denied_hosts",
                "set allowed_hosts or denied_hosts, not both",
            ));
        }
        (Some(list), None) => {
            if list.is_empty() {
                return Err(ctx.invalid(
                    "client_metadata.allowed_hosts",
                    "an empty list would refuse every client; set enabled = false instead",
                ));
            }
            HostPolicy::Allow(patterns("client_metadata.allowed_hosts", list)?)
        }
        (None, Some(list)) => HostPolicy::Deny(patterns("client_metadata.denied_hosts", list)?),
        (None, None) => HostPolicy::Any,
    };
    if let Some(v) = raw.allow_private_addresses {
        c.allow_private_addresses = v;
    }
    if let Some(list) = raw.allowed_networks {
        c.allowed_networks = networks(ctx, "client_metadata.allowed_networks", &list)?;
    }
    if let Some(v) = raw.allow_http_loopback {
        c.allow_http_loopback = v;
    }
    if let Some(ms) = positive(ctx, "timeout_ms", raw.timeout_ms)? {
        c.timeout = Duration::from_millis(ms);
    }
    if let Some(n) = positive(ctx, "max_document_bytes", raw.max_document_bytes)? {
        c.max_document_bytes = n;
    }
    if let Some(n) = positive(ctx, "cache_capacity", raw.cache_capacity)? {
        c.cache_capacity = n;
    }
    if let Some(s) = raw.cache_min_secs {
        c.cache_min = Duration::from_secs(s);
    }
    if let Some(s) = raw.cache_max_secs {
        c.cache_max = Duration::from_secs(s);
    }
    if c.cache_min > c.cache_max {
        return Err(ctx.invalid(
            "client_metadata.cache_min_secs",
            format!(
                "{} s is more than cache_max_secs ({} s)",
                c.cache_min.as_secs(),
                c.cache_max.as_secs()
            ),
        ));
    }
    for (i, path) in raw.ca_certificates.unwrap_or_default().iter().enumerate() {
        let key = format!("client_metadata.ca_certificates[{i}]");
        let path = ctx.base.join(path);
        let pem = std::fs::read(&path)
            .map_err(|e| ctx.invalid(&key, format!("cannot read {}: {e}", path.display())))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ctx.invalid(&key, format!("{} holds no PEM certificate", path.display())));
        }
        c.extra_root_certificates.push(pem);
    }
    if let Some(b) = raw.builtin_roots {
        c.builtin_roots = b;
    }
    if !c.builtin_roots && c.extra_root_certificates.is_empty() {
        return Err(ctx.invalid(
            "client_metadata.builtin_roots",
            "false needs at least one ca_certificates entry (nothing would be trusted)",
        ));
    }
    Ok(c)
}
