//! The authorization-code grant: PKCE, redirect URI, single use with replay revocation, expiry, client
//! authentication, and malformed requests.

use std::time::Duration;

use base64::Engine as _;
use oauth_core::testing::OTHER_RESOURCE;
use oauth_core::{ClientCredentials, Clock as _, ErrorCode, FormCredentials, OAuthError};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn code_exchange_issues_a_bearer_jwt_and_a_refresh_token() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, 3600);
    assert_eq!(t.scope, "mcp");
    assert_eq!(t.access_token.split('.').count(), 3, "a compact JWS");
    assert!(t.refresh_token.as_deref().is_some_and(|r| r.len() >= 43));
    let p = h
        .server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap();
    assert_eq!(
        (p.subject(), p.client_id()),
        ("local:alice", c.client_id.as_str())
    );
    assert_eq!(p.email(), Some("alice@example.com"));
}

#[tokio::test]
async fn no_refresh_token_without_the_refresh_grant() {
    let h = harness().await;
    let c = register(
        &h,
        json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let t = tokens(
        &h,
        &c.client_id,
        &format!("{}&scope=mcp+offline_access", for_resource()),
    )
    .await;
    assert_eq!(
        t.refresh_token, None,
        "refresh tokens follow grant_types, not offline_access"
    );
}

#[tokio::test]
async fn pkce_mismatch_and_missing_verifier() {
    let h = harness().await;
    let c = public_client(&h).await;
    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    let wrong = form(&format!(
        "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={}",
        c.client_id,
        enc(&code),
        enc(LOOPBACK),
        "x".repeat(43)
    ));
    assert_eq!(
        token_refused(&h, wrong).await,
        (
            400,
            body(
                "invalid_grant",
                "code_verifier does not match the code_challenge"
            )
        )
    );
    // The code was consumed by the failed attempt: PKCE cannot be brute-forced.
    let e = h
        .server
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap_err();
    assert_eq!(wire_of(&e).1["error"], "invalid_grant");

    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    let missing = form(&format!(
        "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}",
        c.client_id,
        enc(&code),
        enc(LOOPBACK)
    ));
    assert_eq!(
        token_refused(&h, missing).await,
        (400, body("invalid_request", "code_verifier is required"))
    );
}

#[tokio::test]
async fn redirect_uri_must_match_the_authorization_request() {
    let h = harness().await;
    let c = public_client(&h).await;
    let code = code_for(
        &h,
        &c.client_id,
        "http://127.0.0.1:4000/callback",
        &for_resource(),
    )
    .await;
    assert_eq!(
        token_refused(
            &h,
            code_request(&c.client_id, &code, "http://127.0.0.1:4001/callback")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "redirect_uri does not match the authorization request"
            )
        )
    );
    let code = code_for(
        &h,
        &c.client_id,
        "http://127.0.0.1:4000/callback",
        &for_resource(),
    )
    .await;
    let omitted = form(&format!(
        "grant_type=authorization_code&client_id={}&code={}&code_verifier={VERIFIER}",
        c.client_id,
        enc(&code)
    ));
    assert_eq!(
        token_refused(&h, omitted).await,
        (
            400,
            body(
                "invalid_grant",
                "redirect_uri does not match the authorization request"
            )
        ),
        "named at authorize, so it must be repeated (RFC 6749 §4.1.3)"
    );
    let code = code_for(
        &h,
        &c.client_id,
        "http://127.0.0.1:4000/callback",
        &for_resource(),
    )
    .await;
    h.server
        .token(
            None,
            code_request(&c.client_id, &code, "http://127.0.0.1:4000/callback"),
        )
        .await
        .unwrap();
}

