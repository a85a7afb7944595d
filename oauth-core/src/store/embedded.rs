//! The default backend: an embedded, persistent store in one file (redb), or the same engine in memory.
//!
//! # Why redb
//! A person running one instance should not need a database server, and a restart must lose no client, key,
//! grant or revocation. redb is a pure-Rust, ACID, single-file key-value store: every write below runs inside
//! one serialisable write transaction, which is what makes `take_pending`, `redeem_code` and `rotate_grant`
//! atomic without further locking. Its in-memory backend runs the very same code for tests.
//!
//! # Group commit
//! A durable commit costs an `fsync`, and redb runs one write transaction at a time. Committing each write on
//! its own made the disk's sync latency the ceiling of every write endpoint. So all writes go to one writer
//! thread, which takes every write waiting (up to [`MAX_BATCH`]), applies them in one transaction, commits once
//! and only then answers each caller: concurrent writers share one `fsync`, and no caller hears "done" before its
//! write is durable. A write that fails (a conflict, a corrupt record) must not take the others' work with it or
//! leave half of itself behind, so a batch in which any write fails is rolled back and its writes are re-run one
//! transaction each. Reads never wait for the writer: they see the last commit; point reads run on the caller's
//! thread, scans on tokio's blocking pool.
//!
//! # Layout
//! * table `records` (`&str` → bytes): `client:{id}`, `client-used:{id}` (when it was last used), `pending:{hash}`,
//!   `code:{hash}`, `used:{hash}`, `grant:{id}`, `key:{kid}`, `session:{hash}`,
//!   `consent:{subject}\0{client_id}`, `fail:{key}` and `ban:{key}` (login regulation), and `meta:clients`,
//!   `meta:revocation-seq` (counters kept so that neither needs a scan). Each value is an 8-byte big-endian expiry
//!   (seconds since the epoch, 0 = never) followed by the record as JSON.
//! * multimap `index` (`&str` → `&str`): `client:{id}` and `subject:{sub}` → grant ids.
//! * table `revocations` (`u64` → bytes): the revocation log, keyed by sequence number.
//! * table `expiry` (`(u64, &str)` → `()`): one entry per record that expires, `(expiry, key)` (revocations as
//!   `rev:{seq}`), kept exact on every write. [`Store::purge_expired`] reads it from the oldest end and stops at
//!   the clock, in bounded batches, instead of scanning the store; so purging costs what expired, not what is
//!   stored, and never pulls the whole file through the cache.
//!
//! # File permissions
//! The file holds every client, grant and (sealed) secret, so it is created readable by its owner only (mode
//! 0600 on Unix), and a file found with wider permissions is tightened to 0600 when opened. The secrets the
//! engine must read back are sealed besides (see [`crate::Sealer`]); the mode keeps the rest (who is registered,
//! who holds grants) private too.
//!
//! # Memory
//! redb caches pages up to a byte budget (its own default is 1 GiB, which a store under a write load fills). The
//! budget here is [`EMBEDDED_CACHE_BYTES`] unless [`EmbeddedStore::open_with_cache`] says otherwise; nothing else
//! in this backend holds memory in proportion to what is stored.

use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use redb::{
    Database, MultimapTableDefinition, ReadableTable as _, TableDefinition, TableHandle as _,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    ClientRecord, CodeRecord, CodeRedemption, ConsentRecord, GrantRecord, KeyRecord,
    PendingAuthorization, Revocation, SessionRecord, Store, StoreError,
};
use crate::clock::Clock;
use crate::types::TokenHash;

const RECORDS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("records");
const INDEX: MultimapTableDefinition<'_, &str, &str> = MultimapTableDefinition::new("index");
const REVOCATIONS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("revocations");
const EXPIRY: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("expiry");

const CLIENT_COUNT: &str = "meta:clients";
const REVOCATION_SEQ: &str = "meta:revocation-seq";

/// redb's page cache budget unless the caller chooses one: enough for the working set of a single instance
/// (clients, grants and sessions in use), small enough that the process stays within tens of MiB.
pub const EMBEDDED_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The most writes one commit carries.
const MAX_BATCH: usize = 256;

/// The most expired records one purge transaction removes (a purge runs as many as it needs).
const PURGE_BATCH: usize = 1024;

