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

/// Opens an authorization for a fresh public client: the sign-in page's handle and CSRF token, and the cookie.
async fn opened(h: &Harness, cookie: Option<&str>) -> (String, String, Step) {
    let client = public_client(h).await;
    let step = h
        .server
        .browser()
        .authorize(
            &authorize_query(&client.client_id, LOOPBACK, &for_resource()),
            cookie,
        )
        .await;
    let Outcome::SignIn(page) = &step.outcome else {
        panic!("expected the sign-in page, got {:?}", step.outcome);
    };
    assert!(page.password && page.providers.is_empty(), "{page:?}");
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
    let (handle, csrf, step) = opened(&h, None).await;
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
    assert_eq!(consent.user, "alice");
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
            &authorize_query(&client_id, LOOPBACK, &for_resource()),
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
    config.policy = AccessPolicy::new(vec!["bob".into()], vec![], vec![], vec![]);
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
            .has_consented("local:alice", &consent.prompt)
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
    async fn authenticate(&self, _: Credentials<'_>) -> Result<Login, UpstreamError> {
        Err(UpstreamError::LoginFailed)
    }
    async fn recheck(
        &self,
        _: &oauth_core::Identity,
        _: Option<&oauth_core::UpstreamSession>,
    ) -> Result<oauth_core::Recheck, UpstreamError> {
        Ok(oauth_core::Recheck::Gone)
    }
}

#[tokio::test]
async fn with_one_provider_and_no_accounts_the_browser_goes_straight_there() {
    let mut h = harness().await;
    h.server = h.server.with_providers(vec![
        Arc::new(LocalUsers::default()) as Arc<dyn IdentityProvider>,
        Arc::new(Upstream { fails: false }),
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
    let Outcome::Redirect(to) = &step.outcome else {
        panic!("{step:?}");
    };
    assert_eq!(to.host_str(), Some("sso.example"));
    assert!(
        matches!(step.cookie, SessionCookie::Set { .. }),
        "the callback must find the browser that left"
    );
}

#[tokio::test]
async fn a_provider_that_cannot_start_sends_the_client_temporarily_unavailable() {
    let mut h = harness().await;
    h.server = h
        .server
        .with_providers(vec![users(), Arc::new(Upstream { fails: true })]);
    let (handle, csrf, step) = {
        let client = public_client(&h).await;
        let step = h
            .server
            .browser()
            .authorize(
                &authorize_query(&client.client_id, LOOPBACK, &for_resource()),
                None,
            )
            .await;
        let Outcome::SignIn(page) = &step.outcome else {
            panic!("{step:?}");
        };
        assert_eq!(page.providers.len(), 1, "{page:?}");
        assert!(page.password);
        (page.prompt.handle.clone(), page.csrf.clone(), step)
    };
    let form = format!("handle={}&csrf={}&provider=corp", enc(&handle), enc(&csrf));
    let chosen = h
        .server
        .browser()
        .choose_provider(form.as_bytes(), Some(&cookie_of(&step)))
        .await;
    let Outcome::Redirect(to) = &chosen.outcome else {
        panic!("{chosen:?}");
    };
    assert_eq!(query(to)["error"], "temporarily_unavailable", "{to}");
    let unknown = format!("handle={}&csrf={}&provider=nope", enc(&handle), enc(&csrf));
    let step2 = h
        .server
        .browser()
        .choose_provider(unknown.as_bytes(), Some(&cookie_of(&step)))
        .await;
    assert_eq!(
        error_of(&step2).status,
        400,
        "the handle was spent or the provider is unknown"
    );
}