/// A code from an authorization request that named no `redirect_uri` (the client's single registered one was used).
async fn code_without_redirect_uri(h: &Harness, client_id: &str) -> String {
    let q = format!(
        "response_type=code&client_id={}&code_challenge={}&code_challenge_method=S256{}",
        enc(client_id),
        oauth_core::pkce::s256(VERIFIER),
        for_resource()
    );
    let prompt = h.server.authorize(form(&q)).await.unwrap();
    let url = h.server.approve(&prompt.handle, alice()).await.unwrap();
    assert!(url.as_str().starts_with(LOOPBACK), "{url}");
    query(&url).remove("code").unwrap()
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_at_the_token_endpoint_when_it_was_at_authorize() {
    let h = harness().await;
    let c = public_client(&h).await;
    let without = |code: &str| {
        form(&format!(
            "grant_type=authorization_code&client_id={}&code={}&code_verifier={VERIFIER}",
            enc(&c.client_id),
            enc(code)
        ))
    };
    let code = code_without_redirect_uri(&h, &c.client_id).await;
    let t = h.server.token(None, without(&code)).await.unwrap();
    h.server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap();
    // Naming it anyway is fine when it is the one the code was sent to.
    let code = code_without_redirect_uri(&h, &c.client_id).await;
    h.server
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap();
    // Naming another is not.
    let code = code_without_redirect_uri(&h, &c.client_id).await;
    assert_eq!(
        token_refused(
            &h,
            code_request(&c.client_id, &code, "http://127.0.0.1:4001/callback")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "redirect_uri does not match the authorization request"
            )
        )
    );
}

