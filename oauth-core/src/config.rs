//! The engine's configuration: plain data, built by the embedder.
//!
//! The core never reads environment variables, files or globals; the service (or any embedder) builds a
//! [`ServerConfig`] and hands it over by value. Defaults are the values a person running one instance in front of
//! their MCP servers would pick; [`ServerConfig::new`] needs only the issuer and the protected resources.
//!
//! # Errors: each rule once
//!
//! Every rule about a configuration value is one function here (or beside the type it configures, as
//! `GithubProvider::new`), and reports a [`ConfigProblem`]: *what* is wrong, worded once. The caller that knows
//! *where* the value sits adds the path and returns a [`ConfigError`]
//! (``resources[1].resource: must not end with `/` ``). An embedder that reads a value from somewhere the engine
//! cannot see (a file key of another name, an environment variable) calls the same function, such as
//! [`ServerConfig::check_issuer`] or [`secure_url`], and reports the problem under its own name, so the rule is
//! not restated there either.

use std::time::Duration;

/// A configuration value the engine refuses: where it sits and what is wrong with it.
///
/// Displays as `path: problem`, e.g. ``resources[1].resource: must not end with `/` ``.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The field path from the value that was checked: `issuer`, `resources[1].resource`, `github.client_id`,
    /// `client_metadata.extra_root_certificates[0]`.
    pub path: String,
    /// What is wrong.
    pub problem: ConfigProblem,
}

impl ConfigError {
    /// `problem` at `path`.
    pub fn new(path: impl Into<String>, problem: ConfigProblem) -> Self {
        ConfigError {
            path: path.into(),
            problem,
        }
    }

    /// The same error one level down: `within("github")` turns `client_id` into `github.client_id`.
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.path = format!("{parent}.{}", self.path);
        self
    }
}

/// What is wrong with a configuration value; each variant is one rule, worded once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// The value does not parse as a URL.
    #[error("not a URL: {0}")]
    NotAUrl(url::ParseError),
    /// A URL the server is known by or calls must be https; plain http is for development on a loopback host
    /// (`127.0.0.0/8`, `[::1]`, `localhost`) only (RFC 8414 §2 for the issuer; RFC 9700 §2.6 in general).
    #[error("must be https (http only on a loopback host)")]
    Insecure,
    /// RFC 8414 §2: the issuer has no query or fragment; it is compared byte for byte, so no trailing slash either.
    #[error("must not end with `/` nor carry a query or fragment")]
    IssuerNotBare,
    /// The issuer has a path: RFC 8414 would put its metadata at `/.well-known/oauth-authorization-server/<path>`
    /// and its endpoints below the path, and the service serves both at the root.
    #[error(
        "must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root"
    )]
    IssuerHasPath,
    /// No protected resource: no token could ever be issued.
    #[error("at least one protected resource is required")]
    NoResource,
    /// RFC 8707 §2: a resource indicator must not include a fragment.
    #[error("must not contain a fragment")]
    Fragment,
    /// A resource indicator ending in `/` (other than the root) would never equal the URL a client sends.
    #[error("must not end with `/`")]
    TrailingSlash,
    /// A browser origin must be scheme, host and optional port (RFC 6454), as an `Origin` header sends it.
    #[error(
        "{0:?} is not an origin like https://app.example.com (scheme, host and optional port, no path)"
    )]
    NotAnOrigin(String),
    /// A scope used by a resource or granted by default must be one the server advertises.
    #[error("scope `{0}` is not in scopes_supported")]
    UnknownScope(String),
    /// A lifetime, bound or count that must be positive is zero.
    #[error("must be greater than zero")]
    Zero,
    /// A duration counted in whole seconds is shorter than one.
    #[error("must be at least one second")]
    UnderOneSecond,
    /// A lower bound is above its upper bound (named here).
    #[error("must not exceed {0}")]
    Exceeds(&'static str),
    /// Neither the built-in roots nor an extra certificate: no server could be trusted.
    #[error("without the built-in roots, at least one extra root certificate is needed")]
    NoTrustedRoots,
    /// An extra root certificate is not PEM.
    #[error("not a PEM certificate: {0}")]
    NotPem(String),
    /// A host pattern is neither a host name nor `*.domain`.
    #[error("`{0}` is not a host name or `*.domain` pattern")]
    NotAHostPattern(String),
    /// A required value is empty.
    #[error("must not be empty")]
    Empty,
    /// An identity provider's id prefixes the subjects it vouches for (`github:42`), so it cannot hold the
    /// separator.
    #[error("must not contain `:` or whitespace (it prefixes subjects)")]
    NotASubjectPrefix,
    /// A base URL with credentials, a query or a fragment cannot have paths appended.
    #[error("must not carry credentials, a query or a fragment")]
    NotABaseUrl,
    /// The HTTP client for an upstream could not be built (TLS backend, proxy settings).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// A name in an access list without the provider that vouches for it: any provider could assert it.
    #[error(
        "{0:?} must name its identity provider, as `provider:name` (`github:acme/platform`, `keycloak:mcp-users`, `local:alice`)"
    )]
    NoProvider(String),
    /// A scope named by a resource's default scopes, grants or descriptions that the resource does not list.
    #[error("scope `{0}` is not one of this resource's scopes")]
    NotAResourceScope(String),
    /// A scope grant that lists nobody: a scope with no grant may be held by everyone the resource admits.
    #[error("lists nobody; remove the entry to let everyone the resource admits hold the scope")]
    GrantsNobody,
}

