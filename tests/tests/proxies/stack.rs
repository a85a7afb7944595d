//! One proxy stack and the scenario every real proxy must pass.
//!
//! ```text
//!   MCP SDK client ──► nginx | Caddy | Traefik ──/verify──► forwardauth-svc (in process, local user alice)
//!   (TypeScript, Python)   │  (config printed by `forwardauth-svc snippet`)
//!                          └──► tap (TCP relay, records bytes) ──► server-everything (streamable HTTP)
//! ```
//!
//! The proxy serves two hosts, `127.0.0.1:<a>` and `127.0.0.1:<b>`, each guarding the same MCP server, and three
//! resources: A = `http://127.0.0.1:<a>/mcp`, B = `http://127.0.0.1:<b>/mcp` and an admin resource
//! `http://127.0.0.1:<a>/admin/mcp` that requires the scope `mcp:admin`. The issuer is the proxy's host A, so
//! discovery, registration, the login pages and the token endpoint are all reached through the proxy too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use forwardauth_svc::snippet::{self, Proxy, Snippet};
use serde_json::Value;

use crate::support::*;

/// Forged identity headers every client sends on every request.
const FORGED: &[(&str, &str)] = &[
    ("X-User-Id", "forged-admin"),
    ("X-User-Name", "forged-admin"),
    ("X-User-Email", "forged@evil.example"),
    ("X-Client-Id", "forged-client"),
    ("X-Scopes", "mcp:admin forged"),
];

/// Aliases of the identity headers (`_` or `.` for a `-`) a client sends with a valid token: a backend that
/// maps header names to variables (CGI, WSGI, PHP: `HTTP_X_USER_ID`) reads them as the gate's headers.
const ALIASES: &[(&str, &str)] = &[
    ("X_User_Id", "mallory"),
    ("X.User.Id", "mallory"),
    ("X_Scopes", "mcp:admin"),
    ("X-User_Id", "mallory"),
];

/// The identity headers the gate sends, lower case.
const IDENTITY: &[&str] = &[
    "x-user-id",
    "x-user-name",
    "x-user-email",
    "x-client-id",
    "x-scopes",
];

/// A header name as a CGI-style backend reads it: every character but a letter or digit is a `-`.
fn as_cgi_reads_it(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The `http` options of Traefik's entry point for host B.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EntryPointB {
    /// Those of `deploy/traefik/traefik.yml`, as host A's.
    Shipped,
    /// None, to see what the snippet does on its own.
    Bare,
}

/// Access tokens live this long, so the clients see one expire and refresh it.
const ACCESS_TOKEN_TTL_SECS: u64 = 3;

/// What the proxy forwards authorized requests to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The unmodified MCP server (`server-everything`), behind the tap.
    McpServer,
    /// An HTTP server the test runs on this 127.0.0.1 port, behind the tap; the service then sits behind a tap
    /// too ([`Stack::gate_tap`]), so the test sees every answer of the gate.
    Port(u16),
}

/// The proxy binary for `kind`, or a failure naming the installer (before anything is started).
pub fn proxy_binary(kind: Proxy) -> PathBuf {
    match kind {
        Proxy::Nginx => tool("nginx (Debian nginx-light)", &["nginx", "/usr/sbin/nginx"]),
        Proxy::Caddy => tool("Caddy (Debian caddy)", &["caddy"]),
        Proxy::Traefik => traefik(),
    }
}

