//! The operator's facet of the engine: clients, grants, signing keys and the store's contents, as an
//! administrator manages them.
//!
//! # Why a facet of its own
//! The protocol endpoints on [`AuthServer`] authenticate their caller themselves: a client secret, a registration
//! access token (RFC 7592), a browser session, a bearer token. Nothing here authenticates anybody: whoever holds the
//! engine is trusted (the command line on the machine, or an embedder's own operator interface behind its own
//! authentication). Keeping these operations behind [`AuthServer::admin`] makes that difference visible at every
//! call site (`auth.admin().delete_client(id)` cannot be mistaken for the RFC 7592 `DELETE`), and gives callers
//! everything they used to take from the store directly, so the store stays private to the engine and its rules
//! (secrets stored as hashes, tokens revoked before their client disappears, revocations announced to the other
//! instances) cannot be bypassed.
//!
//! Every operation that changes something, and the export, emits an [`Event::Admin`] (see
//! [`crate::events`]): an operator's action is audited wherever it runs, the command line or an embedder's
//! operator interface.
//!
//! # Who acts
//! Since nothing here authenticates, the engine cannot know who the operator is: the caller, which did
//! authenticate them its own way, says so with [`Admin::by`] (`auth.admin().by("unix:uid=1000")`), and every
//! event of the operations that follow carries it as `actor`. The value is the caller's to choose (the service
//! writes `unix:uid=<uid>`, the peer's credentials on its admin socket or the command line's own user); an
//! operation run without it records no actor, which an audit trail shows as unknown rather than guessed.
//!
//! # Moving a store
//! [`StoreExport`] is what travels from one store to another (e.g. from the embedded store of one machine to the
//! Redis of several instances): every client, every signing key with its private material, and the live
//! revocations, which must travel with the keys because tokens signed by an exported key stay valid at the new
//! store. Grants, refresh tokens, sessions and consent do not travel: users log in again after a move. Import is
//! additive and idempotent: a client or key already present (same id) is left as it is, and re-appending a
//! revocation is harmless. Import goes through [`StoreTransfer`], which opens the store alone: an engine started
//! on an empty target would first generate a signing key of its own.
//!
//! The private keys travel sealed, as the store holds them (see [`Sealer`]): an export is sealed with the
//! source's current key-encryption key (a key the source still held in plaintext is sealed on the way out), so
//! the file is no more readable than the store. The import opens each key with the target's key-encryption keys
//! and seals it with the target's current one: a target with another key-encryption key lists the source's as a
//! previous key for the import.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::Error;
use crate::events::Event;
use crate::keys::KeyError;
use crate::seal::{SealError, Sealer};
use crate::server::AuthServer;
use crate::store::{
    ClientRecord, KeyRecord, OpenStoreError, Revocation, Store, StoreError, StoreSettings,
};

/// The `format` value of a [`StoreExport`].
pub const EXPORT_FORMAT: &str = "forwardauth-store-export";
/// The `version` of the [`StoreExport`] layout this engine writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// Administrative operations on an engine; see the [module documentation](self) for why they are apart from the
/// protocol endpoints. Obtained from [`AuthServer::admin`], naming who acts with [`Admin::by`]; cheap,
/// borrow-only.
#[derive(Clone, Copy, Debug)]
pub struct Admin<'a> {
    server: &'a AuthServer,
    /// Who acts, as the caller authenticated them; `None` when the caller did not say.
    actor: Option<&'a str>,
}

/// A signing key as an operator sees it: never its private material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Key identifier (the `kid` of the tokens it signs).
    pub kid: String,
    /// JWS algorithm name.
    pub alg: String,
    /// When it was created (seconds since the epoch).
    pub created_at: u64,
    /// When it starts signing, if later than `created_at` (a rotated-in key on a shared store).
    pub not_before: Option<u64>,
    /// When it stopped (or stops) signing; `None` for the signing key.
    pub retired_at: Option<u64>,
    /// Until when a retired key stays published.
    pub publish_until: Option<u64>,
    /// The id of the key-encryption key its private half is sealed with; `None` if an earlier version stored it
    /// in plaintext (it is sealed at the next start).
    pub sealed_with: Option<String>,
}