/// The transport rule for every URL the server is known by or calls out to (its issuer, an upstream's issuer or
/// base URL): https, or http on a loopback host for development. Returns the URL parsed.
///
/// # Errors
/// [`ConfigProblem::NotAUrl`] or [`ConfigProblem::Insecure`].
pub fn secure_url(value: &str) -> Result<url::Url, ConfigProblem> {
    let url = url::Url::parse(value).map_err(ConfigProblem::NotAUrl)?;
    if url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(&url)) {
        Ok(url)
    } else {
        Err(ConfigProblem::Insecure)
    }
}

/// Configuration of an [`AuthServer`](crate::AuthServer).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The issuer identifier (RFC 8414 §2): an https origin (http on loopback for development) without a path,
    /// trailing slash, query or fragment. Used byte for byte in the AS metadata `issuer`, the PRM
    /// `authorization_servers`, the RFC 9207 `iss` parameter and the JWT `iss` claim.
    pub issuer: String,
    /// Paths of the endpoints below the issuer.
    pub endpoints: EndpointPaths,
    /// The protected resources (MCP servers) tokens may be issued for (RFC 8707).
    pub resources: Vec<ResourceConfig>,
    /// Every scope the server knows (AS metadata `scopes_supported`, without `offline_access`).
    pub scopes_supported: Vec<String>,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token (each rotation issues a new one with this lifetime).
    pub refresh_token_ttl: Duration,
    /// Lifetime of an authorization code.
    pub code_ttl: Duration,
    /// How long a pending authorization (login and consent in progress) lives.
    pub pending_ttl: Duration,
    /// How long after a rotation a retry with the old refresh token returns the same new pair instead of being
    /// treated as reuse. Zero disables the grace window.
    pub refresh_grace: Duration,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`.
    pub leeway: Duration,
    /// How long a browser login session at the authorization server lasts.
    pub session_ttl: Duration,
    /// How long a grant lives on an identity its provider can no longer re-check, counted from the last time the
    /// provider vouched for the user (the login, or a refresh that read their current claims). A refresh re-checks
    /// the user upstream; when that cannot be done (an OpenID Connect provider that issued no refresh token once
    /// its access token expired, one without a userinfo endpoint, a provider no longer configured) the last
    /// identity stands until this age, the grant's expiry does not move past it, and after it the refresh is
    /// refused with `invalid_grant` and the grant ends: the user signs in again. Default 24 hours.
    pub max_unverified_age: Duration,
    /// How long a remembered consent lasts.
    pub consent_ttl: Duration,
    /// Signing algorithm for new access-token keys.
    pub signing_alg: SigningAlg,
    /// Dynamic client registration policy.
    pub registration: RegistrationPolicy,
    /// Who may use any resource at all (each resource may restrict further).
    pub policy: AccessPolicy,
    /// How many bytes `/verify` spends remembering verified tokens. An entry keeps a 16-byte digest of the token
    /// and the claims the gate reads: about 158 bytes all told for a typical identity (with its share of the
    /// cache's table and of its memory of evicted keys), more for long identities; 1/64 of the budget holds the
    /// claims many tokens share (client, audience, scope, groups). When full, the least useful entries go and
    /// their next use pays a signature check. The default, 32 MiB, holds about 208,000 typical tokens.
    pub verify_cache_bytes: u64,
    /// For a store shared by several instances: how old the last successful revocation sync
    /// ([`AuthServer::sync`](crate::AuthServer::sync)) may be before `/verify` stops vouching for any token (it
    /// fails closed with `invalid_token` until a sync succeeds again). `None` (the default) suits a store only this
    /// process writes, where every revocation is applied locally at once.
    pub revocation_max_staleness: Option<Duration>,
    /// How long after a key rotation the new key starts signing. Until then it is published and accepted, so
    /// that every instance sharing the store has loaded it before any token signed with it exists. Zero (the
    /// default) suits a single instance.
    pub key_activation_delay: Duration,
    /// How long a signing key signs before the housekeeping loop ([`AuthServer::maintain`](crate::AuthServer::maintain))
    /// rotates it, as an operator's `keys rotate` would (after `key_activation_delay`, the old key published until
    /// its last token has expired). `None` rotates only when asked. Default: 30 days.
    pub signing_key_rotation: Option<Duration>,
    /// Client ID Metadata Documents: clients identified by an https URL whose document the server fetches
    /// (draft-ietf-oauth-client-id-metadata-document). Disabled by default in the engine (it makes outbound
    /// requests); the service enables it by default.
    pub client_metadata: ClientMetadataDocuments,
    /// Failed password logins counted per account and per client address, and bans past a limit.
    pub regulation: Regulation,
    /// Requests per minute per client address on the anonymous endpoints.
    pub rate_limits: crate::throttle::RateLimits,
}

impl ServerConfig {
    /// A configuration with defaults for everything but the issuer and the protected resources.
    pub fn new(issuer: impl Into<String>, resources: Vec<ResourceConfig>) -> Self {
        let mut scopes: Vec<String> = Vec::new();
        for r in &resources {
            for s in &r.scopes_supported {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
        }
        ServerConfig {
            issuer: issuer.into(),
            endpoints: EndpointPaths::default(),
            resources,
            scopes_supported: scopes,
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            code_ttl: Duration::from_secs(60),
            pending_ttl: Duration::from_secs(600),
            refresh_grace: Duration::from_secs(30),
            leeway: Duration::from_secs(30),
            session_ttl: Duration::from_secs(12 * 3600),
            max_unverified_age: Duration::from_secs(24 * 3600),
            consent_ttl: Duration::from_secs(90 * 24 * 3600),
            signing_alg: SigningAlg::Es256,
            registration: RegistrationPolicy::default(),
            policy: AccessPolicy::default(),
            verify_cache_bytes: 32 * 1024 * 1024,
            revocation_max_staleness: None,
            key_activation_delay: Duration::ZERO,
            signing_key_rotation: Some(Duration::from_secs(30 * 24 * 3600)),
            client_metadata: ClientMetadataDocuments::default(),
            regulation: Regulation::default(),
            rate_limits: crate::throttle::RateLimits::default(),
        }
    }

    /// Checks the invariants the engine relies on. Embedders call this (the service does at startup) to fail
    /// early with a message naming the field.
    ///
    /// # Errors
    /// The first invalid field, with its path (`resources[1].resource`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        Self::check_issuer(&self.issuer).map_err(|p| ConfigError::new("issuer", p))?;
        if self.resources.is_empty() {
            return Err(ConfigError::new("resources", ConfigProblem::NoResource));
        }
        for (i, r) in self.resources.iter().enumerate() {
            let at =
                |field: &str, problem| ConfigError::new(format!("resources[{i}]{field}"), problem);
            let u = url::Url::parse(&r.resource)
                .map_err(|e| at(".resource", ConfigProblem::NotAUrl(e)))?;
            if u.fragment().is_some() || r.resource.contains('#') {
                return Err(at(".resource", ConfigProblem::Fragment));
            }
            if u.path() != "/" && r.resource.ends_with('/') {
                return Err(at(".resource", ConfigProblem::TrailingSlash));
            }
            for (j, o) in r.allowed_origins.iter().enumerate() {
                if crate::forwarded::SiteOrigin::parse(o).is_none() {
                    return Err(at(
                        &format!(".allowed_origins[{j}]"),
                        ConfigProblem::NotAnOrigin(o.clone()),
                    ));
                }
            }
            let tool = r.tool_scopes.iter().flat_map(|t| t.scopes.iter());
            for s in r
                .required_scopes
                .iter()
                .chain(&r.scopes_supported)
                .chain(tool)
            {
                if !self.scopes_supported.contains(s) {
                    return Err(at("", ConfigProblem::UnknownScope(s.clone())));
                }
            }
            r.validate_grants()
                .map_err(|e| e.within(&format!("resources[{i}]")))?;
        }
        self.policy.validate().map_err(|e| e.within("policy"))?;
        for (field, ttl) in [
            ("access_token_ttl", self.access_token_ttl),
            ("code_ttl", self.code_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("max_unverified_age", self.max_unverified_age),
        ] {
            if ttl.is_zero() {
                return Err(ConfigError::new(field, ConfigProblem::Zero));
            }
        }
        if self.signing_key_rotation.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "signing_key_rotation",
                ConfigProblem::Zero,
            ));
        }
        self.regulation
            .validate()
            .map_err(|e| e.within("regulation"))?;
        self.client_metadata
            .validate()
            .map_err(|e| e.within("client_metadata"))
    }

    /// The issuer rules (RFC 8414 §2): https (http on a loopback host), an origin without path, trailing slash,
    /// query or fragment. [`validate`](Self::validate) applies them; an embedder reading the issuer from
    /// somewhere of its own calls this to report the problem under that name.
    ///
    /// # Errors
    /// The [`ConfigProblem`] of the first rule broken.
    pub fn check_issuer(issuer: &str) -> Result<(), ConfigProblem> {
        let url = secure_url(issuer)?;
        if issuer.ends_with('/') || url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigProblem::IssuerNotBare);
        }
        // The service answers RFC 8414 metadata and every endpoint at the root of the origin; with a path, the
        // metadata (`/.well-known/oauth-authorization-server/auth`) and the endpoints would all be 404.
        if url.path() != "/" {
            return Err(ConfigProblem::IssuerHasPath);
        }
        Ok(())
    }

    /// The absolute URL of an endpoint path below the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

/// Paths of the authorization server's endpoints, relative to the issuer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EndpointPaths {
    /// Authorization endpoint (RFC 6749 §3.1).
    pub authorize: String,
    /// Token endpoint (RFC 6749 §3.2).
    pub token: String,
    /// Registration endpoint (RFC 7591 §3); client configuration URIs are `{register}/{client_id}`.
    pub register: String,
    /// Revocation endpoint (RFC 7009).
    pub revoke: String,
    /// Introspection endpoint (RFC 7662).
    pub introspect: String,
    /// JWK set (RFC 8414 `jwks_uri`).
    pub jwks: String,
}

impl Default for EndpointPaths {
    fn default() -> Self {
        EndpointPaths {
            authorize: "/authorize".into(),
            token: "/token".into(),
            register: "/register".into(),
            revoke: "/revoke".into(),
            introspect: "/introspect".into(),
            jwks: "/jwks.json".into(),
        }
    }
}

/// One protected resource (an MCP server endpoint) in RFC 9728 terms.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceConfig {
    /// The canonical resource URI, exactly as MCP clients are configured with it (no trailing slash unless it is
    /// an origin, no fragment). It is the `aud` of tokens issued for it.
    pub resource: String,
    /// Human-readable name (RFC 9728 `resource_name`).
    pub name: Option<String>,
    /// Scopes this resource understands (PRM `scopes_supported`).
    pub scopes_supported: Vec<String>,
    /// Scopes a token must carry to pass `/verify` for this resource.
    pub required_scopes: Vec<String>,
    /// Scopes asked for when an authorization request names none (RFC 6749 §3.3). Empty: the required scopes.
    pub default_scopes: Vec<String>,
    /// Who may hold which scope; a scope not listed here may be held by everyone the policy admits.
    pub scope_grants: Vec<ScopeGrant>,
    /// What each scope allows, in words, for the consent page (`mcp:admin` → "Delete repositories").
    pub scope_descriptions: Vec<(String, String)>,
    /// Who may use this resource at all.
    pub policy: AccessPolicy,
    /// Extra scopes per MCP method (`tools/call`) or method and name (`tools/call:delete_repo`). The gate reads
    /// the call from the JSON-RPC body when the proxy forwards it; without the body, see
    /// [`Self::mcp_server_validates_headers`].
    pub tool_scopes: Vec<ToolScope>,
    /// Whether the MCP server rejects a request whose `Mcp-Method`/`Mcp-Name` headers disagree with its
    /// JSON-RPC body, as the 2026-07-28 transport requires of servers. Only then does the gate, when the proxy
    /// does not forward the body (nginx, Caddy), believe those headers for per-tool scopes, and only on requests
    /// of protocol revision 2026-07-28 or later; every other request that may carry a call needs every tool
    /// scope. The gate cannot check it: anyone may send the headers, and only a server that refuses to act on a
    /// body they do not describe makes them worth believing. Default `false`.
    pub mcp_server_validates_headers: bool,
    /// Browser origins (`https://app.example.com`) allowed besides the resource's own: a request whose `Origin`
    /// header names any other origin is refused (MCP transport, 2025-11-25: servers MUST validate `Origin`), and
    /// the gate's 401/403 answers carry CORS headers for the allowed ones.
    pub allowed_origins: Vec<String>,
}

