//! The HTTP side: the MCP Streamable HTTP endpoint (`POST`, `GET` stream, `DELETE` at `--path`, sessions by
//! `Mcp-Session-Id`) and `GET /health`.
//!
//! Every request to the endpoint passes `admit` first, which does what the MCP SDKs cannot know to do behind
//! a gate: the `Origin` check (`--allow-origin`), identity headers believed only from `--trusted-proxy` (403
//! otherwise) and a request without a user id refused (401) unless `--allow-anonymous` (per session only).
//! Then the body is read up to `--max-message-bytes` (413 beyond). Refusals carry a JSON-RPC error body so that SDK clients show the
//! reason. A request's answer comes as an SSE stream when the client accepts one (so progress and the server's
//! own requests can come first), else as JSON.
//!
//! # The protocol version of a user's later sessions
//! Per user, one process serves all of a user's sessions, and it was initialized once, by the session that
//! started it; every later `initialize` is answered with that child's own `InitializeResult`, so with the
//! `protocolVersion` the child negotiated then, whatever version the new client asked for. MCP's negotiation
//! allows exactly this (a server answers with a version it supports; a client that does not support it
//! disconnects), so a client that asked for an older version may disconnect. Where clients of different
//! protocol versions must work for one user, run `--process-per session`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cli::ProcessPer;

use super::child::{Gone, Reply};
use super::config::{Config, owner_file_name};
use super::identity::{Identity, Refused, identify};
use super::jsonrpc::{self, Kind, http_error};
use super::pool::{AcquireError, Lease, Pool};
use super::session::{RequestInFlight, Session, Sessions, TooManySessions};

const SESSION_HEADER: &str = "mcp-session-id";
/// Sent by clients after `initialize` (MCP 2025-06-18 and later); an unknown value is refused (400), as the
/// specification asks of servers.
const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// The MCP protocol versions that exist.
const KNOWN_PROTOCOL_VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];
/// How often an SSE stream with nothing to say sends a comment line.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// What every handler shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Arc<Pool>,
    pub sessions: Arc<Sessions>,
    /// Requests in flight (`--max-requests-in-flight`, `--max-requests-per-owner`).
    pub in_flight: Arc<InFlight>,
    /// Cancelled at shutdown: ends the open `GET` streams.
    pub shutdown: CancellationToken,
}

/// Requests in flight, in all and per process owner.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<(usize, HashMap<String, usize>)>,
}

/// One request in flight, counted until dropped.
#[derive(Debug)]
pub struct InFlightSlot {
    in_flight: Arc<InFlight>,
    owner: String,
}

impl InFlight {
    /// Counts a request of `owner`, or says which limit refuses it.
    #[allow(clippy::result_large_err)]
    fn enter(
        self: &Arc<Self>,
        config: &Config,
        owner: &str,
        id: &Value,
    ) -> Result<InFlightSlot, Response> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per_owner) = &mut *counts;
        let mine = per_owner.get(owner).copied().unwrap_or(0);
        let refusal = if mine >= config.max_requests_per_owner {
            format!(
                "{} of your requests are in flight (--max-requests-per-owner); try again later",
                config.max_requests_per_owner
            )
        } else if *total >= config.max_requests_in_flight {
            format!(
                "{} requests are in flight (--max-requests-in-flight); try again later",
                config.max_requests_in_flight
            )
        } else {
            *total += 1;
            per_owner.insert(owner.to_owned(), mine + 1);
            return Ok(InFlightSlot {
                in_flight: Arc::clone(self),
                owner: owner.to_owned(),
            });
        };
        Err(http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id.clone(),
            jsonrpc::LIMIT,
            &refusal,
        ))
    }
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        let mut counts = self
            .in_flight
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (total, per_owner) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(mine) = per_owner.get_mut(&self.owner) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                per_owner.remove(&self.owner);
            }
        }
    }
}

/// The route table.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            &state.config.path,
            post(post_mcp).get(get_mcp).delete(delete_mcp),
        )
        .route("/health", get(health))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({"status": "ok", "processes": state.pool.processes(), "sessions": state.sessions.len()}))
        .into_response()
}