impl From<&KeyRecord> for KeyInfo {
    fn from(k: &KeyRecord) -> Self {
        KeyInfo {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            created_at: k.created_at,
            not_before: k.not_before,
            retired_at: k.retired_at,
            publish_until: k.publish_until,
            sealed_with: k.private_jwk.key_id().map(str::to_owned),
        }
    }
}

/// The contents of a store that move to another one (see the [module documentation](self)). Serialize it to
/// keep it; it holds the private signing keys, sealed with the source's key-encryption key, so whoever writes
/// it should still protect the file (as the store itself).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreExport {
    format: String,
    version: u32,
    clients: Vec<ClientRecord>,
    keys: Vec<KeyRecord>,
    revocations: Vec<Revocation>,
}

impl StoreExport {
    /// Every registered client.
    pub fn clients(&self) -> &[ClientRecord] {
        &self.clients
    }

    /// Every signing key, its private half sealed.
    pub fn keys(&self) -> &[KeyRecord] {
        &self.keys
    }

    /// The live revocations.
    pub fn revocations(&self) -> &[Revocation] {
        &self.revocations
    }

    /// Reads everything that travels from `store`, every private key sealed with `sealer`'s current key.
    async fn from_store(store: &dyn Store, sealer: &Sealer) -> Result<Self, Error> {
        let mut keys = store.keys().await?;
        for k in &mut keys {
            k.private_jwk = sealer.reseal(k.private_jwk.clone(), &k.kid)?;
        }
        Ok(StoreExport {
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            clients: store.list_clients().await?,
            keys,
            revocations: store
                .revocations_since(0)
                .await?
                .into_iter()
                .map(|(_, r)| r)
                .collect(),
        })
    }

    /// Adds the contents to `store` (additive, idempotent), every private key sealed with `sealer`'s current key.
    async fn add_to(
        &self,
        store: &dyn Store,
        sealer: &Sealer,
    ) -> Result<ImportSummary, ImportError> {
        if self.format != EXPORT_FORMAT || self.version != EXPORT_VERSION {
            return Err(ImportError::Unsupported {
                format: self.format.clone(),
                version: self.version,
            });
        }
        // Every key opens before anything is written: an export this store cannot use adds nothing.
        let present: HashSet<String> = store.keys().await?.into_iter().map(|k| k.kid).collect();
        let mut keys = Vec::new();
        for k in self.keys.iter().filter(|k| !present.contains(&k.kid)) {
            let mut k = k.clone();
            k.private_jwk =
                sealer
                    .reseal(k.private_jwk, &k.kid)
                    .map_err(|source| ImportError::Sealed {
                        kid: k.kid.clone(),
                        source,
                    })?;
            keys.push(k);
        }
        let mut summary = ImportSummary {
            keys_present: self.keys.len() - keys.len(),
            ..ImportSummary::default()
        };
        for c in &self.clients {
            match store.insert_client(c).await {
                Ok(()) => summary.clients += 1,
                Err(StoreError::Conflict) => summary.clients_present += 1,
                Err(e) => return Err(e.into()),
            }
        }
        for k in &keys {
            store.put_key(k).await?;
            summary.keys += 1;
        }
        for r in &self.revocations {
            store.add_revocation(r).await?;
            summary.revocations += 1;
        }
        Ok(summary)
    }
}

/// What an import added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportSummary {
    /// Clients added.
    pub clients: usize,
    /// Clients already present (left as they were).
    pub clients_present: usize,
    /// Signing keys added.
    pub keys: usize,
    /// Signing keys already present (left as they were).
    pub keys_present: usize,
    /// Revocations appended.
    pub revocations: usize,
}

/// Why an import failed. Exhaustive, so callers can map each case to their own report.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The export is of another format or version than this engine reads.
    #[error("format {format:?}, version {version}")]
    Unsupported {
        /// Its `format`.
        format: String,
        /// Its `version`.
        version: u32,
    },
    /// The target store failed (what was added before the failure stays).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A signing key of the export does not open with the target's key-encryption keys (nothing was added): the
    /// source's key-encryption key must be configured as a previous key at the target.
    #[error("signing key {kid}: {source}")]
    Sealed {
        /// The key's `kid`.
        kid: String,
        /// Why it does not open.
        source: SealError,
    },
}

