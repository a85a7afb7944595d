//! The browser steps ([`oauth_core::Browser`]): which page comes next, the session cookie, and the hostile cases
//! (forged or stale forms, a user the policy refuses, a provider that cannot start).

use std::sync::Arc;

use async_trait::async_trait;
use oauth_core::testing;
use oauth_core::upstream::UpstreamRequest;
use oauth_core::{
    AccessPolicy, Credentials, ErrorPage, IdentityProvider, LocalUser, LocalUsers, Login,
    LoginStart, Outcome, SessionCookie, Step, UpstreamError,
};

use crate::common::*;

fn users() -> Arc<dyn IdentityProvider> {
    let hash = LocalUsers::hash_password("correct horse").unwrap();
    Arc::new(LocalUsers::new(vec![LocalUser::new("alice", hash)]).unwrap())
}

async fn with_users(config: oauth_core::ServerConfig) -> Harness {
    let mut h = harness_with(config).await;
    h.server = h.server.with_providers(vec![users()]);
    h
}

fn cookie_of(step: &Step) -> String {
    match &step.cookie {
        SessionCookie::Set { value, .. } => value.clone(),
        other => panic!("expected a new cookie, got {other:?}"),
    }
}

fn error_of(step: &Step) -> &ErrorPage {
    match &step.outcome {
        Outcome::Error(page) => page,
        other => panic!("expected an error page, got {other:?}"),
    }
}

/// A web application's redirect URI: not on a loopback host, so consent to it may be remembered.
const WEB: &str = "https://app.example.com/cb";

/// A public client redirecting to [`WEB`].
async fn web_client(h: &Harness) -> String {
    register(
        h,
        serde_json::json!({
            "redirect_uris": [WEB],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Web MCP client",
        }),
    )
    .await
    .client_id
}

/// Opens an authorization for a fresh public client: the sign-in page's handle and CSRF token, and the cookie.
async fn opened(h: &Harness, cookie: Option<&str>) -> (String, String, Step) {
    let client = public_client(h).await;
    let opened = opened_for(h, cookie, &client.client_id, LOOPBACK, &for_resource()).await;
    let Outcome::SignIn(page) = &opened.2.outcome else {
        unreachable!("opened_for returns only sign-in pages")
    };
    assert!(page.password && page.providers.is_empty(), "{page:?}");
    opened
}

/// Opens an authorization for `client_id`: the sign-in page's handle and CSRF token, and the step.
async fn opened_for(
    h: &Harness,
    cookie: Option<&str>,
    client_id: &str,
    redirect_uri: &str,
    extra: &str,
) -> (String, String, Step) {
    let step = h
        .server
        .browser()
        .authorize(&authorize_query(client_id, redirect_uri, extra), cookie)
        .await;
    let Outcome::SignIn(page) = &step.outcome else {
        panic!("expected the sign-in page, got {:?}", step.outcome);
    };
    (page.prompt.handle.clone(), page.csrf.clone(), step)
}

