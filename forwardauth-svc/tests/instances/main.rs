//! Several instances of the service on one real Redis (`redis-server` started per test on a free loopback port,
//! stopped by PID), each served in-process by `forwardauth_svc::serve` on `127.0.0.1:0` and driven over HTTP:
//! state shared across instances, revocation propagation (measured), concurrent refreshes, Redis killed and
//! restarted under load, and the move from the embedded store to Redis.
//!
//! Run with `--nocapture` to see the measured revocation propagation.

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use forwardauth_svc::AppState;
use forwardauth_svc::config::{Config, RawConfig};
use oauth_core::testing::{RedisServer, unique_prefix};
use oauth_core::{AuthServer, LocalUser, LocalUsers};
use serde_json::{Value, json};
use test_support::field;
use tokio::sync::oneshot;

const ISSUER: &str = "http://127.0.0.1:1";
const MCP: &str = "http://127.0.0.1:1/mcp";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

fn password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| LocalUsers::hash_password("wonderland").unwrap())
}

/// The key-encryption key every instance of a deployment shares (in `dir/kek`).
fn deployment_key() -> oauth_core::KeyEncryptionKey {
    oauth_core::KeyEncryptionKey::from_bytes([0x42; 32])
}

/// The configuration every instance of a deployment shares, loaded as a file would be.
fn config(dir: &Path, redis_url: &str, prefix: &str) -> Config {
    config_with(dir, redis_url, prefix, "", "")
}

/// [`config`] with more `[store]` and `[tokens]` lines.
fn config_with(dir: &Path, redis_url: &str, prefix: &str, store: &str, tokens: &str) -> Config {
    let path = dir.join("config.toml");
    std::fs::write(dir.join("kek"), deployment_key().expose_base64()).unwrap();
    let text = format!(
        "issuer = \"{ISSUER}\"\n[store]\nbackend = \"redis\"\nurl = \"{redis_url}\"\nkey_prefix = \"{prefix}\"\ntimeout_ms = 500\n\
         key_encryption_key_file = \"kek\"\n{store}\n[tokens]\n{tokens}\n\
         [[resources]]\nresource = \"{MCP}\"\nscopes = [\"mcp\"]\nrequired_scopes = [\"mcp\"]\n"
    );
    std::fs::write(&path, &text).unwrap();
    let mut c = RawConfig::from_toml(&text, &path)
        .unwrap()
        .into_config(Some(&path), &|_| None)
        .unwrap();
    c.users = vec![LocalUser::new("alice", password_hash()).with_email("alice@example.com")];
    c
}

