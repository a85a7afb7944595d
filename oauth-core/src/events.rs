//! The engine's event seam: one [`Event`] for each thing that happens (a login, a token issued, a gate decision,
//! an operator's revocation…), handed to the [`EventSink`] installed with [`AuthServer::with_event_sink`].
//!
//! # Why one seam
//! Metrics, an audit trail and whatever an embedder wants to watch all need the same facts, and each fact has
//! exactly one place in the engine where it happens: that place emits it, and every consumer hooks in here
//! instead of parsing log lines or wrapping handlers. An adapter fans one event out to its consumers (the
//! service's audit file and Prometheus counters). Administrative operations ([`crate::Admin`]) emit too, so
//! they are recorded wherever they run: the command line or an embedder's operator interface.
//!
//! # What an event may carry
//! Identifiers (subject, client id, resource, provider, the username as typed, the operator who acted) and
//! outcomes; never a secret: no token, code, password, client secret or registration access token is ever a
//! field, so a sink can write every field it gets. The HTTP context (client address, user agent) is not the engine's to know; an adapter
//! adds it from the request it is serving.
//!
//! # Cost
//! Events borrow from the engine's own values ([`Event`] has a lifetime and is `Copy`): emitting one allocates
//! nothing, and the default sink, [`NoEvents`], does nothing, so the gate's decision event costs a virtual call
//! when nobody listens. A sink that formats does so in its own `record`.
//!
//! Besides the security events, two operational ones feed latency metrics: [`Event::StoreCall`] (every store
//! operation, timed) and [`Event::RevocationApplied`] (how long a revocation took to reach this instance).
//! [`Event::is_security`] tells them apart.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::server::AuthServer;

/// Receives the engine's events. `record` runs inline, on the engine's path (the gate's included): keep it
/// short and non-blocking (count, or hand the event to a writer).
pub trait EventSink: Send + Sync + 'static {
    /// One event happened.
    fn record(&self, event: &Event<'_>);
}

/// The default sink: ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _: &Event<'_>) {}
}

/// Hands every event to each of several sinks, in order.
#[derive(Default)]
pub struct Fanout(pub Vec<Arc<dyn EventSink>>);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({} sinks)", self.0.len())
    }
}

impl EventSink for Fanout {
    fn record(&self, event: &Event<'_>) {
        for sink in &self.0 {
            sink.record(event);
        }
    }
}

