//! Prometheus metrics: the engine's events counted ([`Metrics`] is an [`EventSink`]), requests counted by route
//! and status ([`super::request`]), and served in the text format on their own listener ([`serve`]), never on
//! the public port.
//!
//! Counters are `prometheus-client` families in a registry of this service's own (no global registry), so two
//! services in one test process never share a count. Every label is a fixed name (a route pattern, a reason, an
//! operation), a configured resource, or a status: nothing a client chooses, so the number of series is bounded
//! by the configuration.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::{App, HttpResponse, HttpServer, web};
use oauth_core::{AuthServer, Event, EventSink};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A configured resource as a label value: shared, so that counting a gate decision allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Shared(Arc<str>);

impl EncodeLabelValue for Shared {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    resource: Shared,
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OneLabel {
    kind: &'static str,
}

/// A rate-limited endpoint (`authorize`, `login`, `callback`, `token`, `register`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// An operator's action by what it did, never by who did it (the actor is the audit trail's: a label per
/// operator would be a series per uid).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminLabels {
    action: &'static str,
    result: &'static str,
}

fn latency() -> Histogram {
    // 50 µs to about 3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The service's metrics (see the [module documentation](self)).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    connections: Counter,
    gate: Family<GateLabels, Counter>,
    codes_issued: Counter,
    tokens_issued: Family<OneLabel, Counter>,
    tokens_refreshed: Counter,
    tokens_revoked: Family<OneLabel, Counter>,
    reuse: Family<OneLabel, Counter>,
    logins: Family<LoginLabels, Counter>,
    bans: Family<OneLabel, Counter>,
    throttled: Family<EndpointLabel, Counter>,
    consents: Family<OneLabel, Counter>,
    clients: Family<OneLabel, Counter>,
    admin: Family<AdminLabels, Counter>,
    store: Family<OpLabels, Histogram, fn() -> Histogram>,
    revocation_lag: Histogram,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_entries: Gauge,
    cache_bytes: Gauge,
    /// The configured resources, as label values (a gate decision names one of them).
    resources: Vec<Shared>,
    /// The label of a request to no configured resource.
    no_resource: Shared,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every family registered, for the configured `resources`.
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::with_prefix("forwardauth");
        let m = Metrics {
            requests: Family::default(),
            connections: Counter::default(),
            gate: Family::default(),
            codes_issued: Counter::default(),
            tokens_issued: Family::default(),
            tokens_refreshed: Counter::default(),
            tokens_revoked: Family::default(),
            reuse: Family::default(),
            logins: Family::default(),
            bans: Family::default(),
            throttled: Family::default(),
            consents: Family::default(),
            clients: Family::default(),
            admin: Family::default(),
            store: Family::new_with_constructor(latency),
            revocation_lag: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_entries: Gauge::default(),
            cache_bytes: Gauge::default(),
            resources: resources
                .into_iter()
                .map(|r| Shared(Arc::from(r)))
                .collect(),
            no_resource: Shared(Arc::from("")),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route pattern and status",
            m.requests.clone(),
        );
        r.register(
            "http_connections",
            "Connections accepted on the public listener: a rate rising faster than the requests' means proxies \
             reconnect (see [http] keep_alive_secs)",
            m.connections.clone(),
        );
        r.register(
            "gate_decisions",
            "Forward-auth decisions, by resource (empty: none located), decision (allow, pass, deny) and reason",
            m.gate.clone(),
        );
        r.register(
            "codes_issued",
            "Authorization codes issued",
            m.codes_issued.clone(),
        );
        r.register(
            "tokens_issued",
            "Token responses, by grant type (authorization_code, refresh_token)",
            m.tokens_issued.clone(),
        );
        r.register(
            "tokens_refreshed",
            "Refresh tokens exchanged (rotations and grace-window retries)",
            m.tokens_refreshed.clone(),
        );
        r.register(
            "tokens_revoked",
            "Revocations: by clients (access_token, refresh_token) and grants revoked by operators (grant)",
            m.tokens_revoked.clone(),
        );
        r.register(
            "reuse_detections",
            "Replays that revoked a grant: a rotated refresh token (refresh_token) or a used code (code)",
            m.reuse.clone(),
        );
        r.register(
            "logins",
            "Login attempts, by outcome (success, failure) and reason",
            m.logins.clone(),
        );
        r.register(
            "login_bans",
            "Bans imposed after too many failed logins, by what is banned (account, address)",
            m.bans.clone(),
        );
        r.register(
            "throttled_requests",
            "Requests refused by a per-address rate limit, by endpoint",
            m.throttled.clone(),
        );
        r.register(
            "consents",
            "Consent page decisions (given, refused)",
            m.consents.clone(),
        );
        r.register(
            "client_registrations",
            "Client registration changes (registered, updated, deleted)",
            m.clients.clone(),
        );
        r.register(
            "admin_actions",
            "Operators' actions, by action and result",
            m.admin.clone(),
        );
        r.register(
            "store_operation_seconds",
            "Latency of store operations, by operation (the store method)",
            m.store.clone(),
        );
        r.register(
            "revocation_propagation_seconds",
            "Time from a revocation being recorded to this instance applying it from the store",
            m.revocation_lag.clone(),
        );
        r.register(
            "verify_cache_hits",
            "Tokens found in the verified-token cache",
            m.cache_hits.clone(),
        );
        r.register(
            "verify_cache_misses",
            "Tokens not found in the verified-token cache (a signature check)",
            m.cache_misses.clone(),
        );
        r.register(
            "verify_cache_entries",
            "Tokens held in the verified-token cache",
            m.cache_entries.clone(),
        );
        r.register(
            "verify_cache_bytes",
            "Memory the verified-token cache holds, in bytes",
            m.cache_bytes.clone(),
        );
        r.register(
            "build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics { registry, ..m }
    }

    /// Counts an answered request: `route` is the matched route pattern (`None`: no route matched).
    pub fn request(&self, route: Option<&str>, status: u16) {
        let route = route
            .and_then(|r| {
                crate::endpoints::ENDPOINTS
                    .iter()
                    .find(|e| e.pattern == r)
                    .map(|e| e.pattern)
            })
            .unwrap_or("unmatched");
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Counts a connection accepted on the public listener.
    pub fn connection(&self) {
        self.connections.inc();
    }

    /// The text exposition, with the engine's cache figures read now.
    pub fn render(&self, auth: &AuthServer) -> String {
        let stats = auth.verify_cache_stats();
        self.cache_hits.inner().store(stats.hits, Ordering::Relaxed);
        self.cache_misses
            .inner()
            .store(stats.misses, Ordering::Relaxed);
        self.cache_entries
            .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
        self.cache_bytes
            .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }

    fn resource(&self, r: Option<&str>) -> Shared {
        r.and_then(|r| self.resources.iter().find(|s| &*s.0 == r))
            .unwrap_or(&self.no_resource)
            .clone()
    }
}

fn one(kind: &'static str) -> OneLabel {
    OneLabel { kind }
}

impl EventSink for Metrics {
    fn record(&self, event: &Event<'_>) {
        match *event {
            Event::Gate(d) => {
                self.gate
                    .get_or_create(&GateLabels {
                        resource: self.resource(d.resource),
                        decision: d.decision,
                        reason: d.reason,
                    })
                    .inc();
            }
            Event::StoreCall { op, micros, .. } => {
                #[allow(clippy::cast_precision_loss)]
                let secs = micros as f64 / 1e6;
                self.store.get_or_create(&OpLabels { op }).observe(secs);
            }
            Event::RevocationApplied { lag_ms } => {
                #[allow(clippy::cast_precision_loss)]
                self.revocation_lag.observe(lag_ms as f64 / 1e3);
            }
            Event::CodeIssued { .. } => {
                self.codes_issued.inc();
            }
            Event::TokenIssued { grant_type, .. } => {
                self.tokens_issued.get_or_create(&one(grant_type)).inc();
            }
            Event::TokenRefreshed { .. } => {
                self.tokens_refreshed.inc();
                self.tokens_issued
                    .get_or_create(&one("refresh_token"))
                    .inc();
            }
            Event::TokenRevoked { token_type, .. } => {
                self.tokens_revoked.get_or_create(&one(token_type)).inc();
            }
            Event::RefreshTokenReused { .. } => {
                self.reuse.get_or_create(&one("refresh_token")).inc();
            }
            Event::CodeReplayed { .. } => {
                self.reuse.get_or_create(&one("code")).inc();
            }
            Event::LoginSucceeded { .. } => {
                self.logins
                    .get_or_create(&LoginLabels {
                        outcome: "success",
                        reason: "ok",
                    })
                    .inc();
            }
            Event::LoginFailed { reason, .. } => {
                self.logins
                    .get_or_create(&LoginLabels {
                        outcome: "failure",
                        reason,
                    })
                    .inc();
            }
            Event::LoginBanned { banned, .. } => {
                self.bans.get_or_create(&one(banned)).inc();
            }
            Event::Throttled { endpoint } => {
                self.throttled
                    .get_or_create(&EndpointLabel { endpoint })
                    .inc();
            }
            Event::ConsentGiven { .. } => {
                self.consents.get_or_create(&one("given")).inc();
            }
            Event::ConsentRefused { .. } => {
                self.consents.get_or_create(&one("refused")).inc();
            }
            Event::ClientRegistered { .. } => {
                self.clients.get_or_create(&one("registered")).inc();
            }
            Event::ClientUpdated { .. } => {
                self.clients.get_or_create(&one("updated")).inc();
            }
            Event::ClientDeleted { .. } => {
                self.clients.get_or_create(&one("deleted")).inc();
            }
            Event::Admin {
                action,
                result,
                grants,
                ..
            } => {
                self.admin
                    .get_or_create(&AdminLabels { action, result })
                    .inc();
                if let Some(n) = grants {
                    self.tokens_revoked
                        .get_or_create(&one("grant"))
                        .inc_by(n as u64);
                }
            }
            _ => {}
        }
    }
}

/// Serves `GET /metrics` (and nothing else) on `listener` until the returned server is stopped.
///
/// # Errors
/// The listener cannot be served.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    auth: Arc<AuthServer>,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        let metrics = Arc::clone(&metrics);
        let auth = Arc::clone(&auth);
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let body = metrics.render(&auth);
                async move {
                    HttpResponse::Ok()
                        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .shutdown_timeout(1)
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's list of metrics names every family registered: a new one cannot go undocumented.
    #[tokio::test]
    async fn the_readme_lists_every_family() {
        let mut config = crate::Config::defaults("127.0.0.1:8080".parse().unwrap());
        config.store = crate::config::StoreConfig::Memory;
        let auth = crate::state::build_auth(&config).await.unwrap();
        let text = Metrics::new(["http://127.0.0.1:8080/mcp"]).render(&auth);
        let readme = include_str!("../../../README.md");
        let list = readme
            .split("- **Metrics** (all prefixed `forwardauth_`):")
            .nth(1)
            .and_then(|rest| rest.split("\n- **").next())
            .expect("README: the **Metrics** list");
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE forwardauth_"))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(families.len() > 15, "{text}");
        for family in families {
            // As a query names it: counters end in `_total`, the info metric in `_info`.
            assert!(
                list.contains(&format!("`{family}")),
                "README's metrics list lacks `{family}`"
            );
        }
    }
}
