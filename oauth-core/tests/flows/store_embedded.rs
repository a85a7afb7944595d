//! The embedded store: the conformance suite on both of its forms, and a restart that loses nothing.

use std::sync::Arc;

use oauth_core::store::conformance;
use oauth_core::testing::{self, FixedClock};
use oauth_core::{AuthServer, EmbeddedStore, Store};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() {
    conformance::run(|clock| EmbeddedStore::in_memory(clock).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance::run(|clock| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        EmbeddedStore::open(dir.path().join(format!("store-{i}.redb")), clock).unwrap()
    })
    .await;
}

#[tokio::test]
async fn a_restart_keeps_clients_keys_refresh_tokens_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth.redb");
    let clock = FixedClock::new();
    let (client_id, revoked, live, refresh, kid) = {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path, clock.clone()).unwrap());
        let h = Harness {
            server: AuthServer::new(
                testing::config(),
                store.clone(),
                oauth_core::testing::sealer(),
                clock.clone(),
            )
            .await
            .unwrap(),
            clock: clock.clone(),
            store,
        };
        let c = public_client(&h).await;
        let revoked = tokens(&h, &c.client_id, &for_resource()).await;
        h.server
            .revoke(
                None,
                form(&format!(
                    "token={}&client_id={}",
                    revoked.access_token, c.client_id
                )),
            )
            .await
            .unwrap();
        let live = tokens(&h, &c.client_id, &for_resource()).await;
        let kid = h.server.jwks()["keys"][0]["kid"]
            .as_str()
            .unwrap()
            .to_owned();
        (
            c.client_id,
            revoked.access_token,
            live.access_token,
            live.refresh_token.unwrap(),
            kid,
        )
    };
    // Everything above is dropped: the file is closed. Open it again.
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path, clock.clone()).unwrap());
    let h = Harness {
        server: AuthServer::new(
            testing::config(),
            store.clone(),
            oauth_core::testing::sealer(),
            clock.clone(),
        )
        .await
        .unwrap(),
        clock,
        store,
    };
    assert!(
        h.store.client(&client_id).await.unwrap().is_some(),
        "client kept"
    );
    assert_eq!(
        h.server.jwks()["keys"][0]["kid"],
        kid.as_str(),
        "signing key kept"
    );
    h.server
        .verify(Some(&bearer(&live)), resource(&h))
        .expect("tokens issued before the restart verify");
    let r = h
        .server
        .verify(Some(&bearer(&revoked)), resource(&h))
        .unwrap_err();
    assert_eq!(
        r.description, "the access token has been revoked",
        "revocation kept"
    );
    h.server
        .token(None, refresh_request(&client_id, &refresh, ""))
        .await
        .expect("refresh token kept");
}

#[tokio::test]
async fn a_locked_or_bogus_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bogus.redb");
    std::fs::write(
        &path,
        b"this is not a redb file, it is some text that is long enough",
    )
    .unwrap();
    let err = EmbeddedStore::open(&path, FixedClock::new()).unwrap_err();
    assert!(matches!(err, oauth_core::StoreError::Backend(_)), "{err:?}");
    let missing_dir = dir.path().join("no/such/dir/x.redb");
    assert!(EmbeddedStore::open(missing_dir, FixedClock::new()).is_err());
}