/// Something that happened in the engine. Serialized (as the audit trail writes it) with its name under `event`
/// and its fields beside it; no field is ever a secret. No event has a field named `outcome`, `subject`
/// (except where it is the subject) or `time`, so a sink may add [`Event::outcome`] and its own context beside
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event<'a> {
    /// A user logged in (a password, or an upstream identity provider's callback).
    LoginSucceeded {
        /// The identity provider (`local`, a `[[providers]]` id).
        provider: &'a str,
        /// The user's subject (`local:alice`).
        subject: &'a str,
        /// The login name, when the provider has one.
        username: Option<&'a str>,
    },
    /// A login did not log anyone in.
    LoginFailed {
        /// The identity provider.
        provider: &'a str,
        /// The username as typed (at most 64 characters), for a password login.
        username: Option<&'a str>,
        /// Why: `wrong_credentials`, `banned` (refused unchecked: the account or address is banned), `busy`
        /// (too many password checks at once), `upstream` (the provider did not log the user in).
        reason: &'static str,
    },
    /// Too many failed logins: an account or an address is banned from now on.
    LoginBanned {
        /// The username as typed, whose failure set off the ban.
        username: &'a str,
        /// `account` or `address`.
        banned: &'static str,
        /// Failures counted in the window.
        failures: u64,
        /// How long the ban lasts, in seconds.
        ban_secs: u64,
    },
    /// A client address is over a rate limit; the request was refused.
    Throttled {
        /// The limited endpoint: `authorize`, `login`, `callback`, `token`, `register`.
        endpoint: &'static str,
    },
    /// The user approved a client on the consent page.
    ConsentGiven {
        /// The user.
        subject: &'a str,
        /// The client.
        client_id: &'a str,
        /// The scopes granted, space-separated.
        scope: &'a str,
        /// Whether the consent is remembered for later authorizations.
        remembered: bool,
    },
    /// The user denied a client on the consent page.
    ConsentRefused {
        /// The user, if logged in.
        subject: Option<&'a str>,
        /// The client.
        client_id: &'a str,
    },
    /// A logged-in user was refused a code: the access policy does not admit them (`access_policy`), or they may
    /// hold none of the scopes asked for (`no_scope`).
    AuthorizationRefused {
        /// The user.
        subject: &'a str,
        /// The client.
        client_id: &'a str,
        /// `access_policy` or `no_scope`.
        reason: &'static str,
    },
    /// An authorization code was issued.
    CodeIssued {
        /// The user.
        subject: &'a str,
        /// The client.
        client_id: &'a str,
        /// The resource the code is for.
        resource: &'a str,
    },
    /// A code was redeemed a second time: every token issued from it is revoked.
    CodeReplayed {
        /// The client that presented it.
        client_id: &'a str,
    },
    /// Tokens were issued for a grant (a code exchange).
    TokenIssued {
        /// The user.
        subject: &'a str,
        /// The client.
        client_id: &'a str,
        /// `authorization_code`.
        grant_type: &'static str,
        /// The scopes of the access token, space-separated.
        scope: &'a str,
    },
    /// A refresh token was exchanged for a new pair (or retried within the grace window).
    TokenRefreshed {
        /// The user.
        subject: &'a str,
        /// The client.
        client_id: &'a str,
        /// Whether it was a retry of the last rotation within its grace window.
        retry: bool,
    },
    /// A client revoked a token (RFC 7009): an access token alone, or a refresh token with its whole grant.
    TokenRevoked {
        /// The user, when known (a refresh token's grant).
        subject: Option<&'a str>,
        /// The client.
        client_id: &'a str,
        /// `access_token` or `refresh_token`.
        token_type: &'static str,
    },
    /// A rotated refresh token came back after its grace window: the grant is revoked (OAuth 2.1 §4.3.1).
    RefreshTokenReused {
        /// The user.
        subject: &'a str,
        /// The client.
        client_id: &'a str,
    },
    /// A client registered (RFC 7591).
    ClientRegistered {
        /// The new client.
        client_id: &'a str,
        /// Its `token_endpoint_auth_method`.
        auth_method: &'a str,
    },
    /// A client updated its registration (RFC 7592).
    ClientUpdated {
        /// The client.
        client_id: &'a str,
    },
    /// A client's registration was deleted, with its grants.
    ClientDeleted {
        /// The client.
        client_id: &'a str,
        /// Who deleted it: `client` (RFC 7592), `operator`, `collection` (unused for too long).
        by: &'static str,
    },
    /// The gate decided a forward-auth request.
    Gate(GateDecision<'a>),
    /// An operator acted through [`crate::Admin`].
    Admin {
        /// `revoke_user`, `revoke_client`, `delete_client`, `rotate_keys`, `export`, `import`.
        action: &'static str,
        /// Who acted, as the caller named them ([`crate::Admin::by`], e.g. `unix:uid=1000`); `None` when it
        /// did not.
        actor: Option<&'a str>,
        /// The user or client acted on.
        target: Option<&'a str>,
        /// How many grants were revoked, where that applies.
        grants: Option<usize>,
        /// `ok`, `not_found` (no such client to delete) or `error`.
        result: &'static str,
    },
    /// A revocation recorded by this or another instance reached this instance's revocation set through the
    /// store (operational: not written to an audit trail).
    RevocationApplied {
        /// From its recording to this instance applying it.
        lag_ms: u64,
    },
    /// One store operation (operational: not written to an audit trail).
    StoreCall {
        /// The [`crate::Store`] method.
        op: &'static str,
        /// How long it took.
        micros: u64,
        /// Whether it succeeded.
        ok: bool,
    },
}

/// A decision of the gate ([`AuthServer::gate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GateDecision<'a> {
    /// The configured resource the request falls under, if it was located.
    pub resource: Option<&'a str>,
    /// `allow` (a token admitted), `pass` (a discovery document, no token needed) or `deny`.
    pub decision: &'static str,
    /// Why: `ok` when allowed or passed; for a refusal with a challenge `missing_token`, `invalid_token`,
    /// `insufficient_scope`, `access_denied` (the access policy); for a refusal of the request itself
    /// `untrusted`, `forwarded`, `ambiguous_header`, `path`, `ambiguous_path`, `no_resource`,
    /// `origin_not_allowed`, `not_a_preflight`, `protocol_version`, `header_mismatch`, `body_too_large`.
    pub reason: &'static str,
    /// The HTTP status answered.
    pub status: u16,
    /// The token's subject, once a token was verified (also when it was then refused for a scope or by the
    /// access policy).
    pub subject: Option<&'a str>,
    /// The token's client, once a token was verified.
    pub client_id: Option<&'a str>,
    /// The MCP tool (or prompt, resource) the request calls, when the gate read one (from the body, or from
    /// headers the MCP server validates): of several calls, the first a per-tool rule applies to, else the first;
    /// the method (`tools/list`) for a call without a name.
    pub tool: Option<&'a str>,
}