fn sign_in_form(handle: &str, csrf: &str, password: &str) -> Vec<u8> {
    format!(
        "handle={}&csrf={}&username=alice&password={}",
        enc(handle),
        enc(csrf),
        enc(password)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_user_signs_in_consents_and_the_next_authorization_goes_straight_back() {
    let h = with_users(testing::config()).await;
    let web = web_client(&h).await;
    let (handle, csrf, step) = opened_for(&h, None, &web, WEB, &for_resource()).await;
    let anonymous = cookie_of(&step);

    // A wrong password: the page again, 401, the name kept, the session kept.
    let again = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &csrf, "wrong"),
            Some(&anonymous),
            None,
        )
        .await;
    let Outcome::SignIn(page) = &again.outcome else {
        panic!("{again:?}");
    };
    assert_eq!((page.status(), page.username.as_str()), (401, "alice"));
    assert_eq!(again.cookie, SessionCookie::Keep);

    // The right one: a new session (fixation), then the consent page.
    let signed = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &csrf, "correct horse"),
            Some(&anonymous),
            None,
        )
        .await;
    let session = cookie_of(&signed);
    assert_ne!(session, anonymous, "signing in replaces the session");
    let Outcome::Consent(consent) = &signed.outcome else {
        panic!("{signed:?}");
    };
    assert_eq!(consent.user.as_deref(), Some("alice"));
    assert!(
        consent.rememberable,
        "a web client's consent may be remembered"
    );
    let form = format!(
        "handle={}&csrf={}&decision=approve&remember=on",
        enc(&consent.prompt.handle),
        enc(&consent.csrf)
    );
    let approved = h
        .server
        .browser()
        .consent(form.as_bytes(), Some(&session))
        .await;
    let Outcome::Redirect(to) = &approved.outcome else {
        panic!("{approved:?}");
    };
    let q = query(to);
    assert!(q.contains_key("code") && q["state"] == "st-1", "{to}");

    // Remembered: the next authorization of the same client goes straight back with a code.
    let client_id = consent.prompt.client_id.clone();
    let next = h
        .server
        .browser()
        .authorize(
            &authorize_query(&client_id, WEB, &for_resource()),
            Some(&session),
        )
        .await;
    let Outcome::Redirect(to) = &next.outcome else {
        panic!("{next:?}");
    };
    assert!(query(to).contains_key("code"), "{to}");
    assert_eq!(next.cookie, SessionCookie::Keep);
}

#[tokio::test]
async fn forms_without_the_session_or_its_csrf_token_are_refused_and_change_nothing() {
    let h = with_users(testing::config()).await;
    let (handle, csrf, step) = opened(&h, None).await;
    let cookie = cookie_of(&step);
    let browser = h.server.browser();

    let forged = browser
        .sign_in(
            &sign_in_form(&handle, "forged", "correct horse"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(error_of(&forged).status, 403, "{forged:?}");
    let cookieless = browser
        .sign_in(&sign_in_form(&handle, &csrf, "correct horse"), None, None)
        .await;
    assert_eq!(error_of(&cookieless).title, "Your session has expired");
    let repeated = browser
        .sign_in(b"handle=a&handle=b&csrf=x", Some(&cookie), None)
        .await;
    assert_eq!(
        (
            error_of(&repeated).status,
            error_of(&repeated).title.as_ref()
        ),
        (400, "Invalid form")
    );
    let bad_query = browser.authorize("client_id=a&client_id=b", None).await;
    assert_eq!(error_of(&bad_query).status, 400);
    assert_eq!(
        bad_query.cookie,
        SessionCookie::Keep,
        "no session for a bad request"
    );

    // Nothing was spent: the real form still works.
    let signed = browser
        .sign_in(
            &sign_in_form(&handle, &csrf, "correct horse"),
            Some(&cookie),
            None,
        )
        .await;
    assert!(matches!(signed.outcome, Outcome::Consent(_)), "{signed:?}");
}

#[tokio::test]
async fn a_user_the_policy_refuses_gets_403_before_consent_and_nothing_is_remembered() {
    let mut config = testing::config();
    config.policy = AccessPolicy::new(vec!["local:bob".into()], vec![], vec![], vec![]);
    let h = with_users(config).await;
    let (handle, csrf, step) = opened(&h, None).await;
    let refused = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &csrf, "correct horse"),
            Some(&cookie_of(&step)),
            None,
        )
        .await;
    let page = error_of(&refused);
    assert_eq!((page.status, page.title.as_ref()), (403, "Access denied"));
    assert!(page.message.contains("alice"), "{page:?}");
    assert_eq!(
        refused.cookie,
        SessionCookie::Keep,
        "an error page sets no cookie"
    );
    assert!(
        h.server
            .pending_authorization(&handle)
            .await
            .unwrap()
            .is_none(),
        "the refusal spent the request"
    );
}

