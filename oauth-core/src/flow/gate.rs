//! The gate: one call that decides a forward-auth request, [`AuthServer::gate`].
//!
//! A proxy asks "may this request through?" and forwards the request unchanged when the answer is 2xx. So the
//! decision is taken on exactly what the proxy forwards ([`ForwardedRequest`], read strictly, nothing
//! normalised), in one place, in this order:
//!
//! 1. **Whose headers.** Forwarded headers are believed only from a trusted proxy.
//! 2. **Which request.** [`ForwardedRequest::parse`]; any header the gate reads sent twice is refused.
//! 3. **Which path.** A raw path not in normal form ([`check_path`]) is refused outright, with or without a
//!    token: the MCP server behind the proxy may resolve it to another resource than the gate would.
//! 4. **Discovery.** `GET`/`HEAD` of the discovery documents the product serves, at their exact paths and
//!    without a query, pass without a token (every identity header empty). Nothing else passes unauthenticated:
//!    not other `/.well-known/` paths, not CORS preflights (the proxy snippets send those to the service, which
//!    answers them with [`AuthServer::preflight`]).
//! 5. **Which resource.** The longest configured resource on the request's origin whose path contains the
//!    request's path on a segment boundary, compared as sent. A path that would match a longer resource if
//!    letter case were ignored is refused as ambiguous (a case-insensitive server would serve that resource).
//!    No resource: refused.
//! 6. **`Origin`.** When present it must be the resource's own origin or one of its `allowed_origins`, else
//!    refused (MCP transport 2025-11-25: servers MUST validate `Origin`). Absent passes: server-side clients
//!    send none.
//! 7. **The MCP call**, for a resource with per-tool rules: `MCP-Protocol-Version` must be a calendar date
//!    (else refused, for every resource); a call is read from the JSON-RPC body when the proxy forwarded it,
//!    the `Mcp-Method`/`Mcp-Name` headers must then agree with the body, and without a body they count only
//!    where the MCP server validates them (see [`crate::mcp`] for why these two sources and no other).
//! 8. **The token**, then the access policy, then the per-tool scopes ([`AuthServer::verify`] underneath), with
//!    one key reload for a token signed by a key this instance has not loaded yet.
//!
//! Every answer is 200, 401 or 403 (nginx turns anything else from `auth_request` into a 500), with two
//! exceptions that only a forwarded body can cause: 400 when the MCP headers disagree with the body, 413 for a
//! body longer than the adapter reads. Only Traefik (`forwardBody`) sends the gate a body, and Traefik returns
//! any answer to the client as it is; nginx's `auth_request` never has the body, so nginx never sees either. For
//! an allowed `Origin`, the verdict names it so the adapter can add CORS headers to the refusal, which the
//! proxies return to the browser as they are.

use std::borrow::Cow;

use crate::config::ResourceConfig;
use crate::flow::verify::{Principal, RejectionKind, VerifyRejection, bearer_token};
use crate::forwarded::{
    ForwardedError, ForwardedHeaders, ForwardedRequest, HeaderField, PathProblem, SiteOrigin,
    check_path,
};
use crate::mcp::{self, McpHeaders, ProtocolVersion};
use crate::resource_index::{Located, ResourceIndex};

/// Everything the gate reads of a forward-auth call. `Debug` says whether `Authorization` was sent, never its
/// value (the bearer token).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct GateInput<'a> {
    /// The headers that describe the guarded request.
    pub forwarded: ForwardedHeaders<'a>,
    /// Whether the call comes from a configured proxy address.
    pub from_trusted_proxy: bool,
    /// Whether the call itself came over https (the scheme when the proxy sends none).
    pub listener_https: bool,
    /// `Authorization`.
    pub authorization: HeaderField<'a>,
    /// `Origin`.
    pub origin: HeaderField<'a>,
    /// `MCP-Protocol-Version`.
    pub mcp_protocol_version: HeaderField<'a>,
    /// `Mcp-Method` (2026-07-28 transport).
    pub mcp_method: HeaderField<'a>,
    /// `Mcp-Name` (2026-07-28 transport).
    pub mcp_name: HeaderField<'a>,
    /// The guarded request's body, when the proxy forwards it (Traefik's `forwardBody`).
    pub body: ForwardedBody<'a>,
}

