//! Bearer token → [`Principal`] for the forward-auth gate, designed for the hot path.
//!
//! `/verify` runs on every request to every protected MCP server, so in steady state it touches no storage:
//! * a bounded cache of already-verified tokens (keyed by the whole token string, so a forged payload with a
//!   borrowed signature can never hit) skips the signature check; every hit still checks `exp` against the clock,
//!   the audience, and the revocation set, so the cache never outlives `exp` or a revocation;
//! * the revocation set lives in memory; local revocations enter it at once, and [`AuthServer::sync`] pulls the
//!   store's revocation log (what other instances revoked) from a cursor.
//!
//! # Memory
//! Both are bounded whatever the traffic: the cache by bytes
//! ([`ServerConfig::verify_cache_bytes`](crate::ServerConfig::verify_cache_bytes), 32 MiB by default, about
//! 30,000 ES256 tokens), the revocation set by what is revoked and not yet expired, at a fixed 16 bytes plus table
//! slack an entry (ids are kept as keyed 64-bit hashes): a million live revocations take at most about 36 MB.
//! A million issued and live tokens cost nothing here beyond the cache's bound: those that do not fit pay a
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
//! Rejections say exactly what the gate must answer (RFC 6750 §3): no token → 401 with a plain `Bearer`
//! challenge; a bad token → 401 `invalid_token`; too little scope → 403 `insufficient_scope` with the scope
//! needed; always with the RFC 9728 `resource_metadata` URL so that MCP clients can discover the authorization
//! server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use quick_cache::sync::Cache;

use crate::config::ResourceConfig;
use crate::jwt::{self, AccessTokenClaims, ClaimsRejection};
use crate::keys::{JosekitKeyManager, KeyError};
use crate::store::{Revocation, RevokedKind};
use crate::types::ScopeSet;

/// Who is calling, as established from a valid access token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// `sub`.
    pub subject: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope.
    pub scope: ScopeSet,
    /// The resource (`aud`).
    pub audience: String,
    /// Token id.
    pub jti: String,
    /// Grant id (`sid`).
    pub grant_id: String,
    /// Expiry.
    pub expires_at: u64,
    /// Issue time.
    pub issued_at: u64,
    /// `preferred_username`.
    pub username: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `groups`.
    pub groups: Vec<String>,
}

impl Principal {
    fn from_claims(c: AccessTokenClaims) -> Self {
        Principal {
            scope: ScopeSet::parse(&c.scope).unwrap_or_default(),
            subject: c.sub,
            client_id: c.client_id,
            audience: c.aud,
            jti: c.jti,
            grant_id: c.sid,
            expires_at: c.exp,
            issued_at: c.iat,
            username: c.preferred_username,
            email: c.email,
            name: c.name,
            groups: c.groups,
        }
    }
}

/// Which answer the gate must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No bearer token: 401 with a challenge but no error code (RFC 6750 §3.1).
    MissingToken,
    /// Invalid, expired, revoked or wrong-audience token: 401 `invalid_token`.
    InvalidToken,
    /// Valid token without the required scope: 403 `insufficient_scope`.
    InsufficientScope,
    /// Valid token of a user the resource's access policy does not admit: 403, no challenge error code, since
    /// no other token of this user would do.
    AccessDenied,
}

/// A `/verify` rejection, with everything the gate's response needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", self.description, self.status())]
#[non_exhaustive]
pub struct VerifyRejection {
    /// The kind.
    pub kind: RejectionKind,
    /// Why, for `error_description` (never contains the token).
    pub description: &'static str,
    /// The scope needed (for `insufficient_scope`), space-separated.
    pub scope: Option<String>,
    /// Absolute URL of the resource's RFC 9728 metadata.
    pub resource_metadata: String,
}

impl VerifyRejection {
    /// 401 or 403.
    pub fn status(&self) -> u16 {
        match self.kind {
            RejectionKind::MissingToken | RejectionKind::InvalidToken => 401,
            RejectionKind::InsufficientScope | RejectionKind::AccessDenied => 403,
        }
    }