/// One instance serving on a free loopback port until dropped.
struct Instance {
    base: String,
    auth: Arc<AuthServer>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn instance(config: &Config) -> Instance {
    let state = AppState::build(config).await.unwrap();
    let auth = state.auth.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(forwardauth_svc::serve(state, listener, async {
        let _ = stopped.await;
    }));
    Instance {
        base,
        auth,
        stop: Some(stop),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `/verify` at `base` as Traefik calls it for a POST to the MCP server.
async fn verify(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    http.get(format!("{base}/verify"))
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", "127.0.0.1:1")
        .header("X-Forwarded-Uri", "/mcp")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn verify_status(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    verify(http, base, token).await.status().as_u16()
}

async fn register(http: &reqwest::Client, base: &str) -> String {
    let reg = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                      "grant_types": ["authorization_code", "refresh_token"], "client_name": "instances test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201);
    reg.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Authorize at `a`, log in at `b`, consent at `a`: the browser's steps land on different instances.
async fn code(http: &reqwest::Client, a: &str, b: &str, client_id: &str) -> String {
    let mut authorize = url::Url::parse(&format!("{a}/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &oauth_core::pkce::s256(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "s-1")
        .append_pair("resource", MCP);
    let page = http.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let (handle, csrf) = (field(&html, "handle"), field(&html, "csrf"));
    let page = http
        .post(format!("{b}/login"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", "wonderland"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        200,
        "the login at B finds A's pending authorization"
    );
    let csrf = field(&page.text().await.unwrap(), "csrf");
    let approved = http
        .post(format!("{a}/consent"))
        .form(&[
            ("handle", handle.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302, "A finds the session B logged in");
    let location = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    q["code"].clone()
}

async fn token(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http.post(format!("{base}/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn redeem(http: &reqwest::Client, base: &str, client_id: &str, code: &str) -> Value {
    let r = token(
        http,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn refresh(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    rt: &str,
) -> reqwest::Response {
    token(
        http,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id),
        ],
    )
    .await
}

async fn revoke(http: &reqwest::Client, base: &str, client_id: &str, t: &str) {
    let r = http
        .post(format!("{base}/revoke"))
        .form(&[("token", t), ("client_id", client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Polls `/verify` at `base` until it answers `status`, for at most `deadline`; returns how long it took.
async fn until_status(
    http: &reqwest::Client,
    base: &str,
    t: &str,
    status: u16,
    deadline: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if verify_status(http, base, t).await == status {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_from_a_redeems_at_b_tokens_verify_everywhere_and_revocation_at_a_reaches_b_within_a_second()
 {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &redis.url(), &unique_prefix("shared"));
    // B serves its metrics: the revocations it applies from the store are measured there.
    let metrics_port = test_support::free_port();
    let mut config_b = config.clone();
    config_b.metrics_listen = Some(([127, 0, 0, 1], metrics_port).into());
    let (a, b) = (instance(&config).await, instance(&config_b).await);
    assert_eq!(
        a.auth.jwks(),
        b.auth.jwks(),
        "the second instance loads the first one's key"
    );
    let http = http();
    let client_id = register(&http, &a.base).await;
    let first = code(&http, &a.base, &b.base, &client_id).await;
    let tokens = redeem(&http, &b.base, &client_id, &first).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(verify_status(&http, &b.base, access).await, 200);
    assert_eq!(verify_status(&http, &a.base, access).await, 200);
    // The code was redeemed at B: a replay at A is refused.
    let replay = token(
        &http,
        &a.base,
        &[
            ("grant_type", "authorization_code"),
            ("code", first.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
        ],
    )
    .await;
    assert_eq!(replay.status(), 400);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["error_description"],
        "the authorization code was already used; tokens issued from it are revoked"
    );
    until_status(&http, &b.base, access, 401, Duration::from_secs(1))
        .await
        .expect("the replay at A revokes, at B, the grant B issued");

    // Revocation at A, seen at B: measured over 20 fresh tokens, each cached at B before it is revoked.
    let tokens = redeem(
        &http,
        &a.base,
        &client_id,
        &code(&http, &a.base, &b.base, &client_id).await,
    )
    .await;
    let mut rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut samples = Vec::new();
    for _ in 0..20 {
        let next: Value = refresh(&http, &a.base, &client_id, &rt)
            .await
            .json()
            .await
            .unwrap();
        rt = next["refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("refresh failed: {next}"))
            .to_owned();
        let access = next["access_token"].as_str().unwrap().to_owned();
        assert_eq!(verify_status(&http, &b.base, &access).await, 200);
        let revoked_at = Instant::now();
        revoke(&http, &a.base, &client_id, &access).await;
        let seen = until_status(&http, &b.base, &access, 401, Duration::from_secs(1))
            .await
            .expect("a revocation at A is refused at B within 1 s");
        let _ = seen;
        samples.push(revoked_at.elapsed());
    }
    samples.sort();
    eprintln!(
        "revocation propagation A → B over {} trials: p50 {:?}, max {:?}",
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    );
    assert!(samples.iter().all(|d| *d < Duration::from_secs(1)));

    // B measured each revocation A made (the replay's grant, then the 20 tokens) as it applied it from the store,
    // each within the second the polling above allowed (plus the scrape's own delay: none is counted twice).
    let m = test_support::metrics::scrape(metrics_port).await;
    let at = |series: &str| test_support::metrics::value(&m, series);
    let count = at("forwardauth_revocation_propagation_seconds_count");
    let sum = at("forwardauth_revocation_propagation_seconds_sum");
    assert!(
        count >= 21.0,
        "{count} revocations measured at B, of 21 made at A"
    );
    assert!(
        sum < count,
        "{sum} s over {count} revocations: under a second each"
    );
    eprintln!(
        "revocation propagation as B measured it: {count} revocations, mean {:.1} ms",
        sum / count * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_at_two_instances_have_one_winner_and_leave_the_family_intact() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &redis.url(), &unique_prefix("race"));
    let (a, b) = (instance(&config).await, instance(&config).await);
    let http = http();
    let client_id = register(&http, &a.base).await;
    let code = code(&http, &a.base, &a.base, &client_id).await;
    let tokens = redeem(&http, &a.base, &client_id, &code).await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();

    let mut tasks = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (http, client_id, rt) = (http.clone(), client_id.clone(), rt.clone());
        tasks.push(tokio::spawn(async move {
            let r = refresh(&http, &base, &client_id, &rt).await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut pairs = HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(
            status, 200,
            "a retry within the grace window gets the winner's refresh token: {body}"
        );
        pairs.insert((
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        ));
    }
    // One rotation won: every caller got its refresh token (a grace-window retry gets a fresh access token).
    let refreshes: HashSet<&String> = pairs.iter().map(|(_, r)| r).collect();
    assert_eq!(
        refreshes.len(),
        1,
        "one rotation won; every caller got its refresh token"
    );
    let (access, next) = pairs.into_iter().next().unwrap();
    assert_eq!(verify_status(&http, &a.base, &access).await, 200);
    assert_eq!(verify_status(&http, &b.base, &access).await, 200);
    // The family goes on from the winner's token, at either instance.
    let r = refresh(&http, &b.base, &client_id, &next).await;
    assert_eq!(r.status(), 200);
    let later: Value = r.json().await.unwrap();
    assert_eq!(
        verify_status(&http, &a.base, later["access_token"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_never_yields_an_unjustified_200_and_recovers_without_a_restart()
 {
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_persistent(data.path());
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &redis.url(), &unique_prefix("outage"));
    let (a, b) = (instance(&config).await, instance(&config).await);
    let http = http();
    let client_id = register(&http, &a.base).await;
    let live = redeem(
        &http,
        &a.base,
        &client_id,
        &code(&http, &a.base, &b.base, &client_id).await,
    )
    .await;
    let revoked = redeem(
        &http,
        &b.base,
        &client_id,
        &code(&http, &b.base, &a.base, &client_id).await,
    )
    .await;
    let live_access = live["access_token"].as_str().unwrap().to_owned();
    let revoked_access = revoked["access_token"].as_str().unwrap().to_owned();
    revoke(&http, &a.base, &client_id, &revoked_access).await;
    until_status(&http, &b.base, &revoked_access, 401, Duration::from_secs(1))
        .await
        .expect("the revocation reached B");
    // An unknown token: a well-formed JWT under a kid neither instance has.
    let unknown = format!(
        "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Im5vcGUifQ.{}",
        live_access.split_once('.').unwrap().1
    );

    // Load: both instances, the three tokens, until told to stop (bounded by a count as well).
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for base in [a.base.clone(), b.base.clone()] {
        let (http, stop) = (http.clone(), stop.clone());
        let tokens = [live_access.clone(), revoked_access.clone(), unknown.clone()];
        load.push(tokio::spawn(async move {
            let mut seen: Vec<(usize, u16)> = Vec::new();
            for _ in 0..200_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                for (i, t) in tokens.iter().enumerate() {
                    seen.push((i, verify_status(&http, &base, t).await));
                }
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    redis.kill();
    let ready = http.get(format!("{}/ready", a.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without Redis");
    let r = refresh(
        &http,
        &b.base,
        &client_id,
        live["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    let r = http
        .post(format!("{}/register", a.base))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    // Past the staleness bound, the valid token is no longer vouched for either: fail closed.
    until_status(&http, &b.base, &live_access, 401, Duration::from_secs(10))
        .await
        .expect("B fails closed once its revocation state is stale");
    // A's last good sync may be up to one sync interval younger than B's: it crosses the bound on its own clock.
    until_status(&http, &a.base, &live_access, 401, Duration::from_secs(10))
        .await
        .expect("A fails closed once its revocation state is stale");
    let r = verify(&http, &a.base, &live_access).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("cannot currently confirm that the token is not revoked")
    );

    redis.restart();
    let start = Instant::now();
    loop {
        let ready = http.get(format!("{}/ready", b.base)).send().await.unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "ready again within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for base in [&a.base, &b.base] {
        until_status(&http, base, &live_access, 200, Duration::from_secs(10))
            .await
            .expect("the gate recovers by itself");
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for task in load {
        for (i, status) in task.await.unwrap() {
            total += 1;
            assert!(
                matches!(status, 200 | 401 | 403),
                "the gate answers only 200/401/403"
            );
            assert!(
                !(i > 0 && status == 200),
                "a revoked or unknown token got a 200 ({})",
                ["live", "revoked", "unknown"][i]
            );
        }
    }
    assert!(total > 0);
    // Nothing was lost: the refresh token refused during the outage works now, and so does the revocation. A pooled
    // connection that the restart broke may fail one request with 503 `temporarily_unavailable` before the pool
    // replaces it; that (and only that) is retried, as a client would. A retry is safe: a rotation that did run
    // answers the same pair within the grace window.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let r = refresh(
            &http,
            &b.base,
            &client_id,
            live["refresh_token"].as_str().unwrap(),
        )
        .await;
        let (status, body) = (r.status().as_u16(), r.text().await.unwrap());
        if status == 200 || status != 503 || Instant::now() > deadline {
            break (status, body);
        }
        assert!(body.contains("temporarily_unavailable"), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(verify_status(&http, &a.base, &revoked_access).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_from_the_embedded_store_and_import_into_redis_round_trips_clients_keys_and_revocations()
 {
    use oauth_core::{EmbeddedStore, Store, StoreTransfer, SystemClock};
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn oauth_core::Clock> = Arc::new(SystemClock);
    let embedded: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("oauth.redb"), clock.clone()).unwrap());
    let redis = RedisServer::start();
    // The machine's own key-encryption key, which the deployment on Redis lists as a previous key to import
    // what it sealed.
    let machine_key = oauth_core::KeyEncryptionKey::from_bytes([0x17; 32]);
    std::fs::write(dir.path().join("machine.kek"), machine_key.expose_base64()).unwrap();
    let prefix = unique_prefix("moved");
    let config = config_with(
        dir.path(),
        &redis.url(),
        &prefix,
        "key_encryption_key_previous_files = [\"machine.kek\"]",
        "",
    );
    let one = AuthServer::new(
        config.server.clone(),
        embedded.clone(),
        oauth_core::Sealer::new(machine_key.clone()),
        clock.clone(),
    )
    .await
    .unwrap();
    for name in ["first", "second"] {
        let body = json!({"redirect_uris": [REDIRECT], "client_name": name, "token_endpoint_auth_method": "none"});
        one.register(body.to_string().as_bytes(), None)
            .await
            .unwrap();
    }
    one.admin().rotate_keys().await.unwrap();
    one.revoke_grant("some-grant").await.unwrap();

    let file = dir.path().join("export.json");
    let exported = one.admin().export().await.unwrap();
    let out = forwardauth_svc::transfer::export(&exported, &file).unwrap();
    assert_eq!((out.clients, out.keys, out.revocations), (2, 2, 1));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        forwardauth_svc::transfer::export(&exported, &file).is_err(),
        "an existing file is never overwritten"
    );

    // The export holds the private keys sealed, as the store does.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("\\\"d\\\""), "no JWK in clear: {text}");
    assert_eq!(
        text.matches(&format!("sealed:v1:{}:", machine_key.id()))
            .count(),
        2
    );

    // Without the machine's key, the deployment cannot open them: the message says what to configure.
    let unkeyed = self::config(dir.path(), &redis.url(), &prefix);
    let refused = StoreTransfer::open(
        &forwardauth_svc::state::store_settings(&unkeyed.store),
        forwardauth_svc::state::sealer(&unkeyed).unwrap(),
        clock.clone(),
    )
    .unwrap();
    let err = forwardauth_svc::transfer::import(&refused, &file)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("key-encryption key `{}`", machine_key.id()))
            && err.ends_with(
                "configure the exporting store's key-encryption key as a previous key to import it"
            ),
        "{err}"
    );

    // The target through the service's own settings, as `store import` opens it.
    let settings = forwardauth_svc::state::store_settings(&config.store);
    let target = StoreTransfer::open(
        &settings,
        forwardauth_svc::state::sealer(&config).unwrap(),
        clock.clone(),
    )
    .unwrap();
    let imported = forwardauth_svc::transfer::import(&target, &file)
        .await
        .unwrap();
    assert_eq!(
        (imported.clients, imported.keys, imported.revocations),
        (2, 2, 1)
    );
    let again = forwardauth_svc::transfer::import(&target, &file)
        .await
        .unwrap();
    assert_eq!(
        (again.clients_present, again.keys_present),
        (2, 2),
        "import is idempotent"
    );

    let sorted_clients = |mut v: Vec<oauth_core::store::ClientRecord>| {
        v.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        v
    };
    // The same keys, sealed now with the deployment's key-encryption key.
    let sorted_keys = |v: &[oauth_core::store::KeyRecord], sealed_with: &str| {
        let mut v: Vec<_> = v
            .iter()
            .map(|k| {
                assert_eq!(k.private_jwk.key_id(), Some(sealed_with));
                (
                    k.kid.clone(),
                    k.alg.clone(),
                    k.created_at,
                    k.retired_at,
                    k.publish_until,
                )
            })
            .collect();
        v.sort();
        v
    };
    let moved_out = target.export().await.unwrap();
    assert_eq!(
        sorted_clients(moved_out.clients().to_vec()),
        sorted_clients(embedded.list_clients().await.unwrap())
    );
    assert_eq!(
        sorted_keys(moved_out.keys(), deployment_key().id()),
        sorted_keys(&embedded.keys().await.unwrap(), machine_key.id())
    );
    assert_eq!(moved_out.revocations()[0].id, "some-grant");
    // An instance on Redis now signs with the same key and publishes the same key set.
    let moved = instance(&config).await;
    assert_eq!(
        moved.auth.jwks(),
        one.jwks(),
        "the same keys, published in the same order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_signing_key_rotation_happens_once_and_every_instance_publishes_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let config = config_with(
        dir.path(),
        &redis.url(),
        &unique_prefix("rotation"),
        "",
        "signing_key_rotation_secs = 2",
    );
    let a = instance(&config).await;
    let b = instance(&config).await;
    let first = a.auth.admin().keys().await.unwrap();
    assert_eq!(first.len(), 1);
    // Due two seconds after the first key started; both instances check every second; one of them rotates.
    let started = Instant::now();
    let keys = loop {
        let keys = a.auth.admin().keys().await.unwrap();
        if keys.len() > 1 || started.elapsed() > Duration::from_secs(10) {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(keys.len(), 2, "rotated on schedule: {keys:?}");
    let fresh = keys[1].clone();
    assert_eq!(fresh.sealed_with.as_deref(), Some(deployment_key().id()));
    // Published everywhere before it signs: the Redis deployment's activation delay.
    assert!(
        fresh.not_before.is_some_and(|t| t > fresh.created_at),
        "{fresh:?}"
    );
    let http = http();
    for base in [&a.base, &b.base] {
        let published = loop {
            let jwks: Value = http
                .get(format!("{base}/jwks.json"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let kids: Vec<String> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            if kids.contains(&fresh.kid) || started.elapsed() > Duration::from_secs(15) {
                break kids;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(published.contains(&fresh.kid), "{base}: {published:?}");
    }
    // Both instances kept checking meanwhile: still one rotation (the next is due after the new key starts).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(a.auth.admin().keys().await.unwrap().len(), 2);
}
