//! The service's configuration: one TOML file plus environment overrides, validated once at startup.
//!
//! Loading goes in two stages (ripgrep's low → high arguments): a [`RawConfig`] that mirrors the file
//! (`deny_unknown_fields`, strings and options), then [`Config`], where every URL, address, duration, file and
//! backend choice has been checked. Every error names the file and the key, or the environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use oauth_core::{LocalUser, ServerConfig};

/// The validated configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The file it was loaded from, if any.
    pub source: Option<PathBuf>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The engine's configuration (issuer, resources with their policies, lifetimes, registration policy).
    pub server: ServerConfig,
    /// The store backend.
    pub store: StoreConfig,
    /// Local users (from the users file).
    pub users: Vec<LocalUser>,
    /// The forward-auth gate.
    pub gate: GateConfig,
    /// Log output format.
    pub log_format: LogFormat,
}

/// Which store to use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The embedded persistent store in one file.
    Embedded {
        /// The store file.
        path: PathBuf,
    },
    /// In memory only: everything is lost at exit (for tests and demos).
    Memory,
}

/// The gate's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateConfig {
    /// Peers whose `X-Forwarded-*` / `X-Original-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Names of the identity headers set on a 200.
    pub headers: IdentityHeaders,
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

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The configuration used when there is no file: embedded store in `./data`, issuer
    /// `http://127.0.0.1:<port>`, one protected resource `<issuer>/mcp`, no users.
    pub fn defaults(listen: SocketAddr) -> Self {
        let issuer = format!("http://127.0.0.1:{}", listen.port());
        let resource = oauth_core::ResourceConfig::new(format!("{issuer}/mcp"), vec!["mcp".into()]);
        Config {
            source: None,
            listen,
            server: ServerConfig::new(issuer, vec![resource]),
            store: StoreConfig::Embedded {
                path: PathBuf::from("data/oauth.redb"),
            },
            users: Vec::new(),
            gate: GateConfig::default(),
            log_format: LogFormat::Human,
        }
    }
}
