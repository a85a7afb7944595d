//! What the workspace's HTTP-level tests share: a free loopback port, a child process that is killed when its
//! guard drops, scraping a hidden form field or a challenge parameter, `/verify` as Traefik calls it, and the
//! whole OAuth flow walked against a running server ([`walk_the_flow`]), a metrics scrape ([`metrics`]) and an OTLP/HTTP collector
//! ([`otlp`]).
//!
//! # Why a crate
//! The same flow must pass against every adapter of the engine: the actix service (`forwardauth-svc`, its real
//! binary) and the axum example (`examples`). One walk, written once, is what makes "a second adapter proves it"
//! a claim the tests check rather than two copies that drift. It depends on `oauth-core` (for PKCE) and never on
//! an adapter, so any adapter's tests can use it.
//!
//! Everything here panics on a failed check: it is test code.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod metrics;
pub mod otlp;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The PKCE verifier of [`walk_the_flow`] (RFC 7636 appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";
/// The loopback redirect URI of the client [`walk_the_flow`] registers.
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
/// The `client_name` of the client [`walk_the_flow`] registers (the consent page names it as what the client
/// calls itself, `“flow test”`).
pub const CLIENT_NAME: &str = "flow test";

/// A loopback port that was free a moment ago (the process that gets it binds it right away), and never one
/// this test process handed out before. The kernel may give a port it just released to the next `bind(0)`: two
/// tests running side by side in one binary could both be given it, and whichever binds second then talks to the
/// other's server (a proxy stack that once got another test's gate answered its requests with that gate's 404).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A child process, killed by PID (SIGKILL) if the guard drops while it runs, also when a test fails.
#[derive(Debug)]
pub struct Running {
    /// The process (to signal it, wait for it, or take its stderr).
    pub child: Child,
    /// The rest of the line the process announced itself with, after the prefix; for a server, its base URL.
    pub announced: String,
}

impl Running {
    /// Starts `cmd` with stdout piped and waits (30 s at most) for a stdout line starting with `prefix`. Stdout
    /// is drained afterwards so the child never blocks on a full pipe; stdin, stderr and everything else are as
    /// `cmd` says.
    pub async fn start(mut cmd: Command, prefix: &str) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let announced = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.trim().to_owned();
                }
            }
            panic!("{cmd:?} exited without printing `{prefix}…`");
        })
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not print `{prefix}…` within 30 s"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Running { child, announced }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// An authorization request (RFC 6749 §4.1.1) to `endpoint` as an MCP client sends it: the code flow, PKCE S256
/// with [`VERIFIER`], `state`, the RFC 8707 `resource`, and `scope` if given.
pub fn authorize_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    scope: Option<&str>,
    resource: &str,
) -> url::Url {
    let mut u = url::Url::parse(endpoint).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &oauth_core::pkce::s256(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state);
    if let Some(scope) = scope {
        u.query_pairs_mut().append_pair("scope", scope);
    }
    u.query_pairs_mut().append_pair("resource", resource);
    u
}

/// An HTTP client that plays a browser through the pages: it keeps cookies and does not follow redirects (the
/// tests look at each one).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A `Location` header resolved against the URL it answered.
pub fn absolute(current: &str, location: &str) -> String {
    url::Url::parse(current)
        .unwrap()
        .join(location)
        .unwrap()
        .into()
}

/// A real OpenID Provider: the npm package `oidc-provider` run by `tests/oidc-provider/provider.js` on a free
/// loopback port (installed by `.ci/run`), killed when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    _process: Running,
    /// Its issuer, `http://127.0.0.1:<port>`.
    pub issuer: String,
}

