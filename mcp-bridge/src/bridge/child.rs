//! One child process: the stdio MCP server, spawned and spoken to as a JSON-RPC peer over its stdin and stdout.
//!
//! # Why raw JSON-RPC and not rmcp's typed client
//! The bridge must forward every message (custom methods, `_meta`, fields newer than our SDK) and answer each
//! session's `initialize` with the child's own result. rmcp's typed layer parses messages into its model and
//! serializes them again, so anything it does not model is lost or refused, and its server side negotiates the
//! protocol itself (rmcp 3.11 serves `2026-07-28` statelessly, which has no session to own a process). So the
//! bridge multiplexes raw messages instead: it rewrites only what must be unique at the child — request ids
//! (a counter per child), progress tokens, and the ids of the child's own requests to a client — and keeps
//! every other byte of meaning as the client or the child wrote it.
//!
//! # Lifecycle
//! The child is exec'd directly (no shell) with a cleared environment plus the allow-list
//! ([`Config::child_env`]), in its own process group so that a stop reaches whatever it spawned. Its stderr goes
//! to the log line by line (target `mcp_bridge::child`, fields `user`, `session`, `pid`). A stdout line longer
//! than `--max-message-bytes` ends the conversation: the child is stopped and treated as dead. When the child
//! dies, every request waiting on it is answered with JSON-RPC error -32000 naming the exit status; the pool
//! starts a new one on the next request. [`Child::stop`] is the graceful stop: stdin closed, then SIGTERM to the
//! group, then SIGKILL, each after `--shutdown-grace`.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, watch};

use super::config::Config;
use super::identity::Identity;
use super::jsonrpc::{self, Kind};
use super::session::Sessions;

/// Longest stderr line logged whole; the rest of a longer line is dropped.
const MAX_STDERR_LINE: usize = 4 * 1024;
/// Stderr lines logged per child per second; the rest are counted and reported as left out.
const STDERR_LINES_PER_SECOND: u32 = 100;

/// Messages waiting for the child's stdin.
const STDIN_QUEUE: usize = 8;

/// The answer to a request forwarded to the child.
#[derive(Debug)]
pub enum Reply {
    /// The child's response (its `id` still the child's).
    Message(Value),
    /// The bridge's own error: the child died or the request was cancelled.
    Failed { code: i64, message: String },
}

/// Why a message did not reach the child.
#[derive(Debug, PartialEq, Eq)]
pub enum Gone {
    /// It exited (or is being stopped).
    Exited,
    /// It did not read its stdin for `--request-timeout` with the queue full: it was stopped as hung.
    NotReading,
}

struct Pending {
    session: String,
    reply: oneshot::Sender<Reply>,
    /// Messages the child sends about this request (progress, its own requests), for the request's SSE stream.
    related: Option<mpsc::Sender<Value>>,
    /// The progress token as the client wrote it, when the bridge replaced it.
    progress: Option<(String, Value)>,
}

/// A request of the child to a client, by the id the bridge gave it.
#[derive(Debug)]
struct Outgoing {
    child_id: Value,
    session: String,
    /// When it was sent: unanswered after `--request-timeout`, it is refused to the child and forgotten.
    sent: Instant,
}

#[derive(Default)]
struct Routing {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// The bridge's progress token → the request it belongs to.
    progress: HashMap<String, u64>,
    outgoing: HashMap<String, Outgoing>,
}

impl Routing {
    /// Removes the child's request `child_id` (the child's own id for it); returns it with the bridge's id.
    fn take_outgoing(&mut self, child_id: &Value) -> Option<(String, Outgoing)> {
        let ours = self
            .outgoing
            .iter()
            .find(|(_, out)| &out.child_id == child_id)
            .map(|(ours, _)| ours.clone())?;
        self.outgoing.remove(&ours).map(|out| (ours, out))
    }

    /// Removes the child's requests sent `timeout` ago or more; returns the child's ids of them.
    fn expire_outgoing(&mut self, timeout: Duration) -> Vec<Value> {
        let expired: Vec<String> = self
            .outgoing
            .iter()
            .filter(|(_, out)| out.sent.elapsed() >= timeout)
            .map(|(ours, _)| ours.clone())
            .collect();
        expired
            .iter()
            .filter_map(|ours| self.outgoing.remove(ours))
            .map(|out| out.child_id)
            .collect()
    }
}

