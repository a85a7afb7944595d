//! The persistence seam.
//!
//! # Contract
//! * Keys derived from secrets are [`TokenHash`]es; a backend never sees a plaintext code, refresh token,
//!   client secret or registration access token.
//! * The secrets a flow must read back (private signing keys, upstream tokens, the PKCE verifier towards an
//!   upstream) are held by the records as [`Sealed`] values, which only a [`Sealer`](crate::Sealer) makes and
//!   opens: a backend sees ciphertext, and a record cannot be given a plaintext secret by mistake. Only those
//!   fields are sealed, never a whole record, so ids and the refresh chain stay readable to a backend's own logic
//!   (the Redis scripts). See [`crate::Sealer`].
//! * Every write that carries a TTL expires the record after it: a backend must not return an expired record
//!   (the embedded backend compares against the injected [`Clock`](crate::Clock); Redis uses its own expiry). The
//!   flows still compare the `expires_at` inside each record with the clock, so a backend whose clock drifts
//!   cannot extend a lifetime.
//! * The operations that decide single use are atomic: [`Store::take_pending`], [`Store::redeem_code`] and
//!   [`Store::rotate_grant`] each succeed for exactly one of any number of concurrent callers. They map onto
//!   Redis as `GETDEL` and short Lua scripts.
//! * Every write is one atomic, durable commit, answered only once it is durable: a refresh (new chain, renewed
//!   grant) is one [`Store::rotate_grant`], never two writes a crash could separate.
//! * What a grant costs is fixed: one grant record, whatever the number of refreshes (see [`RefreshChain`]);
//!   what the grace window needs is part of that record (the last rotation only), not a record per rotation.
//! * "Everything of client X / subject Y" is answered from indexes ([`Store::grants_of_client`],
//!   [`Store::grants_of_subject`]), never by scanning.
//! * Login regulation ([`Store::count_failure`], [`Store::put_ban`]) keeps one small record per key, each with a
//!   lifetime, so that instances sharing a store share counts and bans and nothing outlives its window.
//! * Revocations are an append-only log with increasing sequence numbers, so that every instance can keep an
//!   in-memory revocation set current by asking only for what is new ([`Store::revocations_since`]).
//!
//! Every implementation must pass `conformance::run` (feature `test-util`).

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
mod embedded;
mod instrumented;
#[cfg(feature = "redis")]
mod redis;
mod settings;

pub use embedded::{EMBEDDED_CACHE_BYTES, EmbeddedStore};
pub use instrumented::Instrumented;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisStore, redact_url};
pub use settings::{OpenStoreError, StoreSettings, open};

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::seal::{Sealable, Sealed};
use crate::types::{Identity, TokenHash, UpstreamSession, debug_redacted};
use crate::wire::ClientMetadata;

/// A storage failure. Backends map their native errors into this.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The record already exists (insert of a duplicate key).
    #[error("record already exists")]
    Conflict,
    /// The backend cannot be reached or timed out; the operation may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// A change made through a store shared by several processes, announced so that the others need not poll for it
/// (see [`Store::events`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// A revocation was appended to the log: sync now.
    Revoked,
    /// A signing key was added, retired or deleted: reload the keys.
    KeysChanged,
    /// The announcement channel was (re)established after a gap in which announcements may have been missed:
    /// sync and reload.
    Reconnected,
}

/// A registered client (RFC 7591).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client identifier.
    pub client_id: String,
    /// Hash of the client secret, for `client_secret_*` clients.
    pub secret_hash: Option<TokenHash>,
    /// When the secret expires (0 = never).
    pub secret_expires_at: u64,
    /// Hash of the RFC 7592 registration access token.
    pub registration_token_hash: TokenHash,
    /// When the client was registered.
    pub issued_at: u64,
    /// The validated metadata.
    pub metadata: ClientMetadata,
}

/// An authorization request that passed validation and waits for login and consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The client.
    pub client_id: String,
    /// The redirect URI the code will be sent to (as requested, port included).
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` explicitly (then the token request must repeat it).
    pub redirect_uri_explicit: bool,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Scope to be granted.
    pub scope: crate::ScopeSet,
    /// The resource (canonical form from configuration).
    pub resource: String,
    /// Client state, echoed unmodified.
    pub state: Option<String>,
    /// When this pending authorization expires.
    pub expires_at: u64,
    /// Set while the user is away at an upstream identity provider (the record is then stored under the hash of
    /// the upstream `state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamBinding>,
    /// Whether the user approved the request before being sent to an upstream identity provider (consent comes
    /// before any upstream redirect). After the callback, a grant within what was approved needs no second page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consented: bool,
}

