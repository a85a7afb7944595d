//! `/register` and `/register/{client_id}` over HTTP.

use actix_web::test;
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn register_read_update_delete() {
    let (app, _) = app().await;
    let a = call(
        &app,
        test::TestRequest::post()
            .uri("/register")
            .set_json(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})),
    )
    .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let body = a.json();
    let id = body["client_id"].as_str().unwrap();
    let rat = body["registration_access_token"].as_str().unwrap();
    assert_eq!(
        a.header("location"),
        Some(format!("{ISSUER}/register/{id}").as_str())
    );
    assert_eq!(
        body["registration_client_uri"],
        format!("{ISSUER}/register/{id}")
    );

    let read = call(
        &app,
        test::TestRequest::get()
            .uri(&format!("/register/{id}"))
            .insert_header(("Authorization", format!("Bearer {rat}"))),
    )
    .await;
    assert_eq!(read.status, 200);
    assert!(read.json().get("registration_access_token").is_none());

    let unauth = call(
        &app,
        test::TestRequest::get().uri(&format!("/register/{id}")),
    )
    .await;
    assert_eq!(unauth.status, 401);
    assert_eq!(
        unauth.header("www-authenticate"),
        Some(
            "Bearer error=\"invalid_token\", error_description=\"the registration access token is missing, invalid, or not for this client\""
        )
    );

    let upd = call(
        &app,
        test::TestRequest::put()
            .uri(&format!("/register/{id}"))
            .insert_header(("Authorization", format!("Bearer {rat}")))
            .set_json(json!({"client_id": id, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "renamed"})),
    )
    .await;
    assert_eq!(upd.status, 200, "{}", upd.text());
    let new_rat = upd.json()["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = call(
        &app,
        test::TestRequest::delete()
            .uri(&format!("/register/{id}"))
            .insert_header(("Authorization", format!("Bearer {new_rat}"))),
    )
    .await;
    assert_eq!((del.status, del.body.len()), (204, 0));
    assert_eq!(
        call(
            &app,
            test::TestRequest::patch().uri(&format!("/register/{id}"))
        )
        .await
        .status,
        405
    );
}

#[actix_web::test]
async fn bad_registrations_name_the_field() {
    let (app, _) = app().await;
    let a = call(
        &app,
        test::TestRequest::post()
            .uri("/register")
            .insert_header(("Content-Type", "application/json"))
            .set_payload("{\"redirect_uris\": 5}"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "invalid_client_metadata");
    assert!(
        a.json()["error_description"]
            .as_str()
            .unwrap()
            .starts_with("redirect_uris: invalid type: integer `5`")
    );
    let bad = call(
        &app,
        test::TestRequest::post()
            .uri("/register")
            .set_json(json!({"redirect_uris": ["http://evil.example.com/cb"]})),
    )
    .await;
    assert_eq!(bad.json()["error"], "invalid_redirect_uri");
    let huge = format!(
        "{{\"redirect_uris\": [\"{REDIRECT}\"], \"client_name\": \"{}\"}}",
        "x".repeat(40_000)
    );
    let big = call(
        &app,
        test::TestRequest::post()
            .uri("/register")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(huge),
    )
    .await;
    assert_eq!(big.status, 400);
    assert_eq!(
        big.json(),
        json!({"error": "invalid_client_metadata", "error_description": "the registration request is larger than 16384 bytes"})
    );
    let junk = call(
        &app,
        test::TestRequest::post()
            .uri("/register")
            .set_payload(vec![0xff, 0xfe, 0x00]),
    )
    .await;
    assert_eq!(
        (junk.status, junk.json()["error"].clone()),
        (400, json!("invalid_client_metadata")),
        "{}",
        junk.text()
    );
}
