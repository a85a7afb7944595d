//! Upstream login through each proxy, with the issuer on the MCP host.
//!
//! ```text
//!   browser (cookie jar) ──► nginx | Caddy | Traefik ──► forwardauth-svc ([[providers]] type = "oidc")
//!          │                  (snippet as printed)   └──/verify──► tap ──► server-everything
//!          └──► oidc-provider (tests/oidc-provider/provider.js), which sends the browser back to
//!               <issuer>/callback, i.e. through the proxy again
//! ```
//!
//! Every request to the service goes to the proxy's host A: registration, `/authorize`, the provider choice
//! (`POST /login/upstream`), the way back from the provider (`GET /callback`), consent, `/token` (code and
//! refresh) and the MCP calls. The proxy's and the provider's logs are printed when a check fails.

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use forwardauth_svc::snippet::Proxy;
use serde_json::{Value, json};

use crate::stack::{Stack, post_mcp};
use crate::support::*;

/// The `[[providers]]` id: upstream subjects become `corp:<sub>`.
const PROVIDER_ID: &str = "corp";

/// `tests/oidc-provider/provider.js` on `port`, whose one client (`forwardauth` / `forwardauth-secret`) may
/// only be sent back to `redirect_uri`.
async fn start_provider(port: u16, redirect_uri: &str, dir: &std::path::Path) -> Process {
    let provider = e2e_dir().join("oidc-provider");
    assert!(
        provider.join("node_modules/oidc-provider").exists(),
        "oidc-provider is not installed: `bash .ci/run` runs `npm ci --prefix tests/oidc-provider`"
    );
    let mut p = Process::spawn(
        "oidc-provider",
        Command::new(tool("Node.js", &["node"]))
            .arg(provider.join("provider.js"))
            .arg(port.to_string())
            .arg(redirect_uri),
        dir,
    );
    p.wait_for_port(port).await;
    p
}

/// Prints the proxy's and the provider's logs if the test fails while it is alive.
struct LogsOnFailure<'a> {
    stack: &'a Stack,
    provider: &'a Process,
}

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log\n{}\n--- {} log\n{}",
                self.stack.proxy.name,
                self.stack.proxy.log(),
                self.provider.name,
                self.provider.log()
            );
        }
    }
}

fn location(r: &reqwest::Response) -> String {
    let to = r
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("{} without a Location", r.status()))
        .to_str()
        .unwrap();
    url::Url::parse(r.url().as_str())
        .unwrap()
        .join(to)
        .unwrap()
        .into()
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Follows the provider's redirects and interaction pages from `url`, logging in as `user` and granting
/// consent, until the provider sends the browser back to `callback`; returns that URL unvisited.
async fn at_provider(
    http: &reqwest::Client,
    mut url: String,
    callback: &str,
    user: &str,
) -> String {
    let mut form: Option<Vec<(&str, &str)>> = None;
    for _ in 0..20 {
        if url.starts_with(callback) {
            return url;
        }
        let res = match form.take() {
            Some(f) => http.post(&url).form(&f).send().await.unwrap(),
            None => http.get(&url).send().await.unwrap(),
        };
        let status = res.status().as_u16();
        if (300..400).contains(&status) {
            url = location(&res);
            continue;
        }
        let text = res.text().await.unwrap();
        assert!(
            status == 200 && url.contains("/interaction/"),
            "unexpected page at the provider, {status} {url}:\n{text}"
        );
        form = Some(if text.contains("name=\"prompt\" value=\"login\"") {
            vec![("prompt", "login"), ("login", user), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        });
    }
    panic!("the provider never sent the browser back to {callback}");
}

async fn refresh(http: &reqwest::Client, issuer: &str, client_id: &str, token: &str) -> Value {
    let r = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "refresh");
    r.json().await.unwrap()
}

