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
const MAX_STDERR_LINE: usize = 16 * 1024;

/// The answer to a request forwarded to the child.
#[derive(Debug)]
pub enum Reply {
    /// The child's response (its `id` still the child's).
    Message(Value),
    /// The bridge's own error: the child died or the request was cancelled.
    Failed { code: i64, message: String },
}

/// The child cannot take messages any more.
#[derive(Debug)]
pub struct Gone;

struct Pending {
    session: String,
    reply: oneshot::Sender<Reply>,
    /// Messages the child sends about this request (progress, its own requests), for the request's SSE stream.
    related: Option<mpsc::Sender<Value>>,
    /// The progress token as the client wrote it, when the bridge replaced it.
    progress: Option<(String, Value)>,
}

/// A request of the child to a client, by the id the bridge gave it.
struct Outgoing {
    child_id: Value,
    session: String,
}

#[derive(Default)]
struct Routing {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// The bridge's progress token → the request it belongs to.
    progress: HashMap<String, u64>,
    outgoing: HashMap<String, Outgoing>,
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
            .kill_on_drop(false);
        let mut process = command.spawn()?;
        let pid = process.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err(std::io::Error::other("the child's pipes were not set up"));
        };
        let (stdin_tx, stdin_rx) = mpsc::channel(256);
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
            .map_err(|Gone| "it closed its stdin".to_owned())?;
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
            .map_err(|Gone| "it closed its stdin after initialize".to_owned())?;
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
        if self.send(message).await.is_err() {
            self.forget(id);
            return Err(Gone);
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
    pub async fn send(&self, message: Value) -> Result<(), Gone> {
        let stdin = lock(&self.stdin).clone().ok_or(Gone)?;
        stdin.send(line(&message)).await.map_err(|_| Gone)
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
            let ours = message
                .pointer("/params/requestId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let outgoing = ours.and_then(|ours| {
                lock(&self.routing)
                    .outgoing
                    .remove(&ours)
                    .map(|out| (ours, out))
            });
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
    /// request in flight (on that request's stream), else to a session with an open `GET` stream.
    fn child_request(&self, child_id: Value, method: &str, message: &mut Value) {
        let (target, ours) = {
            let mut routing = lock(&self.routing);
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
                    },
                );
            }
            (target, ours)
        };
        let Some((session, related)) = target else {
            tracing::debug!(
                pid = self.pid,
                method,
                "MCP server request with no client to ask: refused"
            );
            let refusal = jsonrpc::error(
                child_id,
                -32603,
                "no client connected to answer this request",
            );
            if let Some(stdin) = lock(&self.stdin).as_ref() {
                let _ = stdin.try_send(line(&refusal));
            }
            return;
        };
        if let Some(object) = message.as_object_mut() {
            object.insert("id".to_owned(), Value::String(ours));
        }
        self.deliver(&session, related.as_ref(), message.take());
    }

    /// To a request's own stream if it is open, else to the session's `GET` stream.
    fn deliver(&self, session: &str, related: Option<&mpsc::Sender<Value>>, message: Value) {
        let message = match related {
            Some(related) => match related.try_send(message) {
                Ok(()) => return,
                Err(
                    mpsc::error::TrySendError::Full(message)
                    | mpsc::error::TrySendError::Closed(message),
                ) => message,
            },
            None => message,
        };
        if let Some(session) = self.sessions.by_id(session)
            && !session.push(message)
        {
            tracing::debug!(
                pid = self.pid,
                "message of the MCP server with no open stream: dropped"
            );
        }
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

async fn log_stderr(stderr: ChildStderr, user: String, session: Option<String>, pid: u32) {
    let mut reader = BufReader::new(stderr);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let truncated = match read_line(&mut reader, &mut buffer, MAX_STDERR_LINE, true).await {
            Ok(Line::Complete) => false,
            Ok(Line::TooLong) => true,
            Ok(Line::End) | Err(_) => break,
        };
        let text = String::from_utf8_lossy(buffer.strip_suffix(b"\r").unwrap_or(&buffer));
        tracing::info!(target: "mcp_bridge::child", user = %user, session = session.as_deref(), pid, truncated,
            "{text}");
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
    use super::{Line, read_line};

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
