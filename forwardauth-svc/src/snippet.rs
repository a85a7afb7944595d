//! `forwardauth-svc snippet`: the proxy configuration that puts this service in front of MCP servers, so nobody
//! hand-writes routes, priorities or header rules.
//!
//! For every host of the given MCP URLs it prints one block (an nginx `server`, a Caddy site, or Traefik
//! routers) that does the same four things:
//!
//! 1. **Discovery, the OAuth endpoints and the login pages go to this service, unauthenticated**: every entry of
//!    [`crate::endpoints::ENDPOINTS`] marked `on_mcp_host`, so a route the service adds is routed by every proxy.
//!    On Traefik this router has a higher priority than the catch-all. CORS preflights (`OPTIONS`) go to the
//!    service too, which answers them for the allowed origins: a preflight is never forwarded to the MCP server
//!    without a token.
//! 2. **Everything else on the host is the MCP server, behind `/verify`**: a catch-all, so no path of the MCP
//!    server is left open; a path that is no configured resource is refused by the gate (403).
//! 3. **Identity headers come only from the gate**: the client's own `X-User-Id`, … are removed or overwritten
//!    before the gate's answer is copied onto the request (Caddy's `copy_headers` keeps a client's header when
//!    the gate sends none, hence the explicit strip), and so are their `_` and `.` spellings (`X_User_Id`),
//!    which servers that map header names to CGI-style variables read as the same header. (nginx drops such
//!    names itself: `underscores_in_headers` and `ignore_invalid_headers` are off and on by default.)
//! 4. **No token passthrough**: `Authorization` is removed after the gate and before the MCP server (MCP
//!    security best practices, "Token Passthrough").
//!
//! **Stdio MCP servers.** The MCP server need not speak HTTP itself: `mcp-bridge` (crate `mcp-bridge/`) serves a
//! stdio MCP server over Streamable HTTP, one process per user, and learns the user from the identity headers
//! that points 3 and 4 leave as the gate's alone; it believes them only from the proxy's address (its
//! `--trusted-proxy`). Point `--upstream` at the bridge; nothing else in the snippet changes (README, "A stdio MCP
//! server behind the gate").
//!
//! Proxy specifics: nginx copies `WWW-Authenticate` from an `auth_request` only on 401, and none of the gate's
//! CORS headers, so both refusals go through an `error_page` that restores them; nginx and Caddy get SSE-friendly proxying for streamable HTTP. The gate is
//! told the original request through headers that the proxy sets itself, never ones a client could add:
//! nginx sets both header families to the same values, Caddy drops `X-Original-*`, and nginx and Traefik
//! forward only the headers the gate reads ([`GATE_REQUEST_HEADERS`]; nginx then also passes the MCP server
//! the one value of each that the gate read).
//!
//! **Connections to the gate.** Every guarded request costs one call to `/verify`, so that call must reuse its
//! connection: a TCP handshake and teardown per request cost the proxy and the service more than the check
//! itself. nginx does not reuse a connection on its own: `proxy_pass` to an address (an `auth_request`
//! subrequest included) opens a new connection for each request and asks HTTP/1.0 with `Connection: close`. So
//! the nginx snippet declares the gate as an `upstream` with `keepalive`, and its internal `/verify` location
//! speaks HTTP/1.1 without `Connection: close` and asks with `HEAD`: nginx reads only the head of an
//! `auth_request` answer and keeps the connection only when the answer has no body, which the gate's 401 and 403
//! (JSON) otherwise have; the gate reads the guarded request's method from `X-Original-Method`, not from its
//! own. The `upstream` sits beside the `server` blocks in the `http {}` context the snippet is included in; it
//! is named after the snippet's hosts, so that snippets for other hosts can sit beside it. The MCP server gets
//! an `upstream` with `keepalive` for the same reason; its `keepalive_timeout` (4 s) stays below the idle timeout
//! common MCP servers keep (Node.js and uvicorn: 5 s), because nginx does not retry a `POST` sent on a
//! connection the server closed meanwhile. Caddy and Traefik need nothing: Caddy's `forward_auth` is a `reverse_proxy` whose HTTP transport keeps connections alive by
//! default (up to 32 idle per upstream host, for 2 minutes), and Traefik's `forwardAuth` calls the gate through
//! a Go `http.Client` on Go's default transport, which keeps connections alive too (though it keeps only 2 idle
//! per host, so under concurrency some are closed and reopened; `forwardAuth` has no setting for it). A check
//! sent on a connection the gate closes at that moment is lost; nginx and Caddy retry it (it is idempotent), Go
//! retries only a request it can replay, which a `forwardBody` check is not. So the gate keeps idle connections
//! longer than any of them does (`[http] keep_alive_secs`, 300 s; Traefik's 90 s, Caddy's 2 minutes, the nginx
//! snippet's 60 s): the proxy, not the gate, closes an idle connection.
//!
//! **Request bodies, for per-tool scopes.** A per-tool rule needs the JSON-RPC call, which is in the body. Only
//! Traefik can send the gate the body (`forwardBody: true`, buffered up to `maxBodySize`, which the snippet sets
//! to the service's default `[gate] max_body_kib`; beyond it Traefik itself answers an empty 401); its snippet
//! does, so the gate reads the call from the body and answers 400 when `Mcp-Method`/`Mcp-Name` disagree with it.
//! nginx's `auth_request` subrequest runs before nginx reads the body (checked with nginx 1.22: `$request_body`
//! is empty there, and `proxy_pass_request_body on` sends a `Content-Length` without the body, so the check
//! times out), and there is no njs in the packaged nginx to read it; Caddy 2.6's `forward_auth` asks with a `GET`
//! without the body. Their snippets say so: behind them, a resource's tool rules need every tool scope on every
//! `POST`, unless it sets `mcp_server_validates_headers` (see `oauth_core::ResourceConfig`).
//!
//! **Trace context.** With `[tracing]` configured the gate's `/verify` span continues the W3C `traceparent` of
//! the check, so each proxy must pass one: nginx's auth subrequest and Traefik's `authRequestHeaders` name
//! `traceparent` and `tracestate` ([`TRACE_CONTEXT_HEADERS`]) beside the headers the gate reads, and Caddy's
//! `forward_auth` sends every header of the request. Each then passes on what the client sent, or, when the
//! proxy traces itself (Caddy's `tracing`, Traefik's `tracing`), its own context.
//!
//! The first line of every snippet is the command that prints it; the files under `deploy/` are such output,
//! and a test regenerates them from that line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use url::Url;

use crate::config::{GateConfig, IdentityHeaders};
use crate::endpoints;

/// The client's request headers the gate reads, and with [`TRACE_CONTEXT_HEADERS`] the only ones Traefik
/// (`authRequestHeaders`) and nginx (the auth subrequest) forward to it: the credentials, the CORS origin and the 2026-07-28 MCP request headers that
/// per-tool scopes read. Any other header would only add to what the service has to parse: more than 96 header
/// lines or 128 KiB and its HTTP layer answers 431 or closes, which nginx turns into a 500.
pub const GATE_REQUEST_HEADERS: &[&str] = &[
    "Authorization",
    "Origin",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
];

