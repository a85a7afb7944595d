//! The service's configuration: one TOML file plus environment overrides, validated once at startup.
//!
//! Loading goes in two stages (ripgrep's low → high arguments): a [`RawConfig`] that mirrors the file
//! (`deny_unknown_fields` on every table, strings and options), then [`Config`], where every URL, address,
//! duration, file and backend choice has been checked. Every error names the file and the key path
//! (`config.toml: resources[0].resource: not a URL: …`), or the environment variable
//! (`FORWARDAUTH_LISTEN: not a socket address: …`), or the users file. The process environment is never read
//! here: [`load`] takes a lookup function, so tests stay hermetic and `main` passes `std::env::var`.
//!
//! # The file
//!
//! Every key is optional except that a file must list at least one `[[resources]]`. Relative paths
//! (`store.path`, `users.file`) are resolved against the directory of the configuration file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"           # socket address to bind
//! issuer = "https://auth.example.com" # default http://127.0.0.1:<listen port>; https, or http on loopback;
//!                                     # an origin: no path, trailing slash, query or fragment
//! log_format = "json"                 # "human" (default) or "json"
//! scopes = ["mcp", "mcp:admin"]       # every scope the server knows; default: union of the resources' scopes
//! default_scopes = ["mcp"]            # granted when a client asks for none; default: union of the resources' scopes
//!
//! [store]
//! backend = "embedded"                # "embedded" (default, one file), "memory" (lost at exit) or "redis"
//! path = "data/oauth.redb"            # embedded only; default "data/oauth.redb"
//! cache_mib = 16                      # embedded only: the page cache's bound in MiB (1 to 65536); default 16
//! # With backend = "redis", several instances share one Redis (7.0 or newer; README "Several instances"),
//! # and instead of `path`:
//! # url = "rediss://:password@redis.internal:6380/0" # redis:// or rediss:// (TLS); user, password, db number
//! # key_prefix = "forwardauth"        # default "forwardauth"; every key starts with it
//! # pool_size = 16                    # pooled connections per instance; default 16
//! # timeout_ms = 2000                 # bound on every Redis operation; default 2000
//!
//! [tokens]                            # lifetimes in seconds; the values shown are the defaults
//! access_token_ttl_secs = 3600
//! refresh_token_ttl_secs = 2592000
//! code_ttl_secs = 60
//! refresh_grace_secs = 30             # 0 disables the retry window after a refresh rotation
//! session_ttl_secs = 43200
//! consent_ttl_secs = 7776000
//! signing_alg = "ES256"               # "ES256" (default), "RS256" or "EdDSA"
//!
//! [registration]                      # dynamic client registration (RFC 7591)
//! initial_access_tokens = ["change-me-to-a-long-random-string"] # if set, POST /register needs one (only hashes are kept)
//! allowed_schemes = ["cursor", "vscode"]  # private-use redirect URI schemes (RFC 8252 §7.1)
//! max_redirect_uris = 10
//! downgrade_secret_to_none = false    # register clients asking for a secret as public clients instead
//! max_clients = 10000                 # registrations beyond this many clients are refused (503); 0 = no cap
//! never_used_client_ttl_secs = 86400  # delete a client that redeemed no code this long after registering; 0 = keep
//! idle_client_ttl_secs = 7776000      # delete a client (and its grants) unused this long; 0 = keep
//!
//! [[resources]]                       # one per protected MCP server (RFC 8707 / RFC 9728)
//! resource = "https://mcp.example.com/mcp"
//! name = "Example MCP server"
//! scopes = ["mcp", "mcp:admin"]       # scopes the resource understands
//! required_scopes = ["mcp"]           # scopes /verify requires for every request
//! allowed_users = ["alice"]           # access policy: a user passes if any one list matches;
//! allowed_emails = ["bob@example.com"]  # all lists empty = everyone who can log in
//! allowed_email_domains = ["example.com"]
//! allowed_groups = ["admins"]
//! allowed_origins = ["http://localhost:6274"] # browser origins besides the resource's own; a request with any
//!                                     # other Origin header is refused (403), and no Origin passes
//!
//! [resources.tool_scopes]             # extra scopes per MCP method, or method and tool name
//! "tools/call:delete_repo" = ["mcp:admin"]
//!
//! [client_metadata]                  # Client ID Metadata Documents: clients whose client_id is an https URL
//! enabled = true                      # default true; the document at the URL is the client's registration
//! allowed_hosts = ["claude.ai", "*.example.com"] # only these hosts (exact, or `*.` for every subdomain);
//! # denied_hosts = ["evil.example"]   # or: every host but these; neither: any host
//! allow_private_addresses = false     # development only: fetch from loopback/private/link-local addresses
//! allowed_networks = ["10.20.0.0/16"] # addresses fetched although private (a bare IP means /32 or /128)
//! allow_http_loopback = false         # development only: http:// client ids on 127.0.0.1, [::1], localhost
//! timeout_ms = 3000                   # bound on one whole fetch
//! max_document_bytes = 5120           # larger documents are refused
//! cache_min_secs = 300                # documents are reused for their max-age, clamped to this range
//! cache_max_secs = 86400
//! ca_certificates = []                # extra trusted CAs (PEM files, relative to this file)
//! builtin_roots = true                # false: trust only ca_certificates
//!
//! [login]                             # password checks at once, failed-login bans: see `config::limits`
//! [rate_limits]                       # requests per minute per client address: see `config::limits`
//!
//! [users]
//! file = "users.toml"                 # local users; see below
//!
//! [gate]
//! trusted_proxies = ["127.0.0.1", "10.0.0.0/8"] # peers whose X-Forwarded-* headers are believed;
//!                                     # a bare IP means /32 or /128; default: loopback and private ranges
//! verify_cache_mib = 32               # memory for verified tokens, in MiB (1 to 4096; default 32): about
//!                                     # 6,500 typical tokens per MiB; one not held pays a signature check
//! [gate.headers]                      # identity headers set on a 200 from /verify; "" = do not send
//! user_id = "X-User-Id"
//! user_name = "X-User-Name"
//! user_email = "X-User-Email"
//! client_id = "X-Client-Id"
//! scopes = "X-Scopes"
//! ```
//!
//! The users file holds `[[users]]` tables; make a hash with `forwardauth-svc hash-password`:
//!
//! ```toml
//! [[users]]
//! username = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! email = "alice@example.com"         # optional
//! name = "Alice"                      # optional
//! groups = ["admins"]                 # optional
//! ```
//!
//! # Environment overrides
//!
//! Each wins over the file; an empty value counts as unset. Relative paths in variables resolve against the
//! working directory.
//!
//! | variable | overrides |
//! |---|---|
//! | `FORWARDAUTH_LISTEN` | `listen` |
//! | `FORWARDAUTH_ISSUER` | `issuer` |
//! | `FORWARDAUTH_STORE_BACKEND` | `store.backend` |
//! | `FORWARDAUTH_STORE_PATH` | `store.path` |
//! | `FORWARDAUTH_REDIS_URL` | `store.url` (keeps a password out of the file) |
//! | `FORWARDAUTH_LOG_FORMAT` | `log_format` |
//! | `FORWARDAUTH_USERS_FILE` | `users.file` |
//! | `FORWARDAUTH_INITIAL_ACCESS_TOKEN` | `registration.initial_access_tokens` (one token) |
//!
//! # Without a file
//!
//! [`load`] with no path gives [`Config::defaults`] (listen `127.0.0.1:8080`, embedded store in
//! `data/oauth.redb`, one resource `<issuer>/mcp`, no users) with the environment overrides applied.

