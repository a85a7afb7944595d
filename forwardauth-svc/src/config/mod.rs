//! The service's configuration: one TOML file plus environment overrides, validated once at startup.
//!
//! Loading goes in two stages (ripgrep's low → high arguments): a [`RawConfig`] that mirrors the file
//! (`deny_unknown_fields` on every table, strings and options), then [`Config`], where every URL, address,
//! duration, file and backend choice has been checked. Every error names the file and the key path
//! (`config.toml: resources[0].resource: not a URL: …`), or the environment variable
//! (`FORWARDAUTH_LISTEN: not a socket address: …`), or the users file. Every table is checked even after one
//! failed, so one run reports every problem ([`ConfigError::Several`]). The process environment is never read
//! here: [`load`] takes a lookup function, so tests stay hermetic and `main` passes `std::env::var`.
//!
//! # Layout
//!
//! One module per subsystem, each holding the `[table]` it reads as written (its `Raw…` struct), the validated
//! form, and the one function between them, as crates.io composes its configuration: a change to one table
//! touches one file, and a subsystem's rules are read in one place.
//!
//! | module | reads | into |
//! |---|---|---|
//! | this one | `listen`, `issuer`, `log_format`, `scopes`, `default_scopes`; the order of the stages | [`Config`] |
//! | `source` | the TOML text, the environment; where each value came from | the [`ConfigError`] that names it |
//! | `store` | `[store]` | [`StoreConfig`], [`KeyEncryptionConfig`] |
//! | `tokens` | `[tokens]` | lifetimes and signing algorithm of the `ServerConfig` |
//! | `registration` | `[registration]` | the `ServerConfig`'s registration policy |
//! | `resources` | `[[resources]]`, `[policy]` | `ResourceConfig`s and `AccessPolicy`s |
//! | `client_metadata` | `[client_metadata]` | `ClientMetadataDocuments` |
//! | `limits` | `[login]`, `[rate_limits]` | password-check bounds, login regulation, rate limits |
//! | `gate` | `[gate]` | [`GateConfig`] and the verified-token cache size |
//! | `http` | `[http]` | [`HttpConfig`]: the listener's idle timeout and connection bound |
//! | `providers` | `[[providers]]` | [`ProviderConfig`]s |
//! | `users` | `[users]` and the users file | `LocalUser`s |
//! | `admin` | `[admin]` | the admin socket's path |
//! | `telemetry` | `[tracing]` | [`TracingConfig`] |
//! | `observe` | `[audit]`, `[metrics]` | [`AuditTarget`], the metrics listen address |
//! | `pages` | `[pages]` and the templates folder | [`PagesConfig`] |
//!
//! A rule the engine states about its own configuration (the issuer, resource URLs, scopes, lifetimes) is
//! checked by the engine's function, here called with the key or variable the value came from; this crate adds
//! only what the engine cannot know (file syntax, environment variables, files to read, backend choice).
//!
//! # The file
//!
//! Every key is optional except that a file must list at least one `[[resources]]`. Relative paths
//! (`store.path`, `users.file`, `audit.file`) are resolved against the directory of the configuration file. The example below
//! shows most keys; `docs/configuration.md` lists every one with its type, default and meaning (its test,
//! `tests::reference`, walks the `Raw…` types and fails on a key the reference lacks).
//!
//! ```toml
//! listen = "127.0.0.1:8080"           # socket address to bind
//! issuer = "https://auth.example.com" # default http://127.0.0.1:<listen port>; https, or http on loopback;
//!                                     # an origin: no path, trailing slash, query or fragment
//! log_format = "json"                 # "human" (default) or "json"
//! scopes = ["mcp", "mcp:admin"]       # every scope the server knows; default: union of the resources' scopes
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
//! # The key-encryption key that seals the signing keys and upstream tokens in the store (README "Security
//! # notes"): a file holding the base64 of 32 random bytes (`openssl rand -base64 32`), or
//! # FORWARDAUTH_KEY_ENCRYPTION_KEY. Required with redis (every instance needs the same one). Embedded default:
//! # generated on first start beside the store file, as `<path>.kek` (mode 0600).
//! # key_encryption_key_file = "secrets/kek"
//! # key_encryption_key_previous_files = ["secrets/kek.old"] # still open what they sealed (key rotation)
//!
//! [tokens]                            # lifetimes in seconds; the values shown are the defaults
//! access_token_ttl_secs = 3600
//! refresh_token_ttl_secs = 2592000
//! code_ttl_secs = 60
//! refresh_grace_secs = 30             # 0 disables the retry window after a refresh rotation
//! session_ttl_secs = 43200
//! max_unverified_age_secs = 86400     # a grant whose user the provider cannot re-check at refresh (no upstream
//!                                     # refresh token once its access token expired, no userinfo) ends this long
//!                                     # after the provider last vouched for them: refused with invalid_grant
//! consent_ttl_secs = 7776000
//! signing_alg = "ES256"               # "ES256" (default), "RS256" or "EdDSA"
//! signing_key_rotation_secs = 2592000 # a new signing key this often, while running; 0 = only `keys rotate`
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
//! default_scopes = ["mcp"]            # asked for when a client names no scope; default: required_scopes
//! # Access policy: a user passes if any one list matches; all lists empty = everyone who can log in. Every
//! # name is `provider:name`, the provider being `local` (the users file) or a [[providers]] id, so that no
//! # provider can vouch for another's names (`keycloak:mcp-users`, `entra:example.com`, …):
//! allowed_users = ["local:alice", "github:octocat"] # login names, or provider-local ids (`github:583231`)
//! allowed_emails = ["github:bob@example.com"]
//! allowed_email_domains = ["local:example.com"]
//! allowed_groups = ["local:admins", "github:acme/platform", "keycloak:mcp-users"]
//! allowed_github_orgs = ["acme"]      # = allowed_groups "<the github provider's id>:acme"; needs read:org
//! allowed_github_teams = ["acme/platform"]
//! allowed_origins = ["http://localhost:6274"] # browser origins besides the resource's own; a request with any
//!                                     # other Origin header is refused (403), and no Origin passes
//! mcp_server_validates_headers = false # true: the MCP server rejects Mcp-Method/Mcp-Name headers that disagree
//!                                     # with the body, so without a forwarded body the gate may believe them
//!                                     # (2026-07-28 requests); false (default): every tool scope instead
//!
//! [resources.scope_grants."mcp:admin"] # who may hold a scope (same keys as the access policy); a token gets the
//! allowed_groups = ["local:admins"]   # scopes asked for that the user may hold; a scope with no entry here:
//!                                     # everyone the resource admits
//! [resources.scope_descriptions]      # shown on the consent page
//! mcp = "Use the example MCP server's tools"
//! "mcp:admin" = "Delete repositories"
//!
//! [resources.tool_scopes]             # extra scopes per MCP method, or method and name (the name of
//! "tools/call:delete_repo" = ["mcp:admin"] # tools/call, prompts/get; the URI of resources/read), read from
//!                                     # the JSON-RPC body when the proxy forwards it (Traefik forwardBody)
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
//! file = "users.toml"                 # local users (provider `local`); see below
//!
//! [admin]                             # the command line's way into the running service (README "Command line")
//! socket = "data/oauth.redb.admin.sock" # a Unix socket, mode 0600, served while the service runs; the admin
//!                                     # commands use it when it answers and open the store otherwise. Default:
//!                                     # `<store.path>.admin.sock` with the embedded store, none otherwise;
//!                                     # "" or "off" disables it. Keep it in a directory only the service's
//!                                     # user may write (not /tmp), where nobody else can put a socket of theirs
//!
//! [pages]                             # the brand on the sign-in, consent, sign-out and error pages
//! service_name = "Acme MCP"           # "Sign in to Acme MCP"; every page also shows the issuer's host
//! logo_url = "https://cdn.acme.example/logo.svg" # an https URL, or an absolute path on the issuer's origin
//! accent_color = "#0969da"            # #rrggbb, of the primary buttons and links; default #0969da
//! # templates_dir = "templates"       # files here replace the built-in templates of the same name (base.html,
//!                                     # login.html, consent.html, error.html, signed_out.html, sign_out.html);
//!                                     # any other name is an error; each is rendered with a sample at startup
//!
//! [[providers]]                       # a GitHub provider (an OAuth App or a GitHub App)
//! type = "github"
//! id = "github"                       # prefixes its users' subjects (`github:583231`) and its policy names
//! client_id = "Iv1.0123456789abcdef"
//! client_secret = "change-me"         # or client_secret_env = "GITHUB_CLIENT_SECRET"
//! fetch_orgs = true                   # orgs and teams become groups (`github:acme/platform`); asks for read:org
//! fetch_teams = true
//!
//! [[providers]]                       # upstream identity providers, one table each (examples/providers/)
//! type = "oidc"                       # "oidc" (any OpenID Connect provider) or "github"
//! id = "keycloak"                     # default: the type; subjects become <id>:<user id>
//! display_name = "Company SSO"        # on the sign-in page
//! issuer = "https://keycloak.example.com/realms/company" # oidc only; discovery below it
//! client_id = "forwardauth"
//! # client_secret_env = "KEYCLOAK_CLIENT_SECRET" # confidential clients; or client_secret = "…"
//! scopes = ["openid", "email", "profile"] # the default for oidc
//! request_refresh_token = "auto"      # oidc only: how to ask for a refresh token, which keeps the user
//!                                     # re-checkable at refresh after the upstream access token expires:
//!                                     # "auto" (offline_access + prompt=consent when discovery offers it),
//!                                     # "offline_access" (always so), "access_type_offline" (Google's way),
//!                                     # "off" (ask for nothing beyond `scopes`)
//! require_verified_email = true       # oidc only
//! timeout_secs = 10                   # 1 to 120
//! [providers.claims]                  # oidc only: claim names; the defaults shown
//! user_id = "sub"
//! username = "preferred_username"
//! email = "email"
//! name = "name"
//! groups = "groups"                   # an answer without it at a re-check means no groups
//! # github only: web_base_url, api_base_url (GitHub Enterprise Server), fetch_orgs, fetch_teams
//!
//! [gate]
//! trusted_proxies = ["127.0.0.1", "10.0.0.0/8"] # peers whose X-Forwarded-* headers are believed;
//!                                     # a bare IP means /32 or /128; default: loopback and private ranges
//! verify_cache_mib = 32               # memory for verified tokens, in MiB (1 to 4096; default 32): about
//!                                     # 6,500 typical tokens per MiB; one not held pays a signature check
//! max_body_kib = 4096                 # the most of a forwarded request body (Traefik forwardBody) read for
//!                                     # per-tool scopes, in KiB (1 to 65536; default 4096); longer: 413
//! refusals_logged_per_sec = 100       # /verify refusals logged (and audited) a second; the rest are counted and
//!                                     # reported by the next line written; 0 = no limit
//! [http]                              # the public listener's connections
//! keep_alive_secs = 300               # idle connections stay open this long (1 to 3600; default 300): keep it
//!                                     # above every proxy's idle timeout for its connections to the gate
//!                                     # (Traefik 90 s, Caddy 120 s), or a proxy may send a request on a
//!                                     # connection just as the gate closes it (Traefik then answers 500)
//! max_connections = 10000             # connections open at once (default 10000); past it, new ones wait
//!
//! [tracing]                           # OpenTelemetry: spans exported over OTLP/HTTP (protobuf); off without it
//! otlp_endpoint = "http://127.0.0.1:4318" # the collector's base URL; spans go to <endpoint>/v1/traces
//! service_name = "forwardauth-svc"    # service.name of every span; the default shown
//!
//! [gate.headers]                      # identity headers set on a 200 from /verify; "" = do not send
//! user_id = "X-User-Id"
//! user_name = "X-User-Name"
//! user_email = "X-User-Email"
//! client_id = "X-Client-Id"
//! scopes = "X-Scopes"
//!
//! [audit]                             # security events, one JSON object per line (README "Metrics and audit")
//! target = "file"                     # "off" (default), "stderr" or "file"
//! file = "audit.jsonl"                # target = "file" only; default "audit.jsonl"; appended, mode 0600
//!
//! [metrics]                           # Prometheus text format at GET /metrics; off unless `listen` is set
//! listen = "127.0.0.1:9090"           # an address of its own, never the public `listen`
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
//! | `FORWARDAUTH_KEY_ENCRYPTION_KEY` | `store.key_encryption_key_file` (the key itself, base64 of 32 bytes) |
//! | `FORWARDAUTH_KEY_ENCRYPTION_KEY_PREVIOUS` | `store.key_encryption_key_previous_files` (keys, comma-separated) |
//! | `FORWARDAUTH_LOG_FORMAT` | `log_format` |
//! | `FORWARDAUTH_USERS_FILE` | `users.file` |
//! | `FORWARDAUTH_INITIAL_ACCESS_TOKEN` | `registration.initial_access_tokens` (one token) |
//! | `FORWARDAUTH_ADMIN_SOCKET` | `admin.socket` (`off` disables it) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `tracing.otlp_endpoint` (the OpenTelemetry standard variable) |
//! | `OTEL_SERVICE_NAME` | `tracing.service_name` |
//!
//! # Without a file
//!
//! [`load`] with no path gives [`Config::defaults`] (listen `127.0.0.1:8080`, embedded store in
//! `data/oauth.redb`, one resource `<issuer>/mcp`, no users) with the environment overrides applied.