#[tokio::test]
async fn consent_is_remembered_only_once_approved() {
    let h = with_users(testing::config()).await;
    let (handle, csrf, step) = opened(&h, None).await;
    let signed = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &csrf, "correct horse"),
            Some(&cookie_of(&step)),
            None,
        )
        .await;
    let session = cookie_of(&signed);
    let Outcome::Consent(consent) = &signed.outcome else {
        panic!("{signed:?}");
    };
    // The request expires before the user approves: no code, and no consent remembered.
    h.clock
        .advance(h.server.config().pending_ttl + std::time::Duration::from_secs(1));
    let form = format!(
        "handle={}&csrf={}&decision=approve&remember=on",
        enc(&consent.prompt.handle),
        enc(&consent.csrf)
    );
    let late = h
        .server
        .browser()
        .consent(form.as_bytes(), Some(&session))
        .await;
    assert_eq!(error_of(&late).status, 400, "{late:?}");
    assert!(
        !h.server
            .has_consented("local:alice", &consent.prompt, &consent.prompt.scope)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_and_clears_the_cookie_but_not_for_a_forged_form() {
    let h = with_users(testing::config()).await;
    let (handle, csrf, step) = opened(&h, None).await;
    let signed = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &csrf, "correct horse"),
            Some(&cookie_of(&step)),
            None,
        )
        .await;
    let session = cookie_of(&signed);
    let Outcome::Consent(consent) = &signed.outcome else {
        panic!("{signed:?}");
    };
    let browser = h.server.browser();
    let forged = browser.sign_out(b"csrf=forged", Some(&session)).await;
    assert_eq!(error_of(&forged).status, 403);
    assert!(
        h.server
            .existing_session(Some(&session))
            .await
            .unwrap()
            .is_some()
    );

    let out = browser
        .sign_out(
            format!("csrf={}", enc(&consent.csrf)).as_bytes(),
            Some(&session),
        )
        .await;
    assert_eq!(
        (out.outcome, out.cookie),
        (Outcome::SignedOut, SessionCookie::Clear)
    );
    assert!(
        h.server
            .existing_session(Some(&session))
            .await
            .unwrap()
            .is_none()
    );
    // Signed out, the next authorization asks who you are again, in a new session.
    let (_, _, again) = opened(&h, Some(&session)).await;
    assert_ne!(cookie_of(&again), session);
}

/// An upstream provider that sends the browser to a fixed URL, or fails to start.
struct Upstream {
    fails: bool,
    carol_is_admin: bool,
}

#[async_trait]
impl IdentityProvider for Upstream {
    fn id(&self) -> &str {
        "corp"
    }
    fn display_name(&self) -> &str {
        "Corp SSO"
    }
    async fn start(&self, r: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        if self.fails {
            return Err(UpstreamError::Unavailable("discovery failed".into()));
        }
        let mut url = url::Url::parse("https://sso.example/authorize").unwrap();
        url.query_pairs_mut().append_pair("state", &r.state);
        Ok(LoginStart::Redirect(url))
    }
    /// The code `good` signs in `corp:carol` (group `admins` when `carol_is_admin`); any other fails.
    async fn authenticate(&self, c: Credentials<'_>) -> Result<Login, UpstreamError> {
        match c {
            Credentials::Callback { code: "good", .. } => {
                let groups = if self.carol_is_admin {
                    vec!["admins".into()]
                } else {
                    vec![]
                };
                Ok(Login::local(oauth_core::Identity {
                    subject: "corp:carol".into(),
                    username: Some("carol".into()),
                    groups,
                    ..Default::default()
                }))
            }
            _ => Err(UpstreamError::LoginFailed),
        }
    }
    async fn recheck(
        &self,
        _: &oauth_core::Identity,
        _: Option<&oauth_core::UpstreamSession>,
    ) -> Result<oauth_core::Recheck, UpstreamError> {
        Ok(oauth_core::Recheck::Gone)
    }
}

