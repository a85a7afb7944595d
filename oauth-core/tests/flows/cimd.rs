//! Client ID Metadata Documents: URL client_ids resolved by fetching documents from a real https server on
//! 127.0.0.1 whose certificate comes from a CA generated in the test (trusted only through the configuration),
//! through the production fetcher with a fixed host table: `client.test` → 127.0.0.1 (an allowed network here),
//! `evil.test` → 10.0.0.7 (private, refused before any connection).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use josekit::jwk::{Jwk, KeyPair as _};
use josekit::jws::{ES256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use oauth_core::cimd::{
    AddressFilter, ClientDocumentFetcher as _, ReqwestDocumentFetcher, StaticHosts,
};
use oauth_core::testing::documents::{DocumentServer, Route, TestCa};
use oauth_core::testing::{self, ISSUER};
use oauth_core::wire::{TokenReference, TokenRequest};
use oauth_core::{
    ClientMetadataDocuments, Clock as _, FetchError, HostPattern, HostPolicy, ServerConfig,
};
use serde_json::{Value, json};

use crate::common::*;

const NAMES: &[&str] = &["client.test", "evil.test", "127.0.0.1", "127.0.0.2"];
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Cimd {
    h: Harness,
    docs: DocumentServer,
    _ca: TestCa,
}

impl Cimd {
    /// `https://client.test:<port><path>`.
    fn url(&self, path: &str) -> String {
        format!("https://client.test:{}{path}", self.docs.port())
    }

    /// Serves a document at `path` whose client_id is its own URL, with `extra` merged in.
    fn serve(&self, path: &str, extra: Value) -> String {
        let id = self.url(path);
        let mut doc = json!({
            "client_id": id,
            "client_name": "Test <CIMD> client",
            "redirect_uris": ["http://localhost/callback", "https://app.example.com/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        self.docs.set(
            path,
            Route::json(doc.to_string()).header("Cache-Control", "max-age=600"),
        );
        id
    }
}

fn document_config(ca: &TestCa) -> ClientMetadataDocuments {
    let mut c = ClientMetadataDocuments::enabled();
    c.builtin_roots = false;
    c.extra_root_certificates = vec![ca.pem().into_bytes()];
    c.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
    c.timeout = Duration::from_millis(800);
    c
}

fn lookup() -> Arc<StaticHosts> {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let private: IpAddr = "10.0.0.7".parse().unwrap();
    Arc::new(
        StaticHosts::new()
            .with("client.test", &[lo])
            .with("evil.test", &[private]),
    )
}

async fn cimd_with(edit: impl FnOnce(&mut ServerConfig)) -> Cimd {
    let ca = TestCa::new();
    let docs = DocumentServer::start(&ca, NAMES).await;
    let mut config = testing::config();
    config.client_metadata = document_config(&ca);
    edit(&mut config);
    let fetcher = ReqwestDocumentFetcher::with_lookup(&config.client_metadata, lookup()).unwrap();
    let Harness {
        server,
        clock,
        store,
    } = harness_with(config).await;
    Cimd {
        h: Harness {
            server: server.with_client_document_fetcher(Arc::new(fetcher)),
            clock,
            store,
        },
        docs,
        _ca: ca,
    }
}

async fn cimd() -> Cimd {
    cimd_with(|_| {}).await
}

/// The rendered error of an authorization request for `client_id` with `redirect_uri`.
async fn refused(c: &Cimd, client_id: &str, redirect_uri: &str) -> (u16, Value) {
    rendered(
        c.h.server
            .authorize(form(&authorize_query(
                client_id,
                redirect_uri,
                &for_resource(),
            )))
            .await
            .unwrap_err(),
    )
}

fn description(v: &Value) -> &str {
    v["error_description"].as_str().unwrap()
}

#[tokio::test]
async fn a_document_client_completes_the_flow_and_refreshes() {
    let c = cimd().await;
    let id = c.serve("/client.json", json!({}));
    let redirect = "http://localhost:54321/callback";
    let prompt =
        c.h.server
            .authorize(form(&authorize_query(&id, redirect, &for_resource())))
            .await
            .unwrap();
    assert_eq!(prompt.client_id, id);
    assert_eq!(prompt.client_name.as_deref(), Some("Test <CIMD> client"));
    assert_eq!(prompt.client_host.as_deref(), Some("client.test"));
    assert_eq!(prompt.redirect_host, "localhost");
    assert!(prompt.redirect_is_loopback);
    // The consent page reads the pending authorization again: same client, from the cache.
    let again =
        c.h.server
            .pending_authorization(&prompt.handle)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(again.client_host.as_deref(), Some("client.test"));
    let url = c.h.server.approve(&prompt.handle, alice()).await.unwrap();
    let code = query(&url).remove("code").unwrap();
    let t =
        c.h.server
            .token(None, code_request(&id, &code, redirect))
            .await
            .unwrap();
    let p =
        c.h.server
            .verify(Some(&bearer(&t.access_token)), resource(&c.h))
            .unwrap();
    assert_eq!(p.client_id(), id);
    let refreshed =
        c.h.server
            .token(
                None,
                refresh_request(&id, t.refresh_token.as_deref().unwrap(), ""),
            )
            .await
            .unwrap();
    assert_ne!(refreshed.access_token, t.access_token);
    assert_eq!(c.docs.hits("/client.json"), 1, "one fetch, then the cache");
    // Nothing about the client was stored: the document is the registration.
    assert!(c.h.store.client(&id).await.unwrap().is_none());
    assert!(c.h.store.list_clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_documents_client_id_must_equal_its_url() {
    let c = cimd().await;
    let id = c.serve(
        "/mismatch.json",
        json!({"client_id": "https://client.test/other.json"}),
    );
    let (status, body) = refused(&c, &id, "https://app.example.com/cb").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_client_metadata", "error_description": format!(
            "client metadata document {id}: its client_id `https://client.test/other.json` is not the URL it was fetched from"
        )})
    );
}

#[tokio::test]
async fn a_failed_document_is_not_fetched_again_for_half_a_minute() {
    let c = cimd().await;
    let id = c.serve(
        "/broken.json",
        json!({"client_id": "https://client.test/other.json"}),
    );
    let first = refused(&c, &id, "https://app.example.com/cb").await;
    let again = refused(&c, &id, "https://app.example.com/cb").await;
    assert_eq!(again, first, "the same answer, from memory");
    assert_eq!(c.docs.hits("/broken.json"), 1);
    // The publisher fixes the document: seen once the failure is forgotten.
    c.serve("/broken.json", json!({}));
    c.h.clock.advance(Duration::from_secs(29));
    assert_eq!(refused(&c, &id, "https://app.example.com/cb").await, first);
    assert_eq!(c.docs.hits("/broken.json"), 1);
    c.h.clock.advance(Duration::from_secs(2));
    c.h.server
        .authorize(form(&authorize_query(
            &id,
            "https://app.example.com/cb",
            &for_resource(),
        )))
        .await
        .unwrap();
    assert_eq!(c.docs.hits("/broken.json"), 2);
}

#[tokio::test]
async fn a_redirect_uri_not_in_the_document_is_refused_without_redirecting() {
    let c = cimd().await;
    let id = c.serve("/client.json", json!({}));
    let (status, body) = refused(&c, &id, "https://attacker.example/cb").await;
    assert_eq!(status, 400);
    assert_eq!(
        description(&body),
        "redirect_uri `https://attacker.example/cb` is not listed in the client's metadata document"
    );
    // Loopback any-port applies to http loopback only, never to an https host or another path.
    for other in [
        "https://app.example.com:8443/cb",
        "http://localhost:54321/other",
        "http://127.0.0.1:54321/callback",
    ] {
        let (_, body) = refused(&c, &id, other).await;
        assert!(description(&body).contains("is not listed"), "{other}");
    }
}

#[tokio::test]
async fn a_portless_loopback_redirect_in_the_document_matches_any_port() {
    let c = cimd().await;
    // As Claude Code's document: portless loopback URIs, a random port at run time.
    let id = c.serve(
        "/claude-code.json",
        json!({"redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"]}),
    );
    for redirect in [
        "http://localhost:54321/callback",
        "http://127.0.0.1:40000/callback",
        "http://localhost/callback",
    ] {
        let code = code_for(&c.h, &id, redirect, &for_resource()).await;
        let t =
            c.h.server
                .token(None, code_request(&id, &code, redirect))
                .await
                .unwrap();
        assert_eq!(t.token_type, "Bearer", "{redirect}");
    }
}

