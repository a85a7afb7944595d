//! `[gate]`: the forward-auth gate (`/verify`): which proxies' `X-Forwarded-*` headers are believed, the identity
//! headers set on a 200, the verified-token cache, and how much of a forwarded request body the gate reads.
//!
//! **The body limit.** Traefik's `forwardBody` sends the gate the guarded request's body, from which per-tool
//! rules read the JSON-RPC call; the gate reads at most `max_body_kib` of it and answers a longer one with 413
//! (for a resource with tool rules), so a body never costs it more memory than that. Traefik's own
//! `maxBodySize` (the snippet sets the same default) stops it buffering more first: beyond it Traefik answers
//! 401 with an empty body by itself, without asking the gate. The default, 4 MiB, is the message size the
//! MCP TypeScript SDK's server accepts.
//!
//! Header names are checked here (a name actix cannot send would fail every request later), and two identity
//! headers may not share a name.

use std::net::IpAddr;

use actix_web::http::header::HeaderName;
use serde::Deserialize;

use super::ConfigError;
use super::source::Ctx;

/// The gate's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateConfig {
    /// Peers whose `X-Forwarded-*` / `X-Original-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Names of the identity headers set on a 200.
    pub headers: IdentityHeaders,
    /// The most of a forwarded request body `/verify` reads, in bytes (`max_body_kib`).
    pub max_body_bytes: usize,
    /// The most `/verify` refusals written to the log, and to the audit trail, in one second; the rest are
    /// counted and reported (`refusals_logged_per_sec`; 0: no limit).
    pub refusals_logged_per_sec: u32,
}

impl GateConfig {
    /// The default of `[gate] max_body_kib`, which the Traefik snippet's `maxBodySize` matches.
    pub const DEFAULT_MAX_BODY_KIB: usize = 4096;
    /// The most `[gate] max_body_kib` accepts (64 MiB): the gate holds up to that much per request in flight.
    pub const MAX_MAX_BODY_KIB: usize = 65_536;
    /// The default of `[gate] refusals_logged_per_sec`.
    pub const DEFAULT_REFUSALS_LOGGED_PER_SEC: u32 = 100;
}

impl Default for GateConfig {
    fn default() -> Self {
        let nets = [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ];
        GateConfig {
            trusted_proxies: nets.iter().filter_map(|n| n.parse().ok()).collect(),
            headers: IdentityHeaders::default(),
            max_body_bytes: GateConfig::DEFAULT_MAX_BODY_KIB * 1024,
            refusals_logged_per_sec: GateConfig::DEFAULT_REFUSALS_LOGGED_PER_SEC,
        }
    }
}

/// Names of the identity headers `/verify` sets on success (empty string: not sent).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityHeaders {
    /// The subject (`sub`).
    pub user_id: String,
    /// The login name.
    pub user_name: String,
    /// The e-mail address.
    pub user_email: String,
    /// The client id.
    pub client_id: String,
    /// The granted scopes, space-separated.
    pub scopes: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        IdentityHeaders {
            user_id: "X-User-Id".into(),
            user_name: "X-User-Name".into(),
            user_email: "X-User-Email".into(),
            client_id: "X-Client-Id".into(),
            scopes: "X-Scopes".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGate {
    trusted_proxies: Option<Vec<String>>,
    pub(super) verify_cache_mib: Option<u64>,
    max_body_kib: Option<usize>,
    refusals_logged_per_sec: Option<u32>,
    #[serde(default)]
    headers: RawHeaders,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaders {
    user_id: Option<String>,
    user_name: Option<String>,
    user_email: Option<String>,
    client_id: Option<String>,
    scopes: Option<String>,
}

/// IP addresses (a bare IP means /32 or /128) or CIDR ranges, each error naming `key[i]`.
pub(super) fn networks(
    ctx: &Ctx<'_>,
    key: &str,
    list: &[String],
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let mut nets = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let net = if s.contains('/') {
            s.parse::<ipnet::IpNet>().map_err(|e| e.to_string())
        } else {
            s.parse::<IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|e| e.to_string())
        };
        nets.push(net.map_err(|e| {
            ctx.invalid(
                format!("{key}[{i}]"),
                format!("not an IP address or CIDR range: {s:?} ({e})"),
            )
        })?);
    }
    Ok(nets)
}

/// The most `gate.verify_cache_mib` accepts: 4 GiB holds about 27 million typical tokens, more than any gate
/// sees live at once; a larger value is more likely bytes written into a key counted in MiB.
const MAX_VERIFY_CACHE_MIB: u64 = 4096;

/// `gate.verify_cache_mib` in bytes, for `ServerConfig::verify_cache_bytes`.
pub(super) fn verify_cache_bytes(ctx: &Ctx<'_>, mib: u64) -> Result<u64, ConfigError> {
    if !(1..=MAX_VERIFY_CACHE_MIB).contains(&mib) {
        return Err(ctx.invalid(
            "gate.verify_cache_mib",
            format!(
                "must be between 1 and {MAX_VERIFY_CACHE_MIB} (MiB; the default, 32, holds about 208,000 tokens), not {mib}"
            ),
        ));
    }
    Ok(mib * 1024 * 1024)
}

pub(super) fn gate_config(ctx: &Ctx<'_>, raw: RawGate) -> Result<GateConfig, ConfigError> {
    let mut gate = GateConfig::default();
    if let Some(list) = raw.trusted_proxies {
        gate.trusted_proxies = networks(ctx, "gate.trusted_proxies", &list)?;
    }
    if let Some(kib) = raw.max_body_kib {
        if !(1..=GateConfig::MAX_MAX_BODY_KIB).contains(&kib) {
            return Err(ctx.invalid(
                "gate.max_body_kib",
                format!(
                    "must be between 1 and {} (KiB; the default is {}), not {kib}",
                    GateConfig::MAX_MAX_BODY_KIB,
                    GateConfig::DEFAULT_MAX_BODY_KIB
                ),
            ));
        }
        gate.max_body_bytes = kib * 1024;
    }
    if let Some(n) = raw.refusals_logged_per_sec {
        gate.refusals_logged_per_sec = n;
    }
    let h = raw.headers;
    let slots = [
        ("user_id", h.user_id, &mut gate.headers.user_id),
        ("user_name", h.user_name, &mut gate.headers.user_name),
        ("user_email", h.user_email, &mut gate.headers.user_email),
        ("client_id", h.client_id, &mut gate.headers.client_id),
        ("scopes", h.scopes, &mut gate.headers.scopes),
    ];
    for (key, value, slot) in slots {
        if let Some(v) = value {
            if !v.is_empty() {
                HeaderName::from_bytes(v.as_bytes()).map_err(|e| {
                    ctx.invalid(
                        format!("gate.headers.{key}"),
                        format!("not a header name: {v:?} ({e})"),
                    )
                })?;
            }
            *slot = v;
        }
    }
    let h = &gate.headers;
    let names = [
        ("user_id", &h.user_id),
        ("user_name", &h.user_name),
        ("user_email", &h.user_email),
        ("client_id", &h.client_id),
        ("scopes", &h.scopes),
    ];
    for (i, (key, name)) in names.iter().enumerate() {
        let earlier = names
            .iter()
            .take(i)
            .find(|(_, n)| !n.is_empty() && n.eq_ignore_ascii_case(name));
        if let Some((other, _)) = earlier {
            return Err(ctx.invalid(
                format!("gate.headers.{key}"),
                format!("{name:?} is also gate.headers.{other}"),
            ));
        }
    }
    Ok(gate)
}
