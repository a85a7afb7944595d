//! The refresh grant: rotation, reuse detection revoking the family, the grace window, scope narrowing,
//! resource binding, expiry, and concurrent use.

use std::sync::Arc;
use std::time::Duration;

use oauth_core::testing::OTHER_RESOURCE;
use serde_json::json;

use crate::common::*;

async fn scoped_tokens(h: &Harness, client_id: &str) -> oauth_core::wire::TokenResponse {
    tokens(
        h,
        client_id,
        &format!("{}&scope=mcp+mcp%3Aadmin", for_resource()),
    )
    .await
}

#[tokio::test]
async fn every_use_rotates_and_the_old_token_dies() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let r0 = t0.refresh_token.clone().unwrap();
    let t1 = h
        .server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    let r1 = t1.refresh_token.clone().unwrap();
    assert_ne!(r1, r0);
    assert_ne!(t1.access_token, t0.access_token);
    assert_eq!(
        (t1.token_type.as_str(), t1.expires_in, t1.scope.as_str()),
        ("Bearer", 3600, "mcp")
    );
    let p = h
        .server
        .verify(Some(&bearer(&t1.access_token)), resource(&h))
        .unwrap();
    assert_eq!(
        p.audience(),
        oauth_core::testing::RESOURCE,
        "the resource is kept"
    );
    // The next rotation works from the new token.
    h.clock.advance(Duration::from_secs(31));
    let t2 = h
        .server
        .token(None, refresh_request(&c.client_id, &r1, ""))
        .await
        .unwrap();
    assert_ne!(t2.refresh_token.as_deref(), Some(r1.as_str()));
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let r0 = t0.refresh_token.clone().unwrap();
    let t1 = h
        .server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(31));
    assert_eq!(
        token_refused(&h, refresh_request(&c.client_id, &r0, "")).await,
        (
            400,
            body(
                "invalid_grant",
                "the refresh token was already used; every token of this grant is revoked"
            )
        )
    );
    assert_eq!(
        token_refused(
            &h,
            refresh_request(&c.client_id, t1.refresh_token.as_deref().unwrap(), "")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "the refresh token is invalid, expired or revoked"
            )
        )
    );
    for at in [&t0.access_token, &t1.access_token] {
        let rej = h
            .server
            .verify(Some(&bearer(at)), resource(&h))
            .unwrap_err();
        assert_eq!(
            (rej.status(), rej.description),
            (401, "the access token has been revoked")
        );
    }
}

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_pair() {
    let h = harness().await;
    let c = public_client(&h).await;
    let r0 = tokens(&h, &c.client_id, &for_resource())
        .await
        .refresh_token
        .unwrap();
    let first = h
        .server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(29));
    let retry = h
        .server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    assert_eq!(retry, first, "same access and refresh token");
    // The family is intact: the new refresh token works.
    h.server
        .token(
            None,
            refresh_request(&c.client_id, first.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    // The sealed response is not readable from the store: it holds no plaintext token.
    let raw = format!(
        "{:?}",
        h.store
            .refresh(&oauth_core::Secret::new(r0.as_str()).hash())
            .await
            .unwrap()
    );
    assert!(!raw.contains(first.refresh_token.as_deref().unwrap()));
}

#[tokio::test]
async fn zero_grace_makes_any_reuse_revoke() {
    let mut config = oauth_core::testing::config();
    config.refresh_grace = Duration::ZERO;
    let h = harness_with(config).await;
    let c = public_client(&h).await;
    let r0 = tokens(&h, &c.client_id, &for_resource())
        .await
        .refresh_token
        .unwrap();
    h.server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    assert_eq!(
        wire_of(
            &h.server
                .token(None, refresh_request(&c.client_id, &r0, ""))
                .await
                .unwrap_err()
        )
        .1["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn scope_may_narrow_never_widen() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = scoped_tokens(&h, &c.client_id).await;
    assert_eq!(t0.scope, "mcp mcp:admin");
    let narrowed = h
        .server
        .token(
            None,
            refresh_request(
                &c.client_id,
                t0.refresh_token.as_deref().unwrap(),
                "&scope=mcp",
            ),
        )
        .await
        .unwrap();
    assert_eq!(narrowed.scope, "mcp");
    // The refresh token keeps the original grant: the next refresh may ask for the full scope again.
    let full = h
        .server
        .token(
            None,
            refresh_request(
                &c.client_id,
                narrowed.refresh_token.as_deref().unwrap(),
                "&scope=mcp+mcp%3Aadmin",
            ),
        )
        .await
        .unwrap();
    assert_eq!(full.scope, "mcp mcp:admin");

    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    assert_eq!(
        token_refused(
            &h,
            refresh_request(
                &c.client_id,
                t0.refresh_token.as_deref().unwrap(),
                "&scope=mcp+mcp%3Aadmin",
            )
        )
        .await,
        (
            400,
            body(
                "invalid_scope",
                "the requested scope exceeds the scope originally granted"
            )
        )
    );
    // A refused refresh does not consume the token.
    h.server
        .token(
            None,
            refresh_request(&c.client_id, t0.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn resource_is_bound_to_the_grant() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    assert_eq!(
        token_refused(
            &h,
            refresh_request(
                &c.client_id,
                t0.refresh_token.as_deref().unwrap(),
                &format!("&resource={}", enc(OTHER_RESOURCE)),
            )
        )
        .await,
        (
            400,
            body(
                "invalid_target",
                "resource differs from the one the grant is for"
            )
        )
    );
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client_and_expire() {
    let h = harness().await;
    let a = public_client(&h).await;
    let b = public_client(&h).await;
    let t = tokens(&h, &a.client_id, &for_resource()).await;
    let r = t.refresh_token.clone().unwrap();
    assert_eq!(
        token_refused(&h, refresh_request(&b.client_id, &r, "")).await,
        (
            400,
            body(
                "invalid_grant",
                "the refresh token was issued to another client"
            )
        )
    );
    h.clock.advance(Duration::from_secs(30 * 24 * 3600 + 1));
    assert_eq!(
        token_refused(&h, refresh_request(&a.client_id, &r, "")).await,
        (
            400,
            body(
                "invalid_grant",
                "the refresh token is invalid, expired or revoked"
            )
        )
    );
}

#[tokio::test]
async fn clients_without_the_refresh_grant_are_unauthorized() {
    let h = harness().await;
    let c = register(
        &h,
        json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(
        token_refused(&h, refresh_request(&c.client_id, "whatever", "")).await,
        (
            400,
            body(
                "unauthorized_client",
                "the client may not use the refresh_token grant"
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_leave_one_family_intact() {
    let h = Arc::new(harness().await);
    let c = public_client(&h).await;
    let r0 = tokens(&h, &c.client_id, &for_resource())
        .await
        .refresh_token
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (h, id, r0) = (Arc::clone(&h), c.client_id.clone(), r0.clone());
        tasks.push(tokio::spawn(async move {
            h.server
                .token(None, refresh_request(&id, &r0, ""))
                .await
                .unwrap()
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "one winner; the others get its pair within the grace window"
    );
    let next = h
        .server
        .token(
            None,
            refresh_request(
                &c.client_id,
                answers[0].refresh_token.as_deref().unwrap(),
                "",
            ),
        )
        .await
        .unwrap();
    h.server
        .verify(Some(&bearer(&next.access_token)), resource(&h))
        .unwrap();
}

fn users(names: &[&str]) -> Arc<dyn oauth_core::IdentityProvider> {
    let hash = oauth_core::LocalUsers::hash_password("pw").unwrap();
    let list = names
        .iter()
        .map(|n| {
            oauth_core::LocalUser::new(*n, hash.clone()).with_email(format!("{n}@new.example.com"))
        })
        .collect();
    Arc::new(oauth_core::LocalUsers::new(list).unwrap())
}

/// An instance on the same store with other providers or configuration (what a restart with an edited users
/// file or policy looks like).
async fn restarted(
    h: &Harness,
    config: oauth_core::ServerConfig,
    providers: Vec<Arc<dyn oauth_core::IdentityProvider>>,
) -> Harness {
    let server = oauth_core::AuthServer::new(config, h.store.clone(), h.clock.clone())
        .await
        .unwrap()
        .with_providers(providers);
    Harness {
        server,
        clock: h.clock.clone(),
        store: h.store.clone(),
    }
}

#[tokio::test]
async fn refresh_rechecks_the_user_and_carries_fresh_claims() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let live = restarted(&h, oauth_core::testing::config(), vec![users(&["alice"])]).await;
    let t1 = live
        .server
        .token(
            None,
            refresh_request(&c.client_id, t0.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    let p = live
        .server
        .verify(Some(&bearer(&t1.access_token)), resource(&live))
        .unwrap();
    assert_eq!(
        p.email(),
        Some("alice@new.example.com"),
        "identity re-read from the users file"
    );
}

#[tokio::test]
async fn a_user_removed_from_the_users_file_loses_the_grant_at_the_next_refresh() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let gone = restarted(&h, oauth_core::testing::config(), vec![users(&["bob"])]).await;
    assert_eq!(
        token_refused(
            &gone,
            refresh_request(&c.client_id, t0.refresh_token.as_deref().unwrap(), "")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "the user is no longer known to the identity provider; sign in again"
            )
        )
    );
    let r = gone
        .server
        .verify(Some(&bearer(&t0.access_token)), resource(&gone))
        .unwrap_err();
    assert_eq!(r.description, "the access token has been revoked");
}

#[tokio::test]
async fn a_policy_that_no_longer_admits_the_user_ends_the_grant_at_the_next_refresh() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let mut config = oauth_core::testing::config();
    config.policy =
        oauth_core::AccessPolicy::new(vec![], vec![], vec!["example.org".into()], vec![]);
    let strict = restarted(&h, config, vec![]).await;
    assert_eq!(
        token_refused(
            &strict,
            refresh_request(&c.client_id, t0.refresh_token.as_deref().unwrap(), "")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "this user may no longer use this resource; sign in again"
            )
        )
    );
}

#[tokio::test]
async fn a_revoked_grant_stays_revoked_for_the_refresh_token_lifetime_even_if_written_back() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let rt = t0.refresh_token.clone().unwrap();
    let state = h
        .store
        .refresh(&oauth_core::Secret::new(rt.as_str()).hash())
        .await
        .unwrap();
    let Some(oauth_core::store::RefreshState::Active(rec)) = state else {
        panic!("active refresh token expected")
    };
    let grant = h.store.grant(&rec.grant_id).await.unwrap().unwrap();
    h.server
        .revoke(
            None,
            form(&format!("token={}&client_id={}", enc(&rt), c.client_id)),
        )
        .await
        .unwrap();
    // A refresh racing the revocation writes the grant back (simulated): it must still count as revoked, long after
    // every access token of it has expired.
    h.store
        .put_grant(&grant, Duration::from_secs(30 * 24 * 3600))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(7 * 24 * 3600));
    let peer = restarted(&h, oauth_core::testing::config(), vec![]).await;
    let e = peer
        .server
        .token(None, refresh_request(&c.client_id, &rt, ""))
        .await
        .unwrap_err();
    assert_eq!(wire_of(&e).1["error"], "invalid_grant");
    let introspected = peer
        .server
        .introspect(
            None,
            form(&format!("token={}&client_id={}", enc(&rt), c.client_id)),
        )
        .await
        .unwrap();
    assert!(!introspected.active, "the refresh token reads as inactive");
}