/// Who may use a resource, or hold a scope of it. Empty lists on every axis mean everyone who can log in;
/// otherwise a user passes if any one axis matches.
///
/// # Every name carries its provider
/// Each entry is `provider:name`, where `provider` is the id of the identity provider that vouches for the name
/// (`local` for the users file, `github`, or a `[[providers]]` id): `github:acme/platform`, `keycloak:mcp-users`,
/// `local:alice`, `entra:example.com`. A name alone would match whatever any provider asserts: an OpenID Connect
/// provider whose users can choose their own `groups` or unverified e-mail could then pass as a GitHub team. The
/// provider of a user is the prefix of their subject (`github:583231`), which the engine sets, never the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessPolicy {
    /// `provider:login` (the `preferred_username`, compared case-insensitively) or `provider:id` (the subject's
    /// provider-local part, a GitHub numeric id or an OpenID Connect `sub`, compared exactly).
    pub users: Vec<String>,
    /// `provider:address`, compared case-insensitively.
    pub emails: Vec<String>,
    /// `provider:domain` (`entra:example.com`), compared case-insensitively.
    pub email_domains: Vec<String>,
    /// `provider:group` (`github:acme/platform`, `keycloak:mcp-users`), compared exactly.
    pub groups: Vec<String>,
}

/// `provider:name` split, or `None` without a provider.
fn namespaced(entry: &str) -> Option<(&str, &str)> {
    entry
        .split_once(':')
        .filter(|(provider, name)| !provider.is_empty() && !name.is_empty())
}