/// An MCP client logs its user in at an upstream OpenID Provider, all through the proxy, then calls the MCP
/// server with the token and with a refreshed one; the MCP server sees the upstream identity.
pub async fn upstream_oidc_login(kind: Proxy) {
    let started = Instant::now();
    // The service discovers the provider lazily (at the first login), so the provider can start after the stack,
    // once the redirect URI (on the proxy's host A) is known.
    let provider_port = free_port();
    let provider_issuer = format!("http://127.0.0.1:{provider_port}");
    let extra = format!(
        r#"
[[providers]]
type = "oidc"
id = "{PROVIDER_ID}"
display_name = "Corp SSO"
issuer = "{provider_issuer}"
client_id = "forwardauth"
client_secret = "forwardauth-secret"
scopes = ["openid", "email", "profile", "groups"]
timeout_secs = 3
"#
    );
    let stack = Stack::start_with(kind, &extra, &[]).await;
    let provider_dir = tempfile::tempdir().unwrap();
    let callback = format!("{}/callback", stack.issuer);
    let provider = start_provider(provider_port, &callback, provider_dir.path()).await;
    let _logs = LogsOnFailure {
        stack: &stack,
        provider: &provider,
    };
    let issuer = stack.issuer.as_str();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Dynamic registration.
    let reg = http
        .post(format!("{issuer}/register"))
        .json(
            &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "client_name": "e2e upstream"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201, "register");
    let reg: Value = reg.json().await.unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();

    // The login page offers the provider (and alice's local account).
    let authorize = authorize_url(issuer, &client_id, "mcp", &stack.a, Some("client-state"));
    let page = http.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200, "authorize");
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in with Corp SSO"), "{html}");
    assert!(
        html.contains(&format!("name=\"provider\" value=\"{PROVIDER_ID}\"")),
        "{html}"
    );

    // The provider choice: routed to the service on the MCP host (Caddy and Traefik once refused it with 403).
    let chosen = http
        .post(format!("{issuer}/login/upstream"))
        .form(&[
            ("handle", field(&html, "handle")),
            ("csrf", field(&html, "csrf")),
            ("provider", PROVIDER_ID.into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        chosen.status(),
        200,
        "POST /login/upstream: our consent page first"
    );
    let html = chosen.text().await.unwrap();
    assert!(
        html.contains("you sign in with <strong>Corp SSO</strong>"),
        "{html}"
    );
    // Approved here, before the provider is ever visited.
    let approved = http
        .post(format!("{issuer}/consent"))
        .form(&[
            ("handle", field(&html, "handle")),
            ("csrf", field(&html, "csrf")),
            ("provider", field(&html, "provider")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302, "POST /consent before sign-in");
    let to_provider = location(&approved);
    assert!(
        to_provider.starts_with(&format!("{provider_issuer}/")),
        "{to_provider}"
    );
    let q = query(&to_provider);
    assert_eq!(q["redirect_uri"], callback);
    assert_eq!(q["code_challenge_method"], "S256");

    // At the provider, then back through the proxy.
    let back = at_provider(&http, to_provider, &callback, "alice").await;
    let q = query(&back);
    assert!(q.contains_key("code") && q.contains_key("state"), "{back}");
    // Approved before, and granted all of it: the callback goes straight back to the client.
    let returned = http.get(&back).send().await.unwrap();
    assert_eq!(returned.status(), 302, "GET /callback");
    let to_client = location(&returned);
    assert!(to_client.starts_with(REDIRECT), "{to_client}");
    let q = query(&to_client);
    assert_eq!(
        (q["state"].as_str(), q["iss"].as_str()),
        ("client-state", issuer),
        "our iss, never the provider's"
    );

    // The code at /token.
    let tokens = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
            ("resource", stack.a.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), 200, "authorization_code");
    let tokens: Value = tokens.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let mcp = post_mcp(&stack.a, Some(access), &[]).await;
    assert_eq!(mcp.status(), 200, "MCP call with the token");

    // The refresh re-checks alice at the provider; the new token works too.
    let refreshed = refresh(
        &http,
        issuer,
        &client_id,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    let renewed = refreshed["access_token"].as_str().unwrap();
    assert_ne!(renewed, access, "a new access token");
    let mcp = post_mcp(&stack.a, Some(renewed), &[]).await;
    assert_eq!(mcp.status(), 200, "MCP call with the refreshed token");

    // The MCP server saw the upstream identity on both calls.
    let lines = stack.tap.header_lines();
    let values = |name: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(
        values("x-user-id"),
        [
            format!("{PROVIDER_ID}:alice"),
            format!("{PROVIDER_ID}:alice")
        ]
    );
    assert_eq!(
        values("x-user-email"),
        ["alice@example.com", "alice@example.com"]
    );
    assert!(
        !lines.iter().any(|(n, _)| n == "authorization"),
        "no token passthrough"
    );
    eprintln!(
        "upstream OIDC login through {}: {:.1} s",
        stack.proxy.name,
        started.elapsed().as_secs_f64()
    );
}