/// What binds an upstream round trip to one pending authorization and one browser. `Debug` hides the verifier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamBinding {
    /// The provider the user was sent to.
    pub provider: String,
    /// The OIDC nonce sent.
    pub nonce: String,
    /// Our PKCE verifier towards the upstream, sealed and bound to the hex of `session`.
    pub pkce_verifier: Sealed<UpstreamVerifier>,
    /// Hash of the browser session that started the round trip; the callback must come from the same browser.
    pub session: TokenHash,
    /// The callback URL used.
    pub callback_url: String,
}

debug_redacted!(UpstreamBinding {
    provider,
    nonce,
    pkce_verifier: hidden,
    session,
    callback_url,
});

/// Our PKCE verifier towards an upstream identity provider (RFC 7636), as sealed in an [`UpstreamBinding`].
/// `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UpstreamVerifier(String);

impl UpstreamVerifier {
    /// Wraps a verifier.
    pub fn new(verifier: impl Into<String>) -> Self {
        UpstreamVerifier(verifier.into())
    }

    /// The verifier, for the upstream's token request.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for UpstreamVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamVerifier([redacted])")
    }
}

impl Sealable for UpstreamVerifier {
    const KIND: &'static str = "upstream-pkce-verifier";
}

/// An issued authorization code (stored under the code's hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The grant this code starts; tokens issued from it belong to this grant, and a replay revokes it.
    pub grant_id: String,
    /// The pending authorization it completes.
    pub pending: PendingAuthorization,
    /// Who approved it.
    pub identity: Identity,
    /// When the code expires.
    pub expires_at: u64,
    /// The upstream session of the login, carried into the grant; sealed and bound to `identity.subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Sealed<UpstreamSession>>,
}

/// The outcome of [`Store::redeem_code`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First redemption: the code is now consumed.
    Fresh(Box<CodeRecord>),
    /// The code was redeemed before; the grant it started must be revoked.
    Replayed {
        /// The grant issued from the first redemption.
        grant_id: String,
    },
    /// No such code (never issued, or expired).
    Unknown,
}

/// A grant: the family of tokens issued from one authorization code, revoked as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Grant identifier (the `sid` claim of its access tokens).
    pub grant_id: String,
    /// The client.
    pub client_id: String,
    /// Who authorized it.
    pub identity: Identity,
    /// The scope granted (refreshes may narrow, never widen).
    pub scope: crate::ScopeSet,
    /// The resource (token audience).
    pub resource: String,
    /// When the grant was created.
    pub created_at: u64,
    /// When the grant lapses (the latest refresh token's expiry).
    pub expires_at: u64,
    /// The upstream session, to re-check the user at each refresh; sealed and bound to `identity.subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Sealed<UpstreamSession>>,
    /// The refresh-token chain, for clients that may refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshChain>,
}

/// The refresh-token state of a grant: one small, fixed-size record, however often the grant is refreshed.
///
/// Every refresh token of a grant carries the grant id, its generation and the grant's family secret (see
/// `flow::token`). Only the current token's hash is kept: a token of an older generation that carries the family
/// secret is a rotated one, and after the grace window its use is reuse, without a record per rotation. The grace
/// window itself needs only the last rotation ([`PreviousRotation`]), so the record keeps a fixed size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshChain {
    /// The generation of the current refresh token; each rotation adds one.
    pub generation: u64,
    /// Hash of the family secret every refresh token of the grant carries.
    pub family: TokenHash,
    /// Hash of the current refresh token.
    pub current: TokenHash,
    /// When the current refresh token was issued.
    pub issued_at: u64,
    /// The last rotation, while its grace window may matter (`None` with no grace window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousRotation>,
}

/// The last rotation of a grant's refresh chain, kept so that a retry of the rotated token within the grace window
/// gets the same new refresh token. Only the last one: a retry of an older token means the chain moved on twice,
/// so someone used the token the retry would get, and that is reuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousRotation {
    /// Hash of the rotated token.
    pub token: TokenHash,
    /// Until when a retry with it is answered.
    pub grace_until: u64,
    /// The new refresh token and its scope, sealed with a key only the rotated token's holder can derive
    /// (base64 when stored).
    #[serde(with = "base64_bytes")]
    pub sealed: Vec<u8>,
}

/// Bytes as one base64 string rather than JSON's array of numbers (a third of the size, not three times it).
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD_NO_PAD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// What a revocation applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevokedKind {
    /// One access token, by `jti`.
    Token,
    /// A whole grant, by grant id (`sid`): every access and refresh token of it.
    Grant,
}

