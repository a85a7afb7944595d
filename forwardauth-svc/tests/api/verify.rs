//! `/verify`: only 200, 401 or 403; identity headers on 200; the challenge MCP clients discover from.

use actix_web::test;
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn no_token_is_401_with_resource_metadata() {
    let (app, _) = app().await;
    let a = call(&app, traefik("POST", "https://mcp.example.com/mcp")).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        Some(format!("Bearer scope=\"mcp\", resource_metadata=\"{PRM}\"").as_str())
    );
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(
        a.json(),
        json!({"error": "unauthorized", "error_description": "no bearer token"})
    );
}

#[actix_web::test]
async fn a_valid_token_is_200_with_identity_headers_and_never_the_token() {
    let (app, _) = app().await;
    let (client_id, t) = tokens(&app, "alice").await;
    let token = t["access_token"].as_str().unwrap();
    // This resource has per-tool scopes, so a POST must say which call it is (2026-07-28 headers).
    let req = traefik("POST", "https://mcp.example.com/mcp")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("MCP-Protocol-Version", "2026-07-28"))
        .insert_header(("Mcp-Method", "tools/list"));
    let a = call(&app, req).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("x-user-id"), Some("local:alice"));
    assert_eq!(a.header("x-user-name"), Some("alice"));
    assert_eq!(a.header("x-user-email"), Some("alice@example.com"));
    assert_eq!(a.header("x-client-id"), Some(client_id.as_str()));
    assert_eq!(a.header("x-scopes"), Some("mcp"));
    for (_, v) in a.headers.iter() {
        assert!(
            !v.to_str().unwrap_or_default().contains(token),
            "the token must not be echoed"
        );
    }
    assert!(a.body.is_empty());
}

/// A user without an e-mail address still gets every identity header, empty, so a proxy copying the gate's
/// headers always replaces a client's own (Caddy 2.6 `copy_headers` would otherwise pass its placeholder text).
#[actix_web::test]
async fn unknown_identity_values_are_sent_empty_not_left_out() {
    let (app, _) = app().await;
    let (_, t) = tokens(&app, "bob").await;
    let req = traefik("GET", "https://mcp.example.com/mcp").insert_header((
        "Authorization",
        format!("Bearer {}", t["access_token"].as_str().unwrap()),
    ));
    let a = call(&app, req).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("x-user-id"), Some("local:bob"));
    assert_eq!(a.header("x-user-email"), Some(""));
}

#[actix_web::test]
async fn invalid_and_wrong_audience_tokens_are_401_invalid_token() {
    let (app, _) = app().await;
    let a = call(
        &app,
        traefik("GET", "https://mcp.example.com/mcp")
            .insert_header(("Authorization", "Bearer garbage")),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate").unwrap(),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"malformed token\", resource_metadata=\"{PRM}\""
        )
    );
    assert_eq!(
        a.json(),
        json!({"error": "invalid_token", "error_description": "malformed token"})
    );
    let (_, t) = tokens(&app, "alice").await;
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let a = call(
        &app,
        traefik("POST", "https://admin.example.com/mcp").insert_header(("Authorization", bearer)),
    )
    .await;
    assert_eq!(
        a.status, 401,
        "a token for resource A is refused at resource B"
    );
    assert_eq!(
        a.json()["error_description"],
        "the access token was not issued for this resource"
    );
}

#[actix_web::test]
async fn per_tool_scope_is_403_insufficient_scope() {
    let (app, _) = app().await;
    let (_, t) = tokens(&app, "alice").await;
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let req = || {
        traefik("POST", "https://mcp.example.com/mcp")
            .insert_header(("Authorization", bearer.clone()))
            .insert_header(("MCP-Protocol-Version", "2026-07-28"))
            .insert_header(("Mcp-Method", "tools/call"))
    };
    assert_eq!(
        call(&app, req().insert_header(("Mcp-Name", "echo")))
            .await
            .status,
        200
    );
    let a = call(&app, req().insert_header(("Mcp-Name", "delete_all"))).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.header("www-authenticate").unwrap(),
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks a scope this operation requires\", scope=\"mcp mcp:admin\", resource_metadata=\"{PRM}\""
        )
    );
    assert_eq!(a.json()["error"], "insufficient_scope");
}

#[actix_web::test]
async fn a_post_without_trustworthy_mcp_headers_needs_every_tool_scope() {
    let (app, _) = app().await;
    let (_, t) = tokens(&app, "alice").await;
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let legacy = traefik("POST", "https://mcp.example.com/mcp")
        .insert_header(("Authorization", bearer.clone()));
    let a = call(&app, legacy).await;
    assert_eq!(
        (a.status, a.json()["error"].clone()),
        (403, json!("insufficient_scope")),
        "fail closed"
    );
    let sse =
        traefik("GET", "https://mcp.example.com/mcp").insert_header(("Authorization", bearer));
    assert_eq!(call(&app, sse).await.status, 200);
}