/// Starts the proxy `bin` (of [`proxy_binary`]) in `dir` with the snippet output `site` as its configuration,
/// serving the 127.0.0.1 `ports` the snippet names. For Traefik each port is an entry point `web-<port>`, with
/// the `http` options of the shipped `deploy/traefik/traefik.yml` when its flag says so. Does not wait for it.
pub fn spawn_proxy(
    kind: Proxy,
    bin: &Path,
    dir: &Path,
    site: &str,
    ports: &[(u16, bool)],
) -> Process {
    let d = dir.display();
    match kind {
        Proxy::Nginx => {
            // A private prefix, one process (no master/workers to leave behind), logs in the temp dir.
            std::fs::write(
                dir.join("nginx.conf"),
                format!(
                    "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log info;\nevents {{ worker_connections 256; }}\nhttp {{\n    access_log {d}/nginx-access.log;\n    client_body_temp_path {d}/nginx-body;\n    proxy_temp_path {d}/nginx-proxy;\n{site}}}\n"
                ),
            )
            .unwrap();
            Process::spawn(
                "nginx",
                Command::new(bin)
                    .arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .arg("-e")
                    .arg(dir.join("nginx-error.log")),
                dir,
            )
        }
        Proxy::Caddy => {
            std::fs::write(
                dir.join("Caddyfile"),
                format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}"),
            )
            .unwrap();
            Process::spawn(
                "caddy",
                Command::new(bin)
                    .arg("run")
                    .arg("--config")
                    .arg(dir.join("Caddyfile"))
                    .arg("--adapter")
                    .arg("caddyfile")
                    .env("HOME", dir)
                    .env("XDG_CONFIG_HOME", dir)
                    .env("XDG_DATA_HOME", dir),
                dir,
            )
        }
        Proxy::Traefik => {
            // The snippet as printed is the dynamic configuration; the static one defines the entry points
            // it names, one per port (Host() ignores the port), with the options of the shipped
            // deploy/traefik/traefik.yml.
            for &(port, _) in ports {
                assert!(
                    site.contains(&format!("      entryPoints: [web-{port}]\n")),
                    "the snippet binds port {port} to the entry point web-{port}:\n{site}"
                );
            }
            std::fs::write(dir.join("traefik-dynamic.yml"), site).unwrap();
            let shipped: serde_norway::Value = serde_norway::from_str(
                &std::fs::read_to_string(repo_root().join("deploy/traefik/traefik.yml")).unwrap(),
            )
            .unwrap();
            let http = serde_json::to_value(&shipped["entryPoints"]["websecure"]["http"]).unwrap();
            assert!(
                http.is_object(),
                "deploy/traefik/traefik.yml: entryPoints.websecure.http"
            );
            let mut entry_points = serde_json::Map::new();
            for &(port, shipped_options) in ports {
                let mut entry_point = serde_json::json!({"address": format!("127.0.0.1:{port}")});
                if shipped_options {
                    entry_point["http"] = http.clone();
                }
                entry_points.insert(format!("web-{port}"), entry_point);
            }
            let config = serde_json::json!({
                "global": {"checkNewVersion": false, "sendAnonymousUsage": false},
                "entryPoints": entry_points,
                "providers": {"file": {
                    "filename": dir.join("traefik-dynamic.yml"),
                    "watch": false,
                }},
                "log": {"level": "INFO", "noColor": true},
            });
            std::fs::write(
                dir.join("traefik.yml"),
                serde_norway::to_string(&config).unwrap(),
            )
            .unwrap();
            Process::spawn(
                "traefik",
                Command::new(bin)
                    .arg(format!(
                        "--configFile={}",
                        dir.join("traefik.yml").display()
                    ))
                    .env("HOME", dir),
                dir,
            )
        }
    }
}

pub struct Stack {
    pub issuer: String,
    /// Given to the TypeScript client as `clientMetadataUrl` (a Client ID Metadata Document instead of DCR).
    pub client_metadata_url: Option<String>,
    pub a: String,
    pub b: String,
    pub admin: String,
    pub tap: Tap,
    /// With [`Upstream::Port`]: between the proxy and the service (the snippet's `--auth-url`).
    pub gate_tap: Option<Tap>,
    pub proxy: Process,
    _mcp: Option<Process>,
    _svc: Svc,
    dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start(kind: Proxy) -> Stack {
        Self::start_with(kind, "", &[]).await
    }

    /// A stack whose configuration file ends with `extra` (TOML) and whose directory holds `files`.
    pub async fn start_with(kind: Proxy, extra: &str, files: &[(&str, String)]) -> Stack {
        Self::start_full(kind, extra, files, EntryPointB::Shipped).await
    }