mod admin;
mod client_metadata;
mod gate;
mod http;
mod limits;
mod observe;
mod pages;
mod providers;
mod registration;
mod resources;
mod source;
mod store;
mod telemetry;
mod tokens;
mod users;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use oauth_core::{LocalUser, ResourceConfig, ServerConfig};
use serde::Deserialize;

pub use admin::{AdminSocket, ENV_ADMIN_SOCKET, MAX_SOCKET_PATH, default_socket};
pub use gate::{GateConfig, IdentityHeaders};
pub use http::HttpConfig;
pub use observe::{AuditTarget, DEFAULT_AUDIT_FILE};
pub use providers::ProviderConfig;
pub use registration::ENV_INITIAL_ACCESS_TOKEN;
pub use store::{
    ENV_KEY_ENCRYPTION_KEY, ENV_KEY_ENCRYPTION_KEY_PREVIOUS, ENV_REDIS_URL, ENV_STORE_BACKEND,
    ENV_STORE_PATH, KeyEncryptionConfig, REDIS_KEY_ACTIVATION_DELAY,
    REDIS_REVOCATION_MAX_STALENESS, RedisStoreConfig, RedisUrl, StoreConfig,
};
pub use telemetry::{DEFAULT_SERVICE_NAME, ENV_OTLP_ENDPOINT, ENV_SERVICE_NAME, TracingConfig};
pub use users::ENV_USERS_FILE;