/// With one provider and no local accounts, the user approves before being sent there, and no upstream `state`
/// exists before the approval (consent before any upstream redirect).
#[tokio::test]
async fn with_one_provider_and_no_accounts_consent_comes_first_then_the_provider() {
    let mut h = harness().await;
    h.server = h.server.with_providers(vec![
        Arc::new(LocalUsers::default()) as Arc<dyn IdentityProvider>,
        Arc::new(Upstream {
            fails: false,
            carol_is_admin: false,
        }),
    ]);
    let client = public_client(&h).await;
    let step = h
        .server
        .browser()
        .authorize(
            &authorize_query(&client.client_id, LOOPBACK, &for_resource()),
            None,
        )
        .await;
    let Outcome::Consent(page) = &step.outcome else {
        panic!("consent before the provider: {step:?}");
    };
    assert_eq!(page.user, None);
    assert_eq!(page.provider.as_ref().map(|p| p.id.as_str()), Some("corp"));
    assert!(!page.rememberable, "nobody to remember it for yet");
    assert!(
        h.server
            .pending_authorization(&page.prompt.handle)
            .await
            .unwrap()
            .is_some(),
        "still waiting under the form's handle: no upstream state yet"
    );
    let cookie = match &step.cookie {
        SessionCookie::Set { value, .. } => value.clone(),
        other => panic!("the callback must find the browser that left: {other:?}"),
    };
    let approved = h
        .server
        .browser()
        .consent(&approve_form(page, "&provider=corp"), Some(&cookie))
        .await;
    let Outcome::Redirect(to) = &approved.outcome else {
        panic!("{approved:?}");
    };
    assert_eq!(to.host_str(), Some("sso.example"));
    let state = query(to)["state"].clone();

    // Back with a login: approved before, granted all of it, so straight back to the client with a code.
    let back = h
        .server
        .browser()
        .callback(&format!("code=good&state={}", enc(&state)), Some(&cookie))
        .await;
    let Outcome::Redirect(to) = &back.outcome else {
        panic!("{back:?}");
    };
    assert!(
        to.as_str().starts_with(LOOPBACK) && query(to).contains_key("code"),
        "{to}"
    );
}

#[tokio::test]
async fn denying_before_sign_in_goes_back_to_the_client_without_visiting_the_provider() {
    let mut h = harness().await;
    h.server = h.server.with_providers(vec![Arc::new(Upstream {
        fails: false,
        carol_is_admin: false,
    }) as Arc<dyn IdentityProvider>]);
    let client = public_client(&h).await;
    let step = h
        .server
        .browser()
        .authorize(
            &authorize_query(&client.client_id, LOOPBACK, &for_resource()),
            None,
        )
        .await;
    let Outcome::Consent(page) = &step.outcome else {
        panic!("{step:?}");
    };
    let form = format!(
        "handle={}&csrf={}&decision=deny&provider=corp",
        enc(&page.prompt.handle),
        enc(&page.csrf)
    );
    let denied = h
        .server
        .browser()
        .consent(form.as_bytes(), Some(&cookie_of(&step)))
        .await;
    let Outcome::Redirect(to) = &denied.outcome else {
        panic!("{denied:?}");
    };
    assert!(to.as_str().starts_with(LOOPBACK), "{to}");
    assert_eq!(query(to)["error"], "access_denied");
}

/// Approved before sign-in, but the provider's user may hold less than was approved: the consent page again, with
/// exactly what is granted.
#[tokio::test]
async fn a_grant_smaller_than_approved_before_sign_in_is_shown_again() {
    let mut h = harness_with(admin_granted_config()).await;
    h.server = h.server.with_providers(vec![Arc::new(Upstream {
        fails: false,
        carol_is_admin: false,
    }) as Arc<dyn IdentityProvider>]);
    let client = public_client(&h).await;
    let wide = format!("{}&scope=mcp+mcp%3Aadmin", for_resource());
    let step = h
        .server
        .browser()
        .authorize(&authorize_query(&client.client_id, LOOPBACK, &wide), None)
        .await;
    let Outcome::Consent(before) = &step.outcome else {
        panic!("{step:?}");
    };
    let asked: Vec<&str> = before.scopes.iter().map(|l| l.scope.as_str()).collect();
    assert_eq!(
        asked,
        ["mcp", "mcp:admin"],
        "before sign-in: what the resource offers"
    );
    let cookie = cookie_of(&step);
    let approved = h
        .server
        .browser()
        .consent(&approve_form(before, "&provider=corp"), Some(&cookie))
        .await;
    let Outcome::Redirect(to) = &approved.outcome else {
        panic!("{approved:?}");
    };
    let back = h
        .server
        .browser()
        .callback(
            &format!("code=good&state={}", enc(&query(to)["state"])),
            Some(&cookie),
        )
        .await;
    let Outcome::Consent(after) = &back.outcome else {
        panic!("asked again with the smaller grant: {back:?}");
    };
    assert_eq!(after.user.as_deref(), Some("carol"));
    let granted: Vec<&str> = after.scopes.iter().map(|l| l.scope.as_str()).collect();
    assert_eq!(granted, ["mcp"]);
    assert_eq!(after.withheld, ["mcp:admin"]);
}

