//! The operator's facet (`AuthServer::admin`): deleting a client with its tokens, revocation by user and by
//! client, keys, and moving a store's contents to another store.

use oauth_core::testing::{self, FixedClock};
use oauth_core::wire::TokenResponse;
use oauth_core::{AuthServer, Identity, StoreExport, StoreSettings, StoreTransfer};

use crate::common::*;

/// A second engine on the harness's store: it learns of the first one's revocations only by syncing.
async fn peer(h: &Harness) -> AuthServer {
    AuthServer::new(
        testing::config(),
        h.store.clone(),
        oauth_core::testing::sealer(),
        h.clock.clone(),
    )
    .await
    .unwrap()
}

fn bob() -> Identity {
    Identity {
        subject: "local:bob".into(),
        username: Some("bob".into()),
        email: None,
        name: None,
        groups: Vec::new(),
    }
}

/// The whole flow for a public client, with `who` approving.
async fn tokens_of(h: &Harness, client_id: &str, who: Identity) -> TokenResponse {
    let prompt = h
        .server
        .authorize(form(&authorize_query(client_id, LOOPBACK, &for_resource())))
        .await
        .unwrap();
    let url = h.server.approve(&prompt.handle, who).await.unwrap();
    let code = query(&url).remove("code").unwrap();
    h.server
        .token(None, code_request(client_id, &code, LOOPBACK))
        .await
        .unwrap()
}

fn rejection(server: &AuthServer, h: &Harness, access_token: &str) -> String {
    server
        .verify(Some(&bearer(access_token)), resource(h))
        .unwrap_err()
        .description
        .to_string()
}

#[tokio::test]
async fn deleting_a_client_revokes_its_tokens_everywhere_and_removes_it() {
    let h = harness().await;
    let other = peer(&h).await;
    let c = public_client(&h).await;
    let kept = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    let t_kept = tokens(&h, &kept.client_id, &for_resource()).await;
    other
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .expect("valid before the deletion");

    assert_eq!(
        h.server.admin().delete_client(&c.client_id).await.unwrap(),
        Some(1),
        "one grant revoked"
    );
    assert!(
        h.server
            .admin()
            .client(&c.client_id)
            .await
            .unwrap()
            .is_none()
    );
    let ids: Vec<String> = h
        .server
        .admin()
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, [kept.client_id.as_str()]);

    // The refresh token died with the grant.
    let refused = h
        .server
        .token(
            None,
            refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap_err();
    assert_eq!(wire_of(&refused).1["error"], "invalid_client");
    // The deleting instance refuses the access token at once, another one after its sync.
    assert_eq!(
        rejection(&h.server, &h, &t.access_token),
        "the access token has been revoked"
    );
    other
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .expect("the peer has not synced yet");
    other.sync().await.unwrap();
    assert_eq!(
        rejection(&other, &h, &t.access_token),
        "the access token has been revoked"
    );
    // The other client's tokens are untouched.
    other
        .verify(Some(&bearer(&t_kept.access_token)), resource(&h))
        .unwrap();

    assert_eq!(
        h.server.admin().delete_client(&c.client_id).await.unwrap(),
        None,
        "a client that is gone is reported, not deleted twice"
    );
}

#[tokio::test]
async fn revocation_by_user_takes_only_that_users_grants_and_by_client_keeps_the_client() {
    let h = harness().await;
    let a = public_client(&h).await;
    let b = public_client(&h).await;
    let alice_a = tokens_of(&h, &a.client_id, alice()).await;
    let alice_b = tokens_of(&h, &b.client_id, alice()).await;
    let bob_a = tokens_of(&h, &a.client_id, bob()).await;

    assert_eq!(
        h.server.admin().revoke_user("local:alice").await.unwrap(),
        2
    );
    for t in [&alice_a, &alice_b] {
        assert_eq!(
            rejection(&h.server, &h, &t.access_token),
            "the access token has been revoked"
        );
    }
    let principal = h
        .server
        .verify(Some(&bearer(&bob_a.access_token)), resource(&h))
        .unwrap();
    assert_eq!(principal.subject(), "local:bob");
    assert_eq!(
        h.server.admin().revoke_user("local:alice").await.unwrap(),
        0,
        "nothing left to revoke"
    );

    assert_eq!(
        h.server.admin().revoke_client(&a.client_id).await.unwrap(),
        1
    );
    assert_eq!(
        rejection(&h.server, &h, &bob_a.access_token),
        "the access token has been revoked"
    );
    assert!(
        h.server
            .admin()
            .client(&a.client_id)
            .await
            .unwrap()
            .is_some(),
        "revoking a client's tokens keeps its registration"
    );
}

#[tokio::test]
async fn keys_are_listed_without_private_material_and_rotation_adds_the_signer() {
    let h = harness().await;
    let before = h.server.admin().keys().await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].retired_at, None);
    h.clock.advance(std::time::Duration::from_secs(10));
    let kid = h.server.admin().rotate_keys().await.unwrap();
    let after = h.server.admin().keys().await.unwrap();
    let kids: Vec<&str> = after.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, [before[0].kid.as_str(), kid.as_str()], "oldest first");
    assert!(after[0].retired_at.is_some(), "the old key is retired");
    assert_eq!(after[1].retired_at, None);
    let json = serde_json::to_string(&after).unwrap();
    assert!(
        !json.contains("private") && !json.contains("\"d\""),
        "{json}"
    );
}

