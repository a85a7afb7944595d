//! The verification state of one instance, below the engine that owns it: the verified-token cache and the
//! in-memory revocation set that turn a bearer token into a [`Principal`] on the hot path. `AuthServer` holds a
//! [`Verifier`]; the endpoints that use it (`flow::verify`, `flow::gate`, `flow::introspect`) sit above the
//! server, so this module imports nothing of either.
//!
//! `/verify` runs on every request to every protected MCP server, so in steady state it touches no storage:
//! * a bounded cache of already-verified tokens skips the signature check; every hit still checks `exp` against
//!   the clock, the audience, and the revocation set, so the cache never outlives `exp` or a revocation;
//! * the revocation set lives in memory; local revocations enter it at once, and [`AuthServer::sync`](crate::AuthServer::sync) pulls the
//!   store's revocation log (what other instances revoked) from a cursor.
//!
//! # The verified-token cache
//! An entry is keyed by the first 16 bytes of the token's SHA-256, not by the token: a fixed 16 bytes whatever
//! the token's size. A hit vouches for the token without checking its signature, so a key collision would
//! authenticate a forged token: finding a token whose digest matches one of `n` cached ones is a second-preimage
//! search, about 2^128 / `n` SHA-256 computations (2^108 for a million cached tokens), out of reach. (A birthday
//! collision, 2^64, is of no use: both colliding tokens would have to be signed by this server.) 12 bytes would
//! leave 2^76 for a million entries, minutes of today's Bitcoin network's hash rate; the full 32 would cost 16
//! bytes more per slot for no practical gain.
//!
//! The value, [`Principal`], holds only what the gate reads: subject, username and e-mail in place (no
//! allocation when together they fit in 52 bytes, the common case), the expiry, the `jti` and `sid` as the
//! revocation set's 64-bit hashes, and one shared reference to the claims many tokens have in common (client,
//! audience, scope, groups), each distinct value held once by a small interner.
//!
//! # Memory
//! Everything here is bounded whatever the traffic. The cache and the interner together stay within
//! [`ServerConfig::verify_cache_bytes`](crate::ServerConfig::verify_cache_bytes) (32 MiB by default). The
//! interner gets 1/64 of it. Each cache entry weighs its slot in the cache's table (key, value and the cache's
//! bookkeeping: 120 bytes), its share of the table's index (at most 12 bytes), and whatever it holds on the heap
//! and does not share. The cache also remembers the keys of recently evicted entries (so that a token evicted
//! and soon used again comes back as a frequently used one), one for every five entries that fit, in slots of
//! the same size, which the budget reserves up front. So:
//!
//! | entry | bytes |
//! |---|---|
//! | typical: identity in place, shared part interned | 132, plus 26 of evicted-key slots: about 158 |
//! | identity over 52 bytes (e.g. an OIDC subject that is a UUID) | one allocation more: about 250 for 80 bytes |
//! | shared part not interned | that part's own copy: about 380 more for a typical one |
//!
//! The default budget holds about 208,000 typical tokens (a test checks at least 200,000), against 30,000 when
//! entries held the whole token and every claim as strings. The interner's 512 KiB hold about 1,300 distinct
//! shared parts in use at once; beyond, as with thousands of dynamically registered clients active at once, the
//! extra ones are held per entry. The tables grow by doubling: the capacity not yet used is address space,
//! touched only as it fills.
//!
//! The revocation set is bounded by what is revoked and not yet expired, at a fixed 16 bytes plus table slack
//! an entry (ids are kept as keyed 64-bit hashes): a million live revocations take at most about 36 MB. A
//! million issued and live tokens cost nothing here beyond the cache's bound: those that do not fit pay a
//! signature check on their next use.
//!
//! # Instances sharing a store
//! Another instance's revocation reaches this one only through a sync. So with
//! [`ServerConfig::revocation_max_staleness`](crate::ServerConfig::revocation_max_staleness) set, a token is
//! vouched for only while the last successful sync is at most that old: when the store cannot be reached for
//! longer, every token gets 401 `invalid_token` ("cannot confirm…") until a sync succeeds again. A 200 is then
//! always justified by a revocation state at most that stale. The gate may only answer 200, 401 or 403 (nginx
//! turns anything else into a 500), so failing closed is a 401, which sends the client to `/token`, where the
//! store's absence is a 503 `temporarily_unavailable`.
//!

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use quick_cache::sync::Cache;
use sha2::{Digest as _, Sha256};

use crate::jwt::{self, AccessTokenClaims, ClaimsRejection};
use crate::keys::{JosekitKeyManager, KeyError};
use crate::store::{Revocation, RevokedKind};
use crate::types::ScopeSet;