#[tokio::test]
async fn a_provider_that_cannot_start_sends_the_client_temporarily_unavailable() {
    let mut h = harness().await;
    h.server = h.server.with_providers(vec![
        users(),
        Arc::new(Upstream {
            fails: true,
            carol_is_admin: false,
        }),
    ]);
    let client = public_client(&h).await;
    let (handle, csrf, step) =
        opened_for(&h, None, &client.client_id, LOOPBACK, &for_resource()).await;
    let Outcome::SignIn(page) = &step.outcome else {
        panic!("{step:?}");
    };
    assert_eq!(page.providers.len(), 1, "{page:?}");
    let cookie = cookie_of(&step);
    let unknown = format!("handle={}&csrf={}&provider=nope", enc(&handle), enc(&csrf));
    let nope = h
        .server
        .browser()
        .choose_provider(unknown.as_bytes(), Some(&cookie))
        .await;
    assert_eq!(error_of(&nope).status, 400, "an unknown provider");
    let form = format!("handle={}&csrf={}&provider=corp", enc(&handle), enc(&csrf));
    let chosen = h
        .server
        .browser()
        .choose_provider(form.as_bytes(), Some(&cookie))
        .await;
    let Outcome::Consent(consent) = &chosen.outcome else {
        panic!("the provider chosen, consent first: {chosen:?}");
    };
    assert_eq!(
        consent.provider.as_ref().map(|p| p.id.as_str()),
        Some("corp")
    );
    let approved = h
        .server
        .browser()
        .consent(&approve_form(consent, "&provider=corp"), Some(&cookie))
        .await;
    let Outcome::Redirect(to) = &approved.outcome else {
        panic!("{approved:?}");
    };
    assert_eq!(query(to)["error"], "temporarily_unavailable", "{to}");
    let again = h
        .server
        .browser()
        .consent(&approve_form(consent, "&provider=corp"), Some(&cookie))
        .await;
    assert_eq!(error_of(&again).status, 400, "the handle was spent");
}

/// Signs alice in on a fresh authorization for `client_id` and returns the consent page and the session.
async fn consent_page_for(
    h: &Harness,
    client_id: &str,
    redirect_uri: &str,
    extra: &str,
) -> (oauth_core::ConsentPage, String) {
    let (handle, csrf, step) = opened_for(h, None, client_id, redirect_uri, extra).await;
    let signed = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &csrf, "correct horse"),
            Some(&cookie_of(&step)),
            None,
        )
        .await;
    let session = cookie_of(&signed);
    match signed.outcome {
        Outcome::Consent(page) => (page, session),
        other => panic!("expected the consent page, got {other:?}"),
    }
}

fn approve_form(page: &oauth_core::ConsentPage, extra: &str) -> Vec<u8> {
    format!(
        "handle={}&csrf={}&decision=approve{extra}",
        enc(&page.prompt.handle),
        enc(&page.csrf)
    )
    .into_bytes()
}