mod limits;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::header::HeaderName;
use oauth_core::{
    AccessPolicy, ClientMetadataDocuments, HostPattern, HostPolicy, LocalUser, LocalUsers,
    ResourceConfig, Secret, ServerConfig, SigningAlg, ToolScope,
};
use serde::Deserialize;

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
    /// Upstream identity providers, in the order the chooser shows them.
    pub providers: Vec<ProviderConfig>,
    /// The forward-auth gate.
    pub gate: GateConfig,
    /// Log output format.
    pub log_format: LogFormat,
    /// How many password checks run and wait at once.
    pub password_checks: oauth_core::upstream::password::PasswordCheckLimits,
}

/// An upstream identity provider.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProviderConfig {
    /// Any OpenID Connect provider.
    Oidc(oauth_core::upstream::OidcConfig),
    /// GitHub or GitHub Enterprise Server.
    Github(oauth_core::upstream::GithubConfig),
}

impl ProviderConfig {
    /// The provider's id.
    pub fn id(&self) -> &str {
        match self {
            ProviderConfig::Oidc(c) => &c.id,
            ProviderConfig::Github(c) => &c.id,
        }
    }
}

/// Which store to use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The embedded persistent store in one file.
    Embedded {
        /// The store file.
        path: PathBuf,
        /// The bound of the store's page cache, in bytes.
        cache_bytes: usize,
    },
    /// In memory only: everything is lost at exit (for tests and demos).
    Memory,
    /// Redis, shared by several instances.
    Redis(RedisStoreConfig),
}

/// How to reach the shared Redis store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreConfig {
    /// `redis://` or `rediss://` URL; may carry a password, so its `Debug` is redacted.
    pub url: RedisUrl,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Pooled connections per instance.
    pub pool_size: usize,
    /// Bound on every Redis operation.
    pub timeout: Duration,
}

/// A Redis URL, which may contain a password: `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub String);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&oauth_core::store::redact_url(&self.0))
    }
}

/// How old the revocation state of an instance on Redis may get before `/verify` fails closed.
pub const REDIS_REVOCATION_MAX_STALENESS: Duration = Duration::from_secs(3);
/// How long after a rotation on Redis the new key starts signing (instances reload keys at least every 10 s).
pub const REDIS_KEY_ACTIVATION_DELAY: Duration = Duration::from_secs(30);

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
                cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
            },
            users: Vec::new(),
            providers: Vec::new(),
            gate: GateConfig::default(),
            log_format: LogFormat::Human,
            password_checks: oauth_core::upstream::password::PasswordCheckLimits::default(),
        }
    }
}

/// Where to listen when neither the file nor `FORWARDAUTH_LISTEN` says.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// Environment variable overriding `listen`.
pub const ENV_LISTEN: &str = "FORWARDAUTH_LISTEN";
/// Environment variable overriding `issuer`.
pub const ENV_ISSUER: &str = "FORWARDAUTH_ISSUER";
/// The largest `store.cache_mib`: 64 GiB.
const MAX_CACHE_MIB: u64 = 65_536;

/// Environment variable overriding `store.path`.
pub const ENV_STORE_PATH: &str = "FORWARDAUTH_STORE_PATH";
/// Environment variable overriding `store.backend`.
pub const ENV_STORE_BACKEND: &str = "FORWARDAUTH_STORE_BACKEND";
/// Overrides `store.url`.
pub const ENV_REDIS_URL: &str = "FORWARDAUTH_REDIS_URL";
/// Environment variable overriding `log_format`.
pub const ENV_LOG_FORMAT: &str = "FORWARDAUTH_LOG_FORMAT";
/// Environment variable overriding `users.file`.
pub const ENV_USERS_FILE: &str = "FORWARDAUTH_USERS_FILE";
/// Environment variable overriding `registration.initial_access_tokens` with one token.
pub const ENV_INITIAL_ACCESS_TOKEN: &str = "FORWARDAUTH_INITIAL_ACCESS_TOKEN";