/// A store opened on its own, without an engine, to move its contents (see the [module documentation](self)).
pub struct StoreTransfer {
    store: Arc<dyn Store>,
    sealer: Sealer,
}

impl std::fmt::Debug for StoreTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTransfer").finish_non_exhaustive()
    }
}

impl StoreTransfer {
    /// Opens the built-in store `settings` describe, whose secrets `sealer` seals (as the engine on that store).
    ///
    /// # Errors
    /// [`OpenStoreError`] naming the file (or the redacted Redis URL).
    pub fn open(
        settings: &StoreSettings,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OpenStoreError> {
        Ok(StoreTransfer {
            store: crate::store::open(settings, clock)?,
            sealer,
        })
    }

    /// Works on a store the caller built (an embedder's own backend).
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        StoreTransfer { store, sealer }
    }

    /// Everything that travels, the private keys sealed with the current key-encryption key.
    ///
    /// # Errors
    /// Store failures; [`Error::Sealed`] if a stored key does not open.
    pub async fn export(&self) -> Result<StoreExport, Error> {
        StoreExport::from_store(self.store.as_ref(), &self.sealer).await
    }

    /// Adds `export` to the store: clients and keys not yet present, and the revocations.
    ///
    /// # Errors
    /// [`ImportError`].
    pub async fn import(&self, export: &StoreExport) -> Result<ImportSummary, ImportError> {
        export.add_to(self.store.as_ref(), &self.sealer).await
    }
}

impl AuthServer {
    /// The operator's facet: clients, revocation by user or client, signing keys, export.
    pub fn admin(&self) -> Admin<'_> {
        Admin {
            server: self,
            actor: None,
        }
    }

    /// Revokes every grant of `client_id`, then deletes its registration: the one way a client goes away (RFC 7592
    /// `DELETE`, an operator, the collection of unused clients). Revoking first means a failure in between leaves
    /// a client without tokens, never tokens of a client that is gone.
    pub(crate) async fn remove_client(&self, client_id: &str) -> Result<RemovedClient, Error> {
        let grants = self.revoke_client_tokens(client_id).await?;
        let deleted = self.store.delete_client(client_id).await?;
        Ok(RemovedClient { grants, deleted })
    }
}

/// What [`AuthServer::remove_client`] did.
pub(crate) struct RemovedClient {
    /// Grants revoked.
    pub(crate) grants: usize,
    /// Whether the registration was still there to delete.
    pub(crate) deleted: bool,
}

impl<'a> Admin<'a> {
    /// The same operations on behalf of `actor`: who acts, as the caller authenticated them (e.g.
    /// `unix:uid=1000`), carried by every [`Event::Admin`] they emit (see the [module documentation](self)). It
    /// is an identifier, never a credential: sinks write it as it is.
    #[must_use]
    pub fn by(self, actor: &'a str) -> Self {
        Admin {
            actor: Some(actor),
            ..self
        }
    }

