//! Secrets at rest, end to end: a full login through a real OpenID Provider (the npm package `oidc-provider`,
//! `tests/oidc-provider/provider.js`), a code exchange and a refresh that re-checks the user upstream, against the
//! service configured as an operator would (a TOML file: the embedded store with the key-encryption key it
//! generates beside it, or a real `redis-server` with a configured key). Then the service stops and the test reads
//! what an attacker with the disk would: the raw bytes of the redb file, or an uncompressed RDB dump of Redis. The
//! private signing key's `d` and the upstream tokens must not be there; the plaintext values to look for are
//! found by opening the store through the engine with the key, as the service does. The store file and the
//! generated key file must be the owner's only (0600).

// Test code: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use forwardauth_svc::config::{Config, RawConfig, StoreConfig};
use oauth_core::testing::{RedisServer, unique_prefix};
use oauth_core::{AuthServer, Clock, Sealer, Store};
use serde_json::{Value, json};
use test_support::{OidcProvider, VERIFIER, absolute, browser, field};

const CLIENT_REDIRECT: &str = "http://127.0.0.1:53999/cb";

/// The configuration file of the deployment under test, loaded as `forwardauth-svc --config` loads it.
fn load_config(dir: &Path, base: &str, upstream: &str, store: &str) -> Config {
    let path = dir.join("config.toml");
    let text = format!(
        "issuer = \"{base}\"\n[store]\n{store}\n\
         [[resources]]\nresource = \"{base}/mcp\"\nscopes = [\"mcp\"]\n\
         [[providers]]\ntype = \"oidc\"\nid = \"corp\"\nissuer = \"{upstream}\"\nclient_id = \"forwardauth\"\n\
         client_secret = \"forwardauth-secret\"\nscopes = [\"openid\", \"email\", \"profile\", \"groups\"]\ntimeout_secs = 5\n"
    );
    std::fs::write(&path, &text).unwrap();
    RawConfig::from_toml(&text, &path)
        .unwrap()
        .into_config(Some(&path), &|_| None)
        .unwrap()
}

/// The service running on `config`, with the engine wired as the service wires it (the store the configuration
/// names, the key-encryption key it names or generates), except that the test holds the store too.
struct Service {
    base: String,
    store: Arc<dyn Store>,
    sealer: Sealer,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_service(config: &Config, listener: std::net::TcpListener) -> Service {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock: Arc<dyn Clock> = Arc::new(oauth_core::SystemClock);
    let sealer = forwardauth_svc::state::sealer(config).unwrap();
    let store = oauth_core::store::open(
        &forwardauth_svc::state::store_settings(&config.store),
        clock.clone(),
    )
    .unwrap();
    let providers = forwardauth_svc::state::build_providers(config, clock.clone()).unwrap();
    let auth = AuthServer::new(config.server.clone(), store.clone(), sealer.clone(), clock)
        .await
        .unwrap()
        .with_providers(providers);
    let state = forwardauth_svc::AppState::with_auth(config, Arc::new(auth)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(forwardauth_svc::serve(state, listener, async move {
        let _ = stopped.await;
    }));
    Service {
        base,
        store,
        sealer,
        stop,
        served,
    }
}

/// From our `/authorize` through our consent page (approved before the user leaves), the upstream's login and
/// consent pages, and back to the client: the query of the redirect to the client. The service asks the provider
/// for an upstream refresh token itself (`offline_access`, which the provider's discovery offers).
async fn through_the_upstream(
    http: &reqwest::Client,
    mut url: String,
    base: &str,
) -> HashMap<String, String> {
    let mut body: Option<Vec<(&str, String)>> = None;
    for _ in 0..20 {
        if url.starts_with(CLIENT_REDIRECT) {
            return url::Url::parse(&url)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
        }
        let res = match body.take() {
            Some(form) => http.post(&url).form(&form).send().await.unwrap(),
            None => http.get(&url).send().await.unwrap(),
        };
        let status = res.status().as_u16();
        if (300..400).contains(&status) {
            url = absolute(&url, res.headers()["location"].to_str().unwrap());
            continue;
        }
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "{url}: {text}");
        if url.starts_with(base) {
            // Our consent page, before sign-in: approve, and go to the provider.
            body = Some(vec![
                ("handle", field(&text, "handle")),
                ("csrf", field(&text, "csrf")),
                ("provider", field(&text, "provider")),
                ("decision", "approve".into()),
            ]);
            url = format!("{base}/consent");
            continue;
        }
        assert!(url.contains("/interaction/"), "{url}: {text}");
        body = Some(if text.contains("name=\"prompt\" value=\"login\"") {
            vec![
                ("prompt", "login".into()),
                ("login", "alice".into()),
                ("password", "any".into()),
            ]
        } else {
            vec![("prompt", "consent".into())]
        });
    }
    panic!("too many redirects");
}

/// Register, log in upstream, consent, exchange the code, refresh once; the client id.
async fn full_flow(svc: &Service) -> String {
    let http = browser();
    let base = &svc.base;
    let reg: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": "none",
                      "grant_types": ["authorization_code", "refresh_token"], "client_name": "sealed test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let authorize = test_support::authorize_url(
        &format!("{base}/authorize"),
        &client_id,
        CLIENT_REDIRECT,
        "s",
        None,
        &format!("{base}/mcp"),
    );
    let back = through_the_upstream(&http, authorize.into(), base).await;
    assert!(back.contains_key("code"), "{back:?}");
    let tokens: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", back["code"].as_str()),
            ("redirect_uri", CLIENT_REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refreshed = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        200,
        "the refresh re-checked alice upstream"
    );
    client_id
}