/// Who is calling, as established from a valid access token: the claims the gate reads, and nothing else.
///
/// This is also what the verified-token cache holds for each token, so it is compact (88 bytes, usually no
/// allocation of its own) and cheap to clone (a copy and one reference-count increment). The token's `jti`,
/// `sid` and `iat` are not kept: [`AuthServer::introspect`](crate::AuthServer::introspect) reads them from the
/// token itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    /// Client, audience, scope and groups: shared with every token that has the same ones.
    shared: Arc<SharedClaims>,
    /// Subject, username, e-mail.
    identity: Identity,
    /// `exp`.
    expires_at: u64,
    /// `jti` and `sid` as the revocation set's keyed hashes.
    revocation: RevocationIds,
}

impl Principal {
    /// `sub`.
    pub fn subject(&self) -> &str {
        let [subject, _, _] = self.identity.parts();
        subject.unwrap_or_default()
    }

    /// `preferred_username`.
    pub fn username(&self) -> Option<&str> {
        let [_, username, _] = self.identity.parts();
        username
    }

    /// `email`.
    pub fn email(&self) -> Option<&str> {
        let [_, _, email] = self.identity.parts();
        email
    }

    /// `groups`.
    pub fn groups(&self) -> &[String] {
        &self.shared.groups
    }

    /// The client the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The resource (`aud`).
    pub fn audience(&self) -> &str {
        &self.shared.audience
    }

    /// Granted scope.
    pub fn scope(&self) -> &ScopeSet {
        &self.shared.scope
    }

    /// Expiry (`exp`), in seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Bytes this principal holds on the heap and does not share with the interner.
    fn heap_bytes(&self) -> u64 {
        let shared = if self.shared.interned {
            0
        } else {
            self.shared.heap_bytes()
        };
        self.identity.heap_bytes().saturating_add(shared)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject())
            .field("username", &self.username())
            .field("email", &self.email())
            .field("groups", &self.groups())
            .field("client_id", &self.client_id())
            .field("audience", &self.audience())
            .field("scope", self.scope())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A `jti` and a `sid` as [`RevocationSet`] keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RevocationIds {
    token: u64,
    grant: u64,
}

/// What a heap allocation of `n` bytes costs with glibc's malloc: an 8-byte header, rounded up to 16, at
/// least 32; nothing for `n == 0` (empty boxes do not allocate). Other allocators round no worse.
fn heap(n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    let chunk = n.saturating_add(8 + 15) & !15;
    u64::try_from(chunk.max(32)).unwrap_or(u64::MAX)
}

/// Bytes of subject, username and e-mail that [`Identity::Inline`] holds in place: enough for a typical
/// identity (`github:12345678`, a 10-character username, a 25-character address), while keeping the whole
/// [`Principal`] at 88 bytes.
const INLINE: usize = 52;

/// The length of an absent username or e-mail in [`Identity::Inline`], which no part in place can have.
const ABSENT: u8 = u8::MAX;
const _: () = assert!(INLINE < ABSENT as usize);

/// Subject, username and e-mail, one after the other, with their lengths.
#[derive(Clone, PartialEq, Eq)]
enum Identity {
    /// In place, when together they fit in [`INLINE`] bytes (the bytes beyond are zero, so that equal
    /// identities compare equal).
    Inline { len: [u8; 3], bytes: [u8; INLINE] },
    /// On the heap otherwise; `usize::MAX` marks an absent part.
    Heap { len: [usize; 3], text: Box<str> },
}

impl Identity {
    fn new(parts: [Option<&str>; 3]) -> Self {
        let total: usize = parts.iter().flatten().map(|p| p.len()).sum();
        if total <= INLINE {
            let mut len = [ABSENT; 3];
            let mut bytes = [0u8; INLINE];
            let mut at = 0;
            for (l, part) in len.iter_mut().zip(parts) {
                if let Some(part) = part
                    && let (Some(slot), Ok(n)) =
                        (bytes.get_mut(at..at + part.len()), u8::try_from(part.len()))
                {
                    slot.copy_from_slice(part.as_bytes());
                    *l = n;
                    at += part.len();
                }
            }
            Identity::Inline { len, bytes }
        } else {
            let mut len = [usize::MAX; 3];
            let mut text = String::with_capacity(total);
            for (l, part) in len.iter_mut().zip(parts) {
                if let Some(part) = part {
                    text.push_str(part);
                    *l = part.len();
                }
            }
            Identity::Heap {
                len,
                text: text.into_boxed_str(),
            }
        }
    }

    /// Subject, username, e-mail.
    fn parts(&self) -> [Option<&str>; 3] {
        let mut out = [None; 3];
        let mut at = 0;
        match self {
            Identity::Inline { len, bytes } => {
                for (o, &l) in out.iter_mut().zip(len) {
                    if l != ABSENT {
                        let end = at + usize::from(l);
                        *o = bytes.get(at..end).and_then(|b| std::str::from_utf8(b).ok());
                        at = end;
                    }
                }
            }
            Identity::Heap { len, text } => {
                for (o, &l) in out.iter_mut().zip(len) {
                    if l != usize::MAX {
                        let end = at.saturating_add(l);
                        *o = text.get(at..end);
                        at = end;
                    }
                }
            }
        }
        out
    }