#[actix_web::test]
async fn only_discovery_passes_unauthenticated_and_preflights_are_answered_by_the_service() {
    let (app, _) = app().await;
    let prm = call(
        &app,
        traefik(
            "GET",
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        ),
    )
    .await;
    assert_eq!(prm.status, 200);
    // No identity, and every identity header empty so a proxy's copy clears a client's own.
    for h in [
        "x-user-id",
        "x-user-name",
        "x-user-email",
        "x-client-id",
        "x-scopes",
    ] {
        assert_eq!(prm.header(h), Some(""), "{h}");
    }
    // A preflight through the gate would reach the MCP server without a token: it is challenged like any
    // other request (the snippets send preflights to the service instead).
    let through_gate = traefik("OPTIONS", "https://mcp.example.com/mcp")
        .insert_header(("Origin", "https://mcp.example.com"))
        .insert_header(("Access-Control-Request-Method", "POST"));
    let r = call(&app, through_gate).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://mcp.example.com")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(oauth_core::Preflight::EXPOSE_HEADERS)
    );
    // The service answers a preflight for a protected resource routed to it, for allowed origins only.
    let preflight = |origin: &'static str| {
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/mcp")
            .peer_addr(peer(PROXY))
            .insert_header(("Host", "mcp.example.com"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "POST"))
    };
    let ok = call(&app, preflight("https://mcp.example.com")).await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://mcp.example.com")
    );
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some(oauth_core::Preflight::ALLOW_HEADERS)
    );
    let evil = call(&app, preflight("https://evil.example")).await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.header("access-control-allow-origin"), None);
    // A proxy that keeps the service's own Host says where the preflight was sent in X-Forwarded-Host; from
    // anyone else that header is not believed.
    let forwarded = |from: &str| {
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/mcp")
            .peer_addr(peer(from))
            .insert_header(("Host", "auth.example.com"))
            .insert_header(("X-Forwarded-Host", "mcp.example.com"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("Origin", "https://mcp.example.com"))
            .insert_header(("Access-Control-Request-Method", "POST"))
    };
    let via_proxy = call(&app, forwarded(PROXY)).await;
    assert_eq!(via_proxy.status, 204);
    assert_eq!(
        via_proxy.header("access-control-allow-origin"),
        Some("https://mcp.example.com")
    );
    let from_stranger = call(&app, forwarded(STRANGER)).await;
    assert_ne!(from_stranger.status, 204);
    assert_eq!(from_stranger.header("access-control-allow-origin"), None);
    // Any other method on a path the service does not serve is a 404.
    let other = test::TestRequest::get().uri("/mcp").peer_addr(peer(PROXY));
    assert_eq!(call(&app, other).await.status, 404);
}

#[actix_web::test]
async fn an_origin_that_is_not_allowed_is_refused_even_with_a_valid_token() {
    let (app, _) = app().await;
    let (_, t) = tokens(&app, "alice").await;
    let token = t["access_token"].as_str().unwrap();
    let req = traefik("GET", "https://mcp.example.com/mcp")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Origin", "https://evil.example"));
    let r = call(&app, req).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error_description"],
        json!("the Origin of this request is not allowed for this resource")
    );
    let own = traefik("GET", "https://mcp.example.com/mcp")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Origin", "https://mcp.example.com"));
    assert_eq!(call(&app, own).await.status, 200);
}

#[actix_web::test]
async fn the_host_bypass_and_dot_segments_are_refused() {
    let (app, _) = app().await;
    let host = test::TestRequest::get()
        .uri("/verify")
        .peer_addr(peer(PROXY))
        .insert_header(("X-Forwarded-Method", "POST"))
        .insert_header(("X-Forwarded-Proto", "http"))
        .insert_header(("X-Forwarded-Host", "mcp.example.com:443\\.well-known\\x?"))
        .insert_header(("X-Forwarded-Uri", "/mcp"));
    let r = call(&app, host).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error_description"],
        json!("the forwarded host is not a valid host name with an optional port")
    );
    let url = test::TestRequest::get()
        .uri("/verify")
        .peer_addr(peer(PROXY))
        .insert_header((
            "X-Original-URL",
            "https://mcp.example.com:443\\.well-known\\x?/mcp",
        ))
        .insert_header(("X-Original-Method", "POST"));
    assert_eq!(call(&app, url).await.status, 403);
    for uri in [
        "/mcp/../.well-known/x",
        "/mcp/%2e%2e/.well-known/x",
        "/mcp/%2E%2e/x",
    ] {
        let r = call(
            &app,
            traefik("POST", &format!("https://mcp.example.com{uri}")),
        )
        .await;
        assert_eq!(r.status, 403, "{uri}");
    }
    // Two X-Forwarded-Uri headers: neither copy is chosen.
    let twice = traefik("POST", "https://mcp.example.com/mcp").append_header((
        "X-Forwarded-Uri",
        "/.well-known/oauth-protected-resource/mcp",
    ));
    let r = call(&app, twice).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error_description"],
        json!("the X-Forwarded-Uri header was sent more than once")
    );
}