#[tokio::test]
async fn fetch_failures_name_what_went_wrong() {
    let c = cimd().await;
    let big = format!(
        "{{\"client_id\": \"x\", \"pad\": \"{}\"}}",
        "a".repeat(6 * 1024)
    );
    c.docs.set("/big.json", Route::json(big.clone()));
    c.docs
        .set("/big-stream.json", Route::json(big).without_length());
    c.docs.set(
        "/slow.json",
        Route::json("{}").delay(Duration::from_secs(5)),
    );
    c.docs.set(
        "/moved.json",
        Route::redirect(302, "https://client.test/elsewhere.json"),
    );
    c.docs.set(
        "/html.json",
        Route::json("{}").header("Content-Type", "text/html"),
    );
    c.docs.set("/gone.json", Route::json("{}").status(404));
    c.docs.set("/broken.json", Route::json("{\"client_id\": "));
    let cases = [
        ("/big.json", "the document is larger than 5120 bytes"),
        ("/big-stream.json", "the document is larger than 5120 bytes"),
        ("/slow.json", "the fetch timed out after 800 ms"),
        (
            "/moved.json",
            "the server answered with a redirect (HTTP 302); redirects are not followed",
        ),
        (
            "/html.json",
            "the content type is `text/html`, not application/json",
        ),
        ("/gone.json", "the server answered with HTTP 404"),
    ];
    for (path, why) in cases {
        let id = c.url(path);
        let started = std::time::Instant::now();
        let (status, body) = refused(&c, &id, "https://app.example.com/cb").await;
        assert_eq!(status, 401, "{path}: invalid_client");
        assert_eq!(
            body,
            json!({"error": "invalid_client", "error_description": format!("client metadata document {id}: {why}")}),
            "{path}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
    let id = c.url("/broken.json");
    let (_, body) = refused(&c, &id, "https://app.example.com/cb").await;
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        description(&body).starts_with(&format!(
            "client metadata document {id}: not a JSON object of client metadata: EOF"
        )),
        "{body}"
    );
    // The redirect was not followed: the target was never asked.
    assert_eq!(c.docs.hits("/elsewhere.json"), 0);
    assert_eq!(c.docs.hits("/moved.json"), 1);
}

#[tokio::test]
async fn hosts_resolving_to_private_addresses_are_refused_before_connecting() {
    // Guard first: should the filter ever regress, fail here rather than let the fetch below try 10.0.0.7.
    let filter = AddressFilter::new(false, vec!["127.0.0.1/32".parse().unwrap()]);
    assert_eq!(filter.check("10.0.0.7".parse().unwrap()), Err("private"));
    let c = cimd().await;
    let port = c.docs.port();
    let id = format!("https://evil.test:{port}/client.json");
    c.docs.set(
        "/client.json",
        Route::json(
            json!({"client_id": id, "redirect_uris": ["https://app.example.com/cb"]}).to_string(),
        ),
    );
    let (_, body) = refused(&c, &id, "https://app.example.com/cb").await;
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": format!(
            "client metadata document {id}: evil.test resolves to 10.0.0.7, a private address, which this server does not fetch from"
        )})
    );
    // An IP literal never reaches the resolver; it is checked on its own (127.0.0.2 is not the allowed /32).
    let literal = format!("https://127.0.0.2:{port}/client.json");
    let (_, body) = refused(&c, &literal, "https://app.example.com/cb").await;
    assert_eq!(
        description(&body),
        format!(
            "client metadata document {literal}: 127.0.0.2 is a loopback address, which this server does not fetch from"
        )
    );
    assert_eq!(c.docs.hits("/client.json"), 0, "no connection was made");
    // The fetcher's typed error, for embedders.
    let fetcher =
        ReqwestDocumentFetcher::with_lookup(&document_config(&TestCa::new()), lookup()).unwrap();
    let e = fetcher.fetch(&id.parse().unwrap()).await.unwrap_err();
    assert_eq!(
        e,
        FetchError::AddressRefused {
            host: "evil.test".into(),
            addr: "10.0.0.7".parse().unwrap(),
            reason: "private"
        }
    );
}