#[tokio::test]
async fn code_replay_is_refused_and_revokes_the_tokens_of_the_first_redemption() {
    let h = harness().await;
    let c = public_client(&h).await;
    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    let first = h
        .server
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap();
    h.server
        .verify(Some(&bearer(&first.access_token)), resource(&h))
        .unwrap();
    assert_eq!(
        token_refused(&h, code_request(&c.client_id, &code, LOOPBACK)).await,
        (
            400,
            body(
                "invalid_grant",
                "the authorization code was already used; tokens issued from it are revoked"
            )
        )
    );
    let rej = h
        .server
        .verify(Some(&bearer(&first.access_token)), resource(&h))
        .unwrap_err();
    assert_eq!(
        (rej.status(), rej.description),
        (401, "the access token has been revoked")
    );
    let e = h
        .server
        .token(
            None,
            refresh_request(&c.client_id, first.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap_err();
    assert_eq!(wire_of(&e).1["error"], "invalid_grant");
}

#[tokio::test]
async fn codes_expire_after_their_ttl() {
    let h = harness().await;
    let c = public_client(&h).await;
    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(
        token_refused(&h, code_request(&c.client_id, &code, LOOPBACK)).await,
        (
            400,
            body(
                "invalid_grant",
                "the authorization code is invalid or expired"
            )
        )
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_client() {
    let h = harness().await;
    let a = public_client(&h).await;
    let b = public_client(&h).await;
    let code = code_for(&h, &a.client_id, LOOPBACK, &for_resource()).await;
    assert_eq!(
        token_refused(&h, code_request(&b.client_id, &code, LOOPBACK)).await,
        (
            400,
            body(
                "invalid_grant",
                "the authorization code was issued to another client"
            )
        )
    );
}

#[tokio::test]
async fn resource_at_the_token_endpoint_must_match() {
    let h = harness().await;
    let c = public_client(&h).await;
    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    let mut req = code_request(&c.client_id, &code, LOOPBACK);
    req.resource = Some(OTHER_RESOURCE.into());
    assert_eq!(
        token_refused(&h, req).await,
        (
            400,
            body(
                "invalid_target",
                "resource differs from the authorization request"
            )
        )
    );
}

#[tokio::test]
async fn confidential_clients_authenticate_by_basic_or_post_in_constant_time() {
    let h = harness().await;
    let c = secret_client(&h).await;
    let secret = c.client_secret.clone().unwrap();
    let redirect = "https://app.example.com/cb";
    let basic = |id: &str, s: &str| {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(s)))
        );
        ClientCredentials::from_authorization_header(&header).unwrap()
    };
    // Basic.
    let code = code_for(&h, &c.client_id, redirect, &for_resource()).await;
    let mut req = code_request(&c.client_id, &code, redirect);
    req.client.client_id = None;
    h.server
        .token(basic(&c.client_id, &secret), req)
        .await
        .unwrap();
    // Post.
    let code = code_for(&h, &c.client_id, redirect, &for_resource()).await;
    let mut req = code_request(&c.client_id, &code, redirect);
    req.client.client_secret = Some(secret.clone());
    h.server.token(None, req).await.unwrap();

    let failed = (401, body("invalid_client", "client authentication failed"));
    let code = code_for(&h, &c.client_id, redirect, &for_resource()).await;
    let mut req = code_request(&c.client_id, &code, redirect);
    req.client.client_secret = Some("wrong".into());
    assert_eq!(token_refused(&h, req.clone()).await, failed);
    req.client.client_secret = None;
    assert_eq!(
        token_refused(&h, req.clone()).await,
        failed,
        "a secret client must send its secret"
    );
    req.client.client_id = Some("unknown".into());
    req.client.client_secret = Some(secret.clone());
    assert_eq!(
        token_refused(&h, req.clone()).await,
        failed,
        "unknown client looks the same"
    );
    req.client.client_id = Some(c.client_id.clone());
    assert_eq!(
        wire_of(
            &h.server
                .token(basic(&c.client_id, &secret), req.clone())
                .await
                .unwrap_err()
        ),
        (
            400,
            body(
                "invalid_request",
                "use exactly one client authentication method (RFC 6749 §2.3)"
            )
        )
    );
    req.client.client_secret = None;
    req.client.client_id = Some("other".into());
    assert_eq!(
        wire_of(
            &h.server
                .token(basic(&c.client_id, &secret), req)
                .await
                .unwrap_err()
        ),
        (
            400,
            body(
                "invalid_request",
                "client_id does not match the Basic credentials"
            )
        )
    );
    let no_client = form("grant_type=authorization_code&code=x&code_verifier=y");
    assert_eq!(
        token_refused(&h, no_client).await,
        (
            401,
            body(
                "invalid_client",
                "client authentication is required (client_id)"
            )
        )
    );
}

/// A token request with a code nobody issued: `invalid_grant` once the client is authenticated, so the answer
/// tells whether authentication passed.
fn bogus_code_request(client_id: Option<&str>) -> oauth_core::wire::TokenRequest {
    let mut req = code_request(client_id.unwrap_or(""), "nope", LOOPBACK);
    req.client.client_id = client_id.map(str::to_owned);
    req
}

fn authenticated() -> (u16, serde_json::Value) {
    (
        400,
        body(
            "invalid_grant",
            "the authorization code is invalid or expired",
        ),
    )
}

/// The status and body of a refused token request with these Basic credentials.
async fn refused(
    h: &Harness,
    basic: Option<ClientCredentials>,
    req: oauth_core::wire::TokenRequest,
) -> (u16, serde_json::Value) {
    wire_of(&h.server.token(basic, req).await.unwrap_err())
}

fn basic_for(client_id: &str, secret: &str) -> Option<ClientCredentials> {
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(client_id),
            enc(secret)
        ))
    );
    ClientCredentials::from_authorization_header(&header).unwrap()
}