/// A running stdio MCP server.
pub struct Child {
    pub pid: u32,
    /// The pool's key: the encoded user id, or the session id.
    pub owner: String,
    user: String,
    session: Option<String>,
    stdin: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    routing: Mutex<Routing>,
    exit: watch::Receiver<Option<String>>,
    dead: AtomicBool,
    /// Set by [`Child::stop`]: the exit is ours, not a crash.
    stopping: AtomicBool,
    init_result: OnceLock<Value>,
    pub in_flight: AtomicUsize,
    last_active: Mutex<Instant>,
    sessions: Arc<Sessions>,
    grace: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Child {
    /// Starts the command for `owner` (not yet initialized: see [`Child::initialize`]).
    ///
    /// # Errors
    /// The OS's error when the program cannot be started.
    pub fn spawn(
        config: &Config,
        owner: &str,
        identity: &Identity,
        session: Option<&str>,
        sessions: Arc<Sessions>,
    ) -> std::io::Result<Arc<Child>> {
        let mut command = tokio::process::Command::new(&config.program);
        command
            .args(&config.args)
            .env_clear()
            .envs(config.child_env(owner, identity, session))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // A backstop only (the process is dropped when the runtime drops the task waiting for it, e.g. at a
            // shutdown cut short): stops go through `Child::stop`.
            .kill_on_drop(true);
        let mut process = command.spawn()?;
        let pid = process.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err(std::io::Error::other("the child's pipes were not set up"));
        };
        // Small: the bound that matters is the requests in flight; a child that stops reading fills this fast
        // and its requests then time out rather than piling up messages here.
        let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
        let (exit_tx, exit_rx) = watch::channel(None);
        let child = Arc::new(Child {
            pid,
            owner: owner.to_owned(),
            user: identity.user_for_log(),
            session: session.map(str::to_owned),
            stdin: Mutex::new(Some(stdin_tx)),
            routing: Mutex::new(Routing::default()),
            exit: exit_rx,
            dead: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            init_result: OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            sessions,
            grace: config.shutdown_grace,
            request_timeout: config.request_timeout,
        });
        tracing::info!(user = %child.user, session = child.session.as_deref(), pid, "MCP server process started");
        tokio::spawn(write_stdin(stdin, stdin_rx));
        tokio::spawn(log_stderr(
            stderr,
            child.user.clone(),
            child.session.clone(),
            pid,
        ));
        tokio::spawn(wait_exit(process, exit_tx, pid));
        tokio::spawn(Arc::clone(&child).read_stdout(stdout, config.max_message_bytes));
        Ok(child)
    }

