//! The audit trail: the engine's security events ([`Event::is_security`]) as JSON lines, to standard error or
//! appended to a file, apart from the log.
//!
//! Each line has `time` (RFC 3339, UTC, from the engine's clock), `event`, `outcome` (`success` or `failure`),
//! `subject`, `client_id`, `client_addr` and `user_agent` (`null` where unknown), and the event's own fields.
//! None of them is ever a secret: the engine's events carry none (see [`oauth_core::events`]), and the HTTP
//! context is the client's address and user agent only.
//!
//! An operator's action (`admin`) has no request behind it: its `actor` says who acted, `unix:uid=<uid>` (the
//! admin socket's peer, or the command line's own user on a store it opened; see [`crate::admin_socket::actor`]),
//! while `subject` and `client_id` stay what they are on every line, the user or client concerned (the target
//! of a `revoke_user`, a `delete_client`).
//!
//! # Where the HTTP context comes from
//! The engine knows nothing of HTTP, so [`super::request`] puts the client's address (the real client behind
//! a trusted proxy, as `extract::client_addr` finds it) and user agent in a task-local around each
//! request, and [`AuditSink::record`] reads it: an event emitted while a request is served carries that
//! request's context, one emitted elsewhere (the command line's `revoke`, the housekeeping loop) carries none.
//!
//! # Which gate decisions
//! Only refusals: every allowed request through the proxy is not a security event, and would make the trail
//! an access log. And at most `[gate] refusals_logged_per_sec` refusals a second, gate refusals and requests
//! refused by a rate limit (`throttled`) together: anyone can cause those, as often as they can send, so without
//! a bound the trail is theirs to fill. Refusals left out are counted, and the next one written is preceded by a
//! `refusals_left_out` line with their `count`.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use oauth_core::{Clock, Event, EventSink};
use serde_json::{Map, Value};

use crate::config::AuditTarget;

/// The longest user agent written; the rest is cut.
const USER_AGENT_CHARS: usize = 256;

/// The request an event happens in, as the audit trail tells it.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The client's address (behind a trusted proxy, the client's, not the proxy's).
    pub client_addr: Option<IpAddr>,
    /// Its `User-Agent`, cut at 256 characters.
    pub user_agent: Option<Box<str>>,
}

impl RequestContext {
    /// The context of `req`.
    pub fn of(req: &actix_web::HttpRequest, gate: &crate::config::GateConfig) -> Self {
        RequestContext {
            client_addr: crate::extract::client_addr(req, gate),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(USER_AGENT_CHARS).collect::<String>().into()),
        }
    }
}

tokio::task_local! {
    /// The request being served, while the audit trail is on.
    pub(super) static REQUEST: RequestContext;
}

/// Writes security events as JSON lines (see the [module documentation](self)).
pub struct AuditSink {
    out: Mutex<Box<dyn Write + Send>>,
    clock: Arc<dyn Clock>,
    /// Bounds the refusals anyone can cause (gate refusals, throttled requests) written a second (see the
    /// [module documentation](self)).
    refusals: super::LineBudget,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").finish_non_exhaustive()
    }
}

/// Why the audit file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit.file {path}: cannot open: {reason}")]
pub struct AuditOpenError {
    /// The file.
    pub path: String,
    /// The I/O error.
    pub reason: std::io::Error,
}

impl AuditSink {
    /// The sink for `target`, `None` when it is off. A file is created with mode 0600 (and its directory) if
    /// missing, and appended to.
    ///
    /// # Errors
    /// [`AuditOpenError`] naming the file.
    pub fn open(
        target: &AuditTarget,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Self>, AuditOpenError> {
        let out: Box<dyn Write + Send> = match target {
            AuditTarget::Off => return Ok(None),
            AuditTarget::Stderr => Box::new(std::io::stderr()),
            AuditTarget::File(path) => {
                Box::new(open_append(path).map_err(|reason| AuditOpenError {
                    path: path.display().to_string(),
                    reason,
                })?)
            }
        };
        Ok(Some(Self::new(out, clock)))
    }

    /// A sink writing to `out`.
    pub fn new(out: Box<dyn Write + Send>, clock: Arc<dyn Clock>) -> Self {
        AuditSink {
            out: Mutex::new(out),
            clock,
            refusals: super::LineBudget::new(0),
        }
    }

    /// At most `per_second` refusals anyone can cause (gate refusals, throttled requests) written a second (0:
    /// every one); the default is every one.
    #[must_use]
    pub fn with_refusal_budget(mut self, per_second: u32) -> Self {
        self.refusals = super::LineBudget::new(per_second);
        self
    }

    /// The line saying how many refusals were left out.
    fn left_out_line(&self, count: u64) -> Option<String> {
        let millis = i64::try_from(self.clock.unix_millis()).unwrap_or(i64::MAX);
        let time = chrono::DateTime::from_timestamp_millis(millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let line = serde_json::json!({
            "time": time,
            "event": "refusals_left_out",
            "outcome": "failure",
            "count": count,
        });
        serde_json::to_string(&line).ok()
    }

    /// The line for `event` in the context `ctx`.
    fn line(&self, event: &Event<'_>, ctx: Option<&RequestContext>) -> Option<String> {
        let Ok(Value::Object(fields)) = serde_json::to_value(event) else {
            return None;
        };
        let mut line = Map::new();
        let millis = i64::try_from(self.clock.unix_millis()).unwrap_or(i64::MAX);
        let time = chrono::DateTime::from_timestamp_millis(millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        line.insert("time".into(), time.into());
        line.insert("event".into(), event.name().into());
        line.insert("outcome".into(), event.outcome().into());
        line.insert("subject".into(), event.subject().into());
        line.insert("client_id".into(), event.client_id().into());
        line.insert(
            "client_addr".into(),
            ctx.and_then(|c| c.client_addr)
                .map(|a| a.to_string())
                .into(),
        );
        line.insert(
            "user_agent".into(),
            ctx.and_then(|c| c.user_agent.as_deref()).into(),
        );
        line.extend(fields);
        serde_json::to_string(&line).ok()
    }
}

impl EventSink for AuditSink {
    fn record(&self, event: &Event<'_>) {
        if !event.is_security() {
            return;
        }
        if let Event::Gate(d) = event
            && d.decision != "deny"
        {
            return;
        }
        let mut left_out = 0;
        if matches!(event, Event::Gate(_) | Event::Throttled { .. }) {
            match self.refusals.admit(self.clock.unix_millis() / 1000) {
                super::budget::Admit::Skip => return,
                super::budget::Admit::Write { left_out: n } => left_out = n,
            }
        }
        let line = REQUEST
            .try_with(|ctx| self.line(event, Some(ctx)))
            .unwrap_or_else(|_| self.line(event, None));
        let Some(line) = line else { return };
        let mut line = match left_out {
            0 => line,
            n => self
                .left_out_line(n)
                .map_or(line.clone(), |before| format!("{before}\n{line}")),
        };
        line.push('\n');
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            tracing::warn!(error = %e, event = event.name(), "writing the audit trail failed");
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}