/// Any program on the user's machine can listen on a loopback port and claim to be a client that redirects there
/// (MCP security best practices): consent to it is asked every time, whatever the form says.
#[tokio::test]
async fn consent_to_a_loopback_client_is_asked_every_time() {
    let h = with_users(testing::config()).await;
    let client = public_client(&h).await;
    let (page, session) = consent_page_for(&h, &client.client_id, LOOPBACK, &for_resource()).await;
    assert!(!page.rememberable, "{page:?}");
    let approved = h
        .server
        .browser()
        .consent(&approve_form(&page, "&remember=on"), Some(&session))
        .await;
    assert!(
        matches!(approved.outcome, Outcome::Redirect(_)),
        "{approved:?}"
    );
    let next = h
        .server
        .browser()
        .authorize(
            &authorize_query(&client.client_id, LOOPBACK, &for_resource()),
            Some(&session),
        )
        .await;
    let Outcome::Consent(again) = &next.outcome else {
        panic!("a loopback client must be asked again: {next:?}");
    };
    assert!(!again.rememberable);
    // Even a consent remembered before this rule (or by another adapter) is not used for it.
    h.server
        .remember_consent("local:alice", &again.prompt, &again.prompt.scope)
        .await
        .unwrap();
    let third = h
        .server
        .browser()
        .authorize(
            &authorize_query(&client.client_id, LOOPBACK, &for_resource()),
            Some(&session),
        )
        .await;
    assert!(matches!(third.outcome, Outcome::Consent(_)), "{third:?}");
}

/// A configuration where `mcp:admin` may be held only by the `local:admins` group, with descriptions.
fn admin_granted_config() -> oauth_core::ServerConfig {
    let mut config = testing::config();
    let r = config.resources[0].clone();
    config.resources[0] = r
        .with_scope_grants(vec![oauth_core::ScopeGrant::new(
            "mcp:admin",
            AccessPolicy::new(vec![], vec![], vec![], vec!["local:admins".into()]),
        )])
        .with_scope_descriptions(vec![
            ("mcp".into(), "Use the tools".into()),
            ("mcp:admin".into(), "Delete repositories".into()),
        ]);
    config
}

fn alice_in(groups: &[&str]) -> Arc<dyn IdentityProvider> {
    let hash = LocalUsers::hash_password("correct horse").unwrap();
    let groups = groups.iter().map(|g| (*g).to_owned()).collect();
    Arc::new(LocalUsers::new(vec![LocalUser::new("alice", hash).with_groups(groups)]).unwrap())
}

#[tokio::test]
async fn consent_lists_what_is_granted_with_descriptions_and_what_is_left_out() {
    let mut h = harness_with(admin_granted_config()).await;
    h.server = h.server.with_providers(vec![alice_in(&["staff"])]);
    let web = web_client(&h).await;
    let wide = format!("{}&scope=mcp+mcp%3Aadmin", for_resource());
    let (page, session) = consent_page_for(&h, &web, WEB, &wide).await;
    let lines: Vec<(&str, Option<&str>)> = page
        .scopes
        .iter()
        .map(|l| (l.scope.as_str(), l.description.as_deref()))
        .collect();
    assert_eq!(lines, [("mcp", Some("Use the tools"))]);
    assert_eq!(page.withheld, ["mcp:admin"]);
    assert_eq!(page.resource_name.as_deref(), Some("Example MCP"));
    let approved = h
        .server
        .browser()
        .consent(&approve_form(&page, "&remember=on"), Some(&session))
        .await;
    let Outcome::Redirect(to) = &approved.outcome else {
        panic!("{approved:?}");
    };
    let code = query(to)["code"].clone();
    let issued = h
        .server
        .token(None, code_request(&web, &code, WEB))
        .await
        .unwrap();
    assert_eq!(
        issued.scope, "mcp",
        "the token response says what was granted"
    );

    // Added to the group: asked again (the remembered consent covers `mcp` only), then granted both.
    let mut h = h;
    h.server = h
        .server
        .with_providers(vec![alice_in(&["staff", "admins"])]);
    let (page, session) = consent_page_for(&h, &web, WEB, &wide).await;
    let granted: Vec<&str> = page.scopes.iter().map(|l| l.scope.as_str()).collect();
    assert_eq!(granted, ["mcp", "mcp:admin"]);
    assert!(page.withheld.is_empty());
    let approved = h
        .server
        .browser()
        .consent(&approve_form(&page, ""), Some(&session))
        .await;
    let Outcome::Redirect(to) = &approved.outcome else {
        panic!("{approved:?}");
    };
    let issued = h
        .server
        .token(None, code_request(&web, &query(to)["code"], WEB))
        .await
        .unwrap();
    assert_eq!(issued.scope, "mcp mcp:admin");
}

