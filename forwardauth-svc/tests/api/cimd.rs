//! Client ID Metadata Documents over HTTP: the metadata flag, the consent page of a document client, and the
//! whole flow with a URL client_id. Documents come from a real https server on 127.0.0.1 with a CA made here,
//! which the engine trusts through its configuration only.

use std::sync::Arc;

use actix_web::test;
use forwardauth_svc::AppState;
use oauth_core::cimd::{ReqwestDocumentFetcher, StaticHosts};
use oauth_core::testing::documents::{DocumentServer, Route, TestCa};
use oauth_core::{AuthServer, ClientMetadataDocuments, EmbeddedStore, SystemClock};
use serde_json::json;

use crate::common::*;

const LOCAL_REDIRECT: &str = "http://localhost:43123/callback";

struct Setup {
    state: AppState,
    docs: DocumentServer,
    client_id: String,
    _ca: TestCa,
}

async fn setup() -> Setup {
    let ca = TestCa::new();
    let docs = DocumentServer::start(&ca, &["client.test"]).await;
    let client_id = format!("https://client.test:{}/oauth/client.json", docs.port());
    docs.set(
        "/oauth/client.json",
        Route::json(
            json!({
                "client_id": client_id,
                "client_name": "Claude <Code>",
                "redirect_uris": ["http://localhost/callback", "https://app.example.com/cb"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            })
            .to_string(),
        ),
    );
    let mut config = config();
    let mut documents = ClientMetadataDocuments::enabled();
    documents.builtin_roots = false;
    documents.extra_root_certificates = vec![ca.pem().into_bytes()];
    documents.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
    config.server.client_metadata = documents;
    let lookup = StaticHosts::new().with("client.test", &["127.0.0.1".parse().unwrap()]);
    let fetcher =
        ReqwestDocumentFetcher::with_lookup(&config.server.client_metadata, Arc::new(lookup))
            .unwrap();
    let clock = Arc::new(SystemClock);
    let store = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let providers = forwardauth_svc::state::build_providers(&config, clock.clone()).unwrap();
    let auth = AuthServer::new(
        config.server.clone(),
        store,
        oauth_core::testing::sealer(),
        clock,
    )
    .await
    .unwrap()
    .with_providers(providers)
    .with_client_document_fetcher(Arc::new(fetcher));
    Setup {
        state: AppState::with_auth(&config, Arc::new(auth)).unwrap(),
        docs,
        client_id,
        _ca: ca,
    }
}

fn authorize(client_id: &str, redirect: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=xyz&resource={}",
        enc(client_id),
        enc(redirect),
        oauth_core::pkce::s256(VERIFIER),
        enc(RESOURCE)
    )
}

#[actix_web::test]
async fn metadata_advertises_client_id_metadata_documents_and_private_key_jwt() {
    let s = setup().await;
    let app = app_with(s.state).await;
    let m = call(
        &app,
        test::TestRequest::get().uri("/.well-known/oauth-authorization-server"),
    )
    .await
    .json();
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
        m["token_endpoint_auth_signing_alg_values_supported"][0],
        "ES256"
    );
    // Without documents (the API tests' default engine) neither is advertised.
    let (plain, _) = crate::common::app().await;
    let m = call(
        &plain,
        test::TestRequest::get().uri("/.well-known/oauth-authorization-server"),
    )
    .await
    .json();
    assert_eq!(m["client_id_metadata_document_supported"], false);
    assert!(
        m.get("token_endpoint_auth_signing_alg_values_supported")
            .is_none()
    );
}

#[actix_web::test]
async fn the_consent_page_names_the_client_host_and_warns_about_localhost() {
    let s = setup().await;
    let client_id = s.client_id.clone();
    let app = app_with(s.state).await;
    let (login, handle) = log_in(&app, &authorize(&client_id, LOCAL_REDIRECT), "alice").await;
    assert_eq!(login.status, 200);
    let html = login.page();
    assert!(
        html.contains("<strong>client.test</strong> (calling itself “Claude &lt;Code&gt;”)"),
        "the verified host names the client, the name is only a claim: {html}"
    );
    assert!(!html.contains("(not verified)"), "{html}");
    assert!(
        !html.contains("Claude <Code>"),
        "the document's name is escaped"
    );
    assert!(
        html.contains("<dt>Client published by</dt><dd><strong>client.test</strong> (verified: the client's ID is a document on this host)</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<dt>You will be sent back to</dt><dd><strong>localhost</strong></dd>"),
        "{html}"
    );
    assert!(
        html.contains("on your own computer (localhost), not to client.test."),
        "{html}"
    );
    assert!(
        html.contains(
            "Any program on this computer can start a sign-in in the name of Claude &lt;Code&gt; from client.test."
        ),
        "{html}"
    );

    // Approve and redeem the code with the URL client_id as a public client.
    let cookie = session_cookie(&login);
    let approved = call(
        &app,
        form_post(
            "/consent",
            &format!(
                "handle={}&csrf={}&decision=approve",
                enc(&handle),
                enc(&field(&html, "csrf"))
            ),
        )
        .insert_header(("Cookie", cookie)),
    )
    .await;
    assert_eq!(approved.status, 302);
    let location = url::Url::parse(approved.header("location").unwrap()).unwrap();
    assert_eq!(location.port(), Some(43123), "the requested port is kept");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let t = call(
        &app,
        form_post(
            "/token",
            &format!(
                "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}&client_id={}",
                enc(&code),
                enc(LOCAL_REDIRECT),
                enc(&client_id)
            ),
        ),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.json()["token_type"], "Bearer");
    assert_eq!(s.docs.hits("/oauth/client.json"), 1);
}

#[actix_web::test]
async fn a_web_redirect_shows_its_host_without_the_warning_and_document_errors_render() {
    let s = setup().await;
    let client_id = s.client_id.clone();
    let app = app_with(s.state).await;
    let (login, _) = log_in(
        &app,
        &authorize(&client_id, "https://app.example.com/cb"),
        "alice",
    )
    .await;
    let html = login.page();
    assert!(
        html.contains("<dd><strong>app.example.com</strong></dd>"),
        "{html}"
    );
    assert!(!html.contains("Warning:"), "{html}");

    // A redirect URI the document does not list: an error page, never a redirect.
    let bad = call(
        &app,
        test::TestRequest::get().uri(&authorize(&client_id, "https://evil.example/cb")),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.header("location").is_none());
    assert!(
        bad.page()
            .contains("redirect_uri `https://evil.example/cb` is not listed in the client&#x27;s metadata document"),
        "{}",
        bad.page()
    );
    // A document that cannot be fetched: an error page naming why.
    let missing = format!("https://client.test:{}/nothing.json", s.docs.port());
    let gone = call(
        &app,
        test::TestRequest::get().uri(&authorize(&missing, "https://app.example.com/cb")),
    )
    .await;
    assert_eq!(gone.status, 400);
    assert!(
        gone.page().contains(&format!(
            "client metadata document {missing}: the server answered with HTTP 404"
        )),
        "{}",
        gone.page()
    );
}