impl Event<'_> {
    /// The event's name, as serialized under `event` (`login_failed`, `gate`…).
    pub fn name(&self) -> &'static str {
        match self {
            Event::LoginSucceeded { .. } => "login_succeeded",
            Event::LoginFailed { .. } => "login_failed",
            Event::LoginBanned { .. } => "login_banned",
            Event::Throttled { .. } => "throttled",
            Event::ConsentGiven { .. } => "consent_given",
            Event::ConsentRefused { .. } => "consent_refused",
            Event::AuthorizationRefused { .. } => "authorization_refused",
            Event::CodeIssued { .. } => "code_issued",
            Event::CodeReplayed { .. } => "code_replayed",
            Event::TokenIssued { .. } => "token_issued",
            Event::TokenRefreshed { .. } => "token_refreshed",
            Event::TokenRevoked { .. } => "token_revoked",
            Event::RefreshTokenReused { .. } => "refresh_token_reused",
            Event::ClientRegistered { .. } => "client_registered",
            Event::ClientUpdated { .. } => "client_updated",
            Event::ClientDeleted { .. } => "client_deleted",
            Event::Gate(_) => "gate",
            Event::Admin { .. } => "admin",
            Event::RevocationApplied { .. } => "revocation_applied",
            Event::StoreCall { .. } => "store_call",
        }
    }

    /// Whether it is a security event (for an audit trail), rather than an operational measurement.
    pub fn is_security(&self) -> bool {
        !matches!(
            self,
            Event::RevocationApplied { .. } | Event::StoreCall { .. }
        )
    }

    /// The user concerned, where known.
    pub fn subject(&self) -> Option<&str> {
        match *self {
            Event::LoginSucceeded { subject, .. }
            | Event::ConsentGiven { subject, .. }
            | Event::AuthorizationRefused { subject, .. }
            | Event::CodeIssued { subject, .. }
            | Event::TokenIssued { subject, .. }
            | Event::TokenRefreshed { subject, .. }
            | Event::RefreshTokenReused { subject, .. } => Some(subject),
            Event::ConsentRefused { subject, .. } | Event::TokenRevoked { subject, .. } => subject,
            Event::Gate(d) => d.subject,
            Event::Admin {
                action: "revoke_user",
                target,
                ..
            } => target,
            _ => None,
        }
    }

    /// The client concerned, where known.
    pub fn client_id(&self) -> Option<&str> {
        match *self {
            Event::ConsentGiven { client_id, .. }
            | Event::ConsentRefused { client_id, .. }
            | Event::AuthorizationRefused { client_id, .. }
            | Event::CodeIssued { client_id, .. }
            | Event::CodeReplayed { client_id }
            | Event::TokenIssued { client_id, .. }
            | Event::TokenRefreshed { client_id, .. }
            | Event::TokenRevoked { client_id, .. }
            | Event::RefreshTokenReused { client_id, .. }
            | Event::ClientRegistered { client_id, .. }
            | Event::ClientUpdated { client_id }
            | Event::ClientDeleted { client_id, .. } => Some(client_id),
            Event::Gate(d) => d.client_id,
            Event::Admin {
                action: "revoke_client" | "delete_client",
                target,
                ..
            } => target,
            _ => None,
        }
    }

    /// `success` or `failure` from the point of view of whoever acted (a refused login, a denied gate request, a
    /// reused refresh token are failures; a ban imposed or a throttled request too).
    pub fn outcome(&self) -> &'static str {
        match self {
            Event::LoginFailed { .. }
            | Event::LoginBanned { .. }
            | Event::Throttled { .. }
            | Event::ConsentRefused { .. }
            | Event::AuthorizationRefused { .. }
            | Event::CodeReplayed { .. }
            | Event::RefreshTokenReused { .. } => "failure",
            Event::Gate(d) if d.decision == "deny" => "failure",
            Event::Admin { result, .. } if *result != "ok" => "failure",
            Event::StoreCall { ok: false, .. } => "failure",
            _ => "success",
        }
    }
}

impl AuthServer {
    /// Installs the sink that receives the engine's [`Event`]s (default: [`NoEvents`]); use [`Fanout`] for
    /// several. Store operations are timed for it from now on.
    #[must_use]
    pub fn with_event_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.store = Arc::new(crate::store::Instrumented::new(
            Arc::clone(&self.raw_store),
            Arc::clone(&sink),
        ));
        self.events = sink;
        self
    }

    /// Hands `event` to the installed sink.
    #[inline]
    pub(crate) fn emit(&self, event: Event<'_>) {
        self.events.record(&event);
    }
}

/// Converts a duration to whole microseconds, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