/// Why the configuration was refused. Every message says where the bad value came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file (the configuration or the users file) could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        reason: String,
    },
    /// A file is not valid TOML or does not fit the schema (unknown key, wrong type, missing key). `key` is the
    /// key path, or the line and column of a syntax error.
    #[error("{file}: {key}: {reason}")]
    Parse {
        /// The file.
        file: String,
        /// The key path (`resources[0].resource`) or `line L, column C`.
        key: String,
        /// The parser's message.
        reason: String,
    },
    /// A value in a file is well-formed but not acceptable.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The key path.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An environment variable's value is not acceptable.
    #[error("{var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The users file is inconsistent (a bad hash, a duplicate user).
    #[error("{file}: {reason}")]
    Users {
        /// The users file.
        file: String,
        /// What is wrong; names the user.
        reason: String,
    },
    /// The engine refused the assembled configuration (`ServerConfig::validate`); the reason names the key.
    #[error("{file}: {reason}")]
    Server {
        /// The configuration file, or `configuration` without one.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// A secret read from the file: `Debug` never shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
struct SecretString(String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The configuration file as written: the first stage, before any value is checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    listen: Option<String>,
    issuer: Option<String>,
    log_format: Option<String>,
    scopes: Option<Vec<String>>,
    default_scopes: Option<Vec<String>>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    registration: RawRegistration,
    #[serde(default)]
    resources: Vec<RawResource>,
    #[serde(default)]
    users: RawUsers,
    #[serde(default)]
    gate: RawGate,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    client_metadata: RawClientMetadata,
    #[serde(default)]
    login: limits::RawLogin,
    #[serde(default)]
    rate_limits: limits::RawRateLimits,
}

/// `[client_metadata]`: Client ID Metadata Documents (URL `client_id`s).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientMetadata {
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

/// Who may use anything at all (the same keys as on a resource).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_emails: Vec<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    allowed_github_orgs: Vec<String>,
    #[serde(default)]
    allowed_github_teams: Vec<String>,
}

/// An upstream identity provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    display_name: Option<String>,
    client_id: String,
    client_secret: Option<SecretString>,
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    timeout_secs: Option<u64>,
    // OpenID Connect
    issuer: Option<String>,
    #[serde(default)]
    claims: RawClaims,
    require_verified_email: Option<bool>,
    // GitHub
    web_base_url: Option<String>,
    api_base_url: Option<String>,
    fetch_orgs: Option<bool>,
    fetch_teams: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaims {
    user_id: Option<String>,
    username: Option<String>,
    email: Option<String>,
    name: Option<String>,
    groups: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    backend: Option<String>,
    path: Option<PathBuf>,
    url: Option<SecretString>,
    key_prefix: Option<String>,
    pool_size: Option<usize>,
    timeout_ms: Option<u64>,
    cache_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    code_ttl_secs: Option<u64>,
    refresh_grace_secs: Option<u64>,
    session_ttl_secs: Option<u64>,
    consent_ttl_secs: Option<u64>,
    signing_alg: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistration {
    initial_access_tokens: Option<Vec<SecretString>>,
    allowed_schemes: Option<Vec<String>>,
    max_redirect_uris: Option<usize>,
    downgrade_secret_to_none: Option<bool>,
    max_clients: Option<usize>,
    never_used_client_ttl_secs: Option<u64>,
    idle_client_ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    resource: String,
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    required_scopes: Vec<String>,
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_emails: Vec<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    allowed_github_orgs: Vec<String>,
    #[serde(default)]
    allowed_github_teams: Vec<String>,
    #[serde(default)]
    tool_scopes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    allowed_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    trusted_proxies: Option<Vec<String>>,
    verify_cache_mib: Option<u64>,
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

/// The users file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsersFile {
    #[serde(default)]
    users: Vec<RawUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: String,
    password_hash: String,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// Loads the configuration: the file at `path` (none: the built-in defaults), then the `FORWARDAUTH_*`
/// overrides looked up through `env`, then validation.
///
/// # Errors
/// [`ConfigError`] naming the file and key, the variable, or the users file.
pub fn load(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                file: p.display().to_string(),
                reason: e.to_string(),
            })?;
            RawConfig::from_toml(&text, p)?
        }
        None => RawConfig::default(),
    };
    raw.into_config(path, env)
}

/// Deserializes TOML text into `T`, naming the key path of the first mismatch.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let key = match (key.as_str(), inner.span()) {
            (".", Some(span)) => line_column(text, span.start),
            (".", None) => "(top level)".to_owned(),
            _ => key,
        };
        let reason = inner.message().trim_end().replace('\n', "; ");
        ConfigError::Parse {
            file: file.display().to_string(),
            key,
            reason,
        }
    })
}