/// The guarded request's body as the proxy forwarded it to the gate. Per-tool rules read the JSON-RPC call from
/// it; `Debug` shows its length, never its content (tool arguments may be secrets).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedBody<'a> {
    /// No body: the proxy does not forward bodies (nginx's `auth_request` runs before nginx reads the body,
    /// Caddy's `forward_auth` sends a `GET` without it, Traefik without `forwardBody`), or the request had none.
    #[default]
    Absent,
    /// The whole body.
    Present(&'a [u8]),
    /// Longer than the adapter reads; the rest was left unread.
    TooLarge {
        /// The most the adapter reads, in bytes.
        limit: usize,
    },
}

impl std::fmt::Debug for ForwardedBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardedBody::Absent => f.write_str("Absent"),
            ForwardedBody::Present(b) => write!(f, "Present({} bytes)", b.len()),
            ForwardedBody::TooLarge { limit } => write!(f, "TooLarge {{ limit: {limit} }}"),
        }
    }
}

impl std::fmt::Debug for GateInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let GateInput {
            forwarded,
            from_trusted_proxy,
            listener_https,
            authorization,
            origin,
            mcp_protocol_version,
            mcp_method,
            mcp_name,
            body,
        } = self;
        let authorization = match authorization {
            HeaderField::Absent => "Absent",
            HeaderField::One(_) => "One([redacted])",
            HeaderField::Repeated => "Repeated",
        };
        f.debug_struct("GateInput")
            .field("forwarded", forwarded)
            .field("from_trusted_proxy", from_trusted_proxy)
            .field("listener_https", listener_https)
            .field("authorization", &format_args!("{authorization}"))
            .field("origin", origin)
            .field("mcp_protocol_version", mcp_protocol_version)
            .field("mcp_method", mcp_method)
            .field("mcp_name", mcp_name)
            .field("body", body)
            .finish()
    }
}

/// The gate's decision. Exhaustive on purpose: an adapter must map every outcome, and a new one must not
/// compile into a catch-all arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateOutcome {
    /// 200 with the principal's identity headers.
    Admit(Principal),
    /// 200 with every identity header empty: a discovery document.
    Pass,
    /// 401 or 403 with a Bearer challenge.
    Reject(VerifyRejection),
    /// Without a challenge: the request itself is refused, whatever token it carries; 403, or the status of
    /// [`GateRefusal::status`].
    Refuse(GateRefusal),
}

/// A decision and, for an allowed `Origin`, the origin to name in CORS headers on a 401 or 403.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateVerdict {
    /// The decision.
    pub outcome: GateOutcome,
    /// The request's `Origin`, when it is allowed for the resource.
    pub allow_origin: Option<String>,
}

impl GateVerdict {
    fn new(outcome: GateOutcome) -> Self {
        GateVerdict {
            outcome,
            allow_origin: None,
        }
    }
}

