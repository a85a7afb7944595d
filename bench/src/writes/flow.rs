//! The OAuth flow run in process, through the engine's public API, on the store the service will then open: a
//! public client, grants with their refresh tokens, and a logged-in browser session with remembered consent.
//! Going through `AuthServer` rather than HTTP costs no password check per grant and does not depend on the login
//! pages; what the service later does with these grants is what is measured.

use bench::Error;
use oauth_core::wire::{AuthorizationRequest, TokenRequest};
use oauth_core::{AuthServer, Identity, Login};

/// Where the prepared client's codes go (nothing listens there: codes are read from the redirect). A web
/// application's address, not a loopback one: consent to a loopback client is never remembered, and the mixed
/// load runs authorizations on remembered consent.
pub const REDIRECT: &str = "https://app.example/callback";
/// The PKCE verifier of every authorization (RFC 7636 appendix B's); each code is still single use.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// The local user every grant belongs to (the service gets a users file with it, so that a refresh re-checks
/// the user as it does in production).
pub const USER: &str = "bench";

/// A public client that may use the code and refresh grants.
pub async fn client(auth: &AuthServer) -> Result<String, Error> {
    let body = serde_json::json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "bench-writes",
    });
    let registered = auth.register(body.to_string().as_bytes(), None).await?;
    Ok(registered.client_id)
}

pub fn identity() -> Identity {
    Identity {
        subject: format!("local:{USER}"),
        username: Some(USER.to_owned()),
        ..Identity::default()
    }
}

/// The authorization request the service's `/authorize` gets in the mixed load, as the engine takes it.
fn authorization(client_id: &str, resource: &str) -> AuthorizationRequest {
    let mut req = AuthorizationRequest::default();
    req.response_type = Some("code".into());
    req.client_id = Some(client_id.to_owned());
    req.redirect_uri = Some(REDIRECT.to_owned());
    req.scope = Some("mcp".into());
    req.code_challenge = Some(oauth_core::pkce::s256(VERIFIER));
    req.code_challenge_method = Some("S256".into());
    req.resource = Some(resource.to_owned());
    req
}

/// `n` grants of `client_id` (authorize, approve as [`USER`], exchange the code); their refresh tokens.
pub async fn grants(
    auth: &AuthServer,
    client_id: &str,
    resource: &str,
    n: usize,
) -> Result<Vec<String>, Error> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let prompt = auth.authorize(authorization(client_id, resource)).await?;
        let to = auth.approve(&prompt.handle, identity()).await?;
        let code = to
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .ok_or("no code in the redirect")?;
        let mut req = TokenRequest::default();
        req.grant_type = Some("authorization_code".into());
        req.code = Some(code);
        req.redirect_uri = Some(REDIRECT.to_owned());
        req.code_verifier = Some(VERIFIER.to_owned());
        req.client.client_id = Some(client_id.to_owned());
        req.resource = Some(resource.to_owned());
        let issued = auth.token(None, req).await?;
        tokens.push(issued.refresh_token.ok_or("no refresh token issued")?);
    }
    Ok(tokens)
}

/// A browser session logged in as [`USER`] whose consent to `client_id` and `resource` is remembered: with its
/// cookie, `GET /authorize` answers 302 with a code at once. Returns the cookie's value.
pub async fn session(auth: &AuthServer, client_id: &str, resource: &str) -> Result<String, Error> {
    let anonymous = auth.browser_session(None).await?;
    let session = auth.log_in(&anonymous, Login::local(identity())).await?;
    let prompt = auth.authorize(authorization(client_id, resource)).await?;
    auth.remember_consent(&identity().subject, &prompt, &prompt.scope)
        .await?;
    Ok(session.id)
}

/// The query of [`authorization`], for the service's `/authorize`.
pub fn authorize_target(client_id: &str, resource: &str) -> String {
    use bench::enc;
    format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=mcp&code_challenge={}&code_challenge_method=S256&resource={}",
        enc(client_id),
        enc(REDIRECT),
        oauth_core::pkce::s256(VERIFIER),
        enc(resource)
    )
}