/// The embedded store. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    writer: Writer,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// What [`EmbeddedStore::open`] reports (as [`StoreError::Unavailable`]) when another process holds the file's
/// lock; [`open`](super::open) turns it into [`OpenStoreError::Locked`](super::OpenStoreError::Locked).
pub(crate) const LOCKED: &str = "the file is locked by another process";

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path` with the default page cache ([`EMBEDDED_CACHE_BYTES`]). The
    /// parent directory must exist.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be opened, is locked by another process, or is not a store.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, clock, EMBEDDED_CACHE_BYTES)
    }

    /// Opens (or creates) the store file at `path` with a page cache of at most `cache_bytes`. A new file is
    /// created with mode 0600; an existing one is set to 0600 once it is open (Unix).
    ///
    /// # Errors
    /// As [`EmbeddedStore::open`].
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| StoreError::Backend(e.to_string());
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(path.as_ref()).map_err(io)?;
        let handle = file.try_clone().map_err(io)?;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create_file(file)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(LOCKED.into()),
                e => backend(e),
            })?;
        // Only now, holding redb's lock: a file another process has open is not ours to change.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            handle
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        drop(handle);
        Self::init(db, clock)
    }

    /// A store that lives in memory only: the same engine, for tests and throwaway runs.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the in-memory database cannot be created.
    pub fn in_memory(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(EMBEDDED_CACHE_BYTES)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(backend)?;
        Self::init(db, clock)
    }

    fn init(db: Database, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let tx = db.begin_write().map_err(backend)?;
        let indexed = tx
            .list_tables()
            .map_err(backend)?
            .any(|t| t.name() == EXPIRY.name());
        tx.open_table(RECORDS).map_err(backend)?;
        tx.open_multimap_table(INDEX).map_err(backend)?;
        tx.open_table(REVOCATIONS).map_err(backend)?;
        tx.open_table(EXPIRY).map_err(backend)?;
        if !indexed {
            build_index(&tx)?;
        }
        tx.commit().map_err(backend)?;
        let db = Arc::new(db);
        let writer = Writer::start(Arc::clone(&db), Arc::clone(&clock))?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner { db, clock, writer }),
        })
    }

    /// Runs a read that scans (a range, an index) on the blocking pool. A point read (one key) runs on the
    /// caller's thread instead: it is a B-tree descent through redb's cache (or the kernel's page cache), a few
    /// microseconds, less than the two thread switches a hand-off to the blocking pool costs.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Hands a write to the writer thread and waits until it is durable. `f` may run twice (see the module
    /// documentation), each time in a fresh transaction.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&W<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner.writer.submit(Box::new(Op {
            f,
            out: None,
            reply: Some(reply),
        }))?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Stores `value` at `key` until `ttl` from now, durably.
    async fn put_for<T>(&self, key: String, value: T, ttl: Duration) -> Result<(), StoreError>
    where
        T: Serialize + Send + 'static,
    {
        self.write(move |w| w.put(&key, &value, w.expiry(ttl)))
            .await
    }

    /// Deletes the record at `key`, if there is one, durably.
    async fn delete(&self, key: String) -> Result<(), StoreError> {
        self.write(move |w| w.remove(&key).map(|_| ())).await
    }
}

/// The key of a record stored under the hash of its secret (`pending`, `code`, `session`).
fn hashed_key(kind: &str, hash: &TokenHash) -> String {
    format!("{kind}:{}", hash.to_hex())
}

/// The key of a user's consent for a client.
fn consent_key(subject: &str, client_id: &str) -> String {
    format!("consent:{subject}\0{client_id}")
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the store's writer thread stopped".into())
}

/// The first open of a store written before the expiry index existed builds the index and the counters once.
fn build_index(tx: &WriteTransaction) -> Result<(), StoreError> {
    let records = tx.open_table(RECORDS).map_err(backend)?;
    let revocations = tx.open_table(REVOCATIONS).map_err(backend)?;
    let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
    let mut clients = 0u64;
    for row in records.iter().map_err(backend)? {
        let (k, v) = row.map_err(backend)?;
        let (exp, _) = split(v.value())?;
        if exp != 0 {
            expiry.insert((exp, k.value()), ()).map_err(backend)?;
        }
        if k.value().starts_with("client:") {
            clients += 1;
        }
    }
    let mut last = 0u64;
    for row in revocations.iter().map_err(backend)? {
        let (k, v) = row.map_err(backend)?;
        let (exp, _) = split(v.value())?;
        last = k.value();
        if exp != 0 {
            expiry
                .insert((exp, revocation_key(last).as_str()), ())
                .map_err(backend)?;
        }
    }
    drop((records, revocations, expiry));
    let w = W { tx, now: 0 };
    w.put(CLIENT_COUNT, &clients, 0)?;
    w.put(REVOCATION_SEQ, &last, 0)?;
    Ok(())
}

fn revocation_key(seq: u64) -> String {
    format!("rev:{seq:020}")
}

// ---------------------------------------------------------------------------------------------------------------
// The writer thread.

/// One write waiting for a commit.
trait Job: Send {
    /// Applies the write inside the batch's transaction and keeps its outcome; `false` if it failed.
    fn apply(&mut self, w: &W<'_>) -> bool;
    /// Answers the caller: with the kept outcome if the transaction committed (or was rolled back because this
    /// write failed), with the commit's error otherwise.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Op<T, F> {
    f: F,
    out: Option<Result<T, StoreError>>,
    reply: Option<tokio::sync::oneshot::Sender<Result<T, StoreError>>>,
}

impl<T, F> Job for Op<T, F>
where
    T: Send,
    F: FnMut(&W<'_>) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, w: &W<'_>) -> bool {
        // A panicking write must not take the writer thread, and with it every later write, down.
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)(w)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a store write panicked".into())));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(mut self: Box<Self>, commit: Result<(), &StoreError>) {
        let result = match commit {
            Ok(()) => self
                .out
                .take()
                .unwrap_or_else(|| Err(StoreError::Backend("the write never ran".into()))),
            Err(e) => Err(e.clone()),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone (its request was dropped); the write stands regardless.
            let _ = reply.send(result);
        }
    }
}

struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(db: Arc<Database>, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    commit_batch(&db, clock.unix(), batch);
                }
            })
            .map_err(|e| StoreError::Backend(format!("starting the store's writer: {e}")))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn submit(&self, job: Box<dyn Job>) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(job)
            .map_err(|_| writer_gone())
    }
}

impl Drop for Writer {
    /// Lets the writer finish what it was given and waits for it, so that the file is closed (and can be opened
    /// again) once the last handle to the store is gone.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn commit_batch(db: &Database, now: u64, mut batch: Vec<Box<dyn Job>>) {
    match try_batch(db, now, &mut batch) {
        Ok(false) if batch.len() > 1 => {
            for job in batch {
                commit_batch(db, now, vec![job]);
            }
        }
        Ok(_) => batch.into_iter().for_each(|job| job.finish(Ok(()))),
        Err(e) => batch.into_iter().for_each(|job| job.finish(Err(&e))),
    }
}

/// One transaction over the batch: `Ok(true)` if it committed, `Ok(false)` if a write failed and it was rolled
/// back.
fn try_batch(db: &Database, now: u64, batch: &mut [Box<dyn Job>]) -> Result<bool, StoreError> {
    let tx = db.begin_write().map_err(backend)?;
    let w = W { tx: &tx, now };
    if !batch.iter_mut().all(|job| job.apply(&w)) {
        tx.abort().map_err(backend)?;
        return Ok(false);
    }
    tx.commit().map_err(backend)?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------------------------
// Values.

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

fn live_at(exp: u64, now: u64) -> bool {
    exp == 0 || exp > now
}

impl Inner {
    fn now(&self) -> u64 {
        self.clock.unix()
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(RECORDS).map_err(backend)?;
        let Some(guard) = table.get(key).map_err(backend)? else {
            return Ok(None);
        };
        let (exp, body) = split(guard.value())?;
        if !live_at(exp, self.now()) {
            return Ok(None);
        }
        decode(body).map(Some)
    }

    fn live_grant_ids(&self, index_key: &str) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let index = tx.open_multimap_table(INDEX).map_err(backend)?;
        let records = tx.open_table(RECORDS).map_err(backend)?;
        let now = self.now();
        let mut out = Vec::new();
        for id in index.get(index_key).map_err(backend)? {
            let id = id.map_err(backend)?.value().to_owned();
            if let Some(guard) = records
                .get(format!("grant:{id}").as_str())
                .map_err(backend)?
            {
                let (exp, _) = split(guard.value())?;
                if live_at(exp, now) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    fn clients(&self, from: Bound<&str>, limit: usize) -> Result<Vec<ClientRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(RECORDS).map_err(backend)?;
        let mut out = Vec::new();
        for row in t
            .range::<&str>((from, Bound::Excluded("client;")))
            .map_err(backend)?
            .take(limit)
        {
            let (_, v) = row.map_err(backend)?;
            let (_, body) = split(v.value())?;
            out.push(decode(body)?);
        }
        Ok(out)
    }
}

/// A write in progress: the batch's transaction and the clock reading the batch runs at. Every record write goes
/// through [`W::put`] and [`W::remove`], which keep the expiry index exact.
struct W<'a> {
    tx: &'a WriteTransaction,
    now: u64,
}

impl W<'_> {
    fn expiry(&self, ttl: Duration) -> u64 {
        self.now.saturating_add(ttl.as_secs().max(1))
    }

    fn live(&self, exp: u64) -> bool {
        live_at(exp, self.now)
    }

    /// The live record at `key`.
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let t = self.tx.open_table(RECORDS).map_err(backend)?;
        let Some(guard) = t.get(key).map_err(backend)? else {
            return Ok(None);
        };
        let (exp, body) = split(guard.value())?;
        if !self.live(exp) {
            return Ok(None);
        }
        decode(body).map(Some)
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .open_table(RECORDS)
            .map_err(backend)?
            .get(key)
            .map_err(backend)?
            .is_some())
    }

    fn put<T: Serialize>(&self, key: &str, value: &T, expires_at: u64) -> Result<(), StoreError> {
        let bytes = encode(value, expires_at)?;
        let old = {
            let mut t = self.tx.open_table(RECORDS).map_err(backend)?;
            let old = t.insert(key, bytes.as_slice()).map_err(backend)?;
            old.map(|g| split(g.value()).map(|(exp, _)| exp))
                .transpose()?
        };
        self.reindex(key, old.unwrap_or(0), expires_at)
    }

    /// Removes `key`; returns its expiry and body if it existed (live or not).
    fn remove(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let removed = {
            let mut t = self.tx.open_table(RECORDS).map_err(backend)?;
            let removed = t.remove(key).map_err(backend)?;
            removed
                .map(|g| split(g.value()).map(|(exp, body)| (exp, body.to_vec())))
                .transpose()?
        };
        if let Some((exp, _)) = &removed {
            self.reindex(key, *exp, 0)?;
        }
        Ok(removed)
    }

    /// Removes `key` and returns its record if it was live.
    fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.remove(key)? {
            Some((exp, body)) if self.live(exp) => decode(&body).map(Some),
            _ => Ok(None),
        }
    }

    fn reindex(&self, key: &str, old: u64, new: u64) -> Result<(), StoreError> {
        if old == new {
            return Ok(());
        }
        let mut e = self.tx.open_table(EXPIRY).map_err(backend)?;
        if old != 0 {
            e.remove((old, key)).map_err(backend)?;
        }
        if new != 0 {
            e.insert((new, key), ()).map_err(backend)?;
        }
        Ok(())
    }

    fn counter(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self.get::<u64>(key)?.unwrap_or(0))
    }

    fn index_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        let mut index = self.tx.open_multimap_table(INDEX).map_err(backend)?;
        for key in grant_index_keys(grant) {
            index
                .insert(key.as_str(), grant.grant_id.as_str())
                .map_err(backend)?;
        }
        Ok(())
    }

    fn unindex_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        let mut index = self.tx.open_multimap_table(INDEX).map_err(backend)?;
        for key in grant_index_keys(grant) {
            index
                .remove(key.as_str(), grant.grant_id.as_str())
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Removes up to `limit` records whose expiry has passed, oldest first; returns how many were removed and
    /// whether more are due.
    fn purge(&self, limit: usize) -> Result<(usize, bool), StoreError> {
        let mut due: Vec<(u64, String)> = {
            let e = self.tx.open_table(EXPIRY).map_err(backend)?;
            let end = self.now.saturating_add(1);
            let mut due = Vec::new();
            for row in e.range(..(end, "")).map_err(backend)?.take(limit + 1) {
                let (k, _) = row.map_err(backend)?;
                let (exp, key) = k.value();
                due.push((exp, key.to_owned()));
            }
            due
        };
        let more = due.len() > limit;
        due.truncate(limit);
        let mut removed = 0usize;
        for (exp, key) in &due {
            self.tx
                .open_table(EXPIRY)
                .map_err(backend)?
                .remove((*exp, key.as_str()))
                .map_err(backend)?;
            if let Some(seq) = key.strip_prefix("rev:") {
                let seq: u64 = seq
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("expiry entry `{key}`")))?;
                let mut revs = self.tx.open_table(REVOCATIONS).map_err(backend)?;
                if revs.remove(seq).map_err(backend)?.is_some() {
                    removed += 1;
                }
                continue;
            }
            let stored = {
                let t = self.tx.open_table(RECORDS).map_err(backend)?;
                t.get(key.as_str())
                    .map_err(backend)?
                    .map(|g| split(g.value()).map(|(e, body)| (e, body.to_vec())))
                    .transpose()?
            };
            // The index is exact, so the record expires when its entry says; check anyway rather than delete a
            // record that a bug left indexed under an old expiry.
            let Some((stored_exp, body)) = stored else {
                continue;
            };
            if stored_exp != *exp {
                continue;
            }
            self.tx
                .open_table(RECORDS)
                .map_err(backend)?
                .remove(key.as_str())
                .map_err(backend)?;
            if key.starts_with("grant:") {
                self.unindex_grant(&decode::<GrantRecord>(&body)?)?;
            }
            removed += 1;
        }
        Ok((removed, more))
    }
}

fn grant_index_keys(grant: &GrantRecord) -> [String; 2] {
    [
        format!("client:{}", grant.client_id),
        format!("subject:{}", grant.identity.subject),
    ]
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let client = client.clone();
        let key = format!("client:{}", client.client_id);
        self.write(move |w| {
            if w.exists(&key)? {
                return Err(StoreError::Conflict);
            }
            w.put(&key, &client, 0)?;
            w.put(CLIENT_COUNT, &w.counter(CLIENT_COUNT)?.saturating_add(1), 0)
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let key = format!("client:{client_id}");
        self.inner.get(&key)
    }

    async fn replace_client(&self, client: &ClientRecord) -> Result<bool, StoreError> {
        let client = client.clone();
        let key = format!("client:{}", client.client_id);
        self.write(move |w| {
            if !w.exists(&key)? {
                return Ok(false);
            }
            w.put(&key, &client, 0)?;
            Ok(true)
        })
        .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let (key, used) = (
            format!("client:{client_id}"),
            format!("client-used:{client_id}"),
        );
        self.write(move |w| {
            w.remove(&used)?;
            if w.remove(&key)?.is_none() {
                return Ok(false);
            }
            w.put(CLIENT_COUNT, &w.counter(CLIENT_COUNT)?.saturating_sub(1), 0)?;
            Ok(true)
        })
        .await
    }

    async fn count_clients(&self) -> Result<usize, StoreError> {
        let n: u64 = self.inner.get(CLIENT_COUNT)?.unwrap_or_default();
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn mark_client_used(&self, client_id: &str, at: u64) -> Result<(), StoreError> {
        let key = format!("client-used:{client_id}");
        self.write(move |w| w.put(&key, &at, 0)).await
    }

    async fn client_last_used(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        let key = format!("client-used:{client_id}");
        self.inner.get(&key)
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.read(|s| s.clients(Bound::Included("client:"), usize::MAX))
            .await
    }

    async fn clients_page(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ClientRecord>, Option<String>), StoreError> {
        // The cursor is the last id of the previous page.
        let after = cursor.map(|id| format!("client:{id}"));
        let limit = limit.max(1);
        let page = self
            .read(move |s| match &after {
                Some(k) => s.clients(Bound::Excluded(k.as_str()), limit),
                None => s.clients(Bound::Included("client:"), limit),
            })
            .await?;
        let next = (page.len() == limit)
            .then(|| page.last().map(|c| c.client_id.clone()))
            .flatten();
        Ok((page, next))
    }

    async fn put_pending(
        &self,
        key: &TokenHash,
        p: &PendingAuthorization,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_for(hashed_key("pending", key), p.clone(), ttl)
            .await
    }

    async fn pending(&self, key: &TokenHash) -> Result<Option<PendingAuthorization>, StoreError> {
        self.inner.get(&hashed_key("pending", key))
    }

    async fn take_pending(
        &self,
        key: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let key = hashed_key("pending", key);
        self.write(move |w| w.take(&key)).await
    }

    async fn put_code(
        &self,
        key: &TokenHash,
        code: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_for(hashed_key("code", key), code.clone(), ttl)
            .await
    }

    async fn redeem_code(
        &self,
        key: &TokenHash,
        replay_ttl: Duration,
    ) -> Result<CodeRedemption, StoreError> {
        let hex = key.to_hex();
        let code_key = format!("code:{hex}");
        let used_key = format!("used:{hex}");
        self.write(move |w| {
            if let Some(code) = w.take::<CodeRecord>(&code_key)? {
                w.put(&used_key, &code.grant_id, w.expiry(replay_ttl))?;
                return Ok(CodeRedemption::Fresh(Box::new(code)));
            }
            Ok(match w.get::<String>(&used_key)? {
                Some(grant_id) => CodeRedemption::Replayed { grant_id },
                None => CodeRedemption::Unknown,
            })
        })
        .await
    }

    async fn put_grant(&self, grant: &GrantRecord, ttl: Duration) -> Result<(), StoreError> {
        let grant = grant.clone();
        let key = format!("grant:{}", grant.grant_id);
        self.write(move |w| {
            w.put(&key, &grant, w.expiry(ttl))?;
            w.index_grant(&grant)
        })
        .await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let key = format!("grant:{grant_id}");
        self.inner.get(&key)
    }

    async fn delete_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let key = format!("grant:{grant_id}");
        self.write(move |w| {
            let grant: Option<GrantRecord> = w.take(&key)?;
            if let Some(g) = &grant {
                w.unindex_grant(g)?;
            }
            Ok(grant)
        })
        .await
    }

    async fn grants_of_client(&self, client_id: &str) -> Result<Vec<String>, StoreError> {
        let key = format!("client:{client_id}");
        self.read(move |s| s.live_grant_ids(&key)).await
    }

    async fn grants_of_subject(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        let key = format!("subject:{subject}");
        self.read(move |s| s.live_grant_ids(&key)).await
    }

    async fn rotate_grant(
        &self,
        grant: &GrantRecord,
        expected_generation: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let grant = grant.clone();
        let key = format!("grant:{}", grant.grant_id);
        /// Just what the compare-and-swap reads of the stored grant (serde skips the rest without allocating).
        #[derive(serde::Deserialize)]
        struct Stored {
            refresh: Option<Generation>,
        }
        #[derive(serde::Deserialize)]
        struct Generation {
            generation: u64,
        }
        self.write(move |w| {
            let current = w.get::<Stored>(&key)?;
            let at = current.and_then(|g| g.refresh).map(|c| c.generation);
            if at != Some(expected_generation) {
                return Ok(false);
            }
            w.put(&key, &grant, w.expiry(ttl))?;
            Ok(true)
        })
        .await
    }

    async fn add_revocation(&self, r: &Revocation) -> Result<u64, StoreError> {
        let r = r.clone();
        self.write(move |w| {
            let seq = w.counter(REVOCATION_SEQ)?.saturating_add(1);
            let bytes = encode(&r, r.expires_at)?;
            w.tx.open_table(REVOCATIONS)
                .map_err(backend)?
                .insert(seq, bytes.as_slice())
                .map_err(backend)?;
            if r.expires_at != 0 {
                w.tx.open_table(EXPIRY)
                    .map_err(backend)?
                    .insert((r.expires_at, revocation_key(seq).as_str()), ())
                    .map_err(backend)?;
            }
            w.put(REVOCATION_SEQ, &seq, 0)?;
            Ok(seq)
        })
        .await
    }

    async fn revocations_since(&self, after: u64) -> Result<Vec<(u64, Revocation)>, StoreError> {
        self.read(move |s| {
            let tx = s.db.begin_read().map_err(backend)?;
            let t = tx.open_table(REVOCATIONS).map_err(backend)?;
            let now = s.now();
            let mut out = Vec::new();
            for row in t.range(after.saturating_add(1)..).map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                let (exp, body) = split(v.value())?;
                if live_at(exp, now) {
                    out.push((k.value(), decode(body)?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        let k = format!("key:{}", key.kid);
        self.write(move |w| w.put(&k, &key, 0)).await
    }

    async fn put_first_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let key = key.clone();
        let k = format!("key:{}", key.kid);
        self.write(move |w| {
            let any =
                w.tx.open_table(RECORDS)
                    .map_err(backend)?
                    .range("key:".."key;")
                    .map_err(backend)?
                    .next()
                    .is_some();
            if any {
                return Ok(false);
            }
            w.put(&k, &key, 0)?;
            Ok(true)
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|s| {
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
        self.delete(format!("key:{kid}")).await
    }

    async fn put_session(
        &self,
        key: &TokenHash,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_for(hashed_key("session", key), rec.clone(), ttl)
            .await
    }

    async fn session(&self, key: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.get(&hashed_key("session", key))
    }

    async fn delete_session(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.delete(hashed_key("session", key)).await
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        c: &ConsentRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_for(consent_key(subject, client_id), c.clone(), ttl)
            .await
    }

    async fn consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        self.inner.get(&consent_key(subject, client_id))
    }

    async fn count_failure(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let key = format!("fail:{key}");
        self.write(move |w| {
            let current = {
                let t = w.tx.open_table(RECORDS).map_err(backend)?;
                match t.get(key.as_str()).map_err(backend)? {
                    Some(guard) => {
                        let (exp, body) = split(guard.value())?;
                        w.live(exp)
                            .then(|| decode::<u64>(body).map(|n| (n, exp)))
                            .transpose()?
                    }
                    None => None,
                }
            };
            let (count, exp) = match current {
                Some((n, exp)) => (n.saturating_add(1), exp),
                None => (1, w.expiry(window)),
            };
            w.put(&key, &count, exp)?;
            Ok(count)
        })
        .await
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.delete(format!("fail:{key}")).await
    }

    async fn put_ban(&self, key: &str, until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.put_for(format!("ban:{key}"), until, ttl).await
    }

    async fn ban(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let key = format!("ban:{key}");
        self.inner.get(&key)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|s| {
            let tx = s.db.begin_read().map_err(backend)?;
            tx.open_table(RECORDS).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        let mut total = 0usize;
        loop {
            let (removed, more) = self.write(|w| w.purge(PURGE_BATCH)).await?;
            total += removed;
            if !more {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FixedClock;

    fn store(clock: &Arc<FixedClock>) -> EmbeddedStore {
        EmbeddedStore::in_memory(Arc::clone(clock) as Arc<dyn Clock>).unwrap()
    }

    fn index_len(s: &EmbeddedStore) -> u64 {
        use redb::ReadableTableMetadata as _;
        let tx = s.inner.db.begin_read().unwrap();
        tx.open_table(EXPIRY).unwrap().len().unwrap()
    }

    fn records_len(s: &EmbeddedStore) -> u64 {
        use redb::ReadableTableMetadata as _;
        let tx = s.inner.db.begin_read().unwrap();
        tx.open_table(RECORDS).unwrap().len().unwrap()
    }

    #[tokio::test]
    async fn the_expiry_index_follows_every_rewrite_so_replacing_a_record_leaves_nothing_behind() {
        let clock = FixedClock::at(1_000_000);
        let s = store(&clock);
        let key = TokenHash::of(b"session");
        let rec = SessionRecord {
            csrf: "c".into(),
            identity: None,
            upstream: None,
            expires_at: 0,
        };
        for i in 1..=50u64 {
            s.put_session(&key, &rec, Duration::from_secs(60 * i))
                .await
                .unwrap();
        }
        assert_eq!(
            index_len(&s),
            1,
            "one entry for one record, however often rewritten"
        );
        s.delete_session(&key).await.unwrap();
        assert_eq!(index_len(&s), 0);
    }

    #[tokio::test]
    async fn a_purge_reads_only_what_expired_in_bounded_batches() {
        let clock = FixedClock::at(1_000_000);
        let s = store(&clock);
        let rec = SessionRecord {
            csrf: "c".into(),
            identity: None,
            upstream: None,
            expires_at: 0,
        };
        // 3 × PURGE_BATCH + 5 short-lived records and 100 long-lived ones.
        let short = 3 * PURGE_BATCH + 5;
        for i in 0..short {
            s.put_session(
                &TokenHash::of(format!("s{i}").as_bytes()),
                &rec,
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        }
        for i in 0..100 {
            s.put_session(
                &TokenHash::of(format!("l{i}").as_bytes()),
                &rec,
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        }
        let before = records_len(&s);
        assert_eq!(s.purge_expired().await.unwrap(), 0, "nothing is due yet");
        clock.advance(Duration::from_secs(11));
        // One purge removes everything due, across several batches, and nothing else.
        let purged = s.purge_expired().await.unwrap();
        assert_eq!(purged, short);
        assert_eq!(records_len(&s), before - short as u64);
        assert_eq!(index_len(&s), 100);
        // The long-lived ones are still readable.
        assert!(s.session(&TokenHash::of(b"l7")).await.unwrap().is_some());
        // A purge batch stops at the clock: it reads at most the due entries plus one.
        let (removed, more) = s.write(|w| w.purge(PURGE_BATCH)).await.unwrap();
        assert_eq!((removed, more), (0, false));
    }

    #[tokio::test]
    async fn the_client_count_is_a_counter_not_a_scan() {
        let clock = FixedClock::at(1_000_000);
        let s = store(&clock);
        let mut c = crate::store::conformance::client("a");
        s.insert_client(&c).await.unwrap();
        c.client_id = "b".into();
        s.insert_client(&c).await.unwrap();
        assert!(matches!(
            s.insert_client(&c).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.count_clients().await.unwrap(), 2);
        assert!(s.delete_client("a").await.unwrap());
        assert!(!s.delete_client("a").await.unwrap());
        assert_eq!(s.count_clients().await.unwrap(), 1);
        // Stored, not counted: the counter is a record.
        let n: Option<u64> = s.inner.get(CLIENT_COUNT).unwrap();
        assert_eq!(n, Some(1));
    }

    #[tokio::test]
    async fn concurrent_writes_share_commits_and_a_failing_one_takes_no_other_with_it() {
        let clock = FixedClock::at(1_000_000);
        let s = store(&clock);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                // Every tenth id repeats an earlier one: a conflict inside a batch.
                let id = if i % 10 == 9 {
                    format!("c{}", i - 1)
                } else {
                    format!("c{i}")
                };
                let mut c = crate::store::conformance::client(&id);
                c.issued_at = i;
                s.insert_client(&c).await
            }));
        }
        let mut ok = 0;
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(StoreError::Conflict) => conflicts += 1,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!((ok, conflicts), (180, 20));
        assert_eq!(s.count_clients().await.unwrap(), 180);
        assert_eq!(s.list_clients().await.unwrap().len(), 180);
    }

    #[tokio::test]
    async fn a_store_from_before_the_index_gets_one_on_first_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            // The old layout: records with expiries, no expiry table, no counters.
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(RECORDS).unwrap();
                let c = encode(&crate::store::conformance::client("x"), 0).unwrap();
                t.insert("client:x", c.as_slice()).unwrap();
                let p = encode(&"p", 1_000_100).unwrap();
                t.insert("pending:ab", p.as_slice()).unwrap();
                let mut r = tx.open_table(REVOCATIONS).unwrap();
                let rev = Revocation {
                    kind: crate::store::RevokedKind::Token,
                    id: "j".into(),
                    expires_at: 1_000_050,
                    recorded_at_ms: None,
                };
                r.insert(7, encode(&rev, rev.expires_at).unwrap().as_slice())
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let clock = FixedClock::at(1_000_000);
        let s = EmbeddedStore::open(&path, Arc::clone(&clock) as Arc<dyn Clock>).unwrap();
        assert_eq!(s.count_clients().await.unwrap(), 1);
        assert_eq!(index_len(&s), 2);
        let seq = s
            .add_revocation(&Revocation {
                kind: crate::store::RevokedKind::Token,
                id: "k".into(),
                expires_at: 1_000_200,
                recorded_at_ms: None,
            })
            .await
            .unwrap();
        assert_eq!(seq, 8, "sequence numbers continue after the old log");
        clock.advance(Duration::from_secs(150));
        assert_eq!(s.purge_expired().await.unwrap(), 2);
        assert_eq!(s.revocations_since(0).await.unwrap().len(), 1);
    }
}