/// Why the gate refuses a request outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// Forwarded headers from an address that is not a trusted proxy.
    Untrusted,
    /// The guarded request could not be established.
    Forwarded(ForwardedError),
    /// A header the gate reads besides the forwarded ones (`Authorization`, `Origin`, `Mcp-*`) was sent twice
    /// or is not visible ASCII.
    AmbiguousHeader(&'static str),
    /// The raw path is not in normal form.
    Path(PathProblem),
    /// The path matches a longer resource when letter case is ignored.
    AmbiguousPath,
    /// No configured resource contains the URL.
    NoResource,
    /// `Origin` is neither the resource's nor an allowed one.
    OriginNotAllowed,
    /// A preflight without `Origin` or `Access-Control-Request-Method`.
    NotAPreflight,
    /// `MCP-Protocol-Version` is not a calendar date `YYYY-MM-DD`.
    ProtocolVersion,
    /// This MCP request header disagrees with the JSON-RPC body the proxy forwarded: 400, as the 2026-07-28
    /// transport requires of every party that reads the body (only a forwarded body causes it, so only Traefik
    /// sees it, and returns it to the client).
    HeaderMismatch(&'static str),
    /// The forwarded body is longer than the adapter reads, so no rule can be decided on it: 413 (only a
    /// forwarded body causes it).
    BodyTooLarge {
        /// The most the adapter reads, in bytes.
        limit: usize,
    },
}

/// A refusal of the request itself (403; 400 or 413 for a forwarded body, see [`GateRefusal::status`]), with a
/// description for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
#[non_exhaustive]
pub struct GateRefusal {
    /// Why.
    pub reason: RefusalReason,
    /// What to tell the client.
    pub description: Cow<'static, str>,
}

impl From<RefusalReason> for GateRefusal {
    fn from(reason: RefusalReason) -> Self {
        let description = match reason {
            RefusalReason::Untrusted => {
                "forwarded request headers are accepted only from trusted proxies".into()
            }
            RefusalReason::Forwarded(e) => e.to_string().into(),
            RefusalReason::AmbiguousHeader(name) => {
                format!("the {name} header was sent more than once or is not visible ASCII").into()
            }
            RefusalReason::Path(p) => format!("the request path is not in normal form: {p}").into(),
            RefusalReason::AmbiguousPath => {
                "the request path names a protected resource in another letter case".into()
            }
            RefusalReason::NoResource => "no protected resource is configured for this URL".into(),
            RefusalReason::OriginNotAllowed => {
                "the Origin of this request is not allowed for this resource".into()
            }
            RefusalReason::NotAPreflight => {
                "a CORS preflight needs Origin and Access-Control-Request-Method headers".into()
            }
            RefusalReason::ProtocolVersion => {
                "the MCP-Protocol-Version header is not a date (YYYY-MM-DD)".into()
            }
            RefusalReason::HeaderMismatch(name) => {
                format!("the {name} header does not match the JSON-RPC request body").into()
            }
            RefusalReason::BodyTooLarge { limit } => format!(
                "the request body is larger than the {limit} bytes the gate reads to apply per-tool scopes"
            )
            .into(),
        };
        GateRefusal {
            reason,
            description,
        }
    }
}

impl GateRefusal {
    /// The HTTP status: 403, but 400 for MCP headers that disagree with the forwarded body and 413 for a
    /// forwarded body too long to read.
    pub fn status(&self) -> u16 {
        match self.reason {
            RefusalReason::HeaderMismatch(_) => 400,
            RefusalReason::BodyTooLarge { .. } => 413,
            _ => 403,
        }
    }

    /// The `error` of the JSON body: `invalid_request` for a request the gate cannot read as one MCP call (400,
    /// 413), `access_denied` for every other refusal.
    pub fn error_code(&self) -> &'static str {
        match self.status() {
            403 => "access_denied",
            _ => "invalid_request",
        }
    }
}

fn refuse(reason: RefusalReason) -> GateVerdict {
    GateVerdict::new(GateOutcome::Refuse(reason.into()))
}

/// A header besides the forwarded ones: `Ok(None)` when absent, refused when repeated or not visible ASCII.
fn single<'a>(h: HeaderField<'a>, name: &'static str) -> Result<Option<&'a str>, GateRefusal> {
    match h {
        HeaderField::Absent => Ok(None),
        HeaderField::Repeated => Err(RefusalReason::AmbiguousHeader(name).into()),
        HeaderField::One(v) => {
            if v.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t') {
                std::str::from_utf8(v)
                    .map(Some)
                    .map_err(|_| RefusalReason::AmbiguousHeader(name).into())
            } else {
                Err(RefusalReason::AmbiguousHeader(name).into())
            }
        }
    }
}

/// What a request asks the MCP server to do, as far as per-tool rules are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ToolCalls {
    /// No call a rule applies to: the resource has no rules, or the method carries no JSON-RPC call (`GET`
    /// opens a stream, `DELETE` ends a session).
    None,
    /// These calls, `(method, name)`: from the forwarded body, or from headers the MCP server validates.
    Known(Vec<(String, Option<String>)>),
    /// A call that cannot be known: every rule's scopes are needed (the gate fails closed).
    Unknown,
}

