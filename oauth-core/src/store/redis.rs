//! The shared backend: Redis (7.0 or newer) through a deadpool-redis connection pool, for several instances
//! behind one load balancer.
//!
//! # Why it is shaped this way
//! Every instance must see the same clients, codes, refresh tokens, keys and revocations, and every single-use
//! decision must have exactly one winner across instances. Redis gives that with single-key atomic commands
//! (`GETDEL`, `SET NX`/`XX`) and short Lua scripts, which run atomically. No operation scans the keyspace: "all
//! grants of a client / user" and "all clients" are sets maintained beside the records.
//!
//! # Key layout
//! `P` is the configured prefix (no braces, no whitespace). Values are `"<expires_at>\n<JSON>"`, where
//! `expires_at` is seconds since the epoch on the engine's [`Clock`] (0 = never).
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:client:<client_id>` | string | a client |
//! | `P:clients` | set | every client id (for listing and counting) |
//! | `P:client-used:<client_id>` | string | when the client last completed an authorization or refreshed |
//! | `P:pending:<hash>` | string | a pending authorization, taken with `GETDEL` |
//! | `P:code:{<hash>}` | string | an authorization code |
//! | `P:code-used:{<hash>}` | string | the replay marker of a redeemed code (grant id) |
//! | `P:grant:<grant_id>` | string | a grant |
//! | `P:client-grants:<client_id>`, `P:subject-grants:<subject>` | set | grant ids, the revocation indexes |
//! | `{P:revocations}:seq`, `{P:revocations}:log` | string, sorted set | the revocation log: counter, and entries scored by sequence number |
//! | `P:keys` | hash | signing keys by `kid` |
//! | `P:session:<hash>`, `P:consent:<len(subject)>:<subject>:<client_id>` | string | login sessions, remembered consent |
//! | `P:fail:<key>`, `P:ban:<key>` | string | login regulation: a failure counter (hash of count and window end, set by the first failure), a ban (`"<expires_at>\n<until>"`) |
//!
//! `<hash>` is the hex SHA-256 of the secret: plaintext secrets never reach Redis. Scripts that touch several keys
//! (code redemption; appending a revocation) name keys that share a hash tag (`{…}`), so the layout is valid on
//! Redis Cluster; every other script touches one key. This backend connects to one Redis endpoint (a standalone
//! server, or a managed primary) through `redis://` or `rediss://` URLs.
//!
//! # Atomicity
//! * `take_pending`: `GETDEL`.
//! * `redeem_code`: one script: `GETDEL` the code and leave the replay marker, or report the marker.
//! * `rotate_grant`: one round trip: the grant's index sets have their expiry extended first (an index may name
//!   a grant that is gone, never the reverse), then one script replaces the grant only if it is live and its
//!   refresh chain is at the expected generation. So exactly one of any number of concurrent rotations wins, on
//!   any instance, and a failed rotation writes nothing but an index expiry.
//! * `add_revocation`: one script: `INCR` the sequence, `ZADD` the entry, `PUBLISH` the announcement.
//! * `put_first_key`: one script: store only if the key hash is empty.
//!
//! # Expiry
//! Records get a Redis expiry (`PX`) from the TTL, which removes them; reads also compare the stored expiry with
//! the injected clock, as the embedded backend does, so a record is never returned after its TTL by either clock.
//!
//! # Announcements
//! Appending a revocation and changing a key publish on the channel `P:events`; [`Store::events`] starts one
//! listener task per store that subscribes on a dedicated connection, reconnects with back-off when Redis goes
//! away, and reports [`StoreEvent::Reconnected`] after every (re)subscription so the engine catches up on what it
//! missed.
//!
//! # Failures
//! Every operation, including waiting for a pooled connection, is bounded by the configured timeout. I/O errors,
//! refused or dropped connections, timeouts and cluster-state errors become [`StoreError::Unavailable`] (the
//! engine answers `temporarily_unavailable`); the pool replaces broken connections by itself once Redis is back.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Pool, PoolError, Runtime};
use futures_util::StreamExt as _;
use redis::{FromRedisValue, RedisError, Script};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::{
    ClientRecord, CodeRecord, CodeRedemption, ConsentRecord, GrantRecord, KeyRecord,
    PendingAuthorization, Revocation, SessionRecord, Store, StoreError, StoreEvent,
};
use crate::clock::Clock;
use crate::types::TokenHash;

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` for TLS.
    pub url: String,
    /// Prefix of every key (and of the announcement channel): lets several deployments share one Redis.
    pub key_prefix: String,
    /// Most pooled connections.
    pub pool_size: usize,
    /// Bound on every operation, including the wait for a pooled connection.
    pub timeout: Duration,
}

impl RedisConfig {
    /// A configuration with a pool of 16 connections and a 2 s timeout.
    pub fn new(url: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key_prefix: key_prefix.into(),
            pool_size: 16,
            timeout: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The URL with its password (if any) replaced by `redacted`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "[unparseable URL]".to_owned(),
    }
}

/// The Redis store. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    events: OnceLock<broadcast::Sender<StoreEvent>>,
    scripts: Scripts,
}

/// The Lua scripts, hashed once (they run by `EVALSHA`, loaded on first use).
struct Scripts {
    redeem_code: Script,
    add_revocation: Script,
    put_first_key: Script,
    count_failure: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Whether a Redis error means "not reachable now" rather than "this operation is wrong".
fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        )
}

fn redis_error(e: RedisError) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(format!("redis: {e}"))
    } else {
        StoreError::Backend(format!("redis: {e}"))
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Timeout(_) => {
            StoreError::Unavailable("redis: no connection within the timeout".into())
        }
        PoolError::Backend(e) => redis_error(e),
        other => StoreError::Backend(format!("redis pool: {other}")),
    }
}

fn encode<T: Serialize>(value: &T, expires_at: u64) -> Result<Vec<u8>, StoreError> {
    let mut out = format!("{expires_at}\n").into_bytes();
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(out)
}

/// Splits a stored value into its expiry and JSON body.
fn split(raw: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let at = raw
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| StoreError::Corrupt("value without its expiry header".into()))?;
    let (head, body) = raw.split_at(at);
    let exp = std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("unreadable expiry header".into()))?;
    Ok((exp, body.get(1..).unwrap_or_default()))
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1000)
}

/// `GETDEL` the code; if it was live, leave the replay marker and return it; otherwise report the marker, if any.
/// KEYS: code, used marker. ARGV: now, marker expiry, marker TTL in ms. Returns `{0}`, `{1, code}` or `{2, marker}`.
const REDEEM_CODE: &str = r"
local v = redis.call('GETDEL', KEYS[1])
if v then
  local nl = string.find(v, '\n', 1, true)
  if not nl then return redis.error_reply('corrupt authorization code record') end
  local exp = tonumber(string.sub(v, 1, nl - 1))
  if exp == 0 or exp > tonumber(ARGV[1]) then
    local code = cjson.decode(string.sub(v, nl + 1))
    redis.call('SET', KEYS[2], ARGV[2] .. '\n' .. cjson.encode(code['grant_id']), 'PX', ARGV[3])
    return {1, v}
  end
end
local used = redis.call('GET', KEYS[2])
if used then return {2, used} end
return {0}
";

/// Replace a live grant whose refresh chain is at the expected generation. Sent with `EVAL` inside the pipeline
/// that extends the index expiries (a pipeline cannot carry `EVALSHA`'s fallback). KEYS: grant. ARGV: now,
/// expected generation, grant record, grant TTL in ms. Returns 1 if replaced.
const ROTATE_GRANT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local nl = string.find(v, '\n', 1, true)
if not nl then return redis.error_reply('corrupt grant record') end
local exp = tonumber(string.sub(v, 1, nl - 1))
if exp ~= 0 and exp <= tonumber(ARGV[1]) then return 0 end
local chain = cjson.decode(string.sub(v, nl + 1))['refresh']
if type(chain) ~= 'table' or chain['generation'] ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

/// Append to the revocation log and announce it. KEYS: sequence, log. ARGV: entry, channel. Returns the number.
const ADD_REVOCATION: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], n, n .. '\n' .. ARGV[1])
redis.call('PUBLISH', ARGV[2], 'revoked')
return n
";

/// Store a key only if there is none, and announce it. KEYS: key hash. ARGV: kid, record, channel.
const PUT_FIRST_KEY: &str = r"
if redis.call('HLEN', KEYS[1]) ~= 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'keys')
return 1
";

/// Count a login failure in a fixed window that starts with the first failure, on the engine's clock.
/// KEYS: counter. ARGV: now, window end, TTL in ms. Returns the count.
const COUNT_FAILURE: &str = r"
local exp = tonumber(redis.call('HGET', KEYS[1], 'exp'))
if exp == nil or exp <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'n', 1, 'exp', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return redis.call('HINCRBY', KEYS[1], 'n', 1)
";

const EVENT_REVOKED: &[u8] = b"revoked";
const EVENT_KEYS: &[u8] = b"keys";

impl RedisStore {
    /// Builds the pool. Connections are made on first use, so this succeeds while Redis is down.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for an invalid URL or key prefix.
    pub fn new(config: RedisConfig, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let prefix = config.key_prefix;
        if prefix.is_empty()
            || prefix
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(StoreError::Backend(
                "the Redis key prefix must be non-empty, without braces, whitespace or control characters"
                    .into(),
            ));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            StoreError::Backend(format!(
                "invalid Redis URL {}: {e}",
                redact_url(&config.url)
            ))
        })?;
        let mut pool_config = deadpool_redis::Config::from_url(config.url.as_str());
        let mut pc = deadpool_redis::PoolConfig::new(config.pool_size.max(1));
        pc.timeouts.wait = Some(config.timeout);
        pc.timeouts.create = Some(config.timeout);
        pc.timeouts.recycle = Some(config.timeout);
        pool_config.pool = Some(pc);
        let pool = pool_config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| StoreError::Backend(format!("cannot create the Redis pool: {e}")))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                pool,
                client,
                prefix,
                timeout: config.timeout,
                clock,
                events: OnceLock::new(),
                scripts: Scripts {
                    redeem_code: Script::new(REDEEM_CODE),
                    add_revocation: Script::new(ADD_REVOCATION),
                    put_first_key: Script::new(PUT_FIRST_KEY),
                    count_failure: Script::new(COUNT_FAILURE),
                },
            }),
        })
    }

    fn key(&self, parts: &str) -> String {
        format!("{}:{parts}", self.inner.prefix)
    }

    fn channel(&self) -> String {
        self.key("events")
    }

    fn revocation_keys(&self) -> (String, String) {
        let tag = format!("{{{}:revocations}}", self.inner.prefix);
        (format!("{tag}:seq"), format!("{tag}:log"))
    }

    /// The key of the record of `kind` named `id` (`client:<id>`, `grant:<id>`, `ban:<key>`…).
    fn record_key(&self, kind: &str, id: &str) -> String {
        self.key(&format!("{kind}:{id}"))
    }

    /// The key of a record stored under the hash of its secret (`pending`, `session`).
    fn hashed_key(&self, kind: &str, hash: &TokenHash) -> String {
        self.record_key(kind, &hash.to_hex())
    }

    /// The index sets that name `grant`: by client and by subject.
    fn grant_index_keys(&self, grant: &GrantRecord) -> [String; 2] {
        [
            self.record_key("client-grants", &grant.client_id),
            self.record_key("subject-grants", &grant.identity.subject),
        ]
    }

    fn consent_key(&self, subject: &str, client_id: &str) -> String {
        self.key(&format!("consent:{}:{subject}:{client_id}", subject.len()))
    }

    fn now(&self) -> u64 {
        self.inner.clock.unix()
    }

    fn expiry(&self, ttl: Duration) -> u64 {
        self.now().saturating_add(ttl.as_secs().max(1))
    }

    fn live(&self, exp: u64) -> bool {
        exp == 0 || exp > self.now()
    }

    /// Runs `f` on a pooled connection, the whole of it (the wait for the connection included) bounded by the
    /// timeout.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let work = async {
            let conn = self.inner.pool.get().await.map_err(pool_error)?;
            f(conn).await.map_err(redis_error)
        };
        tokio::time::timeout(self.inner.timeout, work)
            .await
            .map_err(|_| {
                StoreError::Unavailable("redis did not answer within the timeout".into())
            })?
    }

    async fn cmd<T: FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        self.with(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    async fn pipe<T: FromRedisValue>(&self, pipe: redis::Pipeline) -> Result<T, StoreError> {
        self.with(|mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    async fn get_live<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, StoreError> {
        let raw: Option<Vec<u8>> = self.cmd(redis::cmd("GET").arg(key).clone()).await?;
        self.live_body(raw)
    }

    fn live_body<T: DeserializeOwned>(
        &self,
        raw: Option<Vec<u8>>,
    ) -> Result<Option<T>, StoreError> {
        let Some(raw) = raw else { return Ok(None) };
        let (exp, body) = split(&raw)?;
        if !self.live(exp) {
            return Ok(None);
        }
        decode(body).map(Some)
    }

    /// `GETDEL`: the record at `key` if it was live; gone either way.
    async fn take_live<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, StoreError> {
        let raw: Option<Vec<u8>> = self.cmd(redis::cmd("GETDEL").arg(key).clone()).await?;
        self.live_body(raw)
    }

    async fn del(&self, key: String) -> Result<(), StoreError> {
        self.cmd::<()>(redis::cmd("DEL").arg(key).clone()).await
    }

    /// The live clients among `ids`, in one round trip.
    async fn clients_by_id(&self, ids: &[String]) -> Result<Vec<ClientRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("GET").arg(self.record_key("client", id));
        }
        let values: Vec<Option<Vec<u8>>> = self.pipe(pipe).await?;
        let mut out = Vec::new();
        for raw in values {
            if let Some(c) = self.live_body(raw)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn set_px<T: Serialize>(
        &self,
        key: String,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let bytes = encode(value, self.expiry(ttl))?;
        self.cmd::<()>(
            redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("PX")
                .arg(millis(ttl))
                .clone(),
        )
        .await
    }

    /// Ids in an index set whose grant is still live; ids of vanished grants are pruned from the set.
    async fn live_grant_ids(&self, index: String) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = self.cmd(redis::cmd("SMEMBERS").arg(&index).clone()).await?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("GET").arg(self.record_key("grant", id));
        }
        let values: Vec<Option<Vec<u8>>> = self.pipe(pipe).await?;
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (id, raw) in ids.into_iter().zip(values) {
            let alive = match &raw {
                Some(raw) => self.live(split(raw)?.0),
                None => false,
            };
            if alive { live.push(id) } else { dead.push(id) }
        }
        if !dead.is_empty() {
            self.cmd::<()>(redis::cmd("SREM").arg(&index).arg(dead).clone())
                .await?;
        }
        Ok(live)
    }

    async fn publish_keys_changed(&self) -> Result<(), StoreError> {
        self.cmd::<()>(
            redis::cmd("PUBLISH")
                .arg(self.channel())
                .arg(EVENT_KEYS)
                .clone(),
        )
        .await
    }
}

/// Subscribes to the announcement channel, forwarding announcements, until nobody listens any more; reconnects
/// with back-off (100 ms doubling to 1 s) whenever the subscription is lost.
async fn listen(
    client: redis::Client,
    channel: String,
    timeout: Duration,
    tx: broadcast::Sender<StoreEvent>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut down_logged = false;
    loop {
        let subscribed = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(mut pubsub)) => {
                if down_logged {
                    tracing::info!("redis announcements resumed");
                }
                down_logged = false;
                backoff = Duration::from_millis(100);
                if tx.send(StoreEvent::Reconnected).is_err() {
                    return;
                }
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let event = match msg.get_payload_bytes() {
                        EVENT_REVOKED => StoreEvent::Revoked,
                        EVENT_KEYS => StoreEvent::KeysChanged,
                        _ => continue,
                    };
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            }
            Ok(Err(e)) if !down_logged => {
                tracing::warn!(error = %e, "redis announcements unavailable; retrying");
                down_logged = true;
            }
            Err(_) if !down_logged => {
                tracing::warn!("redis announcements: subscribing timed out; retrying");
                down_logged = true;
            }
            _ => {}
        }
        if tx.receiver_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let bytes = encode(client, 0)?;
        let mut pipe = redis::pipe();
        pipe.cmd("SADD")
            .arg(self.key("clients"))
            .arg(&client.client_id)
            .ignore()
            .cmd("SET")
            .arg(self.record_key("client", &client.client_id))
            .arg(bytes)
            .arg("NX");
        let (set,): (Option<String>,) = self.pipe(pipe).await?;
        match set {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict),
        }
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.get_live(self.record_key("client", client_id)).await
    }

    async fn replace_client(&self, client: &ClientRecord) -> Result<bool, StoreError> {
        let bytes = encode(client, 0)?;
        let set: Option<String> = self
            .cmd(
                redis::cmd("SET")
                    .arg(self.record_key("client", &client.client_id))
                    .arg(bytes)
                    .arg("XX")
                    .clone(),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(self.record_key("client", client_id))
            .cmd("DEL")
            .arg(self.record_key("client-used", client_id))
            .ignore()
            .cmd("SREM")
            .arg(self.key("clients"))
            .arg(client_id)
            .ignore();
        let (deleted,): (u64,) = self.pipe(pipe).await?;
        Ok(deleted > 0)
    }

    async fn count_clients(&self) -> Result<usize, StoreError> {
        self.cmd(redis::cmd("SCARD").arg(self.key("clients")).clone())
            .await
    }

    async fn mark_client_used(&self, client_id: &str, at: u64) -> Result<(), StoreError> {
        self.cmd::<()>(
            redis::cmd("SET")
                .arg(self.record_key("client-used", client_id))
                .arg(encode(&at, 0)?)
                .clone(),
        )
        .await
    }

    async fn client_last_used(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        self.get_live(self.record_key("client-used", client_id))
            .await
    }

    async fn clients_page(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ClientRecord>, Option<String>), StoreError> {
        // SSCAN's cursor: a walk sees every member present throughout at least once, some maybe twice.
        let (next, ids): (String, Vec<String>) = self
            .cmd(
                redis::cmd("SSCAN")
                    .arg(self.key("clients"))
                    .arg(cursor.unwrap_or("0"))
                    .arg("COUNT")
                    .arg(limit.max(1))
                    .clone(),
            )
            .await?;
        let page = self.clients_by_id(&ids).await?;
        Ok((page, (next != "0").then_some(next)))
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let ids: Vec<String> = self
            .cmd(redis::cmd("SMEMBERS").arg(self.key("clients")).clone())
            .await?;
        self.clients_by_id(&ids).await
    }

    async fn put_pending(
        &self,
        key: &TokenHash,
        p: &PendingAuthorization,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.set_px(self.hashed_key("pending", key), p, ttl).await
    }

    async fn pending(&self, key: &TokenHash) -> Result<Option<PendingAuthorization>, StoreError> {
        self.get_live(self.hashed_key("pending", key)).await
    }

    async fn take_pending(
        &self,
        key: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        self.take_live(self.hashed_key("pending", key)).await
    }

    async fn put_code(
        &self,
        key: &TokenHash,
        code: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.set_px(self.key(&format!("code:{{{}}}", key.to_hex())), code, ttl)
            .await
    }

    async fn redeem_code(
        &self,
        key: &TokenHash,
        replay_ttl: Duration,
    ) -> Result<CodeRedemption, StoreError> {
        let hex = key.to_hex();
        let mut script = self.inner.scripts.redeem_code.prepare_invoke();
        script
            .key(self.key(&format!("code:{{{hex}}}")))
            .key(self.key(&format!("code-used:{{{hex}}}")))
            .arg(self.now())
            .arg(self.expiry(replay_ttl))
            .arg(millis(replay_ttl));
        let (kind, raw): (u8, Option<Vec<u8>>) = self
            .with(|mut c| async move {
                let v: Vec<redis::Value> = script.invoke_async(&mut c).await?;
                let mut it = v.into_iter();
                let kind = match it.next() {
                    Some(k) => redis::from_redis_value(k)?,
                    None => 0,
                };
                let raw = match it.next() {
                    Some(r) => Some(redis::from_redis_value(r)?),
                    None => None,
                };
                Ok((kind, raw))
            })
            .await?;
        match (kind, raw) {
            (1, Some(raw)) => {
                let (_, body) = split(&raw)?;
                Ok(CodeRedemption::Fresh(Box::new(decode(body)?)))
            }
            (2, Some(raw)) => match self.live_body::<String>(Some(raw))? {
                Some(grant_id) => Ok(CodeRedemption::Replayed { grant_id }),
                None => Ok(CodeRedemption::Unknown),
            },
            _ => Ok(CodeRedemption::Unknown),
        }
    }

    async fn put_grant(&self, grant: &GrantRecord, ttl: Duration) -> Result<(), StoreError> {
        let bytes = encode(grant, self.expiry(ttl))?;
        let ms = millis(ttl);
        let mut pipe = redis::pipe();
        // Indexes first: an index may name a grant that is gone (readers skip it), never the reverse.
        for index in self.grant_index_keys(grant) {
            pipe.cmd("SADD")
                .arg(&index)
                .arg(&grant.grant_id)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&index)
                .arg(ms)
                .arg("NX")
                .ignore()
                .cmd("PEXPIRE")
                .arg(&index)
                .arg(ms)
                .arg("GT")
                .ignore();
        }
        pipe.cmd("SET")
            .arg(self.record_key("grant", &grant.grant_id))
            .arg(bytes)
            .arg("PX")
            .arg(ms)
            .ignore();
        self.pipe::<()>(pipe).await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.get_live(self.record_key("grant", grant_id)).await
    }

    async fn delete_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let grant: Option<GrantRecord> = self.take_live(self.record_key("grant", grant_id)).await?;
        if let Some(g) = &grant {
            let mut pipe = redis::pipe();
            for index in self.grant_index_keys(g) {
                pipe.cmd("SREM").arg(index).arg(grant_id).ignore();
            }
            self.pipe::<()>(pipe).await?;
        }
        Ok(grant)
    }

    async fn grants_of_client(&self, client_id: &str) -> Result<Vec<String>, StoreError> {
        self.live_grant_ids(self.record_key("client-grants", client_id))
            .await
    }

    async fn grants_of_subject(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        self.live_grant_ids(self.record_key("subject-grants", subject))
            .await
    }

    async fn rotate_grant(
        &self,
        grant: &GrantRecord,
        expected_generation: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let bytes = encode(grant, self.expiry(ttl))?;
        let ms = millis(ttl);
        let mut pipe = redis::pipe();
        for index in self.grant_index_keys(grant) {
            pipe.cmd("PEXPIRE").arg(&index).arg(ms).arg("GT").ignore();
        }
        pipe.cmd("EVAL")
            .arg(ROTATE_GRANT)
            .arg(1)
            .arg(self.record_key("grant", &grant.grant_id))
            .arg(self.now())
            .arg(expected_generation)
            .arg(bytes)
            .arg(ms);
        let (swapped,): (u8,) = self.pipe(pipe).await?;
        Ok(swapped == 1)
    }

    async fn add_revocation(&self, r: &Revocation) -> Result<u64, StoreError> {
        let (seq, log) = self.revocation_keys();
        let entry = encode(r, r.expires_at)?;
        let mut script = self.inner.scripts.add_revocation.prepare_invoke();
        script.key(seq).key(log).arg(entry).arg(self.channel());
        self.with(|mut c| async move { script.invoke_async(&mut c).await })
            .await
    }

    /// Entries after `after`; if the sequence counter is below `after`, Redis lost the log (a restart without
    /// persistence) and numbering started again, so every entry is returned: re-applying is harmless, and
    /// missing the new ones would not be.
    async fn revocations_since(&self, after: u64) -> Result<Vec<(u64, Revocation)>, StoreError> {
        let (seq, log) = self.revocation_keys();
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg(&seq)
            .cmd("ZRANGEBYSCORE")
            .arg(&log)
            .arg(format!("({after}"))
            .arg("+inf");
        let (current, mut members): (Option<u64>, Vec<Vec<u8>>) = self.pipe(pipe).await?;
        if current.unwrap_or(0) < after {
            members = self
                .cmd(redis::cmd("ZRANGE").arg(&log).arg(0).arg(-1).clone())
                .await?;
        }
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let (seq, entry) = split(&m)?;
            let (exp, body) = split(entry)?;
            if self.live(exp) {
                out.push((seq, decode(body)?));
            }
        }
        Ok(out)
    }

    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let bytes = encode(key, 0)?;
        self.cmd::<()>(
            redis::cmd("HSET")
                .arg(self.key("keys"))
                .arg(&key.kid)
                .arg(bytes)
                .clone(),
        )
        .await?;
        self.publish_keys_changed().await
    }

    async fn put_first_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let bytes = encode(key, 0)?;
        let mut script = self.inner.scripts.put_first_key.prepare_invoke();
        script
            .key(self.key("keys"))
            .arg(&key.kid)
            .arg(bytes)
            .arg(self.channel());
        let stored: u8 = self
            .with(|mut c| async move { script.invoke_async(&mut c).await })
            .await?;
        Ok(stored == 1)
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let values: Vec<Vec<u8>> = self
            .cmd(redis::cmd("HVALS").arg(self.key("keys")).clone())
            .await?;
        values
            .iter()
            .map(|raw| split(raw).and_then(|(_, body)| decode(body)))
            .collect()
    }

    async fn delete_key(&self, kid: &str) -> Result<(), StoreError> {
        self.cmd::<()>(redis::cmd("HDEL").arg(self.key("keys")).arg(kid).clone())
            .await?;
        self.publish_keys_changed().await
    }

    async fn put_session(
        &self,
        key: &TokenHash,
        s: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.set_px(self.hashed_key("session", key), s, ttl).await
    }

    async fn session(&self, key: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.get_live(self.hashed_key("session", key)).await
    }

    async fn delete_session(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.del(self.hashed_key("session", key)).await
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        c: &ConsentRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.set_px(self.consent_key(subject, client_id), c, ttl)
            .await
    }

    async fn consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        self.get_live(self.consent_key(subject, client_id)).await
    }

    async fn count_failure(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let mut script = self.inner.scripts.count_failure.prepare_invoke();
        script
            .key(self.record_key("fail", key))
            .arg(self.now())
            .arg(self.expiry(window))
            .arg(millis(window));
        self.with(|mut c| async move { script.invoke_async(&mut c).await })
            .await
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.del(self.record_key("fail", key)).await
    }

    async fn put_ban(&self, key: &str, until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.set_px(self.record_key("ban", key), &until, ttl).await
    }

    async fn ban(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.get_live(self.record_key("ban", key)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.cmd::<()>(redis::cmd("PING")).await
    }

    /// Redis expires records by itself; this only drops expired revocation-log entries (which are scored by
    /// sequence, not time).
    async fn purge_expired(&self) -> Result<usize, StoreError> {
        let (_, log) = self.revocation_keys();
        let members: Vec<Vec<u8>> = self
            .cmd(redis::cmd("ZRANGE").arg(&log).arg(0).arg(-1).clone())
            .await?;
        let mut dead = Vec::new();
        for m in members {
            let (_, entry) = split(&m)?;
            if !self.live(split(entry)?.0) {
                dead.push(m);
            }
        }
        if dead.is_empty() {
            return Ok(0);
        }
        let removed: usize = self
            .cmd(redis::cmd("ZREM").arg(log).arg(dead).clone())
            .await?;
        Ok(removed)
    }

    fn events(&self) -> Option<broadcast::Receiver<StoreEvent>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let tx = self.inner.events.get_or_init(|| {
            let (tx, _) = broadcast::channel(256);
            runtime.spawn(listen(
                self.inner.client.clone(),
                self.channel(),
                self.inner.timeout,
                tx.clone(),
            ));
            tx
        });
        Some(tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_carry_their_expiry_before_the_json() {
        let v = encode(&"g1", 42).unwrap();
        assert_eq!(v, b"42\n\"g1\"");
        let (exp, body) = split(&v).unwrap();
        assert_eq!((exp, body), (42, &b"\"g1\""[..]));
        assert!(matches!(split(b"no header"), Err(StoreError::Corrupt(_))));
        assert!(matches!(split(b"x\n{}"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_password_never_shows() {
        assert_eq!(
            redact_url("redis://user:hunter2@redis.example.com:6380/2"),
            "redis://user:redacted@redis.example.com:6380/2"
        );
        assert_eq!(redact_url("rediss://h/0"), "rediss://h/0");
        let config = RedisConfig::new("redis://:hunter2@h", "p");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