/// Origin, trusted identity, and (per user) a user id.
#[allow(clippy::result_large_err)]
fn admit(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> Result<Identity, Response> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        if !config
            .allow_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            tracing::warn!(peer = %peer.ip(), "request with an Origin not in --allow-origin: refused");
            return Err(http_error(
                StatusCode::FORBIDDEN,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                "origin not allowed: add it with --allow-origin",
            ));
        }
    }
    if let Some(version) = headers.get(PROTOCOL_VERSION_HEADER)
        && !KNOWN_PROTOCOL_VERSIONS
            .iter()
            .any(|known| version.as_bytes() == known.as_bytes())
    {
        return Err(http_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            &format!(
                "unsupported MCP-Protocol-Version: known versions are {}",
                KNOWN_PROTOCOL_VERSIONS.join(", ")
            ),
        ));
    }
    let identity = identify(config, peer.ip(), headers).map_err(|refused| match refused {
        Refused::UntrustedPeer => {
            tracing::warn!(peer = %peer.ip(), "identity headers from an address outside --trusted-proxy: refused");
            http_error(
                StatusCode::FORBIDDEN,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                "identity headers from an untrusted address: only the proxies in --trusted-proxy may send them",
            )
        }
        Refused::Repeated(name) => {
            tracing::warn!(peer = %peer.ip(), header = %name, "identity header sent more than once: refused");
            http_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                &format!("identity header {name} sent more than once: the gate sets exactly one"),
            )
        }
    })?;
    if identity.user_id.is_none() && !config.allow_anonymous {
        return Err(http_error(
            StatusCode::UNAUTHORIZED,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "no user identity: put mcp-bridge behind the gate",
        ));
    }
    Ok(identity)
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"))
}

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/json") || value.contains("*/*"))
}

/// The session the request names, if it is the caller's.
#[allow(clippy::result_large_err)]
fn session_of(
    state: &AppState,
    headers: &HeaderMap,
    identity: &Identity,
) -> Result<Option<Arc<Session>>, Response> {
    let Some(id) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    match id
        .to_str()
        .ok()
        .and_then(|id| state.sessions.get(id, identity))
    {
        Some(session) => {
            session.touch();
            Ok(Some(session))
        }
        None => Err(http_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            jsonrpc::UNKNOWN_SESSION,
            "unknown session (it may have expired): initialize a new one",
        )),
    }
}

async fn post_mcp(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let identity = match admit(&state.config, peer, &headers) {
        Ok(identity) => identity,
        Err(refusal) => return refusal,
    };
    let max = state.config.max_message_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let too_large = || {
        http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            &format!("message over --max-message-bytes ({max} bytes)"),
        )
    };
    if declared.is_some_and(|length| length > max as u64) {
        return too_large();
    }
    let bytes = match read_body(body, max).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Read(error)) => {
            tracing::debug!(peer = %peer.ip(), "request body could not be read: {error}");
            return http_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                "the request body could not be read",
            );
        }
    };
    let Ok(message) = serde_json::from_slice::<Value>(&bytes) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::PARSE_ERROR,
            "parse error: the body is not JSON",
        );
    };
    if message.is_array() {
        return http_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "JSON-RPC batches are not supported",
        );
    }
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return http_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "not a JSON-RPC 2.0 message: \"jsonrpc\": \"2.0\" is missing",
        );
    }
    let session = match session_of(&state, &headers, &identity) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let sse = accepts_sse(&headers);
    match (session, jsonrpc::classify(&message)) {
        (None, Kind::Request { id, method }) if method == "initialize" => {
            initialize(&state, identity, id, &message, !accepts_json(&headers)).await
        }
        (None, Kind::Request { id, .. }) => http_error(
            StatusCode::BAD_REQUEST,
            id,
            jsonrpc::INVALID_REQUEST,
            "no Mcp-Session-Id: send initialize first",
        ),
        (None, _) => http_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "no Mcp-Session-Id: send initialize first",
        ),
        (Some(_), Kind::Request { id, method }) if method == "initialize" => http_error(
            StatusCode::BAD_REQUEST,
            id,
            jsonrpc::INVALID_REQUEST,
            "this session is already initialized",
        ),
        (Some(session), Kind::Request { id, method }) => {
            request(&state, session, id, &method, message, sse).await
        }
        (Some(session), Kind::Notification { method }) => {
            notification(&state, &session, &method, message).await;
            StatusCode::ACCEPTED.into_response()
        }
        (Some(session), Kind::Response { .. }) => {
            if let Some(child) = state.pool.live(&session.owner) {
                let _ = child.respond(&session.id, message).await;
            }
            StatusCode::ACCEPTED.into_response()
        }
        (Some(_), Kind::Invalid) => http_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "not a JSON-RPC 2.0 message",
        ),
    }
}

enum BodyError {
    /// Over `--max-message-bytes`: 413.
    TooLarge,
    /// The body itself was broken (bad chunked encoding, connection cut): 400.
    Read(axum::Error),
}

/// The body, at most `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        if bytes.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn acquire_error(id: Value, error: AcquireError) -> Response {
    match error {
        AcquireError::AtCapacity(max) => http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            jsonrpc::LIMIT,
            &format!(
                "all {max} MCP server processes (--max-processes) are in use; try again later"
            ),
        ),
        AcquireError::Start(problem) => {
            http_error(StatusCode::BAD_GATEWAY, id, jsonrpc::SERVER_ERROR, &problem)
        }
    }
}

/// Opens a session and answers with the child's own `InitializeResult` (starting the child if the owner has
/// none).
async fn initialize(
    state: &AppState,
    identity: Identity,
    id: Value,
    message: &Value,
    sse: bool,
) -> Response {
    let owner = match state.config.process_per {
        ProcessPer::User => identity
            .user_id
            .as_ref()
            .map(|user| owner_file_name(user.as_bytes())),
        ProcessPer::Session => None,
    };
    let params = match init_params(message) {
        Ok(params) => params,
        Err(problem) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                id,
                jsonrpc::INVALID_PARAMS,
                &problem,
            );
        }
    };
    let session = match state.sessions.open(identity, owner, params) {
        Ok(session) => session,
        Err(too_many) => {
            let problem = match too_many {
                TooManySessions::InAll => format!(
                    "too many sessions (--max-sessions {}); try again later",
                    state.config.max_sessions
                ),
                TooManySessions::ForUser => format!(
                    "you have {} sessions open (--max-sessions-per-user): close one (DELETE) or try again later",
                    state.config.max_sessions_per_user
                ),
            };
            return http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                jsonrpc::LIMIT,
                &problem,
            );
        }
    };
    // Until the answer is ready, the session is only tentative: a failed start, or the client going away
    // mid-start (this future dropped), closes it again.
    let opening = Opening {
        sessions: &state.sessions,
        id: Some(session.id.clone()),
    };
    let lease = match state.pool.acquire(&session).await {
        Ok(lease) => lease,
        Err(error) => return acquire_error(id, error),
    };
    let Some(result) = lease.child.init_result().cloned() else {
        return http_error(
            StatusCode::BAD_GATEWAY,
            id,
            jsonrpc::SERVER_ERROR,
            "the MCP server is not initialized",
        );
    };
    drop(lease);
    opening.keep();
    tracing::info!(session = %session.id, user = %session.identity.user_for_log(), "session opened");
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let mut response = if sse {
        sse_response(single(answer))
    } else {
        Json(answer).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&session.id) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

/// Largest `initialize` params the bridge keeps for a session (it replays them when the process restarts).
const MAX_INIT_PARAMS: usize = 64 * 1024;

/// The part of `initialize`'s params a session keeps: `protocolVersion`, `capabilities` and `clientInfo`,
/// checked for shape (before any process starts) and bounded in size.
fn init_params(message: &Value) -> Result<Value, String> {
    let Some(params) = message.get("params").and_then(Value::as_object) else {
        return Err(
            "initialize needs params (protocolVersion, capabilities, clientInfo)".to_owned(),
        );
    };
    if !params.get("protocolVersion").is_some_and(Value::is_string) {
        return Err("initialize params: protocolVersion must be a string".to_owned());
    }
    for name in ["capabilities", "clientInfo"] {
        if params.get(name).is_some_and(|value| !value.is_object()) {
            return Err(format!("initialize params: {name} must be an object"));
        }
    }
    let kept: serde_json::Map<String, Value> = params
        .iter()
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "protocolVersion" | "capabilities" | "clientInfo"
            )
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let kept = Value::Object(kept);
    if kept.to_string().len() > MAX_INIT_PARAMS {
        return Err(format!(
            "initialize params over {MAX_INIT_PARAMS} bytes: too large to keep for the session"
        ));
    }
    Ok(kept)
}

/// A session being opened: removed again when dropped before [`Opening::keep`].
struct Opening<'a> {
    sessions: &'a Sessions,
    id: Option<String>,
}

impl Opening<'_> {
    fn keep(mut self) {
        self.id = None;
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.sessions.remove(&id);
        }
    }
}

fn single(message: Value) -> mpsc::Receiver<Value> {
    let (sender, receiver) = mpsc::channel(1);
    let _ = sender.try_send(message);
    receiver
}

/// Forwards a request to the owner's child and streams what comes back.
async fn request(
    state: &AppState,
    session: Arc<Session>,
    id: Value,
    method: &str,
    message: Value,
    sse: bool,
) -> Response {
    let Some(request_id) = session.begin(&id) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            id,
            jsonrpc::INVALID_REQUEST,
            "a request with this id is already in flight in this session",
        );
    };
    let slot = match state.in_flight.enter(&state.config, &session.owner, &id) {
        Ok(slot) => slot,
        Err(refusal) => return refusal,
    };
    let lease = match state.pool.acquire(&session).await {
        Ok(lease) => lease,
        Err(error) => return acquire_error(id, error),
    };
    let (related, related_rx) = if sse {
        let (sender, receiver) = mpsc::channel(64);
        (Some(sender), Some(receiver))
    } else {
        (None, None)
    };
    let (child_id, reply) = match lease.child.request(&session.id, message, related).await {
        Ok(forwarded) => forwarded,
        Err(gone) => {
            let problem = match gone {
                Gone::Exited => {
                    "the MCP server process went away; it will be restarted on the next request"
                }
                Gone::NotReading => {
                    "the MCP server did not read its input within --request-timeout and was stopped; it will be restarted on the next request"
                }
            };
            return http_error(StatusCode::BAD_GATEWAY, id, jsonrpc::SERVER_ERROR, problem);
        }
    };
    tracing::debug!(session = %session.id, pid = lease.child.pid, method, "request forwarded");
    request_id.forwarded(child_id);
    let (out, out_rx) = mpsc::channel(64);
    let wait = Wait {
        request_id: Some(request_id),
        _slot: slot,
        lease,
        session,
        client_id: id.clone(),
        child_id,
        reply,
        related: related_rx,
        out,
    };
    tokio::spawn(wait.run(state.config.request_timeout));
    if sse {
        return sse_response(out_rx);
    }
    let mut out_rx = out_rx;
    match out_rx.recv().await {
        Some(answer) => Json(answer).into_response(),
        None => http_error(
            StatusCode::BAD_GATEWAY,
            id,
            jsonrpc::SERVER_ERROR,
            "no answer from the MCP server",
        ),
    }
}

/// Waits for a request's answer (and passes on what the child sends about it meanwhile), or its timeout, or the
/// client going away; the lease (and so the in-flight count) ends with it.
struct Wait {
    /// Ends (frees the client's id for reuse) before the answer is sent.
    request_id: Option<RequestInFlight>,
    _slot: InFlightSlot,
    lease: Lease,
    session: Arc<Session>,
    client_id: Value,
    child_id: u64,
    reply: oneshot::Receiver<Reply>,
    related: Option<mpsc::Receiver<Value>>,
    out: mpsc::Sender<Value>,
}

impl Wait {
    async fn run(mut self, timeout: std::time::Duration) {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let child = Arc::clone(&self.lease.child);
        let answer = loop {
            tokio::select! {
                reply = &mut self.reply => break Some(self.answer(reply)),
                // Never an `.await` on the client here: a client that does not read its stream must not hold
                // the request past its deadline. What does not fit is dropped (progress is advisory).
                extra = recv(&mut self.related) => match extra {
                    Some(extra) => match self.out.try_send(extra) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => tracing::debug!(
                            session = %self.session.id, "the client does not read its stream: message dropped"),
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            child.cancel(self.child_id, "the client went away");
                            break None;
                        }
                    },
                    None => self.related = None,
                },
                () = &mut deadline => {
                    child.cancel(self.child_id, "request timed out");
                    break Some(jsonrpc::error(self.client_id.clone(), jsonrpc::TIMEOUT, &format!(
                        "the MCP server did not answer within --request-timeout ({})",
                        humantime::format_duration(timeout))));
                }
                () = self.out.closed() => {
                    child.cancel(self.child_id, "the client went away");
                    break None;
                }
            }
        };
        drop(self.request_id.take());
        if let Some(answer) = answer {
            if let Some(related) = self.related.as_mut() {
                while let Ok(extra) = related.try_recv() {
                    let _ = self.out.try_send(extra);
                }
            }
            // The answer itself is worth a wait, but a bounded one.
            let _ = self.out.send_timeout(answer, timeout).await;
        }
    }

    fn answer(&self, reply: Result<Reply, oneshot::error::RecvError>) -> Value {
        match reply {
            Ok(Reply::Message(mut message)) => {
                if let Some(object) = message.as_object_mut() {
                    object.insert("id".to_owned(), self.client_id.clone());
                }
                message
            }
            Ok(Reply::Failed { code, message }) => {
                jsonrpc::error(self.client_id.clone(), code, &message)
            }
            Err(_) => jsonrpc::error(
                self.client_id.clone(),
                jsonrpc::SERVER_ERROR,
                "the MCP server process went away; it will be restarted on the next request",
            ),
        }
    }
}

async fn recv(receiver: &mut Option<mpsc::Receiver<Value>>) -> Option<Value> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn notification(state: &AppState, session: &Session, method: &str, message: Value) {
    match method {
        // The child was initialized by the bridge (once, for all the owner's sessions).
        "notifications/initialized" => {}
        "notifications/cancelled" => {
            let child_id = message
                .pointer("/params/requestId")
                .and_then(|id| session.child_id_of(id));
            if let (Some(child_id), Some(child)) = (child_id, state.pool.live(&session.owner)) {
                let reason = message
                    .pointer("/params/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("cancelled");
                child.cancel(child_id, reason);
            }
        }
        _ => {
            if let Some(child) = state.pool.live(&session.owner) {
                let _ = child.send(message).await;
            }
        }
    }
}

fn sse_response(messages: mpsc::Receiver<Value>) -> Response {
    sse_body(Body::from_stream(sse_stream(messages)))
}

/// The messages as SSE events, with a comment line every [`KEEP_ALIVE`] so that proxies (nginx's
/// `proxy_read_timeout` is 60 s by default) do not cut a long tool call or an idle `GET` stream.
fn sse_stream(
    messages: mpsc::Receiver<Value>,
) -> impl futures_util::Stream<Item = Result<String, Infallible>> {
    let ticks = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    futures_util::stream::unfold((messages, ticks), |(mut messages, mut ticks)| async move {
        let chunk = tokio::select! {
            message = messages.recv() => format!("event: message\ndata: {}\n\n", message?),
            _ = ticks.tick() => ": keep-alive\n\n".to_owned(),
        };
        Some((Ok(chunk), (messages, ticks)))
    })
}

fn sse_body(body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The session's stream of server-initiated messages not tied to a request.
async fn get_mcp(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let identity = match admit(&state.config, peer, &headers) {
        Ok(identity) => identity,
        Err(refusal) => return refusal,
    };
    let session = match session_of(&state, &headers, &identity) {
        Ok(Some(session)) => session,
        Ok(None) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                "no Mcp-Session-Id",
            );
        }
        Err(refusal) => return refusal,
    };
    if !accepts_sse(&headers) {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "the GET stream is text/event-stream",
        );
    }
    let (sender, receiver) = mpsc::channel(64);
    session.set_stream(sender);
    let shutdown = state.shutdown.clone().cancelled_owned();
    let stream = sse_stream(receiver).take_until(shutdown);
    sse_body(Body::from_stream(stream))
}

/// Ends a session; per session, its process too.
async fn delete_mcp(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let identity = match admit(&state.config, peer, &headers) {
        Ok(identity) => identity,
        Err(refusal) => return refusal,
    };
    match session_of(&state, &headers, &identity) {
        Ok(Some(session)) => {
            state.sessions.remove(&session.id);
            if state.config.process_per == ProcessPer::Session {
                state.pool.stop_owner(&session.owner);
            }
            tracing::info!(session = %session.id, "session deleted");
            StatusCode::OK.into_response()
        }
        Ok(None) => http_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "no Mcp-Session-Id",
        ),
        Err(refusal) => refusal,
    }
}
