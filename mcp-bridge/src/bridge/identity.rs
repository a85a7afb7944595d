//! Who is calling: the gate's identity headers, believed only from the trusted proxies' addresses.
//!
//! The bridge has no credentials of its own to check; the gate in front has already authenticated the user and
//! set `X-User-Id` (and name, email). Anyone who can reach the bridge directly could set those headers too, so
//! they count only when the TCP peer is one of `--trusted-proxy`; from any other peer their mere presence is
//! refused (403) rather than ignored, so a misrouted deployment fails loudly instead of running every caller as
//! one anonymous user. The gate's `X-Client-Id` and `X-Scopes` count as identity headers for that check, and
//! any of them sent twice is refused (400): only one value can be the gate's.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

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
pub enum Refused {
    /// Identity headers came from an address outside `--trusted-proxy`.
    UntrustedPeer,
    /// An identity header came more than once (which one counts would be a guess: the gate sets one).
    Repeated(HeaderName),
}

/// The gate's headers that are not passed on but still must come only from a trusted proxy.
const OTHER_GATE_HEADERS: [&str; 2] = ["x-client-id", "x-scopes"];

/// Reads the identity headers of a request from `peer`.
///
/// # Errors
/// [`Refused::UntrustedPeer`] when any of the gate's headers (the three identity headers, `X-Client-Id`,
/// `X-Scopes`) came from an address outside `--trusted-proxy`; [`Refused::Repeated`] when one came twice.
pub fn identify(config: &Config, peer: IpAddr, headers: &HeaderMap) -> Result<Identity, Refused> {
    let mut gate_headers = vec![
        config.user_id_header.clone(),
        config.user_name_header.clone(),
        config.user_email_header.clone(),
    ];
    gate_headers.extend(OTHER_GATE_HEADERS.map(HeaderName::from_static));
    let present = gate_headers.iter().any(|name| headers.contains_key(name));
    if present && !is_trusted(config, peer) {
        return Err(Refused::UntrustedPeer);
    }
    if let Some(repeated) = gate_headers
        .iter()
        .find(|name| headers.get_all(*name).iter().nth(1).is_some())
    {
        return Err(Refused::Repeated(repeated.clone()));
    }
    let get = |name| {
        headers
            .get(name)
            .filter(|value: &&HeaderValue| !value.is_empty())
            .cloned()
    };
    Ok(Identity {
        user_id: get(&config.user_id_header),
        user_name: get(&config.user_name_header),
        user_email: get(&config.user_email_header),
    })
}

/// Whether `peer` is one of the trusted proxies (an IPv4 peer seen as `::ffff:a.b.c.d` counts as IPv4).
pub fn is_trusted(config: &Config, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    config.trusted_proxies.iter().any(|net| net.contains(&peer))
}