/// The calls a request to `resource` makes, read as [`crate::mcp`] explains: from the forwarded body (whose
/// headers must agree with it), else from the 2026-07-28 headers where the resource says the MCP server validates
/// them, else unknown.
fn tool_calls(
    resource: &ResourceConfig,
    method: &str,
    headers: &McpHeaders<'_>,
    version: Option<ProtocolVersion>,
    body: ForwardedBody<'_>,
) -> Result<ToolCalls, RefusalReason> {
    if resource.tool_scopes.is_empty() || matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        return Ok(ToolCalls::None);
    }
    match body {
        ForwardedBody::TooLarge { limit } => Err(RefusalReason::BodyTooLarge { limit }),
        ForwardedBody::Present(bytes) => match mcp::parse_body(bytes) {
            Ok(parsed) => {
                mcp::check_headers(headers, &parsed).map_err(RefusalReason::HeaderMismatch)?;
                Ok(ToolCalls::Known(
                    parsed
                        .messages()
                        .iter()
                        .filter_map(|m| Some((m.method.clone()?, m.name.clone())))
                        .collect(),
                ))
            }
            Err(why) => {
                tracing::debug!(reason = %why.0, "forwarded body is not JSON-RPC; every tool scope is needed");
                Ok(ToolCalls::Unknown)
            }
        },
        ForwardedBody::Absent => {
            let validated = resource.mcp_server_validates_headers
                && version.is_some_and(ProtocolVersion::servers_validate_headers);
            match (
                validated,
                headers.method,
                headers.name.map(mcp::decode_name),
            ) {
                (true, Some(m), None) => Ok(ToolCalls::Known(vec![(m.to_owned(), None)])),
                (true, Some(m), Some(Some(name))) => {
                    Ok(ToolCalls::Known(vec![(m.to_owned(), Some(name))]))
                }
                _ => Ok(ToolCalls::Unknown),
            }
        }
    }
}

/// Scopes the resource's per-tool rules require for these calls: for each, the rule for its method and name,
/// else the rule for its method; for an unknown call, every rule's scopes.
fn tool_scopes_needed(resource: &ResourceConfig, calls: &ToolCalls) -> Vec<String> {
    let mut needed: Vec<String> = Vec::new();
    let mut add = |scopes: &[String]| {
        for s in scopes {
            if !needed.contains(s) {
                needed.push(s.clone());
            }
        }
    };
    match calls {
        ToolCalls::None => {}
        ToolCalls::Known(calls) => {
            for (method, name) in calls {
                let exact = name.as_ref().map(|n| format!("{method}:{n}"));
                let rule = resource
                    .tool_scopes
                    .iter()
                    .find(|t| exact.as_deref() == Some(t.key.as_str()))
                    .or_else(|| resource.tool_scopes.iter().find(|t| t.key == *method));
                if let Some(rule) = rule {
                    add(&rule.scopes);
                }
            }
        }
        ToolCalls::Unknown => {
            for rule in &resource.tool_scopes {
                add(&rule.scopes);
            }
        }
    }
    needed
}

/// The discovery documents the service serves, passed by the gate at these exact paths.
/// The position of the resource `path` on `origin` falls under, or why there is none.
fn resource_at(
    index: &ResourceIndex,
    origin: &SiteOrigin<'_>,
    path: &str,
) -> Result<usize, RefusalReason> {
    match index.locate(origin, path) {
        Located::Resource(i) => Ok(i),
        Located::Ambiguous => Err(RefusalReason::AmbiguousPath),
        Located::Nowhere => Err(RefusalReason::NoResource),
    }
}

/// What the service answers to a CORS preflight for a protected resource.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Preflight {
    /// The allowed origin, for `Access-Control-Allow-Origin`.
    pub allow_origin: String,
}

