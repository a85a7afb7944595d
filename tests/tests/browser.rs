//! A real browser through the pages: Debian's `chromium`, headless, driven by `playwright-core`
//! (`tests/js/browser-flow.mjs`, installed from `tests/js/package-lock.json` by `.ci/run`).
//!
//! forwardauth-svc runs in process with local users and a brand; an MCP client is registered with a loopback
//! redirect URI on which this test listens, as a desktop MCP client does. The browser signs in (a wrong password
//! first), uses "Not you?" on the consent page to sign in as someone else, approves, and lands on the client
//! with a code, which this test's listener receives and redeems; then it signs out and is asked to sign in
//! again; the access policy's 403 page offers "Not you?" too. Every page is saved as a screenshot at desktop
//! and phone width under `target/screenshots/browser/`, kept as test artefacts.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use forwardauth_svc::config::{Config, PagesConfig, ProviderConfig, StoreConfig};
use oauth_core::upstream::GithubConfig;
use oauth_core::{AccessPolicy, LocalUser, LocalUsers, ResourceConfig};
use serde_json::{Value, json};
use test_support::VERIFIER;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ALICE_PASSWORD: &str = "correct horse battery";
const BOB_PASSWORD: &str = "staple of the builder";

/// forwardauth-svc in process; stopped when dropped.
struct Service {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The service with alice and bob as local users, `/mcp` open to both and `/admin` to bob only, under a brand;
/// with `github`, a GitHub provider too (never contacted: its button is all the chooser needs).
async fn start_service(github: bool) -> Service {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = Config::defaults(listener.local_addr().unwrap());
    config.store = StoreConfig::Memory;
    config.server = oauth_core::ServerConfig::new(
        base.clone(),
        vec![
            ResourceConfig::new(format!("{base}/mcp"), vec!["mcp".into()])
                .named("Demo MCP server")
                .with_scope_descriptions(vec![(
                    "mcp".into(),
                    "Use the demo server's tools".into(),
                )]),
            ResourceConfig::new(format!("{base}/admin"), vec!["mcp".into()])
                .named("Admin MCP server")
                .with_policy(AccessPolicy::new(
                    vec!["local:bob".into()],
                    vec![],
                    vec![],
                    vec![],
                )),
        ],
    );
    config.users = vec![
        LocalUser::new("alice", LocalUsers::hash_password(ALICE_PASSWORD).unwrap()),
        LocalUser::new("bob", LocalUsers::hash_password(BOB_PASSWORD).unwrap()),
    ];
    if github {
        config.providers = vec![ProviderConfig::Github(GithubConfig::new(
            "Iv1.0123456789abcdef",
            "0123456789abcdef0123456789abcdef01234567",
        ))];
    }
    config.pages = PagesConfig {
        service_name: Some("Acme MCP".into()),
        logo_url: None,
        accent_color: Some("#6e40c9".into()),
        templates: vec![],
    };
    let state = forwardauth_svc::AppState::build(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(forwardauth_svc::serve(state, listener, async move {
        let _ = stopped.await;
    }));
    Service { base, _stop: stop }
}

/// The MCP client's side of the redirect: a loopback listener that records each request's path and query and
/// answers with a small page, as a desktop MCP client does.
async fn client_listener() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/callback", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if let Some(target) = line.split(' ').nth(1) {
                    log.lock().unwrap().push(target.to_owned());
                }
                let body = "<!doctype html><title>Test client</title><h1>The test client got the answer</h1><p>You may close this window.</p>";
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (redirect, seen)
}

async fn register(http: &reqwest::Client, base: &str, redirect: &str) -> String {
    let r: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"], "client_name": "Browser test client"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["client_id"].as_str().unwrap().to_owned()
}

/// Where the screenshots go: `target/screenshots/browser/` (or under `CARGO_TARGET_DIR`).
fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join("target")
        },
        PathBuf::from,
    );
    target.join("screenshots").join("browser")
}

fn installed(what: &str, path: &Path, how: &str) {
    assert!(
        path.exists(),
        "{what} is not installed ({}): {how}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_consents_reaches_the_client_signs_out_and_is_asked_again() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    installed(
        "playwright-core",
        &js.join("node_modules/playwright-core"),
        "`bash .ci/run` runs `npm ci --prefix tests/js`",
    );
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    installed(
        "chromium",
        &chromium,
        "`apt-get install chromium` (.ci/run installs it)",
    );

    let svc = start_service(false).await;
    let chooser = start_service(true).await;
    let (redirect, received) = client_listener().await;
    let http = reqwest::Client::new();
    let client_id = register(&http, &svc.base, &redirect).await;
    let chooser_client = register(&http, &chooser.base, &redirect).await;
    let authorize = |base: &str, client: &str, state: &str, resource: &str| {
        test_support::authorize_url(
            &format!("{base}/authorize"),
            client,
            &redirect,
            state,
            Some("mcp"),
            &format!("{base}{resource}"),
        )
        .to_string()
    };
    let shots = screenshots_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let plan = json!({
        "authorize": [
            authorize(&svc.base, &client_id, "first", "/mcp"),
            authorize(&svc.base, &client_id, "second", "/mcp"),
            authorize(&svc.base, &client_id, "third", "/mcp"),
        ],
        "admin": authorize(&svc.base, &client_id, "admin", "/admin"),
        "chooser": authorize(&chooser.base, &chooser_client, "chooser", "/mcp"),
        "redirect": redirect,
        "base": svc.base,
        "users": {"alice": ALICE_PASSWORD, "bob": BOB_PASSWORD},
        "screenshots": shots,
    });
    let run = tokio::process::Command::new("node")
        .arg(js.join("browser-flow.mjs"))
        .arg(plan.to_string())
        .env("CHROMIUM", &chromium)
        .current_dir(&js)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser walk finishes within 3 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser walk failed:\n{stderr}\n{stdout}"
    );
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .map(|r| serde_json::from_str(r).unwrap())
        .unwrap_or_else(|| panic!("no result line:\n{stdout}\n{stderr}"));

    // The client's listener got the code the browser was sent with, for the first authorization.
    let code = result["code"].as_str().unwrap();
    assert_eq!(result["state"], "first");
    let seen = received.lock().unwrap().clone();
    let callback = seen
        .iter()
        .find(|t| t.starts_with("/callback?"))
        .unwrap_or_else(|| panic!("the client saw no callback: {seen:?}"));
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(callback.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(query["code"], code);
    assert_eq!(query["iss"], svc.base);
    assert_eq!(result["askedAgain"], true);

    // The code is real, and bob's ("Not you?" switched the user on the same authorization).
    let token: Value = http
        .post(format!("{}/token", svc.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"));
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "local:bob");

    // Every page at both widths, as PNG files.
    for page in [
        "login",
        "login-failed",
        "consent",
        "client-redirect",
        "sign-out",
        "signed-out",
        "login-again",
        "error",
        "chooser",
    ] {
        for width in ["desktop", "phone"] {
            let file = shots.join(format!("{page}-{width}.png"));
            let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{}",
                file.display()
            );
        }
    }
}