    /// The RFC 6750 §3 error code, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            RejectionKind::MissingToken | RejectionKind::AccessDenied => None,
            RejectionKind::InvalidToken => Some("invalid_token"),
            RejectionKind::InsufficientScope => Some("insufficient_scope"),
        }
    }

    /// The `WWW-Authenticate` header value (RFC 6750 §3, RFC 9728 §5.1).
    pub fn www_authenticate(&self) -> String {
        let mut out = String::from("Bearer");
        let mut sep = " ";
        if let Some(code) = self.error_code() {
            out.push_str(&format!(
                "{sep}error=\"{code}\", error_description=\"{}\"",
                self.description
            ));
            sep = ", ";
        }
        if let Some(scope) = &self.scope {
            out.push_str(&format!("{sep}scope=\"{scope}\""));
            sep = ", ";
        }
        out.push_str(&format!(
            "{sep}resource_metadata=\"{}\"",
            self.resource_metadata
        ));
        out
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

    fn insert(&mut self, r: &Revocation) {
        let id = self.id(&r.id);
        let map = match r.kind {
            RevokedKind::Token => &mut self.tokens,
            RevokedKind::Grant => &mut self.grants,
        };
        let until = map.entry(id).or_insert(r.expires_at);
        *until = (*until).max(r.expires_at);
    }
}

/// What an entry of the verified-token cache costs, in bytes: the token, the claims, and the cache's and the
/// allocator's bookkeeping (estimated). The cache is bounded by the sum, so its memory is bounded whatever
/// the tokens look like.
#[derive(Clone, Copy, Debug)]
struct EntryWeight;

/// Per-entry overhead beyond the token and the claims' text: the `Principal` itself, the `Arc`, the key's and
/// the strings' headers, the cache's slot, allocator rounding.
const ENTRY_OVERHEAD: u64 = 384;

impl quick_cache::Weighter<Box<str>, Arc<Principal>> for EntryWeight {
    fn weight(&self, token: &Box<str>, p: &Arc<Principal>) -> u64 {
        let text = token.len()
            + p.subject.len()
            + p.client_id.len()
            + p.audience.len()
            + p.jti.len()
            + p.grant_id.len()
            + p.username.as_ref().map_or(0, String::len)
            + p.email.as_ref().map_or(0, String::len)
            + p.name.as_ref().map_or(0, String::len)
            + p.groups.iter().map(|g| g.len() + 24).sum::<usize>()
            + p.scope.iter().map(|s| s.len() + 24).sum::<usize>();
        u64::try_from(text)
            .unwrap_or(u64::MAX)
            .saturating_add(ENTRY_OVERHEAD)
    }
}

/// The verification state of one server instance.
pub(crate) struct Verifier {
    cache: Cache<Box<str>, Arc<Principal>, EntryWeight>,
    revoked: RwLock<RevocationSet>,
    /// When the last successful sync finished, in milliseconds since the epoch on the engine's clock.
    synced_at_ms: AtomicU64,
}

