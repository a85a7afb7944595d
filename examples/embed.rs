//! Embedding `oauth-core` without any web framework: one complete OAuth 2.1 flow, in process.
//!
//! Each call below is what an HTTP adapter does for one endpoint. The example opens the default embedded store (a
//! redb file, here in a temporary directory), starts an [`AuthServer`], registers a public client (RFC 7591), runs
//! the authorization-code flow with PKCE S256 through the browser steps a local user takes (sign-in, consent; and a
//! forged form, refused), redeems the code, rotates the refresh token once, and verifies the access token as the
//! forward-auth gate would. Nothing external is needed (no Redis, no identity provider). Tokens and secrets are
//! never printed, only their lengths.
//!
//! Run with `cargo run -p examples --example embed`.

use std::collections::HashMap;
use std::sync::Arc;

use oauth_core::wire::parse_form;
use oauth_core::{AuthServer, Clock, EmbeddedStore, IdentityProvider, LocalUser, LocalUsers};
use oauth_core::{ForwardedHeaders, GateInput, GateOutcome, HeaderField};
use oauth_core::{KeyEncryptionKey, Sealer};
use oauth_core::{Outcome, ResourceConfig, ServerConfig, SessionCookie, SystemClock, pkce};

const ISSUER: &str = "http://127.0.0.1:8080";
const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The server: the embedded store, the real clock, one MCP server (resource) that requires scope `mcp`.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("oauth.redb");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(EmbeddedStore::open(&path, Arc::clone(&clock))?);
    let resource = ResourceConfig::new(RESOURCE, vec!["mcp".into()]).require(vec!["mcp".into()]);
    let hash = LocalUsers::hash_password("wonderland")?;
    let users: Arc<dyn IdentityProvider> =
        Arc::new(LocalUsers::new(vec![LocalUser::new("alice", hash)])?);
    // The key that seals the secrets the store keeps (signing keys, upstream tokens). A real embedder keeps it
    // apart from the store and passes the same one at every start; this store lives only as long as the example.
    let sealer = Sealer::new(KeyEncryptionKey::generate());
    let server = AuthServer::new(
        ServerConfig::new(ISSUER, vec![resource]),
        store,
        sealer,
        clock,
    )
    .await?
    .with_providers(vec![users]);
    println!(
        "1. server started: issuer {ISSUER}, store {}",
        path.display()
    );

    // 2. Dynamic client registration (POST /register): a public client with a loopback redirect URI.
    let body = format!(
        r#"{{"redirect_uris":["{REDIRECT}"],"token_endpoint_auth_method":"none",
            "grant_types":["authorization_code","refresh_token"],"client_name":"embed example"}}"#
    );
    let client_id = server.register(body.as_bytes(), None).await?.client_id;
    println!("2. client registered: client_id {client_id} (public, no secret)");

    // 3. GET /authorize with PKCE S256: the browser steps are the engine's too. Each returns a `Step`: the page to
    //    show (or a redirect) and what to do with the session cookie. A user logs in with a password from the
    //    built-in argon2id directory.
    let verifier = "a-pkce-verifier-of-43-to-128-characters-kept-by-the-client";
    let query = format!(
        "response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&scope=mcp&state=xyz\
         &code_challenge={}&code_challenge_method=S256&resource={RESOURCE}",
        pkce::s256(verifier)
    );
    let step = server.browser().authorize(&query, None).await;
    let (Outcome::SignIn(page), SessionCookie::Set { value: cookie, .. }) =
        (step.outcome, step.cookie)
    else {
        return Err("expected the sign-in page and a new session".into());
    };
    let (scope, handle, csrf) = (&page.prompt.scope, &page.prompt.handle, &page.csrf);
    println!(
        "3. sign-in page: scope `{scope}`, password form: {}",
        page.password
    );

    // 4. The sign-in form, then the consent form: the redirect carries the code. A form without the session's
    //    CSRF token is refused, and nothing is spent.
    let forged = format!("handle={handle}&csrf=forged&username=alice&password=wonderland");
    let refused = server
        .browser()
        .sign_in(forged.as_bytes(), Some(&cookie), None)
        .await;
    if let Outcome::Error(e) = &refused.outcome {
        println!("4. a forged form: {} {}", e.status, e.title);
    }
    let form = format!("handle={handle}&csrf={csrf}&username=alice&password=wonderland");
    let step = server
        .browser()
        .sign_in(form.as_bytes(), Some(&cookie), None)
        .await;
    let (Outcome::Consent(consent), SessionCookie::Set { value: cookie, .. }) =
        (step.outcome, step.cookie)
    else {
        return Err("expected the consent page and a new session after the login".into());
    };
    let form = format!(
        "handle={}&csrf={}&decision=approve",
        consent.prompt.handle, consent.csrf
    );
    let Outcome::Redirect(redirect) = server
        .browser()
        .consent(form.as_bytes(), Some(&cookie))
        .await
        .outcome
    else {
        return Err("expected the redirect back to the client".into());
    };
    let params: HashMap<_, _> = redirect.query_pairs().into_owned().collect();
    let code = params.get("code").ok_or("the redirect carries no code")?;
    let to = redirect.as_str().split('?').next().unwrap_or_default();
    let param = |name: &str| params.get(name).map_or("", String::as_str);
    let (n, state, iss, user) = (
        code.len(),
        param("state"),
        param("iss"),
        consent.user.as_deref().unwrap_or("someone"),
    );
    println!(
        "   {user} approved: redirect to {to} with code ({n} chars), state {state}, iss {iss}"
    );

    // 5. POST /token: the code and the PKCE verifier buy an access JWT (RFC 9068) and a refresh token.
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}\
         &code_verifier={verifier}&client_id={client_id}"
    );
    let tokens = server.token(None, parse_form(form.as_bytes())?).await?;
    let refresh = tokens.refresh_token.ok_or("no refresh token issued")?;
    let (access, ttl, n) = (tokens.access_token.len(), tokens.expires_in, refresh.len());
    println!("5. tokens: access JWT ({access} chars, {ttl}s), refresh token ({n} chars)");

    // 6. POST /token with the refresh token: rotated, the old one is spent.
    let form = format!("grant_type=refresh_token&refresh_token={refresh}&client_id={client_id}");
    let rotated = server.token(None, parse_form(form.as_bytes())?).await?;
    let renewed = rotated.refresh_token.is_some_and(|r| r != refresh);
    println!("6. refreshed: new access JWT, new refresh token: {renewed}");

    // 7. The forward-auth gate: one call with the headers the proxy sent (here as nginx's auth_request sends
    //    them) decides everything: the request's URL read strictly, the discovery pass, the resource, Origin,
    //    the token, the access policy and the per-tool scopes.
    let header = format!("Bearer {}", rotated.access_token);
    fn input(authorization: Option<&[u8]>) -> GateInput<'_> {
        GateInput {
            forwarded: ForwardedHeaders {
                original_url: HeaderField::One(b"http://127.0.0.1:8080/mcp/tools"),
                original_method: HeaderField::One(b"POST"),
                ..ForwardedHeaders::default()
            },
            from_trusted_proxy: true,
            authorization: HeaderField::from_option(authorization),
            ..GateInput::default()
        }
    }
    match server.gate(&input(Some(header.as_bytes()))).await.outcome {
        GateOutcome::Admit(who) => {
            let (sub, client, scope) = (who.subject(), who.client_id(), who.scope());
            println!("7. admitted: sub {sub}, client {client}, scope `{scope}`");
        }
        other => return Err(format!("the gate did not admit the token: {other:?}").into()),
    }
    if let GateOutcome::Reject(no) = server.gate(&input(None)).await.outcome {
        println!(
            "   without a token: {} {}",
            no.status(),
            no.www_authenticate()
        );
    }
    Ok(())
}