#[tokio::test]
async fn the_host_policy_and_the_url_rules_apply_before_any_fetch() {
    let c = cimd_with(|config| {
        config.client_metadata.hosts =
            HostPolicy::Allow(vec![HostPattern::parse("*.example.com").unwrap()]);
    })
    .await;
    let id = c.serve("/client.json", json!({}));
    let (_, body) = refused(&c, &id, "https://app.example.com/cb").await;
    assert_eq!(
        description(&body),
        format!(
            "client metadata document {id}: clients hosted at client.test are not accepted by this server"
        )
    );
    let (_, body) = refused(
        &c,
        "https://client.test/a/../client.json",
        "https://app.example.com/cb",
    )
    .await;
    assert!(
        description(&body).ends_with("must not contain `.` or `..` path segments"),
        "{body}"
    );
    assert_eq!(c.docs.hits("/client.json"), 0);
}

#[tokio::test]
async fn documents_are_cached_per_cache_control_and_refetched_when_stale() {
    let c = cimd().await;
    let id = c.serve("/client.json", json!({}));
    let authorize = || async {
        c.h.server
            .authorize(form(&authorize_query(
                &id,
                "https://app.example.com/cb",
                &for_resource(),
            )))
            .await
            .unwrap()
    };
    authorize().await;
    authorize().await;
    assert_eq!(
        c.docs.hits("/client.json"),
        1,
        "the second request hit the cache"
    );
    c.h.clock.advance(Duration::from_secs(599));
    authorize().await;
    assert_eq!(
        c.docs.hits("/client.json"),
        1,
        "still fresh at 599 s of max-age=600"
    );
    c.h.clock.advance(Duration::from_secs(2));
    // The document changed meanwhile: the refetch sees it.
    c.serve("/client.json", json!({"client_name": "Renamed"}));
    let prompt = authorize().await;
    assert_eq!(c.docs.hits("/client.json"), 2, "stale: fetched again");
    assert_eq!(prompt.client_name.as_deref(), Some("Renamed"));

    // no-store still caches for the configured minimum (300 s), so a flow's token request does not refetch.
    let nostore = c.url("/nostore.json");
    c.docs.set(
        "/nostore.json",
        Route::json(
            json!({"client_id": nostore, "redirect_uris": ["https://app.example.com/cb"]})
                .to_string(),
        )
        .header("Cache-Control", "no-store"),
    );
    let q = authorize_query(&nostore, "https://app.example.com/cb", &for_resource());
    c.h.server.authorize(form(&q)).await.unwrap();
    c.h.clock.advance(Duration::from_secs(299));
    c.h.server.authorize(form(&q)).await.unwrap();
    assert_eq!(c.docs.hits("/nostore.json"), 1);
    c.h.clock.advance(Duration::from_secs(2));
    c.h.server.authorize(form(&q)).await.unwrap();
    assert_eq!(c.docs.hits("/nostore.json"), 2);
}