/// `line L, column C` (both from 1) of a byte offset.
fn line_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// Where a value came from, for error messages.
enum Origin<'a> {
    /// A key of the configuration file.
    File(&'a str),
    /// An environment variable.
    Env(&'static str),
}

/// What the second stage needs besides the raw values.
struct Ctx<'a> {
    /// The file's name as given, for messages.
    file: String,
    /// The directory relative paths in the file resolve against.
    base: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn at(&self, origin: &Origin<'_>, reason: String) -> ConfigError {
        match origin {
            Origin::File(key) => self.invalid(*key, reason),
            Origin::Env(var) => ConfigError::Env { var, reason },
        }
    }

    /// A variable's value; empty counts as unset.
    fn var(&self, var: &str) -> Option<String> {
        (self.env)(var).filter(|v| !v.is_empty())
    }

    /// The environment value if set, else the file's value, each parsed with errors naming its origin.
    fn setting<T>(
        &self,
        var: &'static str,
        key: &'static str,
        file_value: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        if let Some(v) = self.var(var) {
            return parse(&v)
                .map(Some)
                .map_err(|reason| ConfigError::Env { var, reason });
        }
        file_value
            .map(|v| parse(v).map_err(|reason| self.invalid(key, reason)))
            .transpose()
    }
}

impl RawConfig {
    /// Parses the text of a configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] naming `file` and the key path (or line and column).
    pub fn from_toml(text: &str, file: &Path) -> Result<Self, ConfigError> {
        parse_toml(text, file)
    }

    /// The second stage: applies the environment overrides and checks every value. `source` is the file this was
    /// read from (relative paths resolve against its directory), or `None` for the built-in defaults.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and key, the variable, or the users file.
    pub fn into_config(
        self,
        source: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let ctx = Ctx {
            file: source.map_or_else(|| "configuration".to_owned(), |p| p.display().to_string()),
            base: source
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            env,
        };
        let listen = ctx
            .setting(ENV_LISTEN, "listen", self.listen.as_deref(), parse_listen)?
            .unwrap_or(DEFAULT_LISTEN);
        let mut config = Config::defaults(listen);
        config.source = source.map(Path::to_path_buf);

        let issuer_origin = if ctx.var(ENV_ISSUER).is_some() {
            Origin::Env(ENV_ISSUER)
        } else {
            Origin::File("issuer")
        };
        let issuer = ctx
            .setting(ENV_ISSUER, "issuer", self.issuer.as_deref(), |v| {
                Ok(v.to_owned())
            })?
            .unwrap_or_else(|| config.server.issuer.clone());
        check_issuer(&issuer).map_err(|reason| ctx.at(&issuer_origin, reason))?;

        if let Some(f) = ctx.setting(
            ENV_LOG_FORMAT,
            "log_format",
            self.log_format.as_deref(),
            parse_log_format,
        )? {
            config.log_format = f;
        }
        config.store = store_config(&ctx, self.store)?;

        let resources = if self.resources.is_empty() {
            if source.is_some() {
                return Err(
                    ctx.invalid("resources", "at least one [[resources]] table is required")
                );
            }
            vec![ResourceConfig::new(
                format!("{issuer}/mcp"),
                vec!["mcp".into()],
            )]
        } else {
            resources(&ctx, self.resources)?
        };
        let mut server = ServerConfig::new(issuer, resources);
        if let Some(scopes) = self.scopes {
            check_scopes(&ctx, "scopes", &scopes)?;
            server.scopes_supported = scopes;
        }
        if let Some(scopes) = self.default_scopes {
            check_scopes(&ctx, "default_scopes", &scopes)?;
            server.default_scopes = scopes;
        }
        apply_tokens(&ctx, self.tokens, &mut server)?;
        apply_registration(&ctx, self.registration, &mut server)?;
        server.client_metadata = client_metadata(&ctx, self.client_metadata)?;
        let (password_checks, regulation) = limits::login(&ctx, self.login)?;
        config.password_checks = password_checks;
        server.regulation = regulation;
        server.rate_limits = limits::rate_limits(&ctx, self.rate_limits)?;
        if let Some(mib) = self.gate.verify_cache_mib {
            server.verify_cache_bytes = verify_cache_bytes(&ctx, mib)?;
        }
        if matches!(config.store, StoreConfig::Redis(_)) {
            server.revocation_max_staleness = Some(REDIS_REVOCATION_MAX_STALENESS);
            server.key_activation_delay = REDIS_KEY_ACTIVATION_DELAY;
        }
        server.validate().map_err(|reason| ConfigError::Server {
            file: ctx.file.clone(),
            reason,
        })?;
        config.server = server;

        config.server.policy = access_policy(&ctx, "policy.", self.policy)?;
        config.providers = providers(&ctx, self.providers)?;
        config.users = users(&ctx, self.users)?;
        config.gate = gate_config(&ctx, self.gate)?;
        Ok(config)
    }
}

fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|e| format!("not a socket address: {e} (expected IP:port, e.g. 127.0.0.1:8080)"))
}

/// Parses `human` or `json`.
///
/// # Errors
/// A message listing the accepted values.
pub fn parse_log_format(v: &str) -> Result<LogFormat, String> {
    match v {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("expected \"human\" or \"json\", not {other:?}")),
    }
}

/// The issuer rules of `ServerConfig::validate` (RFC 8414 §2), checked here so the message names the origin.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let u = url::Url::parse(issuer).map_err(|e| format!("not a URL: {e}"))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
        return Err("must be https (http only on a loopback host)".into());
    }
    if issuer.ends_with('/') || u.query().is_some() || u.fragment().is_some() {
        return Err("must not end with `/` nor carry a query or fragment".into());
    }
    if u.path() != "/" {
        return Err("must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root".into());
    }
    Ok(())
}

