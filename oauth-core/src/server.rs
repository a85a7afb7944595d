//! The [`AuthServer`] facade: configuration plus the seams, one `&self` method per endpoint.
//!
//! Each method returns a domain outcome or an [`Error`](crate::Error), never an HTTP type; the methods live in
//! the `flow` modules, one per endpoint. The server is `Send + Sync` and meant to be shared behind an `Arc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::config::{ConfigError, ServerConfig};
use crate::keys::{JosekitKeyManager, KeyError};
use crate::seal::Sealer;
use crate::store::{Store, StoreError, StoreEvent, StoreSettings};
use crate::upstream::IdentityProvider;
use crate::verifier::Verifier;

/// The least time between two key reloads triggered by an unknown `kid` (a flood of forged `kid`s must not turn
/// into a flood of store reads).
const UNKNOWN_KID_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// How many clients' last recorded use an instance remembers (about 100 bytes each).
const NOTED_USE_CAPACITY: usize = 10_000;

/// How long the instance that won the election for a scheduled key rotation has to perform it before another
/// instance may try (if it failed, the old key simply signs a little longer).
const ROTATION_CLAIM: Duration = Duration::from_secs(600);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; the error names the field.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),
    /// The signing keys could not be loaded or generated.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store could not be opened ([`AuthServer::open`]); the text names the file or the redacted Redis URL.
    #[error(transparent)]
    OpenStore(#[from] crate::store::OpenStoreError),
}

