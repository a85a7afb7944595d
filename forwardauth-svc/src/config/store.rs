//! `[store]`: which backend keeps the engine's state (the embedded file, memory, or a shared Redis), with the
//! `FORWARDAUTH_STORE_*` and `FORWARDAUTH_REDIS_URL` overrides; and the key-encryption key that seals the secrets
//! the store must give back (signing keys, upstream tokens), with `FORWARDAUTH_KEY_ENCRYPTION_KEY` and
//! `FORWARDAUTH_KEY_ENCRYPTION_KEY_PREVIOUS`.
//!
//! Keys that belong to another backend are refused rather than ignored: a `path` next to `backend = "redis"` is
//! more likely a mistake than an intent. The Redis URL may hold a password, so no message quotes it and its
//! `Debug` is redacted.
//!
//! The key-encryption key is read here, at load, so that a missing or malformed key is a configuration error
//! naming the key and the file (or the variable); no message quotes key material, and its `Debug` shows only the
//! key's id. Without one, the embedded store gets a key generated beside its file on first start (see
//! [`crate::state::sealer`]) and the memory store a key of its own; Redis is shared by several instances, which
//! must all hold the same key, so there it must be configured.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use oauth_core::KeyEncryptionKey;

use super::ConfigError;
use super::source::{AT_LEAST_ONE, Ctx, GREATER_THAN_ZERO, Origin, SecretString};

/// Which store to use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The embedded persistent store in one file.
    Embedded {
        /// The store file.
        path: PathBuf,
        /// The bound of the store's page cache, in bytes.
        cache_bytes: usize,
    },
    /// In memory only: everything is lost at exit (for tests and demos).
    Memory,
    /// Redis, shared by several instances.
    Redis(RedisStoreConfig),
}

/// How to reach the shared Redis store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreConfig {
    /// `redis://` or `rediss://` URL; may carry a password, so its `Debug` is redacted.
    pub url: RedisUrl,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Pooled connections per instance.
    pub pool_size: usize,
    /// Bound on every Redis operation.
    pub timeout: Duration,
}

/// A Redis URL, which may contain a password: `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub String);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&oauth_core::store::redact_url(&self.0))
    }
}

/// How old the revocation state of an instance on Redis may get before `/verify` fails closed.
pub const REDIS_REVOCATION_MAX_STALENESS: Duration = Duration::from_secs(3);

/// How long after a rotation on Redis the new key starts signing (instances reload keys at least every 10 s).
pub const REDIS_KEY_ACTIVATION_DELAY: Duration = Duration::from_secs(30);

/// Environment variable overriding `store.path`.
pub const ENV_STORE_PATH: &str = "FORWARDAUTH_STORE_PATH";

/// Environment variable overriding `store.backend`.
pub const ENV_STORE_BACKEND: &str = "FORWARDAUTH_STORE_BACKEND";

/// Overrides `store.url`.
pub const ENV_REDIS_URL: &str = "FORWARDAUTH_REDIS_URL";

/// The key-encryption key itself (base64 of 32 bytes); overrides `store.key_encryption_key_file`.
pub const ENV_KEY_ENCRYPTION_KEY: &str = "FORWARDAUTH_KEY_ENCRYPTION_KEY";

/// Previous key-encryption keys (base64, comma-separated); overrides `store.key_encryption_key_previous_files`.
pub const ENV_KEY_ENCRYPTION_KEY_PREVIOUS: &str = "FORWARDAUTH_KEY_ENCRYPTION_KEY_PREVIOUS";

/// The key-encryption keys the configuration names. `Debug` shows their ids only.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct KeyEncryptionConfig {
    /// The key that seals, from `store.key_encryption_key_file` or [`ENV_KEY_ENCRYPTION_KEY`]. `None`: the
    /// embedded store's generated key file, or (memory store) a key for this process only.
    pub current: Option<KeyEncryptionKey>,
    /// Keys that still open what they sealed (during a rotation of the key-encryption key).
    pub previous: Vec<KeyEncryptionKey>,
}

/// The largest `store.cache_mib`: 64 GiB.
const MAX_CACHE_MIB: u64 = 65_536;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    backend: Option<String>,
    path: Option<PathBuf>,
    url: Option<SecretString>,
    key_prefix: Option<String>,
    pool_size: Option<usize>,
    timeout_ms: Option<u64>,
    cache_mib: Option<u64>,
    key_encryption_key_file: Option<PathBuf>,
    key_encryption_key_previous_files: Option<Vec<PathBuf>>,
}

/// The store and the key-encryption keys.
pub(super) fn store_config(
    ctx: &Ctx<'_>,
    mut raw: RawStore,
) -> Result<(StoreConfig, KeyEncryptionConfig), ConfigError> {
    let current_file = raw.key_encryption_key_file.take();
    let previous_files = raw.key_encryption_key_previous_files.take();
    let store = backend_config(ctx, raw)?;
    let keys = key_encryption(ctx, current_file, previous_files)?;
    if matches!(store, StoreConfig::Redis(_)) && keys.current.is_none() {
        return Err(ctx.invalid(
            "store.key_encryption_key_file",
            format!(
                "backend = \"redis\" needs a key-encryption key that every instance shares (a file holding the base64 of 32 random bytes, or {ENV_KEY_ENCRYPTION_KEY})"
            ),
        ));
    }
    Ok((store, keys))
}

