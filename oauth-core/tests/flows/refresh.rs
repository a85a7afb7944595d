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
async fn a_retry_within_the_grace_window_gets_the_same_refresh_token_and_a_fresh_access_token() {
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
    assert_eq!(
        retry.refresh_token, first.refresh_token,
        "the same new refresh token"
    );
    assert_ne!(
        retry.access_token, first.access_token,
        "a freshly signed access token (the first one is not kept anywhere)"
    );
    assert_eq!(
        (&retry.scope, retry.expires_in),
        (&first.scope, first.expires_in)
    );
    h.server
        .verify(Some(&bearer(&retry.access_token)), resource(&h))
        .unwrap();
    // The family is intact: the new refresh token works.
    h.server
        .token(
            None,
            refresh_request(&c.client_id, first.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    // The sealed answer is not readable from the store: the grant holds no plaintext token.
    let grant_id = r0.split('.').next().unwrap();
    let grant = h.store.grant(grant_id).await.unwrap().unwrap();
    let previous = grant.refresh.as_ref().unwrap().previous.as_ref().unwrap();
    // (the last rotation is the one just made with `first`'s token)
    assert!(
        oauth_core::Secret::new(first.refresh_token.as_deref().unwrap()).matches(&previous.token)
    );
    let raw = format!("{grant:?}{}", serde_json::to_string(&grant).unwrap());
    let next = first.refresh_token.as_deref().unwrap();
    assert!(!raw.contains(next));
    assert!(
        !raw.contains(next.rsplit('.').next().unwrap()),
        "not even its fresh part"
    );
    assert!(
        !raw.contains(r0.rsplit('.').nth(1).unwrap()),
        "nor the family secret"
    );
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
        answers
            .windows(2)
            .all(|w| w[0].refresh_token == w[1].refresh_token),
        "one winner; the others get its refresh token within the grace window"
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
    let server = oauth_core::AuthServer::new(
        config,
        h.store.clone(),
        oauth_core::testing::sealer(),
        h.clock.clone(),
    )
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
        oauth_core::AccessPolicy::new(vec![], vec![], vec!["local:example.org".into()], vec![]);
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

/// A refresh that read the grant just before a revocation deleted it cannot write it back: the store swaps only a
/// grant that is still there. So the revocation entry (held in memory by every instance) need only outlive the
/// grant's access tokens, and then leaves.
#[tokio::test]
async fn a_refresh_racing_a_revocation_cannot_write_the_grant_back_and_the_entry_lasts_as_long_as_access_tokens()
 {
    let h = harness().await;
    let c = public_client(&h).await;
    let t0 = tokens(&h, &c.client_id, &for_resource()).await;
    let rt = t0.refresh_token.clone().unwrap();
    let grant_id = rt.split('.').next().unwrap();
    let read_before = h.store.grant(grant_id).await.unwrap().unwrap();
    let generation = read_before.refresh.as_ref().unwrap().generation;
    h.server
        .revoke(
            None,
            form(&format!("token={}&client_id={}", enc(&rt), c.client_id)),
        )
        .await
        .unwrap();
    // The racing refresh's write: the next generation, swapped against the one it read.
    let mut rotated = read_before.clone();
    rotated.refresh.as_mut().unwrap().generation = generation + 1;
    assert!(
        !h.store
            .rotate_grant(&rotated, generation, Duration::from_secs(30 * 24 * 3600))
            .await
            .unwrap(),
        "a revoked grant cannot be rotated back"
    );
    assert_eq!(h.store.grant(grant_id).await.unwrap(), None);
    assert_eq!(h.store.revocations_since(0).await.unwrap().len(), 1);
    let e = h
        .server
        .token(None, refresh_request(&c.client_id, &rt, ""))
        .await
        .unwrap_err();
    assert_eq!(wire_of(&e).1["error"], "invalid_grant");
    // One access-token lifetime (and the leeway) later, the entry is gone, and the refresh token still dead.
    let config = oauth_core::testing::config();
    h.clock
        .advance(config.access_token_ttl + config.leeway + Duration::from_secs(1));
    assert!(
        h.store.revocations_since(0).await.unwrap().is_empty(),
        "the revocation entry expired with the grant's last access token"
    );
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

/// The grant id is no secret (it is the `sid` of every access token, which resource servers see). Someone who
/// knows it but holds no refresh token of the grant must not be able to make up an "old" token and get the grant
/// revoked as reused, nor to refresh with a token whose parts were altered.
#[tokio::test]
async fn made_up_or_altered_refresh_tokens_neither_refresh_nor_revoke() {
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
    h.clock.advance(Duration::from_secs(31));
    let parts: Vec<&str> = r1.split('.').collect();
    assert_eq!(parts.len(), 4, "grant.generation.family.fresh: {r1}");
    let (grant, family, fresh) = (parts[0], parts[2], parts[3]);
    let invalid = (
        400,
        body(
            "invalid_grant",
            "the refresh token is invalid, expired or revoked",
        ),
    );
    let other = oauth_core::Secret::generate();
    for forged in [
        // An "older generation" without the family secret.
        format!("{grant}.0.{}.{fresh}", other.expose()),
        // The current generation with another fresh part, and a generation from the future.
        format!("{grant}.1.{family}.{}", other.expose()),
        format!("{grant}.2.{family}.{fresh}"),
        // Not the format at all.
        format!("{grant}.1.{family}"),
        format!("{grant}.+1.{family}.{fresh}"),
        format!("{grant}..{family}.{fresh}"),
        format!("{r1}.x"),
        "garbage".to_owned(),
    ] {
        assert_eq!(
            token_refused(&h, refresh_request(&c.client_id, &forged, "")).await,
            invalid,
            "{forged}"
        );
    }
    // None of that revoked anything: the real current token still works, and so do the access tokens.
    h.server
        .verify(Some(&bearer(&t1.access_token)), resource(&h))
        .unwrap();
    h.server
        .token(None, refresh_request(&c.client_id, &r1, ""))
        .await
        .unwrap();
}

/// However often a grant is refreshed, what the store keeps of it is one record of a fixed size.
#[tokio::test]
async fn a_grant_stays_one_record_of_one_size_however_often_it_is_refreshed() {
    let h = harness().await;
    let c = public_client(&h).await;
    let mut rt = tokens(&h, &c.client_id, &for_resource())
        .await
        .refresh_token
        .unwrap();
    let grant_id = rt.split('.').next().unwrap().to_owned();
    let size = |g: &oauth_core::store::GrantRecord| serde_json::to_vec(g).unwrap().len();
    let mut previous = rt.clone();
    rt = h
        .server
        .token(None, refresh_request(&c.client_id, &rt, ""))
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    let first = size(&h.store.grant(&grant_id).await.unwrap().unwrap());
    for _ in 1..50 {
        previous = rt.clone();
        rt = h
            .server
            .token(None, refresh_request(&c.client_id, &rt, ""))
            .await
            .unwrap()
            .refresh_token
            .unwrap();
    }
    let grant = h.store.grant(&grant_id).await.unwrap().unwrap();
    assert_eq!(grant.refresh.as_ref().unwrap().generation, 50);
    // The generation's digits are the only growth: 1 → 2 digits, in the chain and in the sealed refresh token
    // (one more byte of plaintext, up to two more of base64).
    assert!(
        (first + 1..=first + 3).contains(&size(&grant)),
        "{first} → {} bytes",
        size(&grant)
    );
    assert!(first < 1536, "a grant record of {first} bytes");
    // What the grace window needs is the last rotation only, inside the record.
    let chain = grant.refresh.as_ref().unwrap();
    assert!(
        oauth_core::Secret::new(previous.as_str()).matches(&chain.previous.as_ref().unwrap().token)
    );
}

/// The flow compares the grant's own `expires_at` with the clock: a backend that still returns the record (its
/// clock behind, a TTL longer than the grant) cannot extend a refresh token's life.
#[tokio::test]
async fn a_grant_past_its_expiry_is_refused_even_if_the_store_still_returns_it() {
    let h = harness().await;
    let c = public_client(&h).await;
    let rt = tokens(&h, &c.client_id, &for_resource())
        .await
        .refresh_token
        .unwrap();
    let grant_id = rt.split('.').next().unwrap();
    let mut grant = h.store.grant(grant_id).await.unwrap().unwrap();
    grant.expires_at = oauth_core::Clock::unix(&*h.clock);
    h.store
        .put_grant(&grant, Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    assert_eq!(
        token_refused(&h, refresh_request(&c.client_id, &rt, "")).await,
        (
            400,
            body(
                "invalid_grant",
                "the refresh token is invalid, expired or revoked"
            )
        )
    );
}

/// A retry within the grace window gets the rotation's answer only while the grant stands: a revocation that
/// landed meanwhile wins even if the grant record is still there (written back by a racing refresh).
#[tokio::test]
async fn a_retry_within_the_grace_window_of_a_revoked_grant_is_refused() {
    let h = harness().await;
    let c = public_client(&h).await;
    let r0 = tokens(&h, &c.client_id, &for_resource())
        .await
        .refresh_token
        .unwrap();
    let t1 = h
        .server
        .token(None, refresh_request(&c.client_id, &r0, ""))
        .await
        .unwrap();
    let grant_id = r0.split('.').next().unwrap();
    let grant = h.store.grant(grant_id).await.unwrap().unwrap();
    h.server
        .revoke(
            None,
            form(&format!(
                "token={}&client_id={}",
                enc(t1.refresh_token.as_deref().unwrap()),
                c.client_id
            )),
        )
        .await
        .unwrap();
    h.store
        .put_grant(&grant, Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    let (status, refused) = token_refused(&h, refresh_request(&c.client_id, &r0, "")).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
}

/// `mcp:admin` only for the `local:staff` group (the fixture's alice is in it).
fn staff_admin_config() -> oauth_core::ServerConfig {
    let mut config = oauth_core::testing::config();
    let r = config.resources[0].clone();
    config.resources[0] = r.with_scope_grants(vec![oauth_core::ScopeGrant::new(
        "mcp:admin",
        oauth_core::AccessPolicy::new(vec![], vec![], vec![], vec!["local:staff".into()]),
    )]);
    config
}

#[tokio::test]
async fn a_user_who_left_the_group_a_scope_needs_loses_that_scope_at_the_next_refresh() {
    let h = harness_with(staff_admin_config()).await;
    let c = public_client(&h).await;
    let wide = format!("{}&scope=mcp+mcp%3Aadmin", for_resource());
    let t0 = tokens(&h, &c.client_id, &wide).await;
    assert_eq!(t0.scope, "mcp mcp:admin");
    // Restarted with alice no longer in `staff`.
    let left = restarted(&h, staff_admin_config(), vec![users(&["alice"])]).await;
    let t1 = left
        .server
        .token(
            None,
            refresh_request(
                &c.client_id,
                t0.refresh_token.as_deref().unwrap(),
                "&scope=mcp+mcp%3Aadmin",
            ),
        )
        .await
        .unwrap();
    assert_eq!(t1.scope, "mcp", "the response says what the token carries");
    let p = left
        .server
        .verify(Some(&bearer(&t1.access_token)), resource(&left))
        .unwrap();
    assert!(!p.scope().contains("mcp:admin"));
    // The grant itself narrowed: asking for the lost scope again is asking beyond it.
    let (status, body) = token_refused(
        &left,
        refresh_request(
            &c.client_id,
            t1.refresh_token.as_deref().unwrap(),
            "&scope=mcp%3Aadmin",
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn a_user_who_may_hold_no_scope_of_the_grant_loses_it_at_the_next_refresh() {
    let h = harness_with(staff_admin_config()).await;
    let c = public_client(&h).await;
    let only_admin = format!("{}&scope=mcp%3Aadmin", for_resource());
    let t0 = tokens(&h, &c.client_id, &only_admin).await;
    assert_eq!(t0.scope, "mcp:admin");
    let left = restarted(&h, staff_admin_config(), vec![users(&["alice"])]).await;
    assert_eq!(
        token_refused(
            &left,
            refresh_request(&c.client_id, t0.refresh_token.as_deref().unwrap(), "")
        )
        .await,
        (
            400,
            body(
                "invalid_grant",
                "this user may no longer hold any scope of this grant; sign in again"
            )
        )
    );
}
