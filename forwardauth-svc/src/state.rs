//! Process wiring: the one place that turns the configuration into an engine (store settings, key-encryption
//! key, identity providers) and the state handlers share.
//!
//! The store is opened by the engine from [`StoreSettings`] ([`store_settings`]): no part of the service names a
//! store type, so a backend can change without the service noticing. Handlers see only [`AppState`]; nothing
//! under `handlers/` names josekit or a template engine's setup.
//!
//! # The key-encryption key
//! The engine seals the secrets its store keeps with a key the service hands it ([`sealer`]). A configured key
//! was read with the configuration. Without one, the embedded store must still find the same key at every start,
//! so the first start generates it into a file beside the store (`<store file>.kek`, mode 0600, written before
//! anything is sealed with it) and later starts read it; whoever copies the store file for a backup must copy
//! the key file too, and should keep them apart. The memory store forgets everything at exit, so it gets a key
//! for the process.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oauth_core::{
    AuthServer, Clock, ConfigError, IdentityProvider, KeyEncryptionKey, LocalUsers,
    LocalUsersError, OpenStoreError, RedisConfig as RedisSettings, Sealer, StartError,
    StoreSettings, SystemClock,
};

use crate::config::{Config, GateConfig, ProviderConfig, StoreConfig};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The store could not be opened (the message names the file or the redacted Redis URL), or its directory
    /// could not be created.
    #[error(transparent)]
    Store(#[from] OpenStoreError),
    /// The engine refused to start.
    #[error(transparent)]
    Engine(#[from] StartError),
    /// The users could not be loaded.
    #[error("users: {0}")]
    Users(LocalUsersError),
    /// The audit file could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::observe::AuditOpenError),
    /// An upstream identity provider could not be set up.
    #[error("provider {id}: {reason}")]
    Provider {
        /// The provider's id.
        id: String,
        /// The setting and what is wrong with it.
        reason: ConfigError,
    },
    /// A template of `[pages] templates_dir` does not render.
    #[error("pages.templates_dir: {0}")]
    Pages(crate::pages::TemplateError),
    /// The key-encryption key could not be read, generated, or is missing.
    #[error("key-encryption key {path}: {reason}")]
    KeyEncryptionKey {
        /// The key file, or the setting that is missing.
        path: String,
        /// What is wrong (never the key).
        reason: String,
    },
}

/// Where the embedded store `store` keeps its generated key-encryption key: `<store file>.kek` beside it.
pub fn generated_key_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".kek");
    store.with_file_name(name)
}

/// The engine's [`Sealer`]: the configured key-encryption key (and previous ones), or, without one, the key
/// beside the embedded store (generated on first start), or a key for this process with the memory store.
///
/// # Errors
/// [`StartupError::KeyEncryptionKey`] if the generated key file cannot be read, written or parsed, or no key is
/// configured for Redis.
pub fn sealer(config: &Config) -> Result<Sealer, StartupError> {
    let keys = &config.key_encryption;
    let current = match (&keys.current, &config.store) {
        (Some(key), _) => key.clone(),
        (None, StoreConfig::Embedded { path, .. }) => key_beside(&generated_key_path(path))?,
        (None, StoreConfig::Memory) => KeyEncryptionKey::generate(),
        (None, StoreConfig::Redis(_)) => {
            return Err(StartupError::KeyEncryptionKey {
                path: "store.key_encryption_key_file".into(),
                reason: format!(
                    "not configured; the redis store needs one that every instance shares (or {})",
                    crate::config::ENV_KEY_ENCRYPTION_KEY
                ),
            });
        }
    };
    Ok(Sealer::new(current).with_previous(keys.previous.iter().cloned()))
}

/// The key in `path`, generated (mode 0600, with its directory) if there is no such file yet.
fn key_beside(path: &Path) -> Result<KeyEncryptionKey, StartupError> {
    let fail = |reason: String| StartupError::KeyEncryptionKey {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail(format!("cannot restrict to mode 0600: {e}")))?;
            }
            return KeyEncryptionKey::from_base64(&text).map_err(|e| fail(e.to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    let key = KeyEncryptionKey::generate();
    // Written whole to a file of its own, then linked into place (which fails if the name exists): a crash
    // leaves no half-written key, and two processes starting at once cannot both win.
    let mut draft = path.as_os_str().to_owned();
    draft.push(format!(".{}.tmp", std::process::id()));
    let draft = PathBuf::from(draft);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options
        .open(&draft)
        .and_then(|mut file| {
            file.write_all(format!("{}\n", key.expose_base64()).as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&draft, path));
    let _ = std::fs::remove_file(&draft);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), key_encryption_key = key.id(), "generated the key-encryption key beside the store; back it up with the store, but apart from it");
            Ok(key)
        }
        // Another process wrote it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_beside(path),
        Err(e) => Err(fail(format!("cannot write: {e}"))),
    }
}

