//! The authorization endpoint: the two exits, loopback ports, PKCE, scope, resource, state, consent.

use std::time::Duration;

use oauth_core::testing::{self, ISSUER, OTHER_RESOURCE, RESOURCE};
use oauth_core::{AuthorizeError, ScopeSet};
use serde_json::json;

use crate::common::*;

const UNVERIFIED: &str = "unknown client, or redirect_uri is not registered for this client";

#[tokio::test]
async fn success_parks_the_request_and_approval_redirects_with_code_state_and_iss() {
    let h = harness().await;
    let c = public_client(&h).await;
    let prompt = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    assert_eq!(prompt.client_name.as_deref(), Some("Test MCP client"));
    assert_eq!(prompt.redirect_host, "127.0.0.1");
    assert!(prompt.redirect_is_loopback);
    assert_eq!(
        prompt.scope,
        ScopeSet::from_tokens(["mcp"]),
        "default scope"
    );
    assert_eq!(prompt.resource, RESOURCE);
    assert_eq!(
        h.server
            .pending_authorization(&prompt.handle)
            .await
            .unwrap(),
        Some(prompt.clone())
    );
    let url = h.server.approve(&prompt.handle, alice()).await.unwrap();
    assert!(
        url.as_str().starts_with("http://127.0.0.1/callback?code="),
        "{url}"
    );
    let q = query(&url);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], ISSUER);
    assert!(q["code"].len() >= 43, "≥ 256 bits of randomness");
    assert_eq!(q.len(), 3);
}

#[tokio::test]
async fn unverified_client_or_redirect_renders_and_never_redirects() {
    let h = harness().await;
    let c = public_client(&h).await;
    let expected = (400, body("invalid_request", UNVERIFIED));
    let e = h
        .server
        .authorize(form(&authorize_query("unknown", LOOPBACK, "")))
        .await
        .unwrap_err();
    assert_eq!(rendered(e), expected);
    let e = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            "http://127.0.0.1/other",
            "",
        )))
        .await
        .unwrap_err();
    assert_eq!(
        rendered(e),
        expected,
        "unknown client and wrong redirect are indistinguishable"
    );
    let e = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            "https://evil.example.com/callback",
            "",
        )))
        .await
        .unwrap_err();
    assert_eq!(rendered(e), expected);
    let e = h
        .server
        .authorize(form("response_type=code"))
        .await
        .unwrap_err();
    assert_eq!(
        rendered(e),
        (400, body("invalid_request", "client_id is required"))
    );
    // Even errors that come after the client check render while the redirect is unverified.
    let e = h
        .server
        .authorize(form(&format!(
            "response_type=token&client_id=x&redirect_uri={}",
            enc(LOOPBACK)
        )))
        .await
        .unwrap_err();
    assert_eq!(rendered(e), expected);
}