    fn heap_bytes(&self) -> u64 {
        match self {
            Identity::Inline { .. } => 0,
            Identity::Heap { text, .. } => heap(text.len()),
        }
    }
}

/// The claims many tokens have in common: every token of a client for one resource and scope, of users in the
/// same groups.
struct SharedClaims {
    client_id: Box<str>,
    audience: Box<str>,
    scope: ScopeSet,
    groups: Box<[String]>,
    /// Whether the [`Interner`] holds (and accounts for) this value; fixed at creation, so that an entry's
    /// weight never changes.
    interned: bool,
}

impl SharedClaims {
    /// Heap bytes of the value and of the `Arc` holding it.
    fn heap_bytes(&self) -> u64 {
        let string = std::mem::size_of::<String>();
        let scopes: Vec<&str> = self.scope.iter().collect();
        [
            heap(2 * std::mem::size_of::<usize>() + std::mem::size_of::<Self>()),
            heap(self.client_id.len()),
            heap(self.audience.len()),
            // The vector is compacted (`ScopeSet::compact`): exactly one `String` per token.
            heap(string * scopes.len()),
            heap(string * self.groups.len()),
        ]
        .into_iter()
        .chain(scopes.iter().map(|s| heap(s.len())))
        .chain(self.groups.iter().map(|g| heap(g.len())))
        .fold(0, u64::saturating_add)
    }
}

impl PartialEq for SharedClaims {
    fn eq(&self, other: &Self) -> bool {
        (&self.client_id, &self.audience, &self.scope, &self.groups)
            == (
                &other.client_id,
                &other.audience,
                &other.scope,
                &other.groups,
            )
    }
}

impl Eq for SharedClaims {}

impl Hash for SharedClaims {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.client_id.hash(state);
        self.audience.hash(state);
        for s in self.scope.iter() {
            s.hash(state);
        }
        self.groups.hash(state);
    }
}

/// What a value held by the interner costs beyond its own bytes: its bucket in the table (a pointer and a
/// control byte, at worst half the buckets used).
const INTERNED_SLOT: u64 = 24;

/// One copy of each [`SharedClaims`] value that cache entries use, within a byte budget.
///
/// Values leave only when nothing else holds them (a sweep when the budget is reached), so an entry that holds
/// an interned value can leave its weight to the interner. When the budget is full of values still in use (a
/// flood of distinct clients or group sets), a new value is not interned: its entry holds it alone and weighs
/// it.
struct Interner {
    table: Mutex<InternTable>,
    budget: u64,
}

#[derive(Default)]
struct InternTable {
    values: HashSet<Arc<SharedClaims>>,
    bytes: u64,
}

impl Interner {
    fn new(budget: u64) -> Self {
        Interner {
            table: Mutex::new(InternTable::default()),
            budget,
        }
    }

    fn intern(&self, claims: SharedClaims) -> Arc<SharedClaims> {
        let mut table = self.table.lock();
        if let Some(held) = table.values.get(&claims) {
            return Arc::clone(held);
        }
        let cost = claims.heap_bytes().saturating_add(INTERNED_SLOT);
        if table.bytes.saturating_add(cost) > self.budget {
            // A value only the table holds belongs to no cached token any more.
            table.values.retain(|v| Arc::strong_count(v) > 1);
            table.bytes = table
                .values
                .iter()
                .map(|v| v.heap_bytes().saturating_add(INTERNED_SLOT))
                .fold(0, u64::saturating_add);
        }
        if table.bytes.saturating_add(cost) > self.budget {
            return Arc::new(claims);
        }
        let value = Arc::new(SharedClaims {
            interned: true,
            ..claims
        });
        table.values.insert(Arc::clone(&value));
        table.bytes = table.bytes.saturating_add(cost);
        value
    }
}

/// Revoked token ids (`jti`) and grant ids, each until the expiry after which nothing it covers can be used.
///
/// Ids are kept as 64-bit hashes under a per-process random key, not as strings: an entry costs the same 16
/// bytes (plus the table's slack) whatever the ids look like, so a million live revocations take about 36 MB at
/// most. A collision could only make a valid token look revoked (a 401, never a wrongful 200), its odds are
/// 2^-64 per lookup and entry, and ids are chosen by this server, not by clients.
#[derive(Default)]
struct RevocationSet {
    key: std::hash::RandomState,
    tokens: HashMap<u64, u64>,
    grants: HashMap<u64, u64>,
    cursor: u64,
}

