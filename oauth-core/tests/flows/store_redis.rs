//! The Redis store against a real `redis-server` (started per test on a free loopback port, stopped by PID):
//! the conformance suite, the key layout, announcements between instances, shared and rotated keys, and what
//! happens while Redis is away.

use std::sync::Arc;
use std::time::Duration;

use oauth_core::store::conformance;
use oauth_core::testing::{self, FixedClock, RedisServer, unique_prefix};
use oauth_core::{
    AuthServer, RedisConfig, RedisStore, ServerConfig, Store, StoreError, StoreEvent,
};
use tokio::sync::broadcast;

use crate::common::*;

fn store(server: &RedisServer, prefix: &str, clock: Arc<FixedClock>) -> RedisStore {
    let mut config = RedisConfig::new(server.url(), prefix);
    config.timeout = Duration::from_millis(500);
    RedisStore::new(config, clock).unwrap()
}

async fn harness_on(
    server: &RedisServer,
    prefix: &str,
    clock: Arc<FixedClock>,
    config: ServerConfig,
) -> Harness {
    let store: Arc<dyn Store> = Arc::new(store(server, prefix, clock.clone()));
    Harness {
        server: AuthServer::new(
            config,
            store.clone(),
            oauth_core::testing::sealer(),
            clock.clone(),
        )
        .await
        .unwrap(),
        clock,
        store,
    }
}

/// How long an announcement may take. Generous: on a loaded 2-core machine the subscription alone once took
/// over 5 s to come up; what is checked is that it arrives, not how fast.
const ANNOUNCEMENT: Duration = Duration::from_secs(30);

