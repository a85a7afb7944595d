//! RFC 7009 revocation and RFC 7662 introspection, plus administrative revocation by user and client.

use serde_json::json;

use crate::common::*;

fn revoke_form(client_id: &str, token: &str, hint: &str) -> oauth_core::wire::TokenReference {
    form(&format!(
        "token={}&client_id={}{hint}",
        enc(token),
        enc(client_id)
    ))
}

fn introspect_form(client_id: &str, token: &str) -> oauth_core::wire::TokenReference {
    form(&format!(
        "token={}&client_id={}",
        enc(token),
        enc(client_id)
    ))
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_grant() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    let rt = t.refresh_token.clone().unwrap();
    h.server
        .revoke(
            None,
            revoke_form(&c.client_id, &rt, "&token_type_hint=refresh_token"),
        )
        .await
        .unwrap();
    let r = h
        .server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap_err();
    assert_eq!(
        (r.status(), r.description),
        (401, "the access token has been revoked")
    );
    let e = h
        .server
        .token(None, refresh_request(&c.client_id, &rt, ""))
        .await
        .unwrap_err();
    assert_eq!(wire_of(&e).1["error"], "invalid_grant");
}

#[tokio::test]
async fn revoking_an_access_token_leaves_the_refresh_token() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    h.server
        .revoke(
            None,
            revoke_form(
                &c.client_id,
                &t.access_token,
                "&token_type_hint=access_token",
            ),
        )
        .await
        .unwrap();
    assert!(
        h.server
            .verify(Some(&bearer(&t.access_token)), resource(&h))
            .is_err()
    );
    let next = h
        .server
        .token(
            None,
            refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    h.server
        .verify(Some(&bearer(&next.access_token)), resource(&h))
        .unwrap();
}

#[tokio::test]
async fn revocation_of_unknown_or_foreign_tokens_succeeds_without_effect() {
    let h = harness().await;
    let a = public_client(&h).await;
    let b = public_client(&h).await;
    let t = tokens(&h, &a.client_id, &for_resource()).await;
    h.server
        .revoke(None, revoke_form(&a.client_id, "garbage", ""))
        .await
        .unwrap();
    h.server
        .revoke(None, revoke_form(&b.client_id, &t.access_token, ""))
        .await
        .unwrap();
    h.server
        .revoke(
            None,
            revoke_form(&b.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    h.server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .expect("another client cannot revoke it");
    h.server
        .token(
            None,
            refresh_request(&a.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn revocation_errors() {
    let h = harness().await;
    let c = public_client(&h).await;
    let no_token: oauth_core::wire::TokenReference = form(&format!("client_id={}", c.client_id));
    assert_eq!(
        wire_of(&h.server.revoke(None, no_token).await.unwrap_err()),
        (400, body("invalid_request", "token is required"))
    );
    assert_eq!(
        wire_of(
            &h.server
                .revoke(
                    None,
                    revoke_form(&c.client_id, "x", "&token_type_hint=id_token")
                )
                .await
                .unwrap_err()
        ),
        (
            400,
            body(
                "unsupported_token_type",
                "token_type_hint `id_token` is not supported"
            )
        )
    );
    assert_eq!(
        wire_of(
            &h.server
                .revoke(None, revoke_form("unknown", "x", ""))
                .await
                .unwrap_err()
        ),
        (401, body("invalid_client", "client authentication failed"))
    );
}

#[tokio::test]
async fn administrative_revocation_by_subject_and_client() {
    let h = harness().await;
    let a = public_client(&h).await;
    let b = public_client(&h).await;
    let ta = tokens(&h, &a.client_id, &for_resource()).await;
    let tb = tokens(&h, &b.client_id, &for_resource()).await;
    assert_eq!(
        h.server.revoke_client_tokens(&a.client_id).await.unwrap(),
        1
    );
    assert!(
        h.server
            .verify(Some(&bearer(&ta.access_token)), resource(&h))
            .is_err()
    );
    h.server
        .verify(Some(&bearer(&tb.access_token)), resource(&h))
        .unwrap();
    assert_eq!(
        h.server.revoke_subject_tokens("local:alice").await.unwrap(),
        1,
        "a's grant is already gone"
    );
    assert!(
        h.server
            .verify(Some(&bearer(&tb.access_token)), resource(&h))
            .is_err()
    );
}

#[tokio::test]
async fn introspection_of_access_and_refresh_tokens() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    let at = serde_json::to_value(
        h.server
            .introspect(None, introspect_form(&c.client_id, &t.access_token))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(at["active"], true);
    assert_eq!(at["token_type"], "Bearer");
    assert_eq!(at["client_id"], c.client_id.as_str());
    assert_eq!(at["sub"], "local:alice");
    assert_eq!(at["username"], "alice");
    assert_eq!(at["aud"], oauth_core::testing::RESOURCE);
    assert_eq!(at["iss"], oauth_core::testing::ISSUER);
    assert_eq!(at["scope"], "mcp");
    let rt = serde_json::to_value(
        h.server
            .introspect(
                None,
                introspect_form(&c.client_id, t.refresh_token.as_deref().unwrap()),
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (rt["active"].clone(), rt["token_type"].clone()),
        (json!(true), json!("refresh_token"))
    );
    let garbage = serde_json::to_value(
        h.server
            .introspect(None, introspect_form(&c.client_id, "garbage"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(garbage, json!({"active": false}));
}

#[tokio::test]
async fn introspection_hides_other_clients_tokens_and_revoked_ones() {
    let h = harness().await;
    let a = public_client(&h).await;
    let b = public_client(&h).await;
    let t = tokens(&h, &a.client_id, &for_resource()).await;
    let other = serde_json::to_value(
        h.server
            .introspect(None, introspect_form(&b.client_id, &t.access_token))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(other, json!({"active": false}));
    h.server
        .revoke(None, revoke_form(&a.client_id, &t.access_token, ""))
        .await
        .unwrap();
    let revoked = serde_json::to_value(
        h.server
            .introspect(None, introspect_form(&a.client_id, &t.access_token))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(revoked, json!({"active": false}));
    assert_eq!(
        wire_of(
            &h.server
                .introspect(None, introspect_form("nobody", "x"))
                .await
                .unwrap_err()
        ),
        (401, body("invalid_client", "client authentication failed"))
    );
}