pub use crate::pages::PagesConfig;

use source::{Ctx, Origin};

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
    /// The key-encryption keys that seal the store's secrets (see [`crate::state::sealer`]).
    pub key_encryption: KeyEncryptionConfig,
    /// Local users (from the users file).
    pub users: Vec<LocalUser>,
    /// Upstream identity providers, in the order the chooser shows them.
    pub providers: Vec<ProviderConfig>,
    /// The forward-auth gate.
    pub gate: GateConfig,
    /// The public listener's idle timeout and connection bound.
    pub http: HttpConfig,
    /// Log output format.
    pub log_format: LogFormat,
    /// How many password checks run and wait at once.
    pub password_checks: oauth_core::upstream::password::PasswordCheckLimits,
    /// The admin socket as configured; [`Config::admin_socket`] resolves it.
    pub admin: AdminSocket,
    /// OpenTelemetry trace export; `None`: nothing is exported.
    pub tracing: Option<TracingConfig>,
    /// Where the audit trail goes (`[audit]`).
    pub audit: AuditTarget,
    /// Where Prometheus metrics are served (`[metrics] listen`); `None`: not at all.
    pub metrics_listen: Option<SocketAddr>,
    /// The pages' brand and template overrides.
    pub pages: PagesConfig,
}

impl Config {
    /// The configuration used when there is no file: embedded store in `./data`, issuer
    /// `http://127.0.0.1:<port>`, one protected resource `<issuer>/mcp`, no users.
    pub fn defaults(listen: SocketAddr) -> Self {
        let issuer = format!("http://127.0.0.1:{}", listen.port());
        let resource = oauth_core::ResourceConfig::new(format!("{issuer}/mcp"), vec!["mcp".into()])
            .with_default_scopes(vec!["mcp".into()]);
        Config {
            source: None,
            listen,
            server: ServerConfig::new(issuer, vec![resource]),
            admin: AdminSocket::Default,
            store: StoreConfig::Embedded {
                path: PathBuf::from("data/oauth.redb"),
                cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
            },
            key_encryption: KeyEncryptionConfig::default(),
            users: Vec::new(),
            providers: Vec::new(),
            gate: GateConfig::default(),
            http: HttpConfig::default(),
            log_format: LogFormat::Human,
            password_checks: oauth_core::upstream::password::PasswordCheckLimits::default(),
            tracing: None,
            audit: AuditTarget::Off,
            metrics_listen: None,
            pages: PagesConfig::default(),
        }
    }