fn store_config(ctx: &Ctx<'_>, raw: RawStore) -> Result<StoreConfig, ConfigError> {
    let backend = ctx
        .setting(
            ENV_STORE_BACKEND,
            "store.backend",
            raw.backend.as_deref(),
            |v| match v {
                "embedded" | "memory" | "redis" => Ok(v.to_owned()),
                other => Err(format!(
                    "expected \"embedded\", \"memory\" or \"redis\", not {other:?}"
                )),
            },
        )?
        .unwrap_or_else(|| "embedded".to_owned());
    if backend == "redis" {
        if raw.path.is_some() {
            return Err(ctx.invalid("store.path", "applies to the embedded backend only"));
        }
        if raw.cache_mib.is_some() {
            return Err(ctx.invalid("store.cache_mib", "applies to the embedded backend only"));
        }
        return redis_config(ctx, raw).map(StoreConfig::Redis);
    }
    let redis_only = [
        ("store.url", raw.url.is_some()),
        ("store.key_prefix", raw.key_prefix.is_some()),
        ("store.pool_size", raw.pool_size.is_some()),
        ("store.timeout_ms", raw.timeout_ms.is_some()),
    ];
    if let Some((key, _)) = redis_only.iter().find(|(_, set)| *set) {
        return Err(ctx.invalid(*key, "applies to backend = \"redis\" only"));
    }
    if backend == "memory" {
        return Ok(StoreConfig::Memory);
    }
    let path = match (ctx.var(ENV_STORE_PATH), raw.path) {
        (Some(v), _) => PathBuf::from(v),
        (None, Some(p)) if p.as_os_str().is_empty() => {
            return Err(ctx.invalid("store.path", "must not be empty"));
        }
        (None, Some(p)) => ctx.base.join(p),
        (None, None) => ctx.base.join("data/oauth.redb"),
    };
    let cache_bytes = match raw.cache_mib {
        None => oauth_core::store::EMBEDDED_CACHE_BYTES,
        Some(mb @ 1..=MAX_CACHE_MIB) => usize::try_from(mb * 1024 * 1024)
            .map_err(|_| ctx.invalid("store.cache_mib", "is too large for this machine"))?,
        Some(_) => {
            return Err(ctx.invalid(
                "store.cache_mib",
                format!("must be between 1 and {MAX_CACHE_MIB} (MiB)"),
            ));
        }
    };
    Ok(StoreConfig::Embedded { path, cache_bytes })
}

fn redis_config(ctx: &Ctx<'_>, raw: RawStore) -> Result<RedisStoreConfig, ConfigError> {
    let (url, origin) = match (ctx.var(ENV_REDIS_URL), raw.url) {
        (Some(v), _) => (v, Origin::Env(ENV_REDIS_URL)),
        (None, Some(SecretString(v))) => (v, Origin::File("store.url")),
        (None, None) => {
            return Err(ctx.invalid(
                "store.url",
                format!("backend = \"redis\" needs a URL (or {ENV_REDIS_URL})"),
            ));
        }
    };
    // The URL may hold a password: messages never quote it.
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {}
        Ok(_) => {
            return Err(ctx.at(
                &origin,
                "expected redis://[user:password@]host[:port][/db] or rediss://… (TLS)".into(),
            ));
        }
        Err(e) => return Err(ctx.at(&origin, format!("not a URL: {e}"))),
    }
    let key_prefix = raw.key_prefix.unwrap_or_else(|| "forwardauth".to_owned());
    if key_prefix.is_empty()
        || key_prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(ctx.invalid(
            "store.key_prefix",
            "must be non-empty, without braces, whitespace or control characters",
        ));
    }
    let pool_size = match raw.pool_size {
        Some(0) => return Err(ctx.invalid("store.pool_size", "must be at least 1")),
        Some(n) => n,
        None => 16,
    };
    let timeout = match raw.timeout_ms {
        Some(0) => return Err(ctx.invalid("store.timeout_ms", "must be greater than zero")),
        Some(ms) => Duration::from_millis(ms),
        None => Duration::from_secs(2),
    };
    Ok(RedisStoreConfig {
        url: RedisUrl(url),
        key_prefix,
        pool_size,
        timeout,
    })
}

/// Whether `s` is a scope token (RFC 6749 §3.3: `1*( %x21 / %x23-5B / %x5D-7E )`).
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

fn check_scopes(ctx: &Ctx<'_>, key: &str, scopes: &[String]) -> Result<(), ConfigError> {
    for (i, s) in scopes.iter().enumerate() {
        if !is_scope_token(s) {
            return Err(ctx.invalid(
                format!("{key}[{i}]"),
                format!("{s:?} is not a scope token (RFC 6749 §3.3: printable ASCII, no spaces, `\"` or `\\`)"),
            ));
        }
    }
    Ok(())
}

fn check_nonempty(ctx: &Ctx<'_>, key: &str, values: &[String]) -> Result<(), ConfigError> {
    match values.iter().position(|v| v.trim().is_empty()) {
        Some(i) => Err(ctx.invalid(format!("{key}[{i}]"), "must not be empty")),
        None => Ok(()),
    }
}