impl Preflight {
    /// `Access-Control-Allow-Methods`: what the MCP Streamable HTTP transport uses.
    pub const ALLOW_METHODS: &'static str = "GET, POST, DELETE, OPTIONS";
    /// `Access-Control-Allow-Headers`: the credentials and the MCP transport's request headers.
    pub const ALLOW_HEADERS: &'static str = "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name";
    /// `Access-Control-Expose-Headers` on the preflight and on the gate's 401/403.
    pub const EXPOSE_HEADERS: &'static str =
        "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version";
    /// `Access-Control-Max-Age`, seconds.
    pub const MAX_AGE: &'static str = "86400";
}

/// What the gate learnt of a request on the way to its decision, for the decision's event.
#[derive(Default)]
struct Seen {
    /// The position of the resource it falls under.
    resource: Option<usize>,
    /// The calls it makes.
    calls: Option<ToolCalls>,
    /// Whose valid token was refused (by the access policy or for a scope).
    refused: Option<Principal>,
}

impl RefusalReason {
    /// The reason's name in events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            RefusalReason::Untrusted => "untrusted",
            RefusalReason::Forwarded(_) => "forwarded",
            RefusalReason::AmbiguousHeader(_) => "ambiguous_header",
            RefusalReason::Path(_) => "path",
            RefusalReason::AmbiguousPath => "ambiguous_path",
            RefusalReason::NoResource => "no_resource",
            RefusalReason::OriginNotAllowed => "origin_not_allowed",
            RefusalReason::NotAPreflight => "not_a_preflight",
            RefusalReason::ProtocolVersion => "protocol_version",
            RefusalReason::HeaderMismatch(_) => "header_mismatch",
            RefusalReason::BodyTooLarge { .. } => "body_too_large",
        }
    }
}

impl RejectionKind {
    /// The kind's name in events and metrics.
    pub fn name(self) -> &'static str {
        match self {
            RejectionKind::MissingToken => "missing_token",
            RejectionKind::InvalidToken => "invalid_token",
            RejectionKind::InsufficientScope => "insufficient_scope",
            RejectionKind::AccessDenied => "access_denied",
        }
    }
}

impl crate::AuthServer {
    /// Decides a forward-auth request (see the module docs for the order of the checks), and emits the
    /// decision as an [`Event::Gate`](crate::Event::Gate).
    pub async fn gate(&self, input: &GateInput<'_>) -> GateVerdict {
        let mut seen = Seen::default();
        let verdict = self.decide(input, &mut seen).await;
        let (decision, reason, status, principal) = match &verdict.outcome {
            GateOutcome::Admit(p) => ("allow", "ok", 200, Some(p)),
            GateOutcome::Pass => ("pass", "ok", 200, None),
            GateOutcome::Reject(r) => ("deny", r.kind.name(), r.status(), seen.refused.as_ref()),
            GateOutcome::Refuse(r) => ("deny", r.reason.name(), r.status(), None),
        };
        let resource = seen.resource.and_then(|i| self.config.resources.get(i));
        let tool = match (&seen.calls, resource) {
            (Some(ToolCalls::Known(calls)), Some(resource)) => {
                // The call a rule applies to (the one that decided), else the first.
                let ruled = |(method, name): &&(String, Option<String>)| {
                    resource.tool_scopes.iter().any(|t| {
                        t.key == *method
                            || t.key
                                .strip_prefix(method.as_str())
                                .and_then(|rest| rest.strip_prefix(':'))
                                .is_some_and(|n| Some(n) == name.as_deref())
                    })
                };
                calls
                    .iter()
                    .find(ruled)
                    .or(calls.first())
                    .map(|(method, name)| name.as_deref().unwrap_or(method))
            }
            _ => None,
        };
        self.emit(crate::events::Event::Gate(crate::events::GateDecision {
            resource: resource.map(|r| r.resource.as_str()),
            decision,
            reason,
            status,
            subject: principal.map(Principal::subject),
            client_id: principal.map(Principal::client_id),
            tool,
        }));
        verdict
    }

