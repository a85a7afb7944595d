//! Discovery documents over HTTP, CORS, and the ops endpoints.

use actix_web::test;
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn authorization_server_metadata_and_no_openid_configuration() {
    let (app, _) = app().await;
    let a = call(
        &app,
        test::TestRequest::get().uri("/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(a.status, 200);
    let m = a.json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["registration_endpoint"], format!("{ISSUER}/register"));
    assert_eq!(
        call(
            &app,
            test::TestRequest::get().uri("/.well-known/openid-configuration")
        )
        .await
        .status,
        404
    );
    let jwks = call(&app, test::TestRequest::get().uri("/jwks.json"))
        .await
        .json();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(jwks["keys"][0].get("d").is_none());
}

#[actix_web::test]
async fn protected_resource_metadata_is_found_from_host_and_path() {
    let (app, _) = app().await;
    let direct = test::TestRequest::get()
        .uri("/.well-known/oauth-protected-resource/mcp")
        .insert_header(("Host", "mcp.example.com"));
    let a = call(&app, direct).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json(),
        json!({"resource": RESOURCE, "authorization_servers": [ISSUER], "scopes_supported": ["mcp", "mcp:admin"], "bearer_methods_supported": ["header"], "resource_name": "Demo"})
    );
    let proxied = test::TestRequest::get()
        .uri("/.well-known/oauth-protected-resource/mcp")
        .peer_addr(peer(PROXY))
        .insert_header(("Host", "auth-internal:8080"))
        .insert_header(("X-Forwarded-Host", "admin.example.com"))
        .insert_header(("X-Forwarded-Proto", "https"));
    assert_eq!(call(&app, proxied).await.json()["resource"], ADMIN_RESOURCE);
    let nothing = test::TestRequest::get()
        .uri("/.well-known/oauth-protected-resource/other")
        .insert_header(("Host", "mcp.example.com"));
    assert_eq!(call(&app, nothing).await.status, 404);
}

#[actix_web::test]
async fn cors_on_discovery_registration_and_token() {
    let (app, _) = app().await;
    for path in [
        "/token",
        "/register",
        "/.well-known/oauth-authorization-server",
    ] {
        let pre = test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri(path)
            .insert_header(("Origin", "http://localhost:6274"))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header((
                "Access-Control-Request-Headers",
                "content-type, mcp-protocol-version",
            ));
        let a = call(&app, pre).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("http://localhost:6274"),
            "{path}"
        );
    }
    let a = call(
        &app,
        form_post("/token", "grant_type=x").insert_header(("Origin", "http://localhost:6274")),
    )
    .await;
    assert!(
        a.header("access-control-expose-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("www-authenticate")
    );
}

#[actix_web::test]
async fn health_and_ready() {
    let (app, _) = app().await;
    assert_eq!(
        call(&app, test::TestRequest::get().uri("/health"))
            .await
            .json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        call(&app, test::TestRequest::get().uri("/ready"))
            .await
            .json(),
        json!({"status": "ready"})
    );
}

/// Without a trusted proxy the scheme is the listener's own (here http), and it decides between two resources
/// that differ only in scheme; the scheme-less fallback would pick the first one configured.
#[actix_web::test]
async fn without_a_trusted_proxy_the_listeners_own_scheme_picks_the_resource() {
    let mut c = config();
    c.server = oauth_core::ServerConfig::new(
        ISSUER,
        vec![
            oauth_core::ResourceConfig::new("https://dual.example.com/mcp", vec!["mcp".into()]),
            oauth_core::ResourceConfig::new("http://dual.example.com/mcp", vec!["mcp".into()]),
        ],
    );
    let app = app_with(state_with(c).await).await;
    let a = call(
        &app,
        test::TestRequest::get()
            .uri("/.well-known/oauth-protected-resource/mcp")
            .peer_addr(peer(STRANGER))
            .insert_header(("Host", "dual.example.com"))
            .insert_header(("X-Forwarded-Proto", "https")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json()["resource"],
        "http://dual.example.com/mcp",
        "a stranger's X-Forwarded-Proto is not believed; the plain listener is http"
    );
    let a = call(
        &app,
        test::TestRequest::get()
            .uri("/.well-known/oauth-protected-resource/mcp")
            .peer_addr(peer(PROXY))
            .insert_header(("Host", "dual.example.com"))
            .insert_header(("X-Forwarded-Proto", "https")),
    )
    .await;
    assert_eq!(a.json()["resource"], "https://dual.example.com/mcp");
}
