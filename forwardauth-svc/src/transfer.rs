//! `store export` / `store import`: the file side of moving clients, signing keys and live revocations between
//! stores, the path from one machine (embedded store) to several instances (Redis).
//!
//! What travels and how it is added to the target is the engine's business ([`oauth_core::admin`]); this module
//! only writes and reads the file. The file is one JSON document (`format`, `version`, `clients`, `keys`,
//! `revocations`). It holds the private signing keys, sealed with the store's key-encryption key as the store
//! holds them (the engine seals any it still held in plaintext); it is created with mode 0600 all the same and
//! never overwrites an existing file. Importing into a store with another key-encryption key needs the exporting
//! store's key configured there as a previous key: the engine opens each key with it and seals it with the
//! target's own.

use std::io::Write as _;
use std::path::Path;

use oauth_core::{ImportError, ImportSummary, StoreError, StoreExport, StoreTransfer};

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
    /// A signing key in the file does not open with this store's key-encryption keys: the source's key must be
    /// configured as a previous key (`store.key_encryption_key_previous_files`) for the import.
    #[error(
        "{path}: {reason}; configure the exporting store's key-encryption key as a previous key to import it"
    )]
    Sealed {
        /// The file.
        path: String,
        /// Which key, and why.
        reason: String,
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

/// Writes `export` to a new file at `path` (mode 0600; an existing file is an error).
///
/// # Errors
/// [`TransferError::Io`].
pub fn export(export: &StoreExport, path: &Path) -> Result<Summary, TransferError> {
    let io = |source| TransferError::Io {
        path: path.display().to_string(),
        source,
    };
    let json = serde_json::to_vec_pretty(export).map_err(|e| io(std::io::Error::other(e)))?;
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
        clients: export.clients().len(),
        keys: export.keys().len(),
        revocations: export.revocations().len(),
        ..Summary::default()
    })
}

/// Reads the export file at `path`.
///
/// # Errors
/// [`TransferError::Io`], [`TransferError::Format`].
pub fn read(path: &Path) -> Result<StoreExport, TransferError> {
    let name = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| TransferError::Io {
        path: name.clone(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| TransferError::Format {
        path: name,
        reason: e.to_string(),
    })
}

/// An import failure of the export `name` (a file, or what the admin socket received) as a [`TransferError`].
pub fn import_error(name: &str, e: ImportError) -> TransferError {
    match e {
        ImportError::Store(e) => TransferError::Store(e),
        ImportError::Unsupported { .. } => TransferError::Format {
            path: name.to_owned(),
            reason: e.to_string(),
        },
        ImportError::Sealed { .. } => TransferError::Sealed {
            path: name.to_owned(),
            reason: e.to_string(),
        },
    }
}

impl From<ImportSummary> for Summary {
    fn from(s: ImportSummary) -> Self {
        Summary {
            clients: s.clients,
            clients_present: s.clients_present,
            keys: s.keys,
            keys_present: s.keys_present,
            revocations: s.revocations,
        }
    }
}

/// Adds the contents of the export file at `path` to the store `target` holds.
///
/// # Errors
/// [`TransferError`].
pub async fn import(target: &StoreTransfer, path: &Path) -> Result<Summary, TransferError> {
    let export = read(path)?;
    let s = target
        .import(&export)
        .await
        .map_err(|e| import_error(&path.display().to_string(), e))?;
    Ok(Summary::from(s))
}
