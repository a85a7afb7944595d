//! Browser sessions (fixation-safe login, CSRF) and remembered consent.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn login_rotates_the_session_and_its_csrf_token() {
    let h = harness().await;
    let anon = h.server.browser_session(None).await.unwrap();
    assert!(anon.is_new && anon.identity.is_none());
    let same = h.server.browser_session(Some(&anon.id)).await.unwrap();
    assert!(!same.is_new);
    assert_eq!(same.csrf, anon.csrf);
    assert!(same.csrf_matches(&anon.csrf));
    assert!(!same.csrf_matches("forged"));
    let logged = h
        .server
        .log_in(&same, oauth_core::Login::local(alice()))
        .await
        .unwrap();
    assert_ne!(
        logged.id, anon.id,
        "a new session id after login (fixation)"
    );
    assert_ne!(logged.csrf, anon.csrf);
    assert_eq!(
        h.server.existing_session(Some(&anon.id)).await.unwrap(),
        None,
        "the pre-login session is gone"
    );
    let back = h
        .server
        .existing_session(Some(&logged.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.identity, Some(alice()));
    h.server.log_out(&back).await.unwrap();
    assert_eq!(
        h.server.existing_session(Some(&logged.id)).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn sessions_expire_and_unknown_cookies_start_fresh() {
    let h = harness().await;
    let s = h
        .server
        .log_in(
            &h.server.browser_session(None).await.unwrap(),
            oauth_core::Login::local(alice()),
        )
        .await
        .unwrap();
    assert_eq!(
        h.server.existing_session(Some("made-up")).await.unwrap(),
        None
    );
    assert!(
        h.server
            .browser_session(Some("made-up"))
            .await
            .unwrap()
            .is_new
    );
    h.clock.advance(Duration::from_secs(12 * 3600 + 1));
    assert_eq!(h.server.existing_session(Some(&s.id)).await.unwrap(), None);
}

#[tokio::test]
async fn consent_covers_only_what_was_consented() {
    let h = harness().await;
    let c = public_client(&h).await;
    let narrow = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    assert!(
        !h.server
            .has_consented("local:alice", &narrow, &narrow.scope)
            .await
            .unwrap()
    );
    h.server
        .remember_consent("local:alice", &narrow, &narrow.scope)
        .await
        .unwrap();
    assert!(
        h.server
            .has_consented("local:alice", &narrow, &narrow.scope)
            .await
            .unwrap()
    );
    assert!(
        !h.server
            .has_consented("local:bob", &narrow, &narrow.scope)
            .await
            .unwrap(),
        "per user"
    );
    let wider = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &format!("{}&scope=mcp+mcp%3Aadmin", for_resource()),
        )))
        .await
        .unwrap();
    assert!(
        !h.server
            .has_consented("local:alice", &wider, &wider.scope)
            .await
            .unwrap(),
        "more scope needs consent again"
    );
    let elsewhere = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &format!("&resource={}", enc(oauth_core::testing::OTHER_RESOURCE)),
        )))
        .await
        .unwrap();
    assert!(
        !h.server
            .has_consented("local:alice", &elsewhere, &elsewhere.scope)
            .await
            .unwrap(),
        "another resource needs consent again"
    );
    let other_client = public_client(&h).await;
    let p = h
        .server
        .authorize(form(&authorize_query(
            &other_client.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    assert!(
        !h.server
            .has_consented("local:alice", &p, &p.scope)
            .await
            .unwrap(),
        "per client"
    );
    h.server
        .remember_consent("local:alice", &wider, &wider.scope)
        .await
        .unwrap();
    assert!(
        h.server
            .has_consented("local:alice", &narrow, &narrow.scope)
            .await
            .unwrap()
            && h.server
                .has_consented("local:alice", &wider, &wider.scope)
                .await
                .unwrap()
    );
}

/// Anyone can open an authorization request and get a session; until someone logs in it lives only as long as a
/// pending authorization, so anonymous visits cost the store minutes of state, not hours.
#[tokio::test]
async fn an_anonymous_session_lives_as_long_as_a_pending_authorization_and_a_logged_in_one_for_the_session_time()
 {
    let h = harness().await;
    let anonymous = h.server.browser_session(None).await.unwrap();
    assert_eq!(
        anonymous.expires_at,
        oauth_core::Clock::unix(h.clock.as_ref()) + 600
    );
    let logged = h
        .server
        .log_in(
            &h.server.browser_session(None).await.unwrap(),
            oauth_core::Login::local(alice()),
        )
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(600));
    assert_eq!(
        h.server
            .existing_session(Some(&anonymous.id))
            .await
            .unwrap(),
        None,
        "the anonymous session ended with its pending authorization's lifetime"
    );
    assert!(
        h.server
            .existing_session(Some(&logged.id))
            .await
            .unwrap()
            .is_some(),
        "the logged-in one lasts"
    );
    assert_eq!(
        h.store.purge_expired().await.unwrap(),
        1,
        "and the store drops the anonymous record"
    );
}