/// An entry of the revocation log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What is revoked.
    pub kind: RevokedKind,
    /// The `jti` or grant id.
    pub id: String,
    /// After this time no token it applies to can still be valid, and the entry may be dropped.
    pub expires_at: u64,
    /// When it was recorded, in milliseconds since the epoch (absent from entries written before this field
    /// existed): how long it took to reach each instance is measured from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at_ms: Option<u64>,
}

/// A signing key as persisted. `Debug` hides the private key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key identifier.
    pub kid: String,
    /// JWS algorithm name.
    pub alg: String,
    /// The private key as a JWK, sealed and bound to `kid`.
    pub private_jwk: Sealed<PrivateJwk>,
    /// When it was created.
    pub created_at: u64,
    /// When it stopped signing; `None` for the active key.
    pub retired_at: Option<u64>,
    /// Until when a retired key stays published (the last token it signed has expired by then).
    pub publish_until: Option<u64>,
    /// When a rotated-in key starts signing (it is published and accepted before); `None`: from `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
}

debug_redacted!(KeyRecord {
    kid,
    alg,
    private_jwk: hidden,
    created_at,
    retired_at,
    publish_until,
    not_before,
});

/// A private signing key as a JWK (RFC 7517, JSON text), as sealed in a [`KeyRecord`]. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateJwk(String);

impl PrivateJwk {
    /// Wraps the JSON text of a private JWK.
    pub fn new(json: impl Into<String>) -> Self {
        PrivateJwk(json.into())
    }

    /// The JSON text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateJwk([redacted])")
    }
}

impl Sealable for PrivateJwk {
    const KIND: &'static str = "signing-key";
}

/// A browser login session at the authorization server (the service's session cookie names it by hash).
/// `Debug` hides the CSRF token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The CSRF token every form of this session must carry.
    pub csrf: String,
    /// Who is logged in, once someone is.
    pub identity: Option<Identity>,
    /// The upstream session of that login, if any; sealed and bound to the identity's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Sealed<UpstreamSession>>,
    /// When the session ends.
    pub expires_at: u64,
}

debug_redacted!(SessionRecord {
    csrf: hidden,
    identity,
    upstream,
    expires_at,
});

/// A user's remembered consent for one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Scopes consented to.
    pub scope: crate::ScopeSet,
    /// Resources consented to.
    pub resources: Vec<String>,
    /// When consent was given.
    pub granted_at: u64,
}

