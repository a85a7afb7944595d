//! Process wiring: the one place that picks concrete backends from the configuration.
//!
//! Handlers see only [`AppState`]; nothing under `handlers/` names a store backend, josekit or a template
//! engine's setup.

use std::sync::Arc;

use oauth_core::{
    AuthServer, Clock, EmbeddedStore, IdentityProvider, LocalUsers, RedisConfig, RedisStore,
    StartError, Store, StoreError, SystemClock,
};

use crate::config::{Config, GateConfig, ProviderConfig, StoreConfig};
use crate::pages::{LoginChoices, Pages};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The store could not be opened.
    #[error("cannot open the store at {path}: {source}")]
    Store {
        /// The store file, or the Redis URL with its password redacted.
        path: String,
        /// Why.
        source: StoreError,
    },
    /// The engine refused to start.
    #[error(transparent)]
    Engine(#[from] StartError),
    /// The users could not be loaded.
    #[error("users: {0}")]
    Users(String),
    /// An upstream identity provider could not be set up.
    #[error("provider {id}: {reason}")]
    Provider {
        /// The provider's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Creating the data directory failed.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the configured store.
///
/// # Errors
/// [`StartupError::Store`] naming the file (or the redacted Redis URL), [`StartupError::DataDir`] if its
/// directory cannot be created. Redis is not contacted here: the pool connects on first use.
pub fn open_store(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StartupError> {
    match &config.store {
        StoreConfig::Embedded { path, cache_bytes } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StartupError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let store =
                EmbeddedStore::open_with_cache(path, clock, *cache_bytes).map_err(|source| {
                    StartupError::Store {
                        path: path.display().to_string(),
                        source,
                    }
                })?;
            Ok(Arc::new(store))
        }
        StoreConfig::Memory => {
            let store = EmbeddedStore::in_memory(clock).map_err(|source| StartupError::Store {
                path: "(memory)".into(),
                source,
            })?;
            Ok(Arc::new(store))
        }
        StoreConfig::Redis(redis) => {
            let mut c = RedisConfig::new(redis.url.0.clone(), redis.key_prefix.clone());
            c.pool_size = redis.pool_size;
            c.timeout = redis.timeout;
            let store = RedisStore::new(c, clock).map_err(|source| StartupError::Store {
                path: oauth_core::store::redact_url(&redis.url.0),
                source,
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// Builds the engine over the configured store (used by `serve` and by the admin commands).
///
/// # Errors
/// [`StartupError`].
pub async fn build_auth(config: &Config) -> Result<Arc<AuthServer>, StartupError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open_store(config, Arc::clone(&clock))?;
    let providers = build_providers(config, Arc::clone(&clock))?;
    Ok(Arc::new(
        AuthServer::new(config.server.clone(), store, clock)
            .await?
            .with_providers(providers),
    ))
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
        match p {
            ProviderConfig::Oidc(c) => {
                let provider =
                    oauth_core::upstream::OidcProvider::new(c.clone(), Arc::clone(&clock))
                        .map_err(|reason| StartupError::Provider {
                            id: c.id.clone(),
                            reason,
                        })?;
                providers.push(Arc::new(provider));
            }
            ProviderConfig::Github(c) => {
                let provider =
                    oauth_core::upstream::GithubProvider::new(c.clone(), Arc::clone(&clock))
                        .map_err(|reason| StartupError::Provider {
                            id: c.id.clone(),
                            reason,
                        })?;
                providers.push(Arc::new(provider));
            }
        }
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
    /// Login, consent and error pages.
    pub pages: Arc<Pages>,
    /// Whether cookies get `Secure` and the `__Host-` prefix (the issuer is https).
    pub secure_cookies: bool,
    /// How users can sign in (for the login page).
    pub login: Arc<LoginChoices>,
    /// The gate's identity header names, parsed once.
    pub identity_headers: Arc<crate::identity_headers::IdentityHeaderNames>,
}

impl AppState {
    /// Builds the state from the configuration.
    ///
    /// # Errors
    /// [`StartupError`].
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let auth = build_auth(config).await?;
        Self::with_auth(config, auth)
    }

    /// Builds the state around an existing engine (tests share one engine between several apps). Password logins
    /// go to the engine's `local` provider ([`build_providers`]).
    ///
    /// # Errors
    /// None today; kept for the callers' sake.
    pub fn with_auth(config: &Config, auth: Arc<AuthServer>) -> Result<Self, StartupError> {
        let upstream = auth
            .providers()
            .iter()
            .filter(|p| p.id() != "local")
            .map(|p| (p.id().to_owned(), p.display_name().to_owned()))
            .collect();
        let login = Arc::new(LoginChoices {
            upstream,
            password: !config.users.is_empty(),
        });
        Ok(AppState {
            login,
            secure_cookies: config.server.issuer.starts_with("https://"),
            auth,
            gate: Arc::new(config.gate.clone()),
            identity_headers: Arc::new(crate::identity_headers::IdentityHeaderNames::new(
                &config.gate.headers,
            )),
            pages: Arc::new(Pages::new()),
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