#[tokio::test]
async fn basic_and_form_credentials_naming_different_clients_are_refused() {
    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request.
    let h = harness().await;
    let a = secret_client(&h).await;
    let b = secret_client(&h).await;
    let (secret_a, secret_b) = (a.client_secret.unwrap(), b.client_secret.unwrap());
    let one_method = (
        400,
        body(
            "invalid_request",
            "use exactly one client authentication method (RFC 6749 §2.3)",
        ),
    );

    let mut req = bogus_code_request(Some(&b.client_id));
    req.client.client_secret = Some(secret_b.clone());
    assert_eq!(
        refused(&h, basic_for(&a.client_id, &secret_a), req.clone()).await,
        one_method
    );
    // Each alone authenticates.
    assert_eq!(refused(&h, None, req).await, authenticated());
    assert_eq!(
        refused(
            &h,
            basic_for(&a.client_id, &secret_a),
            bogus_code_request(None)
        )
        .await,
        authenticated()
    );
    // A form client_id beside Basic must name the same client.
    assert_eq!(
        refused(
            &h,
            basic_for(&a.client_id, &secret_a),
            bogus_code_request(Some(&b.client_id))
        )
        .await,
        (
            400,
            body(
                "invalid_request",
                "client_id does not match the Basic credentials"
            )
        )
    );
    assert_eq!(
        refused(
            &h,
            basic_for(&a.client_id, &secret_a),
            bogus_code_request(Some(&a.client_id))
        )
        .await,
        authenticated()
    );
    // Basic beside an assertion, and a form secret beside an assertion, are two methods too.
    let mut req = bogus_code_request(Some(&a.client_id));
    req.client.client_assertion_type =
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into());
    req.client.client_assertion = Some("eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into());
    assert_eq!(
        refused(&h, basic_for(&a.client_id, &secret_a), req.clone()).await,
        one_method
    );
    req.client.client_secret = Some(secret_a);
    assert_eq!(refused(&h, None, req).await, one_method);
}

#[tokio::test]
async fn client_assertion_and_its_type_go_together_and_only_jwt_bearer_is_known() {
    let h = harness().await;
    let c = public_client(&h).await;
    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    let with = |kind: Option<&str>, assertion: Option<&str>| {
        let mut req = code_request(&c.client_id, &code, LOOPBACK);
        req.client.client_assertion_type = kind.map(str::to_owned);
        req.client.client_assertion = assertion.map(str::to_owned);
        req
    };
    assert_eq!(
        token_refused(&h, with(Some("urn:example:password"), Some("x"))).await,
        (
            401,
            body(
                "invalid_client",
                "client_assertion_type `urn:example:password` is not supported (use urn:ietf:params:oauth:client-assertion-type:jwt-bearer)"
            )
        )
    );
    let apart = (
        400,
        body(
            "invalid_request",
            "client_assertion and client_assertion_type go together (RFC 7521 §4.2)",
        ),
    );
    assert_eq!(
        token_refused(
            &h,
            with(
                Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                None
            )
        )
        .await,
        apart
    );
    assert_eq!(token_refused(&h, with(None, Some("x"))).await, apart);
    // All refused before the code was looked at: it still works.
    h.server
        .token(None, with(None, None))
        .await
        .expect("the code was not consumed by the refused requests");
}

#[tokio::test]
async fn a_client_secret_with_an_expiry_stops_working_when_it_expires() {
    let h = harness().await;
    let c = secret_client(&h).await;
    let secret = c.client_secret.unwrap();
    // Registration issues secrets that never expire (0); an embedder's own records may carry an expiry.
    let mut record = h.store.client(&c.client_id).await.unwrap().unwrap();
    assert_eq!(record.secret_expires_at, 0);
    let expires_at = h.clock.unix() + 100;
    record.secret_expires_at = expires_at;
    assert!(h.store.replace_client(&record).await.unwrap());

    let post = || {
        let mut req = bogus_code_request(Some(&c.client_id));
        req.client.client_secret = Some(secret.clone());
        req
    };
    assert_eq!(token_refused(&h, post()).await, authenticated());
    h.clock.advance(Duration::from_secs(99));
    assert_eq!(token_refused(&h, post()).await, authenticated());
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(h.clock.unix(), expires_at);
    let failed = (401, body("invalid_client", "client authentication failed"));
    assert_eq!(token_refused(&h, post()).await, failed);
    assert_eq!(
        refused(
            &h,
            basic_for(&c.client_id, &secret),
            bogus_code_request(None)
        )
        .await,
        failed
    );
}