impl AccessPolicy {
    /// A policy from its four lists, each entry `provider:name`.
    pub fn new(
        users: Vec<String>,
        emails: Vec<String>,
        email_domains: Vec<String>,
        groups: Vec<String>,
    ) -> Self {
        AccessPolicy {
            users,
            emails,
            email_domains,
            groups,
        }
    }

    /// Whether the policy restricts anything.
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
            && self.emails.is_empty()
            && self.email_domains.is_empty()
            && self.groups.is_empty()
    }

    /// Every entry of every list, with its path relative to the policy (`groups[1]`).
    pub fn entries(&self) -> impl Iterator<Item = (String, &str)> {
        [
            ("users", &self.users),
            ("emails", &self.emails),
            ("email_domains", &self.email_domains),
            ("groups", &self.groups),
        ]
        .into_iter()
        .flat_map(|(list, entries)| {
            entries
                .iter()
                .enumerate()
                .map(move |(i, e)| (format!("{list}[{i}]"), e.as_str()))
        })
    }

    /// Every entry names its provider. Paths are relative to the policy (`groups[1]`).
    ///
    /// # Errors
    /// [`ConfigProblem::NoProvider`] for the first entry without one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.entries().find(|(_, e)| namespaced(e).is_none()) {
            Some((path, entry)) => Err(ConfigError::new(
                path,
                ConfigProblem::NoProvider(entry.to_owned()),
            )),
            None => Ok(()),
        }
    }

    /// Whether `identity` may pass.
    pub fn admits(&self, identity: &crate::Identity) -> bool {
        self.allows(
            &identity.subject,
            identity.username.as_deref(),
            identity.email.as_deref(),
            &identity.groups,
        )
    }

    /// Whether a user with these claims may pass. `subject` is `provider:id`; a subject without a provider
    /// matches no list.
    pub fn allows(
        &self,
        subject: &str,
        username: Option<&str>,
        email: Option<&str>,
        groups: &[String],
    ) -> bool {
        if self.is_open() {
            return true;
        }
        let Some((provider, local_part)) = subject.split_once(':') else {
            return false;
        };
        // The entries of `list` that this user's provider vouches for, without the prefix.
        fn ours<'a>(list: &'a [String], provider: &str) -> Vec<&'a str> {
            list.iter()
                .filter_map(|e| namespaced(e))
                .filter(|(p, _)| *p == provider)
                .map(|(_, name)| name)
                .collect()
        }
        let ours = |list| ours(list, provider);
        let user_ok = ours(&self.users)
            .into_iter()
            .any(|u| u == local_part || username.is_some_and(|n| u.eq_ignore_ascii_case(n)));
        let email_ok = email.is_some_and(|e| {
            ours(&self.emails)
                .into_iter()
                .any(|a| a.eq_ignore_ascii_case(e))
                || e.rsplit_once('@').is_some_and(|(_, d)| {
                    ours(&self.email_domains)
                        .into_iter()
                        .any(|a| a.eq_ignore_ascii_case(d))
                })
        });
        let group_ok = ours(&self.groups)
            .into_iter()
            .any(|g| groups.iter().any(|mine| mine == g));
        user_ok || email_ok || group_ok
    }
}

