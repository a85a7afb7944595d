//! The default backend: an embedded, persistent store in one file (redb), or the same engine in memory.
//!
//! # Why redb
//! A person running one instance should not need a database server, and a restart must lose no client, key,
//! refresh token or revocation. redb is a pure-Rust, ACID, single-file key-value store: every write below is one
//! serialisable write transaction, which is what makes `take_pending`, `redeem_code` and `rotate_refresh`
//! atomic without further locking. Its in-memory backend runs the very same code for tests.
//!
//! # Layout
//! * table `records` (`&str` → bytes): `client:{id}`, `client-used:{id}` (when it was last used), `pending:{hash}`, `code:{hash}`, `used:{hash}`,
//!   `grant:{id}`, `refresh:{hash}`, `key:{kid}`, `session:{hash}`, `consent:{subject}\0{client_id}`,
//!   `fail:{key}` and `ban:{key}` (login regulation). Each value is an 8-byte big-endian expiry (seconds since the
//!   epoch, 0 = never) followed by the record as JSON.
//! * multimap `index` (`&str` → `&str`): `client:{id}` and `subject:{sub}` → grant ids.
//! * table `revocations` (`u64` → bytes): the revocation log, keyed by sequence number.
//!
//! redb is synchronous; each operation runs on tokio's blocking pool so that a commit's `fsync` never stalls the
//! async workers. Expiry is checked against the injected [`Clock`] on every read and purged by
//! [`Store::purge_expired`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{
    Database, MultimapTableDefinition, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    ClientRecord, CodeRecord, CodeRedemption, ConsentRecord, GrantRecord, KeyRecord,
    PendingAuthorization, RefreshRecord, RefreshState, Revocation, RotatedRefresh, SessionRecord,
    Store, StoreError,
};
use crate::clock::Clock;
use crate::types::TokenHash;

const RECORDS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("records");
const INDEX: MultimapTableDefinition<'_, &str, &str> = MultimapTableDefinition::new("index");
const REVOCATIONS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("revocations");

/// The embedded store. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`. The parent directory must exist.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be opened, is locked by another process, or is not a store.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let db = Database::create(path.as_ref()).map_err(backend)?;
        Self::init(db, clock)
    }

    /// A store that lives in memory only: the same engine, for tests and throwaway runs.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the in-memory database cannot be created.
    pub fn in_memory(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(backend)?;
        Self::init(db, clock)
    }

    fn init(db: Database, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(RECORDS).map_err(backend)?;
        tx.open_multimap_table(INDEX).map_err(backend)?;
        tx.open_table(REVOCATIONS).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner { db, clock }),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn encode<T: Serialize>(value: &T, expires_at: u64) -> Result<Vec<u8>, StoreError> {
    let mut out = expires_at.to_be_bytes().to_vec();
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(out)
}