/// The next announcement other than `Reconnected`, within [`ANNOUNCEMENT`].
async fn next_event(rx: &mut broadcast::Receiver<StoreEvent>) -> StoreEvent {
    tokio::time::timeout(ANNOUNCEMENT, async {
        loop {
            match rx.recv().await.unwrap() {
                StoreEvent::Reconnected => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("an announcement in time")
}

async fn redis_keys(server: &RedisServer, pattern: &str) -> Vec<(String, Vec<u8>)> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut c)
        .await
        .unwrap();
    let mut out = Vec::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        let dump: Vec<u8> = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&k).query_async(&mut c).await.unwrap(),
            "hash" => {
                let v: Vec<Vec<u8>> = redis::cmd("HVALS")
                    .arg(&k)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                v.concat()
            }
            "set" => {
                let v: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                    .arg(&k)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                v.concat()
            }
            "zset" => {
                let v: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                v.concat()
            }
            other => panic!("unexpected type {other} of {k}"),
        };
        out.push((k, dump));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_redis() {
    let server = RedisServer::start();
    conformance::run(|clock| store(&server, &unique_prefix("conformance"), clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_prefixed_and_no_secret_is_stored_in_plaintext() {
    let server = RedisServer::start();
    let prefix = unique_prefix("layout");
    let h = harness_on(&server, &prefix, FixedClock::new(), testing::config()).await;
    let c = secret_client(&h).await;
    let secret = c.client_secret.clone().unwrap();
    let rat = c.registration_access_token.clone().unwrap();
    let code = code_for(
        &h,
        &c.client_id,
        "https://app.example.com/cb",
        &for_resource(),
    )
    .await;
    let t = h
        .server
        .token(
            None,
            form(&format!(
                "grant_type=authorization_code&client_id={}&client_secret={}&code={}&redirect_uri={}&code_verifier={VERIFIER}",
                enc(&c.client_id),
                enc(&secret),
                enc(&code),
                enc("https://app.example.com/cb")
            )),
        )
        .await
        .unwrap();
    let refresh = t.refresh_token.clone().unwrap();
    // One rotation, so that the grant holds a sealed retry answer too.
    let t2 = h
        .server
        .token(
            None,
            form(&format!(
                "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                enc(&c.client_id),
                enc(&secret),
                enc(&refresh)
            )),
        )
        .await
        .unwrap();
    let refresh2 = t2.refresh_token.clone().unwrap();
    // The secret parts of a refresh token: the family secret and the fresh part.
    let family = refresh.rsplit('.').nth(1).unwrap().to_owned();
    let fresh = refresh2.rsplit('.').next().unwrap().to_owned();
    let all = redis_keys(&server, "*").await;
    assert!(!all.is_empty());
    let mut names: Vec<&str> = Vec::new();
    for (k, v) in &all {
        assert!(
            k.starts_with(&format!("{prefix}:")) || k.starts_with(&format!("{{{prefix}:")),
            "key outside the prefix: {k}"
        );
        for plain in [
            &secret,
            &rat,
            &code,
            &refresh,
            &refresh2,
            &family,
            &fresh,
            &t.access_token,
            &t2.access_token,
        ] {
            assert!(!k.contains(plain.as_str()), "plaintext secret in key {k}");
            let text = String::from_utf8_lossy(v);
            assert!(!text.contains(plain.as_str()), "plaintext secret in {k}");
        }
        let kind = k
            .rsplit_once("}:")
            .map_or(k.as_str(), |(_, rest)| rest)
            .trim_start_matches(&format!("{prefix}:"))
            .split(':')
            .next()
            .unwrap();
        names.push(kind);
    }
    for expected in [
        "client",
        "clients",
        "code-used",
        "grant",
        "client-grants",
        "subject-grants",
        "keys",
    ] {
        assert!(names.contains(&expected), "no {expected} key in {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_key_changes_are_announced_to_other_stores() {
    let server = RedisServer::start();
    let prefix = unique_prefix("events");
    let a = store(&server, &prefix, FixedClock::new());
    let b = store(&server, &prefix, FixedClock::new());
    let mut rx = b.events().expect("a shared store announces changes");
    assert_eq!(
        tokio::time::timeout(ANNOUNCEMENT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
        StoreEvent::Reconnected,
        "the first event says the subscription is up"
    );
    let seq = a
        .add_revocation(&oauth_core::store::Revocation {
            kind: oauth_core::store::RevokedKind::Grant,
            id: "g1".into(),
            expires_at: u64::MAX,
            recorded_at_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(next_event(&mut rx).await, StoreEvent::Revoked);
    assert_eq!(b.revocations_since(seq - 1).await.unwrap().len(), 1);
    let other = store(&server, &unique_prefix("elsewhere"), FixedClock::new());
    other
        .add_revocation(&oauth_core::store::Revocation {
            kind: oauth_core::store::RevokedKind::Token,
            id: "j".into(),
            expires_at: u64::MAX,
            recorded_at_ms: None,
        })
        .await
        .unwrap();
    a.put_key(&oauth_core::store::KeyRecord {
        kid: "k".into(),
        alg: "ES256".into(),
        private_jwk: oauth_core::testing::sealer()
            .seal(&oauth_core::store::PrivateJwk::new("{}"), "k")
            .unwrap(),
        created_at: 1,
        retired_at: None,
        publish_until: None,
        not_before: None,
    })
    .await
    .unwrap();
    assert_eq!(
        next_event(&mut rx).await,
        StoreEvent::KeysChanged,
        "another prefix's revocation is not announced here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_first_key_and_switch_to_a_rotated_key_together() {
    let server = RedisServer::start();
    let prefix = unique_prefix("keys");
    let clock = FixedClock::new();
    let mut config = testing::config();
    config.key_activation_delay = Duration::from_secs(30);
    let (a, b) = tokio::join!(
        harness_on(&server, &prefix, clock.clone(), config.clone()),
        harness_on(&server, &prefix, clock.clone(), config.clone()),
    );
    assert_eq!(
        a.server.jwks(),
        b.server.jwks(),
        "one key for both: the first wins"
    );
    let old_kid = a.server.jwks()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    let new_kid = a.server.rotate_keys().await.unwrap();
    let c = public_client(&a).await;
    let before = tokens(&a, &c.client_id, &for_resource()).await.access_token;
    assert_eq!(
        header_kid(&before),
        old_kid,
        "the old key signs until the activation"
    );
    b.server
        .verify(Some(&bearer(&before)), resource(&b))
        .expect("B verifies A's token");

    clock.advance(Duration::from_secs(31));
    let after = tokens(&a, &c.client_id, &for_resource()).await.access_token;
    assert_eq!(
        header_kid(&after),
        new_kid,
        "the new key signs after the activation"
    );
    // B has not reloaded: the gate's path reloads on the unknown kid and accepts.
    assert!(
        b.server
            .verify(Some(&bearer(&after)), resource(&b))
            .is_err()
    );
    let verdict = gate_post(&b, &bearer(&after)).await;
    assert!(
        matches!(verdict.outcome, oauth_core::GateOutcome::Admit(_)),
        "an unknown kid triggers one reload: {verdict:?}"
    );
    // Now B signs with the new key too, and A verifies it.
    let from_b = tokens(&b, &c.client_id, &for_resource()).await.access_token;
    assert_eq!(header_kid(&from_b), new_kid);
    a.server
        .verify(Some(&bearer(&from_b)), resource(&a))
        .unwrap();
    // A forged kid costs at most one reload per second and is still rejected.
    let forged = format!(
        "{}.{}",
        b64(r#"{"alg":"ES256","typ":"at+jwt","kid":"nope"}"#),
        after.split_once('.').unwrap().1
    );
    let verdict = gate_post(&b, &bearer(&forged)).await;
    let oauth_core::GateOutcome::Reject(r) = verdict.outcome else {
        panic!("{verdict:?}");
    };
    assert_eq!(r.description, "token signed by an unknown key");
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn header_kid(token: &str) -> String {
    use base64::Engine as _;
    let head = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&head).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_operations_are_unavailable_and_verify_fails_closed_after_the_staleness_bound()
 {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("down");
    let clock = FixedClock::new();
    let mut config = testing::config();
    config.revocation_max_staleness = Some(Duration::from_secs(3));
    let h = harness_on(&server, &prefix, clock.clone(), config).await;
    let c = public_client(&h).await;
    let t = tokens(&h, &c.client_id, &for_resource()).await;

    server.kill();
    let err = h.store.client(&c.client_id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = h.server.sync().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(
        token_refused(
            &h,
            refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), "")
        )
        .await,
        (
            503,
            body(
                "temporarily_unavailable",
                "the authorization server's storage is unavailable; try again shortly"
            )
        )
    );
    assert!(h.server.ready().await.is_err());
    // Within the bound the last known revocation state still vouches for the token.
    clock.advance(Duration::from_secs(2));
    h.server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap();
    // Past it, nothing is vouched for.
    clock.advance(Duration::from_secs(2));
    let r = h
        .server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap_err();
    assert_eq!((r.status(), r.error_code()), (401, Some("invalid_token")));
    assert_eq!(
        r.description,
        "the authorization server cannot currently confirm that the token is not revoked; try again shortly"
    );

    // Redis is back (empty: this one does not persist): the same store recovers without a restart.
    server.restart();
    h.server.sync().await.unwrap();
    h.server.ready().await.unwrap();
    h.server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_log_lost_with_a_redis_restart_is_still_followed() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("lost-log");
    let a = harness_on(&server, &prefix, FixedClock::new(), testing::config()).await;
    let peer = harness_on(&server, &prefix, a.clock.clone(), testing::config()).await;
    for _ in 0..3 {
        a.server.revoke_grant("old-grant").await.unwrap();
    }
    peer.server.sync().await.unwrap();
    // Redis comes back empty (no persistence): numbering restarts below the peer's cursor.
    server.restart();
    let a = harness_on(&server, &prefix, a.clock.clone(), testing::config()).await;
    let c = public_client(&a).await;
    let t = tokens(&a, &c.client_id, &for_resource()).await;
    peer.server.reload_keys().await.unwrap();
    peer.server
        .verify(Some(&bearer(&t.access_token)), resource(&peer))
        .unwrap();
    a.server
        .revoke(
            None,
            form(&format!(
                "token={}&client_id={}",
                t.access_token, c.client_id
            )),
        )
        .await
        .unwrap();
    peer.server.sync().await.unwrap();
    let r = peer
        .server
        .verify(Some(&bearer(&t.access_token)), resource(&peer))
        .unwrap_err();
    assert_eq!(r.description, "the access token has been revoked");
}

/// Two instances on one real Redis share counts and bans: failures on one add up with failures on the other, the
/// ban earned is enforced by both, and it ends for both on the injected clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_login_failures_and_bans() {
    use oauth_core::{LocalUser, LocalUsers, LoginError};
    let redis = RedisServer::start();
    let prefix = unique_prefix("regulation");
    let clock = FixedClock::new();
    let hash = LocalUsers::hash_password("right").unwrap();
    let users = LocalUsers::new(vec![LocalUser::new("alice", hash)]).unwrap();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let h = harness_on(&redis, &prefix, clock.clone(), testing::config()).await;
        instances.push(h.server.with_providers(vec![
            Arc::new(users.clone()) as Arc<dyn oauth_core::IdentityProvider>
        ]));
    }
    let (a, b) = (&instances[0], &instances[1]);
    let client = Some("198.51.100.7".parse().unwrap());
    for i in 0..5 {
        let instance = if i % 2 == 0 { a } else { b };
        let r = instance.password_login("alice", "wrong", client).await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
    }
    for instance in [a, b] {
        let r = instance.password_login("alice", "right", None).await;
        assert!(
            matches!(r, Err(LoginError::Banned { retry_after }) if retry_after == Duration::from_secs(900)),
            "{r:?}"
        );
    }
    clock.advance(Duration::from_secs(900));
    b.password_login("alice", "right", client).await.unwrap();
    a.password_login("alice", "right", client).await.unwrap();
}