fn resources(ctx: &Ctx<'_>, raw: Vec<RawResource>) -> Result<Vec<ResourceConfig>, ConfigError> {
    let mut out: Vec<ResourceConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("resources[{i}].{k}");
        let u = url::Url::parse(&r.resource)
            .map_err(|e| ctx.invalid(key("resource"), format!("not a URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(ctx.invalid(
                key("resource"),
                format!("must be an http or https URL, not {}:", u.scheme()),
            ));
        }
        if let Some(j) = out.iter().position(|o| o.resource == r.resource) {
            return Err(ctx.invalid(
                key("resource"),
                format!("{} is already resources[{j}]", r.resource),
            ));
        }
        check_scopes(ctx, &key("scopes"), &r.scopes)?;
        check_scopes(ctx, &key("required_scopes"), &r.required_scopes)?;
        let mut tool_scopes = Vec::with_capacity(r.tool_scopes.len());
        for (k, scopes) in r.tool_scopes {
            let tkey = format!("{}.{k:?}", key("tool_scopes"));
            if k.is_empty() || k.contains(char::is_whitespace) {
                return Err(ctx.invalid(tkey, "must be an MCP method (`tools/call`) or method and name (`tools/call:delete_repo`)"));
            }
            check_scopes(ctx, &tkey, &scopes)?;
            tool_scopes.push(ToolScope::new(k, scopes));
        }
        let policy = access_policy(
            ctx,
            &format!("resources[{i}]."),
            RawPolicy {
                allowed_users: r.allowed_users,
                allowed_emails: r.allowed_emails,
                allowed_email_domains: r.allowed_email_domains,
                allowed_groups: r.allowed_groups,
                allowed_github_orgs: r.allowed_github_orgs,
                allowed_github_teams: r.allowed_github_teams,
            },
        )?;
        for (j, o) in r.allowed_origins.iter().enumerate() {
            if oauth_core::forwarded::SiteOrigin::parse(o).is_none() {
                return Err(ctx.invalid(
                    format!("{}[{j}]", key("allowed_origins")),
                    format!("{o:?} is not an origin like https://app.example.com (scheme, host and optional port, no path)"),
                ));
            }
        }
        let mut resource = ResourceConfig::new(r.resource, r.scopes)
            .require(r.required_scopes)
            .with_policy(policy)
            .with_tool_scopes(tool_scopes)
            .with_allowed_origins(r.allowed_origins);
        if let Some(name) = r.name {
            resource = resource.named(name);
        }
        out.push(resource);
    }
    Ok(out)
}

/// An access policy from its raw lists (`prefix` is the key path of the table, e.g. `resources[0].`). GitHub
/// organisations and teams are groups of GitHub users: `acme` and `acme/devs`, lower-case.
fn access_policy(ctx: &Ctx<'_>, prefix: &str, r: RawPolicy) -> Result<AccessPolicy, ConfigError> {
    let key = |k: &str| format!("{prefix}{k}");
    check_nonempty(ctx, &key("allowed_users"), &r.allowed_users)?;
    check_nonempty(ctx, &key("allowed_groups"), &r.allowed_groups)?;
    check_nonempty(ctx, &key("allowed_github_orgs"), &r.allowed_github_orgs)?;
    if let Some(j) = r.allowed_emails.iter().position(|e| !e.contains('@')) {
        return Err(ctx.invalid(
            key(&format!("allowed_emails[{j}]")),
            "not an e-mail address",
        ));
    }
    if let Some(j) = r
        .allowed_email_domains
        .iter()
        .position(|d| d.is_empty() || d.contains('@'))
    {
        return Err(ctx.invalid(
            key(&format!("allowed_email_domains[{j}]")),
            "must be a bare domain (example.com)",
        ));
    }
    if let Some(j) = r
        .allowed_github_teams
        .iter()
        .position(|t| t.split('/').filter(|p| !p.is_empty()).count() != 2)
    {
        return Err(ctx.invalid(
            key(&format!("allowed_github_teams[{j}]")),
            "must be `org/team-slug`",
        ));
    }
    let mut groups = r.allowed_groups;
    groups.extend(
        r.allowed_github_orgs
            .iter()
            .chain(&r.allowed_github_teams)
            .map(|g| g.to_ascii_lowercase()),
    );
    Ok(AccessPolicy::new(
        r.allowed_users,
        r.allowed_emails,
        r.allowed_email_domains,
        groups,
    ))
}