impl OidcProvider {
    /// Starts the provider for a client whose redirect URI is `redirect_uri`; its access tokens live
    /// `access_token_ttl` seconds if given (an hour otherwise).
    pub async fn start(redirect_uri: &str, access_token_ttl: Option<u64>) -> OidcProvider {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: `.ci/run` runs `npm ci --prefix tests/oidc-provider`"
        );
        let port = free_port();
        let mut node = Command::new("node");
        node.arg(dir.join("provider.js"))
            .arg(port.to_string())
            .arg(redirect_uri)
            .stderr(Stdio::null());
        if let Some(ttl) = access_token_ttl {
            node.env("ACCESS_TOKEN_TTL", ttl.to_string());
        }
        OidcProvider {
            _process: Running::start(node, "ready").await,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Sets `user`'s groups at the provider (`null`: no groups claim at all), through the test-only route of
    /// `provider.js`.
    pub async fn set_groups(&self, user: &str, groups: Value) {
        let res = reqwest::Client::new()
            .put(format!("{}/test/accounts/{user}/groups", self.issuer))
            .body(groups.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
}

/// The value of the hidden form field `name` in a page: the text after `name="{name}" value="`.
pub fn field(html: &str, name: &str) -> String {
    quoted_after(html, &format!("name=\"{name}\" value=\""))
}

/// The value of the parameter `name` in a header such as `WWW-Authenticate`: the text after `{name}="`.
pub fn param(header: &str, name: &str) -> String {
    quoted_after(header, &format!("{name}=\""))
}

fn quoted_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {text}"))
        + marker.len();
    let end = text[start..].find('"').unwrap() + start;
    text[start..end].to_owned()
}

/// `/verify` at `base` as Traefik calls it for a POST to `url` (`X-Forwarded-Method`/`-Proto`/`-Host`/`-Uri`),
/// with `token` as the bearer token if given.
pub async fn verify(
    http: &reqwest::Client,
    base: &str,
    url: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let u = url::Url::parse(url).unwrap();
    let mut req = http
        .get(format!("{base}/verify"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Proto", u.scheme())
        .header("X-Forwarded-Host", u.authority())
        .header("X-Forwarded-Uri", u.path());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// The RFC 9728 metadata URL of a resource: the well-known path between its origin and its path.
fn metadata_url(resource: &str) -> String {
    let u = url::Url::parse(resource).unwrap();
    let path = u.path().trim_end_matches('/');
    format!(
        "{}/.well-known/oauth-protected-resource{path}",
        u.origin().ascii_serialization()
    )
}

/// The whole flow an MCP client and its user's browser go through, against the authorization server at
/// `base` (which is also the issuer and serves `/verify`) guarding the MCP server `mcp_url` (a resource that
/// requires scope `mcp`), for the local user `user` (`password`, e-mail `{user}@example.com`):
///
/// 1. `/verify` without a token: 401 whose challenge names the resource's metadata;
/// 2. protected-resource metadata (RFC 9728) → the authorization server;
/// 3. authorization-server metadata (RFC 8414): issuer, S256;
/// 4. dynamic registration (RFC 7591) of a public client named [`CLIENT_NAME`];
/// 5. `/authorize` with PKCE → the sign-in page with `handle` and `csrf`;
/// 6. `POST /login` → the consent page, naming the client `“flow test”` (not verified);
/// 7. `POST /consent` approve → 302 to the client with `code`, `state`, `iss`;
/// 8. `POST /token` code + verifier → a Bearer token;
/// 9. `/verify` with it: 200 with `x-user-id`, `x-user-email`, `x-client-id`;
/// 10. refresh: a new access token, also admitted;
/// 11. revoke the refresh token: its grant's access token gets 401 `invalid_token`.
pub async fn walk_the_flow(base: &str, mcp_url: &str, user: &str, password: &str) {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mcp = mcp_url;

    // 1. The MCP client hits the protected server without a token; the gate answers 401 with discovery.
    let r = verify(&http, base, mcp, None).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let prm_url = param(&challenge, "resource_metadata");
    assert_eq!(prm_url, metadata_url(mcp));

    // 2. Protected-resource metadata → the authorization server.
    let prm: Value = http
        .get(&prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], mcp);
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    assert_eq!(issuer, base);

    // 3. Authorization-server metadata.
    let asm: Value = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], issuer.as_str());
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));

    // 4. Dynamic registration.
    let reg = http
        .post(asm["registration_endpoint"].as_str().unwrap())
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"], "client_name": CLIENT_NAME}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201);
    let client_id = reg.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 5. Authorize → login form.
    let authorize = authorize_url(
        asm["authorization_endpoint"].as_str().unwrap(),
        &client_id,
        REDIRECT,
        "s-123",
        Some("mcp"),
        mcp,
    );
    let login_page = http.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(login_page.status(), 200);
    let html = login_page.text().await.unwrap();
    let (handle, csrf) = (field(&html, "handle"), field(&html, "csrf"));

    // 6. Login → consent page.
    let consent_page = http
        .post(format!("{base}/login"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", csrf.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(consent_page.status(), 200);
    let html = consent_page.text().await.unwrap();
    assert!(
        html.contains(&format!("calling itself <strong>“{CLIENT_NAME}”</strong>")),
        "not the consent page: {html}"
    );
    let csrf = field(&html, "csrf");

    // 7. Consent → redirect with code, state, iss.
    let approved = http
        .post(format!("{base}/consent"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(
        (q["state"].as_str(), q["iss"].as_str()),
        ("s-123", issuer.as_str())
    );

    // 8. Code → tokens.
    let token_endpoint = asm["token_endpoint"].as_str().unwrap();
    let tokens: Value = http
        .post(token_endpoint)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
            ("resource", mcp),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap();

    // 9. The gate lets the request through with identity headers.
    let ok = verify(&http, base, mcp, Some(access)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-user-id"], format!("local:{user}").as_str());
    assert_eq!(
        ok.headers()["x-user-email"],
        format!("{user}@example.com").as_str()
    );
    assert_eq!(ok.headers()["x-client-id"], client_id.as_str());

    // 10. Refresh.
    let refreshed: Value = http
        .post(token_endpoint)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access2 = refreshed["access_token"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_eq!(verify(&http, base, mcp, Some(access2)).await.status(), 200);

    // 11. Revoke the refresh token: its whole grant dies at the gate.
    let revoked = http
        .post(asm["revocation_endpoint"].as_str().unwrap())
        .form(&[
            ("token", refreshed["refresh_token"].as_str().unwrap()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let denied = verify(&http, base, mcp, Some(access2)).await;
    assert_eq!(denied.status(), 401);
    assert!(
        denied.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_and_param_read_the_quoted_value() {
        let html =
            r#"<input type="hidden" name="handle" value="h-1"><input name="csrf" value="c&amp;2">"#;
        assert_eq!(field(html, "handle"), "h-1");
        assert_eq!(field(html, "csrf"), "c&amp;2");
        let challenge =
            r#"Bearer error="invalid_token", resource_metadata="http://a/.well-known/x""#;
        assert_eq!(param(challenge, "error"), "invalid_token");
        assert_eq!(
            param(challenge, "resource_metadata"),
            "http://a/.well-known/x"
        );
    }

    #[test]
    fn metadata_urls_put_the_well_known_path_first() {
        assert_eq!(
            metadata_url("http://127.0.0.1:9/mcp"),
            "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com/"),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[tokio::test]
    async fn a_process_is_ready_once_it_prints_the_prefix() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo starting; echo 'listening on http://x:1 '; sleep 30");
        let mut running = Running::start(cmd, "listening on ").await;
        assert_eq!(running.announced, "http://x:1");
        assert!(running.child.id().is_some());
        running.child.start_kill().unwrap();
    }
}
