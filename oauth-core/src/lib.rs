//! # oauth-core
//!
//! A framework-free OAuth 2.1 authorization-server engine, made to put authorization in front of MCP servers
//! that have none. It knows OAuth, not HTTP: every endpoint is one `async` method on [`AuthServer`] that takes
//! the wire request (plain serde structs in [`wire`]) and returns a domain outcome or an [`Error`] carrying the RFC
//! error code, a description and the HTTP status an adapter must use. The `forwardauth-svc` crate is one such
//! adapter (actix-web); embedding the engine elsewhere takes a few dozen lines (see `examples/embed.rs`).
//!
//! ## The flow
//!
//! ```text
//!  MCP client                       AuthServer                                   Store
//!  ── POST /register ────────────▶ register()            ─ client (secret hashed) ─▶
//!  ── GET /authorize ────────────▶ authorize()  → AuthorizationPrompt ─ pending ───▶
//!        (browser(): sign-in via an IdentityProvider, consent; each step → a Step the adapter renders)
//!                                  approve(handle, identity) → redirect with code ─ code (hashed) ─▶
//!  ── POST /token (code+PKCE) ───▶ token()      → access JWT + refresh token ─ grant, refresh (hashed) ─▶
//!  ── POST /token (refresh) ─────▶ token()      → rotated pair (CAS) ──────────────▶
//!  ── request via the proxy ─────▶ gate()       → Principal | 401 | 403  (memory only in steady state)
//!  ── POST /revoke ──────────────▶ revoke()     → revocation log ──────────────────▶ (other instances sync())
//! ```
//!
//! Besides the endpoints, the engine has an operator's facet, [`AuthServer::admin`] (clients, revocation by user
//! or client, signing keys, moving a store's contents: see [`admin`]), and its housekeeping loop,
//! [`AuthServer::maintain`], which every running instance spawns (see [`maintain`]). The store itself stays
//! private to the engine; an adapter opens a built-in one from plain [`StoreSettings`] with [`AuthServer::open`].
//!
//! ## The seams
//!
//! * [`Store`]: persistence with atomic single-use operations; [`EmbeddedStore`] (one redb file, or in memory)
//!   is the default. Every backend passes the same conformance suite (`store::conformance`, feature `test-util`).
//! * [`IdentityProvider`]: who is logging in; [`LocalUsers`] (argon2id) is built in.
//! * [`EventSink`]: what happened (logins, tokens, gate decisions, operators' actions), for metrics and an
//!   audit trail; see [`events`].
//! * [`Clock`]: time, injected; [`SystemClock`] in production, `testing::FixedClock` in tests.
//! * [`ClientDocumentFetcher`]: fetches the metadata documents of clients identified by a URL.
//! * Keys: [`JosekitKeyManager`] generates, persists, rotates (on demand, or on a schedule from
//!   [`AuthServer::maintain`]) and publishes the signing keys (ES256 by default, RS256 and EdDSA selectable).
//! * [`Sealer`]: the key-encryption key the embedder supplies, which seals the few secrets the store must give
//!   back (private signing keys, upstream tokens, the upstream PKCE verifier); see [`seal`].
//!
//! ## Features
//!
//! * `test-util`: `testing::FixedClock`, fixtures, the store conformance suite and a `redis-server` launcher,
//!   for this crate's tests and for embedders testing their own backends.
//! * `redis`: `store::RedisStore`, the backend for several instances sharing one Redis (deadpool-redis;
//!   `redis://` and `rediss://`).
//! * `cimd`: [`cimd::ReqwestDocumentFetcher`], the built-in fetcher of client ID metadata documents (URL
//!   `client_id`s, see [`cimd`]), with its SSRF safeguards. Without it an embedder can plug in a
//!   [`ClientDocumentFetcher`] of its own.
#![warn(missing_docs)]

pub mod admin;
pub mod cimd;
mod clock;
mod config;
mod error;
pub mod events;
mod flow;
pub mod forwarded;
pub mod jwt;
mod keys;
pub mod maintain;
mod mcp;
mod metadata;
pub mod pkce;
mod resource_index;
pub mod seal;
mod server;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod throttle;
mod types;
pub mod upstream;
mod verifier;
pub mod wire;

pub use admin::{Admin, ImportError, ImportSummary, KeyInfo, StoreExport, StoreTransfer};
pub use cimd::{ClientDocumentFetcher, FetchError, FetchedDocument};
pub use clock::{Clock, SystemClock};
pub use config::{
    AccessPolicy, ClientMetadataDocuments, ConfigError, ConfigProblem, EndpointPaths, HostPattern,
    HostPolicy, RegistrationPolicy, Regulation, ResourceConfig, ScopeGrant, ServerConfig,
    SigningAlg, ToolScope, secure_url,
};
pub use error::{AuthorizeError, Error, ErrorCode, OAuthError, Result};
pub use events::{Event, EventSink, Fanout, GateDecision, NoEvents};
pub use flow::authorize::{AuthorizationPrompt, ScopeChoice};
pub use flow::browser::{
    Browser, ConsentPage, ErrorPage, FORM_LIMIT, Outcome, ProviderChoice, ScopeLine, SessionCookie,
    SignInPage, SignOutPage, SignedIn, Step,
};
pub use flow::client::{ClientCredentials, FormCredentials};
pub use flow::collect::CollectedClients;
pub use flow::gate::{
    ForwardedBody, GateInput, GateOutcome, GateRefusal, GateVerdict, Preflight, RefusalReason,
};
pub use flow::login::LoginError;
pub use flow::session::BrowserSession;
pub use flow::upstream::UpstreamCallback;
pub use flow::verify::{Principal, RejectionKind, VerifyRejection, bearer_token};
pub use forwarded::{ForwardedError, ForwardedHeaders, ForwardedRequest, HeaderField};
pub use keys::{JosekitKeyManager, KeyError};
pub use seal::{KeyEncryptionKey, KeyEncryptionKeyError, SealError, Sealable, Sealed, Sealer};
pub use server::{AuthServer, StartError};
pub use store::{EmbeddedStore, OpenStoreError, Store, StoreError, StoreEvent, StoreSettings};
#[cfg(feature = "redis")]
pub use store::{RedisConfig, RedisStore};
pub use throttle::{ClientKey, Limited, RateLimits, Throttled};
pub use types::{Identity, ScopeSet, Secret, TokenHash, UpstreamSession};
pub use upstream::{
    Credentials, IdentityProvider, LocalUser, LocalUsers, LocalUsersError, Login, LoginStart,
    PasswordHashError, Recheck, SignIn, UpstreamError,
};
pub use verifier::VerifyCacheStats;