    /// The admin socket the running service serves and the admin commands try first: the configured path, or
    /// the default of the store (`<store path>.admin.sock` for the embedded store); `None` when disabled.
    pub fn admin_socket(&self) -> Option<PathBuf> {
        match &self.admin {
            AdminSocket::Default => default_socket(&self.store),
            AdminSocket::Off => None,
            AdminSocket::Path(p) => Some(p.clone()),
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

/// Where to listen when neither the file nor `FORWARDAUTH_LISTEN` says.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// Environment variable overriding `listen`.
pub const ENV_LISTEN: &str = "FORWARDAUTH_LISTEN";

/// Environment variable overriding `issuer`.
pub const ENV_ISSUER: &str = "FORWARDAUTH_ISSUER";

/// Environment variable overriding `log_format`.
pub const ENV_LOG_FORMAT: &str = "FORWARDAUTH_LOG_FORMAT";

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
    /// Several problems, each naming its file and key or variable, one per line in the order found: every table
    /// is checked, so one run lists them all.
    #[error("{}", several(.0))]
    Several(Vec<ConfigError>),
    /// The engine refused the assembled configuration (`ServerConfig::validate`); its path is the key (the
    /// engine's field paths are the file's key paths: `resources[0].resource`).
    #[error("{file}: {reason}")]
    Server {
        /// The configuration file, or `configuration` without one.
        file: String,
        /// The key and what is wrong.
        reason: oauth_core::ConfigError,
    },
}

fn several(all: &[ConfigError]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// Each problem on its own: the several of [`ConfigError::Several`], or this one.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(all) => all.iter().collect(),
            one => vec![one],
        }
    }