/// The engine's settings for the configured store: the service never builds a store itself.
pub fn store_settings(store: &StoreConfig) -> StoreSettings {
    match store {
        StoreConfig::Embedded { path, cache_bytes } => StoreSettings::Embedded {
            path: path.clone(),
            cache_bytes: *cache_bytes,
        },
        StoreConfig::Memory => StoreSettings::Memory,
        StoreConfig::Redis(redis) => {
            let mut settings = RedisSettings::new(redis.url.0.clone(), redis.key_prefix.clone());
            settings.pool_size = redis.pool_size;
            settings.timeout = redis.timeout;
            StoreSettings::Redis(settings)
        }
    }
}

/// Builds the engine over the configured store (used by `serve` and by the admin commands). Redis is not
/// contacted to open the store (the pool connects on first use), but the engine's start reads it.
///
/// # Errors
/// [`StartupError`]; a store that cannot be opened is reported (as [`StartError::OpenStore`]) with its file or
/// redacted Redis URL.
pub async fn build_auth(config: &Config) -> Result<Arc<AuthServer>, StartupError> {
    build_auth_with(config, None).await
}

/// [`build_auth`], the engine's events going to the configured audit trail and to `metrics`.
///
/// # Errors
/// As [`build_auth`]; [`StartupError::Audit`] if the audit file cannot be opened.
pub async fn build_auth_with(
    config: &Config,
    metrics: Option<Arc<crate::observe::Metrics>>,
) -> Result<Arc<AuthServer>, StartupError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let providers = build_providers(config, Arc::clone(&clock))?;
    let audit = crate::observe::AuditSink::open(&config.audit, Arc::clone(&clock))?
        .map(|sink| Arc::new(sink.with_refusal_budget(config.gate.refusals_logged_per_sec)));
    let mut auth = AuthServer::open(
        config.server.clone(),
        &store_settings(&config.store),
        sealer(config)?,
        clock,
    )
    .await?
    .with_providers(providers);
    if let Some(sink) = crate::observe::sink(audit, metrics) {
        auth = auth.with_event_sink(sink);
    }
    Ok(Arc::new(auth))
}

/// A provider as the engine holds it.
fn shared(provider: impl IdentityProvider + 'static) -> Arc<dyn IdentityProvider> {
    Arc::new(provider)
}

