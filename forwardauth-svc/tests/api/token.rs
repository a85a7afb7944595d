//! `/token`, `/revoke`, `/introspect` over HTTP.

use actix_web::test;
use base64::Engine as _;
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn token_success_is_no_store_json() {
    let (app, _) = app().await;
    let (client_id, t) = tokens(&app, "alice").await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "mcp");
    let refresh = t["refresh_token"].as_str().unwrap();
    let a = call(
        &app,
        form_post(
            "/token",
            &format!(
                "grant_type=refresh_token&refresh_token={}&client_id={client_id}",
                enc(refresh)
            ),
        ),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.header("pragma"), Some("no-cache"));
    assert_eq!(a.header("content-type"), Some("application/json"));
}

#[actix_web::test]
async fn malformed_token_requests_are_invalid_request() {
    let (app, _) = app().await;
    let cases = [
        (
            test::TestRequest::post()
                .uri("/token")
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{}"),
            "Content-Type must be application/x-www-form-urlencoded",
        ),
        (
            form_post(
                "/token",
                "grant_type=authorization_code&grant_type=refresh_token",
            ),
            "parameter `grant_type` is repeated",
        ),
        (
            form_post("/token", "grant_type=%FF"),
            "parameter `grant_type` is not valid UTF-8",
        ),
        (
            form_post(
                "/token",
                &format!(
                    "grant_type=refresh_token&refresh_token={}",
                    "x".repeat(70_000)
                ),
            ),
            "the request body is larger than 65536 bytes",
        ),
    ];
    for (req, description) in cases {
        let a = call(&app, req).await;
        assert_eq!(
            (a.status, a.json()),
            (
                400,
                json!({"error": "invalid_request", "error_description": description})
            )
        );
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }
    let a = call(&app, form_post("/token", "grant_type=password&client_id=x")).await;
    assert_eq!(a.status, 401, "unknown client first");
    assert_eq!(
        call(&app, test::TestRequest::get().uri("/token"))
            .await
            .status,
        405
    );
}

#[actix_web::test]
async fn basic_authentication_failures_carry_a_basic_challenge() {
    let (app, _) = app().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("nobody:secret")
    );
    let a = call(
        &app,
        form_post(
            "/token",
            "grant_type=authorization_code&code=x&code_verifier=y",
        )
        .insert_header(("Authorization", basic)),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("www-authenticate"), Some("Basic realm=\"oauth\""));
    assert_eq!(
        a.json(),
        json!({"error": "invalid_client", "error_description": "client authentication failed"})
    );
    let form_auth = call(
        &app,
        form_post(
            "/token",
            "grant_type=authorization_code&code=x&code_verifier=y&client_id=nobody",
        ),
    )
    .await;
    assert_eq!(form_auth.status, 401);
    assert_eq!(
        form_auth.header("www-authenticate"),
        None,
        "no Basic challenge when Basic was not used"
    );
}

#[actix_web::test]
async fn revoke_then_verify_is_401_and_introspection_says_inactive() {
    let (app, _) = app().await;
    let (client_id, t) = tokens(&app, "alice").await;
    let access = t["access_token"].as_str().unwrap();
    let i = call(
        &app,
        form_post(
            "/introspect",
            &format!("token={}&client_id={client_id}", enc(access)),
        ),
    )
    .await;
    assert_eq!((i.status, i.json()["active"].clone()), (200, json!(true)));
    let r = call(
        &app,
        form_post(
            "/revoke",
            &format!(
                "token={}&client_id={client_id}",
                enc(t["refresh_token"].as_str().unwrap())
            ),
        ),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    let v = call(
        &app,
        traefik("POST", RESOURCE).insert_header(("Authorization", format!("Bearer {access}"))),
    )
    .await;
    assert_eq!(v.status, 401);
    assert_eq!(
        v.json()["error_description"],
        "the access token has been revoked"
    );
    let i = call(
        &app,
        form_post(
            "/introspect",
            &format!("token={}&client_id={client_id}", enc(access)),
        ),
    )
    .await;
    assert_eq!(i.json(), json!({"active": false}));
    let missing = call(
        &app,
        form_post("/revoke", &format!("client_id={client_id}")),
    )
    .await;
    assert_eq!(
        (missing.status, missing.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
}

/// A form body of exactly the limit (64 KiB) is read; one byte more is refused naming the limit.
#[actix_web::test]
async fn a_token_request_body_up_to_the_limit_is_read_and_one_byte_more_is_refused() {
    let (app, _) = app().await;
    let body = |len: usize| {
        let head = "grant_type=refresh_token&client_id=nobody&refresh_token=";
        format!("{head}{}", "x".repeat(len - head.len()))
    };
    let at_limit = call(&app, form_post("/token", &body(64 * 1024))).await;
    assert!(
        !at_limit.text().contains("larger than"),
        "{}",
        at_limit.text()
    );
    assert!(
        at_limit.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("parameter `refresh_token` is longer than"),
        "the whole body was read and parsed: {}",
        at_limit.text()
    );
    let over = call(&app, form_post("/token", &body(64 * 1024 + 1))).await;
    assert_eq!(over.status, 400);
    assert!(
        over.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("larger than 65536 bytes"),
        "{}",
        over.text()
    );
}
