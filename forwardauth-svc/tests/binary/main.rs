//! The real binary on a free loopback port, driven through the whole flow with an HTTP client and a cookie jar:
//! discovery from a 401 at `/verify` → protected-resource metadata → AS metadata → dynamic registration →
//! authorize → login form → consent → code → token → `/verify` 200 with identity headers → refresh → revoke →
//! `/verify` 401 (`test_support::walk_the_flow`, the same walk the axum example must pass). The process is started
//! and stopped (SIGTERM) by PID.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{Running, field, free_port, walk_the_flow};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

mod cli;
mod connections;
mod json_log;
mod observe;
mod otlp;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

async fn start(dir: &std::path::Path) -> Running {
    start_logging(dir, Stdio::inherit()).await
}

/// [`start`], with the service's log (stderr) going to `stderr`.
async fn start_logging(dir: &std::path::Path, stderr: Stdio) -> Running {
    let port = free_port();
    write_config(dir, port, "");
    serve(&dir.join("config.toml"), stderr).await
}

/// Starts the binary on `config` and waits until it says where it listens ([`Running::announced`], the base
/// URL); it is killed by PID if the test ends early.
async fn serve(config: &std::path::Path, stderr: Stdio) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"));
    cmd.arg("--config").arg(config).arg("serve").stderr(stderr);
    Running::start(cmd, "forwardauth-svc listening on ").await
}

/// An issuer with a path would have its RFC 8414 metadata at `/.well-known/oauth-authorization-server/auth` and
/// its endpoints below `/auth`, none of which the service serves: `check-config` says so and fails.
#[test]
fn check_config_refuses_an_issuer_with_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "issuer = \"https://example.com/auth\"\n\n[[resources]]\nresource = \"https://mcp.example.com/mcp\"\nscopes = [\"mcp\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_forwardauth-svc"))
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .env_remove("FORWARDAUTH_ISSUER")
        // No backtrace, even when one is asked for.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: {}: issuer: must be an origin without a path (https://auth.example.com): the service serves its metadata and endpoints at the root\n",
            config.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_against_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start(dir.path()).await;
    let base = svc.announced.clone();

    // 1.-11. Discovery from the gate's 401 to revocation, as every adapter must serve it (`test_support`).
    walk_the_flow(&base, &format!("{base}/mcp"), "alice", "wonderland").await;

    // 12. Graceful stop on SIGTERM, by PID.
    let pid = svc.child.id().unwrap();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(15), svc.child.wait())
        .await
        .expect("stops within 15 s")
        .unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