    /// Whether the child still runs and speaks.
    pub fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst) && self.exit.borrow().is_none()
    }

    /// Whether the process has exited (and been reaped).
    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// The child's `InitializeResult`, once [`Child::initialize`] succeeded.
    pub fn init_result(&self) -> Option<&Value> {
        self.init_result.get()
    }

    pub fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        lock(&self.last_active).elapsed()
    }

    /// The `initialize` handshake with the client info `params`, then `notifications/initialized`.
    ///
    /// # Errors
    /// A sentence saying why the child is not usable (error answer, silence within `timeout`, death).
    pub async fn initialize(&self, params: &Value, timeout: Duration) -> Result<Value, String> {
        let request = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params});
        let (_, reply) = self
            .request("", request, None)
            .await
            .map_err(|_| "it does not read its stdin".to_owned())?;
        let answer = match tokio::time::timeout(timeout, reply).await {
            Err(_) => {
                return Err(format!(
                    "it did not answer initialize within --start-timeout ({})",
                    humantime::format_duration(timeout)
                ));
            }
            Ok(Err(_)) => return Err("it went away during initialize".to_owned()),
            Ok(Ok(Reply::Failed { message, .. })) => return Err(message),
            Ok(Ok(Reply::Message(message))) => message,
        };
        let Some(result) = answer.get("result").cloned() else {
            let error = answer
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no result");
            return Err(format!("it refused initialize: {error}"));
        };
        let _ = self.init_result.set(result.clone());
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .map_err(|_| "it does not read its stdin after initialize".to_owned())?;
        Ok(result)
    }

    /// Forwards a request of session `session`: gives it the next id at the child (and a bridge progress token
    /// when it has one) and returns that id and where the answer will come.
    ///
    /// # Errors
    /// [`Gone`] when the child no longer reads.
    pub async fn request(
        &self,
        session: &str,
        mut message: Value,
        related: Option<mpsc::Sender<Value>>,
    ) -> Result<(u64, oneshot::Receiver<Reply>), Gone> {
        let (reply, receiver) = oneshot::channel();
        let id = {
            let mut routing = lock(&self.routing);
            routing.next_id += 1;
            let id = routing.next_id;
            if let Some(object) = message.as_object_mut() {
                object.insert("id".to_owned(), json!(id));
            }
            let mut progress = None;
            if let Some(token) = message.pointer_mut("/params/_meta/progressToken") {
                let ours = format!("bridge-progress-{id}");
                progress = Some((
                    ours.clone(),
                    std::mem::replace(token, Value::String(ours.clone())),
                ));
                routing.progress.insert(ours, id);
            }
            routing.pending.insert(
                id,
                Pending {
                    session: session.to_owned(),
                    reply,
                    related,
                    progress,
                },
            );
            id
        };
        if let Err(gone) = self.send(message).await {
            self.forget(id);
            return Err(gone);
        }
        Ok((id, receiver))
    }

    /// Drops the request `id` and tells the child it was cancelled (`notifications/cancelled`).
    pub fn cancel(&self, id: u64, reason: &str) {
        if let Some(pending) = self.forget(id) {
            let _ = pending.reply.send(Reply::Failed {
                code: -32800,
                message: "request cancelled".to_owned(),
            });
            let notification = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": id, "reason": reason}});
            if let Some(stdin) = lock(&self.stdin).as_ref() {
                let _ = stdin.try_send(line(&notification));
            }
        }
    }

    fn forget(&self, id: u64) -> Option<Pending> {
        let mut routing = lock(&self.routing);
        let pending = routing.pending.remove(&id)?;
        if let Some((ours, _)) = &pending.progress {
            routing.progress.remove(ours);
        }
        Some(pending)
    }

    /// Forwards a client's notification as it is.
    ///
    /// # Errors
    /// [`Gone`] when the child no longer reads.
    /// Waits at most `--request-timeout` for room in the stdin queue: a child that stopped reading is hung, and
    /// is stopped rather than left holding its callers.
    pub async fn send(&self, message: Value) -> Result<(), Gone> {
        let stdin = lock(&self.stdin).clone().ok_or(Gone::Exited)?;
        match stdin
            .send_timeout(line(&message), self.request_timeout)
            .await
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Gone::Exited),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::warn!(user = %self.user, session = self.session.as_deref(), pid = self.pid,
                    "MCP server did not read its stdin within --request-timeout: stopping it");
                self.dead.store(true, Ordering::SeqCst);
                drop(lock(&self.stdin).take());
                self.signal(Signal::KILL);
                Err(Gone::NotReading)
            }
        }
    }

    /// Forwards a client's response to one of the child's requests, if that request went to `session`.
    pub async fn respond(&self, session: &str, mut message: Value) -> Result<(), Gone> {
        let ours = message.get("id").and_then(Value::as_str).map(str::to_owned);
        let outgoing = {
            let mut routing = lock(&self.routing);
            match ours {
                Some(ours)
                    if routing
                        .outgoing
                        .get(&ours)
                        .is_some_and(|out| out.session == session) =>
                {
                    routing.outgoing.remove(&ours)
                }
                _ => None,
            }
        };
        let Some(outgoing) = outgoing else {
            tracing::debug!(session, "response to no request of the MCP server: dropped");
            return Ok(());
        };
        if let Some(object) = message.as_object_mut() {
            object.insert("id".to_owned(), outgoing.child_id);
        }
        self.send(message).await
    }

    /// The graceful stop: stdin closed, then SIGTERM to the process group, then SIGKILL, each after the grace.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.dead.store(true, Ordering::SeqCst);
        drop(lock(&self.stdin).take());
        if self.wait_exit(self.grace).await {
            return;
        }
        tracing::info!(user = %self.user, session = self.session.as_deref(), pid = self.pid,
            "MCP server still running after its stdin closed: SIGTERM");
        self.signal(Signal::TERM);
        if self.wait_exit(self.grace).await {
            return;
        }
        tracing::warn!(user = %self.user, session = self.session.as_deref(), pid = self.pid,
            "MCP server still running after SIGTERM: SIGKILL");
        self.signal(Signal::KILL);
        self.wait_exit(self.grace).await;
    }

    async fn wait_exit(&self, grace: Duration) -> bool {
        let mut exit = self.exit.clone();
        matches!(
            tokio::time::timeout(grace, exit.wait_for(Option::is_some)).await,
            Ok(Ok(_))
        )
    }

    fn signal(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }

    async fn read_stdout(self: Arc<Self>, stdout: ChildStdout, max: usize) {
        let mut reader = BufReader::new(stdout);
        let mut buffer = Vec::new();
        let end = loop {
            buffer.clear();
            match read_line(&mut reader, &mut buffer, max, false).await {
                Ok(Line::Complete) => self.on_line(&buffer),
                Ok(Line::End) => break None,
                Ok(Line::TooLong) => {
                    break Some(format!(
                        "sent a message over --max-message-bytes ({max} bytes)"
                    ));
                }
                Err(error) => break Some(format!("could not be read ({error})")),
            }
        };
        self.dead.store(true, Ordering::SeqCst);
        drop(lock(&self.stdin).take());
        if let Some(problem) = &end {
            tracing::warn!(user = %self.user, session = self.session.as_deref(), pid = self.pid,
                "MCP server {problem}: stopping it");
            self.signal(Signal::TERM);
        }
        if !self.wait_exit(self.grace).await {
            self.signal(Signal::KILL);
            self.wait_exit(self.grace).await;
        }
        let status = self
            .exit
            .borrow()
            .clone()
            .unwrap_or_else(|| "did not exit".to_owned());
        let message = match end {
            Some(problem) => format!(
                "the MCP server process {problem} and was stopped ({status}); it will be restarted on the next request"
            ),
            None => {
                format!("the MCP server process {status}; it will be restarted on the next request")
            }
        };
        if self.stopping.load(Ordering::SeqCst) {
            tracing::info!(user = %self.user, session = self.session.as_deref(), pid = self.pid,
                "MCP server process stopped ({status})");
        } else {
            tracing::warn!(user = %self.user, session = self.session.as_deref(), pid = self.pid, "{message}");
        }
        let pending: Vec<Pending> = {
            let mut routing = lock(&self.routing);
            routing.progress.clear();
            routing.outgoing.clear();
            routing
                .pending
                .drain()
                .map(|(_, pending)| pending)
                .collect()
        };
        for pending in pending {
            let _ = pending.reply.send(Reply::Failed {
                code: jsonrpc::SERVER_ERROR,
                message: message.clone(),
            });
        }
    }

    /// Routes one line of the child's stdout.
    fn on_line(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Ok(mut message) = serde_json::from_slice::<Value>(line) else {
            tracing::warn!(user = %self.user, pid = self.pid, bytes = line.len(),
                "MCP server wrote a line that is not JSON to stdout: ignored");
            return;
        };
        match jsonrpc::classify(&message) {
            Kind::Response { id } => {
                let pending = id.as_u64().and_then(|id| self.forget(id));
                match pending {
                    Some(pending) => {
                        let _ = pending.reply.send(Reply::Message(message));
                    }
                    None => {
                        tracing::debug!(pid = self.pid, "response to no pending request: dropped")
                    }
                }
            }
            Kind::Notification { method } => self.notification(&method, message),
            Kind::Request { id, method } => self.child_request(id, &method, &mut message),
            Kind::Invalid => tracing::warn!(
                pid = self.pid,
                "MCP server wrote an invalid JSON-RPC message: ignored"
            ),
        }
    }

    fn notification(&self, method: &str, mut message: Value) {
        if method == "notifications/progress" {
            let token = message
                .pointer("/params/progressToken")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let target = {
                let routing = lock(&self.routing);
                token
                    .and_then(|token| routing.progress.get(&token))
                    .and_then(|id| routing.pending.get(id))
                    .map(|pending| {
                        (
                            pending.session.clone(),
                            pending.related.clone(),
                            pending.progress.as_ref().map(|p| p.1.clone()),
                        )
                    })
            };
            if let Some((session, related, original)) = target {
                if let (Some(original), Some(token)) =
                    (original, message.pointer_mut("/params/progressToken"))
                {
                    *token = original;
                }
                self.deliver(&session, related.as_ref(), message);
            }
            return;
        }
        if method == "notifications/cancelled" {
            // The child cancels one of its own requests to a client, by the id it gave it; the client knows
            // that request by the bridge's id.
            let outgoing = message
                .pointer("/params/requestId")
                .and_then(|child_id| lock(&self.routing).take_outgoing(child_id));
            if let Some((ours, outgoing)) = outgoing {
                if let Some(id) = message.pointer_mut("/params/requestId") {
                    *id = Value::String(ours);
                }
                self.deliver(&outgoing.session, None, message);
            }
            return;
        }
        for session in self.sessions.of_owner(&self.owner) {
            session.push(message.clone());
        }
    }

    /// A request of the child to a client (sampling, roots, elicitation, ping): to the session with the latest
    /// request in flight (on that request's stream), else to a session with an open `GET` stream. A request
    /// that reaches no client, or that no client answers within `--request-timeout`, is answered to the child
    /// with an error, so neither the child nor the bridge waits for it forever.
    fn child_request(&self, child_id: Value, method: &str, message: &mut Value) {
        let (target, ours, expired) = {
            let mut routing = lock(&self.routing);
            let expired = routing.expire_outgoing(self.request_timeout);
            let latest = routing
                .pending
                .iter()
                .filter(|(_, pending)| !pending.session.is_empty())
                .max_by_key(|(id, _)| **id)
                .map(|(_, pending)| (pending.session.clone(), pending.related.clone()));
            let target = latest.or_else(|| {
                self.sessions
                    .of_owner(&self.owner)
                    .into_iter()
                    .find(|s| s.has_stream())
                    .map(|s| (s.id.clone(), None))
            });
            routing.next_id += 1;
            let ours = format!("bridge-{}", routing.next_id);
            if let Some((session, _)) = &target {
                routing.outgoing.insert(
                    ours.clone(),
                    Outgoing {
                        child_id: child_id.clone(),
                        session: session.clone(),
                        sent: Instant::now(),
                    },
                );
            }
            (target, ours, expired)
        };
        for child_id in expired {
            self.refuse(
                child_id,
                "no client answered this request within --request-timeout",
            );
        }
        let Some((session, related)) = target else {
            tracing::debug!(
                pid = self.pid,
                method,
                "MCP server request with no client to ask: refused"
            );
            self.refuse(child_id, "no client connected to answer this request");
            return;
        };
        if let Some(object) = message.as_object_mut() {
            object.insert("id".to_owned(), Value::String(ours.clone()));
        }
        if !self.deliver(&session, related.as_ref(), message.take()) {
            lock(&self.routing).outgoing.remove(&ours);
            self.refuse(
                child_id,
                "the client has no open stream to receive this request",
            );
        }
    }

    /// Answers a request of the child with an error (without waiting: a child that does not read loses it).
    fn refuse(&self, child_id: Value, reason: &str) {
        let refusal = jsonrpc::error(child_id, -32603, reason);
        if let Some(stdin) = lock(&self.stdin).as_ref() {
            let _ = stdin.try_send(line(&refusal));
        }
    }

    /// To a request's own stream if it is open, else to the session's `GET` stream; false when neither took it.
    fn deliver(
        &self,
        session: &str,
        related: Option<&mpsc::Sender<Value>>,
        message: Value,
    ) -> bool {
        let message = match related {
            Some(related) => match related.try_send(message) {
                Ok(()) => return true,
                Err(
                    mpsc::error::TrySendError::Full(message)
                    | mpsc::error::TrySendError::Closed(message),
                ) => message,
            },
            None => message,
        };
        let delivered = self
            .sessions
            .by_id(session)
            .is_some_and(|session| session.push(message));
        if !delivered {
            tracing::debug!(
                pid = self.pid,
                "message of the MCP server with no open stream: dropped"
            );
        }
        delivered
    }
}

