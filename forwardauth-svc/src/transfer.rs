//! `store export` / `store import`: moving clients, signing keys and live revocations between stores, the path
//! from one machine (embedded store) to several instances (Redis).
//!
//! The file is one JSON document (`format`, `version`, `clients`, `keys`, `revocations`). It holds the private
//! signing keys, so it is created with mode 0600 and never overwrites an existing file. Live revocations travel
//! with the keys: tokens signed by an exported key stay valid at the new store, so their revocations must too.
//! Grants, refresh tokens, sessions and consent do not travel: users log in again after a move.
//!
//! Import is additive and idempotent: a client or key already present (same id) is left as it is, and
//! re-appending a revocation is harmless.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::Path;

use oauth_core::Store;
use oauth_core::store::{ClientRecord, KeyRecord, Revocation, StoreError};
use serde::{Deserialize, Serialize};

/// The `format` value of an export file.
pub const FORMAT: &str = "forwardauth-store-export";

/// An export file.
#[derive(Debug, Serialize, Deserialize)]
pub struct Export {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// Every client.
    pub clients: Vec<ClientRecord>,
    /// Every signing key, private material included.
    pub keys: Vec<KeyRecord>,
    /// The live revocations.
    pub revocations: Vec<Revocation>,
}

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an export of this version.
    #[error("{path}: not a store export (version 1): {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// What was moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Clients written (exported, or imported as new).
    pub clients: usize,
    /// Clients already present at the import target (left as they are).
    pub clients_present: usize,
    /// Keys written.
    pub keys: usize,
    /// Keys already present.
    pub keys_present: usize,
    /// Revocations written.
    pub revocations: usize,
}

/// Writes everything `store` holds to a new file at `path` (mode 0600; an existing file is an error).
///
/// # Errors
/// [`TransferError`].
pub async fn export(store: &dyn Store, path: &Path) -> Result<Summary, TransferError> {
    let export = Export {
        format: FORMAT.into(),
        version: 1,
        clients: store.list_clients().await?,
        keys: store.keys().await?,
        revocations: store
            .revocations_since(0)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect(),
    };
    let io = |source| TransferError::Io {
        path: path.display().to_string(),
        source,
    };
    let json = serde_json::to_vec_pretty(&export).map_err(|e| io(std::io::Error::other(e)))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(&json).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(Summary {
        clients: export.clients.len(),
        keys: export.keys.len(),
        revocations: export.revocations.len(),
        ..Summary::default()
    })
}

/// Adds the contents of the export file at `path` to `store`.
///
/// # Errors
/// [`TransferError`].
pub async fn import(store: &dyn Store, path: &Path) -> Result<Summary, TransferError> {
    let name = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| TransferError::Io {
        path: name.clone(),
        source,
    })?;
    let export: Export = serde_json::from_slice(&text).map_err(|e| TransferError::Format {
        path: name.clone(),
        reason: e.to_string(),
    })?;
    if export.format != FORMAT || export.version != 1 {
        return Err(TransferError::Format {
            path: name,
            reason: format!("format {:?}, version {}", export.format, export.version),
        });
    }
    let mut summary = Summary::default();
    for c in &export.clients {
        match store.insert_client(c).await {
            Ok(()) => summary.clients += 1,
            Err(StoreError::Conflict) => summary.clients_present += 1,
            Err(e) => return Err(e.into()),
        }
    }
    let present: HashSet<String> = store.keys().await?.into_iter().map(|k| k.kid).collect();
    for k in &export.keys {
        if present.contains(&k.kid) {
            summary.keys_present += 1;
        } else {
            store.put_key(k).await?;
            summary.keys += 1;
        }
    }
    for r in &export.revocations {
        store.add_revocation(r).await?;
        summary.revocations += 1;
    }
    Ok(summary)
}