    /// [`Self::problems`], by value.
    pub fn into_problems(self) -> Vec<ConfigError> {
        match self {
            ConfigError::Several(all) => all,
            one => vec![one],
        }
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
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    tokens: tokens::RawTokens,
    #[serde(default)]
    registration: registration::RawRegistration,
    #[serde(default)]
    resources: Vec<resources::RawResource>,
    #[serde(default)]
    users: users::RawUsers,
    #[serde(default)]
    gate: gate::RawGate,
    #[serde(default)]
    http: http::RawHttp,
    #[serde(default)]
    policy: resources::RawPolicy,
    #[serde(default)]
    providers: Vec<providers::RawProvider>,
    #[serde(default)]
    client_metadata: client_metadata::RawClientMetadata,
    #[serde(default)]
    login: limits::RawLogin,
    #[serde(default)]
    rate_limits: limits::RawRateLimits,
    #[serde(default)]
    admin: admin::RawAdmin,
    #[serde(default)]
    tracing: telemetry::RawTracing,
    #[serde(default)]
    audit: observe::RawAudit,
    #[serde(default)]
    metrics: observe::RawMetrics,
    #[serde(default)]
    pages: pages::RawPages,
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
    let Some(p) = path else {
        return RawConfig::default().into_config(path, env);
    };
    let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
        file: p.display().to_string(),
        reason: e.to_string(),
    })?;
    let (raw, mut problems, dropped) = parse_every_table(&text, p);
    let Some(raw) = raw else {
        return problems.finish(Config::defaults(DEFAULT_LISTEN));
    };
    match raw.into_config(path, env) {
        Ok(config) => problems.finish(config),
        Err(e) => {
            // A table left out for its own error is not reported again (as missing, or for its default).
            let about_dropped = |e: &ConfigError| match e {
                ConfigError::Invalid { key, .. } | ConfigError::Parse { key, .. } => {
                    dropped.iter().any(|d| top_key(key) == d)
                }
                ConfigError::Server { .. } => !dropped.is_empty(),
                _ => false,
            };
            for one in e.into_problems() {
                if !about_dropped(&one) {
                    problems.push(one);
                }
            }
            problems.finish(Config::defaults(DEFAULT_LISTEN))
        }
    }
}