fn line(message: &Value) -> Vec<u8> {
    let mut bytes = message.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, signal);
    }
}

async fn write_stdin(mut stdin: ChildStdin, mut lines: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = lines.recv().await {
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
    // Dropping stdin closes the pipe: the stdio convention for "exit now".
}

/// The child's stderr to the log, line by line: control characters escaped (a child must not be able to forge
/// log lines or drive a terminal), lines cut at [`MAX_STDERR_LINE`], at most [`STDERR_LINES_PER_SECOND`] a second.
async fn log_stderr(stderr: ChildStderr, user: String, session: Option<String>, pid: u32) {
    let mut reader = BufReader::new(stderr);
    let mut buffer = Vec::new();
    let mut budget = StderrBudget::new(Instant::now());
    loop {
        buffer.clear();
        let truncated = match read_line(&mut reader, &mut buffer, MAX_STDERR_LINE, true).await {
            Ok(Line::Complete) => false,
            Ok(Line::TooLong) => true,
            Ok(Line::End) | Err(_) => break,
        };
        let (log, left_out) = budget.admit(Instant::now());
        if left_out > 0 {
            tracing::warn!(target: "mcp_bridge::child", user = %user, session = session.as_deref(), pid,
                "{left_out} lines of stderr left out (over {STDERR_LINES_PER_SECOND} a second)");
        }
        if log {
            let text = escape_controls(&String::from_utf8_lossy(
                buffer.strip_suffix(b"\r").unwrap_or(&buffer),
            ));
            tracing::info!(target: "mcp_bridge::child", user = %user, session = session.as_deref(), pid, truncated,
                "{text}");
        }
    }
    let left_out = budget.left_out;
    if left_out > 0 {
        tracing::warn!(target: "mcp_bridge::child", user = %user, session = session.as_deref(), pid,
            "{left_out} lines of stderr left out (over {STDERR_LINES_PER_SECOND} a second)");
    }
}

/// Control characters as escapes (`\u{1b}`), the rest as it is.
fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_control() {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    escaped
}

/// A one-second window of stderr lines.
struct StderrBudget {
    window: Instant,
    logged: u32,
    left_out: u64,
}

impl StderrBudget {
    fn new(now: Instant) -> Self {
        StderrBudget {
            window: now,
            logged: 0,
            left_out: 0,
        }
    }

    /// Whether to log a line read at `now`, and (when a new window began) how many the last one left out.
    fn admit(&mut self, now: Instant) -> (bool, u64) {
        let mut reported = 0;
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            reported = std::mem::take(&mut self.left_out);
            self.window = now;
            self.logged = 0;
        }
        if self.logged < STDERR_LINES_PER_SECOND {
            self.logged += 1;
            (true, reported)
        } else {
            self.left_out += 1;
            (false, reported)
        }
    }
}