    /// Who acts, if the caller said ([`Admin::by`]).
    pub fn actor(&self) -> Option<&'a str> {
        self.actor
    }

    /// Every registered client, oldest registration first. Clients known by a metadata document URL are not
    /// registered and not listed.
    ///
    /// # Errors
    /// Store failures.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        let mut clients = self.server.store.list_clients().await?;
        clients.sort_by_key(|c| c.issued_at);
        Ok(clients)
    }

    /// The registered client `client_id`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, Error> {
        Ok(self.server.store.client(client_id).await?)
    }

    /// Revokes every grant of the client, then deletes its registration; `None` if no such client is registered
    /// (then nothing is revoked), else how many grants were revoked.
    ///
    /// # Errors
    /// Store failures.
    #[tracing::instrument(skip_all, fields(client_id = %client_id))]
    pub async fn delete_client(&self, client_id: &str) -> Result<Option<usize>, Error> {
        let result = self.delete_client_inner(client_id).await;
        self.record("delete_client", Some(client_id), &result, |g| *g);
        if let Ok(Some(_)) = result {
            self.server.emit(Event::ClientDeleted {
                client_id,
                by: "operator",
            });
        }
        result
    }

    async fn delete_client_inner(&self, client_id: &str) -> Result<Option<usize>, Error> {
        if self.server.store.client(client_id).await?.is_none() {
            return Ok(None);
        }
        let removed = self.server.remove_client(client_id).await?;
        tracing::info!(grants = removed.grants, "client deleted by an operator");
        Ok(Some(removed.grants))
    }

    /// Emits the [`Event::Admin`] of an operation: `ok` with the grants `grants` finds in its result,
    /// `not_found` for an `Ok` without them where a count was expected, `error` for a failure.
    fn record<T, E>(
        &self,
        action: &'static str,
        target: Option<&str>,
        result: &Result<T, E>,
        grants: impl Fn(&T) -> Option<usize>,
    ) {
        let (status, grants) = match result {
            Ok(v) => match grants(v) {
                Some(n) => ("ok", Some(n)),
                None if action == "delete_client" => ("not_found", None),
                None => ("ok", None),
            },
            Err(_) => ("error", None),
        };
        self.server.emit(Event::Admin {
            action,
            actor: self.actor,
            target,
            grants,
            result: status,
        });
    }

    /// Revokes every grant (access and refresh tokens) of the user `subject` (e.g. `local:alice`); returns how
    /// many.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_user(&self, subject: &str) -> Result<usize, Error> {
        let result = self.server.revoke_subject_tokens(subject).await;
        self.record("revoke_user", Some(subject), &result, |n| Some(*n));
        result
    }

    /// Revokes every grant of the client `client_id`, which stays registered; returns how many.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_client(&self, client_id: &str) -> Result<usize, Error> {
        let result = self.server.revoke_client_tokens(client_id).await;
        self.record("revoke_client", Some(client_id), &result, |n| Some(*n));
        result
    }

    /// Makes a fresh signing key active (after
    /// [`ServerConfig::key_activation_delay`](crate::ServerConfig::key_activation_delay)); the old one stays
    /// published until its last token has expired. Returns the new key's `kid`.
    ///
    /// # Errors
    /// Key or store failures.
    pub async fn rotate_keys(&self) -> Result<String, KeyError> {
        let result = self.server.rotate_keys().await;
        self.record("rotate_keys", None, &result, |_| None);
        result
    }

    /// The `kid` of the key this engine signs with now (the one the key manager picks; `None` before any key).
    pub fn signing_kid(&self) -> Option<String> {
        self.server
            .keys
            .active_kid(crate::clock::Clock::unix(self.server.clock.as_ref()))
    }

    /// The signing keys in the store, oldest first, without private material.
    ///
    /// # Errors
    /// Store failures.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, Error> {
        let mut keys: Vec<KeyInfo> = self
            .server
            .store
            .keys()
            .await?
            .iter()
            .map(KeyInfo::from)
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    /// Everything in this engine's store that travels to another store (see the [module documentation](self)).
    ///
    /// # Errors
    /// Store failures.
    pub async fn export(&self) -> Result<StoreExport, Error> {
        let result = StoreExport::from_store(self.server.store.as_ref(), &self.server.sealer).await;
        self.record("export", None, &result, |_| None);
        result
    }

    /// Adds `export` to this engine's store, as [`StoreTransfer::import`] does to a store opened alone: the way
    /// in while the engine runs (a token signed by an imported key makes it reload its key set).
    ///
    /// # Errors
    /// [`ImportError`].
    pub async fn import(&self, export: &StoreExport) -> Result<ImportSummary, ImportError> {
        let result = export
            .add_to(self.server.store.as_ref(), &self.server.sealer)
            .await;
        self.record("import", None, &result, |_| None);
        result
    }

    /// How many live grants the user `subject` holds (read from the store's index of grants by subject, never a
    /// scan).
    ///
    /// # Errors
    /// Store failures.
    pub async fn user_grants(&self, subject: &str) -> Result<usize, Error> {
        Ok(self.server.store.grants_of_subject(subject).await?.len())
    }
}