/// The first stage over every table: each top-level key whose table does not fit the schema is reported and
/// left out, and the rest parsed again, so that one run names the mistakes of every table. Stops at a syntax
/// error (the text cannot be read further) and returns the keys it left out.
fn parse_every_table(text: &str, file: &Path) -> (Option<RawConfig>, Problems, Vec<String>) {
    let mut problems = Problems::default();
    let mut dropped = Vec::new();
    let mut current = std::borrow::Cow::Borrowed(text);
    loop {
        let err = match RawConfig::from_toml(&current, file) {
            Ok(raw) => return (Some(raw), problems, dropped),
            Err(e) => e,
        };
        let culprit = match &err {
            ConfigError::Parse { key, reason, .. }
                if key.starts_with("line ") || key == "(top level)" =>
            {
                // An unknown top-level key is reported at the top level, by name.
                reason
                    .strip_prefix("unknown field `")
                    .and_then(|r| r.split('`').next())
                    .map(str::to_owned)
            }
            ConfigError::Parse { key, .. } => Some(top_key(key).to_owned()),
            _ => None,
        };
        problems.push(err);
        let Some(culprit) = culprit else {
            return (None, problems, dropped);
        };
        let Ok(mut table) = current.parse::<toml::Table>() else {
            return (None, problems, dropped);
        };
        if table.remove(&culprit).is_none() {
            return (None, problems, dropped);
        }
        let Ok(rest) = toml::to_string(&table) else {
            return (None, problems, dropped);
        };
        dropped.push(culprit);
        current = std::borrow::Cow::Owned(rest);
    }
}