#[tokio::test]
async fn loopback_redirects_match_on_any_port_but_nothing_else_varies() {
    let h = harness().await;
    let c = register(
        &h,
        json!({"redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback", "http://[::1]:8000/cb", "https://app.example.com/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    for ok in [
        "http://127.0.0.1:53123/callback",
        "http://127.0.0.1/callback",
        "http://localhost:33418/callback",
        "http://[::1]:1/cb",
    ] {
        let p = h
            .server
            .authorize(form(&authorize_query(&c.client_id, ok, &for_resource())))
            .await
            .unwrap();
        assert_eq!(
            p.redirect_uri, ok,
            "the code goes to the port the client asked for"
        );
    }
    for bad in [
        "http://127.0.0.1:53123/callback/extra",
        "http://127.0.0.1:53123/callback?x=1",
        "http://127.0.0.2:53123/callback",
        "https://127.0.0.1:53123/callback",
        "https://app.example.com:8443/cb",
        "http://localhost.evil.com:80/callback",
    ] {
        let e = h
            .server
            .authorize(form(&authorize_query(&c.client_id, bad, &for_resource())))
            .await
            .unwrap_err();
        assert_eq!(
            rendered(e),
            (400, body("invalid_request", UNVERIFIED)),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_only_with_a_single_registration() {
    let h = harness().await;
    let c = public_client(&h).await;
    let q = format!(
        "response_type=code&client_id={}&code_challenge={}&code_challenge_method=S256{}",
        c.client_id,
        oauth_core::pkce::s256(VERIFIER),
        for_resource()
    );
    assert_eq!(
        h.server.authorize(form(&q)).await.unwrap().redirect_uri,
        LOOPBACK
    );
}

#[tokio::test]
async fn errors_after_verification_redirect_with_state_and_iss() {
    let h = harness().await;
    let c = public_client(&h).await;
    let challenge = oauth_core::pkce::s256(VERIFIER);
    let base = format!(
        "client_id={}&redirect_uri={}&state=s%2Fx+y",
        c.client_id,
        enc(LOOPBACK)
    );
    let cases = [
        (
            format!("{base}&code_challenge={challenge}&code_challenge_method=S256"),
            "invalid_request",
            "response_type is required",
        ),
        (
            format!(
                "{base}&response_type=token&code_challenge={challenge}&code_challenge_method=S256"
            ),
            "unsupported_response_type",
            "response_type `token` is not supported; use `code`",
        ),
        (
            format!("{base}&response_type=code"),
            "invalid_request",
            "code_challenge is required (PKCE with S256)",
        ),
        (
            format!("{base}&response_type=code&code_challenge={challenge}"),
            "invalid_request",
            "code_challenge_method is required and must be S256",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={VERIFIER}&code_challenge_method=plain"
            ),
            "invalid_request",
            "code_challenge_method `plain` is not supported; use S256",
        ),
        (
            format!("{base}&response_type=code&code_challenge=short&code_challenge_method=S256"),
            "invalid_request",
            "code_challenge must be the base64url-encoded SHA-256 of the code_verifier (43 characters)",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={challenge}&code_challenge_method=S256&scope=mcp+admin&resource=https%3A%2F%2Fmcp.example.com%2Fmcp"
            ),
            "invalid_scope",
            "scope `admin` is not supported",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={challenge}&code_challenge_method=S256&resource=https%3A%2F%2Fevil.example.com"
            ),
            "invalid_target",
            "resource `https://evil.example.com` is not served by this authorization server",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={challenge}&code_challenge_method=S256&resource=https%3A%2F%2Fmcp.example.com%2Fmcp%23x"
            ),
            "invalid_target",
            "resource must not contain a fragment (RFC 8707 §2)",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={challenge}&code_challenge_method=S256&resource=urn-not-a-uri"
            ),
            "invalid_target",
            "resource must be an absolute URI",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={challenge}&code_challenge_method=S256"
            ),
            "invalid_target",
            "resource is required (RFC 8707)",
        ),
    ];
    for (q, code, description) in cases {
        let e = h.server.authorize(form(&q)).await.unwrap_err();
        let AuthorizeError::Redirect { to, .. } = e else {
            panic!("expected redirect for {q}: {e:?}")
        };
        assert!(to.as_str().starts_with(LOOPBACK), "{to}");
        let p = query(&to);
        assert_eq!(
            (
                p["error"].as_str(),
                p["error_description"].as_str(),
                p["state"].as_str(),
                p["iss"].as_str()
            ),
            (code, description, "s/x y", ISSUER),
            "{q}"
        );
    }
}

#[tokio::test]
async fn scope_defaults_offline_access_and_client_limits() {
    let h = harness().await;
    let c = public_client(&h).await;
    let p = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &format!("{}&scope=mcp+offline_access+mcp%3Aadmin", for_resource()),
        )))
        .await
        .unwrap();
    assert_eq!(
        p.scope,
        ScopeSet::from_tokens(["mcp", "mcp:admin"]),
        "offline_access tolerated and dropped"
    );
    let limited = register(
        &h,
        json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none", "scope": "mcp"}),
    )
    .await;
    let e = h
        .server
        .authorize(form(&authorize_query(
            &limited.client_id,
            LOOPBACK,
            &format!("{}&scope=mcp%3Aadmin", for_resource()),
        )))
        .await
        .unwrap_err();
    assert_eq!(
        redirected(e)["error_description"],
        "scope `mcp:admin` was not registered for this client"
    );
}

#[tokio::test]
async fn origin_resources_ignore_a_trailing_slash_path_resources_do_not() {
    let h = harness().await;
    let c = public_client(&h).await;
    let p = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &format!("&resource={}", enc("https://tools.example.com/")),
        )))
        .await
        .unwrap();
    assert_eq!(
        p.resource, OTHER_RESOURCE,
        "canonical form from configuration"
    );
    let e = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &format!("&resource={}", enc("https://mcp.example.com/mcp/")),
        )))
        .await
        .unwrap_err();
    assert_eq!(redirected(e)["error"], "invalid_target");
}

#[tokio::test]
async fn single_resource_is_the_default() {
    let mut config = testing::config();
    config.resources.truncate(1);
    let h = harness_with(config).await;
    let c = public_client(&h).await;
    assert_eq!(
        h.server
            .authorize(form(&authorize_query(&c.client_id, LOOPBACK, "")))
            .await
            .unwrap()
            .resource,
        RESOURCE
    );
}