    /// As [`Stack::start_with`], with Traefik's entry point for host B configured as `b_entry_point` says.
    pub async fn start_full(
        kind: Proxy,
        extra: &str,
        files: &[(&str, String)],
        b_entry_point: EntryPointB,
    ) -> Stack {
        Self::start_in_front_of(
            kind,
            extra,
            files,
            b_entry_point,
            Upstream::McpServer,
            ACCESS_TOKEN_TTL_SECS,
        )
        .await
    }

    /// As [`Stack::start_full`], with the proxy forwarding authorized requests to `upstream`, and access tokens
    /// that live `access_token_ttl_secs`.
    pub async fn start_in_front_of(
        kind: Proxy,
        extra: &str,
        files: &[(&str, String)],
        b_entry_point: EntryPointB,
        upstream: Upstream,
        access_token_ttl_secs: u64,
    ) -> Stack {
        Self::start_inner(
            kind,
            extra,
            files,
            b_entry_point,
            upstream,
            access_token_ttl_secs,
            None,
        )
        .await
    }

    /// As [`Stack::start_with`], with resource A also knowing the scope `mcp:admin` and having the per-tool rules
    /// `tool_rules` (the lines of its `[resources.tool_scopes]` table, and any keys of A before it), and access
    /// tokens that outlive the test.
    pub async fn start_with_tool_rules(kind: Proxy, tool_rules: &str, extra: &str) -> Stack {
        Self::start_inner(
            kind,
            extra,
            &[],
            EntryPointB::Shipped,
            Upstream::McpServer,
            600,
            Some(tool_rules),
        )
        .await
    }