/// The persistence seam. See the module documentation for the contract.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a new client. [`StoreError::Conflict`] if the id exists.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// Looks a client up.
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Replaces an existing client; `false` if there is none.
    async fn replace_client(&self, client: &ClientRecord) -> Result<bool, StoreError>;
    /// Deletes a client; `false` if there was none.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
    /// Every client, for administration (export); memory grows with the number of clients, so periodic work
    /// pages with [`Store::clients_page`] instead.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// About `limit` clients from `cursor` on (`None`: from the start), and the cursor of the next page (`None`
    /// after the last). A walk through the pages sees every client that exists throughout it at least once (a
    /// backend may return one twice); clients registered or deleted meanwhile may or may not appear.
    async fn clients_page(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ClientRecord>, Option<String>), StoreError>;
    /// How many clients are registered, in constant time.
    async fn count_clients(&self) -> Result<usize, StoreError>;
    /// Records that a client completed an authorization or refreshed a token at `at` (seconds since the epoch).
    /// Kept beside the client record, not in it, so that it never races an RFC 7592 update; deleted with the
    /// client.
    async fn mark_client_used(&self, client_id: &str, at: u64) -> Result<(), StoreError>;
    /// When a client was last marked used, if ever.
    async fn client_last_used(&self, client_id: &str) -> Result<Option<u64>, StoreError>;

    /// Stores a pending authorization under the hash of its handle.
    async fn put_pending(
        &self,
        key: &TokenHash,
        p: &PendingAuthorization,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Reads a pending authorization without consuming it.
    async fn pending(&self, key: &TokenHash) -> Result<Option<PendingAuthorization>, StoreError>;
    /// Atomically removes and returns a pending authorization: one caller wins.
    async fn take_pending(
        &self,
        key: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError>;

    /// Stores an authorization code under its hash.
    async fn put_code(
        &self,
        key: &TokenHash,
        code: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Atomically consumes a code, leaving a marker for `replay_ttl` that recognises a second redemption.
    async fn redeem_code(
        &self,
        key: &TokenHash,
        replay_ttl: Duration,
    ) -> Result<CodeRedemption, StoreError>;

    /// Stores (or replaces) a grant and indexes it by client and subject.
    async fn put_grant(&self, grant: &GrantRecord, ttl: Duration) -> Result<(), StoreError>;
    /// Looks a grant up.
    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError>;
    /// Deletes a grant and its index entries; returns it if it existed.
    async fn delete_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError>;
    /// Ids of the grants of a client.
    async fn grants_of_client(&self, client_id: &str) -> Result<Vec<String>, StoreError>;
    /// Ids of the grants of a subject.
    async fn grants_of_subject(&self, subject: &str) -> Result<Vec<String>, StoreError>;

    /// Compare-and-swap of a grant's refresh chain: if the stored grant is live and its chain is at
    /// `expected_generation`, replace the grant with `grant` (which keeps its client and subject) for `ttl`,
    /// atomically and durably in one commit, and return `true`. Otherwise change nothing and return `false` (a
    /// concurrent rotation won, or the grant was revoked meanwhile).
    async fn rotate_grant(
        &self,
        grant: &GrantRecord,
        expected_generation: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Appends to the revocation log; returns the entry's sequence number.
    async fn add_revocation(&self, r: &Revocation) -> Result<u64, StoreError>;
    /// Log entries with a sequence number greater than `after`, in order, expired ones left out.
    async fn revocations_since(&self, after: u64) -> Result<Vec<(u64, Revocation)>, StoreError>;

    /// Inserts or replaces a signing key.
    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    /// Inserts a signing key only if no key is stored yet; `false` if one was (another instance won).
    async fn put_first_key(&self, key: &KeyRecord) -> Result<bool, StoreError>;
    /// Every stored signing key.
    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Deletes a signing key.
    async fn delete_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Stores (or replaces) a login session under the hash of its cookie value.
    async fn put_session(
        &self,
        key: &TokenHash,
        s: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Looks a session up.
    async fn session(&self, key: &TokenHash) -> Result<Option<SessionRecord>, StoreError>;
    /// Deletes a session.
    async fn delete_session(&self, key: &TokenHash) -> Result<(), StoreError>;

    /// Remembers a user's consent for a client.
    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        c: &ConsentRecord,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// A user's remembered consent for a client.
    async fn consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError>;

    /// Adds one to the login-failure counter `key` and returns the count with this failure. A new counter lives
    /// for `window`; later failures do not extend it (a fixed window from the first failure).
    async fn count_failure(&self, key: &str, window: Duration) -> Result<u64, StoreError>;
    /// Forgets the failure counter `key`.
    async fn clear_failures(&self, key: &str) -> Result<(), StoreError>;
    /// Bans `key` until `until` (seconds since the epoch); the record lives for `ttl`.
    async fn put_ban(&self, key: &str, until: u64, ttl: Duration) -> Result<(), StoreError>;
    /// Until when `key` is banned, if a ban is recorded.
    async fn ban(&self, key: &str) -> Result<Option<u64>, StoreError>;

    /// Whether the backend answers (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Removes expired records; returns how many. Backends with native expiry may return 0.
    async fn purge_expired(&self) -> Result<usize, StoreError>;

    /// Announcements of changes other processes made through this store, for a backend several processes share;
    /// `None` (the default) for one only this process uses. Announcements are best effort: a receiver still
    /// syncs periodically. Call it inside a tokio runtime (a shared backend may start a listener task).
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_holding_secrets_show_that_they_do_but_not_the_secrets() {
        let sealer = crate::testing::sealer();
        let key = KeyRecord {
            kid: "kid-a".into(),
            alg: "ES256".into(),
            private_jwk: sealer
                .seal(&PrivateJwk::new(r#"{"d":"private-value-1"}"#), "kid-a")
                .unwrap(),
            created_at: 1,
            retired_at: None,
            publish_until: None,
            not_before: None,
        };
        let binding = UpstreamBinding {
            provider: "github".into(),
            nonce: "nonce-a".into(),
            pkce_verifier: sealer
                .seal(&UpstreamVerifier::new("verifier-value-2"), "s")
                .unwrap(),
            session: TokenHash::of(b"session"),
            callback_url: "https://as.example/callback".into(),
        };
        let session = SessionRecord {
            csrf: "csrf-value-3".into(),
            identity: None,
            upstream: None,
            expires_at: 2,
        };
        let shown = format!("{key:?} {binding:?} {session:?}");
        for secret in ["private-value-1", "verifier-value-2", "csrf-value-3"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains(r#"private_jwk: "[redacted]""#), "{shown}");
        assert!(shown.contains(r#"kid: "kid-a""#), "{shown}");
        assert!(shown.contains(r#"provider: "github""#), "{shown}");
        assert!(shown.contains("expires_at: 2"), "{shown}");
    }
}