#[tokio::test]
async fn shared_secret_methods_are_refused_in_documents() {
    let c = cimd().await;
    for method in ["client_secret_basic", "client_secret_post"] {
        let id = c.serve(
            &format!("/{method}.json"),
            json!({"token_endpoint_auth_method": method}),
        );
        let (status, body) = refused(&c, &id, "https://app.example.com/cb").await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"error": "invalid_client_metadata", "error_description": format!(
                "client metadata document {id}: token_endpoint_auth_method: `{method}` needs a shared secret, which a public metadata document cannot carry (use none or private_key_jwt)"
            )})
        );
    }
    let id = c.serve("/secret.json", json!({"client_secret": "s3cret"}));
    let (_, body) = refused(&c, &id, "https://app.example.com/cb").await;
    assert!(description(&body).ends_with(
        "must not contain client_secret or client_secret_expires_at (a document is public)"
    ));
    let id = c.serve(
        "/pkjwt-nokeys.json",
        json!({"token_endpoint_auth_method": "private_key_jwt"}),
    );
    let (_, body) = refused(&c, &id, "https://app.example.com/cb").await;
    assert!(description(&body).ends_with("private_key_jwt needs jwks or jwks_uri"));
    // A public document client cannot present a secret at the token endpoint either.
    let id = c.serve("/client.json", json!({}));
    let code = code_for(&c.h, &id, "https://app.example.com/cb", &for_resource()).await;
    let mut req = code_request(&id, &code, "https://app.example.com/cb");
    req.client.client_secret = Some("guess".into());
    assert_eq!(
        token_refused(&c.h, req).await,
        (
            401,
            body_of("invalid_client", "client authentication failed")
        )
    );
}

fn body_of(code: &str, d: &str) -> Value {
    json!({"error": code, "error_description": d})
}

/// An ES256 key pair: (private JWK, public JWK with `kid`).
fn key_pair(kid: &str) -> (Jwk, Value) {
    let mut private = ES256.generate_key_pair().unwrap().to_jwk_key_pair();
    private.set_key_id(kid);
    let mut public = private.to_public_key().unwrap();
    public.set_key_id(kid);
    (private, serde_json::to_value(public.as_ref()).unwrap())
}

