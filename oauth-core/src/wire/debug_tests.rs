//! Every wire type that carries a secret shows in `Debug` which secrets are present, never their values.

use super::*;
use crate::types::assert_debug;

#[test]
fn token_requests_and_references_hide_codes_verifiers_tokens_secrets_and_assertions() {
    let req: TokenRequest = parse_form(
        b"grant_type=authorization_code&code=code-value-1&code_verifier=verifier-value-2\
          &refresh_token=refresh-value-3&client_id=client-a&client_secret=secret-value-4\
          &client_assertion=assertion-value-5",
    )
    .unwrap();
    let hidden = [
        "code-value-1",
        "verifier-value-2",
        "refresh-value-3",
        "secret-value-4",
    ];
    let shown = [
        r#"code: Some("[redacted]")"#,
        r#"client_id: Some("client-a")"#,
        r#"grant_type: Some("authorization_code")"#,
        "redirect_uri: None",
    ];
    assert_debug(&req, &hidden, &shown);
    assert_debug(&req, &["assertion-value-5"], &[]);

    let form: TokenReference = parse_form(
        b"token=token-value-1&token_type_hint=refresh_token&client_id=client-a\
          &client_secret=secret-value-2&client_assertion=assertion-value-3",
    )
    .unwrap();
    let hidden = ["token-value-1", "secret-value-2", "assertion-value-3"];
    let shown = [
        r#"token: Some("[redacted]")"#,
        r#"token_type_hint: Some("refresh_token")"#,
        "client_assertion_type: None",
    ];
    assert_debug(&form, &hidden, &shown);
}

#[test]
fn responses_and_registrations_hide_tokens_and_secrets() {
    let res = TokenResponse {
        access_token: "access-value-1".into(),
        token_type: "Bearer".into(),
        expires_in: 3600,
        refresh_token: Some("refresh-value-2".into()),
        scope: "mcp:read".into(),
    };
    let shown = [r#"access_token: "[redacted]""#, r#"scope: "mcp:read""#];
    assert_debug(&res, &["access-value-1", "refresh-value-2"], &shown);

    let update: ClientRegistrationRequest = serde_json::from_str(
        r#"{"client_id": "client-a", "client_secret": "secret-value-1", "registration_access_token": "rat-value-2"}"#,
    )
    .unwrap();
    let shown = [
        r#"client_secret: Some("[redacted]")"#,
        r#"client_id: Some("client-a")"#,
    ];
    assert_debug(&update, &["secret-value-1", "rat-value-2"], &shown);

    let issued: ClientRegistrationResponse = serde_json::from_str(
        r#"{"client_id": "client-b", "client_secret": "secret-value-3", "client_id_issued_at": 1,
            "client_secret_expires_at": 0, "registration_access_token": "rat-value-4",
            "registration_client_uri": "https://as.example/register/client-b", "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic", "grant_types": [], "response_types": []}"#,
    )
    .unwrap();
    let shown = [
        r#"registration_access_token: Some("[redacted]")"#,
        r#"client_id: "client-b""#,
    ];
    assert_debug(&issued, &["secret-value-3", "rat-value-4"], &shown);
}