/// The OAuth 2.1 authorization server engine.
pub struct AuthServer {
    pub(crate) config: ServerConfig,
    /// The store. Private to the crate: everything a caller needs from it is a protocol method,
    /// [`AuthServer::admin`] or [`AuthServer::maintain`], so no caller can bypass the engine's rules (hashing,
    /// revocation before deletion, announcements).
    pub(crate) store: Arc<dyn Store>,
    /// The store as given, which `store` wraps ([`crate::store::Instrumented`]): kept to wrap it again when a
    /// sink is installed.
    pub(crate) raw_store: Arc<dyn Store>,
    /// Where the engine's [`Event`](crate::events::Event)s go ([`AuthServer::with_event_sink`]).
    pub(crate) events: Arc<dyn crate::events::EventSink>,
    pub(crate) keys: JosekitKeyManager,
    /// Seals and opens the secrets the store must give back (upstream sessions, the upstream PKCE verifier; the
    /// key manager holds its own copy for the signing keys).
    pub(crate) sealer: Sealer,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) verifier: Verifier,
    pub(crate) providers: Vec<Arc<dyn IdentityProvider>>,
    /// The configured resources, parsed once: `/verify` maps every request URL onto them.
    pub(crate) resource_index: crate::resource_index::ResourceIndex,
    /// When an unknown `kid` last caused a key reload. Monotonic time: this is rate limiting, not token time.
    last_kid_reload: Mutex<Option<Instant>>,
    /// Client metadata documents (URL `client_id`s): the fetcher and caches, when enabled.
    pub(crate) documents: Option<crate::cimd::ClientDocuments>,
    /// `jti`s of accepted `private_key_jwt` assertions, until they expire.
    pub(crate) assertion_jtis: crate::cimd::assertion::JtiLedger,
    /// Rate limits per client address on the anonymous endpoints.
    pub(crate) throttle: crate::throttle::Throttle,
    /// When this instance last recorded each (recently active) client's use, so that a refresh need not read
    /// the store to learn that the record is fresh. Bounded; a forgotten entry costs one read.
    pub(crate) noted_use: quick_cache::sync::Cache<String, u64>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// Validates the configuration, loads (or on first start generates and persists) the signing keys, and loads
    /// the revocation log into memory. `sealer` holds the key-encryption key(s) that seal the secrets the store
    /// keeps (see [`Sealer`]); every instance sharing a store needs the same ones, and a persistent store needs
    /// the same ones at every start. Signing keys it finds unsealed, or sealed with a previous key-encryption
    /// key, are sealed again with the current one here.
    ///
    /// # Errors
    /// [`StartError`] naming what is wrong; [`StartError::Keys`] with [`KeyError::Sealed`] if a stored signing
    /// key is sealed with a key-encryption key `sealer` does not hold.
    pub async fn new(
        config: ServerConfig,
        store: Arc<dyn Store>,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let documents = crate::cimd::ClientDocuments::from_config(&config.client_metadata)
            .map_err(StartError::Config)?;
        let keys = JosekitKeyManager::load_or_generate(
            store.as_ref(),
            config.signing_alg,
            &sealer,
            clock.as_ref(),
        )
        .await?;
        let resource_index = crate::resource_index::ResourceIndex::new(&config.resources);
        let throttle = crate::throttle::Throttle::new(&config.rate_limits, Arc::clone(&clock));
        let events: Arc<dyn crate::events::EventSink> = Arc::new(crate::events::NoEvents);
        let raw_store = store;
        let store: Arc<dyn Store> = Arc::new(crate::store::Instrumented::new(
            Arc::clone(&raw_store),
            Arc::clone(&events),
        ));
        let server = AuthServer {
            raw_store,
            events,
            throttle,
            verifier: Verifier::new(config.verify_cache_bytes),
            config,
            store,
            keys,
            sealer,
            clock,
            providers: Vec::new(),
            resource_index,
            last_kid_reload: Mutex::new(None),
            documents,
            assertion_jtis: crate::cimd::assertion::JtiLedger::default(),
            noted_use: quick_cache::sync::Cache::new(NOTED_USE_CAPACITY),
        };
        server.sync().await?;
        Ok(server)
    }

    /// Opens the built-in store `settings` describe, then starts as [`AuthServer::new`]: the way for an adapter
    /// that picks the backend from its configuration without naming a store type.
    ///
    /// # Errors
    /// [`StartError::OpenStore`] naming the file (or the redacted Redis URL), or as [`AuthServer::new`].
    pub async fn open(
        config: ServerConfig,
        settings: &StoreSettings,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let store = crate::store::open(settings, Arc::clone(&clock))?;
        Self::new(config, store, sealer, clock).await
    }

    /// Registers the identity providers users log in with (local users, GitHub, OIDC…). The engine needs them to
    /// start upstream logins, finish callbacks, and re-check users at refresh.
    #[must_use]
    pub fn with_providers(mut self, providers: Vec<Arc<dyn IdentityProvider>>) -> Self {
        self.providers = providers;
        self
    }

    /// Resolves URL `client_id`s with `fetcher` instead of the built-in one (feature `cimd`): an embedder's own
    /// fetcher, or the built-in one with a fixed host table in tests. Ignored unless
    /// [`ServerConfig::client_metadata`] is enabled. The fetcher must apply the safeguards described in
    /// [`crate::cimd`].
    #[must_use]
    pub fn with_client_document_fetcher(
        mut self,
        fetcher: Arc<dyn crate::cimd::ClientDocumentFetcher>,
    ) -> Self {
        self.documents = self.config.client_metadata.enabled.then(|| {
            crate::cimd::ClientDocuments::new(self.config.client_metadata.clone(), fetcher)
        });
        self
    }

    /// The registered identity providers, in configuration order.
    pub fn providers(&self) -> &[Arc<dyn IdentityProvider>] {
        &self.providers
    }

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<&Arc<dyn IdentityProvider>> {
        self.providers.iter().find(|p| p.id() == id)
    }

    /// Pulls revocations recorded since the last sync (by any instance sharing the store) into the in-memory set.
    /// [`AuthServer::maintain`] calls this every [`REVOCATION_SYNC_EVERY`](crate::maintain::REVOCATION_SYNC_EVERY).
    ///
    /// # Errors
    /// Store failures.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let entries = self.store.revocations_since(self.verifier.cursor()).await?;
        let now_ms = self.clock.unix_millis();
        for recorded_at in self.verifier.apply(&entries, self.clock.unix()) {
            self.emit(crate::events::Event::RevocationApplied {
                lag_ms: now_ms.saturating_sub(recorded_at),
            });
        }
        self.verifier.mark_synced(now_ms);
        Ok(())
    }

    /// The verified-token cache's hit and miss counts since the start, and its size now.
    pub fn verify_cache_stats(&self) -> crate::verifier::VerifyCacheStats {
        self.verifier.cache_stats()
    }

    /// Reacts to a change another instance announced through the store ([`Store::events`]): pulls revocations,
    /// or reloads the signing keys.
    ///
    /// # Errors
    /// Store or key failures; the periodic sync and key reload are the safety net.
    pub async fn on_store_event(&self, event: StoreEvent) -> Result<(), KeyError> {
        match event {
            StoreEvent::Revoked => self.sync().await?,
            StoreEvent::KeysChanged => self.reload_keys().await?,
            StoreEvent::Reconnected => {
                self.sync().await?;
                self.reload_keys().await?;
            }
        }
        Ok(())
    }

    /// Makes a fresh signing key active; the old one stays published until its last token expired.
    ///
    /// # Errors
    /// Key or store failures.
    pub async fn rotate_keys(&self) -> Result<String, KeyError> {
        let retire_after = self.config.access_token_ttl + self.config.leeway;
        self.keys
            .rotate(
                self.store.as_ref(),
                self.clock.as_ref(),
                retire_after,
                self.config.key_activation_delay,
            )
            .await
    }

    /// Rotates the signing key if [`ServerConfig::signing_key_rotation`] is set and the newest key has signed that
    /// long; returns the new key's `kid` if this instance rotated. [`AuthServer::maintain`] calls this every
    /// [`KEY_ROTATION_CHECK_EVERY`](crate::maintain::KEY_ROTATION_CHECK_EVERY).
    ///
    /// Instances sharing a store see the rotation fall due at the same moment; the store elects one of them
    /// (through its atomic counter with a lifetime, the one login regulation counts with), which rotates as
    /// [`Admin::rotate_keys`](crate::Admin::rotate_keys) does, and the others load the new key as after an
    /// operator's rotation.
    ///
    /// # Errors
    /// Key or store failures.
    pub async fn rotate_keys_if_due(&self) -> Result<Option<String>, KeyError> {
        let Some(every) = self.config.signing_key_rotation else {
            return Ok(None);
        };
        let Some(replaces) = self
            .keys
            .rotation_due(self.store.as_ref(), self.clock.as_ref(), every)
            .await?
        else {
            return Ok(None);
        };
        let claim = format!("key-rotation:{replaces}");
        if self.store.count_failure(&claim, ROTATION_CLAIM).await? != 1 {
            return Ok(None);
        }
        let kid = self.rotate_keys().await?;
        tracing::info!(kid = %kid, "signing key rotated on schedule");
        Ok(Some(kid))
    }

    /// Re-reads the signing keys from the store (after another instance rotated them).
    ///
    /// # Errors
    /// Key or store failures.
    pub async fn reload_keys(&self) -> Result<(), KeyError> {
        self.keys
            .reload(self.store.as_ref(), self.clock.as_ref())
            .await
    }

    /// Reloads the keys if `token` names a `kid` this instance does not know, at most once per second; `true`
    /// if it reloaded (then verifying again may succeed).
    pub(crate) async fn reload_for_unknown_kid(&self, token: &str) -> bool {
        if !self.keys.is_unknown_kid(token) {
            return false;
        }
        {
            let mut last = self.last_kid_reload.lock();
            if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_RELOAD_EVERY) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.reload_keys().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "key reload for an unknown kid failed");
                false
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether the server can serve: the store answers and a signing key is loaded.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}