/// Who may hold one scope of a resource (RFC 6749 §3.3: the server grants the subset of the requested scope the
/// user may hold, and says so in the token response). A scope without a grant may be held by everyone the
/// resource's access policy admits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScopeGrant {
    /// The scope.
    pub scope: String,
    /// Who may hold it (never open: a grant lists someone).
    pub holders: AccessPolicy,
}

impl ScopeGrant {
    /// `scope` may be held by `holders`.
    pub fn new(scope: impl Into<String>, holders: AccessPolicy) -> Self {
        ScopeGrant {
            scope: scope.into(),
            holders,
        }
    }
}

/// Scopes required for one MCP method, or one method and name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolScope {
    /// `tools/call` or `tools/call:delete_repo`.
    pub key: String,
    /// Scopes required.
    pub scopes: Vec<String>,
}

impl ToolScope {
    /// A rule for `key`.
    pub fn new(key: impl Into<String>, scopes: Vec<String>) -> Self {
        ToolScope {
            key: key.into(),
            scopes,
        }
    }

    /// Whether calls of this MCP method name a tool, prompt or resource, so that a rule `method:name` can match
    /// them: `tools/call` and `prompts/get` (`params.name`) and `resources/read` (`params.uri`), the calls the
    /// 2026-07-28 transport mirrors into `Mcp-Name`.
    pub fn method_has_name(method: &str) -> bool {
        crate::mcp::has_name(method)
    }
}

impl ResourceConfig {
    /// A resource with the given canonical URI and supported scopes; nothing is required by default.
    pub fn new(resource: impl Into<String>, scopes_supported: Vec<String>) -> Self {
        ResourceConfig {
            resource: resource.into(),
            name: None,
            scopes_supported,
            required_scopes: Vec::new(),
            default_scopes: Vec::new(),
            scope_grants: Vec::new(),
            scope_descriptions: Vec::new(),
            policy: AccessPolicy::default(),
            tool_scopes: Vec::new(),
            mcp_server_validates_headers: false,
            allowed_origins: Vec::new(),
        }
    }

    /// Sets the scopes `/verify` requires.
    pub fn require(mut self, scopes: Vec<String>) -> Self {
        self.required_scopes = scopes;
        self
    }

    /// Sets the access policy.
    pub fn with_policy(mut self, policy: AccessPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the scopes asked for when a request names none.
    pub fn with_default_scopes(mut self, scopes: Vec<String>) -> Self {
        self.default_scopes = scopes;
        self
    }

    /// Sets who may hold which scope.
    pub fn with_scope_grants(mut self, grants: Vec<ScopeGrant>) -> Self {
        self.scope_grants = grants;
        self
    }

    /// Sets the scopes' descriptions for the consent page.
    pub fn with_scope_descriptions(mut self, descriptions: Vec<(String, String)>) -> Self {
        self.scope_descriptions = descriptions;
        self
    }

    /// The scopes asked for when a request names none: [`Self::default_scopes`], or the required scopes.
    pub fn defaults(&self) -> &[String] {
        if self.default_scopes.is_empty() {
            &self.required_scopes
        } else {
            &self.default_scopes
        }
    }

    /// Whether `identity` may hold `scope` here: the resource knows the scope, and its grant (if any) lists them.
    /// (Whether they may use the resource at all is [`Self::policy`]'s question.)
    pub fn may_hold(&self, identity: &crate::Identity, scope: &str) -> bool {
        self.scopes_supported.iter().any(|s| s == scope)
            && self
                .scope_grants
                .iter()
                .filter(|g| g.scope == scope)
                .all(|g| g.holders.admits(identity))
    }

    /// The description of `scope` for the consent page, if configured.
    pub fn describe(&self, scope: &str) -> Option<&str> {
        self.scope_descriptions
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, d)| d.as_str())
    }

    /// The default scopes, grants and descriptions name this resource's scopes; every grant lists someone;
    /// every policy entry names its provider. Paths are relative to the resource (`scope_grants[0].holders`).
    fn validate_grants(&self) -> Result<(), ConfigError> {
        let known = |s: &str| self.scopes_supported.iter().any(|k| k == s);
        for (i, s) in self.default_scopes.iter().enumerate() {
            if !known(s) {
                return Err(ConfigError::new(
                    format!("default_scopes[{i}]"),
                    ConfigProblem::NotAResourceScope(s.clone()),
                ));
            }
        }
        for (i, (s, _)) in self.scope_descriptions.iter().enumerate() {
            if !known(s) {
                return Err(ConfigError::new(
                    format!("scope_descriptions[{i}]"),
                    ConfigProblem::NotAResourceScope(s.clone()),
                ));
            }
        }
        self.policy.validate().map_err(|e| e.within("policy"))?;
        for (i, g) in self.scope_grants.iter().enumerate() {
            let at = format!("scope_grants[{i}]");
            if !known(&g.scope) {
                return Err(ConfigError::new(
                    at,
                    ConfigProblem::NotAResourceScope(g.scope.clone()),
                ));
            }
            if g.holders.is_open() {
                return Err(ConfigError::new(at, ConfigProblem::GrantsNobody));
            }
            g.holders
                .validate()
                .map_err(|e| e.within(&format!("{at}.holders")))?;
        }
        Ok(())
    }

    /// Sets the per-tool scopes.
    pub fn with_tool_scopes(mut self, tool_scopes: Vec<ToolScope>) -> Self {
        self.tool_scopes = tool_scopes;
        self
    }

    /// Sets whether the MCP server validates the `Mcp-Method`/`Mcp-Name` headers against the body itself
    /// ([`Self::mcp_server_validates_headers`]).
    pub fn mcp_server_validates_headers(mut self, validates: bool) -> Self {
        self.mcp_server_validates_headers = validates;
        self
    }

    /// Sets the browser origins allowed besides the resource's own.
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Sets the human-readable name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The RFC 9728 §3.1 metadata URL: `/.well-known/oauth-protected-resource` inserted between the origin and the
    /// resource's path.
    pub fn metadata_url(&self) -> String {
        match url::Url::parse(&self.resource) {
            Ok(u) => {
                let origin = u.origin().ascii_serialization();
                let path = u.path().trim_end_matches('/');
                format!("{origin}/.well-known/oauth-protected-resource{path}")
            }
            Err(_) => String::new(),
        }
    }
}

