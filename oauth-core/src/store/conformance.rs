//! The store conformance suite: one set of checks every [`Store`] backend must pass (actix-session's
//! acceptance-test pattern). Call [`run`] from a backend's tests with a factory that makes an empty store on the
//! given clock.
//!
//! It is test code compiled under the `test-util` feature, so it may unwrap and panic: a panic is a failed check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use super::{
    ClientRecord, CodeRecord, CodeRedemption, ConsentRecord, GrantRecord, KeyRecord,
    PendingAuthorization, PreviousRotation, RefreshChain, Revocation, RevokedKind, SessionRecord,
    Store, StoreError,
};
use crate::testing::{FixedClock, sealer};
use crate::types::{Identity, ScopeSet, TokenHash, UpstreamSession};
use crate::wire::ClientMetadata;

pub(crate) fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        secret_hash: Some(TokenHash::of(b"secret")),
        secret_expires_at: 0,
        registration_token_hash: TokenHash::of(b"rat"),
        issued_at: 1,
        metadata: ClientMetadata {
            redirect_uris: vec!["https://app.example.com/cb".into()],
            token_endpoint_auth_method: "client_secret_basic".into(),
            grant_types: vec!["authorization_code".into()],
            response_types: vec!["code".into()],
            ..ClientMetadata::default()
        },
    }
}

fn pending(client_id: &str) -> PendingAuthorization {
    PendingAuthorization {
        client_id: client_id.into(),
        redirect_uri: "https://app.example.com/cb".into(),
        redirect_uri_explicit: true,
        code_challenge: "c".repeat(43),
        scope: ScopeSet::from_tokens(["mcp"]),
        resource: "https://mcp.example.com/mcp".into(),
        state: Some("xyz".into()),
        expires_at: u64::MAX,
        upstream: None,
        consented: false,
    }
}

fn grant(id: &str, client_id: &str, subject: &str) -> GrantRecord {
    GrantRecord {
        grant_id: id.into(),
        client_id: client_id.into(),
        identity: Identity {
            subject: subject.into(),
            ..Identity::default()
        },
        scope: ScopeSet::from_tokens(["mcp"]),
        resource: "https://mcp.example.com/mcp".into(),
        created_at: 1,
        expires_at: u64::MAX,
        upstream: Some(sealed_session(subject)),
        refresh: None,
    }
}

/// An upstream session sealed for `subject`, the same value at every call (a seal is randomised), so that
/// fixtures compare equal.
fn sealed_session(subject: &str) -> crate::Sealed<UpstreamSession> {
    static SEALED: std::sync::OnceLock<
        parking_lot::Mutex<std::collections::HashMap<String, crate::Sealed<UpstreamSession>>>,
    > = std::sync::OnceLock::new();
    SEALED
        .get_or_init(Default::default)
        .lock()
        .entry(subject.to_owned())
        .or_insert_with(|| {
            sealer()
                .seal(
                    &UpstreamSession {
                        provider: "github".into(),
                        access_token: "gho_x".into(),
                        refresh_token: None,
                        expires_at: Some(9),
                        verified_at: Some(8),
                    },
                    subject,
                )
                .unwrap()
        })
        .clone()
}

fn chained(id: &str, generation: u64) -> GrantRecord {
    GrantRecord {
        refresh: Some(RefreshChain {
            generation,
            family: TokenHash::of(b"family"),
            current: TokenHash::of(format!("rt-{generation}").as_bytes()),
            issued_at: generation,
            previous: (generation > 0).then(|| PreviousRotation {
                token: TokenHash::of(format!("rt-{}", generation - 1).as_bytes()),
                grace_until: generation,
                sealed: vec![1, 2, 3],
            }),
        }),
        ..grant(id, "c1", "alice")
    }
}

const MIN: Duration = Duration::from_secs(60);

