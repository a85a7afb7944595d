//! Abuse resistance through HTTP: 429 with `Retry-After` in each rate-limited endpoint's own format, the client
//! address taken from `X-Forwarded-For` only behind a trusted proxy, failed client authentication charged extra,
//! and the page a banned login gets. (The limits' arithmetic on the injected clock is in the core's flow tests.)

use actix_web::http::header;
use actix_web::test;
use oauth_core::{Limited, RateLimits};
use serde_json::json;

use crate::common::*;

fn with_limit(what: Limited, per_minute: u32) -> forwardauth_svc::config::Config {
    let mut c = config();
    c.server.rate_limits = RateLimits::off();
    c.server.rate_limits.set_per_minute(what, per_minute);
    c
}

/// A request to `path` with `method` from the stranger's address.
fn request(method: &str, path: &str) -> test::TestRequest {
    let req = match method {
        "GET" => test::TestRequest::get(),
        "PUT" => test::TestRequest::put(),
        "DELETE" => test::TestRequest::delete(),
        _ => test::TestRequest::post(),
    };
    req.uri(path)
        .peer_addr(peer(STRANGER))
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .insert_header((header::ORIGIN, "https://app.example.com"))
        .set_payload("x=1")
}

#[actix_web::test]
async fn every_limited_endpoint_answers_429_with_retry_after_in_its_own_format() {
    let cases: [(Limited, &str, &str, bool); 9] = [
        (Limited::Authorize, "GET", "/authorize?client_id=x", false),
        (Limited::Login, "POST", "/login", false),
        (Limited::Login, "POST", "/login/upstream", false),
        (Limited::Callback, "GET", "/callback?state=x&code=y", false),
        (Limited::Token, "POST", "/token", true),
        (Limited::Token, "POST", "/revoke", true),
        (Limited::Token, "POST", "/introspect", true),
        (Limited::Token, "GET", "/register/some-client", true),
        (Limited::Register, "POST", "/register", true),
    ];
    for (what, method, path, json) in cases {
        // These requests fail client authentication; here only the plain count matters.
        let mut c = with_limit(what, 2);
        c.server.rate_limits.failure_cost = 0;
        let app = app_with(state_with(c).await).await;
        for _ in 0..2 {
            let a = call(&app, request(method, path)).await;
            assert_ne!(a.status, 429, "{path}: within the budget");
        }
        let a = call(&app, request(method, path)).await;
        assert_eq!(a.status, 429, "{path}: {}", a.text());
        // Two a minute: the next one in 30 s.
        assert_eq!(a.header("retry-after"), Some("30"), "{path}");
        if json {
            assert_eq!(a.json()["error"], "temporarily_unavailable", "{path}");
            assert!(
                a.json()["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("retry after 30 s"),
                "{path}"
            );
            assert_eq!(a.header("cache-control"), Some("no-store"), "{path}");
            assert_eq!(
                a.header("access-control-allow-origin"),
                Some("https://app.example.com"),
                "{path}: a browser client can read the 429"
            );
        } else {
            assert!(
                a.header("content-type").unwrap().starts_with("text/html"),
                "{path}"
            );
            assert!(
                a.page().contains("Too many requests") && a.page().contains("30 seconds"),
                "{path}: {}",
                a.page()
            );
        }
        // Another address has its own budget.
        let other = call(
            &app,
            request(method, path).peer_addr(peer("198.51.100.20:1234")),
        )
        .await;
        assert_ne!(other.status, 429, "{path}");
    }
}

#[actix_web::test]
async fn unlimited_endpoints_are_not_counted() {
    let mut c = config();
    c.server.rate_limits = RateLimits::off();
    c.server.rate_limits.authorize_per_minute = 1;
    let app = app_with(state_with(c).await).await;
    for _ in 0..5 {
        for path in [
            "/.well-known/oauth-authorization-server",
            "/jwks.json",
            "/health",
        ] {
            let a = call(
                &app,
                test::TestRequest::get().uri(path).peer_addr(peer(STRANGER)),
            )
            .await;
            assert_eq!(a.status, 200, "{path}");
        }
    }
}

#[actix_web::test]
async fn the_client_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy() {
    let app = app_with(state_with(with_limit(Limited::Register, 1)).await).await;
    let via = |peer_addr: &str, xff: &str| {
        request("POST", "/register")
            .peer_addr(peer(peer_addr))
            .insert_header(("X-Forwarded-For", xff.to_owned()))
    };
    // Behind the trusted proxy, each forwarded client has its own budget...
    assert_ne!(call(&app, via(PROXY, "203.0.113.1")).await.status, 429);
    assert_ne!(call(&app, via(PROXY, "203.0.113.2")).await.status, 429);
    assert_eq!(call(&app, via(PROXY, "203.0.113.1")).await.status, 429);
    // ...and what the client wrote to the left of the proxy's entry changes nothing.
    assert_eq!(
        call(&app, via(PROXY, "198.51.100.99, 203.0.113.2"))
            .await
            .status,
        429
    );
    // A chain of trusted proxies is walked to the first address that is not one.
    assert_eq!(
        call(&app, via(PROXY, "203.0.113.1, 10.0.0.5")).await.status,
        429
    );
    // A peer that is not a trusted proxy is the client, whatever header it sends.
    assert_ne!(call(&app, via(STRANGER, "203.0.113.50")).await.status, 429);
    assert_eq!(call(&app, via(STRANGER, "203.0.113.51")).await.status, 429);
    // Garbage in the header ends the walk at the proxy itself: no fresh budget from a made-up entry.
    assert_ne!(call(&app, via(PROXY, "not-an-address")).await.status, 429);
    assert_eq!(
        call(&app, via(PROXY, "203.0.113.77, also-not-one"))
            .await
            .status,
        429
    );
}

#[actix_web::test]
async fn failed_client_authentication_at_the_token_endpoint_runs_the_budget_out_faster() {
    let mut c = with_limit(Limited::Token, 22);
    c.server.rate_limits.failure_cost = 10;
    let app = app_with(state_with(c).await).await;
    let client = register(
        &app,
        json!({"token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let client_id = client["client_id"].as_str().unwrap();
    let bad = format!(
        "grant_type=refresh_token&refresh_token=x&client_id={client_id}&client_secret=wrong"
    );
    for _ in 0..2 {
        let a = call(&app, form_post("/token", &bad).peer_addr(peer(STRANGER))).await;
        assert_eq!(a.status, 401, "{}", a.text());
    }
    // Two failures cost 2 × 11 = 22: the budget is gone.
    let a = call(&app, form_post("/token", &bad).peer_addr(peer(STRANGER))).await;
    assert_eq!(a.status, 429, "{}", a.text());
}

#[actix_web::test]
async fn a_banned_account_gets_a_page_saying_when_to_come_back_even_with_the_right_password() {
    let (app, _) = app().await;
    let client = register(&app, json!({})).await;
    let uri = authorize_uri(client["client_id"].as_str().unwrap(), "");
    let post = |page: &Answer, password: &str| {
        let cookie = session_cookie(page);
        form_post(
            "/login",
            &format!(
                "handle={}&csrf={}&username=alice&password={password}",
                enc(&field(&page.text(), "handle")),
                enc(&field(&page.text(), "csrf"))
            ),
        )
        .insert_header((header::COOKIE, cookie))
        .peer_addr(peer(STRANGER))
    };
    let page = call(
        &app,
        test::TestRequest::get().uri(&uri).peer_addr(peer(STRANGER)),
    )
    .await;
    for _ in 0..5 {
        let a = call(&app, post(&page, "guess")).await;
        assert_eq!(a.status, 401, "{}", a.text());
        assert!(a.page().contains("Invalid username or password."));
    }
    let a = call(&app, post(&page, "wonderland")).await;
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.header("retry-after"), Some("900"));
    assert!(
        a.page().contains("Too many failed sign-ins") && a.page().contains("15 minutes"),
        "{}",
        a.page()
    );
    // Another user from the same address is not banned (the address has five failures of its twenty).
    let page = call(
        &app,
        test::TestRequest::get().uri(&uri).peer_addr(peer(STRANGER)),
    )
    .await;
    let cookie = session_cookie(&page);
    let a = call(
        &app,
        form_post(
            "/login",
            &format!(
                "handle={}&csrf={}&username=bob&password=wonderland",
                enc(&field(&page.text(), "handle")),
                enc(&field(&page.text(), "csrf"))
            ),
        )
        .insert_header((header::COOKIE, cookie))
        .peer_addr(peer(STRANGER)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
}