/// The W3C Trace Context headers, which nginx and Traefik forward to the gate beside [`GATE_REQUEST_HEADERS`]
/// (Caddy's `forward_auth` sends every request header): with `[tracing]` configured, the gate's span of
/// `/verify` continues the trace they name, which is the client's (or a proxy's in front) unless the proxy
/// traces itself and writes its own.
pub const TRACE_CONTEXT_HEADERS: &[&str] = &["traceparent", "tracestate"];

/// The proxy to print a configuration for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxy {
    /// Traefik v3, file-provider dynamic configuration (YAML).
    Traefik,
    /// nginx with `ngx_http_auth_request_module`.
    Nginx,
    /// Caddy v2 (Caddyfile).
    Caddy,
}

impl Proxy {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Proxy::Traefik => "traefik",
            Proxy::Nginx => "nginx",
            Proxy::Caddy => "caddy",
        }
    }
}

/// What to print a configuration for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    /// The proxy.
    pub proxy: Proxy,
    /// The MCP URLs clients are configured with (each must be a `[[resources]]` resource).
    pub mcp_urls: Vec<String>,
    /// Where the proxy reaches this service, e.g. `http://forwardauth:8080`.
    pub auth_url: String,
    /// Where the proxy reaches the MCP server, e.g. `http://mcp-server:3001`; request paths are kept.
    pub upstream: String,
    /// nginx and Caddy: the address to listen on (default: all).
    pub bind: Option<IpAddr>,
}