/// The identity providers: local users first (always registered, so that a user removed from the users file
/// loses their grants at the next refresh), then the configured upstreams.
///
/// # Errors
/// [`StartupError::Users`] or [`StartupError::Provider`].
pub fn build_providers(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Vec<Arc<dyn IdentityProvider>>, StartupError> {
    let mut providers: Vec<Arc<dyn IdentityProvider>> = vec![Arc::new(
        LocalUsers::new(config.users.clone())
            .map_err(StartupError::Users)?
            .with_limits(config.password_checks),
    )];
    for p in &config.providers {
        let clock = Arc::clone(&clock);
        let (id, provider) = match p {
            ProviderConfig::Oidc(c) => (
                &c.id,
                oauth_core::upstream::OidcProvider::new(c.clone(), clock).map(shared),
            ),
            ProviderConfig::Github(c) => (
                &c.id,
                oauth_core::upstream::GithubProvider::new(c.clone(), clock).map(shared),
            ),
        };
        providers.push(provider.map_err(|reason| StartupError::Provider {
            id: id.clone(),
            reason,
        })?);
    }
    Ok(providers)
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub auth: Arc<AuthServer>,
    /// Gate settings.
    pub gate: Arc<GateConfig>,
    /// Whether cookies get `Secure` and the `__Host-` prefix (the issuer is https).
    pub secure_cookies: bool,
    /// The gate's identity header names, parsed once.
    pub identity_headers: Arc<crate::identity_headers::IdentityHeaderNames>,
    /// Whether the audit trail is on (then each request's client and user agent are kept for it).
    pub audit: bool,
    /// The metrics and where to serve them, when `[metrics] listen` is set.
    pub metrics: Option<(Arc<crate::observe::Metrics>, std::net::SocketAddr)>,
    /// The sign-in, consent, sign-out and error pages, with the brand of `[pages]`.
    pub pages: crate::pages::Pages,
    /// How many `/verify` refusals a second are logged (`[gate] refusals_logged_per_sec`).
    pub refusal_log: Arc<crate::observe::LineBudget>,
    /// The public listener's idle timeout and connection bound (`[http]`).
    pub http: crate::config::HttpConfig,
}

impl AppState {
    /// Builds the state from the configuration.
    ///
    /// # Errors
    /// [`StartupError`].
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let metrics = config.metrics_listen.map(|_| {
            Arc::new(crate::observe::Metrics::new(
                config.server.resources.iter().map(|r| r.resource.as_str()),
            ))
        });
        let auth = build_auth_with(config, metrics.clone()).await?;
        let mut state = Self::with_auth(config, auth)?;
        state.metrics = metrics.zip(config.metrics_listen);
        Ok(state)
    }

    /// Builds the state around an existing engine (tests share one engine between several apps).
    ///
    /// # Errors
    /// [`StartupError::Pages`] for a template that does not render (the configuration was checked when loaded,
    /// so only a configuration built in code gets here).
    pub fn with_auth(config: &Config, auth: Arc<AuthServer>) -> Result<Self, StartupError> {
        let pages = crate::pages::Pages::build(&config.pages, &config.server.issuer)
            .map_err(StartupError::Pages)?;
        Ok(AppState {
            pages,
            secure_cookies: config.server.issuer.starts_with("https://"),
            auth,
            gate: Arc::new(config.gate.clone()),
            identity_headers: Arc::new(crate::identity_headers::IdentityHeaderNames::new(
                &config.gate.headers,
            )),
            audit: config.audit != crate::config::AuditTarget::Off,
            metrics: None,
            refusal_log: Arc::new(crate::observe::LineBudget::new(
                config.gate.refusals_logged_per_sec,
            )),
            http: config.http,
        })
    }

    /// The session cookie's name: `__Host-` prefixed on https (RFC 6265bis §4.1.3.2).
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-fa_session"
        } else {
            "fa_session"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyEncryptionConfig;

    fn embedded(path: &Path) -> Config {
        let mut c = Config::defaults("127.0.0.1:8080".parse().unwrap());
        c.store = StoreConfig::Embedded {
            path: path.to_path_buf(),
            cache_bytes: oauth_core::store::EMBEDDED_CACHE_BYTES,
        };
        c
    }

    #[test]
    fn without_a_configured_key_the_embedded_store_gets_one_generated_beside_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("data").join("oauth.redb");
        let config = embedded(&store);
        let file = generated_key_path(&store);
        assert_eq!(file, dir.path().join("data").join("oauth.redb.kek"));
        let first = sealer(&config).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            KeyEncryptionKey::from_base64(&text).unwrap().id(),
            first.current_id()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = || std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(), 0o600);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(sealer(&config).unwrap().current_id(), first.current_id());
            assert_eq!(mode(), 0o600, "tightened when read");
        }
        assert_eq!(
            sealer(&config).unwrap().current_id(),
            first.current_id(),
            "read back, not generated again"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["oauth.redb.kek"], "no draft left behind");

        // A configured key wins, and previous keys come along.
        let mut given = config.clone();
        let key = KeyEncryptionKey::from_bytes([3; 32]);
        given.key_encryption = KeyEncryptionConfig::default();
        given.key_encryption.current = Some(key.clone());
        given.key_encryption.previous = vec![KeyEncryptionKey::from_bytes([4; 32])];
        let s = sealer(&given).unwrap();
        assert_eq!(s.current_id(), key.id());
        assert_eq!(s.previous_ids().count(), 1);

        std::fs::write(&file, "garbage").unwrap();
        let err = sealer(&config).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "key-encryption key {}: not base64 (expected the base64 of 32 random bytes, e.g. from `openssl rand -base64 32`)",
                file.display()
            )
        );
    }

    #[test]
    fn the_memory_store_gets_a_key_per_process_and_redis_needs_one_configured() {
        let mut config = Config::defaults("127.0.0.1:8080".parse().unwrap());
        config.store = StoreConfig::Memory;
        assert_ne!(
            sealer(&config).unwrap().current_id(),
            sealer(&config).unwrap().current_id()
        );
        let redis = crate::config::load(None, &|k| match k {
            "FORWARDAUTH_STORE_BACKEND" => Some("redis".into()),
            "FORWARDAUTH_REDIS_URL" => Some("redis://127.0.0.1:1".into()),
            "FORWARDAUTH_KEY_ENCRYPTION_KEY" => {
                Some(KeyEncryptionKey::from_bytes([1; 32]).expose_base64())
            }
            _ => None,
        })
        .unwrap();
        let mut unkeyed = redis.clone();
        unkeyed.key_encryption = KeyEncryptionConfig::default();
        assert_eq!(
            sealer(&unkeyed).unwrap_err().to_string(),
            "key-encryption key store.key_encryption_key_file: not configured; the redis store needs one that every instance shares (or FORWARDAUTH_KEY_ENCRYPTION_KEY)"
        );
        assert!(sealer(&redis).is_ok());
    }
}
