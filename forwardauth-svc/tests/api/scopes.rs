//! Scope grants through the HTTP API: a token carries the scopes asked for that the user may hold (RFC 6749
//! §3.3), the consent page says which, a request without `scope` asks for the resource's defaults only, and a
//! user added to the group a scope needs gets it after consenting again.

use std::sync::Arc;

use actix_web::http::header;
use oauth_core::{AccessPolicy, AuthServer, EmbeddedStore, ScopeGrant, Store, SystemClock};
use serde_json::{Value, json};

use crate::common::*;

/// The API tests' configuration with `mcp:admin` reserved to the `local:admins` group; alice is in `groups`.
fn config_with(alice_groups: &[&str]) -> forwardauth_svc::config::Config {
    let mut c = config();
    let r = c.server.resources[0].clone();
    c.server.resources[0] = r
        .with_scope_grants(vec![ScopeGrant::new(
            "mcp:admin",
            AccessPolicy::new(vec![], vec![], vec![], vec!["local:admins".into()]),
        )])
        .with_scope_descriptions(vec![("mcp:admin".into(), "Delete everything".into())]);
    let alice = c.users[0].clone();
    c.users[0] = alice.with_groups(alice_groups.iter().map(|g| (*g).to_owned()).collect());
    c
}

/// The app on `store` (so that a "restart" with an edited users file keeps sessions, clients and grants).
async fn state_on(
    config: &forwardauth_svc::config::Config,
    store: Arc<dyn Store>,
) -> forwardauth_svc::AppState {
    let clock = Arc::new(SystemClock);
    let providers = forwardauth_svc::state::build_providers(config, clock.clone()).unwrap();
    let auth = AuthServer::new(
        config.server.clone(),
        store,
        oauth_core::testing::sealer(),
        clock,
    )
    .await
    .unwrap()
    .with_providers(providers);
    forwardauth_svc::AppState::with_auth(config, Arc::new(auth)).unwrap()
}

/// Approves the consent page `page` (the session `cookie`) and redeems the code: the token response.
async fn approve_and_redeem<S, B>(app: &S, page: &Answer, cookie: &str, client_id: &str) -> Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let html = page.text();
    let approve = call(
        app,
        form_post(
            "/consent",
            &format!(
                "handle={}&csrf={}&decision=approve",
                enc(&field(&html, "handle")),
                enc(&field(&html, "csrf"))
            ),
        )
        .insert_header((header::COOKIE, cookie.to_owned())),
    )
    .await;
    assert_eq!(approve.status, 302, "{}", approve.text());
    let location = url::Url::parse(approve.header("location").unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token = call(
        app,
        form_post(
            "/token",
            &format!(
                "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}&client_id={client_id}",
                enc(&code),
                enc(REDIRECT)
            ),
        ),
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.text());
    token.json()
}

/// The gate's status for a POST (any MCP call; without the body, every tool rule applies) and a GET (the SSE
/// stream, no tool) with `token`.
async fn gate_statuses<S, B>(app: &S, token: &Value) -> (u16, u16)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let post = call(
        app,
        traefik("POST", RESOURCE).insert_header((header::AUTHORIZATION, bearer.clone())),
    )
    .await;
    let get = call(
        app,
        traefik("GET", RESOURCE).insert_header((header::AUTHORIZATION, bearer)),
    )
    .await;
    (post.status, get.status)
}

#[actix_web::test]
async fn a_user_outside_the_group_gets_a_token_without_the_scope_and_after_joining_gets_it_after_consent()
 {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(Arc::new(SystemClock)).unwrap());
    let app = app_with(state_on(&config_with(&["staff"]), store.clone()).await).await;
    let client = register(&app, json!({})).await;
    let client_id = client["client_id"].as_str().unwrap();
    let wide = authorize_uri(client_id, "&scope=mcp%20mcp%3Aadmin");

    let (login, _) = log_in(&app, &wide, "alice").await;
    assert_eq!(login.status, 200, "{}", login.text());
    let html = login.page();
    assert!(
        html.contains("<code>mcp</code>")
            && html.contains("Not granted (your account may not hold them)"),
        "{html}"
    );
    assert!(
        !html.contains("Delete everything"),
        "not offered, so not described"
    );
    let cookie = session_cookie(&login);
    let token = approve_and_redeem(&app, &login, &cookie, client_id).await;
    assert_eq!(
        token["scope"], "mcp",
        "the token response says what was granted"
    );
    assert_eq!(
        gate_statuses(&app, &token).await,
        (403, 200),
        "valid, but the admin tool (any POST without the body) is refused"
    );

    // alice joins `admins` (the users file edited, the service restarted on the same store) and signs in again
    // (a session holds the identity of its sign-in).
    let app = app_with(state_on(&config_with(&["staff", "admins"]), store).await).await;
    let (page, _) = log_in(&app, &wide, "alice").await;
    assert_eq!(
        page.status, 200,
        "asked again: the wider grant needs consent"
    );
    let cookie = session_cookie(&page);
    let html = page.page();
    assert!(
        html.contains("Delete everything <span class=\"muted\">(<code>mcp:admin</code>)</span>")
            && !html.contains("Not granted"),
        "{html}"
    );
    let token = approve_and_redeem(&app, &page, &cookie, client_id).await;
    assert_eq!(token["scope"], "mcp mcp:admin");
    assert_eq!(gate_statuses(&app, &token).await, (200, 200));
}

#[actix_web::test]
async fn an_omitted_scope_gets_the_resource_defaults_only() {
    let (app, _) = app().await;
    let (_, token) = tokens(&app, "alice").await;
    assert_eq!(
        token["scope"], "mcp",
        "the required scope, not every scope the resource knows"
    );
}