fn assertion(key: &Jwk, client_id: &str, aud: &str, jti: &str, now: u64, lifetime: u64) -> String {
    let mut header = JwsHeader::new();
    header.set_key_id(key.key_id().unwrap());
    let mut payload = JwtPayload::new();
    payload.set_issuer(client_id);
    payload.set_subject(client_id);
    payload.set_audience(vec![aud]);
    payload.set_jwt_id(jti);
    payload.set_issued_at(&(std::time::UNIX_EPOCH + Duration::from_secs(now)));
    payload.set_expires_at(&(std::time::UNIX_EPOCH + Duration::from_secs(now + lifetime)));
    jwt::encode_with_signer(&payload, &header, &ES256.signer_from_jwk(key).unwrap()).unwrap()
}

fn with_assertion(mut req: TokenRequest, a: &str) -> TokenRequest {
    req.client.client_assertion_type = Some(ASSERTION_TYPE.into());
    req.client.client_assertion = Some(a.into());
    req
}

#[tokio::test]
async fn private_key_jwt_with_jwks_and_jwks_uri() {
    let c = cimd().await;
    let now = c.h.clock.unix();
    let (key, public) = key_pair("k1");
    let (wrong_key, _) = key_pair("k1");
    let id = c.serve(
        "/pkjwt.json",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}),
    );
    let redirect = "https://app.example.com/cb";
    let token_endpoint = format!("{ISSUER}/token");

    // Success: aud = the token endpoint.
    let code = code_for(&c.h, &id, redirect, &for_resource()).await;
    let a = assertion(&key, &id, &token_endpoint, "jti-1", now, 60);
    let t =
        c.h.server
            .token(None, with_assertion(code_request(&id, &code, redirect), &a))
            .await
            .unwrap();
    assert!(t.refresh_token.is_some());

    // The same assertion again: the jti is spent.
    assert_eq!(
        token_refused(
            &c.h,
            with_assertion(
                refresh_request(&id, t.refresh_token.as_deref().unwrap(), ""),
                &a,
            )
        )
        .await,
        (
            401,
            body_of(
                "invalid_client",
                "client authentication failed: the assertion was already used (jti)"
            )
        )
    );

    // Signed by another key with the same kid: refused.
    let forged = assertion(&wrong_key, &id, ISSUER, "jti-2", now, 60);
    let code = code_for(&c.h, &id, redirect, &for_resource()).await;
    assert_eq!(
        token_refused(
            &c.h,
            with_assertion(code_request(&id, &code, redirect), &forged)
        )
        .await,
        (
            401,
            body_of(
                "invalid_client",
                "client authentication failed: the client assertion's signature does not verify with the client's keys"
            )
        )
    );
    // No assertion at all for a private_key_jwt client.
    assert_eq!(
        token_refused(&c.h, code_request(&id, &code, redirect)).await,
        (
            401,
            body_of(
                "invalid_client",
                "client authentication failed: this client authenticates with private_key_jwt (client_assertion)"
            )
        )
    );
    // Claims: another audience, too long a lifetime, expired, iss ≠ client.
    for (bad, why) in [
        (
            assertion(&key, &id, "https://other.example", "j3", now, 60),
            "the assertion's aud must be this server's issuer or token endpoint",
        ),
        (
            assertion(&key, &id, ISSUER, "j4", now, 3600),
            "the assertion must expire within 300 s",
        ),
        (
            assertion(&key, &id, ISSUER, "j5", now - 600, 60),
            "the assertion has expired",
        ),
    ] {
        assert_eq!(
            token_refused(
                &c.h,
                with_assertion(code_request(&id, &code, redirect), &bad)
            )
            .await,
            (
                401,
                body_of(
                    "invalid_client",
                    &format!("client authentication failed: {why}")
                )
            )
        );
    }
    // The still-unused code works with a fresh assertion whose aud is the issuer and without client_id
    // (RFC 7521 §4.2: the assertion's sub names the client).
    let mut req = with_assertion(
        code_request(&id, &code, redirect),
        &assertion(&key, &id, ISSUER, "jti-6", now, 60),
    );
    req.client.client_id = None;
    let t = c.h.server.token(None, req).await.unwrap();

    // Revocation and introspection authenticate the same way.
    let introspected =
        c.h.server
            .introspect(
                None,
                form::<TokenReference>(&format!(
                    "token={}&client_id={}&client_assertion_type={}&client_assertion={}",
                    enc(&t.access_token),
                    enc(&id),
                    enc(ASSERTION_TYPE),
                    enc(&assertion(&key, &id, ISSUER, "jti-7", now, 60)),
                )),
            )
            .await
            .unwrap();
    assert!(introspected.active);
    c.h.server
        .revoke(
            None,
            form::<TokenReference>(&format!(
                "token={}&client_id={}&client_assertion_type={}&client_assertion={}",
                enc(t.refresh_token.as_deref().unwrap()),
                enc(&id),
                enc(ASSERTION_TYPE),
                enc(&assertion(&key, &id, ISSUER, "jti-8", now, 60)),
            )),
        )
        .await
        .unwrap();
    let e =
        c.h.server
            .introspect(
                None,
                form::<TokenReference>(&format!(
                    "token={}&client_id={}&client_assertion_type={}&client_assertion={}",
                    enc(&t.access_token),
                    enc(&id),
                    enc(ASSERTION_TYPE),
                    enc(&forged),
                )),
            )
            .await
            .unwrap_err();
    assert_eq!(wire_of(&e).0, 401);

    // jwks_uri: the keys are fetched from the client's host with the same fetcher, and cached.
    c.docs.set(
        "/jwks.json",
        Route::json(json!({"keys": [public]}).to_string()).header("Cache-Control", "max-age=3600"),
    );
    let jwks_uri = c.url("/jwks.json");
    let id = c.serve(
        "/pkjwt-uri.json",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri}),
    );
    for jti in ["u1", "u2"] {
        let code = code_for(&c.h, &id, redirect, &for_resource()).await;
        let a = assertion(&key, &id, &token_endpoint, jti, now, 60);
        c.h.server
            .token(None, with_assertion(code_request(&id, &code, redirect), &a))
            .await
            .unwrap();
    }
    assert_eq!(c.docs.hits("/jwks.json"), 1);
    let code = code_for(&c.h, &id, redirect, &for_resource()).await;
    let forged = assertion(&wrong_key, &id, &token_endpoint, "u3", now, 60);
    let e =
        c.h.server
            .token(
                None,
                with_assertion(code_request(&id, &code, redirect), &forged),
            )
            .await
            .unwrap_err();
    assert_eq!(wire_of(&e).0, 401);
}