    async fn decide(&self, input: &GateInput<'_>, seen: &mut Seen) -> GateVerdict {
        if !input.from_trusted_proxy {
            return if input.forwarded.any() {
                refuse(RefusalReason::Untrusted)
            } else {
                refuse(RefusalReason::Forwarded(ForwardedError::Missing))
            };
        }
        let req = match ForwardedRequest::parse(&input.forwarded, input.listener_https) {
            Ok(r) => r,
            Err(e) => return refuse(RefusalReason::Forwarded(e)),
        };
        if let Err(p) = check_path(req.path) {
            return refuse(RefusalReason::Path(p));
        }
        let origin = req.origin();
        if matches!(req.method, "GET" | "HEAD")
            && req.query.is_none()
            && self.resource_index.is_discovery(&origin, req.path)
        {
            return GateVerdict::new(GateOutcome::Pass);
        }
        let at = match resource_at(&self.resource_index, &origin, req.path) {
            Ok(i) => i,
            Err(reason) => return refuse(reason),
        };
        seen.resource = Some(at);
        let (Some(resource), Some(location)) = (
            self.config.resources.get(at),
            self.resource_index.locations.get(at),
        ) else {
            return refuse(RefusalReason::NoResource);
        };
        let headers = (|| -> Result<_, GateRefusal> {
            let mcp = McpHeaders {
                protocol_version: single(input.mcp_protocol_version, "MCP-Protocol-Version")?,
                method: single(input.mcp_method, "Mcp-Method")?,
                name: single(input.mcp_name, "Mcp-Name")?,
            };
            let version = match mcp.protocol_version {
                None => None,
                Some(v) => Some(
                    ProtocolVersion::parse(v)
                        .ok_or(GateRefusal::from(RefusalReason::ProtocolVersion))?,
                ),
            };
            Ok((
                single(input.authorization, "Authorization")?,
                single(input.origin, "Origin")?,
                mcp,
                version,
            ))
        })();
        let (authorization, request_origin, mcp, version) = match headers {
            Ok(h) => h,
            Err(r) => return GateVerdict::new(GateOutcome::Refuse(r)),
        };
        let allow_origin = match request_origin {
            None => None,
            Some(o) => match SiteOrigin::parse(o) {
                Some(parsed) if location.allows_origin(&parsed) => Some(o.to_owned()),
                _ => return refuse(RefusalReason::OriginNotAllowed),
            },
        };
        let calls = match tool_calls(resource, req.method, &mcp, version, input.body) {
            Ok(c) => c,
            Err(reason) => {
                return GateVerdict {
                    outcome: GateOutcome::Refuse(reason.into()),
                    allow_origin,
                };
            }
        };
        let outcome = match self.verify_call(authorization, &calls, resource).await {
            Ok(p) => GateOutcome::Admit(p),
            Err((r, who)) => {
                seen.refused = who;
                GateOutcome::Reject(r)
            }
        };
        seen.calls = Some(calls);
        GateVerdict {
            outcome,
            allow_origin,
        }
    }

    /// Decides a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) for a protected
    /// resource, which the proxy snippets route to the service rather than through the gate: a browser needs a
    /// 2xx to a preflight, and the gate's 2xx would send the request on to the MCP server without a token.
    ///
    /// # Errors
    /// A [`GateRefusal`] (403) for a path not in normal form, no resource, or an origin not allowed.
    pub fn preflight(
        &self,
        req: &ForwardedRequest<'_>,
        origin: HeaderField<'_>,
        request_method: HeaderField<'_>,
    ) -> Result<Preflight, GateRefusal> {
        check_path(req.path).map_err(|p| GateRefusal::from(RefusalReason::Path(p)))?;
        let at = resource_at(&self.resource_index, &req.origin(), req.path)?;
        let location = self
            .resource_index
            .locations
            .get(at)
            .ok_or(GateRefusal::from(RefusalReason::NoResource))?;
        let origin = single(origin, "Origin")?;
        let method = single(request_method, "Access-Control-Request-Method")?;
        let (Some(origin), Some(_)) = (origin, method) else {
            return Err(RefusalReason::NotAPreflight.into());
        };
        match SiteOrigin::parse(origin) {
            Some(o) if location.allows_origin(&o) => Ok(Preflight {
                allow_origin: origin.to_owned(),
            }),
            _ => Err(RefusalReason::OriginNotAllowed.into()),
        }
    }