fn is_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The upstream identity providers.
fn providers(ctx: &Ctx<'_>, raw: Vec<RawProvider>) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut out: Vec<ProviderConfig> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("providers[{i}].{k}");
        let id = p.id.clone().unwrap_or_else(|| p.kind.clone());
        if !is_provider_id(&id) || id == "local" {
            return Err(ctx.invalid(
                key("id"),
                format!("`{id}` must be 1-32 of a-z, 0-9, `-`, `_`, and not `local`"),
            ));
        }
        if out.iter().any(|o| o.id() == id) {
            return Err(ctx.invalid(key("id"), format!("`{id}` is used by another provider")));
        }
        let secret = match (&p.client_secret, &p.client_secret_env) {
            (Some(_), Some(_)) => {
                return Err(ctx.invalid(
                    key("client_secret"),
                    "give client_secret or client_secret_env, not both",
                ));
            }
            (Some(s), None) => Some(s.0.clone()),
            (None, Some(var)) => Some(ctx.var(var).ok_or_else(|| {
                ctx.invalid(
                    key("client_secret_env"),
                    format!("environment variable {var} is not set"),
                )
            })?),
            (None, None) => None,
        };
        let timeout = std::time::Duration::from_secs(p.timeout_secs.unwrap_or(10).clamp(1, 120));
        match p.kind.as_str() {
            "oidc" => {
                let issuer = p
                    .issuer
                    .clone()
                    .ok_or_else(|| ctx.invalid(key("issuer"), "required for an oidc provider"))?;
                let u = url::Url::parse(&issuer)
                    .map_err(|e| ctx.invalid(key("issuer"), format!("not a URL: {e}")))?;
                if u.scheme() != "https"
                    && !(u.scheme() == "http"
                        && u.host_str()
                            .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]"))
                {
                    return Err(ctx.invalid(
                        key("issuer"),
                        "must be https (http only on a loopback host)",
                    ));
                }
                for (field, set) in [
                    ("web_base_url", p.web_base_url.is_some()),
                    ("api_base_url", p.api_base_url.is_some()),
                    ("fetch_orgs", p.fetch_orgs.is_some()),
                    ("fetch_teams", p.fetch_teams.is_some()),
                ] {
                    if set {
                        return Err(ctx.invalid(key(field), "applies only to github providers"));
                    }
                }
                let mut c = oauth_core::upstream::OidcConfig::new(id, issuer, p.client_id, secret);
                if let Some(name) = p.display_name {
                    c.display_name = name;
                }
                if !p.scopes.is_empty() {
                    c.scopes = p.scopes;
                }
                let claims = p.claims;
                let names = &mut c.claims;
                for (slot, value) in [
                    (&mut names.user_id, claims.user_id),
                    (&mut names.username, claims.username),
                    (&mut names.email, claims.email),
                    (&mut names.name, claims.name),
                    (&mut names.groups, claims.groups),
                ] {
                    if let Some(v) = value {
                        *slot = v;
                    }
                }
                if let Some(v) = p.require_verified_email {
                    c.require_verified_email = v;
                }
                c.timeout = timeout;
                out.push(ProviderConfig::Oidc(c));
            }
            "github" => {
                for (field, set) in [
                    ("issuer", p.issuer.is_some()),
                    ("require_verified_email", p.require_verified_email.is_some()),
                ] {
                    if set {
                        return Err(ctx.invalid(key(field), "applies only to oidc providers"));
                    }
                }
                let secret = secret.ok_or_else(|| {
                    ctx.invalid(
                        key("client_secret"),
                        "required for a github provider (or client_secret_env)",
                    )
                })?;
                let display = p.display_name.unwrap_or_else(|| "GitHub".to_owned());
                let mut c = oauth_core::upstream::GithubConfig::new(p.client_id, secret)
                    .named(id, display)
                    .with_groups(
                        p.fetch_orgs.unwrap_or(false),
                        p.fetch_teams.unwrap_or(false),
                    )
                    .with_timeout(timeout);
                if p.web_base_url.is_some() || p.api_base_url.is_some() {
                    let web = p.web_base_url.ok_or_else(|| {
                        ctx.invalid(
                            key("web_base_url"),
                            "give web_base_url and api_base_url together",
                        )
                    })?;
                    let api = p.api_base_url.ok_or_else(|| {
                        ctx.invalid(
                            key("api_base_url"),
                            "give web_base_url and api_base_url together",
                        )
                    })?;
                    c = c.with_base_urls(web, api);
                }
                if !p.scopes.is_empty() {
                    c.scopes = p.scopes;
                }
                out.push(ProviderConfig::Github(c));
            }
            other => {
                return Err(ctx.invalid(
                    key("type"),
                    format!("`{other}` is not a provider type (oidc, github)"),
                ));
            }
        }
    }
    Ok(out)
}

fn apply_tokens(
    ctx: &Ctx<'_>,
    raw: RawTokens,
    server: &mut ServerConfig,
) -> Result<(), ConfigError> {
    let positive = |key: &str, v: Option<u64>, into: &mut Duration| match v {
        Some(0) => Err(ctx.invalid(format!("tokens.{key}"), "must be greater than zero")),
        Some(s) => {
            *into = Duration::from_secs(s);
            Ok(())
        }
        None => Ok(()),
    };
    positive(
        "access_token_ttl_secs",
        raw.access_token_ttl_secs,
        &mut server.access_token_ttl,
    )?;
    positive(
        "refresh_token_ttl_secs",
        raw.refresh_token_ttl_secs,
        &mut server.refresh_token_ttl,
    )?;
    positive("code_ttl_secs", raw.code_ttl_secs, &mut server.code_ttl)?;
    positive(
        "session_ttl_secs",
        raw.session_ttl_secs,
        &mut server.session_ttl,
    )?;
    positive(
        "consent_ttl_secs",
        raw.consent_ttl_secs,
        &mut server.consent_ttl,
    )?;
    if let Some(s) = raw.refresh_grace_secs {
        server.refresh_grace = Duration::from_secs(s);
    }
    if let Some(alg) = raw.signing_alg {
        server.signing_alg = SigningAlg::from_name(&alg).ok_or_else(|| {
            ctx.invalid(
                "tokens.signing_alg",
                format!("expected \"ES256\", \"RS256\" or \"EdDSA\", not {alg:?}"),
            )
        })?;
    }
    Ok(())
}

/// Whether `s` is a URI scheme (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn apply_registration(
    ctx: &Ctx<'_>,
    raw: RawRegistration,
    server: &mut ServerConfig,
) -> Result<(), ConfigError> {
    let policy = &mut server.registration;
    if let Some(t) = ctx.var(ENV_INITIAL_ACCESS_TOKEN) {
        if t.contains(char::is_whitespace) {
            return Err(ConfigError::Env {
                var: ENV_INITIAL_ACCESS_TOKEN,
                reason: "must not contain whitespace".into(),
            });
        }
        policy.initial_access_tokens = vec![Secret::new(t).hash()];
    } else if let Some(tokens) = raw.initial_access_tokens {
        let mut hashes = Vec::with_capacity(tokens.len());
        for (i, SecretString(t)) in tokens.into_iter().enumerate() {
            if t.is_empty() || t.contains(char::is_whitespace) {
                return Err(ctx.invalid(
                    format!("registration.initial_access_tokens[{i}]"),
                    "must be non-empty and without whitespace",
                ));
            }
            hashes.push(Secret::new(t).hash());
        }
        policy.initial_access_tokens = hashes;
    }
    if let Some(schemes) = raw.allowed_schemes {
        for (i, s) in schemes.iter().enumerate() {
            let key = format!("registration.allowed_schemes[{i}]");
            if !is_scheme(s) {
                return Err(ctx.invalid(key, format!("{s:?} is not a URI scheme")));
            }
            if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") {
                return Err(ctx.invalid(
                    key,
                    "http and https are always handled; list only private-use schemes",
                ));
            }
        }
        policy.allowed_schemes = schemes;
    }
    match raw.max_redirect_uris {
        Some(0) => return Err(ctx.invalid("registration.max_redirect_uris", "must be at least 1")),
        Some(n) => policy.max_redirect_uris = n,
        None => {}
    }
    if let Some(d) = raw.downgrade_secret_to_none {
        policy.downgrade_secret_to_none = d;
    }
    if let Some(n) = raw.max_clients {
        policy.max_clients = n;
    }
    let keep_or = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    if let Some(s) = raw.never_used_client_ttl_secs {
        policy.never_used_client_ttl = keep_or(s);
    }
    if let Some(s) = raw.idle_client_ttl_secs {
        policy.idle_client_ttl = keep_or(s);
    }
    Ok(())
}