    async fn start_inner(
        kind: Proxy,
        extra: &str,
        files: &[(&str, String)],
        b_entry_point: EntryPointB,
        upstream: Upstream,
        access_token_ttl_secs: u64,
        tool_rules: Option<&str>,
    ) -> Stack {
        // Fail with an installer hint before starting anything.
        let proxy_bin = proxy_binary(kind);
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (free_port(), free_port());
        let issuer = format!("http://127.0.0.1:{pa}");
        let (a, b, admin) = (
            format!("{issuer}/mcp"),
            format!("http://127.0.0.1:{pb}/mcp"),
            format!("{issuer}/admin/mcp"),
        );

        write_users(dir.path());
        let (a_scopes, a_rules) = match tool_rules {
            None => ("[\"mcp\"]", String::new()),
            Some(rules) => ("[\"mcp\", \"mcp:admin\"]", format!("{rules}\n")),
        };
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                r#"issuer = "{issuer}"

[store]
backend = "memory"

[tokens]
access_token_ttl_secs = {access_token_ttl_secs}

[users]
file = "users.toml"

[[resources]]
resource = "{a}"
name = "MCP A"
scopes = {a_scopes}
required_scopes = ["mcp"]
# MCP Inspector's origin: browser clients there may call A.
allowed_origins = ["http://localhost:6274"]
{a_rules}
[[resources]]
resource = "{b}"
name = "MCP B"
scopes = ["mcp"]
required_scopes = ["mcp"]

[[resources]]
resource = "{admin}"
name = "Admin MCP"
scopes = ["mcp", "mcp:admin"]
required_scopes = ["mcp:admin"]
{extra}"#
            ),
        )
        .unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let svc = Svc::start(dir.path(), true);
        let (mcp, upstream_port, gate_tap) = match upstream {
            Upstream::McpServer => {
                let (mcp, port) = start_mcp_server(dir.path()).await;
                (Some(mcp), port, None)
            }
            Upstream::Port(port) => (None, port, Some(Tap::start(svc.port).await)),
        };
        let tap = Tap::start(upstream_port).await;
        let auth_port = gate_tap.as_ref().map_or(svc.port, |t| t.port);

        // The shipped configuration: exactly what `forwardauth-svc snippet` prints, with loopback addresses.
        let site = snippet::render(&Snippet {
            proxy: kind,
            mcp_urls: vec![a.clone(), admin.clone(), b.clone()],
            auth_url: format!("http://127.0.0.1:{auth_port}"),
            upstream: format!("http://127.0.0.1:{}", tap.port),
            bind: Some("127.0.0.1".parse().unwrap()),
        })
        .unwrap();
        let mut proxy = spawn_proxy(
            kind,
            &proxy_bin,
            dir.path(),
            &site,
            &[(pa, true), (pb, b_entry_point == EntryPointB::Shipped)],
        );
        proxy.wait_for_port(pa).await;
        proxy.wait_for_port(pb).await;
        if kind == Proxy::Traefik {
            // The file provider loads the routers after the entry points listen; until then Traefik answers 404.
            for resource in [&a, &b] {
                let prm = resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
                proxy
                    .wait_until(&format!("{prm} answers 200"), || async {
                        reqwest::get(&prm)
                            .await
                            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
                    })
                    .await;
            }
        }
        Stack {
            issuer,
            client_metadata_url: None,
            a,
            b,
            admin,
            tap,
            gate_tap,
            proxy,
            _mcp: mcp,
            _svc: svc,
            dir,
        }
    }

    fn options(&self) -> String {
        let forged: serde_json::Map<String, Value> = FORGED
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        serde_json::json!({
            "mcpUrl": self.a, "issuer": self.issuer, "username": "alice", "password": "wonderland",
            "accessTokenTtlSecs": ACCESS_TOKEN_TTL_SECS, "forgedHeaders": forged,
            "clientMetadataUrl": self.client_metadata_url,
        })
        .to_string()
    }

    /// Runs an SDK client script with the stack's options; it must exit 0, and its last stdout line is its JSON
    /// report.
    async fn run_client(&self, name: &str, program: std::path::PathBuf, script: &str) -> Value {
        self.run_script(name, program, script, &self.options())
            .await
    }

    /// Runs a client script (`program script options`) in the stack's directory; it must exit 0 within 120 s, and
    /// its last stdout line is its JSON report.
    pub async fn run_script(
        &self,
        name: &str,
        program: std::path::PathBuf,
        script: &str,
        options: &str,
    ) -> Value {
        let started = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(program)
                .arg(script)
                .arg(options)
                .current_dir(self.dir.path())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("the {name} client did not finish within 120 s"))
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the {name} client failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- {} log\n{}",
            out.status,
            self.proxy.name,
            self.proxy.log()
        );
        let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("no JSON report from the {name} client ({e}):\n{stdout}"));
        eprintln!(
            "{name} SDK client through {}: {:.1} s",
            self.proxy.name,
            started.elapsed().as_secs_f64()
        );
        report
    }

    /// The TypeScript SDK client (`tests/js/sdk-client.mjs`).
    pub async fn typescript_client(&self) -> Value {
        let node = tool("Node.js", &["node"]);
        node_modules();
        let script = e2e_dir().join("js/sdk-client.mjs");
        self.run_client("TypeScript", node, script.to_str().unwrap())
            .await
    }

    /// The Python SDK client (`tests/py/sdk_client.py`).
    pub async fn python_client(&self) -> Value {
        let python = venv_python();
        let script = e2e_dir().join("py/sdk_client.py");
        self.run_client("Python", python, script.to_str().unwrap())
            .await
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// An MCP `initialize` POST to `url`, with the bearer `token` and `extra` headers.
pub async fn post_mcp(url: &str, token: Option<&str>, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Everything a real proxy in front of an unmodified MCP server must do.
pub async fn scenario(kind: Proxy) {
    let stack = Stack::start(kind).await;
    let http = reqwest::Client::new();
    let prm_a = format!("{}/.well-known/oauth-protected-resource/mcp", stack.issuer);
    if kind == Proxy::Traefik {
        // Traefik 3.7 warns about each security option left unset: the snippet's forwardAuth sets
        // maxResponseBodySize and trustForwardHeader, the shipped entry point options the rest.
        let log = stack.proxy.log();
        let warnings = traefik_warnings(&log);
        assert!(
            warnings.is_empty(),
            "Traefik warns:\n{}",
            warnings.join("\n")
        );
    }

    // Every method on the MCP endpoint is challenged with the discovery URL before the server sees it.
    for method in ["POST", "GET", "DELETE"] {
        let r = http
            .request(method.parse().unwrap(), &stack.a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method}");
        assert_eq!(
            header(&r, "www-authenticate"),
            format!("Bearer scope=\"mcp\", resource_metadata=\"{prm_a}\""),
            "{method}"
        );
    }
    // Discovery through the proxy: each host's metadata names its own resource and the one issuer.
    for (resource, prm) in [
        (&stack.a, prm_a.clone()),
        (
            &stack.b,
            stack
                .b
                .replace("/mcp", "/.well-known/oauth-protected-resource/mcp"),
        ),
    ] {
        let meta: Value = http.get(&prm).send().await.unwrap().json().await.unwrap();
        assert_eq!(meta["resource"], resource.as_str());
        assert_eq!(
            meta["authorization_servers"],
            serde_json::json!([stack.issuer])
        );
    }
    // A CORS preflight is answered by the service for the resource's allowed origins (never sent on to the MCP
    // server without a token), and refused for others.
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, &stack.a)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("http://localhost:6274").await.unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        "http://localhost:6274"
    );
    assert!(header(&allowed, "access-control-allow-headers").contains("Authorization"));
    assert_eq!(
        preflight("https://evil.example").await.unwrap().status(),
        403
    );
    // The gate's 401 to a browser client carries CORS headers through the proxy, so it can read the challenge.
    let challenged = http
        .post(&stack.a)
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(challenged.status(), 401);
    assert_eq!(
        header(&challenged, "access-control-allow-origin"),
        "http://localhost:6274"
    );
    assert!(header(&challenged, "access-control-expose-headers").contains("WWW-Authenticate"));
    assert!(header(&challenged, "www-authenticate").contains("resource_metadata="));
    // A valid token does not help a request from an origin that is not allowed.
    let evil = http
        .post(&stack.a)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);

    // The official SDK clients, each through its own OAuth flow, refresh and revocation.
    let (ts, py) = tokio::join!(stack.typescript_client(), stack.python_client());
    for (name, report) in [("TypeScript", &ts), ("Python", &py)] {
        assert_eq!(report["ok"], true, "{name}: {report}");
        assert_eq!(
            report["redirects"], 2,
            "{name}: authorized once, then sent back after the revocation"
        );
        let exchanges: Vec<&str> = report["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        for step in [
            "POST /mcp 401",
            "POST /register 201",
            "POST /token authorization_code 200",
            "POST /token refresh_token 200",
        ] {
            assert!(
                exchanges.contains(&step),
                "{name}: no {step:?} in {exchanges:?}"
            );
        }
    }

    // A token for resource A is refused by the gate of resource B on the same proxy.
    let tokens = oauth_flow(&stack.issuer, &stack.a, "mcp").await;
    let token_a = tokens["access_token"].as_str().unwrap();
    let ok = post_mcp(&stack.a, Some(token_a), &[]).await;
    assert_eq!(ok.status(), 200, "A's token works at A");
    assert!(header(&ok, "mcp-session-id").len() > 10);
    // With the token, a client's aliases of the identity headers: the request passes, the aliases do not (the
    // tap is checked below).
    let aliased = post_mcp(&stack.a, Some(token_a), ALIASES).await;
    assert_eq!(aliased.status(), 200, "A's token with alias headers");
    let on_b = post_mcp(&stack.b, Some(token_a), &[]).await;
    assert_eq!(on_b.status(), 401);
    let challenge = header(&on_b, "www-authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}\"",
            stack
                .b
                .replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        )),
        "{challenge}"
    );

    // A valid token without the scope a resource needs: 403 with the insufficient_scope challenge, which
    // nginx would drop without the snippet's error_page.
    let admin_tokens = oauth_flow(&stack.issuer, &stack.admin, "mcp").await;
    let forbidden = post_mcp(&stack.admin, admin_tokens["access_token"].as_str(), &[]).await;
    assert_eq!(forbidden.status(), 403);
    let challenge = header(&forbidden, "www-authenticate");
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp:admin\"")
            && challenge.contains("/.well-known/oauth-protected-resource/admin/mcp"),
        "{challenge}"
    );

    // Headers a client adds to make the gate judge another request do not get it through.
    for forged in [
        ("X-Forwarded-Method", "OPTIONS"),
        ("X-Forwarded-Uri", "/.well-known/oauth-protected-resource"),
        ("X-Original-URL", &format!("{}/.well-known/x", stack.issuer)),
        ("X-Original-URI", "/.well-known/x"),
        ("X-Original-Method", "OPTIONS"),
    ] {
        let r = post_mcp(&stack.a, None, &[forged]).await;
        assert!(
            matches!(r.status().as_u16(), 401 | 403),
            "{forged:?} got {}",
            r.status()
        );
    }

    // What the MCP server received, byte for byte: real traffic, never a token or a forged identity.
    let connections = stack.tap.connections();
    assert!(
        connections.iter().any(|c| c.contains("\"tools/call\"")),
        "the tap saw the clients' tool calls"
    );
    let lines = stack.tap.header_lines();
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        !names.contains(&"authorization"),
        "the MCP server received an Authorization header"
    );
    // alice has no e-mail address: an X-User-Email with a value can only be forged.
    let emails: Vec<&(String, String)> = lines
        .iter()
        .filter(|(n, v)| n == "x-user-email" && !v.is_empty())
        .collect();
    assert!(emails.is_empty(), "{emails:?}");
    // The gate's identity on every authorized request.
    let ids: Vec<&str> = lines
        .iter()
        .filter(|(n, v)| n == "x-user-id" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(ids.len() >= 6, "identity on every request: {ids:?}");
    assert!(ids.iter().all(|v| *v == "local:alice"), "{ids:?}");
    for (n, v) in &lines {
        assert!(
            !v.contains("forged"),
            "a forged header reached the MCP server: {n}: {v}"
        );
    }
    for name in ["x-user-name", "x-client-id", "x-scopes"] {
        assert!(names.contains(&name), "{name} from the gate");
    }
    // No alias of an identity header (X_User_Id, X.User.Id, X-User_Id, X_Scopes): a backend that maps header
    // names to variables would read it as the gate's header.
    let aliases: Vec<&(String, String)> = lines
        .iter()
        .filter(|(n, v)| {
            v == "mallory"
                || (IDENTITY.contains(&as_cgi_reads_it(n).as_str())
                    && !IDENTITY.contains(&n.as_str()))
        })
        .collect();
    assert!(
        aliases.is_empty(),
        "aliases of the identity headers reached the MCP server through {}: {aliases:?}",
        stack.proxy.name
    );
}