#[tokio::test]
async fn a_user_who_may_hold_none_of_the_scopes_asked_for_gets_access_denied() {
    let mut h = harness_with(admin_granted_config()).await;
    h.server = h.server.with_providers(vec![alice_in(&[])]);
    let web = web_client(&h).await;
    let only_admin = format!("{}&scope=mcp%3Aadmin", for_resource());
    let (page, session) = consent_page_for(&h, &web, WEB, &only_admin).await;
    assert!(
        page.scopes.is_empty() && page.withheld == ["mcp:admin"],
        "{page:?}"
    );
    let approved = h
        .server
        .browser()
        .consent(&approve_form(&page, ""), Some(&session))
        .await;
    let Outcome::Redirect(to) = &approved.outcome else {
        panic!("{approved:?}");
    };
    let q = query(to);
    assert_eq!(q["error"], "access_denied", "{to}");
    assert!(!q.contains_key("code"));
}

/// Before sign-in the consent page lists what the resource offers of what was asked, and names the rest as not
/// offered.
#[tokio::test]
async fn before_sign_in_a_scope_the_resource_does_not_offer_is_listed_as_left_out() {
    let mut h = harness().await;
    h.server = h.server.with_providers(vec![Arc::new(Upstream {
        fails: false,
        carol_is_admin: false,
    }) as Arc<dyn IdentityProvider>]);
    let client = public_client(&h).await;
    // The second resource offers `mcp` only; `mcp:admin` is a scope of the first.
    let extra = format!(
        "&resource={}&scope=mcp+mcp%3Aadmin",
        enc(testing::OTHER_RESOURCE)
    );
    let step = h
        .server
        .browser()
        .authorize(&authorize_query(&client.client_id, LOOPBACK, &extra), None)
        .await;
    let Outcome::Consent(page) = &step.outcome else {
        panic!("{step:?}");
    };
    let offered: Vec<&str> = page.scopes.iter().map(|l| l.scope.as_str()).collect();
    assert_eq!(offered, ["mcp"]);
    assert_eq!(page.withheld, ["mcp:admin"]);
}

/// "Not you?" on the consent page: signing out with the pending authorization's handle ends the session in the
/// store and shows that same authorization's sign-in page in a new session, where someone else signs in.
#[tokio::test]
async fn not_you_signs_out_and_returns_to_the_same_authorizations_sign_in_page() {
    let h = with_users(testing::config()).await;
    let web = web_client(&h).await;
    let (consent, session) = consent_page_for(&h, &web, WEB, &for_resource()).await;
    let handle = consent.prompt.handle.clone();
    let form = format!("csrf={}&handle={}", enc(&consent.csrf), enc(&handle));

    let forged = h
        .server
        .browser()
        .sign_out(
            format!("csrf=forged&handle={}", enc(&handle)).as_bytes(),
            Some(&session),
        )
        .await;
    assert_eq!(error_of(&forged).status, 403, "{forged:?}");

    let out = h
        .server
        .browser()
        .sign_out(form.as_bytes(), Some(&session))
        .await;
    let Outcome::SignIn(page) = &out.outcome else {
        panic!("expected the sign-in page, got {out:?}");
    };
    assert_eq!(page.prompt.handle, handle, "the same authorization");
    assert_eq!((page.status(), page.username.as_str()), (200, ""));
    let fresh = cookie_of(&out);
    assert_ne!(fresh, session, "a new session");
    assert!(
        h.server
            .existing_session(Some(&session))
            .await
            .unwrap()
            .is_none(),
        "the old session ended in the store"
    );
    let anonymous = h
        .server
        .existing_session(Some(&fresh))
        .await
        .unwrap()
        .unwrap();
    assert!(anonymous.identity.is_none() && anonymous.csrf == page.csrf);

    // Someone signs in on it and gets the consent page of the same authorization.
    let signed = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &page.csrf, "correct horse"),
            Some(&fresh),
            None,
        )
        .await;
    let Outcome::Consent(again) = &signed.outcome else {
        panic!("{signed:?}");
    };
    assert_eq!(again.prompt.handle, handle);

    // Signing out of a session that is gone, or with a spent handle, ends on the signed-out page.
    let stale = h
        .server
        .browser()
        .sign_out(form.as_bytes(), Some(&session))
        .await;
    assert_eq!(
        (stale.outcome, stale.cookie),
        (Outcome::SignedOut, SessionCookie::Clear)
    );
    let signed_in = cookie_of(&signed);
    let spent = format!("csrf={}&handle=no-such-handle", enc(&again.csrf));
    let out = h
        .server
        .browser()
        .sign_out(spent.as_bytes(), Some(&signed_in))
        .await;
    assert_eq!(
        (out.outcome, out.cookie),
        (Outcome::SignedOut, SessionCookie::Clear)
    );
}

