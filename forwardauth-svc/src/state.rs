//! Process wiring: the one place that turns the configuration into an engine (store settings, identity
//! providers) and the state handlers share.
//!
//! The store is opened by the engine from [`StoreSettings`] ([`store_settings`]): no part of the service names a
//! store type, so a backend can change without the service noticing. Handlers see only [`AppState`]; nothing
//! under `handlers/` names josekit or a template engine's setup.

use std::sync::Arc;

use oauth_core::{
    AuthServer, Clock, ConfigError, IdentityProvider, LocalUsers, LocalUsersError, OpenStoreError,
    RedisConfig as RedisSettings, StartError, StoreSettings, SystemClock,
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
    /// An upstream identity provider could not be set up.
    #[error("provider {id}: {reason}")]
    Provider {
        /// The provider's id.
        id: String,
        /// The setting and what is wrong with it.
        reason: ConfigError,
    },
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let providers = build_providers(config, Arc::clone(&clock))?;
    Ok(Arc::new(
        AuthServer::open(config.server.clone(), &store_settings(&config.store), clock)
            .await?
            .with_providers(providers),
    ))
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

    /// Builds the state around an existing engine (tests share one engine between several apps).
    ///
    /// # Errors
    /// None today; kept for the callers' sake.
    pub fn with_auth(config: &Config, auth: Arc<AuthServer>) -> Result<Self, StartupError> {
        Ok(AppState {
            secure_cookies: config.server.issuer.starts_with("https://"),
            auth,
            gate: Arc::new(config.gate.clone()),
            identity_headers: Arc::new(crate::identity_headers::IdentityHeaderNames::new(
                &config.gate.headers,
            )),
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