#[actix_web::test]
async fn nginx_style_headers_work_too() {
    let (app, _) = app().await;
    let full = test::TestRequest::get()
        .uri("/verify")
        .peer_addr(peer(PROXY))
        .insert_header(("X-Original-URL", "https://mcp.example.com/mcp"))
        .insert_header(("X-Original-Method", "POST"));
    let a = call(&app, full).await;
    assert_eq!(
        (
            a.status,
            a.header("www-authenticate").map(|h| h.contains(PRM))
        ),
        (401, Some(true))
    );
    let parts = test::TestRequest::get()
        .uri("/verify")
        .peer_addr(peer(PROXY))
        .insert_header(("X-Original-URI", "/mcp"))
        .insert_header(("X-Original-Method", "POST"))
        .insert_header(("Host", "mcp.example.com"))
        .insert_header(("X-Forwarded-Proto", "https"));
    assert_eq!(call(&app, parts).await.status, 401);
}

#[actix_web::test]
async fn forged_headers_from_an_untrusted_address_are_refused() {
    let (app, _) = app().await;
    let forged = traefik("GET", "https://mcp.example.com/.well-known/x").peer_addr(peer(STRANGER));
    let a = call(&app, forged).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.json(),
        json!({"error": "access_denied", "error_description": "forwarded request headers are accepted only from trusted proxies"})
    );
    let none = test::TestRequest::get()
        .uri("/verify")
        .peer_addr(peer(PROXY));
    assert_eq!(
        call(&app, none).await.json()["error_description"],
        "the proxy sent no X-Forwarded-* or X-Original-* headers"
    );
    let unknown = call(&app, traefik("GET", "https://elsewhere.example.com/mcp")).await;
    assert_eq!(
        (unknown.status, unknown.json()["error_description"].clone()),
        (
            403,
            json!("no protected resource is configured for this URL")
        )
    );
    let bad = test::TestRequest::get()
        .uri("/verify")
        .peer_addr(peer(PROXY))
        .insert_header(("X-Original-URL", "javascript:alert(1)"));
    assert_eq!(call(&app, bad).await.status, 403);
}

/// A proxy sets one family of headers and passes the client's others through; a client adding the other family
/// must not change what the gate judges (here: a `.well-known` URL or an OPTIONS preflight, which pass).
#[actix_web::test]
async fn a_client_cannot_smuggle_the_other_header_family_past_the_proxy() {
    let (app, _) = app().await;
    // Behind Traefik or Caddy: X-Forwarded-* from the proxy, X-Original-* from the client.
    for (name, value) in [
        ("X-Original-URL", "https://mcp.example.com/.well-known/x"),
        ("X-Original-URI", "/.well-known/x"),
        ("X-Original-Method", "OPTIONS"),
    ] {
        let a = call(
            &app,
            traefik("POST", "https://mcp.example.com/mcp").insert_header((name, value)),
        )
        .await;
        assert_eq!(
            (a.status, a.json()["error_description"].clone()),
            (
                403,
                json!("the X-Forwarded-* and X-Original-* headers describe different requests")
            ),
            "{name}"
        );
    }
    // Behind nginx: X-Original-* from the proxy, X-Forwarded-* from the client.
    for (name, value) in [
        ("X-Forwarded-Uri", "/.well-known/x"),
        ("X-Forwarded-Method", "OPTIONS"),
    ] {
        let req = test::TestRequest::get()
            .uri("/verify")
            .peer_addr(peer(PROXY))
            .insert_header(("X-Original-URL", "https://mcp.example.com/mcp"))
            .insert_header(("X-Original-Method", "POST"))
            .insert_header(("Host", "mcp.example.com"))
            .insert_header((name, value));
        assert_eq!(call(&app, req).await.status, 403, "{name}");
    }
    // Both families describing the same request (our nginx config sends both) are fine.
    let both = traefik("POST", "https://mcp.example.com/mcp")
        .insert_header(("X-Original-URL", "https://mcp.example.com/mcp"))
        .insert_header(("X-Original-Method", "POST"));
    assert_eq!(call(&app, both).await.status, 401);
    // Methods are case-sensitive: `post` is another request than `POST`.
    let case = traefik("POST", "https://mcp.example.com/mcp")
        .insert_header(("X-Original-URL", "https://mcp.example.com/mcp"))
        .insert_header(("X-Original-Method", "post"));
    assert_eq!(call(&app, case).await.status, 403);
}