/// Why a snippet cannot be printed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnippetError {
    /// No `--mcp-url`.
    #[error("give at least one --mcp-url")]
    NoMcpUrl,
    /// A URL option is unusable.
    #[error("--{option} {url}: {reason}")]
    Url {
        /// The option.
        option: &'static str,
        /// The value.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// One MCP host: its scheme, host and port, and the MCP URLs on it.
struct Site {
    https: bool,
    host: String,
    port: u16,
    urls: Vec<String>,
}

impl Site {
    /// `host` or `host:port` as clients write it (no default port).
    fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// A name usable in Traefik router names: `mcp-example-com`.
    fn slug(&self) -> String {
        slug(&self.authority())
    }
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn bad(option: &'static str, url: &str, reason: impl Into<String>) -> SnippetError {
    SnippetError::Url {
        option,
        url: url.to_owned(),
        reason: reason.into(),
    }
}

/// An `http(s)://host[:port]` URL with at most `/` as its path.
fn origin(option: &'static str, raw: &str) -> Result<Url, SnippetError> {
    let url = Url::parse(raw).map_err(|e| bad(option, raw, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(option, raw, "must be an http or https URL with a host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            option,
            raw,
            "must be an origin like http://host:port, without a path",
        ));
    }
    Ok(url)
}

/// The origin without the trailing `/` that `Url` adds.
fn origin_string(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

fn sites(urls: &[String]) -> Result<Vec<Site>, SnippetError> {
    if urls.is_empty() {
        return Err(SnippetError::NoMcpUrl);
    }
    let mut by_origin: BTreeMap<(bool, String, u16), Vec<String>> = BTreeMap::new();
    for raw in urls {
        let url = Url::parse(raw).map_err(|e| bad("mcp-url", raw, e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("mcp-url", raw, "must be an http or https URL")),
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(bad("mcp-url", raw, "has no host"));
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("mcp-url", raw, "must not carry credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("mcp-url", raw, "must not have a query or fragment"));
        }
        by_origin
            .entry((https, host.to_owned(), port))
            .or_default()
            .push(raw.clone());
    }
    Ok(by_origin
        .into_iter()
        .map(|((https, host, port), urls)| Site {
            https,
            host,
            port,
            urls,
        })
        .collect())
}

/// The command line that prints `s` (the first line of every snippet).
pub fn command_line(s: &Snippet) -> String {
    let mut cmd = format!("forwardauth-svc snippet --proxy {}", s.proxy.name());
    for u in &s.mcp_urls {
        let _ = write!(cmd, " --mcp-url {u}");
    }
    let _ = write!(cmd, " --auth-url {} --upstream {}", s.auth_url, s.upstream);
    if let Some(b) = s.bind {
        let _ = write!(cmd, " --bind {b}");
    }
    cmd
}

/// Prints the configuration.
///
/// # Errors
/// [`SnippetError`] for a missing or unusable URL.
pub fn render(s: &Snippet) -> Result<String, SnippetError> {
    let sites = sites(&s.mcp_urls)?;
    let auth_url = origin("auth-url", &s.auth_url)?;
    let auth = origin_string(&auth_url);
    let upstream_url = origin("upstream", &s.upstream)?;
    let upstream = origin_string(&upstream_url);
    let headers = identity_headers();
    let mut out = format!("# {}\n", command_line(s));
    match s.proxy {
        Proxy::Nginx => nginx(&mut out, &sites, &auth_url, &upstream_url, s.bind, &headers),
        Proxy::Caddy => caddy(&mut out, &sites, &auth, &upstream, s.bind, &headers),
        Proxy::Traefik => traefik(&mut out, &sites, &auth, &upstream, &headers),
    }
    Ok(out)
}

/// The identity header names `/verify` sends by default.
fn identity_headers() -> Vec<String> {
    let h = IdentityHeaders::default();
    vec![h.user_id, h.user_name, h.user_email, h.client_id, h.scopes]
}

fn resources_note(out: &mut String, sites: &[Site]) {
    out.push_str(
        "# forwardauth-svc must list each MCP URL as a [[resources]] `resource`, exactly as clients are given it:\n",
    );
    for site in sites {
        for u in &site.urls {
            let _ = writeln!(out, "#   {u}");
        }
    }
}

/// nginx: `$upstream_http_x_user_id` for `X-User-Id`.
fn nginx_var(header: &str) -> String {
    header.to_ascii_lowercase().replace('-', "_")
}

/// Every spelling of an identity header with `_` or `.` for any of its `-`: `X_User_Id`, `X.User-Id`, …
/// Servers that map header names to variables (CGI, WSGI, PHP) read each as the header itself.
pub fn alias_spellings(header: &str) -> Vec<String> {
    let mut parts = header.split('-');
    let mut spellings: Vec<String> = parts.next().map(str::to_owned).into_iter().collect();
    for part in parts {
        spellings = spellings
            .iter()
            .flat_map(|prefix| ['-', '_', '.'].map(|sep| format!("{prefix}{sep}{part}")))
            .collect();
    }
    spellings.retain(|s| s != header);
    spellings
}

/// The name of the MCP server's `upstream` in an nginx snippet, after the snippet's hosts like the gate's.
fn nginx_mcp_upstream(sites: &[Site]) -> String {
    let hosts: Vec<String> = sites.iter().map(Site::authority).collect();
    format!("forwardauth-mcp-{}", slug(&hosts.join(" ")))
}

/// The name of the gate's `upstream` in an nginx snippet: after the snippet's hosts, so that the snippets of
/// other hosts, included in the same `http {}` block, declare their own.
fn nginx_gate_upstream(sites: &[Site]) -> String {
    let hosts: Vec<String> = sites.iter().map(Site::authority).collect();
    format!("forwardauth-gate-{}", slug(&hosts.join(" ")))
}

/// `host:port` of a URL for an nginx `server` line: the host as `Url` writes it (IPv6 in brackets), the port
/// spelled out.
fn nginx_server(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    )
}

fn nginx(
    out: &mut String,
    sites: &[Site],
    auth_url: &Url,
    upstream_url: &Url,
    bind: Option<IpAddr>,
    headers: &[String],
) {
    let auth = origin_string(auth_url);
    let auth_scheme = auth_url.scheme();
    // As nginx's `$proxy_host` was when `proxy_pass` named the service: the port only when not the default.
    let auth_authority = auth
        .trim_start_matches(&format!("{auth_scheme}://"))
        .to_owned();
    let auth_server = nginx_server(auth_url);
    out.push_str(concat!(
        "# nginx with ngx_http_auth_request_module (Debian: nginx-light or nginx-full). Put this in the http {} block,\n",
        "# e.g. as /etc/nginx/conf.d/mcp.conf. Keep nginx's defaults underscores_in_headers off and\n",
        "# ignore_invalid_headers on: they drop X_User_Id-style spellings of the identity headers.\n",
    ));
    resources_note(out, sites);
    let gate = nginx_gate_upstream(sites);
    let _ = write!(
        out,
        concat!(
            "\n# The gate, over connections kept open. Every request to an MCP server costs a call to /verify, and\n",
            "# without `keepalive` nginx opens (and closes) a TCP connection for each, which costs more than the check\n",
            "# itself. keepalive_timeout stays below forwardauth-svc's own idle timeout ([http] keep_alive_secs, 300 s by\n",
            "# default), so that nginx does not pick a connection the service is closing (should a reused connection\n",
            "# fail, nginx retries the check, which is idempotent).\n",
            "upstream {gate} {{\n",
            "    server {server};\n",
            "    keepalive 32;\n",
            "    keepalive_timeout 60s;\n",
            "}}\n",
        ),
        gate = gate,
        server = auth_server,
    );
    let mcp = nginx_mcp_upstream(sites);
    let _ = write!(
        out,
        concat!(
            "\n# The MCP server, over connections kept open too: without `keepalive` nginx opens a connection for every\n",
            "# request it passes on. keepalive_timeout must stay below the MCP server's own idle timeout (Node.js and\n",
            "# uvicorn: 5 s; lower it for a server that closes idle connections sooner): nginx does not retry a POST\n",
            "# sent on a connection the server closed in the meantime.\n",
            "upstream {mcp} {{\n",
            "    server {server};\n",
            "    keepalive 32;\n",
            "    keepalive_timeout 4s;\n",
            "}}\n",
        ),
        mcp = mcp,
        server = nginx_server(upstream_url),
    );
    let upstream = format!("{}://{mcp}", upstream_url.scheme());
    // Through an `upstream`, nginx would name the TLS peer after the upstream block: name it after the host.
    let upstream_tls = if upstream_url.scheme() == "https" {
        format!(
            "        proxy_ssl_name {};\n",
            upstream_url.host_str().unwrap_or_default()
        )
    } else {
        String::new()
    };
    let to_auth = format!(
        "        proxy_pass {auth};\n        proxy_set_header Host $http_host;\n        proxy_set_header X-Forwarded-Proto $scheme;\n        proxy_set_header X-Forwarded-Host $http_host;\n        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
    );
    for site in sites {
        let listen_addr = match bind {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{}", site.port),
            Some(ip) => format!("{ip}:{}", site.port),
            None => site.port.to_string(),
        };
        let _ = writeln!(out, "\nserver {{");
        if site.https {
            let _ = writeln!(out, "    listen {listen_addr} ssl;");
            let _ = writeln!(out, "    server_name {};", site.host);
            let _ = writeln!(
                out,
                "    ssl_certificate     /etc/ssl/{0}/fullchain.pem;\n    ssl_certificate_key /etc/ssl/{0}/privkey.pem;",
                site.host
            );
        } else {
            let _ = writeln!(out, "    listen {listen_addr};");
            let _ = writeln!(out, "    server_name {};", site.host);
        }
        out.push_str(
            "\n    # Discovery, the OAuth endpoints and the login pages: forwardauth-svc, unauthenticated.\n",
        );
        for path in endpoints::mcp_host_exact() {
            let _ = writeln!(out, "    location = {path} {{\n{to_auth}    }}");
        }
        for prefix in endpoints::mcp_host_prefixes() {
            let _ = writeln!(out, "    location ^~ {prefix} {{\n{to_auth}    }}");
        }

        out.push_str(concat!(
            "\n    # Everything else: the MCP server, behind the gate.\n",
            "    location / {\n",
            "        # CORS preflights are answered by forwardauth-svc, never sent on to the MCP server without a token.\n",
            "        error_page 418 = @forwardauth_preflight;\n",
            "        if ($request_method = OPTIONS) {\n",
            "            return 418;\n",
            "        }\n",
            "        auth_request /_forwardauth/verify;\n",
            "        # nginx passes the gate's WWW-Authenticate on a 401 by itself, but not on a 403, and never its CORS\n",
            "        # headers: keep them for @forwardauth_401 and @forwardauth_403.\n",
            "        auth_request_set $forwardauth_www_authenticate $upstream_http_www_authenticate;\n",
            "        auth_request_set $forwardauth_allow_origin $upstream_http_access_control_allow_origin;\n",
            "        auth_request_set $forwardauth_expose_headers $upstream_http_access_control_expose_headers;\n",
            "        error_page 401 = @forwardauth_401;\n",
            "        error_page 403 = @forwardauth_403;\n",
        ));
        for h in headers {
            let v = nginx_var(h);
            let _ = writeln!(
                out,
                "        auth_request_set $forwardauth_{v} $upstream_http_{v};"
            );
        }
        out.push_str(
            "        # Identity only from the gate (an empty value removes a client's header); never the client's token.\n",
        );
        for h in headers {
            let _ = writeln!(
                out,
                "        proxy_set_header {h} $forwardauth_{};",
                nginx_var(h)
            );
        }
        out.push_str(concat!(
            "        # The one value of each header the gate read (nginx passes it the first of repeated lines), not
",
            "        # the client's repeats.
",
        ));
        for h in GATE_REQUEST_HEADERS
            .iter()
            .filter(|h| **h != "Authorization")
        {
            let _ = writeln!(out, "        proxy_set_header {h} $http_{};", nginx_var(h));
        }
        let refusal = |status: u16, challenge: bool| {
            let mut block = format!("    location @forwardauth_{status} {{\n");
            if challenge {
                block.push_str(
                    "        add_header WWW-Authenticate $forwardauth_www_authenticate always;\n",
                );
            }
            block.push_str(concat!(
                "        add_header Access-Control-Allow-Origin $forwardauth_allow_origin always;\n",
                "        add_header Access-Control-Expose-Headers $forwardauth_expose_headers always;\n",
                "        add_header Vary Origin always;\n",
                "        add_header Cache-Control no-store always;\n",
                "        default_type application/json;\n",
            ));
            let _ = write!(
                block,
                "        return {status} '{{\"error\":\"{}\",\"error_description\":\"see the WWW-Authenticate header\"}}';\n    }}\n",
                if status == 401 {
                    "unauthorized"
                } else {
                    "forbidden"
                }
            );
            block
        };
        let _ = write!(
            out,
            concat!(
                "        proxy_set_header Authorization \"\";\n",
                "        proxy_set_header Host $http_host;\n",
                "        proxy_set_header X-Forwarded-Proto $scheme;\n",
                "        proxy_set_header X-Forwarded-Host $http_host;\n",
                "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n",
                "        # Streamable HTTP: responses may be long-lived SSE streams.\n",
                "        proxy_http_version 1.1;\n",
                "        proxy_set_header Connection \"\";\n",
                "        proxy_buffering off;\n",
                "        proxy_cache off;\n",
                "        proxy_read_timeout 1h;\n",
                "        proxy_send_timeout 1h;\n",
                "{upstream_tls}",
                "        proxy_pass {upstream};\n",
                "    }}\n",
                "\n",
                "    location = /_forwardauth/verify {{\n",
                "        internal;\n",
                "        proxy_pass {auth_scheme}://{gate}/verify;\n",
                "        # HTTP/1.1 without `Connection: close`: the connection goes back to the upstream's keepalive pool.\n",
                "        proxy_http_version 1.1;\n",
                "        proxy_set_header Connection \"\";\n",
                "        # HEAD, so that no answer of the gate has a body: nginx reads only the head of an auth_request\n",
                "        # answer and closes a connection whose body it left unread (the gate's 401 and 403 carry JSON).\n",
                "        proxy_method HEAD;\n",
                "        proxy_set_header Host {auth_authority};\n",
                "        # No body: the auth subrequest runs before nginx reads it. So per-tool scopes cannot read the\n",
                "        # JSON-RPC call: they need every tool scope on every POST, unless the resource sets\n",
                "        # mcp_server_validates_headers (then the Mcp-Method/Mcp-Name headers of 2026-07-28 requests count).\n",
                "        proxy_pass_request_body off;\n",
                "        # Without this nginx still sends the request's Content-Length (the subrequest shares its headers),\n",
                "        # announcing a body that never comes.\n",
                "        proxy_set_header Content-Length \"\";\n",
                "        # Only the headers the gate reads: however many the client sends, the gate answers 200, 401 or\n",
                "        # 403 (anything else from it is a 500 here), and no client-sent X-Forwarded-* or X-Original-*.\n",
                "        proxy_pass_request_headers off;\n",
                "{gate_headers}",
                "        # The original request, in both header families with the same values.\n",
                "        proxy_set_header X-Original-URL $scheme://$http_host$request_uri;\n",
                "        proxy_set_header X-Original-Method $request_method;\n",
                "        proxy_set_header X-Forwarded-Method $request_method;\n",
                "        proxy_set_header X-Forwarded-Proto $scheme;\n",
                "        proxy_set_header X-Forwarded-Host $http_host;\n",
                "        proxy_set_header X-Forwarded-Uri $request_uri;\n",
                "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n",
                "        # W3C Trace Context, so that the gate's span joins the request's trace: passed on as it came. With\n",
                "        # nginx's OpenTelemetry module (otel_trace on; otel_trace_context propagate), make nginx's span of\n",
                "        # the request the parent instead (in this subrequest, $otel_parent_id is that span):\n",
                "        #   proxy_set_header traceparent 00-$otel_trace_id-$otel_parent_id-0$otel_parent_sampled;\n",
                "{trace_headers}",
                "    }}\n",
                "\n",
                "    location @forwardauth_preflight {{\n",
                "{to_auth}",
                "    }}\n",
                "\n",
                "{r401}",
                "\n",
                "{r403}",
                "}}\n",
            ),
            upstream = upstream,
            upstream_tls = upstream_tls,
            auth_scheme = auth_scheme,
            gate = gate,
            auth_authority = auth_authority,
            gate_headers = GATE_REQUEST_HEADERS
                .iter()
                .map(|h| format!("        proxy_set_header {h} $http_{};\n", nginx_var(h)))
                .collect::<String>(),
            trace_headers = TRACE_CONTEXT_HEADERS
                .iter()
                .map(|h| format!("        proxy_set_header {h} $http_{};\n", nginx_var(h)))
                .collect::<String>(),
            to_auth = to_auth,
            r401 = refusal(401, false),
            r403 = refusal(403, true),
        );
    }
}

fn caddy(
    out: &mut String,
    sites: &[Site],
    auth: &str,
    upstream: &str,
    bind: Option<IpAddr>,
    headers: &[String],
) {
    out.push_str("# Caddy v2 site blocks for the Caddyfile.\n");
    resources_note(out, sites);
    let mut paths: Vec<String> = endpoints::mcp_host_exact().map(str::to_owned).collect();
    paths.extend(endpoints::mcp_host_prefixes().map(|p| format!("{p}*")));
    for site in sites {
        let _ = writeln!(out, "\n{}://{} {{", site.scheme(), site.authority());
        if let Some(b) = bind {
            let _ = writeln!(out, "\tbind {b}");
        }
        let _ = writeln!(
            out,
            concat!(
                "\n\t# Discovery, the OAuth endpoints and the login pages: forwardauth-svc, unauthenticated.\n",
                "\t@forwardauth path {}\n\thandle @forwardauth {{\n\t\treverse_proxy {auth}\n\t}}\n",
                "\n\t# CORS preflights are answered by forwardauth-svc, never sent on to the MCP server without a token.\n",
                "\t@forwardauth_preflight method OPTIONS\n\thandle @forwardauth_preflight {{\n\t\treverse_proxy {auth}\n\t}}",
            ),
            paths.join(" "),
            auth = auth,
        );
        out.push_str(concat!(
            "\n\t# Everything else: the MCP server, behind the gate. `route` keeps the order as written.\n",
            "\thandle {\n",
            "\t\troute {\n",
            "\t\t\t# copy_headers leaves a client's header in place when the gate sends none: drop them first, with\n",
            "\t\t\t# their `_` and `.` spellings, which CGI-style servers read as the same header.\n",
        ));
        for h in headers {
            let _ = writeln!(out, "\t\t\trequest_header -{h}");
            for alias in alias_spellings(h) {
                let _ = writeln!(out, "\t\t\trequest_header -{alias}");
            }
        }
        let _ = write!(
            out,
            concat!(
                "\t\t\t# forward_auth asks with a GET without the body, so per-tool scopes cannot read the JSON-RPC call:\n",
                "\t\t\t# they need every tool scope on every POST, unless the resource sets mcp_server_validates_headers\n",
                "\t\t\t# (then the Mcp-Method/Mcp-Name headers of 2026-07-28 requests count).\n",
                "\t\t\tforward_auth {auth} {{\n",
                "\t\t\t\turi /verify\n",
                "\t\t\t\t# Caddy sends X-Forwarded-Method/-Uri; the other header family must not come from the client.\n",
                "\t\t\t\theader_up -X-Original-URL\n",
                "\t\t\t\theader_up -X-Original-URI\n",
                "\t\t\t\theader_up -X-Original-Method\n",
                "\t\t\t\tcopy_headers {headers}\n",
                "\t\t\t}}\n",
                "\t\t\t# No token passthrough.\n",
                "\t\t\trequest_header -Authorization\n",
                "\t\t\treverse_proxy {upstream} {{\n",
                "\t\t\t\t# Streamable HTTP: pass SSE events on as they come.\n",
                "\t\t\t\tflush_interval -1\n",
                "\t\t\t}}\n",
                "\t\t}}\n",
                "\t}}\n",
                "}}\n",
            ),
            auth = auth,
            headers = headers.join(" "),
            upstream = upstream,
        );
    }
}

/// A YAML double-quoted string.
fn yq(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Traefik v3 dynamic configuration (file provider): per host, the OAuth router above the gated catch-all, the
/// two middlewares and the two services.
///
/// **Entry points.** Traefik's `Host()` matcher ignores the port, so a host is told apart by the entry point
/// its routers are bound to: on the default port that is `web` (http, :80) or `websecure` (https, :443), the
/// entry points of `deploy/traefik/traefik.yml`; on any other port it is `web-<port>` or `websecure-<port>`, and
/// the header comment lists those with the address the static configuration must give them.
///
/// **The gate.** `trustForwardHeader: false`: the gate is told the request only through the `X-Forwarded-*`
/// headers Traefik sets itself, and every client-sent `X-Forwarded-*` is dropped; `maxResponseBodySize` bounds
/// what Traefik reads of the gate's answer (small JSON documents). Traefik 3.7 warns when either is unset.
///
/// **Identity-header aliases.** `authResponseHeaders` replaces the client's `X-User-Id`, but a client's
/// `X_User_Id` or `X.User.Id` is another header to Traefik and reaches the MCP server beside the gate's, where
/// a backend that maps header names to variables (CGI, WSGI, PHP: `HTTP_X_USER_ID`) reads it as `X-User-Id`.
/// The headers middleware after the gate removes every spelling of every identity header with `_` or `.` for
/// one or more of its `-` (an empty `customRequestHeaders` value deletes the header; Go matches the name
/// case-insensitively). The entry points' `http.aliasHeadersStrategy: delete` (static configuration) drops
/// every such header first; this middleware keeps the identity headers safe where that option is not set.
fn traefik(out: &mut String, sites: &[Site], auth: &str, upstream: &str, headers: &[String]) {
    let entry_points: BTreeMap<String, (u16, bool)> = sites
        .iter()
        .map(|site| (traefik_entry_point(site), (site.port, site.https)))
        .collect();
    if entry_points.keys().all(|e| e == "web" || e == "websecure") {
        out.push_str(concat!(
            "# Traefik v3 dynamic configuration (file provider). Entry points `web` (:80) and `websecure` (:443) and the\n",
            "# certificate resolver `letsencrypt` are defined in the static configuration (deploy/traefik/traefik.yml).\n",
        ));
    } else {
        out.push_str(concat!(
            "# Traefik v3 dynamic configuration (file provider). Traefik's Host() ignores the port, so each port has its\n",
            "# own entry point, which the static configuration must define (as deploy/traefik/traefik.yml does web and\n",
            "# websecure):\n",
        ));
        for (name, (port, _)) in &entry_points {
            let _ = writeln!(out, "#   {name}: address \":{port}\"");
        }
        if entry_points.values().any(|(_, https)| *https) {
            out.push_str("# and the certificate resolver `letsencrypt`.\n");
        }
    }
    out.push_str(concat!(
        "# On every entry point set http.aliasHeadersStrategy: delete and http.encodedCharacters.allowEncodedSlash and\n",
        "# allowEncodedBackSlash: false.\n",
    ));
    resources_note(out, sites);
    let upstream_service = format!(
        "mcp-{}",
        slug(upstream.split_once("://").map_or(upstream, |(_, r)| r))
    );
    let mut oauth_rule: Vec<String> = vec!["Method(`OPTIONS`)".to_owned()];
    oauth_rule.extend(endpoints::mcp_host_prefixes().map(|p| format!("PathPrefix(`{p}`)")));
    oauth_rule.extend(endpoints::mcp_host_exact().map(|p| format!("Path(`{p}`)")));
    let oauth_rule = oauth_rule.join(" || ");
    out.push_str("http:\n  routers:\n");
    for site in sites {
        let tls = if site.https {
            "      tls:\n        certResolver: letsencrypt\n"
        } else {
            ""
        };
        let slug = site.slug();
        let _ = write!(
            out,
            concat!(
                "    # Discovery and the OAuth endpoints on {authority}: forwardauth-svc, unauthenticated. Its priority is\n",
                "    # above the catch-all below.\n",
                "    forwardauth-{slug}:\n",
                "      rule: {oauth}\n",
                "      priority: 1000\n",
                "      entryPoints: [{entry}]\n",
                "      service: forwardauth\n",
                "{tls}",
                "    # Everything else on {authority}: the MCP server, behind the gate, without the client's token.\n",
                "    mcp-{slug}:\n",
                "      rule: {catchall}\n",
                "      priority: 10\n",
                "      entryPoints: [{entry}]\n",
                "      middlewares: [forwardauth, forwardauth-strip-authorization]\n",
                "      service: {service}\n",
                "{tls}",
            ),
            authority = site.authority(),
            slug = slug,
            oauth = yq(&format!("Host(`{}`) && ({oauth_rule})", site.host)),
            catchall = yq(&format!("Host(`{}`)", site.host)),
            entry = traefik_entry_point(site),
            tls = tls,
            service = upstream_service,
        );
    }
    let _ = write!(
        out,
        concat!(
            "  middlewares:\n",
            "    # The gate. It answers 200 (access, identity headers copied below), or a 401/403 that Traefik\n",
            "    # returns to the client as is, WWW-Authenticate included. Only the headers the gate reads are\n",
            "    # forwarded to it, and the W3C trace context (Traefik writes its own there when its tracing is on);\n",
            "    # Traefik adds X-Forwarded-Method/-Proto/-Host/-Uri/-For itself and, with trustForwardHeader false,\n",
            "    # drops every X-Forwarded-* the client sent. The gate's answers are small.\n",
            "    forwardauth:\n",
            "      forwardAuth:\n",
            "        address: {address}\n",
            "        trustForwardHeader: false\n",
            "        maxResponseBodySize: {max_body}\n",
            "        # The request body too: per-tool scopes read the JSON-RPC call from it, and MCP headers that\n",
            "        # disagree with it get a 400. At most forwardauth-svc's [gate] max_body_kib (default 4096): Traefik\n",
            "        # buffers up to maxBodySize and answers a longer body with an empty 401 of its own.\n",
            "        forwardBody: true\n",
            "        maxBodySize: {max_request_body}\n",
            "        authRequestHeaders: [{request}]\n",
            "        authResponseHeaders: [{response}]\n",
            "    # No token passthrough, and no client-sent alias of an identity header (X_User_Id, X.User.Id, ...), which\n",
            "    # a backend mapping header names to variables would read as the gate's: an empty value removes a header.\n",
            "    forwardauth-strip-authorization:\n",
            "      headers:\n",
            "        customRequestHeaders:\n",
            "          Authorization: \"\"\n",
        ),
        address = yq(&format!("{auth}/verify")),
        max_body = TRAEFIK_MAX_GATE_RESPONSE_BYTES,
        max_request_body = GateConfig::DEFAULT_MAX_BODY_KIB * 1024,
        request = GATE_REQUEST_HEADERS
            .iter()
            .chain(TRACE_CONTEXT_HEADERS)
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        response = headers.join(", "),
    );
    for h in headers {
        for alias in alias_spellings(h) {
            let _ = writeln!(out, "          {alias}: \"\"");
        }
    }
    let _ = write!(
        out,
        concat!(
            "  services:\n",
            "    forwardauth:\n",
            "      loadBalancer:\n",
            "        servers:\n",
            "          - url: {auth}\n",
            "    {service}:\n",
            "      loadBalancer:\n",
            "        servers:\n",
            "          - url: {upstream}\n",
        ),
        auth = yq(auth),
        service = upstream_service,
        upstream = yq(upstream),
    );
}

/// Traefik's `maxResponseBodySize` for the gate: its answers are JSON documents of a few hundred bytes.
const TRAEFIK_MAX_GATE_RESPONSE_BYTES: u32 = 65_536;

/// The Traefik entry point of a site: `web` / `websecure` on the default port, else `web-<port>` /
/// `websecure-<port>`.
fn traefik_entry_point(site: &Site) -> String {
    match (site.https, site.port) {
        (true, 443) => "websecure".to_owned(),
        (false, 80) => "web".to_owned(),
        (true, port) => format!("websecure-{port}"),
        (false, port) => format!("web-{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(proxy: Proxy, urls: &[&str]) -> Snippet {
        Snippet {
            proxy,
            mcp_urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            auth_url: "http://forwardauth:8080".into(),
            upstream: "http://mcp-server:3001".into(),
            bind: None,
        }
    }

    #[test]
    fn urls_are_checked_and_named_in_errors() {
        assert_eq!(
            render(&snippet(Proxy::Nginx, &[])),
            Err(SnippetError::NoMcpUrl)
        );
        let err = render(&snippet(Proxy::Nginx, &["ftp://x/mcp"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--mcp-url ftp://x/mcp: must be an http or https URL"
        );
        let mut s = snippet(Proxy::Caddy, &["https://mcp.example.com/mcp"]);
        s.upstream = "http://mcp-server:3001/mcp".into();
        assert_eq!(
            render(&s).unwrap_err().to_string(),
            "--upstream http://mcp-server:3001/mcp: must be an origin like http://host:port, without a path"
        );
    }

    #[test]
    fn the_first_line_is_the_command_that_prints_it() {
        let mut s = snippet(
            Proxy::Nginx,
            &["http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/b/mcp"],
        );
        s.bind = Some("127.0.0.1".parse().unwrap());
        let text = render(&s).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "# forwardauth-svc snippet --proxy nginx --mcp-url http://127.0.0.1:8000/mcp --mcp-url http://127.0.0.1:8000/b/mcp --auth-url http://forwardauth:8080 --upstream http://mcp-server:3001 --bind 127.0.0.1"
        );
        // One server block for the one host, listening on the bind address.
        assert_eq!(text.matches("\nserver {").count(), 1);
        assert!(text.contains("    listen 127.0.0.1:8000;\n"), "{text}");
    }

    #[test]
    fn nginx_guards_the_catch_all_strips_the_token_and_restores_the_403_challenge() {
        let text = render(&snippet(Proxy::Nginx, &["https://mcp.example.com/mcp"])).unwrap();
        crate::testing::assert_has_lines(
            &text,
            &[
                "    listen 443 ssl;",
                "    server_name mcp.example.com;",
                "    location = /.well-known/oauth-protected-resource {",
                "    location ^~ /.well-known/oauth-protected-resource/ {",
                "    location = /.well-known/oauth-authorization-server {",
                "    location = /callback {",
                "    location = /login/upstream {",
                "    location ^~ /register/ {",
                "    location / {",
                "        if ($request_method = OPTIONS) {",
                "        error_page 418 = @forwardauth_preflight;",
                "        error_page 401 = @forwardauth_401;",
                "    location @forwardauth_preflight {",
                "        add_header Access-Control-Allow-Origin $forwardauth_allow_origin always;",
                "        auth_request /_forwardauth/verify;",
                "        auth_request_set $forwardauth_x_user_id $upstream_http_x_user_id;",
                "        proxy_set_header X-User-Email $forwardauth_x_user_email;",
                "        proxy_set_header Authorization \"\";",
                "        proxy_buffering off;",
                "        proxy_pass http://forwardauth-mcp-mcp-example-com;",
                "        proxy_pass http://forwardauth-gate-mcp-example-com/verify;",
                "        error_page 403 = @forwardauth_403;",
                "        add_header WWW-Authenticate $forwardauth_www_authenticate always;",
            ],
        );
    }

    #[test]
    fn nginx_passes_the_gate_only_the_headers_it_reads() {
        let text = render(&snippet(Proxy::Nginx, &["https://mcp.example.com/mcp"])).unwrap();
        let verify = crate::testing::between(
            &text,
            "    location = /_forwardauth/verify {\n",
            "\n    }\n",
        );
        // A client's many or large headers never reach the service (more than 96 lines: 431, a 500 from nginx).
        assert!(
            verify.contains("        proxy_pass_request_headers off;\n"),
            "{verify}"
        );
        let set: Vec<&str> = verify
            .lines()
            .filter_map(|l| l.trim().strip_prefix("proxy_set_header "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        // Connection and Host first: they belong to the keep-alive connection to the gate (see
        // `nginx_keeps_its_connections_to_the_gate_open`), not to the request it judges.
        assert_eq!(
            set,
            [
                "Connection",
                "Host",
                "Content-Length",
                "Authorization",
                "Origin",
                "MCP-Protocol-Version",
                "Mcp-Method",
                "Mcp-Name",
                "X-Original-URL",
                "X-Original-Method",
                "X-Forwarded-Method",
                "X-Forwarded-Proto",
                "X-Forwarded-Host",
                "X-Forwarded-Uri",
                "X-Forwarded-For",
                "traceparent",
                "tracestate",
            ]
        );
        assert!(verify.contains("        proxy_set_header Mcp-Method $http_mcp_method;\n"));
        // The request's trace context as it came, which the gate's span continues (nginx drops a header whose
        // value is empty, so a request without one sends none).
        crate::testing::assert_has_lines(
            verify,
            &[
                "        proxy_set_header traceparent $http_traceparent;",
                "        proxy_set_header tracestate $http_tracestate;",
            ],
        );
        // The MCP server gets the value the gate judged, not a client's second line.
        let upstream = crate::testing::between(&text, "    location / {\n", "\n    }\n");
        crate::testing::assert_has_lines(
            upstream,
            &[
                "        proxy_set_header Origin $http_origin;",
                "        proxy_set_header MCP-Protocol-Version $http_mcp_protocol_version;",
                "        proxy_set_header Mcp-Method $http_mcp_method;",
                "        proxy_set_header Mcp-Name $http_mcp_name;",
                "        proxy_set_header Authorization \"\";",
            ],
        );
    }

    /// An MCP server over TLS: the port defaults to 443, and nginx names the TLS peer after the host, not after
    /// the `upstream` block.
    #[test]
    fn nginx_reaches_an_https_mcp_server_by_its_host_name() {
        let mut s = snippet(Proxy::Nginx, &["https://mcp.example.com/mcp"]);
        s.upstream = "https://mcp.internal".into();
        let text = render(&s).unwrap();
        assert!(text.contains(
            "upstream forwardauth-mcp-mcp-example-com {\n    server mcp.internal:443;\n"
        ));
        assert!(text.contains(
            "        proxy_ssl_name mcp.internal;\n        proxy_pass https://forwardauth-mcp-mcp-example-com;\n"
        ), "{text}");
    }

    /// nginx opens a connection per request to a `proxy_pass` address: the gate, called on every request, is an
    /// `upstream` with `keepalive`, reached over HTTP/1.1 without `Connection: close`; so is the MCP server.
    #[test]
    fn nginx_keeps_its_connections_to_the_gate_open() {
        let text = render(&snippet(
            Proxy::Nginx,
            &[
                "https://mcp.example.com/mcp",
                "https://other.example.com:8443/mcp",
            ],
        ))
        .unwrap();
        // In the http {} context beside the server blocks, before them, named after the snippet's hosts.
        let upstream = concat!(
            "upstream forwardauth-gate-mcp-example-com-other-example-com-8443 {\n",
            "    server forwardauth:8080;\n",
            "    keepalive 32;\n",
            "    keepalive_timeout 60s;\n",
            "}\n",
        );
        assert_eq!(text.matches(upstream).count(), 1, "{text}");
        assert!(text.find(upstream) < text.find("\nserver {"));
        // The MCP server too, once for all the snippet's server blocks.
        let mcp = concat!(
            "upstream forwardauth-mcp-mcp-example-com-other-example-com-8443 {\n",
            "    server mcp-server:3001;\n",
            "    keepalive 32;\n",
            "    keepalive_timeout 4s;\n",
            "}\n",
        );
        assert_eq!(text.matches(mcp).count(), 1, "{text}");
        assert!(text.find(mcp) < text.find("\nserver {"));
        assert_eq!(
            text.lines().filter(|l| l.starts_with("upstream ")).count(),
            2
        );
        assert_eq!(
            text.matches("        proxy_pass http://forwardauth-mcp-mcp-example-com-other-example-com-8443;\n")
                .count(),
            2,
            "one per server block"
        );
        assert!(!text.contains("proxy_ssl_name"), "a plain-HTTP MCP server");
        let verify: Vec<&str> = text
            .split("    location = /_forwardauth/verify {\n")
            .skip(1)
            .map(|rest| rest.split("\n    }\n").next().unwrap())
            .collect();
        assert_eq!(verify.len(), 2, "one per server block");
        for v in verify {
            crate::testing::assert_has_lines(
                v,
                &[
                    "        proxy_pass http://forwardauth-gate-mcp-example-com-other-example-com-8443/verify;",
                    "        proxy_http_version 1.1;",
                    "        proxy_set_header Connection \"\";",
                    // No body to leave unread, so 401 and 403 keep the connection too.
                    "        proxy_method HEAD;",
                    // The Host the service saw when proxy_pass named it.
                    "        proxy_set_header Host forwardauth:8080;",
                ],
            );
        }
        // Everything else that goes to the service still names it directly.
        assert!(text.contains("        proxy_pass http://forwardauth:8080;\n"));

        // The server address spells out a default port and keeps IPv6 brackets; https stays https.
        for (auth, server, pass, host) in [
            (
                "https://auth.internal",
                "auth.internal:443",
                "https://forwardauth-gate-mcp-example-com/verify",
                "auth.internal",
            ),
            (
                "http://[::1]:8080",
                "[::1]:8080",
                "http://forwardauth-gate-mcp-example-com/verify",
                "[::1]:8080",
            ),
            (
                "http://127.0.0.1",
                "127.0.0.1:80",
                "http://forwardauth-gate-mcp-example-com/verify",
                "127.0.0.1",
            ),
        ] {
            let mut s = snippet(Proxy::Nginx, &["https://mcp.example.com/mcp"]);
            s.auth_url = auth.to_owned();
            let text = render(&s).unwrap();
            assert!(
                text.contains(&format!("    server {server};\n")),
                "{auth}:\n{text}"
            );
            assert!(
                text.contains(&format!("        proxy_pass {pass};\n")),
                "{auth}"
            );
            assert!(
                text.contains(&format!("        proxy_set_header Host {host};\n")),
                "{auth}"
            );
        }
    }

    #[test]
    fn every_route_served_on_an_mcp_host_is_routed_by_every_proxy() {
        for e in endpoints::ENDPOINTS.iter().filter(|e| e.on_mcp_host) {
            let nginx = render(&snippet(Proxy::Nginx, &["https://mcp.example.com/mcp"])).unwrap();
            let kind = if e.is_prefix() { "^~" } else { "=" };
            assert!(
                nginx.contains(&format!("    location {kind} {} {{\n", e.path)),
                "nginx: {}",
                e.path
            );
            let caddy = render(&snippet(Proxy::Caddy, &["https://mcp.example.com/mcp"])).unwrap();
            let matcher = caddy
                .lines()
                .find(|l| l.starts_with("\t@forwardauth path "))
                .unwrap();
            let want = if e.is_prefix() {
                format!("{}*", e.path)
            } else {
                e.path.to_owned()
            };
            assert!(matcher.split(' ').any(|p| p == want), "caddy: {}", e.path);
            let traefik =
                render(&snippet(Proxy::Traefik, &["https://mcp.example.com/mcp"])).unwrap();
            let rule = if e.is_prefix() {
                format!("PathPrefix(`{}`)", e.path)
            } else {
                format!("Path(`{}`)", e.path)
            };
            assert!(traefik.contains(&rule), "traefik: {}", e.path);
        }
        // Nothing else goes to the service: not the gate, not the operator's endpoints.
        for proxy in [Proxy::Nginx, Proxy::Caddy, Proxy::Traefik] {
            let text = render(&snippet(proxy, &["https://mcp.example.com/mcp"])).unwrap();
            for private in ["/health", "/ready"] {
                assert!(!text.contains(private), "{proxy:?} routes {private}");
            }
        }
    }

    #[test]
    fn identity_header_aliases_are_every_underscore_and_dot_spelling() {
        let mut aliases = alias_spellings("X-User-Id");
        aliases.sort();
        assert_eq!(
            aliases,
            [
                "X-User.Id",
                "X-User_Id",
                "X.User-Id",
                "X.User.Id",
                "X.User_Id",
                "X_User-Id",
                "X_User.Id",
                "X_User_Id"
            ]
        );
        assert_eq!(alias_spellings("X-Scopes"), ["X_Scopes", "X.Scopes"]);
        let caddy = render(&snippet(Proxy::Caddy, &["https://mcp.example.com/mcp"])).unwrap();
        for a in alias_spellings("X-Client-Id") {
            assert!(
                caddy.contains(&format!("\t\t\trequest_header -{a}\n")),
                "{a}"
            );
        }
    }

    #[test]
    fn caddy_strips_client_identity_before_copying_the_gates() {
        let text = render(&snippet(
            Proxy::Caddy,
            &[
                "https://mcp.example.com/mcp",
                "https://other.example.com/mcp",
            ],
        ))
        .unwrap();
        assert_eq!(text.matches("\thandle {\n").count(), 2);
        let strip = text.find("request_header -X-User-Id").unwrap();
        let auth = text.find("forward_auth http://forwardauth:8080 {").unwrap();
        let token = text.find("request_header -Authorization").unwrap();
        let proxy = text.find("reverse_proxy http://mcp-server:3001 {").unwrap();
        assert!(strip < auth && auth < token && token < proxy, "{text}");
        assert!(
            text.contains("copy_headers X-User-Id X-User-Name X-User-Email X-Client-Id X-Scopes\n")
        );
        assert!(text.contains("\nhttps://mcp.example.com {\n"));
    }

    #[test]
    fn traefik_routes_oauth_above_the_catch_all() {
        let text = render(&snippet(Proxy::Traefik, &["http://127.0.0.1:8000/mcp"])).unwrap();
        assert!(text.contains("    forwardauth-127-0-0-1-8000:\n"), "{text}");
        assert!(text.contains("      rule: \"Host(`127.0.0.1`)\"\n"));
        assert!(!text.contains("certResolver"));
        assert!(text.contains("        address: \"http://forwardauth:8080/verify\"\n"));
        assert!(text.contains("      service: mcp-mcp-server-3001\n"));
    }

    #[test]
    fn traefik_binds_a_non_default_port_to_its_own_entry_point() {
        // Host() ignores the port: two ports of one host are told apart by their entry points.
        let text = render(&snippet(
            Proxy::Traefik,
            &["http://127.0.0.1:8000/mcp", "http://127.0.0.1:8001/mcp"],
        ))
        .unwrap();
        crate::testing::assert_has_lines(
            &text,
            &[
                "#   web-8000: address \":8000\"",
                "#   web-8001: address \":8001\"",
                "    # Everything else on 127.0.0.1:8001: the MCP server, behind the gate, without the client's token.",
            ],
        );
        assert_eq!(text.matches("      entryPoints: [web-8000]\n").count(), 2);
        assert_eq!(text.matches("      entryPoints: [web-8001]\n").count(), 2);
        assert!(
            !text.contains("[web]") && !text.contains("letsencrypt"),
            "{text}"
        );
        let secure = render(&snippet(
            Proxy::Traefik,
            &["https://mcp.example.com:8443/mcp"],
        ))
        .unwrap();
        assert!(secure.contains(
            "#   websecure-8443: address \":8443\"\n# and the certificate resolver `letsencrypt`.\n"
        ));
        assert!(secure.contains("      entryPoints: [websecure-8443]\n      service: forwardauth\n      tls:\n        certResolver: letsencrypt\n"));
        // Default ports keep the entry points of deploy/traefik/traefik.yml.
        let default = render(&snippet(
            Proxy::Traefik,
            &[
                "https://mcp.example.com/mcp",
                "http://plain.example.com/mcp",
            ],
        ))
        .unwrap();
        assert!(default.contains("\n# Traefik v3 dynamic configuration (file provider). Entry points `web` (:80) and `websecure` (:443) and the\n"));
        assert_eq!(
            default.matches("      entryPoints: [websecure]\n").count(),
            2
        );
        assert_eq!(default.matches("      entryPoints: [web]\n").count(), 2);
    }

    /// Per-tool scopes read the JSON-RPC call from the body: Traefik forwards it, bounded by the gate's default
    /// limit; nginx and Caddy cannot, and say what that means.
    #[test]
    fn traefik_forwards_the_body_and_nginx_and_caddy_say_they_cannot() {
        let traefik = render(&snippet(Proxy::Traefik, &["https://mcp.example.com/mcp"])).unwrap();
        crate::testing::assert_has_lines(
            &traefik,
            &[
                "        forwardBody: true",
                &format!(
                    "        maxBodySize: {}",
                    GateConfig::DEFAULT_MAX_BODY_KIB * 1024
                ),
            ],
        );
        assert_eq!(
            GateConfig::default().max_body_bytes,
            GateConfig::DEFAULT_MAX_BODY_KIB * 1024
        );
        let nginx = render(&snippet(Proxy::Nginx, &["https://mcp.example.com/mcp"])).unwrap();
        let verify = crate::testing::between(
            &nginx,
            "    location = /_forwardauth/verify {\n",
            "\n    }\n",
        );
        assert!(
            verify.contains("        # No body: the auth subrequest runs before nginx reads it.")
        );
        assert!(verify.contains("        proxy_pass_request_body off;\n"));
        // No Content-Length for the body that is not sent: nginx would pass the client's on (checked with 1.22).
        assert!(verify.contains("        proxy_set_header Content-Length \"\";\n"));
        assert!(verify.contains("mcp_server_validates_headers"));
        let caddy = render(&snippet(Proxy::Caddy, &["https://mcp.example.com/mcp"])).unwrap();
        assert!(caddy.contains("\t\t\t# forward_auth asks with a GET without the body"));
        assert!(caddy.contains("mcp_server_validates_headers"));
    }

    #[test]
    fn traefik_sets_the_gate_options_and_removes_every_alias_of_the_identity_headers() {
        let text = render(&snippet(Proxy::Traefik, &["https://mcp.example.com/mcp"])).unwrap();
        assert!(text.contains(concat!(
            "        address: \"http://forwardauth:8080/verify\"\n",
            "        trustForwardHeader: false\n",
            "        maxResponseBodySize: 65536\n",
        )));
        // The headers the gate reads, and the trace context its span continues.
        assert!(text.contains(
            "        authRequestHeaders: [Authorization, Origin, MCP-Protocol-Version, Mcp-Method, Mcp-Name, traceparent, tracestate]\n"
        ), "{text}");
        let strip =
            crate::testing::between(&text, "        customRequestHeaders:\n", "  services:\n");
        let removed: Vec<&str> = strip
            .lines()
            .map(|l| l.trim().strip_suffix(": \"\"").unwrap())
            .collect();
        assert_eq!(removed[0], "Authorization");
        // X-User-Id, X-User-Name, X-User-Email, X-Client-Id: 3 separators each for 2 dashes, less the name itself;
        // X-Scopes: 3 for 1.
        assert_eq!(removed.len(), 1 + 4 * (9 - 1) + (3 - 1), "{removed:?}");
        for alias in [
            "X_User_Id",
            "X.User.Id",
            "X-User_Id",
            "X_User-Id",
            "X-User.Id",
            "X.User_Id",
            "X_User_Email",
            "X_Client.Id",
            "X_Scopes",
            "X.Scopes",
        ] {
            assert!(removed.contains(&alias), "{alias} in {removed:?}");
        }
        for kept in [
            "X-User-Id",
            "X-User-Name",
            "X-User-Email",
            "X-Client-Id",
            "X-Scopes",
        ] {
            assert!(!removed.contains(&kept), "the gate's {kept} is removed");
        }
        assert_eq!(alias_spellings("X-Scopes"), ["X_Scopes", "X.Scopes"]);
        assert!(alias_spellings("Single").is_empty());
    }
}
