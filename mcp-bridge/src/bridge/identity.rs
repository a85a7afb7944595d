//! Who is calling: the gate's identity headers, believed only from the trusted proxies' addresses.
//!
//! The bridge has no credentials of its own to check; the gate in front has already authenticated the user and
//! set `X-User-Id` (and name, email). Anyone who can reach the bridge directly could set those headers too, so
//! they count only when the TCP peer is one of `--trusted-proxy`; from any other peer their mere presence is
//! refused (403) rather than ignored, so a misrouted deployment fails loudly instead of running every caller as
//! one anonymous user.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue};

use super::config::Config;

/// The identity headers of one request, as the gate sent them (raw bytes: they reach children as-is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Option<HeaderValue>,
    pub user_name: Option<HeaderValue>,
    pub user_email: Option<HeaderValue>,
}

impl Identity {
    /// The user id for logs (lossy: ids are ASCII in practice), `-` without one.
    pub fn user_for_log(&self) -> String {
        self.user_id.as_ref().map_or_else(
            || "-".to_owned(),
            |id| String::from_utf8_lossy(id.as_bytes()).into_owned(),
        )
    }
}

/// Why identity headers were not believed.
#[derive(Debug, PartialEq, Eq)]
pub struct UntrustedPeer;

/// Reads the identity headers of a request from `peer`.
///
/// # Errors
/// [`UntrustedPeer`] when any identity header came from an address outside `--trusted-proxy`.
pub fn identify(
    config: &Config,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Result<Identity, UntrustedPeer> {
    let get = |name| {
        headers
            .get(name)
            .filter(|value: &&HeaderValue| !value.is_empty())
            .cloned()
    };
    let identity = Identity {
        user_id: get(&config.user_id_header),
        user_name: get(&config.user_name_header),
        user_email: get(&config.user_email_header),
    };
    let present = [
        &config.user_id_header,
        &config.user_name_header,
        &config.user_email_header,
    ]
    .iter()
    .any(|name| headers.contains_key(*name));
    if present && !is_trusted(config, peer) {
        return Err(UntrustedPeer);
    }
    Ok(identity)
}

/// Whether `peer` is one of the trusted proxies (an IPv4 peer seen as `::ffff:a.b.c.d` counts as IPv4).
pub fn is_trusted(config: &Config, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    config.trusted_proxies.iter().any(|net| net.contains(&peer))
}
