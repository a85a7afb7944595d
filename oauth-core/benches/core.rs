//! Criterion benchmarks of the engine's hot and warm paths (issue 7). Run: `cargo bench -p oauth-core`.
//!
//! * `sign_access_token`: one ES256 JWT.
//! * `verify_cold`: what `/verify` does on a cache miss (signature by kid, claims, validation), next to
//!   `josekit_verify`, josekit's own verification of the same token, so the overhead is a ratio taken in one run.
//! * `verify_warm`: `/verify` on a token already in the verified-token cache.
//! * `pkce_s256_check`, `registration_validation`, `refresh_rotation_embedded` (a file-backed store, with fsync).

// Benchmark code: a panic is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use oauth_core::testing::{self, FixedClock};
use oauth_core::wire::parse_form;
use oauth_core::{AuthServer, Clock, EmbeddedStore, JosekitKeyManager, SigningAlg, Store};

const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";
const REDIRECT: &str = "http://127.0.0.1/callback";

fn claims(now: u64) -> serde_json::Map<String, serde_json::Value> {
    let v = serde_json::json!({
        "iss": testing::ISSUER, "sub": "local:alice", "aud": testing::RESOURCE, "client_id": "c1", "scope": "mcp",
        "exp": now + 3600, "iat": now, "jti": "j1", "sid": "g1", "preferred_username": "alice", "email": "alice@example.com",
    });
    v.as_object().unwrap().clone()
}

async fn server(store: Arc<dyn Store>, clock: Arc<FixedClock>) -> AuthServer {
    AuthServer::new(testing::config(), store, testing::sealer(), clock)
        .await
        .unwrap()
}

/// A public client's refresh token, through the real flow.
async fn refresh_token(s: &AuthServer) -> (String, String) {
    let body = serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]});
    let client = s
        .register(body.to_string().as_bytes(), None)
        .await
        .unwrap()
        .client_id;
    let q = format!(
        "response_type=code&client_id={client}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&code_challenge={}&code_challenge_method=S256&resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
        oauth_core::pkce::s256(VERIFIER)
    );
    let prompt = s
        .authorize(parse_form(q.as_bytes()).unwrap())
        .await
        .unwrap();
    let identity = oauth_core::Identity {
        subject: "local:alice".into(),
        ..Default::default()
    };
    let to = s.approve(&prompt.handle, identity).await.unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let form = format!(
        "grant_type=authorization_code&client_id={client}&code={code}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&code_verifier={VERIFIER}"
    );
    let t = s
        .token(None, parse_form(form.as_bytes()).unwrap())
        .await
        .unwrap();
    (client, t.refresh_token.unwrap())
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let keys = rt
        .block_on(JosekitKeyManager::load_or_generate(
            store.as_ref(),
            SigningAlg::Es256,
            &testing::sealer(),
            clock.as_ref(),
        ))
        .unwrap();
    let now = clock.unix();
    let token = keys.sign(&claims(now), now).unwrap();

    c.bench_function("sign_access_token", |b| {
        b.iter(|| keys.sign(black_box(&claims(now)), now).unwrap())
    });

    let jwk =
        josekit::jwk::Jwk::from_map(keys.jwks()["keys"][0].as_object().unwrap().clone()).unwrap();
    let josekit_verifier = josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap();
    c.bench_function("josekit_verify", |b| {
        b.iter(|| josekit::jwt::decode_with_verifier(black_box(&token), &josekit_verifier).unwrap())
    });
    c.bench_function("verify_cold", |b| {
        b.iter(|| {
            let map = keys.verify(black_box(&token)).unwrap();
            let claims = oauth_core::jwt::AccessTokenClaims::from_map(map).unwrap();
            oauth_core::jwt::validate(&claims, now, 30, testing::ISSUER, Some(testing::RESOURCE))
                .unwrap();
            claims
        })
    });

    let s = rt.block_on(server(store.clone(), clock.clone()));
    let issued = rt.block_on(async {
        let (client, rt_token) = refresh_token(&s).await;
        let form = format!("grant_type=refresh_token&client_id={client}&refresh_token={rt_token}");
        s.token(None, parse_form(form.as_bytes()).unwrap())
            .await
            .unwrap()
            .access_token
    });
    let header = format!("Bearer {issued}");
    let resource = s.resource_for_url(testing::RESOURCE).unwrap().clone();
    s.verify(Some(&header), &resource).unwrap();
    c.bench_function("verify_warm", |b| {
        b.iter(|| s.verify(black_box(Some(&header)), &resource).unwrap())
    });

    let challenge = oauth_core::pkce::s256(VERIFIER);
    c.bench_function("pkce_s256_check", |b| {
        b.iter(|| {
            assert!(oauth_core::pkce::verify(
                black_box(&challenge),
                black_box(VERIFIER)
            ))
        })
    });

    let body = serde_json::json!({
        "redirect_uris": ["http://127.0.0.1:33418/callback", "https://claude.ai/api/mcp/auth_callback", "cursor://anysphere.cursor-mcp/oauth/callback"],
        "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"], "client_name": "bench", "scope": "mcp",
    })
    .to_string();
    c.bench_function("registration_validation", |b| {
        b.iter(|| s.check_registration(black_box(body.as_bytes())).unwrap())
    });

    let dir = tempfile::tempdir().unwrap();
    let file_store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("bench.redb"), clock.clone()).unwrap());
    let fs = rt.block_on(server(file_store, clock.clone()));
    let (client, first) = rt.block_on(refresh_token(&fs));
    let current = std::sync::Mutex::new(first);
    c.bench_function("refresh_rotation_embedded", |b| {
        b.to_async(&rt).iter(|| async {
            let rt_token = current.lock().unwrap().clone();
            let form =
                format!("grant_type=refresh_token&client_id={client}&refresh_token={rt_token}");
            let t = fs
                .token(None, parse_form(form.as_bytes()).unwrap())
                .await
                .unwrap();
            *current.lock().unwrap() = t.refresh_token.unwrap();
        })
    });
}

criterion_group!(core, benches);
criterion_main!(core);