fn users(ctx: &Ctx<'_>, raw: RawUsers) -> Result<Vec<LocalUser>, ConfigError> {
    let (path, origin) = match (ctx.var(ENV_USERS_FILE), raw.file) {
        (Some(v), _) => (PathBuf::from(v), Origin::Env(ENV_USERS_FILE)),
        (None, Some(p)) => (ctx.base.join(p), Origin::File("users.file")),
        (None, None) => return Ok(Vec::new()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ctx.at(&origin, format!("cannot read {}: {e}", path.display())))?;
    let file = path.display().to_string();
    let raw: RawUsersFile = parse_toml(&text, &path)?;
    let mut list = Vec::with_capacity(raw.users.len());
    for (i, u) in raw.users.into_iter().enumerate() {
        let user_err = |key: &str, reason: &str| ConfigError::Users {
            file: file.clone(),
            reason: format!("users[{i}].{key} (user `{}`): {reason}", u.username),
        };
        if u.username.trim().is_empty() {
            return Err(ConfigError::Users {
                file: file.clone(),
                reason: format!("users[{i}].username: must not be empty"),
            });
        }
        if u.username.contains(char::is_whitespace) {
            return Err(user_err("username", "must not contain whitespace"));
        }
        let mut user = LocalUser::new(u.username.clone(), u.password_hash.clone())
            .with_groups(u.groups.clone());
        if let Some(e) = &u.email {
            if !e.contains('@') {
                return Err(user_err("email", "not an e-mail address"));
            }
            user = user.with_email(e.clone());
        }
        if let Some(n) = &u.name {
            user = user.with_name(n.clone());
        }
        list.push((u, user));
    }
    LocalUsers::new(list.iter().map(|(_, user)| user.clone()).collect()).map_err(|reason| {
        ConfigError::Users {
            file: file.clone(),
            reason,
        }
    })?;
    // A PHC string of another algorithm parses, but no password would ever match it.
    for (i, (u, _)) in list.iter().enumerate() {
        if !u.password_hash.starts_with("$argon2id$") {
            return Err(ConfigError::Users {
                file: file.clone(),
                reason: format!(
                    "users[{i}].password_hash (user `{}`): not an argon2id hash; make one with `forwardauth-svc hash-password`",
                    u.username
                ),
            });
        }
    }
    Ok(list.into_iter().map(|(_, user)| user).collect())
}

/// IP addresses (a bare IP means /32 or /128) or CIDR ranges, each error naming `key[i]`.
fn networks(ctx: &Ctx<'_>, key: &str, list: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
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

/// `[client_metadata]`: enabled by default (the MCP specification says an authorization server SHOULD support
/// Client ID Metadata Documents), any host, public addresses only.
fn client_metadata(
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
                HostPattern::parse(p).map_err(|reason| ctx.invalid(format!("{key}[{i}]"), reason))
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
    match raw.timeout_ms {
        Some(0) => {
            return Err(ctx.invalid("client_metadata.timeout_ms", "must be greater than zero"));
        }
        Some(ms) => c.timeout = Duration::from_millis(ms),
        None => {}
    }
    match raw.max_document_bytes {
        Some(0) => {
            return Err(ctx.invalid(
                "client_metadata.max_document_bytes",
                "must be greater than zero",
            ));
        }
        Some(n) => c.max_document_bytes = n,
        None => {}
    }
    match raw.cache_capacity {
        Some(0) => {
            return Err(ctx.invalid(
                "client_metadata.cache_capacity",
                "must be greater than zero",
            ));
        }
        Some(n) => c.cache_capacity = n,
        None => {}
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

/// The most `gate.verify_cache_mib` accepts: 4 GiB holds about 27 million typical tokens, more than any gate
/// sees live at once; a larger value is more likely bytes written into a key counted in MiB.
const MAX_VERIFY_CACHE_MIB: u64 = 4096;

/// `gate.verify_cache_mib` in bytes, for `ServerConfig::verify_cache_bytes`.
fn verify_cache_bytes(ctx: &Ctx<'_>, mib: u64) -> Result<u64, ConfigError> {
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

fn gate_config(ctx: &Ctx<'_>, raw: RawGate) -> Result<GateConfig, ConfigError> {
    let mut gate = GateConfig::default();
    if let Some(list) = raw.trusted_proxies {
        gate.trusted_proxies = networks(ctx, "gate.trusted_proxies", &list)?;
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

#[cfg(test)]
mod tests;
