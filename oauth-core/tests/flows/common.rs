//! Shared fixtures: a server on an in-memory embedded store with a fixed clock, and helpers that walk the flow.

use std::collections::HashMap;
use std::sync::Arc;

use oauth_core::testing::{self, FixedClock};
use oauth_core::wire::{self, ClientRegistrationResponse, TokenRequest, TokenResponse};
use oauth_core::{AuthServer, AuthorizeError, EmbeddedStore, Error, Identity, ServerConfig, Store};
use serde_json::Value;

pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kaNYgp2zNo1rQa2eyjGa3JiObuEflVasHbR2";
pub const LOOPBACK: &str = "http://127.0.0.1/callback";

pub struct Harness {
    pub server: AuthServer,
    pub clock: Arc<FixedClock>,
    pub store: Arc<dyn Store>,
}

pub async fn harness() -> Harness {
    harness_with(testing::config()).await
}

pub async fn harness_with(config: ServerConfig) -> Harness {
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let server = AuthServer::new(
        config,
        store.clone(),
        oauth_core::testing::sealer(),
        clock.clone(),
    )
    .await
    .unwrap();
    Harness {
        server,
        clock,
        store,
    }
}

pub fn alice() -> Identity {
    Identity {
        subject: "local:alice".into(),
        username: Some("alice".into()),
        email: Some("alice@example.com".into()),
        name: Some("Alice".into()),
        groups: vec!["staff".into()],
    }
}

pub fn form<T: serde::de::DeserializeOwned>(s: &str) -> T {
    wire::parse_form(s.as_bytes()).unwrap()
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What the wire shows for an error: status and JSON body.
pub fn wire_of(e: &Error) -> (u16, Value) {
    let o = e.to_oauth();
    (o.status(), serde_json::to_value(o.to_response()).unwrap())
}

/// The status and body of a token request the server refuses (no client authentication header).
pub async fn token_refused(h: &Harness, req: TokenRequest) -> (u16, Value) {
    wire_of(&h.server.token(None, req).await.unwrap_err())
}

pub fn body(code: &str, description: &str) -> Value {
    serde_json::json!({ "error": code, "error_description": description })
}

pub fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The redirect an authorize error produced, as its query parameters.
pub fn redirected(e: AuthorizeError) -> HashMap<String, String> {
    match e {
        AuthorizeError::Redirect { to, .. } => query(&to),
        other => panic!("expected a redirect, got {other:?}"),
    }
}

/// The rendered (non-redirect) error.
pub fn rendered(e: AuthorizeError) -> (u16, Value) {
    match e {
        AuthorizeError::Render(o) => (o.status(), serde_json::to_value(o.to_response()).unwrap()),
        other => panic!("expected a rendered error, got {other:?}"),
    }
}

pub async fn register(h: &Harness, metadata: Value) -> ClientRegistrationResponse {
    h.server
        .register(metadata.to_string().as_bytes(), None)
        .await
        .unwrap()
}

/// A public client with a loopback redirect and both grants (as MCP clients register).
pub async fn public_client(h: &Harness) -> ClientRegistrationResponse {
    register(
        h,
        serde_json::json!({
            "redirect_uris": [LOOPBACK],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Test MCP client",
        }),
    )
    .await
}

/// A confidential client (client_secret_basic) with both grants.
pub async fn secret_client(h: &Harness) -> ClientRegistrationResponse {
    register(
        h,
        serde_json::json!({
            "redirect_uris": ["https://app.example.com/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await
}

pub fn authorize_query(client_id: &str, redirect_uri: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=st-1{}",
        enc(client_id),
        enc(redirect_uri),
        oauth_core::pkce::s256(VERIFIER),
        extra
    )
}

/// Runs authorize + approve, returning the code.
pub async fn code_for(h: &Harness, client_id: &str, redirect_uri: &str, extra: &str) -> String {
    let prompt = h
        .server
        .authorize(form(&authorize_query(client_id, redirect_uri, extra)))
        .await
        .unwrap();
    let url = h.server.approve(&prompt.handle, alice()).await.unwrap();
    query(&url).remove("code").unwrap()
}

pub fn code_request(client_id: &str, code: &str, redirect_uri: &str) -> TokenRequest {
    form(&format!(
        "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={VERIFIER}",
        enc(client_id),
        enc(code),
        enc(redirect_uri)
    ))
}

pub fn refresh_request(client_id: &str, refresh_token: &str, extra: &str) -> TokenRequest {
    form(&format!(
        "grant_type=refresh_token&client_id={}&refresh_token={}{extra}",
        enc(client_id),
        enc(refresh_token)
    ))
}

/// The whole flow for a public client: tokens for `resource` (default: the single-resource rule does not apply
/// with two resources, so `extra` names it).
pub async fn tokens(h: &Harness, client_id: &str, extra: &str) -> TokenResponse {
    let code = code_for(h, client_id, LOOPBACK, extra).await;
    h.server
        .token(None, code_request(client_id, &code, LOOPBACK))
        .await
        .unwrap()
}

pub fn for_resource() -> String {
    format!("&resource={}", enc(testing::RESOURCE))
}

pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

pub fn resource(h: &Harness) -> &oauth_core::ResourceConfig {
    h.server.resource_for_url(testing::RESOURCE).unwrap()
}

pub fn other_resource(h: &Harness) -> &oauth_core::ResourceConfig {
    h.server.resource_for_url(testing::OTHER_RESOURCE).unwrap()
}

/// The gate's verdict on a `POST` to [`testing::RESOURCE`] with this `Authorization`, from a trusted proxy.
pub async fn gate_post(h: &Harness, authorization: &str) -> oauth_core::GateVerdict {
    use oauth_core::{ForwardedHeaders, GateInput, HeaderField};
    let url = testing::RESOURCE.as_bytes();
    let input = GateInput {
        forwarded: ForwardedHeaders {
            original_url: HeaderField::One(url),
            original_method: HeaderField::One(b"POST"),
            ..ForwardedHeaders::default()
        },
        from_trusted_proxy: true,
        authorization: HeaderField::One(authorization.as_bytes()),
        ..GateInput::default()
    };
    h.server.gate(&input).await
}