/// `GET /logout` asks: it shows who is signed in and the form's CSRF token, and changes nothing.
#[tokio::test]
async fn a_get_of_logout_asks_and_signs_nobody_out() {
    let h = with_users(testing::config()).await;
    let web = web_client(&h).await;
    let (consent, session) = consent_page_for(&h, &web, WEB, &for_resource()).await;
    let asked = h
        .server
        .browser()
        .confirm_sign_out("handle=h-1", Some(&session))
        .await;
    let Outcome::ConfirmSignOut(page) = &asked.outcome else {
        panic!("{asked:?}");
    };
    let who = page.signed_in.as_ref().unwrap();
    assert_eq!(
        (who.user.as_str(), who.csrf.as_str()),
        ("alice", consent.csrf.as_str())
    );
    assert_eq!(page.handle.as_deref(), Some("h-1"));
    assert_eq!(asked.cookie, SessionCookie::Keep);
    assert!(
        format!("{who:?}").find(&who.csrf).is_none(),
        "the CSRF token stays out of logs"
    );
    let still = h.server.existing_session(Some(&session)).await.unwrap();
    assert!(still.unwrap().identity.is_some(), "still signed in");

    for cookie in [None, Some("no-such-session")] {
        let nobody = h.server.browser().confirm_sign_out("", cookie).await;
        assert_eq!(
            nobody,
            Step::from(Outcome::ConfirmSignOut(oauth_core::SignOutPage {
                signed_in: None,
                handle: None
            }))
        );
    }
    let bad = h
        .server
        .browser()
        .confirm_sign_out("handle=a&handle=b", None)
        .await;
    assert_eq!(error_of(&bad).status, 400);
}

/// A signed-in user the access policy refuses may sign out from the 403 page ("Not you?"); right after a
/// sign-in, whose cookie the error page does not set, the page offers nothing.
#[tokio::test]
async fn the_403_page_offers_a_signed_in_user_to_sign_out() {
    let mut config = testing::config();
    config.resources[1] = config.resources[1].clone().with_policy(AccessPolicy::new(
        vec!["local:bob".into()],
        vec![],
        vec![],
        vec![],
    ));
    let h = with_users(config).await;
    let web = web_client(&h).await;
    let (consent, session) = consent_page_for(&h, &web, WEB, &for_resource()).await;
    let other = format!("&resource={}", enc(testing::OTHER_RESOURCE));
    let refused = h
        .server
        .browser()
        .authorize(&authorize_query(&web, WEB, &other), Some(&session))
        .await;
    let page = error_of(&refused);
    assert_eq!(page.status, 403, "{page:?}");
    let who = page.signed_in.as_ref().unwrap();
    assert_eq!(
        (who.user.as_str(), who.csrf.as_str()),
        ("alice", consent.csrf.as_str())
    );
    let out = h
        .server
        .browser()
        .sign_out(
            format!("csrf={}", enc(&who.csrf)).as_bytes(),
            Some(&session),
        )
        .await;
    assert_eq!(out.outcome, Outcome::SignedOut);

    let (handle, csrf, step) = opened_for(&h, None, &web, WEB, &other).await;
    let fresh = h
        .server
        .browser()
        .sign_in(
            &sign_in_form(&handle, &csrf, "correct horse"),
            Some(&cookie_of(&step)),
            None,
        )
        .await;
    let page = error_of(&fresh);
    assert_eq!((page.status, &page.signed_in), (403, &None));
}