impl RevocationSet {
    fn id(&self, id: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.key, id)
    }

    /// Adds `r`; `true` if it was not in the set yet.
    fn insert(&mut self, r: &Revocation) -> bool {
        let id = self.id(&r.id);
        let map = match r.kind {
            RevokedKind::Token => &mut self.tokens,
            RevokedKind::Grant => &mut self.grants,
        };
        let new = !map.contains_key(&id);
        let until = map.entry(id).or_insert(r.expires_at);
        *until = (*until).max(r.expires_at);
        new
    }
}

/// A verified-token cache key: the first 16 bytes of the token's SHA-256 (see the module docs for why 16).
type TokenKey = [u8; 16];

fn token_key(token: &str) -> TokenKey {
    let digest = Sha256::digest(token.as_bytes());
    let mut key = [0u8; 16];
    for (k, d) in key.iter_mut().zip(digest) {
        *k = d;
    }
    key
}

/// The bytes of one slot in the cache's table: the key (16), the [`Principal`] (88), the cache's own state (3)
/// and list links (8), with padding. Pinned by a test against what the cache reports.
const SLOT_BYTES: u64 = 120;

/// The bytes of the cache's index per slot: a 4-byte entry index and a control byte per bucket, with the
/// buckets a power of two at most 7/8 full, so at most 11.4.
const INDEX_BYTES: u64 = 12;

/// What an entry costs before anything it holds on the heap.
const ENTRY_BYTES: u64 = SLOT_BYTES + INDEX_BYTES;

/// How many evicted keys the cache remembers (quick_cache's "ghosts", which let a token evicted and soon used
/// again come back as a frequently used one), per entry that fits: 1/5. They take slots of the same size as
/// entries, so the budget reserves them up front. (quick_cache's default, 1/2, would cost 40 more bytes per
/// entry for a longer memory of evictions.)
const GHOSTS_PER_ENTRY: (u32, u32) = (1, 5);

/// The share of the budget for the values entries share ([`Interner`]).
const INTERNER_SHARE: u64 = 64;

/// What an entry of the verified-token cache weighs: its slot, its share of the index and its heap bytes (see
/// the module docs). The cache is bounded by the sum, so its memory is bounded whatever the tokens look like.
#[derive(Clone, Copy, Debug)]
struct EntryWeight;

impl quick_cache::Weighter<TokenKey, Principal> for EntryWeight {
    fn weight(&self, _: &TokenKey, p: &Principal) -> u64 {
        ENTRY_BYTES.saturating_add(p.heap_bytes())
    }
}

/// The verified-token cache's counters since the start, and what it holds now ([`crate::AuthServer::verify_cache_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyCacheStats {
    /// Tokens found in the cache (no signature check).
    pub hits: u64,
    /// Tokens not found (a signature check, then cached if valid).
    pub misses: u64,
    /// Tokens held now.
    pub entries: u64,
    /// Their weight, in bytes (bounded by `verify_cache_bytes`).
    pub bytes: u64,
}

/// The verification state of one server instance.
pub(crate) struct Verifier {
    cache: Cache<TokenKey, Principal, EntryWeight>,
    interner: Interner,
    revoked: RwLock<RevocationSet>,
    /// When the last successful sync finished, in milliseconds since the epoch on the engine's clock.
    synced_at_ms: AtomicU64,
}

/// How `verify_cache_bytes` is split: the interner's share, the most entries that fit (each weighing at least
/// [`ENTRY_BYTES`], with its share of evicted-key slots), and the weight they may add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CachePlan {
    interner_bytes: u64,
    most_entries: u64,
    ghosts: u64,
    entry_bytes: u64,
}

impl CachePlan {
    fn new(cache_bytes: u64) -> Self {
        let budget = cache_bytes.max(16 * 1024);
        let interner_bytes = budget / INTERNER_SHARE;
        let rest = budget - interner_bytes;
        let (ghosts, per) = (u64::from(GHOSTS_PER_ENTRY.0), u64::from(GHOSTS_PER_ENTRY.1));
        // Each entry that fits brings `ghosts / per` of an evicted-key slot.
        let most_entries = rest / (ENTRY_BYTES * (per + ghosts)) * per;
        let ghost_slots = most_entries / per * ghosts;
        CachePlan {
            interner_bytes,
            most_entries,
            ghosts: ghost_slots,
            entry_bytes: rest - ghost_slots * ENTRY_BYTES,
        }
    }
}