/// What must not be found in clear: the private `d` of every signing key, and the upstream tokens of alice's
/// grant, opened through the engine's sealer; and what must be (the client id, the key ids), which shows the
/// scan reads the records at all.
struct Secrets {
    hidden: Vec<String>,
    visible: Vec<String>,
}

async fn secrets(svc: &Service, client_id: &str) -> Secrets {
    let mut hidden = Vec::new();
    let mut visible = vec![client_id.to_owned()];
    for key in svc.store.keys().await.unwrap() {
        let jwk: Value = serde_json::from_str(
            svc.sealer
                .open(&key.private_jwk, &key.kid)
                .unwrap()
                .expose(),
        )
        .unwrap();
        hidden.push(jwk["d"].as_str().unwrap().to_owned());
        visible.push(key.kid.clone());
    }
    let grants = svc.store.grants_of_subject("corp:alice").await.unwrap();
    assert_eq!(grants.len(), 1);
    let grant = svc.store.grant(&grants[0]).await.unwrap().unwrap();
    let upstream = svc
        .sealer
        .open(grant.upstream.as_ref().unwrap(), "corp:alice")
        .unwrap();
    hidden.push(upstream.access_token.clone());
    hidden.push(
        upstream
            .refresh_token
            .clone()
            .expect("the upstream issued a refresh token (offline_access, prompt=consent)"),
    );
    for h in &hidden {
        assert!(h.len() >= 16, "a value long enough to search for: {h}");
    }
    Secrets { hidden, visible }
}

/// `bytes` holds none of the hidden values and every visible one.
fn assert_scan(bytes: &[u8], what: &str, s: &Secrets) {
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for v in &s.visible {
        assert!(
            has(v),
            "{what} does not even hold {v}: the scan reads nothing"
        );
    }
    for (i, h) in s.hidden.iter().enumerate() {
        assert!(!has(h), "secret #{i} in clear in {what}");
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn stop(svc: Service) {
    let Service {
        store,
        stop,
        served,
        ..
    } = svc;
    drop(store);
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_file_holds_no_private_key_and_no_upstream_token_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = OidcProvider::start(&format!("{base}/callback"), None).await;
    // The default: no key configured; the first start generates one beside the store.
    let config = load_config(
        dir.path(),
        &base,
        &upstream.issuer,
        "path = \"data/oauth.redb\"",
    );
    let StoreConfig::Embedded { path, .. } = config.store.clone() else {
        panic!("embedded store expected")
    };
    let svc = start_service(&config, listener).await;
    let client_id = full_flow(&svc).await;
    let secrets = secrets(&svc, &client_id).await;
    stop(svc).await;

    assert_scan(&std::fs::read(&path).unwrap(), "the store file", &secrets);
    let key_file = forwardauth_svc::state::generated_key_path(&path);
    assert_eq!(key_file, dir.path().join("data/oauth.redb.kek"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600, "the store file");
        assert_eq!(mode(&key_file), 0o600, "the generated key file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_dump_holds_no_private_key_and_no_upstream_token_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_snapshotting(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = OidcProvider::start(&format!("{base}/callback"), None).await;
    std::fs::write(
        dir.path().join("kek"),
        oauth_core::KeyEncryptionKey::generate().expose_base64(),
    )
    .unwrap();
    let config = load_config(
        dir.path(),
        &base,
        &upstream.issuer,
        &format!(
            "backend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{}\"\nkey_encryption_key_file = \"kek\"",
            redis.url(),
            unique_prefix("sealed")
        ),
    );
    let svc = start_service(&config, listener).await;
    let client_id = full_flow(&svc).await;
    let secrets = secrets(&svc, &client_id).await;
    stop(svc).await;

    let dump = redis.save(dir.path());
    assert_scan(&std::fs::read(dump).unwrap(), "the Redis dump", &secrets);
}