#[test]
fn form_credentials_debug_hides_the_secret_and_the_assertion() {
    let creds = FormCredentials::new(Some("client-1"), Some("s3cret"))
        .with_assertion(Some("urn:example:type"), Some("eyJ.payload.sig"));
    assert_eq!(
        format!("{creds:?}"),
        "FormCredentials { client_id: Some(\"client-1\"), client_secret: Some(\"[redacted]\"), \
         client_assertion_type: Some(\"urn:example:type\"), client_assertion: Some(\"[redacted]\") }"
    );
    assert_eq!(
        format!("{:?}", FormCredentials::new(None, None)),
        "FormCredentials { client_id: None, client_secret: None, client_assertion_type: None, \
         client_assertion: None }"
    );
}

#[tokio::test]
async fn a_public_client_must_not_send_a_secret() {
    let h = harness().await;
    let c = public_client(&h).await;
    let code = code_for(&h, &c.client_id, LOOPBACK, &for_resource()).await;
    let mut req = code_request(&c.client_id, &code, LOOPBACK);
    req.client.client_secret = Some("anything".into());
    assert_eq!(
        token_refused(&h, req).await,
        (401, body("invalid_client", "client authentication failed"))
    );
}

#[tokio::test]
async fn basic_header_parsing() {
    assert!(
        ClientCredentials::from_authorization_header("Bearer abc")
            .unwrap()
            .is_none()
    );
    let malformed = OAuthError::new(ErrorCode::InvalidClient, "malformed Basic credentials");
    assert_eq!(
        ClientCredentials::from_authorization_header("Basic !!!").unwrap_err(),
        malformed
    );
    let no_colon = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("abc")
    );
    assert_eq!(
        ClientCredentials::from_authorization_header(&no_colon).unwrap_err(),
        malformed
    );
    let encoded = format!(
        "basic {}",
        base64::engine::general_purpose::STANDARD.encode("my%3Aid:p%40ss+word")
    );
    let c = ClientCredentials::from_authorization_header(&encoded)
        .unwrap()
        .unwrap();
    assert_eq!(c.client_id, "my:id");
    assert_eq!(c.secret.expose(), "p@ss word");
}

#[tokio::test]
async fn grant_types_and_malformed_forms() {
    let h = harness().await;
    let c = public_client(&h).await;
    let unsupported = form(&format!("grant_type=password&client_id={}", c.client_id));
    assert_eq!(
        token_refused(&h, unsupported).await,
        (
            400,
            body(
                "unsupported_grant_type",
                "grant_type `password` is not supported (authorization_code, refresh_token)"
            )
        )
    );
    let missing = form(&format!("client_id={}", c.client_id));
    assert_eq!(
        token_refused(&h, missing).await,
        (400, body("invalid_request", "grant_type is required"))
    );
    let no_code = form(&format!(
        "grant_type=authorization_code&client_id={}&code_verifier={VERIFIER}",
        c.client_id
    ));
    assert_eq!(
        token_refused(&h, no_code).await,
        (400, body("invalid_request", "code is required"))
    );
    let dup: Result<oauth_core::wire::TokenRequest, _> =
        oauth_core::wire::parse_form(b"grant_type=authorization_code&code=a&code=b");
    assert_eq!(
        dup.unwrap_err(),
        OAuthError::invalid_request("parameter `code` is repeated")
    );
    let unknown = form(&format!(
        "grant_type=authorization_code&client_id={}&code=nope&code_verifier={VERIFIER}",
        c.client_id
    ));
    assert_eq!(
        token_refused(&h, unknown).await,
        (
            400,
            body(
                "invalid_grant",
                "the authorization code is invalid or expired"
            )
        )
    );
}
