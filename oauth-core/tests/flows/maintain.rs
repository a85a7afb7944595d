//! `AuthServer::maintain`: the housekeeping loop keeps an instance's revocation state current without anyone
//! calling `sync`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::AuthServer;
use oauth_core::maintain::REVOCATION_SYNC_EVERY;
use oauth_core::testing;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_pulls_another_instances_revocation_within_a_couple_of_seconds() {
    let h = harness().await;
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;
    let peer = Arc::new(
        AuthServer::new(
            testing::config(),
            h.store.clone(),
            oauth_core::testing::sealer(),
            h.clock.clone(),
        )
        .await
        .unwrap(),
    );
    let maintenance = tokio::spawn({
        let peer = Arc::clone(&peer);
        async move { peer.maintain().await }
    });
    // Let the first ticks (which fire at once) pass, so that the revocation can only arrive through a later,
    // periodic sync.
    tokio::time::sleep(Duration::from_millis(300)).await;
    peer.verify(Some(&bearer(&t.access_token)), resource(&h))
        .expect("valid before the revocation");

    h.server.admin().revoke_client(&c.client_id).await.unwrap();
    let revoked_at = Instant::now();
    let bound = REVOCATION_SYNC_EVERY * 3;
    let description = loop {
        match peer.verify(Some(&bearer(&t.access_token)), resource(&h)) {
            Err(r) => break r.description,
            Ok(_) if revoked_at.elapsed() > bound => {
                panic!("the peer still accepts the token {bound:?} after the revocation")
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(description, "the access token has been revoked");
    eprintln!(
        "revocation seen by the peer after {:?}",
        revoked_at.elapsed()
    );
    assert!(
        !maintenance.is_finished(),
        "maintain() runs until it is dropped"
    );
    maintenance.abort();
}
