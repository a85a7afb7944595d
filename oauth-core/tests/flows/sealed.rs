//! Secrets at rest: the signing keys, the upstream tokens and the upstream PKCE verifier are stored sealed under
//! the key-encryption key (a copy of the store holds none of them in clear, and the store file is private); a
//! store written before sealing loads and is sealed as it is written again; the key-encryption key rotates
//! through a previous key; the signing key rotates on a schedule, once per due rotation among instances.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oauth_core::store::{GrantRecord, KeyRecord};
use oauth_core::testing::{self, FixedClock};
use oauth_core::upstream::UpstreamRequest;
use oauth_core::{
    AuthServer, Credentials, EmbeddedStore, Identity, IdentityProvider, KeyEncryptionKey, Login,
    LoginStart, Sealer, ServerConfig, Store, StoreTransfer, UpstreamError, UpstreamSession,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::*;

/// An upstream identity provider stand-in: logs `corp:alice` in with a session whose tokens the test knows, and
/// at every re-check records the session it was handed and renews it.
#[derive(Default)]
struct Corp {
    /// The PKCE verifiers it was given to start logins with.
    started: Mutex<Vec<String>>,
    /// The PKCE verifiers it was handed at callbacks.
    verifiers: Mutex<Vec<String>>,
    /// The sessions it was handed at re-checks.
    rechecked: Mutex<Vec<Option<UpstreamSession>>>,
}

fn session(access: &str, refresh: &str) -> UpstreamSession {
    serde_json::from_value(json!({
        "provider": "corp", "access_token": access, "refresh_token": refresh, "expires_at": 4_000_000_000u64
    }))
    .unwrap()
}

fn corp_user(name: &str) -> Identity {
    Identity {
        subject: format!("corp:{name}"),
        username: Some(name.into()),
        ..Identity::default()
    }
}

const ACCESS: &str = "upstream-access-4f1c9a";
const REFRESH: &str = "upstream-refresh-77d2e0";
const RENEWED: &str = "upstream-access-renewed-a81b3c";

#[async_trait]
impl IdentityProvider for Corp {
    fn id(&self) -> &str {
        "corp"
    }
    fn display_name(&self) -> &str {
        "Corp SSO"
    }
    async fn start(&self, r: &UpstreamRequest) -> Result<LoginStart, UpstreamError> {
        self.started.lock().push(r.pkce_verifier.clone());
        let mut url = url::Url::parse("https://sso.example/authorize").unwrap();
        url.query_pairs_mut().append_pair("state", &r.state);
        Ok(LoginStart::Redirect(url))
    }
    async fn authenticate(&self, c: Credentials<'_>) -> Result<Login, UpstreamError> {
        let Credentials::Callback { request, .. } = c else {
            return Err(UpstreamError::LoginFailed);
        };
        self.verifiers.lock().push(request.pkce_verifier.clone());
        Ok(Login::upstream(
            corp_user("alice"),
            session(ACCESS, REFRESH),
        ))
    }
    async fn recheck(
        &self,
        identity: &Identity,
        session_held: Option<&UpstreamSession>,
    ) -> Result<oauth_core::Recheck, UpstreamError> {
        self.rechecked.lock().push(session_held.cloned());
        Ok(oauth_core::Recheck::Current(Login::upstream(
            identity.clone(),
            session(RENEWED, REFRESH),
        )))
    }
}

fn kek(byte: u8) -> KeyEncryptionKey {
    KeyEncryptionKey::from_bytes([byte; 32])
}

/// An engine on `store` with `sealer`, the [`Corp`] provider and `config`.
async fn engine(
    store: &Arc<dyn Store>,
    clock: &Arc<FixedClock>,
    sealer: Sealer,
    corp: &Arc<Corp>,
    config: ServerConfig,
) -> AuthServer {
    AuthServer::new(config, store.clone(), sealer, clock.clone())
        .await
        .unwrap()
        .with_providers(vec![corp.clone() as Arc<dyn IdentityProvider>])
}

fn harness_on(server: AuthServer, store: &Arc<dyn Store>, clock: &Arc<FixedClock>) -> Harness {
    Harness {
        server,
        clock: clock.clone(),
        store: store.clone(),
    }
}

/// The code flow for `who` with an upstream session (`approve_with`, as after an upstream login); the tokens.
async fn upstream_tokens(
    h: &Harness,
    client_id: &str,
    who: Identity,
) -> oauth_core::wire::TokenResponse {
    let prompt = h
        .server
        .authorize(form(&authorize_query(client_id, LOOPBACK, &for_resource())))
        .await
        .unwrap();
    let url = h
        .server
        .approve_with(&prompt.handle, who, Some(session(ACCESS, REFRESH)))
        .await
        .unwrap();
    let code = query(&url).remove("code").unwrap();
    h.server
        .token(None, code_request(client_id, &code, LOOPBACK))
        .await
        .unwrap()
}

async fn only_grant(store: &Arc<dyn Store>, subject: &str) -> GrantRecord {
    let ids = store.grants_of_subject(subject).await.unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    store.grant(&ids[0]).await.unwrap().unwrap()
}

/// The private exponent (`d`) of every stored signing key, opened with `sealer`.
async fn private_parts(store: &Arc<dyn Store>, sealer: &Sealer) -> Vec<String> {
    let mut out = Vec::new();
    for k in store.keys().await.unwrap() {
        let jwk: Value =
            serde_json::from_str(sealer.open(&k.private_jwk, &k.kid).unwrap().expose()).unwrap();
        out.push(jwk["d"].as_str().unwrap().to_owned());
    }
    assert!(!out.is_empty());
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_copy_of_the_store_file_holds_no_private_key_and_no_upstream_secret_and_only_its_owner_reads_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth.redb");
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path, clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let sealer = Sealer::new(kek(1));
    let h = harness_on(
        engine(&store, &clock, sealer.clone(), &corp, testing::config()).await,
        &store,
        &clock,
    );
    let c = public_client(&h).await;

    // An upstream login through the browser steps: the verifier is parked (sealed) while the user is away.
    let browser = h.server.browser_session(None).await.unwrap();
    let prompt = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    let away = h
        .server
        .start_upstream(
            &prompt.handle,
            "corp",
            &browser,
            "https://auth.example.com/callback",
        )
        .await
        .unwrap();
    let state = query(&away).remove("state").unwrap();
    let parked = h
        .store
        .pending(&oauth_core::Secret::new(state.as_str()).hash())
        .await
        .unwrap()
        .unwrap();
    let binding = parked.upstream.clone().unwrap();
    assert_eq!(binding.pkce_verifier.key_id(), Some(kek(1).id()));
    // A second round trip stays parked, so that the file holds a sealed verifier when it is read.
    let prompt2 = h
        .server
        .authorize(form(&authorize_query(
            &c.client_id,
            LOOPBACK,
            &for_resource(),
        )))
        .await
        .unwrap();
    h.server
        .start_upstream(
            &prompt2.handle,
            "corp",
            &browser,
            "https://auth.example.com/callback",
        )
        .await
        .unwrap();
    let callback: oauth_core::UpstreamCallback = form(&format!("code=c&state={}", enc(&state)));
    let (consent, login) = h
        .server
        .finish_upstream(&callback, Some(&browser))
        .await
        .unwrap();
    let verifiers = corp.started.lock().clone();
    assert_eq!(verifiers.len(), 2);
    assert_eq!(
        *corp.verifiers.lock(),
        verifiers[..1],
        "the provider got the verifier of its login back, opened"
    );
    // The logged-in browser session holds the upstream session (sealed in its record).
    let logged_in = h.server.log_in(&browser, login).await.unwrap();
    assert_eq!(
        logged_in.upstream.as_ref().map(|s| s.access_token.as_str()),
        Some(ACCESS)
    );
    let again = h
        .server
        .existing_session(Some(&logged_in.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.upstream, logged_in.upstream, "opened when read back");
    let url = h
        .server
        .approve_with(
            &consent.handle,
            corp_user("alice"),
            logged_in.upstream.clone(),
        )
        .await
        .unwrap();
    let code = query(&url).remove("code").unwrap();
    let t = h
        .server
        .token(None, code_request(&c.client_id, &code, LOOPBACK))
        .await
        .unwrap();
    let stored = only_grant(&store, "corp:alice").await;
    assert_eq!(
        stored.upstream.as_ref().unwrap().key_id(),
        Some(kek(1).id())
    );
    assert_eq!(
        sealer
            .open(stored.upstream.as_ref().unwrap(), "corp:alice")
            .unwrap()
            .refresh_token
            .as_deref(),
        Some(REFRESH)
    );
    // A refresh hands the provider the session in clear and stores the renewed one sealed.
    h.server
        .token(
            None,
            refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    assert_eq!(
        corp.rechecked.lock()[0].as_ref().unwrap().access_token,
        ACCESS
    );
    let renewed = only_grant(&store, "corp:alice").await;
    assert_eq!(
        sealer
            .open(renewed.upstream.as_ref().unwrap(), "corp:alice")
            .unwrap()
            .access_token,
        RENEWED
    );
    let private = private_parts(&store, &sealer).await;
    let kid = store.keys().await.unwrap()[0].kid.clone();
    let exported = serde_json::to_string(&h.server.admin().export().await.unwrap()).unwrap();
    drop(h);
    drop(store);

    let bytes = std::fs::read(&path).unwrap();
    // The scan reads the records: what is stored in clear is found (a session's CSRF token is not sealed: it
    // only guards the forms of a session whose cookie the store holds as a hash).
    assert!(contains(&bytes, &c.client_id) && contains(&bytes, &kid));
    assert!(contains(&bytes, &logged_in.csrf));
    for secret in private
        .iter()
        .map(String::as_str)
        .chain([ACCESS, REFRESH, RENEWED])
        .chain(verifiers.iter().map(String::as_str))
    {
        assert!(!contains(&bytes, secret), "{secret} in the store file");
        assert!(!exported.contains(secret), "{secret} in the export");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // A file found readable by others is tightened when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(EmbeddedStore::open(&path, clock.clone()).unwrap());
        assert_eq!(mode(&path), 0o600);
    }
}

/// `record` as an earlier version stored it: every sealed field in plaintext.
fn legacy_key(record: &KeyRecord, sealer: &Sealer) -> KeyRecord {
    let mut v = serde_json::to_value(record).unwrap();
    v["private_jwk"] = json!(
        sealer
            .open(&record.private_jwk, &record.kid)
            .unwrap()
            .expose()
    );
    serde_json::from_value(v).unwrap()
}

fn legacy_grant(record: &GrantRecord, sealer: &Sealer) -> GrantRecord {
    let mut v = serde_json::to_value(record).unwrap();
    let upstream = sealer
        .open(record.upstream.as_ref().unwrap(), &record.identity.subject)
        .unwrap();
    v["upstream"] = serde_json::to_value(upstream).unwrap();
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn a_store_written_before_sealing_loads_and_its_secrets_are_sealed_as_they_are_written_again()
{
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let old = Sealer::new(kek(1));
    let h = harness_on(
        engine(&store, &clock, old.clone(), &corp, testing::config()).await,
        &store,
        &clock,
    );
    let c = public_client(&h).await;
    let t = upstream_tokens(&h, &c.client_id, corp_user("alice")).await;
    // Turn the store into what an earlier version wrote: the key and the grant's upstream session in clear.
    let key = store.keys().await.unwrap().remove(0);
    store.put_key(&legacy_key(&key, &old)).await.unwrap();
    let grant = only_grant(&store, "corp:alice").await;
    store
        .put_grant(&legacy_grant(&grant, &old), Duration::from_secs(3600))
        .await
        .unwrap();
    let d = private_parts(&store, &old).await.remove(0);
    let raw = serde_json::to_string(&store.keys().await.unwrap()).unwrap();
    assert!(raw.contains(&d), "the key is in clear now");
    assert_eq!(store.keys().await.unwrap()[0].private_jwk.key_id(), None);

    // A start with a key-encryption key (not the one above: plaintext needs none) seals the signing key.
    let sealer = Sealer::new(kek(2));
    let h = harness_on(
        engine(&store, &clock, sealer.clone(), &corp, testing::config()).await,
        &store,
        &clock,
    );
    let keys = h.server.admin().keys().await.unwrap();
    assert_eq!(keys.len(), 1, "the same key, not a new one");
    assert_eq!(keys[0].sealed_with.as_deref(), Some(kek(2).id()));
    assert_eq!(keys[0].kid, key.kid);
    let raw = serde_json::to_string(&store.keys().await.unwrap()).unwrap();
    assert!(!raw.contains(&d), "sealed in the store too");
    h.server
        .verify(Some(&bearer(&t.access_token)), resource(&h))
        .expect("tokens signed before still verify");
    // The legacy grant refreshes: the provider gets its plaintext session, the grant is written back sealed.
    h.server
        .token(
            None,
            refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    assert_eq!(
        corp.rechecked
            .lock()
            .last()
            .unwrap()
            .as_ref()
            .unwrap()
            .access_token,
        ACCESS
    );
    let resealed = only_grant(&store, "corp:alice").await;
    assert_eq!(
        resealed.upstream.as_ref().unwrap().key_id(),
        Some(kek(2).id())
    );
    let raw = serde_json::to_string(&resealed).unwrap();
    assert!(!raw.contains(RENEWED) && !raw.contains(REFRESH), "{raw}");
}

#[tokio::test]
async fn the_key_encryption_key_rotates_through_a_previous_key_and_a_missing_one_is_named() {
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let h = harness_on(
        engine(
            &store,
            &clock,
            Sealer::new(kek(1)),
            &corp,
            testing::config(),
        )
        .await,
        &store,
        &clock,
    );
    let c = public_client(&h).await;
    let t = upstream_tokens(&h, &c.client_id, corp_user("alice")).await;

    // Only the new key: the stored signing key does not open, and the message names the key it needs.
    let Err(e) = AuthServer::new(
        testing::config(),
        store.clone(),
        Sealer::new(kek(2)),
        clock.clone(),
    )
    .await
    else {
        panic!("started without the key that sealed the signing key")
    };
    assert_eq!(
        e.to_string(),
        format!(
            "a stored secret is sealed with key-encryption key `{}`, which is not configured (the current key is `{}`); configure it as a previous key",
            kek(1).id(),
            kek(2).id()
        )
    );

    // The new key current, the old one previous: the signing key is sealed again at start, the grant at its
    // next refresh.
    let rotated = Sealer::new(kek(2)).with_previous([kek(1)]);
    let h = harness_on(
        engine(&store, &clock, rotated, &corp, testing::config()).await,
        &store,
        &clock,
    );
    assert_eq!(
        h.server.admin().keys().await.unwrap()[0]
            .sealed_with
            .as_deref(),
        Some(kek(2).id())
    );
    assert_eq!(
        only_grant(&store, "corp:alice")
            .await
            .upstream
            .unwrap()
            .key_id(),
        Some(kek(1).id()),
        "not refreshed yet"
    );
    let t = h
        .server
        .token(
            None,
            refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    assert_eq!(
        only_grant(&store, "corp:alice")
            .await
            .upstream
            .unwrap()
            .key_id(),
        Some(kek(2).id())
    );

    // Everything resealed: the old key can go.
    let h = harness_on(
        engine(
            &store,
            &clock,
            Sealer::new(kek(2)),
            &corp,
            testing::config(),
        )
        .await,
        &store,
        &clock,
    );
    h.server
        .token(
            None,
            refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), ""),
        )
        .await
        .unwrap();
    assert_eq!(
        corp.rechecked
            .lock()
            .last()
            .unwrap()
            .as_ref()
            .unwrap()
            .access_token,
        RENEWED
    );
}

#[tokio::test]
async fn an_upstream_session_moved_into_another_users_grant_does_not_open() {
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let h = harness_on(
        engine(
            &store,
            &clock,
            Sealer::new(kek(1)),
            &corp,
            testing::config(),
        )
        .await,
        &store,
        &clock,
    );
    let c = public_client(&h).await;
    upstream_tokens(&h, &c.client_id, corp_user("alice")).await;
    let t = upstream_tokens(&h, &c.client_id, corp_user("mallory")).await;
    let alices = only_grant(&store, "corp:alice").await;
    let mut mallorys = only_grant(&store, "corp:mallory").await;
    mallorys.upstream = alices.upstream;
    store
        .put_grant(&mallorys, Duration::from_secs(3600))
        .await
        .unwrap();
    let refused = token_refused(
        &h,
        refresh_request(&c.client_id, t.refresh_token.as_deref().unwrap(), ""),
    )
    .await;
    assert_eq!(
        refused,
        (
            500,
            body("server_error", "the authorization server failed internally")
        )
    );
    assert!(
        corp.rechecked.lock().is_empty(),
        "the provider never saw alice's session"
    );
}

#[tokio::test]
async fn an_export_travels_sealed_and_imports_where_the_exporting_key_is_a_previous_key() {
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let source = Sealer::new(kek(1));
    let h = harness_on(
        engine(&store, &clock, source.clone(), &corp, testing::config()).await,
        &store,
        &clock,
    );
    let export = h.server.admin().export().await.unwrap();
    let text = serde_json::to_string(&export).unwrap();
    for d in private_parts(&store, &source).await {
        assert!(!text.contains(&d));
    }

    let target: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let err = StoreTransfer::new(target.clone(), Sealer::new(kek(2)))
        .import(&export)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "signing key {}: a stored secret is sealed with key-encryption key `{}`, which is not configured (the current key is `{}`); configure it as a previous key",
            export.keys()[0].kid,
            kek(1).id(),
            kek(2).id()
        )
    );
    assert!(target.keys().await.unwrap().is_empty());
    let s = StoreTransfer::new(target.clone(), Sealer::new(kek(2)).with_previous([kek(1)]))
        .import(&export)
        .await
        .unwrap();
    assert_eq!(s.keys, 1);
    let moved = target.keys().await.unwrap();
    assert_eq!(moved[0].private_jwk.key_id(), Some(kek(2).id()));
    // The engine on the target, with its own key only, signs with the moved key.
    let there = AuthServer::new(
        testing::config(),
        target,
        Sealer::new(kek(2)),
        clock.clone(),
    )
    .await
    .unwrap();
    assert_eq!(there.jwks(), h.server.jwks());
}

fn rotating(every: Duration) -> ServerConfig {
    let mut c = testing::config();
    c.signing_key_rotation = Some(every);
    c
}

#[tokio::test]
async fn the_signing_key_rotates_on_its_schedule_once_among_instances() {
    let day = Duration::from_secs(24 * 3600);
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let a = engine(&store, &clock, testing::sealer(), &corp, rotating(day)).await;
    let b = engine(&store, &clock, testing::sealer(), &corp, rotating(day)).await;
    let first = a.admin().keys().await.unwrap()[0].kid.clone();
    assert_eq!(a.rotate_keys_if_due().await.unwrap(), None, "a fresh key");
    clock.advance(day - Duration::from_secs(1));
    assert_eq!(b.rotate_keys_if_due().await.unwrap(), None);
    clock.advance(Duration::from_secs(1));
    // Due: both instances check at once, one rotates.
    let (x, y) = tokio::join!(a.rotate_keys_if_due(), b.rotate_keys_if_due());
    let rotated: Vec<String> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let keys = a.admin().keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, first);
    assert!(keys[0].retired_at.is_some(), "{keys:?}");
    assert_eq!(keys[1].kid, rotated[0]);
    // Not due again until the new key has signed a day; then the same again.
    assert_eq!(a.rotate_keys_if_due().await.unwrap(), None);
    assert_eq!(b.rotate_keys_if_due().await.unwrap(), None);
    clock.advance(day);
    assert!(a.rotate_keys_if_due().await.unwrap().is_some());

    // Off: never.
    let off = engine(&store, &clock, testing::sealer(), &corp, {
        let mut c = testing::config();
        c.signing_key_rotation = None;
        c
    })
    .await;
    clock.advance(day * 365);
    assert_eq!(off.rotate_keys_if_due().await.unwrap(), None);
    // A zero period is refused by name.
    let Err(e) = AuthServer::new(
        rotating(Duration::ZERO),
        store.clone(),
        testing::sealer(),
        clock.clone(),
    )
    .await
    else {
        panic!("started with a zero rotation period")
    };
    assert_eq!(
        e.to_string(),
        "invalid configuration: signing_key_rotation: must be greater than zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_rotates_a_signing_key_that_is_due() {
    let day = Duration::from_secs(24 * 3600);
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let server = Arc::new(engine(&store, &clock, testing::sealer(), &corp, rotating(day)).await);
    let before = server.admin().keys().await.unwrap();
    clock.advance(day);
    let maintenance = tokio::spawn({
        let server = Arc::clone(&server);
        async move { server.maintain().await }
    });
    let mut keys = before.clone();
    // The rotation writes the store, then loads the key: wait for both (the test once read in between).
    for _ in 0..100 {
        keys = server.admin().keys().await.unwrap();
        if keys.len() > 1 && server.jwks()["keys"].as_array().unwrap().len() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    maintenance.abort();
    assert_eq!(keys.len(), 2, "rotated by the housekeeping loop: {keys:?}");
    assert_eq!(keys[0].kid, before[0].kid);
    // The new key signs at once (no activation delay on one instance).
    assert_eq!(
        server.jwks()["keys"].as_array().unwrap().len(),
        2,
        "both published"
    );
}

/// Write access to the store is not the power to add a signing key: once the store's keys are sealed, a plaintext
/// key written beside them (by someone without the key-encryption key) is neither used, nor published, nor
/// sealed at the next start.
#[tokio::test]
async fn a_plaintext_key_planted_in_a_store_of_sealed_keys_is_ignored_and_never_sealed() {
    let clock = FixedClock::new();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory(clock.clone()).unwrap());
    let corp = Arc::new(Corp::default());
    let sealer = Sealer::new(kek(1));
    let h = harness_on(
        engine(&store, &clock, sealer.clone(), &corp, testing::config()).await,
        &store,
        &clock,
    );
    let real = store.keys().await.unwrap().remove(0);
    // The attacker's key: a real key pair of their own, stored in clear under a kid of their choosing and newer
    // than ours, so that it would sign if it were believed.
    let mut planted = legacy_key(&real, &sealer);
    let mut jwk = {
        use josekit::jwk::KeyPair as _;
        josekit::jws::ES256
            .generate_key_pair()
            .unwrap()
            .to_jwk_key_pair()
    };
    jwk.set_key_id("planted");
    let mut v = serde_json::to_value(&planted).unwrap();
    v["kid"] = json!("planted");
    v["private_jwk"] = json!(jwk.to_string());
    v["created_at"] = json!(real.created_at + 1);
    planted = serde_json::from_value(v).unwrap();
    store.put_key(&planted).await.unwrap();

    for server in [
        &h.server,
        &engine(&store, &clock, sealer.clone(), &corp, testing::config()).await,
    ] {
        server.reload_keys().await.unwrap();
        let jwks = server.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [real.kid.as_str()], "not published");
    }
    let stored = store.keys().await.unwrap();
    let planted_now = stored.iter().find(|k| k.kid == "planted").unwrap();
    assert_eq!(
        planted_now.private_jwk.key_id(),
        None,
        "never sealed by a start"
    );
    let c = public_client(&h).await;
    let t = upstream_tokens(&h, &c.client_id, corp_user("alice")).await;
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t.access_token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], real.kid.as_str(), "signed with our key");
}