/// Runs every check against stores made by `make`. Panics (test failure) on the first violation.
pub async fn run<S, F>(make: F)
where
    S: Store,
    F: Fn(Arc<FixedClock>) -> S,
{
    clients(&make(FixedClock::new())).await;
    client_usage(&make(FixedClock::new())).await;
    pending_single_use(&make(FixedClock::new())).await;
    let clock = FixedClock::new();
    ttl_expiry(&make(Arc::clone(&clock)), &clock).await;
    codes(&make(FixedClock::new())).await;
    concurrent_take(Arc::new(make(FixedClock::new()))).await;
    grants_and_indexes(&make(FixedClock::new())).await;
    refresh_rotation(Arc::new(make(FixedClock::new()))).await;
    revocation_log(&make(FixedClock::new())).await;
    keys(&make(FixedClock::new())).await;
    secrets_never_stored_in_plaintext_keys(&make(FixedClock::new())).await;
    let clock = FixedClock::new();
    sessions_and_consent(&make(Arc::clone(&clock)), &clock).await;
    let clock = FixedClock::new();
    regulation(&make(Arc::clone(&clock)), &clock).await;
    concurrent_failures(Arc::new(make(FixedClock::new()))).await;
}

async fn regulation(s: &impl Store, clock: &FixedClock) {
    assert_eq!(s.count_failure("account:a", MIN).await.unwrap(), 1);
    assert_eq!(s.count_failure("account:a", MIN).await.unwrap(), 2);
    assert_eq!(
        s.count_failure("account:b", MIN).await.unwrap(),
        1,
        "counters are per key"
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        s.count_failure("account:a", MIN).await.unwrap(),
        3,
        "a failure inside the window adds to it"
    );
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        s.count_failure("account:a", MIN).await.unwrap(),
        1,
        "later failures do not extend the window: it ends a window after the first"
    );
    s.count_failure("account:a", MIN).await.unwrap();
    s.clear_failures("account:a").await.unwrap();
    assert_eq!(
        s.count_failure("account:a", MIN).await.unwrap(),
        1,
        "cleared"
    );

    assert_eq!(s.ban("addr:1").await.unwrap(), None);
    let until = crate::Clock::unix(clock) + 60;
    s.put_ban("addr:1", until, MIN).await.unwrap();
    assert_eq!(s.ban("addr:1").await.unwrap(), Some(until));
    assert_eq!(s.ban("addr:2").await.unwrap(), None, "bans are per key");
    clock.advance(MIN + Duration::from_secs(1));
    assert_eq!(s.ban("addr:1").await.unwrap(), None, "a ban expires");
}

async fn concurrent_failures<S: Store>(s: Arc<S>) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.count_failure("account:race", MIN).await.unwrap()
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=16).collect::<Vec<u64>>(),
        "concurrent failures are each counted once"
    );
}

async fn sessions_and_consent(s: &impl Store, clock: &FixedClock) {
    let k = TokenHash::of(b"cookie");
    let mut rec = SessionRecord {
        csrf: "c".into(),
        identity: None,
        upstream: None,
        expires_at: u64::MAX,
    };
    s.put_session(&k, &rec, MIN).await.unwrap();
    assert_eq!(s.session(&k).await.unwrap(), Some(rec.clone()));
    rec.identity = Some(Identity {
        subject: "local:alice".into(),
        ..Identity::default()
    });
    s.put_session(&k, &rec, MIN).await.unwrap();
    assert_eq!(s.session(&k).await.unwrap(), Some(rec), "put replaces");
    s.delete_session(&k).await.unwrap();
    assert_eq!(s.session(&k).await.unwrap(), None);

    let c = ConsentRecord {
        scope: ScopeSet::from_tokens(["mcp"]),
        resources: vec!["https://r".into()],
        granted_at: 1,
    };
    s.put_consent("local:alice", "c1", &c, MIN).await.unwrap();
    assert_eq!(s.consent("local:alice", "c1").await.unwrap(), Some(c));
    assert_eq!(
        s.consent("local:alice", "c2").await.unwrap(),
        None,
        "consent is per client"
    );
    assert_eq!(
        s.consent("local:bob", "c1").await.unwrap(),
        None,
        "consent is per user"
    );
    clock.advance(MIN + Duration::from_secs(1));
    assert_eq!(
        s.consent("local:alice", "c1").await.unwrap(),
        None,
        "consent expires"
    );
}