impl Verifier {
    pub(crate) fn new(cache_bytes: u64) -> Self {
        // quick_cache sizes its tables from an estimate of the entry count: about 1 KiB an entry.
        let estimated = usize::try_from(cache_bytes / 1024)
            .unwrap_or(usize::MAX)
            .max(16);
        Verifier {
            cache: Cache::with_weighter(estimated, cache_bytes.max(16 * 1024), EntryWeight),
            revoked: RwLock::new(RevocationSet::default()),
            synced_at_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn mark_synced(&self, now_ms: u64) {
        self.synced_at_ms.fetch_max(now_ms, Ordering::SeqCst);
    }

    /// Whether the revocation state is older than `max` at `now_ms`.
    fn is_stale(&self, now_ms: u64, max: std::time::Duration) -> bool {
        let age = now_ms.saturating_sub(self.synced_at_ms.load(Ordering::SeqCst));
        u128::from(age) > max.as_millis()
    }

    pub(crate) fn apply(&self, entries: &[(u64, Revocation)], now: u64) {
        let mut set = self.revoked.write();
        for (seq, r) in entries {
            set.insert(r);
            set.cursor = set.cursor.max(*seq);
        }
        set.tokens.retain(|_, exp| *exp > now);
        set.grants.retain(|_, exp| *exp > now);
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

    fn is_revoked(&self, p: &Principal) -> bool {
        let set = self.revoked.read();
        set.tokens.contains_key(&set.id(&p.jti)) || set.grants.contains_key(&set.id(&p.grant_id))
    }

    /// Signature, claims and revocation, with the cache; audience and scope are the caller's.
    pub(crate) fn principal(
        &self,
        token: &str,
        keys: &JosekitKeyManager,
        issuer: &str,
        now: u64,
        leeway: u64,
    ) -> Result<Arc<Principal>, &'static str> {
        let principal = match self.cache.get(token) {
            Some(p) => p,
            None => {
                let map = keys.verify(token).map_err(|e| match e {
                    KeyError::Rejected(why) => why,
                    KeyError::Material(_) | KeyError::Store(_) => {
                        "the access token could not be verified"
                    }
                })?;
                let claims = AccessTokenClaims::from_map(map)?;
                jwt::validate(&claims, now, leeway, issuer, None)
                    .map_err(ClaimsRejection::describe)?;
                let p = Arc::new(Principal::from_claims(claims));
                self.cache.insert(token.into(), Arc::clone(&p));
                p
            }
        };
        if now >= principal.expires_at.saturating_add(leeway) {
            self.cache.remove(token);
            return Err(ClaimsRejection::Expired.describe());
        }
        if self.is_revoked(&principal) {
            return Err("the access token has been revoked");
        }
        Ok(principal)
    }
}

/// Extracts the token from an `Authorization` header value; `None` if there is no Bearer credential.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl crate::AuthServer {
    /// Verifies the `Authorization` header of a request to `resource` (one of the configured resources, see
    /// [`Self::resource_for_url`]): signature, expiry, revocation, audience and the resource's required scopes.
    ///
    /// This is the lower-level token check. It knows nothing of the request: no access policy, no per-tool
    /// scopes, no `Origin`, no key reload. A gate in front of an MCP server calls [`Self::gate`], which does all
    /// of that.
    ///
    /// # Errors
    /// A [`VerifyRejection`] that says exactly what to answer.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        resource: &ResourceConfig,
    ) -> Result<Arc<Principal>, VerifyRejection> {
        let reject = |kind, description, scope| VerifyRejection {
            kind,
            description,
            scope,
            resource_metadata: self.resource_index.metadata_url(resource),
        };
        let required =
            || (!resource.required_scopes.is_empty()).then(|| resource.required_scopes.join(" "));
        let Some(token) = bearer_token(authorization) else {
            return Err(reject(
                RejectionKind::MissingToken,
                "no bearer token",
                required(),
            ));
        };
        if token.is_empty() {
            return Err(reject(
                RejectionKind::InvalidToken,
                "the bearer token is empty",
                None,
            ));
        }
        let now = self.clock.unix();
        let principal = self
            .verifier
            .principal(
                token,
                &self.keys,
                &self.config.issuer,
                now,
                self.config.leeway.as_secs(),
            )
            .map_err(|why| reject(RejectionKind::InvalidToken, why, None))?;
        if let Some(max) = self.config.revocation_max_staleness
            && self
                .verifier
                .is_stale(crate::server::unix_millis(self.clock.as_ref()), max)
        {
            return Err(reject(
                RejectionKind::InvalidToken,
                "the authorization server cannot currently confirm that the token is not revoked; try again shortly",
                None,
            ));
        }
        if principal.audience != resource.resource {
            return Err(reject(
                RejectionKind::InvalidToken,
                ClaimsRejection::WrongAudience.describe(),
                None,
            ));
        }
        if !resource
            .required_scopes
            .iter()
            .all(|s| principal.scope.contains(s))
        {
            return Err(reject(
                RejectionKind::InsufficientScope,
                "the access token lacks a scope this resource requires",
                required(),
            ));
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn principal(i: usize) -> Arc<Principal> {
        Arc::new(Principal {
            subject: format!("github:{i}"),
            client_id: "0123456789abcdef0123456789abcdef".into(),
            scope: ScopeSet::parse("mcp").unwrap(),
            audience: "https://mcp.example.com/mcp".into(),
            jti: format!("jti-{i:020}"),
            grant_id: format!("grant-{i:020}"),
            expires_at: 2_000_000_000,
            issued_at: 1_000_000_000,
            username: Some(format!("user{i}")),
            email: None,
            name: None,
            groups: vec!["acme".into()],
        })
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
        assert!(v.is_revoked(&principal_with_jti(&format!("{:0>22}", 999_999))));
        assert!(!v.is_revoked(&principal_with_jti("never-revoked")));
    }

    fn principal_with_jti(jti: &str) -> Principal {
        let mut p = Principal::clone(&principal(0));
        p.jti = jti.to_owned();
        p
    }

    #[test]
    fn a_working_set_within_the_budget_stays_cached() {
        let v = Verifier::new(32 * 1024 * 1024);
        for round in 0..3 {
            for i in 0..10_000 {
                let token = format!("{i:0>700}");
                if v.cache.get(token.as_str()).is_none() {
                    assert_eq!(round, 0, "token {i} was evicted");
                    v.cache.insert(token.into(), principal(i));
                }
            }
        }
        assert_eq!(v.cache.len(), 10_000);
    }

    #[test]
    fn the_verified_token_cache_is_bounded_by_bytes_not_entries() {
        let budget = 256 * 1024;
        let v = Verifier::new(budget);
        // Tokens the size of an ES256 access token with a few claims.
        for i in 0..5_000 {
            let token = format!("{i:0>700}");
            v.cache.insert(token.into(), principal(i));
        }
        assert!(
            v.cache.weight() <= budget,
            "cache weighs {} bytes, budget {budget}",
            v.cache.weight()
        );
        let held = v.cache.len();
        // ~1.2 KiB an entry: a couple of hundred fit, far fewer than were inserted.
        assert!((100..400).contains(&held), "{held} entries held");
    }

    /// Every field an entry holds counts towards its weight: a field left out would let tokens with long claims
    /// grow the cache past its byte budget.
    #[test]
    fn an_entry_weighs_its_token_every_claim_and_the_overhead() {
        let p = Arc::new(Principal {
            subject: "s".repeat(3),
            client_id: "c".repeat(5),
            scope: ScopeSet::parse("a bb").unwrap(),
            audience: "a".repeat(7),
            jti: "j".repeat(11),
            grant_id: "g".repeat(13),
            expires_at: 0,
            issued_at: 0,
            username: Some("u".repeat(17)),
            email: Some("e".repeat(19)),
            name: Some("n".repeat(23)),
            groups: vec!["x".repeat(29), "y".repeat(31)],
        });
        let token: Box<str> = "t".repeat(101).into();
        let text =
            101 + 3 + 5 + 7 + 11 + 13 + 17 + 19 + 23 + (29 + 24) + (31 + 24) + (1 + 24) + (2 + 24);
        assert_eq!(
            quick_cache::Weighter::weight(&EntryWeight, &token, &p),
            text + ENTRY_OVERHEAD
        );
        let mut bare = Principal::clone(&p);
        (bare.username, bare.email, bare.name, bare.groups) = (None, None, None, Vec::new());
        assert_eq!(
            quick_cache::Weighter::weight(&EntryWeight, &token, &Arc::new(bare)),
            101 + 3 + 5 + 7 + 11 + 13 + (1 + 24) + (2 + 24) + ENTRY_OVERHEAD
        );
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
        assert!(v.is_revoked(&principal_with_jti("live-jti")));
        assert!(!v.is_revoked(&principal_with_jti("ending-jti")));
        v.apply(&[], now);
        assert_eq!(v.cursor(), 7, "an empty batch keeps the cursor");
    }
}