/// The warnings in a Traefik log (`log.noColor`).
fn traefik_warnings(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" WRN ")).collect()
}

/// The real Traefik with host A's entry point as shipped and host B's without options: what the entry point
/// options (`aliasHeadersStrategy: delete`, no `%2F` or `%5C`) and the snippet's own alias removal each do.
pub async fn traefik_entry_point_options() {
    let stack = Stack::start_full(Proxy::Traefik, "", &[], EntryPointB::Bare).await;
    let port = |u: &str| url::Url::parse(u).unwrap().port().unwrap();
    let (pa, pb) = (port(&stack.a), port(&stack.b));

    // Traefik warns only about what B's entry point lacks.
    let log = stack.proxy.log();
    let warnings = traefik_warnings(&log);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("aliasHeadersStrategy is not configured")
                && w.contains(&format!("entryPointName=web-{pb}"))),
        "{warnings:#?}"
    );
    for w in &warnings {
        assert!(
            !w.contains(&format!("web-{pa}")),
            "host A's entry point: {w}"
        );
        assert!(
            !w.contains("maxResponseBodySize") && !w.contains("trustForwardHeader"),
            "the snippet's forwardAuth: {w}"
        );
    }

    // With a valid token each: identity aliases with `_`, `.` and `~`, and an alias of a header nobody manages.
    for (host, resource) in [("a", &stack.a), ("b", &stack.b)] {
        let tokens = oauth_flow(&stack.issuer, resource, "mcp").await;
        let values: Vec<(&str, String)> = [
            ("X_User_Id", "underscore"),
            ("X.User.Id", "dot"),
            ("X-User_Id", "mixed"),
            ("X_Scopes", "scopes"),
            ("X~User~Id", "tilde"),
            ("X_Other", "other"),
        ]
        .iter()
        .map(|(name, what)| (*name, format!("alias-{what}-{host}")))
        .collect();
        let headers: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = post_mcp(resource, tokens["access_token"].as_str(), &headers).await;
        assert_eq!(r.status(), 200, "host {host}");
    }
    let mut arrived: Vec<String> = stack
        .tap
        .header_lines()
        .into_iter()
        .filter(|(_, v)| v.starts_with("alias-"))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    arrived.sort();
    // A: the entry point deletes every header whose name aliases another, whatever it stands for. B: the
    // snippet's headers middleware deletes the `_` and `.` spellings of the identity headers; other characters
    // (`~`, and `!#$%&'*+^`|`) and other headers need the entry point option.
    assert_eq!(
        arrived,
        ["x_other: alias-other-b", "x~user~id: alias-tilde-b"]
    );

    // Encoded slash and backslash: refused by A's entry point before any router (400), passed on by B's to the
    // gate, which knows no resource at such a path (403).
    for encoded in ["%2F", "%2f", "%5C", "%5c"] {
        let refused = format!("http://127.0.0.1:{pa}/mcp{encoded}x");
        let r = reqwest::Client::new().post(&refused).send().await.unwrap();
        assert_eq!(r.status(), 400, "{refused}");
        let passed = format!("http://127.0.0.1:{pb}/mcp{encoded}x");
        let r = reqwest::Client::new().post(&passed).send().await.unwrap();
        assert_eq!(r.status(), 403, "{passed}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"], "access_denied",
            "{passed}: the gate's answer"
        );
    }
}