/// Splits a stored value into its expiry and JSON body.
fn split(raw: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (head, body) = raw
        .split_at_checked(8)
        .ok_or_else(|| StoreError::Corrupt("value shorter than its header".into()))?;
    let mut exp = [0u8; 8];
    exp.copy_from_slice(head);
    Ok((u64::from_be_bytes(exp), body))
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Inner {
    fn now(&self) -> u64 {
        self.clock.unix()
    }

    fn expiry(&self, ttl: Duration) -> u64 {
        self.now().saturating_add(ttl.as_secs().max(1))
    }

    fn live(&self, exp: u64) -> bool {
        exp == 0 || exp > self.now()
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(RECORDS).map_err(backend)?;
        let Some(guard) = table.get(key).map_err(backend)? else {
            return Ok(None);
        };
        let (exp, body) = split(guard.value())?;
        if !self.live(exp) {
            return Ok(None);
        }
        decode(body).map(Some)
    }

    fn put<T: Serialize>(&self, key: &str, value: &T, expires_at: u64) -> Result<(), StoreError> {
        let bytes = encode(value, expires_at)?;
        self.write(|tx| {
            tx.open_table(RECORDS)
                .map_err(backend)?
                .insert(key, bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
    }

    fn remove(&self, key: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .open_table(RECORDS)
                .map_err(backend)?
                .remove(key)
                .map_err(backend)?
                .is_some())
        })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    /// Removes `key` inside `tx` and returns its body if it was live.
    fn take_in<T: DeserializeOwned>(
        &self,
        tx: &WriteTransaction,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let mut table = tx.open_table(RECORDS).map_err(backend)?;
        let removed = table.remove(key).map_err(backend)?;
        let Some(guard) = removed else {
            return Ok(None);
        };
        let (exp, body) = split(guard.value())?;
        if !self.live(exp) {
            return Ok(None);
        }
        decode(body).map(Some)
    }

    fn live_grant_ids(&self, index_key: &str) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let index = tx.open_multimap_table(INDEX).map_err(backend)?;
        let records = tx.open_table(RECORDS).map_err(backend)?;
        let mut out = Vec::new();
        for id in index.get(index_key).map_err(backend)? {
            let id = id.map_err(backend)?.value().to_owned();
            if let Some(guard) = records
                .get(format!("grant:{id}").as_str())
                .map_err(backend)?
            {
                let (exp, _) = split(guard.value())?;
                if self.live(exp) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }
}

fn unindex_grant(tx: &WriteTransaction, grant: &GrantRecord) -> Result<(), StoreError> {
    let mut index = tx.open_multimap_table(INDEX).map_err(backend)?;
    index
        .remove(
            format!("client:{}", grant.client_id).as_str(),
            grant.grant_id.as_str(),
        )
        .map_err(backend)?;
    index
        .remove(
            format!("subject:{}", grant.identity.subject).as_str(),
            grant.grant_id.as_str(),
        )
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let client = client.clone();
        self.run(move |s| {
            let key = format!("client:{}", client.client_id);
            let bytes = encode(&client, 0)?;
            s.write(|tx| {
                let mut t = tx.open_table(RECORDS).map_err(backend)?;
                if t.get(key.as_str()).map_err(backend)?.is_some() {
                    return Err(StoreError::Conflict);
                }
                t.insert(key.as_str(), bytes.as_slice()).map_err(backend)?;
                Ok(())
            })
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let key = format!("client:{client_id}");
        self.run(move |s| s.get(&key)).await
    }

    async fn replace_client(&self, client: &ClientRecord) -> Result<bool, StoreError> {
        let client = client.clone();
        self.run(move |s| {
            let key = format!("client:{}", client.client_id);
            let bytes = encode(&client, 0)?;
            s.write(|tx| {
                let mut t = tx.open_table(RECORDS).map_err(backend)?;
                if t.get(key.as_str()).map_err(backend)?.is_none() {
                    return Ok(false);
                }
                t.insert(key.as_str(), bytes.as_slice()).map_err(backend)?;
                Ok(true)
            })
        })
        .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let (key, used) = (
            format!("client:{client_id}"),
            format!("client-used:{client_id}"),
        );
        self.run(move |s| {
            s.write(|tx| {
                let mut t = tx.open_table(RECORDS).map_err(backend)?;
                t.remove(used.as_str()).map_err(backend)?;
                Ok(t.remove(key.as_str()).map_err(backend)?.is_some())
            })
        })
        .await
    }

    async fn count_clients(&self) -> Result<usize, StoreError> {
        self.run(|s| {
            let tx = s.db.begin_read().map_err(backend)?;
            let t = tx.open_table(RECORDS).map_err(backend)?;
            let mut n = 0usize;
            for row in t.range("client:".."client;").map_err(backend)? {
                row.map_err(backend)?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    async fn mark_client_used(&self, client_id: &str, at: u64) -> Result<(), StoreError> {
        let key = format!("client-used:{client_id}");
        self.run(move |s| s.put(&key, &at, 0)).await
    }

    async fn client_last_used(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        let key = format!("client-used:{client_id}");
        self.run(move |s| s.get(&key)).await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.run(|s| {
            let tx = s.db.begin_read().map_err(backend)?;
            let t = tx.open_table(RECORDS).map_err(backend)?;
            let mut out = Vec::new();
            for row in t.range("client:".."client;").map_err(backend)? {
                let (_, v) = row.map_err(backend)?;
                let (_, body) = split(v.value())?;
                out.push(decode(body)?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_pending(
        &self,
        key: &TokenHash,
        p: &PendingAuthorization,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, p) = (format!("pending:{}", key.to_hex()), p.clone());
        self.run(move |s| s.put(&key, &p, s.expiry(ttl))).await
    }

    async fn pending(&self, key: &TokenHash) -> Result<Option<PendingAuthorization>, StoreError> {
        let key = format!("pending:{}", key.to_hex());
        self.run(move |s| s.get(&key)).await
    }

    async fn take_pending(
        &self,
        key: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let key = format!("pending:{}", key.to_hex());
        self.run(move |s| s.write(|tx| s.take_in(tx, &key))).await
    }

    async fn put_code(
        &self,
        key: &TokenHash,
        code: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, code) = (format!("code:{}", key.to_hex()), code.clone());
        self.run(move |s| s.put(&key, &code, s.expiry(ttl))).await
    }

    async fn redeem_code(
        &self,
        key: &TokenHash,
        replay_ttl: Duration,
    ) -> Result<CodeRedemption, StoreError> {
        let hex = key.to_hex();
        self.run(move |s| {
            let code_key = format!("code:{hex}");
            let used_key = format!("used:{hex}");
            s.write(|tx| {
                if let Some(code) = s.take_in::<CodeRecord>(tx, &code_key)? {
                    let marker = encode(&code.grant_id, s.expiry(replay_ttl))?;
                    tx.open_table(RECORDS)
                        .map_err(backend)?
                        .insert(used_key.as_str(), marker.as_slice())
                        .map_err(backend)?;
                    return Ok(CodeRedemption::Fresh(Box::new(code)));
                }
                let t = tx.open_table(RECORDS).map_err(backend)?;
                let Some(guard) = t.get(used_key.as_str()).map_err(backend)? else {
                    return Ok(CodeRedemption::Unknown);
                };
                let (exp, body) = split(guard.value())?;
                if !s.live(exp) {
                    return Ok(CodeRedemption::Unknown);
                }
                Ok(CodeRedemption::Replayed {
                    grant_id: decode(body)?,
                })
            })
        })
        .await
    }

    async fn put_grant(&self, grant: &GrantRecord, ttl: Duration) -> Result<(), StoreError> {
        let grant = grant.clone();
        self.run(move |s| {
            let bytes = encode(&grant, s.expiry(ttl))?;
            s.write(|tx| {
                tx.open_table(RECORDS)
                    .map_err(backend)?
                    .insert(
                        format!("grant:{}", grant.grant_id).as_str(),
                        bytes.as_slice(),
                    )
                    .map_err(backend)?;
                let mut index = tx.open_multimap_table(INDEX).map_err(backend)?;
                index
                    .insert(
                        format!("client:{}", grant.client_id).as_str(),
                        grant.grant_id.as_str(),
                    )
                    .map_err(backend)?;
                index
                    .insert(
                        format!("subject:{}", grant.identity.subject).as_str(),
                        grant.grant_id.as_str(),
                    )
                    .map_err(backend)?;
                Ok(())
            })
        })
        .await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let key = format!("grant:{grant_id}");
        self.run(move |s| s.get(&key)).await
    }

    async fn delete_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let key = format!("grant:{grant_id}");
        self.run(move |s| {
            s.write(|tx| {
                let grant: Option<GrantRecord> = s.take_in(tx, &key)?;
                if let Some(g) = &grant {
                    unindex_grant(tx, g)?;
                }
                Ok(grant)
            })
        })
        .await
    }

    async fn grants_of_client(&self, client_id: &str) -> Result<Vec<String>, StoreError> {
        let key = format!("client:{client_id}");
        self.run(move |s| s.live_grant_ids(&key)).await
    }

    async fn grants_of_subject(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        let key = format!("subject:{subject}");
        self.run(move |s| s.live_grant_ids(&key)).await
    }

    async fn put_refresh(
        &self,
        key: &TokenHash,
        r: &RefreshRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, r) = (
            format!("refresh:{}", key.to_hex()),
            RefreshState::Active(r.clone()),
        );
        self.run(move |s| s.put(&key, &r, s.expiry(ttl))).await
    }

    async fn refresh(&self, key: &TokenHash) -> Result<Option<RefreshState>, StoreError> {
        let key = format!("refresh:{}", key.to_hex());
        self.run(move |s| s.get(&key)).await
    }

    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        marker: &RotatedRefresh,
        marker_ttl: Duration,
        new_key: &TokenHash,
        new: &RefreshRecord,
        new_ttl: Duration,
    ) -> Result<bool, StoreError> {
        let old_key = format!("refresh:{}", old.to_hex());
        let new_key = format!("refresh:{}", new_key.to_hex());
        let marker = RefreshState::Rotated(marker.clone());
        let new = RefreshState::Active(new.clone());
        self.run(move |s| {
            let marker = encode(&marker, s.expiry(marker_ttl))?;
            let new = encode(&new, s.expiry(new_ttl))?;
            s.write(|tx| {
                let mut t = tx.open_table(RECORDS).map_err(backend)?;
                let active = match t.get(old_key.as_str()).map_err(backend)? {
                    Some(guard) => {
                        let (exp, body) = split(guard.value())?;
                        s.live(exp)
                            && matches!(decode::<RefreshState>(body)?, RefreshState::Active(_))
                    }
                    None => false,
                };
                if !active {
                    return Ok(false);
                }
                t.insert(old_key.as_str(), marker.as_slice())
                    .map_err(backend)?;
                t.insert(new_key.as_str(), new.as_slice())
                    .map_err(backend)?;
                Ok(true)
            })
        })
        .await
    }

    async fn add_revocation(&self, r: &Revocation) -> Result<u64, StoreError> {
        let r = r.clone();
        self.run(move |s| {
            let bytes = encode(&r, r.expires_at)?;
            s.write(|tx| {
                let mut t = tx.open_table(REVOCATIONS).map_err(backend)?;
                let next = match t.last().map_err(backend)? {
                    Some((k, _)) => k.value().saturating_add(1),
                    None => 1,
                };
                t.insert(next, bytes.as_slice()).map_err(backend)?;
                Ok(next)
            })
        })
        .await
    }

    async fn revocations_since(&self, after: u64) -> Result<Vec<(u64, Revocation)>, StoreError> {
        self.run(move |s| {
            let tx = s.db.begin_read().map_err(backend)?;
            let t = tx.open_table(REVOCATIONS).map_err(backend)?;
            let mut out = Vec::new();
            for row in t.range(after.saturating_add(1)..).map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                let (exp, body) = split(v.value())?;
                if s.live(exp) {
                    out.push((k.value(), decode(body)?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.run(move |s| s.put(&format!("key:{}", key.kid), &key, 0))
            .await
    }

    async fn put_first_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |s| {
            let bytes = encode(&key, 0)?;
            s.write(|tx| {
                let mut t = tx.open_table(RECORDS).map_err(backend)?;
                if t.range("key:".."key;").map_err(backend)?.next().is_some() {
                    return Ok(false);
                }
                t.insert(format!("key:{}", key.kid).as_str(), bytes.as_slice())
                    .map_err(backend)?;
                Ok(true)
            })
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.run(|s| {
            let tx = s.db.begin_read().map_err(backend)?;
            let t = tx.open_table(RECORDS).map_err(backend)?;
            let mut out = Vec::new();
            for row in t.range("key:".."key;").map_err(backend)? {
                let (_, v) = row.map_err(backend)?;
                let (_, body) = split(v.value())?;
                out.push(decode(body)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_key(&self, kid: &str) -> Result<(), StoreError> {
        let key = format!("key:{kid}");
        self.run(move |s| s.remove(&key).map(|_| ())).await
    }

    async fn put_session(
        &self,
        key: &TokenHash,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, rec) = (format!("session:{}", key.to_hex()), rec.clone());
        self.run(move |s| s.put(&key, &rec, s.expiry(ttl))).await
    }

    async fn session(&self, key: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let key = format!("session:{}", key.to_hex());
        self.run(move |s| s.get(&key)).await
    }

    async fn delete_session(&self, key: &TokenHash) -> Result<(), StoreError> {
        let key = format!("session:{}", key.to_hex());
        self.run(move |s| s.remove(&key).map(|_| ())).await
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        c: &ConsentRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, c) = (format!("consent:{subject}\0{client_id}"), c.clone());
        self.run(move |s| s.put(&key, &c, s.expiry(ttl))).await
    }

    async fn consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        let key = format!("consent:{subject}\0{client_id}");
        self.run(move |s| s.get(&key)).await
    }

    async fn count_failure(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let key = format!("fail:{key}");
        self.run(move |s| {
            s.write(|tx| {
                let mut table = tx.open_table(RECORDS).map_err(backend)?;
                let current = match table.get(key.as_str()).map_err(backend)? {
                    Some(guard) => {
                        let (exp, body) = split(guard.value())?;
                        s.live(exp)
                            .then(|| decode::<u64>(body).map(|n| (n, exp)))
                            .transpose()?
                    }
                    None => None,
                };
                let (count, exp) = match current {
                    Some((n, exp)) => (n.saturating_add(1), exp),
                    None => (1, s.expiry(window)),
                };
                let bytes = encode(&count, exp)?;
                table
                    .insert(key.as_str(), bytes.as_slice())
                    .map_err(backend)?;
                Ok(count)
            })
        })
        .await
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        let key = format!("fail:{key}");
        self.run(move |s| s.remove(&key).map(|_| ())).await
    }

    async fn put_ban(&self, key: &str, until: u64, ttl: Duration) -> Result<(), StoreError> {
        let key = format!("ban:{key}");
        self.run(move |s| s.put(&key, &until, s.expiry(ttl))).await
    }

    async fn ban(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let key = format!("ban:{key}");
        self.run(move |s| s.get(&key)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|s| {
            let tx = s.db.begin_read().map_err(backend)?;
            tx.open_table(RECORDS)
                .map_err(backend)?
                .len()
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.run(|s| {
            let now = s.now();
            s.write(|tx| {
                let mut expired_grants: Vec<GrantRecord> = Vec::new();
                let mut count = 0usize;
                {
                    let mut t = tx.open_table(RECORDS).map_err(backend)?;
                    let mut dead: Vec<String> = Vec::new();
                    for row in t.iter().map_err(backend)? {
                        let (k, v) = row.map_err(backend)?;
                        let (exp, body) = split(v.value())?;
                        if exp != 0 && exp <= now {
                            if k.value().starts_with("grant:") {
                                expired_grants.push(decode(body)?);
                            }
                            dead.push(k.value().to_owned());
                        }
                    }
                    for k in &dead {
                        t.remove(k.as_str()).map_err(backend)?;
                    }
                    count += dead.len();
                }
                for g in &expired_grants {
                    unindex_grant(tx, g)?;
                }
                let mut revs = tx.open_table(REVOCATIONS).map_err(backend)?;
                let mut dead: Vec<u64> = Vec::new();
                for row in revs.iter().map_err(backend)? {
                    let (k, v) = row.map_err(backend)?;
                    let (exp, _) = split(v.value())?;
                    if exp != 0 && exp <= now {
                        dead.push(k.value());
                    }
                }
                // Keep the newest entry so that sequence numbers never go backwards after a purge.
                let newest = revs.last().map_err(backend)?.map(|(k, _)| k.value());
                for k in dead.into_iter().filter(|k| Some(*k) != newest) {
                    revs.remove(k).map_err(backend)?;
                    count += 1;
                }
                Ok(count)
            })
        })
        .await
    }
}
