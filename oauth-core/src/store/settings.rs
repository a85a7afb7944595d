//! Opening a built-in store from plain settings.
//!
//! # Why
//! An adapter (the `forwardauth-svc` service, its command line) chooses the backend at run time from its
//! configuration file. If it built the backend itself, it would have to name [`EmbeddedStore`], `RedisStore` and
//! their options, and its code would change whenever a backend does. [`StoreSettings`] is plain data the adapter
//! can fill from any configuration format; [`open`] is the only place that turns it into a backend, so the
//! backend types stay the engine's business. An embedder with a store of its own still passes it to
//! [`AuthServer::new`](crate::AuthServer::new).
//!
//! Failures name what was being opened: the file, `(memory)`, or the Redis URL with its password redacted, so
//! the message can be shown to an operator as it is.

use std::path::PathBuf;
use std::sync::Arc;

use super::{EmbeddedStore, Store, StoreError};
use crate::clock::Clock;

/// Which built-in store to open, and how. `Debug` shows a Redis URL with its password redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSettings {
    /// The embedded store in one file, created (with its directory) if missing.
    Embedded {
        /// The store file.
        path: PathBuf,
        /// The bound of the page cache, in bytes ([`EMBEDDED_CACHE_BYTES`](super::EMBEDDED_CACHE_BYTES) is the
        /// usual choice).
        cache_bytes: usize,
    },
    /// The embedded store in memory only: everything is lost when the process ends (tests, demos).
    Memory,
    /// Redis, shared by several instances (feature `redis`). Not contacted here: the pool connects on first use.
    #[cfg(feature = "redis")]
    Redis(super::RedisConfig),
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The backend refused: a locked or foreign file, an invalid Redis URL or key prefix…
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// The store file, `(memory)`, or the Redis URL with its password redacted.
        path: String,
        /// Why.
        source: StoreError,
    },
    /// Another process holds the store file (a running server: the embedded store is one process's at a time).
    #[error("cannot open the store at {path}: another process holds it (a running server?)")]
    Locked {
        /// The store file.
        path: String,
    },
    /// The directory of the store file could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the store `settings` describe, on `clock`.
///
/// # Errors
/// [`OpenStoreError`] naming the file (or the redacted Redis URL).
pub fn open(
    settings: &StoreSettings,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, OpenStoreError> {
    match settings {
        StoreSettings::Embedded { path, cache_bytes } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| OpenStoreError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let store =
                EmbeddedStore::open_with_cache(path, clock, *cache_bytes).map_err(|source| {
                    match source {
                        StoreError::Unavailable(m) if m == super::embedded::LOCKED => {
                            OpenStoreError::Locked {
                                path: path.display().to_string(),
                            }
                        }
                        source => OpenStoreError::Open {
                            path: path.display().to_string(),
                            source,
                        },
                    }
                })?;
            Ok(Arc::new(store))
        }
        StoreSettings::Memory => {
            let store = EmbeddedStore::in_memory(clock).map_err(|source| OpenStoreError::Open {
                path: "(memory)".into(),
                source,
            })?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "redis")]
        StoreSettings::Redis(config) => {
            let store = super::RedisStore::new(config.clone(), clock).map_err(|source| {
                OpenStoreError::Open {
                    path: super::redact_url(&config.url),
                    source,
                }
            })?;
            Ok(Arc::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FixedClock;

    #[test]
    fn an_embedded_store_gets_its_directory_and_a_failure_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("oauth.redb");
        let settings = StoreSettings::Embedded {
            path: path.clone(),
            cache_bytes: super::super::EMBEDDED_CACHE_BYTES,
        };
        let store = open(&settings, FixedClock::new()).unwrap();
        assert!(path.exists());
        // The file is locked while `store` holds it.
        let Err(err) = open(&settings, FixedClock::new()) else {
            panic!("opened")
        };
        assert!(
            matches!(&err, OpenStoreError::Locked { path: p } if *p == path.display().to_string()),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "cannot open the store at {}: another process holds it (a running server?)",
                path.display()
            )
        );
        drop(store);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_failure_names_the_url_without_its_password() {
        let mut config =
            super::super::RedisConfig::new("redis://user:hunter2@127.0.0.1:1/0", "bad prefix");
        config.pool_size = 1;
        config.timeout = std::time::Duration::from_secs(1);
        let settings = StoreSettings::Redis(config);
        let Err(err) = open(&settings, FixedClock::new()) else {
            panic!("opened")
        };
        let err = err.to_string();
        assert!(
            err.starts_with("cannot open the store at redis://user:redacted@127.0.0.1:1/0: "),
            "{err}"
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