#[tokio::test]
async fn export_then_import_moves_clients_keys_and_revocations() {
    let h = harness().await;
    let gone = public_client(&h).await;
    let stays = public_client(&h).await;
    let revoked = tokens(&h, &gone.client_id, &for_resource()).await;
    let live = tokens(&h, &stays.client_id, &for_resource()).await;
    h.server.admin().rotate_keys().await.unwrap();
    h.server
        .admin()
        .revoke_client(&gone.client_id)
        .await
        .unwrap();

    let export = h.server.admin().export().await.unwrap();
    assert_eq!(
        (
            export.clients().len(),
            export.keys().len(),
            export.revocations().len()
        ),
        (2, 2, 1)
    );
    // Through its serialized form, as a file carries it.
    let text = serde_json::to_string(&export).unwrap();
    let export: StoreExport = serde_json::from_str(&text).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings::Embedded {
        path: dir.path().join("target").join("oauth.redb"),
        cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
    };
    let clock = FixedClock::new();
    {
        let target =
            StoreTransfer::open(&settings, oauth_core::testing::sealer(), clock.clone()).unwrap();
        let first = target.import(&export).await.unwrap();
        assert_eq!((first.clients, first.keys, first.revocations), (2, 2, 1));
        let again = target.import(&export).await.unwrap();
        assert_eq!(
            (
                again.clients,
                again.clients_present,
                again.keys,
                again.keys_present
            ),
            (0, 2, 0, 2),
            "import is additive and idempotent"
        );
    }

    // An engine on the target: the same clients and keys, and the revocation travelled with the keys.
    let moved = AuthServer::open(
        testing::config(),
        &settings,
        oauth_core::testing::sealer(),
        clock,
    )
    .await
    .unwrap();
    let ids = |v: Vec<oauth_core::store::ClientRecord>| {
        v.into_iter().map(|c| c.client_id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(moved.admin().clients().await.unwrap()),
        ids(h.server.admin().clients().await.unwrap())
    );
    assert_eq!(
        moved.admin().keys().await.unwrap(),
        h.server.admin().keys().await.unwrap()
    );
    assert_eq!(moved.jwks(), h.server.jwks());
    moved
        .verify(Some(&bearer(&live.access_token)), resource(&h))
        .expect("a token signed by an exported key verifies at the new store");
    assert_eq!(
        rejection(&moved, &h, &revoked.access_token),
        "the access token has been revoked"
    );
}

#[tokio::test]
async fn an_export_of_another_version_is_refused_before_anything_is_added() {
    let h = harness().await;
    public_client(&h).await;
    let mut doc = serde_json::to_value(h.server.admin().export().await.unwrap()).unwrap();
    doc["version"] = 2.into();
    let export: StoreExport = serde_json::from_value(doc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings::Embedded {
        path: dir.path().join("oauth.redb"),
        cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
    };
    let target =
        StoreTransfer::open(&settings, oauth_core::testing::sealer(), FixedClock::new()).unwrap();
    let err = target.import(&export).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "format \"forwardauth-store-export\", version 2"
    );
    assert!(target.export().await.unwrap().clients().is_empty());
}

#[tokio::test]
async fn user_grants_counts_live_grants_and_import_adds_to_a_running_engine() {
    let h = harness().await;
    let a = public_client(&h).await;
    tokens_of(&h, &a.client_id, alice()).await;
    tokens_of(&h, &a.client_id, alice()).await;
    tokens_of(&h, &a.client_id, bob()).await;
    let grants = |who: &'static str| {
        let admin = h.server.admin();
        async move { admin.user_grants(who).await.unwrap() }
    };
    assert_eq!(
        (grants("local:alice").await, grants("local:bob").await),
        (2, 1)
    );
    h.server.admin().revoke_user("local:alice").await.unwrap();
    assert_eq!(
        grants("local:alice").await,
        0,
        "revoked grants are not counted"
    );
    assert_eq!(grants("local:nobody").await, 0);

    // Another engine's contents, imported into this running one (the way in over the admin socket).
    let other = harness().await;
    let c = public_client(&other).await;
    let export = other.server.admin().export().await.unwrap();
    let added = h.server.admin().import(&export).await.unwrap();
    assert_eq!((added.clients, added.keys, added.keys_present), (1, 1, 0));
    assert!(
        h.server
            .admin()
            .client(&c.client_id)
            .await
            .unwrap()
            .is_some()
    );
    let imported = &other.server.admin().keys().await.unwrap()[0].kid;
    assert!(
        h.server
            .admin()
            .keys()
            .await
            .unwrap()
            .iter()
            .any(|k| &k.kid == imported)
    );
    let again = h.server.admin().import(&export).await.unwrap();
    assert_eq!((again.clients_present, again.keys_present), (1, 1));
}