/// Signing algorithm for access tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256 (the default: small keys, small tokens, fast).
    #[default]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlg {
    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    /// Parses a JWS `alg` name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(SigningAlg::Es256),
            "RS256" => Some(SigningAlg::Rs256),
            "EdDSA" => Some(SigningAlg::EdDsa),
            _ => None,
        }
    }
}

/// Login regulation, after Authelia's: failed password logins are counted per account and per client address
/// in a window that starts with the first failure; reaching a limit bans that account or address for
/// [`Regulation::ban`], during which every login of it is refused, even with the right password, without a
/// password check. Counts and bans live in the store, so instances sharing a store share them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Regulation {
    /// Whether failures are counted and bans applied. Default on.
    pub enabled: bool,
    /// Failures of one account within the window that ban it. Default 5.
    pub max_failures_per_account: u64,
    /// Failures from one client address (an IPv6 /64) within the window that ban it. Default 20.
    pub max_failures_per_address: u64,
    /// How long failures are counted from the first one. Default 10 minutes.
    pub window: Duration,
    /// How long a ban lasts. Default 15 minutes.
    pub ban: Duration,
}

impl Default for Regulation {
    fn default() -> Self {
        Regulation {
            enabled: true,
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            window: Duration::from_secs(600),
            ban: Duration::from_secs(900),
        }
    }
}

impl Regulation {
    /// No counting, no bans.
    pub fn off() -> Self {
        Regulation {
            enabled: false,
            ..Regulation::default()
        }
    }

    /// Paths are relative to the regulation (`max_failures_per_account`).
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        for (field, n) in [
            ("max_failures_per_account", self.max_failures_per_account),
            ("max_failures_per_address", self.max_failures_per_address),
        ] {
            if n == 0 {
                return Err(ConfigError::new(field, ConfigProblem::Zero));
            }
        }
        for (field, d) in [("window", self.window), ("ban", self.ban)] {
            if d.as_secs() == 0 {
                return Err(ConfigError::new(field, ConfigProblem::UnderOneSecond));
            }
        }
        Ok(())
    }
}

/// Dynamic client registration policy (RFC 7591).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RegistrationPolicy {
    /// Whether `POST /register` needs an initial access token (RFC 7591 §3), given here by its hash.
    pub initial_access_tokens: Vec<crate::TokenHash>,
    /// Private-use URI schemes (RFC 8252 §7.1) accepted as redirect URIs, e.g. `cursor`.
    pub allowed_schemes: Vec<String>,
    /// Maximum number of redirect URIs per client.
    pub max_redirect_uris: usize,
    /// Maximum size of a registration request body, in bytes.
    pub max_metadata_bytes: usize,
    /// If a client asks for `client_secret_basic`/`client_secret_post`, register it as a public client
    /// (`none`) instead and say so in the response.
    pub downgrade_secret_to_none: bool,
    /// Most registered clients; a registration beyond it is refused (503 `temporarily_unavailable`). 0 = no cap.
    /// Default 10,000.
    pub max_clients: usize,
    /// A client that has not completed an authorization (redeemed a code) this long after registering is
    /// deleted. `None` keeps it. Default 24 hours.
    pub never_used_client_ttl: Option<Duration>,
    /// A client that has neither redeemed a code nor refreshed a token for this long is deleted, with its
    /// grants. `None` keeps it. Default 90 days.
    pub idle_client_ttl: Option<Duration>,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        RegistrationPolicy {
            initial_access_tokens: Vec::new(),
            allowed_schemes: vec!["cursor".into(), "vscode".into()],
            max_redirect_uris: 10,
            max_metadata_bytes: 16 * 1024,
            downgrade_secret_to_none: false,
            max_clients: 10_000,
            never_used_client_ttl: Some(Duration::from_secs(24 * 3600)),
            idle_client_ttl: Some(Duration::from_secs(90 * 24 * 3600)),
        }
    }
}