async fn wait_exit(
    mut process: tokio::process::Child,
    exit: watch::Sender<Option<String>>,
    pid: u32,
) {
    let description = match process.wait().await {
        Ok(status) => describe(status),
        Err(error) => format!("could not be waited for ({error})"),
    };
    // Whatever the server left behind in its process group goes with it.
    signal_group(pid, Signal::KILL);
    exit.send_replace(Some(description));
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended ({status})"),
    }
}

enum Line {
    Complete,
    End,
    TooLong,
}

/// Reads one line (without its `\n`) of at most `max` bytes. With `skip_rest`, the rest of a longer line is
/// consumed and dropped; without, reading stops there.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
    skip_rest: bool,
) -> std::io::Result<Line> {
    let mut too_long = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => Line::Complete,
            });
        }
        let (chunk, found) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(end) => (buffer.get(..end).unwrap_or_default(), true),
            None => (buffer, false),
        };
        let used = chunk.len() + usize::from(found);
        if !too_long {
            let room = max.saturating_sub(line.len());
            if chunk.len() > room {
                too_long = true;
                if !skip_rest {
                    return Ok(Line::TooLong);
                }
                line.extend_from_slice(chunk.get(..room).unwrap_or_default());
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if found {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::{
        Line, Outgoing, Routing, STDERR_LINES_PER_SECOND, StderrBudget, escape_controls, read_line,
    };

    #[test]
    fn stderr_control_characters_are_escaped() {
        assert_eq!(
            escape_controls("ok \u{1b}[31mred\rINFO forged\u{7}"),
            r"ok \u{1b}[31mred\rINFO forged\u{7}"
        );
        assert_eq!(escape_controls("plain ü text"), "plain ü text");
    }

    #[test]
    fn stderr_lines_are_rate_limited_and_the_rest_counted() {
        let start = Instant::now();
        let mut budget = StderrBudget::new(start);
        let logged = (0..STDERR_LINES_PER_SECOND + 25)
            .filter(|_| budget.admit(start).0)
            .count();
        assert_eq!(logged, STDERR_LINES_PER_SECOND as usize);
        let next_second = start + Duration::from_millis(1001);
        assert_eq!(budget.admit(next_second), (true, 25));
        assert_eq!(budget.admit(next_second), (true, 0));
    }

    fn outgoing(child_id: serde_json::Value, sent: Instant) -> Outgoing {
        Outgoing {
            child_id,
            session: "s1".to_owned(),
            sent,
        }
    }

    /// A child cancels its own request by the id it gave it (here `7`); the client knows it as `bridge-3`.
    #[test]
    fn a_childs_cancellation_finds_its_request_by_the_childs_id() {
        let mut routing = Routing::default();
        routing
            .outgoing
            .insert("bridge-3".to_owned(), outgoing(json!(7), Instant::now()));
        routing
            .outgoing
            .insert("bridge-4".to_owned(), outgoing(json!("7"), Instant::now()));
        let (ours, found) = routing.take_outgoing(&json!(7)).expect("found");
        assert_eq!(ours, "bridge-3");
        assert_eq!(found.session, "s1");
        assert!(routing.take_outgoing(&json!(7)).is_none(), "removed");
        assert!(
            routing.take_outgoing(&json!("bridge-4")).is_none(),
            "not by our id"
        );
        assert_eq!(routing.outgoing.len(), 1);
    }

    #[test]
    fn unanswered_child_requests_expire() {
        let mut routing = Routing::default();
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .expect("an instant 10 s ago");
        routing
            .outgoing
            .insert("bridge-1".to_owned(), outgoing(json!(1), long_ago));
        routing
            .outgoing
            .insert("bridge-2".to_owned(), outgoing(json!(2), Instant::now()));
        assert_eq!(routing.expire_outgoing(Duration::from_secs(5)), [json!(1)]);
        assert_eq!(routing.outgoing.len(), 1);
        assert!(routing.outgoing.contains_key("bridge-2"));
    }

    async fn lines(input: &[u8], max: usize, skip_rest: bool) -> Vec<(String, &'static str)> {
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let kind = match read_line(&mut reader, &mut line, max, skip_rest)
                .await
                .unwrap()
            {
                Line::Complete => "line",
                Line::TooLong => "too long",
                Line::End => break,
            };
            out.push((String::from_utf8(line).unwrap(), kind));
            if kind == "too long" && !skip_rest {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        assert_eq!(
            lines(b"ab\ncdef\ng", 4, false).await,
            [
                ("ab".into(), "line"),
                ("cdef".into(), "line"),
                ("g".into(), "line")
            ]
        );
        // Without skipping, reading stops at the first line over the limit (what was read of it is moot).
        let stopped = lines(b"ab\ncdefgh\nij\n", 4, false).await;
        assert_eq!(
            stopped.iter().map(|(_, kind)| *kind).collect::<Vec<_>>(),
            ["line", "too long"]
        );
        assert_eq!(
            lines(b"ab\ncdefgh\nij\n", 4, true).await,
            [
                ("ab".into(), "line"),
                ("cdef".into(), "too long"),
                ("ij".into(), "line")
            ]
        );
    }
}