/// The top-level key of a key path: `resources` of `resources[0].resource`.
fn top_key(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

impl RawConfig {
    /// Parses the text of a configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] naming `file` and the key path (or line and column).
    pub fn from_toml(text: &str, file: &Path) -> Result<Self, ConfigError> {
        source::parse_toml(text, file)
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
        // Every table is checked even after one failed, so that one run lists every problem; a value that
        // failed keeps its default meanwhile, and checks that depend on it are skipped rather than misled.
        let mut problems = Problems::default();
        // Problems of settings the engine's configuration does not depend on: with only these, its own checks
        // still run.
        let listen = problems
            .take(ctx.setting(ENV_LISTEN, "listen", self.listen.as_deref(), parse_listen))
            .flatten()
            .unwrap_or(DEFAULT_LISTEN);
        let mut aside = problems.0.len();
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
        // The engine's issuer rule, checked here so that the message names the key or the variable.
        problems.take(
            ServerConfig::check_issuer(&issuer)
                .map_err(|problem| ctx.at(&issuer_origin, problem.to_string())),
        );

        let before = problems.0.len();
        if let Some(f) = problems
            .take(ctx.setting(
                ENV_LOG_FORMAT,
                "log_format",
                self.log_format.as_deref(),
                parse_log_format,
            ))
            .flatten()
        {
            config.log_format = f;
        }
        if let Some(t) = problems.take(telemetry::tracing_config(&ctx, self.tracing)) {
            config.tracing = t;
        }
        if let Some((s, k)) = problems.take(store::store_config(&ctx, self.store)) {
            (config.store, config.key_encryption) = (s, k);
        }
        if let Some(a) = problems.take(admin::admin_socket(&ctx, self.admin)) {
            config.admin = a;
        }
        aside += problems.0.len() - before;
        let (declared, declared_github) = providers::declared_ids(&self.providers);
        let known = match problems.take(providers::providers(&ctx, self.providers)) {
            Some(p) => {
                config.providers = p;
                resources::Providers {
                    ids: std::iter::once("local".to_owned())
                        .chain(config.providers.iter().map(|p| p.id().to_owned()))
                        .collect(),
                    github: config
                        .providers
                        .iter()
                        .filter(|p| matches!(p, ProviderConfig::Github(_)))
                        .map(|p| p.id().to_owned())
                        .collect(),
                }
            }
            // A provider refused: the policies are still checked, against the ids the file declares.
            None => resources::Providers {
                ids: std::iter::once("local".to_owned())
                    .chain(declared)
                    .collect(),
                github: declared_github,
            },
        };

        let default_resource = || {
            vec![
                ResourceConfig::new(format!("{issuer}/mcp"), vec!["mcp".into()])
                    .with_default_scopes(vec!["mcp".into()]),
            ]
        };
        let resources = if self.resources.is_empty() {
            if source.is_some() {
                problems
                    .push(ctx.invalid("resources", "at least one [[resources]] table is required"));
            }
            default_resource()
        } else {
            problems
                .take(resources::resources(&ctx, self.resources, &known))
                .unwrap_or_else(default_resource)
        };
        let mut server = ServerConfig::new(issuer, resources);
        if let Some(scopes) = self.scopes
            && problems
                .take(resources::check_scopes(&ctx, "scopes", &scopes))
                .is_some()
        {
            server.scopes_supported = scopes;
        }
        problems.take(tokens::apply_tokens(&ctx, self.tokens, &mut server));
        problems.take(registration::apply_registration(
            &ctx,
            self.registration,
            &mut server,
        ));
        if let Some(c) = problems.take(client_metadata::client_metadata(&ctx, self.client_metadata))
        {
            server.client_metadata = c;
        }
        if let Some((password_checks, regulation)) = problems.take(limits::login(&ctx, self.login))
        {
            config.password_checks = password_checks;
            server.regulation = regulation;
        }
        if let Some(r) = problems.take(limits::rate_limits(&ctx, self.rate_limits)) {
            server.rate_limits = r;
        }
        if let Some(mib) = self.gate.verify_cache_mib
            && let Some(bytes) = problems.take(gate::verify_cache_bytes(&ctx, mib))
        {
            server.verify_cache_bytes = bytes;
        }
        if matches!(config.store, StoreConfig::Redis(_)) {
            server.revocation_max_staleness = Some(REDIS_REVOCATION_MAX_STALENESS);
            server.key_activation_delay = REDIS_KEY_ACTIVATION_DELAY;
        }
        if let Some(p) = problems.take(resources::access_policy(
            &ctx,
            "policy.",
            self.policy,
            &known,
        )) {
            server.policy = p;
        }
        // The engine's checks of the whole are only meaningful on a whole that loaded.
        if problems.0.len() == aside {
            problems.take(server.validate().map_err(|reason| ConfigError::Server {
                file: ctx.file.clone(),
                reason,
            }));
        }
        config.server = server;
        if let Some(u) = problems.take(users::users(&ctx, self.users)) {
            config.users = u;
        }
        if let Some(g) = problems.take(gate::gate_config(&ctx, self.gate)) {
            config.gate = g;
        }
        if let Some(h) = problems.take(http::http_config(&ctx, self.http)) {
            config.http = h;
        }
        if let Some(a) = problems.take(observe::audit(&ctx, self.audit)) {
            config.audit = a;
        }
        if let Some(m) = problems.take(observe::metrics(&ctx, self.metrics, config.listen)) {
            config.metrics_listen = m;
        }
        if let Some(p) = problems.take(pages::pages(&ctx, self.pages)) {
            config.pages = p;
        }
        problems.finish(config)
    }
}

/// The problems found so far while loading.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    /// The value, or `None` with its error kept.
    fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    fn push(&mut self, error: ConfigError) {
        match error {
            ConfigError::Several(all) => self.0.extend(all),
            one => self.0.push(one),
        }
    }

    /// `value` when nothing was wrong; else the one error, or [`ConfigError::Several`].
    fn finish<T>(mut self, value: T) -> Result<T, ConfigError> {
        match self.0.len() {
            0 => Ok(value),
            1 => Err(self.0.remove(0)),
            _ => Err(ConfigError::Several(self.0)),
        }
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

#[cfg(test)]
mod tests;