async fn client_usage(s: &impl Store) {
    assert_eq!(s.count_clients().await.unwrap(), 0);
    s.insert_client(&client("u1")).await.unwrap();
    s.insert_client(&client("u2")).await.unwrap();
    assert_eq!(s.count_clients().await.unwrap(), 2);
    assert_eq!(s.client_last_used("u1").await.unwrap(), None);
    s.mark_client_used("u1", 100).await.unwrap();
    s.mark_client_used("u1", 200).await.unwrap();
    assert_eq!(s.client_last_used("u1").await.unwrap(), Some(200));
    assert_eq!(s.client_last_used("u2").await.unwrap(), None, "per client");
    assert!(s.delete_client("u1").await.unwrap());
    assert_eq!(
        s.client_last_used("u1").await.unwrap(),
        None,
        "deleted with the client"
    );
    assert_eq!(s.count_clients().await.unwrap(), 1);
    assert_eq!(
        s.list_clients().await.unwrap().len(),
        1,
        "the usage marker is not a client"
    );
}

async fn clients(s: &impl Store) {
    s.insert_client(&client("c1")).await.unwrap();
    assert!(
        matches!(
            s.insert_client(&client("c1")).await,
            Err(StoreError::Conflict)
        ),
        "duplicate insert must conflict"
    );
    assert_eq!(s.client("c1").await.unwrap(), Some(client("c1")));
    assert_eq!(s.client("nope").await.unwrap(), None);
    let mut changed = client("c1");
    changed.metadata.client_name = Some("renamed".into());
    assert!(s.replace_client(&changed).await.unwrap());
    assert!(
        !s.replace_client(&client("ghost")).await.unwrap(),
        "replace of a missing client must say so"
    );
    assert_eq!(
        s.client("c1")
            .await
            .unwrap()
            .unwrap()
            .metadata
            .client_name
            .as_deref(),
        Some("renamed")
    );
    s.insert_client(&client("c2")).await.unwrap();
    let mut ids: Vec<String> = s
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["c1", "c2"]);
    assert_eq!(s.count_clients().await.unwrap(), 2);
    // Pages of one, walked by cursor, see every client.
    for i in 3..=7 {
        s.insert_client(&client(&format!("c{i}"))).await.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let (page, next) = s.clients_page(cursor.as_deref(), 2).await.unwrap();
        seen.extend(page.into_iter().map(|c| c.client_id));
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the walk ends");
    assert_eq!(seen.len(), 7, "every client is seen: {seen:?}");
    for i in 3..=7 {
        assert!(s.delete_client(&format!("c{i}")).await.unwrap());
    }
    assert!(s.delete_client("c1").await.unwrap());
    assert_eq!(s.count_clients().await.unwrap(), 1);
    assert!(!s.delete_client("c1").await.unwrap());
    assert_eq!(s.client("c1").await.unwrap(), None);
}

async fn pending_single_use(s: &impl Store) {
    let k = TokenHash::of(b"handle");
    s.put_pending(&k, &pending("c1"), MIN).await.unwrap();
    assert_eq!(
        s.pending(&k).await.unwrap(),
        Some(pending("c1")),
        "read must not consume"
    );
    assert_eq!(s.pending(&k).await.unwrap(), Some(pending("c1")));
    assert_eq!(s.take_pending(&k).await.unwrap(), Some(pending("c1")));
    assert_eq!(
        s.take_pending(&k).await.unwrap(),
        None,
        "take must be single use"
    );
    assert_eq!(s.pending(&k).await.unwrap(), None);
}

async fn ttl_expiry(s: &impl Store, clock: &FixedClock) {
    let k = TokenHash::of(b"short");
    s.put_pending(&k, &pending("c1"), Duration::from_secs(10))
        .await
        .unwrap();
    s.put_grant(&chained("g-short", 0), Duration::from_secs(10))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(9));
    assert!(
        s.pending(&k).await.unwrap().is_some(),
        "alive before its TTL"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(s.pending(&k).await.unwrap(), None, "expired after its TTL");
    assert_eq!(s.take_pending(&k).await.unwrap(), None);
    assert_eq!(s.grant("g-short").await.unwrap(), None, "grants expire too");
    assert!(
        !s.rotate_grant(&chained("g-short", 1), 0, MIN)
            .await
            .unwrap(),
        "an expired grant cannot be rotated back to life"
    );
    assert_eq!(s.grant("g-short").await.unwrap(), None);
    s.purge_expired().await.unwrap();
    assert_eq!(s.pending(&k).await.unwrap(), None);
}