/// Whether the URL's host is a loopback host (`127.0.0.1`, `[::1]` or `localhost`).
pub(crate) fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): which URL `client_id`s the
/// server resolves, and the safeguards of the fetch. See the `cimd` module for why each bound exists.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientMetadataDocuments {
    /// Whether URL `client_id`s are resolved at all (and `client_id_metadata_document_supported` advertised).
    pub enabled: bool,
    /// Which hosts may serve client documents.
    pub hosts: HostPolicy,
    /// Development only: fetch from loopback, private, link-local and other non-public addresses too.
    pub allow_private_addresses: bool,
    /// Addresses fetched even though they are in a refused range (a private deployment's client host, or the
    /// tests' 127.0.0.1).
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Development only: accept `http://` client ids on a loopback host (`127.0.0.1`, `[::1]`, `localhost`);
    /// the address rules still apply, so loopback must also be allowed.
    pub allow_http_loopback: bool,
    /// Bound on one whole fetch: connect, TLS, headers and body.
    pub timeout: Duration,
    /// Largest document (or JWK set) accepted, in bytes; reading stops past it.
    pub max_document_bytes: usize,
    /// Shortest time a fetched document is reused (also for `no-store`, `no-cache` or no `Cache-Control`).
    pub cache_min: Duration,
    /// Longest time a fetched document is reused, whatever its `max-age` says.
    pub cache_max: Duration,
    /// How many documents (and JWK sets) are kept in memory.
    pub cache_capacity: usize,
    /// Extra certificate authorities trusted for the fetch, each PEM text (a private CA, or the tests' CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Whether the platform's usual roots are trusted too (false: only `extra_root_certificates`).
    pub builtin_roots: bool,
}

impl Default for ClientMetadataDocuments {
    fn default() -> Self {
        ClientMetadataDocuments {
            enabled: false,
            hosts: HostPolicy::Any,
            allow_private_addresses: false,
            allowed_networks: Vec::new(),
            allow_http_loopback: false,
            timeout: Duration::from_secs(3),
            max_document_bytes: 5 * 1024,
            cache_min: Duration::from_secs(300),
            cache_max: Duration::from_secs(24 * 3600),
            cache_capacity: 1000,
            extra_root_certificates: Vec::new(),
            builtin_roots: true,
        }
    }
}

impl ClientMetadataDocuments {
    /// Enabled, with the defaults: any host, public addresses only, https only, 3 s, 5 KiB, cached 5 min–24 h.
    pub fn enabled() -> Self {
        ClientMetadataDocuments {
            enabled: true,
            ..Self::default()
        }
    }

    /// Paths are relative to these settings (`timeout`).
    fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", ConfigProblem::Zero));
        }
        if self.max_document_bytes == 0 {
            return Err(ConfigError::new("max_document_bytes", ConfigProblem::Zero));
        }
        if self.cache_min > self.cache_max {
            return Err(ConfigError::new(
                "cache_min",
                ConfigProblem::Exceeds("cache_max"),
            ));
        }
        if self.cache_capacity == 0 {
            return Err(ConfigError::new("cache_capacity", ConfigProblem::Zero));
        }
        if self.enabled && !self.builtin_roots && self.extra_root_certificates.is_empty() {
            return Err(ConfigError::new(
                "builtin_roots",
                ConfigProblem::NoTrustedRoots,
            ));
        }
        Ok(())
    }
}

/// Which hosts may serve client metadata documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HostPolicy {
    /// Any host (the address rules still apply).
    #[default]
    Any,
    /// Only hosts matching one of these patterns.
    Allow(Vec<HostPattern>),
    /// Every host except those matching one of these patterns.
    Deny(Vec<HostPattern>),
}

impl HostPolicy {
    /// Whether a client document may be fetched from `host`.
    pub fn permits(&self, host: &str) -> bool {
        match self {
            HostPolicy::Any => true,
            HostPolicy::Allow(list) => list.iter().any(|p| p.matches(host)),
            HostPolicy::Deny(list) => !list.iter().any(|p| p.matches(host)),
        }
    }
}