/// The official TypeScript SDK client identifies itself by a Client ID Metadata Document instead of registering:
/// the document is served over https from 127.0.0.1 with a certificate from a CA made here, which the service
/// trusts through its configuration (`[client_metadata] ca_certificates`, `builtin_roots = false`), and the
/// SDK runs its whole flow (authorize, login, consent, token, MCP calls, refresh) through the proxy.
pub async fn cimd_scenario(kind: Proxy) {
    use oauth_core::testing::documents::{DocumentServer, Route, TestCa};

    let ca = TestCa::new();
    let docs = DocumentServer::start(&ca, &["127.0.0.1"]).await;
    let client_id = format!("https://127.0.0.1:{}/e2e/client.json", docs.port());
    // Portless loopback redirect, as Claude Code's document lists it; the SDK uses port 53682.
    docs.set(
        "/e2e/client.json",
        Route::json(
            serde_json::json!({
                "client_id": client_id,
                "client_name": "e2e TypeScript SDK client (CIMD)",
                "redirect_uris": ["http://127.0.0.1/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            })
            .to_string(),
        )
        .header("Cache-Control", "max-age=3600"),
    );
    let extra = "\n[client_metadata]\nallowed_networks = [\"127.0.0.1\"]\nca_certificates = [\"ca.pem\"]\nbuiltin_roots = false\n";
    let mut stack = Stack::start_with(kind, extra, &[("ca.pem", ca.pem())]).await;
    stack.client_metadata_url = Some(client_id.clone());

    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        stack.issuer
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["client_id_metadata_document_supported"], true);

    let report = stack.typescript_client().await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["client_id"], client_id.as_str());
    assert_eq!(report["redirects"], 2, "{report}");
    let exchanges: Vec<&str> = report["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        !exchanges.iter().any(|e| e.contains("/register")),
        "no dynamic registration: {exchanges:?}"
    );
    for step in [
        "POST /mcp 401",
        "POST /token authorization_code 200",
        "POST /token refresh_token 200",
    ] {
        assert!(exchanges.contains(&step), "no {step:?} in {exchanges:?}");
    }
    // The service fetched the document (then served it from its cache for the rest of the run).
    assert_eq!(docs.hits("/e2e/client.json"), 1);
    // The MCP server saw the client's calls with the gate's identity.
    assert!(
        stack
            .tap
            .connections()
            .iter()
            .any(|c| c.contains("\"tools/call\"")),
        "the tap saw the client's tool calls"
    );
}