#[actix_web::test]
async fn access_policy_is_403_without_a_challenge_error() {
    let (app, state) = app().await;
    // bob may use the admin resource; alice may not.
    let client = register(&app, json!({})).await;
    let client_id = client["client_id"].as_str().unwrap();
    let uri = authorize_uri(client_id, "").replace(&enc(RESOURCE), &enc(ADMIN_RESOURCE));
    let (login, handle) = log_in(&app, &uri, "alice").await;
    // Refused right after login: no consent page, no code.
    let consent = login;
    assert_eq!(consent.status, 403, "no code for a user the policy refuses");
    assert!(consent.header("location").is_none());
    assert!(
        consent
            .page()
            .contains("alice may not use https://admin.example.com/mcp"),
        "{}",
        consent.page()
    );
    assert!(
        state
            .auth
            .pending_authorization(&handle)
            .await
            .unwrap()
            .is_none()
    );
}

/// Every route of the endpoint table is served with its methods, any other method is a 405, and a path
/// outside the table is a 404: the table is the routes.
#[actix_web::test]
async fn every_endpoint_of_the_table_is_served_with_exactly_its_methods() {
    use forwardauth_svc::endpoints::{ENDPOINTS, Methods};
    let (app, _) = app().await;
    for e in ENDPOINTS {
        let path = if e.is_prefix() {
            format!("{}x", e.path)
        } else {
            e.path.to_owned()
        };
        let Methods::Only(list) = e.methods else {
            continue;
        };
        for (m, _) in list {
            let req = test::TestRequest::default()
                .method(m.clone())
                .uri(&path)
                .peer_addr(peer(PROXY));
            let a = call(&app, req).await;
            // A handler may answer 404 itself (openid-configuration does); the router's own 404 says so.
            let unrouted = a.status == 404 && a.json()["error_description"] == "no such endpoint";
            assert!(a.status != 405 && !unrouted, "{m} {path}: {}", a.status);
        }
        let req = test::TestRequest::default()
            .method(actix_web::http::Method::PATCH)
            .uri(&path)
            .peer_addr(peer(PROXY));
        assert_eq!(call(&app, req).await.status, 405, "PATCH {path}");
    }
    let req = test::TestRequest::get()
        .uri("/nowhere")
        .peer_addr(peer(PROXY));
    assert_eq!(call(&app, req).await.status, 404);
}

/// nginx's snippet calls the gate with `HEAD` (so that no answer has a body nginx would leave unread and close
/// the connection over): the gate's decision is the same as for `GET`, from the forwarded method, not its own.
#[actix_web::test]
async fn head_is_judged_as_the_forwarded_request_like_get() {
    let (app, _) = app().await;
    let (_, t) = tokens(&app, "alice").await;
    let valid = format!("Bearer {}", t["access_token"].as_str().unwrap());
    for authorization in [None, Some("Bearer garbage"), Some(valid.as_str())] {
        let mut answers = Vec::new();
        for method in [actix_web::http::Method::GET, actix_web::http::Method::HEAD] {
            let mut req = traefik("GET", "https://mcp.example.com/mcp").method(method);
            if let Some(a) = authorization {
                req = req.insert_header(("Authorization", a));
            }
            let a = call(&app, req).await;
            answers.push((
                a.status,
                a.header("www-authenticate").map(str::to_owned),
                a.header("x-user-id").map(str::to_owned),
            ));
        }
        assert_eq!(answers[0], answers[1], "{authorization:?}");
    }
    let head = call(
        &app,
        traefik("GET", "https://mcp.example.com/mcp")
            .method(actix_web::http::Method::HEAD)
            .insert_header(("Authorization", valid)),
    )
    .await;
    assert_eq!(
        (head.status, head.header("x-user-id")),
        (200, Some("local:alice"))
    );
}

/// The gate's refusals as a proxy passes them to the client: status, headers and body, pinned.
#[actix_web::test]
async fn gate_refusals_are_pinned() {
    let (app, _) = app().await;
    let shown = |a: Answer| {
        let mut lines: Vec<String> = a
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        lines.sort();
        format!("{}\n{}\n\n{}", a.status, lines.join("\n"), a.text())
    };
    let cases = [
        ("gate_no_token", traefik("POST", RESOURCE)),
        (
            "gate_invalid_token",
            traefik("POST", RESOURCE).insert_header(("Authorization", "Bearer not.a.jwt")),
        ),
        (
            "gate_untrusted_sender",
            traefik("POST", RESOURCE).peer_addr(peer(STRANGER)),
        ),
        (
            "gate_no_such_resource",
            traefik("POST", "https://elsewhere.example.com/mcp"),
        ),
    ];
    for (name, req) in cases {
        insta::assert_snapshot!(name, shown(call(&app, req).await));
    }
}