/// Failed logins and the ban they earn are logged with the username and the client address, and never with the
/// password tried; the banned user sees the ban page even with the right password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_and_bans_are_logged_with_username_and_address_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start_logging(dir.path(), Stdio::piped()).await;
    let mut log = BufReader::new(svc.child.stderr.take().unwrap()).lines();
    let base = svc.announced.clone();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let reg: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut authorize = url::Url::parse(&format!("{base}/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", reg["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &oauth_core::pkce::s256(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &format!("{base}/mcp"));
    let html = http
        .get(authorize.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (handle, csrf) = (field(&html, "handle"), field(&html, "csrf"));
    let post = |password: &'static str| {
        http.post(format!("{base}/login")).form(&[
            ("handle", handle.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", password),
        ])
    };
    for _ in 0..5 {
        assert_eq!(post("Tr0ub4dor-guess").send().await.unwrap().status(), 401);
    }
    let banned = post("wonderland").send().await.unwrap();
    assert_eq!(banned.status(), 429);
    assert_eq!(banned.headers()["retry-after"], "900");
    assert!(
        banned
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );

    let mut seen = (0, false, false);
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            assert!(
                !line.contains("Tr0ub4dor-guess") && !line.contains("wonderland"),
                "a password reached the log: {line}"
            );
            let names_both = line.contains("alice") && line.contains("127.0.0.1");
            if line.contains("login failed") && names_both {
                seen.0 += 1;
            }
            if line.contains("login banned after too many failures") && names_both {
                seen.1 = true;
            }
            if line.contains("login refused: banned") && names_both {
                seen.2 = true;
            }
            if seen == (5, true, true) {
                return;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "log lines seen: {seen:?}");
}

/// Writes `dir/config.toml` (listening on `port`, embedded store, resource `/mcp` requiring `mcp`, plus `extra`
/// sections) and `dir/users.toml` with alice, password `wonderland`.
fn write_config(dir: &std::path::Path, port: u16, extra: &str) {
    let hash = oauth_core::LocalUsers::hash_password("wonderland").unwrap();
    std::fs::write(
        dir.join("users.toml"),
        format!("[[users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\nemail = \"alice@example.com\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            r#"listen = "127.0.0.1:{port}"
issuer = "http://127.0.0.1:{port}"

[store]
path = "data/oauth.redb"

[users]
file = "users.toml"
{extra}
[[resources]]
resource = "http://127.0.0.1:{port}/mcp"
name = "Binary test MCP"
scopes = ["mcp"]
required_scopes = ["mcp"]
"#
        ),
    )
    .unwrap();
}

/// Grants made in-process on the store file (before the binary opens it): `(client_id, refresh token)`.
async fn grants_in_process(
    config: &forwardauth_svc::config::Config,
    n: usize,
) -> Vec<(String, String)> {
    let auth = forwardauth_svc::state::build_auth(config).await.unwrap();
    let resource = &config.server.resources[0].resource;
    let mut out = Vec::new();
    for _ in 0..n {
        let client = auth
            .register(
                json!({
                    "redirect_uris": [REDIRECT],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                })
                .to_string()
                .as_bytes(),
                None,
            )
            .await
            .unwrap();
        let enc =
            |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
        let query = format!(
            "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&scope=mcp&resource={}",
            enc(&client.client_id),
            enc(REDIRECT),
            oauth_core::pkce::s256(VERIFIER),
            enc(resource),
        );
        let prompt = auth
            .authorize(oauth_core::wire::parse_form(query.as_bytes()).unwrap())
            .await
            .unwrap();
        let alice = oauth_core::Identity {
            subject: "local:alice".into(),
            username: Some("alice".into()),
            ..oauth_core::Identity::default()
        };
        let url = auth.approve(&prompt.handle, alice).await.unwrap();
        let code = url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let token = format!(
            "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={VERIFIER}",
            enc(&client.client_id),
            enc(&code),
            enc(REDIRECT)
        );
        let t = auth
            .token(
                None,
                oauth_core::wire::parse_form(token.as_bytes()).unwrap(),
            )
            .await
            .unwrap();
        out.push((client.client_id, t.refresh_token.unwrap()));
    }
    out
}

/// A write is answered only once it is durable, and a refresh is one commit. The real binary, killed with
/// SIGKILL in the middle of a burst of registrations and refreshes, has lost none of the registrations it
/// answered, and every grant is left with exactly one way forward: either the last refresh token it answered
/// with is still the current one (the next rotation never committed), or that rotation committed whole (new
/// current token and the old token's sealed retry answer together) and only its answer was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_a_refresh_is_never_half_done() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No rate limits and no client cap: the burst comes from one address.
    write_config(
        dir.path(),
        port,
        "[registration]\nmax_clients = 0\n\n[rate_limits]\nregister = 0\ntoken = 0\n",
    );
    let config_path = dir.path().join("config.toml");
    let config = forwardauth_svc::config::load(Some(&config_path), &|_| None).unwrap();
    let grants = grants_in_process(&config, 8).await;

    let mut running = serve(&config_path, Stdio::null()).await;
    let base = running.announced.clone();

    let http = reqwest::Client::new();
    let registered: Arc<Mutex<Vec<String>>> = Arc::default();
    // Per grant: every refresh token the binary answered with, in order.
    let answered: Arc<Mutex<Vec<Vec<String>>>> = Arc::new(Mutex::new(
        grants.iter().map(|(_, rt)| vec![rt.clone()]).collect(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (http, base, registered) = (http.clone(), base.clone(), Arc::clone(&registered));
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(r) = http
                    .post(format!("{base}/register"))
                    .json(
                        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
                    )
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 201 {
                    return;
                }
                let Ok(body) = r.json::<Value>().await else {
                    return;
                };
                registered
                    .lock()
                    .unwrap()
                    .push(body["client_id"].as_str().unwrap().to_owned());
            }
        }));
    }
    for (i, (client_id, _)) in grants.iter().enumerate() {
        let (http, base, answered, client_id) = (
            http.clone(),
            base.clone(),
            Arc::clone(&answered),
            client_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let current = answered.lock().unwrap()[i].last().unwrap().clone();
                let Ok(r) = http
                    .post(format!("{base}/token"))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", client_id.as_str()),
                        ("refresh_token", current.as_str()),
                    ])
                    .send()
                    .await
                else {
                    return;
                };
                assert!(
                    r.status() == 200,
                    "refresh refused before the kill: {}",
                    r.status()
                );
                let Ok(body) = r.json::<Value>().await else {
                    return;
                };
                answered.lock().unwrap()[i]
                    .push(body["refresh_token"].as_str().unwrap().to_owned());
            }
        }));
    }
    // Let the burst run until a good number of writes was answered, then kill the process mid-burst.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let regs = registered.lock().unwrap().len();
        let refreshes: usize = answered.lock().unwrap().iter().map(|a| a.len() - 1).sum();
        if (regs >= 300 && refreshes >= 80) || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.child.start_kill().unwrap(); // SIGKILL
    running.child.wait().await.unwrap();
    for t in &tasks {
        t.abort();
    }
    let registered = registered.lock().unwrap().clone();
    let answered = answered.lock().unwrap().clone();
    let refreshed: usize = answered.iter().map(|a| a.len() - 1).sum();
    eprintln!(
        "killed after {} answered registrations and {refreshed} answered refreshes",
        registered.len()
    );
    assert!(
        registered.len() >= 50,
        "the burst registered only {}",
        registered.len()
    );
    assert!(
        refreshed >= 16,
        "the burst refreshed only {refreshed} times"
    );

    // Reopen the store the binary was killed on: the store itself, to look at each grant's refresh chain, and an
    // engine over it (with the configured users, which a refresh checks).
    let clock: Arc<dyn oauth_core::Clock> = Arc::new(oauth_core::SystemClock);
    let forwardauth_svc::config::StoreConfig::Embedded { path, .. } = &config.store else {
        panic!("the test configures the embedded store")
    };
    // The store file and the key-encryption key the first start generated beside it: both its owner's only.
    #[cfg(unix)]
    for file in [
        path.clone(),
        forwardauth_svc::state::generated_key_path(path),
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let store: Arc<dyn oauth_core::Store> =
        Arc::new(oauth_core::EmbeddedStore::open(path, clock.clone()).unwrap());
    let providers = forwardauth_svc::state::build_providers(&config, clock.clone()).unwrap();
    let auth = oauth_core::AuthServer::new(
        config.server.clone(),
        store.clone(),
        // The key the binary generated beside the store on its first start.
        forwardauth_svc::state::sealer(&config).unwrap(),
        clock,
    )
    .await
    .unwrap()
    .with_providers(providers);
    let mut missing = Vec::new();
    for id in &registered {
        if store.client(id).await.unwrap().is_none() {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} answered registrations lost, e.g. {:?}",
        missing.len(),
        registered.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );
    for tokens in &answered {
        let last = tokens.last().unwrap();
        let grant_id = last.split('.').next().unwrap();
        let grant = store
            .grant(grant_id)
            .await
            .unwrap()
            .expect("the grant survives");
        let chain = grant.refresh.expect("the grant keeps its refresh chain");
        let hash = oauth_core::Secret::new(last.as_str()).hash();
        let is_current = chain.current.ct_eq(&hash);
        let rotated_whole = chain
            .previous
            .as_ref()
            .is_some_and(|p| p.token.ct_eq(&hash));
        assert!(
            is_current != rotated_whole,
            "after {} answered refreshes: current = {is_current}, grace record = {rotated_whole}",
            tokens.len() - 1
        );
        // Either way, the client can go on with the token it last received.
        let client_id = grant.client_id.clone();
        let req = format!(
            "grant_type=refresh_token&client_id={client_id}&refresh_token={}",
            url::form_urlencoded::byte_serialize(last.as_bytes()).collect::<String>()
        );
        auth.token(None, oauth_core::wire::parse_form(req.as_bytes()).unwrap())
            .await
            .unwrap();
    }
}
