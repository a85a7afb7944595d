//! RFC 7591 registration and RFC 7592 management.

use oauth_core::testing::{self, ISSUER};
use oauth_core::{Secret, TokenHash};
use serde_json::json;

use crate::common::*;

async fn register_err(h: &Harness, metadata: serde_json::Value) -> (u16, serde_json::Value) {
    wire_of(
        &h.server
            .register(metadata.to_string().as_bytes(), None)
            .await
            .unwrap_err(),
    )
}

#[tokio::test]
async fn public_client_gets_no_secret_and_echoes_metadata() {
    let h = harness().await;
    let r = public_client(&h).await;
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["token_endpoint_auth_method"], "none");
    assert_eq!(v["redirect_uris"], json!([LOOPBACK]));
    assert_eq!(
        v["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(v["response_types"], json!(["code"]));
    assert_eq!(v["client_name"], "Test MCP client");
    assert_eq!(v["client_id_issued_at"], json!(1_767_225_600u64));
    assert!(
        v.get("client_secret").is_none(),
        "a `none` client must not get a secret: {v}"
    );
    assert!(v.get("client_secret_expires_at").is_none());
    assert!(
        r.registration_access_token
            .as_deref()
            .is_some_and(|t| t.len() >= 43)
    );
    assert_eq!(
        r.registration_client_uri,
        format!("{ISSUER}/register/{}", r.client_id)
    );
}

#[tokio::test]
async fn secret_client_gets_a_secret_stored_only_as_a_hash() {
    let h = harness().await;
    let r = secret_client(&h).await;
    assert_eq!(
        r.metadata.token_endpoint_auth_method, "client_secret_basic",
        "RFC 7591 default method"
    );
    let secret = r.client_secret.clone().unwrap();
    assert_eq!(r.client_secret_expires_at, Some(0));
    let stored = h.store.client(&r.client_id).await.unwrap().unwrap();
    assert_eq!(stored.secret_hash, Some(TokenHash::of(secret.as_bytes())));
    let raw = serde_json::to_string(&stored).unwrap();
    assert!(
        !raw.contains(&secret),
        "the plaintext secret must not be stored"
    );
    assert!(!raw.contains(r.registration_access_token.as_deref().unwrap()));
}

#[tokio::test]
async fn secret_methods_can_be_downgraded_to_none() {
    let mut config = testing::config();
    config.registration.downgrade_secret_to_none = true;
    let h = harness_with(config).await;
    let r = register(&h, json!({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"], "token_endpoint_auth_method": "client_secret_post"})).await;
    assert_eq!(
        r.metadata.token_endpoint_auth_method, "none",
        "the response says what was registered"
    );
    assert!(r.client_secret.is_none());
}

#[tokio::test]
async fn redirect_uri_rules() {
    let h = harness().await;
    for ok in [
        "https://claude.ai/api/mcp/auth_callback",
        "http://127.0.0.1:33418/cb",
        "http://localhost/callback",
        "http://[::1]:9000/cb",
        "cursor://anysphere.cursor-mcp/oauth/callback",
    ] {
        register(
            &h,
            json!({"redirect_uris": [ok], "token_endpoint_auth_method": "none"}),
        )
        .await;
    }
    let cases = [
        (
            "http://evil.example.com/cb",
            "redirect_uris: `http://evil.example.com/cb`: http is allowed only on a loopback host (127.0.0.1, [::1], localhost)",
        ),
        (
            "https://app.example.com/cb#frag",
            "redirect_uris: `https://app.example.com/cb#frag` must not contain a fragment",
        ),
        (
            "https://user:pw@app.example.com/cb",
            "redirect_uris: `https://user:pw@app.example.com/cb` must not contain userinfo",
        ),
        (
            "javascript:alert(1)",
            "redirect_uris: `javascript:alert(1)`: scheme `javascript` is not allowed (use https, loopback http, or an allowed private-use scheme)",
        ),
        (
            "/relative",
            "redirect_uris: `/relative` is not an absolute URI: relative URL without a base",
        ),
    ];
    for (uri, description) in cases {
        let got = register_err(&h, json!({"redirect_uris": [uri]})).await;
        assert_eq!(
            got,
            (400, body("invalid_redirect_uri", description)),
            "{uri}"
        );
    }
    assert_eq!(
        register_err(&h, json!({"client_name": "no redirects"})).await,
        (
            400,
            body(
                "invalid_redirect_uri",
                "redirect_uris: at least one redirect URI is required for the authorization_code grant"
            )
        )
    );
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("https://a.example.com/{i}"))
        .collect();
    assert_eq!(
        register_err(&h, json!({"redirect_uris": eleven})).await,
        (
            400,
            body(
                "invalid_redirect_uri",
                "redirect_uris: at most 10 redirect URIs may be registered"
            )
        )
    );
}

#[tokio::test]
async fn application_type_is_honoured() {
    let h = harness().await;
    assert_eq!(
        register_err(
            &h,
            json!({"redirect_uris": [LOOPBACK], "application_type": "web"})
        )
        .await,
        (
            400,
            body(
                "invalid_redirect_uri",
                "redirect_uris: `http://127.0.0.1/callback`: a `web` client must use https redirect URIs"
            )
        )
    );
    let native = register(&h, json!({"redirect_uris": [LOOPBACK], "application_type": "native", "token_endpoint_auth_method": "none"})).await;
    assert_eq!(native.metadata.application_type.as_deref(), Some("native"));
    assert_eq!(
        register_err(
            &h,
            json!({"redirect_uris": [LOOPBACK], "application_type": "desktop"})
        )
        .await,
        (
            400,
            body(
                "invalid_client_metadata",
                "application_type: `desktop` is not `web` or `native`"
            )
        )
    );
}

#[tokio::test]
async fn grant_and_response_types_must_be_supported_and_consistent() {
    let h = harness().await;
    assert_eq!(
        register_err(
            &h,
            json!({"redirect_uris": [LOOPBACK], "grant_types": ["authorization_code", "password"]})
        )
        .await,
        (
            400,
            body(
                "invalid_client_metadata",
                "grant_types: `password` is not supported (authorization_code, refresh_token)"
            )
        )
    );
    assert_eq!(
        register_err(
            &h,
            json!({"redirect_uris": [LOOPBACK], "response_types": ["token"]})
        )
        .await,
        (
            400,
            body(
                "invalid_client_metadata",
                "response_types: `token` is not supported (code)"
            )
        )
    );
    assert_eq!(
        register_err(&h, json!({"redirect_uris": [LOOPBACK], "grant_types": ["authorization_code"], "response_types": []})).await,
        (400, body("invalid_client_metadata", "grant_types and response_types are inconsistent: authorization_code goes with code (RFC 7591 §2.1)"))
    );
    assert_eq!(
        register_err(
            &h,
            json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "private_key_jwt"})
        )
        .await,
        (
            400,
            body(
                "invalid_client_metadata",
                "token_endpoint_auth_method: `private_key_jwt` is not supported (none, client_secret_basic, client_secret_post)"
            )
        )
    );
}

#[tokio::test]
async fn malformed_bodies_name_the_field() {
    let h = harness().await;
    let raw = |b: &'static [u8]| {
        let h = &h;
        async move { wire_of(&h.server.register(b, None).await.unwrap_err()) }
    };
    assert_eq!(
        raw(br#"{"redirect_uris": "https://a.example.com/cb"}"#).await,
        (
            400,
            body(
                "invalid_client_metadata",
                "redirect_uris: invalid type: string \"https://a.example.com/cb\", expected a sequence at line 1 column 44"
            )
        )
    );
    let (status, v) = raw(b"{not json").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_client_metadata"))
    );
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("the body is not a JSON object of client metadata")
    );
    let (status, v) = raw(b"\xff\xfe").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_client_metadata"))
    );
    let big = format!(
        r#"{{"redirect_uris": ["{LOOPBACK}"], "client_name": "{}"}}"#,
        "x".repeat(17 * 1024)
    );
    assert_eq!(
        wire_of(&h.server.register(big.as_bytes(), None).await.unwrap_err()),
        (
            400,
            body(
                "invalid_client_metadata",
                "the registration request is larger than 16384 bytes"
            )
        )
    );
    assert_eq!(
        register_err(
            &h,
            json!({"redirect_uris": [LOOPBACK], "client_uri": "ftp://x"})
        )
        .await,
        (
            400,
            body(
                "invalid_client_metadata",
                "client_uri: `ftp://x` is not an http(s) URL"
            )
        )
    );
    // A name with an escape sequence or a line break would forge what an operator reads on a terminal or a page.
    for name in ["Evil\u{1b}[2J", "two\nlines", "tab\there"] {
        assert_eq!(
            register_err(
                &h,
                json!({"redirect_uris": [LOOPBACK], "client_name": name})
            )
            .await,
            (
                400,
                body(
                    "invalid_client_metadata",
                    "client_name: contains a control character"
                )
            ),
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn unknown_scopes_are_dropped_at_registration() {
    let h = harness().await;
    let r = register(&h, json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none", "scope": "mcp bogus offline_access"})).await;
    assert_eq!(r.metadata.scope.as_deref(), Some("mcp offline_access"));
}

#[tokio::test]
async fn initial_access_token_policy() {
    let mut config = testing::config();
    config.registration.initial_access_tokens = vec![Secret::new("iat-123").hash()];
    let h = harness_with(config).await;
    let body_json =
        json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}).to_string();
    let expected = (
        401,
        body(
            "invalid_token",
            "registration requires a valid initial access token (RFC 7591 §3)",
        ),
    );
    assert_eq!(
        wire_of(
            &h.server
                .register(body_json.as_bytes(), None)
                .await
                .unwrap_err()
        ),
        expected
    );
    assert_eq!(
        wire_of(
            &h.server
                .register(body_json.as_bytes(), Some("wrong"))
                .await
                .unwrap_err()
        ),
        expected
    );
    h.server
        .register(body_json.as_bytes(), Some("iat-123"))
        .await
        .unwrap();
}

#[tokio::test]
async fn rfc7592_read_never_returns_the_secret() {
    let h = harness().await;
    let r = secret_client(&h).await;
    let rat = r.registration_access_token.clone().unwrap();
    let read = h
        .server
        .read_client(&r.client_id, Some(&rat))
        .await
        .unwrap();
    let v = serde_json::to_value(&read).unwrap();
    assert!(v.get("client_secret").is_none(), "{v}");
    assert!(v.get("registration_access_token").is_none());
    assert_eq!(v["client_secret_expires_at"], json!(0));
    assert_eq!(read.metadata, r.metadata);
}

#[tokio::test]
async fn rfc7592_wrong_token_and_unknown_client_are_indistinguishable() {
    let h = harness().await;
    let r = public_client(&h).await;
    let expected = (
        401,
        body(
            "invalid_token",
            "the registration access token is missing, invalid, or not for this client",
        ),
    );
    assert_eq!(
        wire_of(
            &h.server
                .read_client(&r.client_id, Some("wrong"))
                .await
                .unwrap_err()
        ),
        expected
    );
    assert_eq!(
        wire_of(&h.server.read_client(&r.client_id, None).await.unwrap_err()),
        expected
    );
    assert_eq!(
        wire_of(
            &h.server
                .read_client("nope", r.registration_access_token.as_deref())
                .await
                .unwrap_err()
        ),
        expected
    );
    assert_eq!(
        wire_of(
            &h.server
                .delete_client(&r.client_id, Some("wrong"))
                .await
                .unwrap_err()
        ),
        expected
    );
    let upd = json!({"client_id": r.client_id, "redirect_uris": [LOOPBACK]}).to_string();
    assert_eq!(
        wire_of(
            &h.server
                .update_client(&r.client_id, Some("wrong"), upd.as_bytes())
                .await
                .unwrap_err()
        ),
        expected
    );
}

#[tokio::test]
async fn rfc7592_update_replaces_revalidates_and_rotates_the_token() {
    let h = harness().await;
    let r = public_client(&h).await;
    let rat = r.registration_access_token.clone().unwrap();
    let update = json!({
        "client_id": r.client_id,
        "redirect_uris": ["http://127.0.0.1/new"],
        "token_endpoint_auth_method": "none",
        "client_name": "Renamed",
    });
    let updated = h
        .server
        .update_client(&r.client_id, Some(&rat), update.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(updated.metadata.redirect_uris, vec!["http://127.0.0.1/new"]);
    assert_eq!(updated.metadata.client_name.as_deref(), Some("Renamed"));
    assert_eq!(
        updated.metadata.grant_types,
        vec!["authorization_code"],
        "full replacement: omitted fields take defaults"
    );
    let new_rat = updated.registration_access_token.clone().unwrap();
    assert_ne!(new_rat, rat);
    assert_eq!(
        wire_of(
            &h.server
                .read_client(&r.client_id, Some(&rat))
                .await
                .unwrap_err()
        )
        .0,
        401,
        "the old token is dead"
    );
    h.server
        .read_client(&r.client_id, Some(&new_rat))
        .await
        .unwrap();

    let bad = json!({"client_id": r.client_id, "redirect_uris": ["http://evil.example.com/"]});
    assert_eq!(
        wire_of(
            &h.server
                .update_client(&r.client_id, Some(&new_rat), bad.to_string().as_bytes())
                .await
                .unwrap_err()
        )
        .1["error"],
        "invalid_redirect_uri"
    );
    let other_id = json!({"client_id": "someone-else", "redirect_uris": [LOOPBACK]});
    assert_eq!(
        wire_of(
            &h.server
                .update_client(
                    &r.client_id,
                    Some(&new_rat),
                    other_id.to_string().as_bytes()
                )
                .await
                .unwrap_err()
        ),
        (
            400,
            body(
                "invalid_request",
                "client_id in the body must equal the client being updated (RFC 7592 §2.2)"
            )
        )
    );
    let forbidden = json!({"client_id": r.client_id, "redirect_uris": [LOOPBACK], "registration_access_token": new_rat});
    assert_eq!(
        wire_of(
            &h.server
                .update_client(
                    &r.client_id,
                    Some(&new_rat),
                    forbidden.to_string().as_bytes()
                )
                .await
                .unwrap_err()
        ),
        (
            400,
            body(
                "invalid_request",
                "registration_access_token must not be sent in an update (RFC 7592 §2.2)"
            )
        )
    );
    // A failed update changes nothing, the registration token included.
    h.server
        .read_client(&r.client_id, Some(&new_rat))
        .await
        .unwrap();
}

#[tokio::test]
async fn rfc7592_switching_to_a_secret_method_issues_a_secret() {
    let h = harness().await;
    let r = public_client(&h).await;
    let update = json!({"client_id": r.client_id, "redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "client_secret_post"});
    let updated = h
        .server
        .update_client(
            &r.client_id,
            r.registration_access_token.as_deref(),
            update.to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert!(updated.client_secret.is_some());
    assert_eq!(
        updated.metadata.token_endpoint_auth_method,
        "client_secret_post"
    );
}

#[tokio::test]
async fn rfc7592_delete_revokes_every_token_of_the_client() {
    let h = harness().await;
    let r = public_client(&h).await;
    let t = tokens(&h, &r.client_id, &for_resource()).await;
    h.server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap();
    h.server
        .delete_client(&r.client_id, r.registration_access_token.as_deref())
        .await
        .unwrap();
    let rej = h
        .server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap_err();
    assert_eq!(
        (rej.status(), rej.description),
        (401, "the access token has been revoked")
    );
    assert_eq!(h.store.client(&r.client_id).await.unwrap(), None);
    assert_eq!(
        wire_of(
            &h.server
                .read_client(&r.client_id, r.registration_access_token.as_deref())
                .await
                .unwrap_err()
        )
        .0,
        401
    );
    let refreshed = h
        .server
        .token(
            None,
            refresh_request(&r.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await;
    assert_eq!(
        wire_of(&refreshed.unwrap_err()),
        (401, body("invalid_client", "client authentication failed"))
    );
}

mod policy {
    //! The registration policy: a cap on clients, and collection of clients nobody uses (on the injected clock).

    use std::time::Duration;

    use oauth_core::testing;

    use crate::common::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[tokio::test]
    async fn registrations_beyond_the_cap_are_refused_until_a_client_goes() {
        let mut config = testing::config();
        config.registration.max_clients = 2;
        let h = harness_with(config).await;
        let first = public_client(&h).await;
        public_client(&h).await;
        let body =
            serde_json::json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"});
        let e = h
            .server
            .register(body.to_string().as_bytes(), None)
            .await
            .unwrap_err();
        let (status, json) = wire_of(&e);
        assert_eq!(status, 503);
        assert_eq!(json["error"], "temporarily_unavailable");
        assert!(
            json["error_description"]
                .as_str()
                .unwrap()
                .contains("maximum of 2 registered clients"),
            "{json}"
        );
        assert_eq!(
            h.store.count_clients().await.unwrap(),
            2,
            "nothing was stored"
        );
        h.server
            .delete_client(&first.client_id, first.registration_access_token.as_deref())
            .await
            .unwrap();
        public_client(&h).await;
    }

    #[tokio::test]
    async fn a_cap_of_zero_is_no_cap() {
        let mut config = testing::config();
        config.registration.max_clients = 0;
        let h = harness_with(config).await;
        for _ in 0..5 {
            public_client(&h).await;
        }
    }

    #[tokio::test]
    async fn clients_that_never_complete_an_authorization_are_collected_after_their_time() {
        let h = harness().await;
        let used = public_client(&h).await;
        let unused = public_client(&h).await;
        h.clock.advance(23 * HOUR);
        assert_eq!(
            h.server.collect_clients().await.unwrap().never_used,
            0,
            "not yet"
        );
        tokens(&h, &used.client_id, &for_resource()).await;
        h.clock.advance(HOUR);
        let c = h.server.collect_clients().await.unwrap();
        assert_eq!((c.never_used, c.idle), (1, 0));
        assert!(h.store.client(&unused.client_id).await.unwrap().is_none());
        assert!(
            h.store.client(&used.client_id).await.unwrap().is_some(),
            "a client that redeemed a code stays"
        );
        // An authorization request alone is not use: only a redeemed code is.
        let started = public_client(&h).await;
        let _ = h
            .server
            .authorize(form(&authorize_query(
                &started.client_id,
                LOOPBACK,
                &for_resource(),
            )))
            .await
            .unwrap();
        h.clock.advance(DAY);
        assert_eq!(h.server.collect_clients().await.unwrap().never_used, 1);
    }

    #[tokio::test]
    async fn clients_unused_for_long_are_collected_with_their_grants_and_refreshes_keep_them() {
        let mut config = testing::config();
        config.refresh_token_ttl = 400 * DAY;
        // No identity provider here re-checks alice at refresh: her grant must not lapse for that first.
        config.max_unverified_age = 400 * DAY;
        let h = harness_with(config).await;
        let client = public_client(&h).await;
        let id = client.client_id.as_str();
        let t = tokens(&h, id, &for_resource()).await;
        let first_use = h.store.client_last_used(id).await.unwrap().unwrap();
        // A refresh within a day does not write the use again; one after a day does.
        h.clock.advance(HOUR);
        let t = h
            .server
            .token(
                None,
                refresh_request(id, t.refresh_token.as_deref().unwrap(), ""),
            )
            .await
            .unwrap();
        assert_eq!(h.store.client_last_used(id).await.unwrap(), Some(first_use));
        h.clock.advance(2 * HOUR);
        let t = h
            .server
            .token(
                None,
                refresh_request(id, t.refresh_token.as_deref().unwrap(), ""),
            )
            .await
            .unwrap();
        assert_eq!(
            h.store.client_last_used(id).await.unwrap(),
            Some(first_use),
            "three hours on: still within the day"
        );
        h.clock.advance(DAY - 3 * HOUR);
        let t = h
            .server
            .token(
                None,
                refresh_request(id, t.refresh_token.as_deref().unwrap(), ""),
            )
            .await
            .unwrap();
        let renewed = h.store.client_last_used(id).await.unwrap().unwrap();
        assert_eq!(
            renewed,
            first_use + DAY.as_secs(),
            "a day on: written again"
        );

        h.clock.advance(89 * DAY);
        assert_eq!(
            h.server.collect_clients().await.unwrap().idle,
            0,
            "89 days: kept"
        );
        h.clock.advance(DAY);
        let c = h.server.collect_clients().await.unwrap();
        assert_eq!((c.never_used, c.idle), (0, 1));
        assert!(h.store.client(id).await.unwrap().is_none());
        let e = h
            .server
            .token(
                None,
                refresh_request(id, t.refresh_token.as_deref().unwrap(), ""),
            )
            .await
            .unwrap_err();
        assert_eq!(
            wire_of(&e).0,
            401,
            "the client is gone, and its grant with it"
        );
        let v = gate_post(&h, &bearer(&t.access_token)).await;
        assert!(
            !matches!(v.outcome, oauth_core::GateOutcome::Admit(_)),
            "its access tokens are revoked: {v:?}"
        );
    }

    #[tokio::test]
    async fn each_rule_works_without_the_other() {
        let mut config = testing::config();
        config.registration.never_used_client_ttl = None;
        config.registration.idle_client_ttl = Some(DAY);
        let h = harness_with(config).await;
        let never = public_client(&h).await;
        let used = public_client(&h).await;
        tokens(&h, &used.client_id, &for_resource()).await;
        h.clock.advance(DAY);
        let c = h.server.collect_clients().await.unwrap();
        assert_eq!((c.never_used, c.idle), (0, 1), "only the idle rule applies");
        assert!(h.store.client(&never.client_id).await.unwrap().is_some());

        let mut config = testing::config();
        config.registration.never_used_client_ttl = Some(HOUR);
        config.registration.idle_client_ttl = None;
        let h = harness_with(config).await;
        let never = public_client(&h).await;
        let used = public_client(&h).await;
        tokens(&h, &used.client_id, &for_resource()).await;
        h.clock.advance(1000 * DAY);
        let c = h.server.collect_clients().await.unwrap();
        assert_eq!(
            (c.never_used, c.idle),
            (1, 0),
            "only the never-used rule applies"
        );
        assert!(h.store.client(&never.client_id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn collection_can_be_turned_off() {
        let mut config = testing::config();
        config.registration.never_used_client_ttl = None;
        config.registration.idle_client_ttl = None;
        let h = harness_with(config).await;
        public_client(&h).await;
        h.clock.advance(1000 * DAY);
        assert_eq!(
            h.server.collect_clients().await.unwrap(),
            oauth_core::CollectedClients::default()
        );
        assert_eq!(h.store.count_clients().await.unwrap(), 1);
    }
}