async fn codes(s: &impl Store) {
    let k = TokenHash::of(b"code");
    let rec = CodeRecord {
        grant_id: "g1".into(),
        pending: pending("c1"),
        identity: Identity {
            subject: "local:alice".into(),
            ..Identity::default()
        },
        expires_at: u64::MAX,
        upstream: Some(
            sealer()
                .seal(
                    &UpstreamSession {
                        provider: "github".into(),
                        access_token: "gho_y".into(),
                        refresh_token: None,
                        expires_at: None,
                        verified_at: None,
                    },
                    "local:alice",
                )
                .unwrap(),
        ),
    };
    s.put_code(&k, &rec, MIN).await.unwrap();
    assert_eq!(
        s.redeem_code(&k, MIN).await.unwrap(),
        CodeRedemption::Fresh(Box::new(rec))
    );
    assert_eq!(
        s.redeem_code(&k, MIN).await.unwrap(),
        CodeRedemption::Replayed {
            grant_id: "g1".into()
        },
        "a second redemption must be recognised as a replay"
    );
    assert_eq!(
        s.redeem_code(&TokenHash::of(b"other"), MIN).await.unwrap(),
        CodeRedemption::Unknown
    );
}

async fn concurrent_take<S: Store>(s: Arc<S>) {
    let k = TokenHash::of(b"race");
    s.put_pending(&k, &pending("c1"), MIN).await.unwrap();
    let code = TokenHash::of(b"race-code");
    let rec = CodeRecord {
        grant_id: "g".into(),
        pending: pending("c1"),
        identity: Identity::default(),
        expires_at: u64::MAX,
        upstream: None,
    };
    s.put_code(&code, &rec, MIN).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let took = s.take_pending(&k).await.unwrap().is_some();
            let fresh = matches!(
                s.redeem_code(&code, MIN).await.unwrap(),
                CodeRedemption::Fresh(_)
            );
            (took, fresh)
        }));
    }
    let (mut takes, mut fresh) = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        takes += usize::from(a);
        fresh += usize::from(b);
    }
    assert_eq!(takes, 1, "exactly one concurrent take_pending wins");
    assert_eq!(fresh, 1, "exactly one concurrent redeem_code wins");
}

async fn grants_and_indexes(s: &impl Store) {
    s.put_grant(&grant("g1", "c1", "alice"), MIN).await.unwrap();
    s.put_grant(&grant("g2", "c1", "bob"), MIN).await.unwrap();
    s.put_grant(&grant("g3", "c2", "alice"), MIN).await.unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(s.grants_of_client("c1").await.unwrap()),
        vec!["g1", "g2"]
    );
    assert_eq!(
        sorted(s.grants_of_subject("alice").await.unwrap()),
        vec!["g1", "g3"]
    );
    assert_eq!(
        s.grant("g1").await.unwrap(),
        Some(grant("g1", "c1", "alice"))
    );
    assert_eq!(
        s.delete_grant("g1").await.unwrap(),
        Some(grant("g1", "c1", "alice"))
    );
    assert_eq!(s.delete_grant("g1").await.unwrap(), None);
    assert_eq!(
        s.grants_of_client("c1").await.unwrap(),
        vec!["g2"],
        "deleting a grant removes it from the indexes"
    );
    assert_eq!(s.grants_of_subject("alice").await.unwrap(), vec!["g3"]);
}