/// Reads the key-encryption keys from the environment, else from the files the configuration names.
fn key_encryption(
    ctx: &Ctx<'_>,
    current_file: Option<PathBuf>,
    previous_files: Option<Vec<PathBuf>>,
) -> Result<KeyEncryptionConfig, ConfigError> {
    let from_file = |key: &str, path: &PathBuf| -> Result<KeyEncryptionKey, ConfigError> {
        let path = ctx.base.join(path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ctx.invalid(key, format!("cannot read {}: {e}", path.display())))?;
        KeyEncryptionKey::from_base64(&text)
            .map_err(|e| ctx.invalid(key, format!("{}: {e}", path.display())))
    };
    let from_env = |var: &'static str, text: &str| {
        KeyEncryptionKey::from_base64(text).map_err(|e| ConfigError::Env {
            var,
            reason: e.to_string(),
        })
    };
    let current = match (ctx.var(ENV_KEY_ENCRYPTION_KEY), &current_file) {
        (Some(v), _) => Some(from_env(ENV_KEY_ENCRYPTION_KEY, &v)?),
        (None, Some(p)) => Some(from_file("store.key_encryption_key_file", p)?),
        (None, None) => None,
    };
    let previous = match (ctx.var(ENV_KEY_ENCRYPTION_KEY_PREVIOUS), previous_files) {
        (Some(v), _) => v
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| from_env(ENV_KEY_ENCRYPTION_KEY_PREVIOUS, k))
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(files)) => files
            .iter()
            .enumerate()
            .map(|(i, p)| from_file(&format!("store.key_encryption_key_previous_files[{i}]"), p))
            .collect::<Result<Vec<_>, _>>()?,
        (None, None) => Vec::new(),
    };
    Ok(KeyEncryptionConfig { current, previous })
}

fn backend_config(ctx: &Ctx<'_>, raw: RawStore) -> Result<StoreConfig, ConfigError> {
    let backend = ctx
        .setting(
            ENV_STORE_BACKEND,
            "store.backend",
            raw.backend.as_deref(),
            |v| match v {
                "embedded" | "memory" | "redis" => Ok(v.to_owned()),
                other => Err(format!(
                    "expected \"embedded\", \"memory\" or \"redis\", not {other:?}"
                )),
            },
        )?
        .unwrap_or_else(|| "embedded".to_owned());
    if backend == "redis" {
        if raw.path.is_some() {
            return Err(ctx.invalid("store.path", "applies to the embedded backend only"));
        }
        if raw.cache_mib.is_some() {
            return Err(ctx.invalid("store.cache_mib", "applies to the embedded backend only"));
        }
        return redis_config(ctx, raw).map(StoreConfig::Redis);
    }
    let redis_only = [
        ("store.url", raw.url.is_some()),
        ("store.key_prefix", raw.key_prefix.is_some()),
        ("store.pool_size", raw.pool_size.is_some()),
        ("store.timeout_ms", raw.timeout_ms.is_some()),
    ];
    if let Some((key, _)) = redis_only.iter().find(|(_, set)| *set) {
        return Err(ctx.invalid(*key, "applies to backend = \"redis\" only"));
    }
    if backend == "memory" {
        return Ok(StoreConfig::Memory);
    }
    let path = match (ctx.var(ENV_STORE_PATH), raw.path) {
        (Some(v), _) => PathBuf::from(v),
        (None, Some(p)) if p.as_os_str().is_empty() => {
            return Err(ctx.invalid("store.path", "must not be empty"));
        }
        (None, Some(p)) => ctx.base.join(p),
        (None, None) => ctx.base.join("data/oauth.redb"),
    };
    let cache_bytes = match raw.cache_mib {
        None => oauth_core::store::EMBEDDED_CACHE_BYTES,
        Some(mb @ 1..=MAX_CACHE_MIB) => usize::try_from(mb * 1024 * 1024)
            .map_err(|_| ctx.invalid("store.cache_mib", "is too large for this machine"))?,
        Some(_) => {
            return Err(ctx.invalid(
                "store.cache_mib",
                format!("must be between 1 and {MAX_CACHE_MIB} (MiB)"),
            ));
        }
    };
    Ok(StoreConfig::Embedded { path, cache_bytes })
}

fn redis_config(ctx: &Ctx<'_>, raw: RawStore) -> Result<RedisStoreConfig, ConfigError> {
    let (url, origin) = match (ctx.var(ENV_REDIS_URL), raw.url) {
        (Some(v), _) => (v, Origin::Env(ENV_REDIS_URL)),
        (None, Some(SecretString(v))) => (v, Origin::File("store.url")),
        (None, None) => {
            return Err(ctx.invalid(
                "store.url",
                format!("backend = \"redis\" needs a URL (or {ENV_REDIS_URL})"),
            ));
        }
    };
    // The URL may hold a password: messages never quote it.
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {}
        Ok(_) => {
            return Err(ctx.at(
                &origin,
                "expected redis://[user:password@]host[:port][/db] or rediss://… (TLS)".into(),
            ));
        }
        Err(e) => return Err(ctx.at(&origin, format!("not a URL: {e}"))),
    }
    let key_prefix = raw.key_prefix.unwrap_or_else(|| "forwardauth".to_owned());
    if key_prefix.is_empty()
        || key_prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(ctx.invalid(
            "store.key_prefix",
            "must be non-empty, without braces, whitespace or control characters",
        ));
    }
    let pool_size = ctx
        .nonzero("store.pool_size", raw.pool_size, AT_LEAST_ONE)?
        .unwrap_or(16);
    let timeout = ctx
        .nonzero("store.timeout_ms", raw.timeout_ms, GREATER_THAN_ZERO)?
        .map_or(Duration::from_secs(2), Duration::from_millis);
    Ok(RedisStoreConfig {
        url: RedisUrl(url),
        key_prefix,
        pool_size,
        timeout,
    })
}