#[tokio::test]
async fn registered_clients_are_unaffected_and_metadata_advertises_support() {
    let c = cimd().await;
    let reg = public_client(&c.h).await;
    assert!(
        !reg.client_id.contains(':'),
        "registered ids are never URLs"
    );
    tokens(&c.h, &reg.client_id, &for_resource()).await;
    // A registered client cannot authenticate with an assertion.
    let (key, _) = key_pair("k");
    let now = c.h.clock.unix();
    let code = code_for(&c.h, &reg.client_id, LOOPBACK, &for_resource()).await;
    assert_eq!(
        token_refused(
            &c.h,
            with_assertion(
                code_request(&reg.client_id, &code, LOOPBACK),
                &assertion(&key, &reg.client_id, ISSUER, "r1", now, 60),
            )
        )
        .await,
        (
            401,
            body_of(
                "invalid_client",
                "client authentication failed: only clients with a metadata document and private_key_jwt send client assertions"
            )
        )
    );
    let m = serde_json::to_value(c.h.server.authorization_server_metadata()).unwrap();
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!([
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(
        m["token_endpoint_auth_signing_alg_values_supported"],
        json!([
            "ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384",
            "RS512"
        ])
    );
}

#[tokio::test]
async fn url_client_ids_are_unknown_when_documents_are_disabled() {
    let h = harness().await;
    let e = h
        .server
        .authorize(form(&authorize_query(
            "https://client.test/client.json",
            "https://app.example.com/cb",
            &for_resource(),
        )))
        .await
        .unwrap_err();
    assert_eq!(
        rendered(e),
        (
            400,
            body_of(
                "invalid_request",
                "unknown client, or redirect_uri is not registered for this client"
            )
        )
    );
}

#[tokio::test]
async fn a_jwks_uri_follows_the_same_url_rules() {
    let c = cimd().await;
    let id = c.serve(
        "/bad-jwks-uri.json",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://client.test/jwks.json"}),
    );
    let (status, body) = refused(&c, &id, "https://app.example.com/cb").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        body_of(
            "invalid_client_metadata",
            &format!("client metadata document {id}: jwks_uri must be https")
        )
    );
}