impl Verifier {
    pub(crate) fn new(cache_bytes: u64) -> Self {
        let plan = CachePlan::new(cache_bytes);
        let estimated = usize::try_from(plan.most_entries).unwrap_or(usize::MAX);
        let ghost_allocation = f64::from(GHOSTS_PER_ENTRY.0) / f64::from(GHOSTS_PER_ENTRY.1);
        let cache = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(plan.entry_bytes)
            .ghost_allocation(ghost_allocation)
            .build()
            .map_or_else(
                |_| Cache::with_weighter(estimated, plan.entry_bytes, EntryWeight),
                |options| {
                    Cache::with_options(
                        options,
                        EntryWeight,
                        Default::default(),
                        Default::default(),
                    )
                },
            );
        Verifier {
            cache,
            interner: Interner::new(plan.interner_bytes),
            revoked: RwLock::new(RevocationSet::default()),
            synced_at_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn mark_synced(&self, now_ms: u64) {
        self.synced_at_ms.fetch_max(now_ms, Ordering::SeqCst);
    }

    /// Whether the revocation state is older than `max` at `now_ms`.
    pub(crate) fn is_stale(&self, now_ms: u64, max: std::time::Duration) -> bool {
        let age = now_ms.saturating_sub(self.synced_at_ms.load(Ordering::SeqCst));
        u128::from(age) > max.as_millis()
    }

    /// Applies log entries; returns when each entry this instance did not hold yet was recorded (for those that
    /// say), so that the caller can tell how long revocations take to arrive.
    pub(crate) fn apply(&self, entries: &[(u64, Revocation)], now: u64) -> Vec<u64> {
        let mut arrived = Vec::new();
        let mut set = self.revoked.write();
        for (seq, r) in entries {
            if set.insert(r)
                && let Some(at) = r.recorded_at_ms
            {
                arrived.push(at);
            }
            set.cursor = set.cursor.max(*seq);
        }
        set.tokens.retain(|_, exp| *exp > now);
        set.grants.retain(|_, exp| *exp > now);
        arrived
    }

    /// The verified-token cache's counters and size.
    pub(crate) fn cache_stats(&self) -> VerifyCacheStats {
        VerifyCacheStats {
            hits: self.cache.hits(),
            misses: self.cache.misses(),
            entries: self.cache.len() as u64,
            bytes: self.cache.weight(),
        }
    }

    /// Revocations applied locally before the store assigned them a sequence number.
    pub(crate) fn apply_local(&self, r: &Revocation) {
        self.revoked.write().insert(r);
    }

    pub(crate) fn cursor(&self) -> u64 {
        self.revoked.read().cursor
    }

    pub(crate) fn is_grant_revoked(&self, grant_id: &str) -> bool {
        let set = self.revoked.read();
        set.grants.contains_key(&set.id(grant_id))
    }

    fn revocation_ids(&self, jti: &str, sid: &str) -> RevocationIds {
        let set = self.revoked.read();
        RevocationIds {
            token: set.id(jti),
            grant: set.id(sid),
        }
    }

    fn is_revoked(&self, ids: RevocationIds) -> bool {
        let set = self.revoked.read();
        set.tokens.contains_key(&ids.token) || set.grants.contains_key(&ids.grant)
    }

    fn not_revoked(&self, ids: RevocationIds) -> Result<(), &'static str> {
        if self.is_revoked(ids) {
            return Err("the access token has been revoked");
        }
        Ok(())
    }

    /// The compact form of verified claims, its shared part interned.
    fn principal_of(&self, c: AccessTokenClaims) -> Principal {
        let revocation = self.revocation_ids(&c.jti, &c.sid);
        let identity = Identity::new([
            Some(c.sub.as_str()),
            c.preferred_username.as_deref(),
            c.email.as_deref(),
        ]);
        let shared = self.interner.intern(SharedClaims {
            scope: ScopeSet::parse(&c.scope).unwrap_or_default().compact(),
            client_id: c.client_id.into_boxed_str(),
            audience: c.aud.into_boxed_str(),
            groups: c.groups.into_boxed_slice(),
            interned: false,
        });
        Principal {
            shared,
            identity,
            expires_at: c.exp,
            revocation,
        }
    }

    /// Signature, issuer and time, without the cache.
    fn verified_claims(at: &TokenCheck<'_>) -> Result<AccessTokenClaims, &'static str> {
        let map = at.keys.verify(at.token).map_err(|e| match e {
            KeyError::Rejected(why) => why,
            KeyError::Material(_) | KeyError::Store(_) | KeyError::Sealed(_) => {
                "the access token could not be verified"
            }
        })?;
        let claims = AccessTokenClaims::from_map(map)?;
        jwt::validate(&claims, at.now, at.leeway, at.issuer, None)
            .map_err(ClaimsRejection::describe)?;
        Ok(claims)
    }

    /// Signature, claims and revocation, with the cache; audience and scope are the caller's.
    pub(crate) fn principal(&self, at: &TokenCheck<'_>) -> Result<Principal, &'static str> {
        let key = token_key(at.token);
        let principal = match self.cache.get(&key) {
            Some(p) => p,
            None => {
                let claims = Self::verified_claims(at)?;
                let p = self.principal_of(claims);
                self.cache.insert(key, p.clone());
                p
            }
        };
        if at.now >= principal.expires_at.saturating_add(at.leeway) {
            self.cache.remove(&key);
            return Err(ClaimsRejection::Expired.describe());
        }
        self.not_revoked(principal.revocation)?;
        Ok(principal)
    }

    /// The same checks as [`Self::principal`], without the cache, for every claim of the token: introspection
    /// answers with the `jti` and `iat` the cache does not keep, and is rare enough to pay the signature check.
    pub(crate) fn introspect(
        &self,
        at: &TokenCheck<'_>,
    ) -> Result<AccessTokenClaims, &'static str> {
        let claims = Self::verified_claims(at)?;
        self.not_revoked(self.revocation_ids(&claims.jti, &claims.sid))?;
        Ok(claims)
    }
}

/// A presented access token and what it is checked against, the same for `/verify` and for introspection: the
/// signing keys, our issuer, the time, and the clock leeway in seconds.
pub(crate) struct TokenCheck<'a> {
    pub(crate) token: &'a str,
    pub(crate) keys: &'a JosekitKeyManager,
    pub(crate) issuer: &'a str,
    pub(crate) now: u64,
    pub(crate) leeway: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    /// Claims of a typical token: a GitHub user with a 10-character username, a 25-character e-mail address
    /// and a 15-character name, in two groups, of a client used by many users.
    fn claims(i: usize) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://auth.example.com".into(),
            sub: format!("github:{:08}", 10_000_000 + i),
            aud: "https://mcp.example.com/mcp".into(),
            client_id: "0123456789abcdefghijkl".into(),
            scope: "mcp".into(),
            exp: 2_000_000_000,
            iat: 1_000_000_000,
            jti: format!("jti-{i:018}"),
            sid: format!("sid-{i:018}"),
            preferred_username: Some(format!("user{:06}", i % 1_000_000)),
            email: Some(format!("user{:06}@corp.example.com", i % 1_000_000)),
            name: Some(format!("Jane Doe {i:06}")),
            groups: vec!["engineering".into(), "mcp-users".into()],
            nbf: None,
        }
    }

    fn typical(v: &Verifier, i: usize) -> Principal {
        v.principal_of(claims(i))
    }

    /// A key for entry `i`, as distinct as token digests are.
    fn key(i: usize) -> TokenKey {
        token_key(&format!("token-{i}"))
    }

    #[test]
    fn a_million_live_revocations_fit_in_the_stated_bound() {
        let v = Verifier::new(1024 * 1024);
        let entries: Vec<(u64, Revocation)> = (0..1_000_000u64)
            .map(|i| {
                let r = Revocation {
                    kind: RevokedKind::Token,
                    id: format!("{i:0>22}"),
                    expires_at: 2_000_000_000,
                    recorded_at_ms: None,
                };
                (i + 1, r)
            })
            .collect();
        v.apply(&entries, 1_000_000_000);
        let set = v.revoked.read();
        assert_eq!(set.tokens.len(), 1_000_000);
        // hashbrown: one control byte and one (u64, u64) slot per bucket, no allocation per entry.
        let bytes = set.tokens.capacity() * (16 + 1);
        assert!(bytes <= 36 * 1000 * 1000, "{bytes} bytes");
        drop(set);
        let revoked = format!("{:0>22}", 999_999);
        assert!(v.is_revoked(v.revocation_ids(&revoked, "live-grant")));
        assert!(!v.is_revoked(v.revocation_ids("never-revoked", "live-grant")));
    }

    #[test]
    fn a_working_set_within_the_budget_stays_cached() {
        let v = Verifier::new(32 * 1024 * 1024);
        for round in 0..3 {
            for i in 0..100_000 {
                if v.cache.get(&key(i)).is_none() {
                    assert_eq!(round, 0, "token {i} was evicted");
                    v.cache.insert(key(i), typical(&v, i));
                }
            }
        }
        assert_eq!(v.cache.len(), 100_000);
    }

    #[test]
    fn the_verified_token_cache_is_bounded_by_bytes_not_entries() {
        let budget = 256 * 1024;
        let v = Verifier::new(budget);
        for i in 0..5_000 {
            v.cache.insert(key(i), typical(&v, i));
        }
        assert!(
            v.cache.weight() <= budget,
            "cache weighs {} bytes, budget {budget}",
            v.cache.weight()
        );
        let held = v.cache.len();
        // About 160 bytes an entry with its share of evicted-key slots: some 1,600 fit, far fewer than were
        // inserted.
        assert!((1_400..1_700).contains(&held), "{held} entries held");
        // Entries with long identities (on the heap) and shared parts of their own weigh more: fewer fit.
        let v = Verifier::new(budget);
        for i in 0..5_000 {
            let mut c = claims(i);
            c.client_id = format!("client-{i}");
            c.email = Some(format!(
                "a-rather-long-address-{i}@subsidiary.corp.example.com"
            ));
            v.cache.insert(key(i), v.principal_of(c));
        }
        assert!(v.cache.weight() <= budget);
        assert!(v.cache.len() < held / 2, "{} entries held", v.cache.len());
    }

    /// The target: the default budget holds at least 200,000 distinct typical tokens.
    #[test]
    fn the_default_budget_holds_two_hundred_thousand_typical_tokens() {
        let budget =
            crate::ServerConfig::new("https://auth.example.com", Vec::new()).verify_cache_bytes;
        let v = Verifier::new(budget);
        // More than fit, so that evicted keys fill their slots too.
        for i in 0..300_000 {
            v.cache.insert(key(i), typical(&v, i));
        }
        let held = v.cache.len();
        assert!(held >= 200_000, "{held} entries held");
        assert!(v.cache.weight() <= budget);
        // The weight is honest: the cache's own tables (slots of entries and of evicted keys, and the index)
        // are within what the entries weigh plus the evicted-key reservation.
        let tables = v.cache.memory_used();
        let plan = CachePlan::new(budget);
        let charged = v.cache.weight() + plan.ghosts * ENTRY_BYTES;
        assert!(
            (tables.entries + tables.map) as u64 <= charged,
            "tables {} + {} bytes, charged {charged}",
            tables.entries,
            tables.map
        );
        assert!(plan.interner_bytes + plan.entry_bytes + plan.ghosts * ENTRY_BYTES <= budget);
    }

    /// [`SLOT_BYTES`] is what the cache's table really spends per slot.
    #[test]
    fn a_slot_weighs_what_the_cache_spends() {
        let v = Verifier::new(1024 * 1024);
        v.cache.insert(key(0), typical(&v, 0));
        assert_eq!(v.cache.memory_used().entries as u64, SLOT_BYTES);
        assert_eq!(std::mem::size_of::<Principal>(), 88);
    }

    /// A typical entry holds nothing on the heap but its shared part, which the interner holds once for all.
    #[test]
    fn a_typical_entry_weighs_its_slot_and_nothing_more() {
        let v = Verifier::new(1024 * 1024);
        let (a, b) = (typical(&v, 1), typical(&v, 2));
        assert!(matches!(a.identity, Identity::Inline { .. }));
        assert!(Arc::ptr_eq(&a.shared, &b.shared), "one shared value");
        assert_eq!(
            quick_cache::Weighter::weight(&EntryWeight, &key(1), &a),
            ENTRY_BYTES
        );
    }

    /// Every byte an entry holds on the heap counts towards its weight: a field left out would let tokens with
    /// long claims grow the cache past its byte budget.
    #[test]
    fn an_entry_weighs_what_it_holds_on_the_heap() {
        let v = Verifier::new(1024 * 1024);
        let mut c = claims(0);
        c.sub = "s".repeat(40);
        c.email = Some("e".repeat(20));
        let long = v.principal_of(c);
        // 40 + 10 + 20 bytes: on the heap, one 70-byte allocation (80 with malloc's header and rounding).
        assert!(matches!(long.identity, Identity::Heap { .. }));
        assert_eq!(
            quick_cache::Weighter::weight(&EntryWeight, &key(0), &long),
            ENTRY_BYTES + 80
        );
        // A shared part the interner does not hold is the entry's: the `Arc` with the value (16 + 80 bytes), the
        // client (1,000), the audience (27), the scope's vector (1 × 24) and its token (3), the groups' slice
        // (2 × 24) and the two groups (11 and 9).
        let v = Verifier::new(16 * 1024);
        let mut c = claims(1);
        c.client_id = "c".repeat(1000);
        let own = v.principal_of(c);
        assert!(!own.shared.interned, "over the interner's 256 bytes");
        let shared = heap(16 + std::mem::size_of::<SharedClaims>())
            + heap(1000)
            + heap(27)
            + heap(24)
            + heap(3)
            + heap(2 * 24)
            + heap(11)
            + heap(9);
        assert_eq!(std::mem::size_of::<SharedClaims>(), 80);
        assert_eq!(own.shared.heap_bytes(), shared);
        assert_eq!(
            quick_cache::Weighter::weight(&EntryWeight, &key(1), &own),
            ENTRY_BYTES + shared
        );
    }

    #[test]
    fn glibc_rounding_is_what_the_weight_assumes() {
        assert_eq!(
            [0, 1, 24, 25, 40, 41, 70, 1000].map(heap),
            [0, 32, 32, 48, 48, 64, 80, 1008]
        );
    }

    /// The compact form gives back exactly the claims it was made from, absent and empty parts included.
    #[test]
    fn identities_read_back_as_they_were_in_place_or_on_the_heap() {
        let cases: [[Option<&str>; 3]; 6] = [
            [Some("github:1"), Some("octocat"), Some("octo@example.com")],
            [Some("local:alice"), None, None],
            [Some(""), Some(""), None],
            [Some("oidc:ünïcødé"), None, Some("é@example.com")],
            [Some(&"x".repeat(52)), None, None],
            [Some(&"y".repeat(300)), Some("z"), Some(&"w".repeat(53))],
        ];
        for (i, parts) in cases.iter().enumerate() {
            let id = Identity::new(*parts);
            assert_eq!(id.parts(), *parts, "case {i}");
            assert_eq!(
                matches!(id, Identity::Inline { .. }),
                i < 5,
                "case {i} in place"
            );
        }
        // One byte over: on the heap, whatever the split.
        let id = Identity::new([Some("s"), Some(&"u".repeat(INLINE)), None]);
        assert!(matches!(id, Identity::Heap { .. }));
        assert_eq!(id.parts()[1].map(str::len), Some(INLINE));
        let v = Verifier::new(1024 * 1024);
        let p = typical(&v, 7);
        assert_eq!(
            (p.subject(), p.username(), p.email(), p.expires_at()),
            (
                "github:10000007",
                Some("user000007"),
                Some("user000007@corp.example.com"),
                2_000_000_000
            )
        );
        assert_eq!(
            (p.client_id(), p.audience(), p.scope().to_string()),
            (
                "0123456789abcdefghijkl",
                "https://mcp.example.com/mcp",
                "mcp".to_owned()
            )
        );
        assert_eq!(p.groups(), ["engineering", "mcp-users"]);
    }

    /// The interner holds one copy of each value, gives up values nothing else holds when it needs room, and
    /// leaves a value to its entry when its budget is full of values in use.
    #[test]
    fn the_interner_shares_sweeps_and_stays_within_its_budget() {
        let value = |client: &str| SharedClaims {
            client_id: client.into(),
            audience: "https://mcp.example.com/mcp".into(),
            scope: ScopeSet::parse("mcp").unwrap().compact(),
            groups: Box::new([]),
            interned: false,
        };
        let cost = value("c00").heap_bytes() + INTERNED_SLOT;
        let interner = Interner::new(3 * cost);
        let a = interner.intern(value("c00"));
        assert!(a.interned);
        assert!(Arc::ptr_eq(&a, &interner.intern(value("c00"))));
        let b = interner.intern(value("c01"));
        let c = interner.intern(value("c02"));
        assert!(b.interned && c.interned);
        let d = interner.intern(value("c03"));
        assert!(
            !d.interned,
            "full of values in use: the entry holds its own"
        );
        drop(b);
        let e = interner.intern(value("c04"));
        assert!(e.interned, "room made by sweeping a value no one held");
        let table = interner.table.lock();
        assert_eq!(table.values.len(), 3);
        assert!(table.bytes <= interner.budget);
    }

    /// A key is 16 bytes of the token's SHA-256: tokens that differ anywhere get different keys.
    #[test]
    fn cache_keys_are_truncated_sha256() {
        let key = token_key("abc");
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
        assert_eq!(
            key,
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23
            ]
        );
        assert_ne!(token_key("abd"), key);
    }

    #[test]
    fn the_revocation_state_is_stale_only_past_its_bound() {
        let v = Verifier::new(1024 * 1024);
        let max = std::time::Duration::from_millis(5_000);
        v.mark_synced(1_000);
        assert!(
            !v.is_stale(6_000, max),
            "exactly the bound old: still fresh"
        );
        assert!(v.is_stale(6_001, max));
        v.mark_synced(500);
        assert!(
            !v.is_stale(6_000, max),
            "an older sync never moves the mark back"
        );
    }

    #[test]
    fn applying_the_log_advances_the_cursor_and_drops_what_has_expired() {
        let v = Verifier::new(1024 * 1024);
        let now = 1_000;
        let entry = |kind, id: &str, expires_at| Revocation {
            kind,
            id: id.to_owned(),
            expires_at,
            recorded_at_ms: None,
        };
        v.apply(
            &[
                (5, entry(RevokedKind::Grant, "live-grant", now + 1)),
                (7, entry(RevokedKind::Grant, "ending-grant", now)),
                (6, entry(RevokedKind::Token, "ending-jti", now)),
                (3, entry(RevokedKind::Token, "live-jti", now + 1)),
            ],
            now,
        );
        assert_eq!(v.cursor(), 7, "the highest sequence applied");
        assert!(v.is_grant_revoked("live-grant"));
        assert!(
            !v.is_grant_revoked("ending-grant"),
            "an entry whose tokens expire now carries nothing"
        );
        assert!(v.is_revoked(v.revocation_ids("live-jti", "some-grant")));
        assert!(!v.is_revoked(v.revocation_ids("ending-jti", "some-grant")));
        assert!(v.is_revoked(v.revocation_ids("some-jti", "live-grant")));
        v.apply(&[], now);
        assert_eq!(v.cursor(), 7, "an empty batch keeps the cursor");
    }
}