    /// The configured resource an absolute `http(s)` URL falls under, located exactly as the gate locates a
    /// request (`None` for a URL the gate would refuse: not in normal form, ambiguous, or under no resource).
    pub fn resource_for_url(&self, url: &str) -> Option<&ResourceConfig> {
        let headers = ForwardedHeaders {
            original_url: HeaderField::One(url.as_bytes()),
            original_method: HeaderField::One(b"GET"),
            ..ForwardedHeaders::default()
        };
        let req = ForwardedRequest::parse(&headers, false).ok()?;
        check_path(req.path).ok()?;
        let at = resource_at(&self.resource_index, &req.origin(), req.path).ok()?;
        self.config.resources.get(at)
    }

    /// The token, the access policy and the per-tool scopes for a request to `resource`; a refusal of a valid
    /// token names whose it is.
    async fn verify_call(
        &self,
        authorization: Option<&str>,
        calls: &ToolCalls,
        resource: &ResourceConfig,
    ) -> Result<Principal, (VerifyRejection, Option<Principal>)> {
        let principal = self
            .verify_with_reload(authorization, resource)
            .await
            .map_err(|r| (r, None))?;
        let reject = |kind, description, scope| VerifyRejection {
            kind,
            description,
            scope,
            resource_metadata: self.resource_index.metadata_url(resource),
        };
        let admitted = |policy: &crate::AccessPolicy| {
            policy.allows(
                principal.subject(),
                principal.username(),
                principal.email(),
                principal.groups(),
            )
        };
        // The server-wide policy too: after an edit and a restart, a token issued before it ends here, not an hour
        // later.
        if !(admitted(&self.config.policy) && admitted(&resource.policy)) {
            return Err((
                reject(
                    RejectionKind::AccessDenied,
                    "this user may not access this resource",
                    None,
                ),
                Some(principal),
            ));
        }
        let needed = tool_scopes_needed(resource, calls);
        if !needed.iter().all(|s| principal.scope().contains(s)) {
            let mut scope: Vec<String> = principal.scope().iter().map(str::to_owned).collect();
            for s in needed {
                if !scope.contains(&s) {
                    scope.push(s);
                }
            }
            return Err((
                reject(
                    RejectionKind::InsufficientScope,
                    "the access token lacks a scope this operation requires",
                    Some(scope.join(" ")),
                ),
                Some(principal),
            ));
        }
        Ok(principal)
    }

    /// [`Self::verify`], but a token signed by a key this instance has not loaded yet (another instance sharing the
    /// store rotated) gets one key reload, rate-limited, before it is rejected.
    async fn verify_with_reload(
        &self,
        authorization: Option<&str>,
        resource: &ResourceConfig,
    ) -> Result<Principal, VerifyRejection> {
        match self.verify(authorization, resource) {
            Err(r) if r.kind == RejectionKind::InvalidToken => {
                let token = bearer_token(authorization).unwrap_or_default();
                if self.reload_for_unknown_kid(token).await {
                    self.verify(authorization, resource)
                } else {
                    Err(r)
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_input_says_whether_a_token_came_but_not_which() {
        let input = GateInput {
            authorization: HeaderField::One(b"Bearer token-value-1"),
            origin: HeaderField::One(b"https://app.example"),
            ..GateInput::default()
        };
        let shown = format!("{input:?}");
        let token_bytes = format!("{:?}", b"Bearer token-value-1");
        assert!(!shown.contains("token-value-1"), "{shown}");
        assert!(!shown.contains(&token_bytes), "{shown}");
        assert!(shown.contains("authorization: One([redacted])"), "{shown}");
        let origin_bytes = format!("{:?}", b"https://app.example");
        assert!(shown.contains(&origin_bytes), "{shown}");
    }
}