async fn refresh_rotation<S: Store>(s: Arc<S>) {
    s.put_grant(&chained("g1", 0), MIN).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let mut next = chained("g1", 1);
            next.scope = ScopeSet::from_tokens([format!("winner-{i}")]);
            (i, s.rotate_grant(&next, 0, MIN).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent rotation wins");
    let stored = s.grant("g1").await.unwrap().unwrap();
    assert_eq!(stored.refresh, chained("g1", 1).refresh);
    assert_eq!(
        stored.scope,
        ScopeSet::from_tokens([format!("winner-{}", winners[0])]),
        "the winner's grant is stored, whole"
    );
    // A stale generation, a missing grant and a grant without a chain all lose.
    assert!(!s.rotate_grant(&chained("g1", 1), 0, MIN).await.unwrap());
    assert!(!s.rotate_grant(&chained("nope", 1), 0, MIN).await.unwrap());
    assert_eq!(s.grant("nope").await.unwrap(), None);
    s.put_grant(&grant("plain", "c1", "alice"), MIN)
        .await
        .unwrap();
    assert!(!s.rotate_grant(&chained("plain", 1), 0, MIN).await.unwrap());
    // A deleted (revoked) grant cannot be written back by a rotation that read it before.
    s.delete_grant("g1").await.unwrap();
    assert!(!s.rotate_grant(&chained("g1", 2), 1, MIN).await.unwrap());
    assert_eq!(s.grant("g1").await.unwrap(), None);
    // Rotations keep the grant findable by client and subject.
    s.put_grant(&chained("g4", 0), MIN).await.unwrap();
    assert!(s.rotate_grant(&chained("g4", 1), 0, MIN).await.unwrap());
    assert!(
        s.grants_of_client("c1")
            .await
            .unwrap()
            .contains(&"g4".to_owned())
    );
    assert!(
        s.grants_of_subject("alice")
            .await
            .unwrap()
            .contains(&"g4".to_owned())
    );
}

async fn revocation_log(s: &impl Store) {
    let r = |id: &str| Revocation {
        kind: RevokedKind::Grant,
        id: id.into(),
        expires_at: u64::MAX,
        recorded_at_ms: None,
    };
    let a = s.add_revocation(&r("a")).await.unwrap();
    let b = s.add_revocation(&r("b")).await.unwrap();
    assert!(b > a, "sequence numbers increase");
    let all = s.revocations_since(0).await.unwrap();
    assert_eq!(all, vec![(a, r("a")), (b, r("b"))]);
    assert_eq!(s.revocations_since(a).await.unwrap(), vec![(b, r("b"))]);
    assert!(s.revocations_since(b).await.unwrap().is_empty());
}

async fn keys(s: &impl Store) {
    let k = |kid: &str| KeyRecord {
        kid: kid.into(),
        alg: "ES256".into(),
        private_jwk: sealer().seal(&super::PrivateJwk::new("{}"), kid).unwrap(),
        created_at: 1,
        retired_at: None,
        publish_until: None,
        not_before: None,
    };
    assert!(s.put_first_key(&k("k1")).await.unwrap());
    assert!(
        !s.put_first_key(&k("k2")).await.unwrap(),
        "only the first instance's key is stored"
    );
    let k3 = k("k3");
    s.put_key(&k3).await.unwrap();
    let mut kids: Vec<String> = s.keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    kids.sort();
    assert_eq!(kids, vec!["k1", "k3"]);
    // A sealed private key comes back exactly as it went in (a backend never re-encodes it), and so does a
    // plaintext one an earlier version stored.
    let stored = s.keys().await.unwrap();
    let back = stored.iter().find(|r| r.kid == "k3").unwrap();
    assert_eq!(back, &k3);
    assert_eq!(
        sealer().open(&back.private_jwk, "k3").unwrap().expose(),
        "{}"
    );
    let legacy: KeyRecord = serde_json::from_value(serde_json::json!({
        "kid": "k4", "alg": "ES256", "private_jwk": "{\"kty\":\"EC\"}", "created_at": 1,
        "retired_at": null, "publish_until": null
    }))
    .unwrap();
    s.put_key(&legacy).await.unwrap();
    let back = s
        .keys()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.kid == "k4")
        .unwrap();
    assert_eq!(back, legacy);
    assert_eq!(back.private_jwk.key_id(), None);
    s.delete_key("k4").await.unwrap();
    s.delete_key("k1").await.unwrap();
    assert_eq!(s.keys().await.unwrap().len(), 1);
    s.ping().await.unwrap();
}

async fn secrets_never_stored_in_plaintext_keys(s: &impl Store) {
    // The trait only accepts hashes for secret-derived keys; this checks a hash round-trips as the key.
    let k = TokenHash::of(b"plaintext-code");
    s.put_pending(&k, &pending("c1"), MIN).await.unwrap();
    assert!(
        s.pending(&TokenHash::of(b"plaintext-code"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.pending(&TokenHash::of(b"plaintext-cod"))
            .await
            .unwrap()
            .is_none()
    );
}