/// A host name pattern: exact (`claude.ai`), or every subdomain of a domain (`*.example.com`, which does not
/// match `example.com` itself). Compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// [`ConfigProblem::NotAHostPattern`] when the pattern is empty, has a wildcard anywhere but a leading `*.`, or
    /// characters no host name has. The caller knows which list it sits in, and adds the path.
    pub fn parse(pattern: &str) -> Result<Self, ConfigProblem> {
        let lower = pattern.to_ascii_lowercase();
        let name = lower.strip_prefix("*.").unwrap_or(&lower);
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && !name.ends_with('.')
            && name.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
            });
        if !valid {
            return Err(ConfigProblem::NotAHostPattern(pattern.to_owned()));
        }
        Ok(HostPattern(lower))
    }

    /// Whether `host` matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == self.0,
        }
    }

    /// The pattern as written (lower-cased).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    fn person(subject: &str, username: &str, email: &str, groups: &[&str]) -> crate::Identity {
        crate::Identity {
            subject: subject.into(),
            username: Some(username.into()),
            email: Some(email.into()),
            name: None,
            groups: s(groups),
        }
    }

    #[test]
    fn a_policy_name_matches_only_users_of_the_provider_it_names() {
        let octocat = person(
            "github:583231",
            "octocat",
            "oc@acme.example",
            &["acme/platform"],
        );
        let kc = person(
            "keycloak:f81d",
            "octocat",
            "oc@acme.example",
            &["acme/platform"],
        );
        for (policy, github, keycloak) in [
            (
                AccessPolicy::new(s(&["github:OctoCat"]), vec![], vec![], vec![]),
                true,
                false,
            ),
            (
                AccessPolicy::new(s(&["github:583231"]), vec![], vec![], vec![]),
                true,
                false,
            ),
            (
                AccessPolicy::new(s(&["keycloak:f81d"]), vec![], vec![], vec![]),
                false,
                true,
            ),
            (
                AccessPolicy::new(s(&["keycloak:F81D"]), vec![], vec![], vec![]),
                false,
                false,
            ),
            (
                AccessPolicy::new(vec![], s(&["github:OC@acme.example"]), vec![], vec![]),
                true,
                false,
            ),
            (
                AccessPolicy::new(vec![], vec![], s(&["keycloak:acme.example"]), vec![]),
                false,
                true,
            ),
            (
                AccessPolicy::new(vec![], vec![], vec![], s(&["github:acme/platform"])),
                true,
                false,
            ),
            (
                AccessPolicy::new(vec![], vec![], vec![], s(&["keycloak:acme/platform"])),
                false,
                true,
            ),
            (
                AccessPolicy::new(vec![], vec![], vec![], s(&["github:acme/PLATFORM"])),
                false,
                false,
            ),
            // Without a provider a name matches nobody (validate refuses it; an embedder that skips it gets no match).
            (
                AccessPolicy::new(s(&["octocat"]), vec![], vec![], s(&["acme/platform"])),
                false,
                false,
            ),
        ] {
            assert_eq!(
                (policy.admits(&octocat), policy.admits(&kc)),
                (github, keycloak),
                "{policy:?}"
            );
        }
        let no_provider = person("octocat", "octocat", "oc@acme.example", &[]);
        assert!(
            !AccessPolicy::new(s(&["octocat:octocat"]), vec![], vec![], vec![])
                .admits(&no_provider)
        );
    }

    #[test]
    fn validation_names_a_policy_entry_without_a_provider_and_a_grant_of_nobody() {
        let resource =
            || ResourceConfig::new("https://mcp.example.com/mcp", s(&["mcp", "mcp:admin"]));
        let cases = [
            (
                resource().with_policy(AccessPolicy::new(
                    vec![],
                    vec![],
                    vec![],
                    s(&["local:a", "staff"]),
                )),
                "resources[0].policy.groups[1]: \"staff\" must name its identity provider, as `provider:name` (`github:acme/platform`, `keycloak:mcp-users`, `local:alice`)",
            ),
            (
                resource()
                    .with_scope_grants(vec![ScopeGrant::new("mcp:admin", AccessPolicy::default())]),
                "resources[0].scope_grants[0]: lists nobody; remove the entry to let everyone the resource admits hold the scope",
            ),
            (
                resource().with_scope_grants(vec![ScopeGrant::new(
                    "other",
                    AccessPolicy::new(s(&["local:a"]), vec![], vec![], vec![]),
                )]),
                "resources[0].scope_grants[0]: scope `other` is not one of this resource's scopes",
            ),
            (
                resource().with_scope_grants(vec![ScopeGrant::new(
                    "mcp:admin",
                    AccessPolicy::new(s(&[":a"]), vec![], vec![], vec![]),
                )]),
                "resources[0].scope_grants[0].holders.users[0]: \":a\" must name its identity provider, as `provider:name` (`github:acme/platform`, `keycloak:mcp-users`, `local:alice`)",
            ),
            (
                resource().with_scope_descriptions(vec![("nope".into(), "x".into())]),
                "resources[0].scope_descriptions[0]: scope `nope` is not one of this resource's scopes",
            ),
        ];
        for (r, message) in cases {
            let config = ServerConfig::new("https://auth.example.com", vec![r]);
            assert_eq!(config.validate().unwrap_err().to_string(), message);
        }
        let mut config = ServerConfig::new("https://auth.example.com", vec![resource()]);
        config.policy = AccessPolicy::new(vec![], s(&["a@b.example"]), vec![], vec![]);
        assert_eq!(
            config.validate().unwrap_err().path,
            "policy.emails[0]",
            "the server-wide policy too"
        );
    }

    #[test]
    fn a_scope_is_held_by_those_its_grant_lists_and_by_everyone_without_a_grant() {
        let r = ResourceConfig::new("https://mcp.example.com/mcp", s(&["mcp", "mcp:admin"]))
            .require(s(&["mcp"]))
            .with_scope_grants(vec![ScopeGrant::new(
                "mcp:admin",
                AccessPolicy::new(vec![], vec![], vec![], s(&["local:admins"])),
            )]);
        let admin = person("local:ann", "ann", "ann@example.com", &["admins"]);
        let plain = person("local:bob", "bob", "bob@example.com", &["staff"]);
        assert!(r.may_hold(&admin, "mcp") && r.may_hold(&admin, "mcp:admin"));
        assert!(r.may_hold(&plain, "mcp") && !r.may_hold(&plain, "mcp:admin"));
        assert!(
            !r.may_hold(&admin, "other"),
            "a scope the resource does not know"
        );
        assert_eq!(
            r.defaults(),
            ["mcp"],
            "no default_scopes: the required ones"
        );
        assert_eq!(
            r.clone().with_default_scopes(s(&["mcp:admin"])).defaults(),
            ["mcp:admin"]
        );
    }
}