#[tokio::test]
async fn state_is_echoed_unmodified_and_optional() {
    let h = harness().await;
    let c = public_client(&h).await;
    let state = "a b&c=d/é+%20~";
    let q = authorize_query(&c.client_id, LOOPBACK, &for_resource())
        .replace("state=st-1", &format!("state={}", enc(state)));
    let p = h.server.authorize(form(&q)).await.unwrap();
    let url = h.server.approve(&p.handle, alice()).await.unwrap();
    assert_eq!(query(&url)["state"], state);
    let q = authorize_query(&c.client_id, LOOPBACK, &for_resource()).replace("&state=st-1", "");
    let p = h.server.authorize(form(&q)).await.unwrap();
    let url = h.server.approve(&p.handle, alice()).await.unwrap();
    assert!(!query(&url).contains_key("state"));
    let long = authorize_query(&c.client_id, LOOPBACK, &for_resource())
        .replace("state=st-1", &format!("state={}", "s".repeat(1025)));
    assert_eq!(
        rendered(h.server.authorize(form(&long)).await.unwrap_err()),
        (
            400,
            body("invalid_request", "state is longer than 1024 bytes")
        )
    );
}

#[tokio::test]
async fn deny_returns_access_denied_and_pending_is_single_use() {
    let h = harness().await;
    let c = public_client(&h).await;
    let p = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    let url = h.server.deny(&p.handle).await.unwrap();
    let q = query(&url);
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("access_denied", "st-1", ISSUER)
    );
    let again = h.server.approve(&p.handle, alice()).await.unwrap_err();
    assert_eq!(
        rendered(again),
        (
            400,
            body(
                "invalid_request",
                "this authorization request has expired or was already completed; start again from the client"
            )
        )
    );
    assert_eq!(
        h.server.pending_authorization(&p.handle).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn pending_authorizations_expire() {
    let h = harness().await;
    let c = public_client(&h).await;
    let p = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(601));
    assert_eq!(
        h.server.pending_authorization(&p.handle).await.unwrap(),
        None
    );
    assert_eq!(
        rendered(h.server.approve(&p.handle, alice()).await.unwrap_err()).0,
        400
    );
}

#[tokio::test]
async fn malformed_queries_are_invalid_request() {
    let dup: Result<oauth_core::wire::AuthorizationRequest, _> =
        oauth_core::wire::parse_form(b"client_id=a&client_id=b");
    assert_eq!(
        dup.unwrap_err(),
        oauth_core::OAuthError::invalid_request("parameter `client_id` is repeated")
    );
    let bad_utf8: Result<oauth_core::wire::AuthorizationRequest, _> =
        oauth_core::wire::parse_form(b"state=%FF%FE");
    assert_eq!(
        bad_utf8.unwrap_err(),
        oauth_core::OAuthError::invalid_request("parameter `state` is not valid UTF-8")
    );
    let big = format!("state={}", "x".repeat(4097));
    let oversize: Result<oauth_core::wire::AuthorizationRequest, _> =
        oauth_core::wire::parse_form(big.as_bytes());
    assert_eq!(
        oversize.unwrap_err(),
        oauth_core::OAuthError::invalid_request("parameter `state` is longer than 4096 bytes")
    );
    let empty: oauth_core::wire::AuthorizationRequest = form("scope=&state=x");
    assert_eq!(
        (empty.scope, empty.state.as_deref()),
        (None, Some("x")),
        "empty values count as omitted (RFC 6749 §3.1)"
    );
}

#[tokio::test]
async fn approval_of_a_user_the_policy_refuses_issues_no_code() {
    let mut config = testing::config();
    config.resources[0] =
        oauth_core::ResourceConfig::new(RESOURCE, vec!["mcp".into()]).with_policy(
            oauth_core::AccessPolicy::new(vec!["local:bob".into()], vec![], vec![], vec![]),
        );
    let h = harness_with(config).await;
    let c = public_client(&h).await;
    let p = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    assert!(!h.server.admits(&alice(), RESOURCE));
    match h.server.approve(&p.handle, alice()).await.unwrap_err() {
        AuthorizeError::Forbidden(e) => {
            assert_eq!(
                (e.status(), e.description.as_ref()),
                (403, "alice may not use https://mcp.example.com/mcp")
            )
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert_eq!(
        h.server.pending_authorization(&p.handle).await.unwrap(),
        None,
        "spent"
    );
}

/// RFC 6749 §3.3: a request without `scope` asks for the resource's default scopes only (its required ones unless
/// configured), never every scope it knows.
#[tokio::test]
async fn an_omitted_scope_asks_for_the_resource_defaults_only() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    assert_eq!(
        t.scope, "mcp",
        "not mcp:admin, which the resource also knows"
    );
    let mut config = oauth_core::testing::config();
    let r = config.resources[0].clone();
    config.resources[0] = r.with_default_scopes(vec!["mcp".into(), "mcp:admin".into()]);
    let h = harness_with(config).await;
    let c = public_client(&h).await;
    assert_eq!(
        tokens(&h, &c.client_id, &for_resource()).await.scope,
        "mcp mcp:admin"
    );
}
