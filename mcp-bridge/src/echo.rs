//! `mcp-bridge echo`: a diagnostic MCP server that shows what actually reaches an MCP server behind the gate.
//!
//! It serves Streamable HTTP (the default; put it where a real MCP server would sit, behind the proxy and the
//! gate) or, with `--stdio`, MCP over stdin/stdout (so the bridge can run it as a child, and its tools then report
//! what the bridge hands a child). Its tools, and why each exists:
//!
//! - `echo {message}`: the message back. Proves the whole path (proxy, gate, bridge) carries a tool call and its
//!   answer unchanged.
//! - `printHeader {name}`: one request header's value (name matched case-insensitively). For checking what the
//!   proxy forwards, one header at a time. Credentials (`Authorization`, `Proxy-Authorization`, `Cookie`) are
//!   reported as present or not, never their value: a diagnostic tool reachable by any authorized client must
//!   not hand out another hop's token. Over stdio there is no HTTP request, and it says so.
//! - `authContext`: the identity headers the gate sets (`X-User-Id`, `X-User-Name`, `X-User-Email`,
//!   `X-Client-Id`, `X-Scopes`; null when absent, a list when a header came more than once, which a correct
//!   proxy never lets happen) and whether an `Authorization` header reached the server (behind the gate it must
//!   not). Over stdio: the identity variables the bridge sets for a child (`MCP_BRIDGE_USER_ID`,
//!   `MCP_BRIDGE_USER_NAME`, `MCP_BRIDGE_USER_EMAIL`, `MCP_BRIDGE_SESSION_ID`).
//! - `requestTiming {delay_ms?}`: waits `delay_ms` (at most [`MAX_DELAY_MS`]; more is refused as invalid
//!   params), then reports when the request was received and how long handling it took, so a test can make a
//!   slow request (timeouts, concurrency, a client that goes away).
//! - `healthProbe`: status, version, uptime and process id, so a test can tell processes apart (which user's
//!   child answered, whether a child was restarted).
//!
//! What it deliberately does not have: the predecessor's `environmentDump`. The environment of a server holds
//! its secrets, and a tool that prints it hands them to every client the gate lets in; `authContext` over stdio
//! reads only the four identity variables, by name. Nothing here logs a header value (only tool names and the
//! header name asked for), so no token reaches the log either.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::HeaderMap;
use axum::http::request::Parts;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions, Implementation, ServerCapabilities};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::EchoArgs;

/// The longest wait `requestTiming` accepts, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;

/// The identity headers the gate sets, as `authContext` names them.
pub const IDENTITY_HEADERS: [&str; 5] = [
    "X-User-Id",
    "X-User-Name",
    "X-User-Email",
    "X-Client-Id",
    "X-Scopes",
];

/// The identity variables the bridge sets for a child, as `authContext` reports them over stdio.
pub const IDENTITY_VARIABLES: [&str; 4] = [
    "MCP_BRIDGE_USER_ID",
    "MCP_BRIDGE_USER_NAME",
    "MCP_BRIDGE_USER_EMAIL",
    "MCP_BRIDGE_SESSION_ID",
];

/// Headers whose values `printHeader` never shows: credentials.
const REDACTED_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// What `printHeader` answers for a credential header that is present.
pub const REDACTED: &str = "<present, redacted>";

/// What `printHeader` answers over stdio.
pub const NO_HTTP_OVER_STDIO: &str = "no HTTP request over stdio";

/// How the server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP: tools see the request's headers.
    Http,
    /// stdin/stdout, as a child of the bridge: no headers; the identity comes from the environment.
    Stdio,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Stdio => "stdio",
        }
    }
}

/// When the HTTP request arrived, put into the request's extensions before rmcp sees it, so `requestTiming`
/// reports the arrival rather than the moment its handler ran.
#[derive(Debug, Clone, Copy)]
struct ReceivedAt {
    wall: SystemTime,
    mono: Instant,
}

impl ReceivedAt {
    fn now() -> Self {
        #[allow(
            clippy::disallowed_methods,
            reason = "a diagnostic report of the wall-clock arrival time; nothing is decided on it"
        )]
        let wall = SystemTime::now();
        ReceivedAt {
            wall,
            mono: Instant::now(),
        }
    }
}

/// The diagnostic server: one value per session (HTTP) or per process (stdio); state is only the start time.
#[derive(Debug, Clone)]
pub struct EchoServer {
    transport: Transport,
    started: Instant,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoParams {
    /// The text to send back.
    pub message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PrintHeaderParams {
    /// The header's name (case-insensitive), e.g. `X-User-Id`.
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RequestTimingParams {
    /// How long to wait before answering, in milliseconds (0 to 60000; default 0).
    pub delay_ms: Option<u64>,
}

/// The request's HTTP parts, when the request came over HTTP.
fn parts(extensions: &Extensions) -> Option<&Parts> {
    extensions.get::<Parts>()
}

/// A header's values: null when absent, a string when sent once, a list when sent more than once. A value that
/// is not UTF-8 is shown lossily (this is for a person reading a diagnosis).
fn header_values(headers: &HeaderMap, name: &str) -> Value {
    let values: Vec<Value> = headers
        .get_all(name)
        .iter()
        .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    match <[Value; 1]>::try_from(values) {
        Ok([one]) => one,
        Err(values) if values.is_empty() => Value::Null,
        Err(values) => Value::Array(values),
    }
}

/// The JSON answer of `authContext` over HTTP.
fn http_auth_context(headers: &HeaderMap) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("transport".into(), Transport::Http.name().into());
    for name in IDENTITY_HEADERS {
        out.insert(name.into(), header_values(headers, name));
    }
    out.insert(
        "authorization_header_present".into(),
        headers
            .contains_key(axum::http::header::AUTHORIZATION)
            .into(),
    );
    Value::Object(out)
}

/// The JSON answer of `authContext` over stdio: the identity variables, read one by one by name (never the
/// whole environment). No HTTP request reaches a stdio server, so no `Authorization` header can.
fn stdio_auth_context(var: impl Fn(&str) -> Option<String>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("transport".into(), Transport::Stdio.name().into());
    for name in IDENTITY_VARIABLES {
        out.insert(name.into(), var(name).map_or(Value::Null, Value::from));
    }
    out.insert("authorization_header_present".into(), false.into());
    Value::Object(out)
}

/// The text answer of `printHeader` over HTTP.
fn print_header(headers: &HeaderMap, name: &str) -> Result<String, ErrorData> {
    let header = axum::http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
        ErrorData::invalid_params(format!("{name:?} is not a valid HTTP header name"), None)
    })?;
    let values: Vec<String> = headers
        .get_all(&header)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        return Ok(format!("header {header} not present"));
    }
    if REDACTED_HEADERS.contains(&header.as_str()) {
        return Ok(REDACTED.to_owned());
    }
    // One value per line when the header came more than once.
    Ok(values.join("\n"))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[tool_router]
impl EchoServer {
    pub fn new(transport: Transport) -> Self {
        EchoServer {
            transport,
            started: Instant::now(),
        }
    }

    #[tool(description = "Returns the message unchanged.")]
    async fn echo(&self, Parameters(p): Parameters<EchoParams>) -> String {
        tracing::debug!(tool = "echo", "tool call");
        p.message
    }

    #[tool(
        name = "printHeader",
        description = "Returns one request header's value (name case-insensitive), or says it is not present. \
                       Authorization, Proxy-Authorization and Cookie are shown only as present, never their value."
    )]
    async fn print_header(
        &self,
        extensions: Extensions,
        Parameters(p): Parameters<PrintHeaderParams>,
    ) -> Result<String, ErrorData> {
        tracing::debug!(tool = "printHeader", header = %p.name, "tool call");
        match parts(&extensions) {
            Some(parts) => print_header(&parts.headers, &p.name),
            None => Ok(NO_HTTP_OVER_STDIO.to_owned()),
        }
    }

    #[tool(
        name = "authContext",
        description = "The identity the server received: over HTTP the gate's headers (X-User-Id, X-User-Name, \
                       X-User-Email, X-Client-Id, X-Scopes; null when absent) and whether an Authorization header \
                       reached the server (it never should); over stdio the MCP_BRIDGE_* identity variables."
    )]
    async fn auth_context(&self, extensions: Extensions) -> CallToolResult {
        tracing::debug!(tool = "authContext", "tool call");
        let context = match parts(&extensions) {
            Some(parts) => http_auth_context(&parts.headers),
            None => stdio_auth_context(|name| std::env::var(name).ok()),
        };
        CallToolResult::structured(context)
    }

    #[tool(
        name = "requestTiming",
        description = "Waits delay_ms milliseconds (at most 60000), then reports when the request was received \
                       and how long handling it took."
    )]
    async fn request_timing(
        &self,
        extensions: Extensions,
        Parameters(p): Parameters<RequestTimingParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let received = parts(&extensions)
            .and_then(|parts| parts.extensions.get::<ReceivedAt>().copied())
            .unwrap_or_else(ReceivedAt::now);
        let delay_ms = p.delay_ms.unwrap_or(0);
        tracing::debug!(tool = "requestTiming", delay_ms, "tool call");
        if delay_ms > MAX_DELAY_MS {
            return Err(ErrorData::invalid_params(
                format!("delay_ms is {delay_ms}; at most {MAX_DELAY_MS} is allowed"),
                None,
            ));
        }
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let handled = received.mono.elapsed();
        Ok(CallToolResult::structured(json!({
            "received_at": rfc3339(received.wall),
            "delay_ms": delay_ms,
            "handled_ms": u64::try_from(handled.as_millis()).unwrap_or(u64::MAX),
        })))
    }

    #[tool(
        name = "healthProbe",
        description = "Status, server version, uptime in seconds and process id."
    )]
    async fn health_probe(&self) -> CallToolResult {
        tracing::debug!(tool = "healthProbe", "tool call");
        CallToolResult::structured(json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": self.started.elapsed().as_secs(),
            "pid": std::process::id(),
            "transport": self.transport.name(),
        }))
    }
}

#[tool_handler]
impl ServerHandler for EchoServer {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("mcp-bridge-echo", env!("CARGO_PKG_VERSION"))
                    .with_title("mcp-bridge diagnostic server"),
            )
            .with_instructions(
                "Diagnostics: what reaches an MCP server behind the gate (headers, identity, timing).",
            )
    }
}

/// Runs `mcp-bridge echo` until SIGINT/SIGTERM (HTTP) or the end of stdin (stdio). Logs go to stderr.
pub fn run(args: EchoArgs) -> ExitCode {
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-bridge echo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        if args.stdio {
            serve_stdio().await
        } else {
            serve_http(&args).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "mcp-bridge echo failed");
            eprintln!("mcp-bridge echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignored when a subscriber is already set (the binary's main may have set one).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// MCP over stdin/stdout, until stdin ends (the bridge closes it to stop the child).
async fn serve_stdio() -> Result<(), Cow<'static, str>> {
    tracing::info!("mcp-bridge echo serving MCP on stdin/stdout");
    let service = EchoServer::new(Transport::Stdio)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP over stdio: {e}"))?;
    service
        .waiting()
        .await
        .map_err(|e| format!("MCP over stdio: {e}"))?;
    Ok(())
}

/// Streamable HTTP at `--path` on `--listen`, until SIGINT or SIGTERM.
async fn serve_http(args: &EchoArgs) -> Result<(), Cow<'static, str>> {
    if !crate::cli::is_plain_path(&args.path) {
        return Err(format!(
            "--path {:?} must be a plain path: '/' then letters, digits and . _ ~ / - only",
            args.path
        )
        .into());
    }
    let cancel = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel.child_token())
        .with_allowed_hosts(args.allow_hosts.iter().cloned());
    if args.allow_hosts.iter().any(|h| h == "*") {
        config = config.disable_allowed_hosts();
    }
    let mcp = StreamableHttpService::new(
        || Ok(EchoServer::new(Transport::Http)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app =
        axum::Router::new()
            .route_service(&args.path, mcp)
            .layer(axum::middleware::map_request(
                |mut request: axum::extract::Request| async move {
                    request.extensions_mut().insert(ReceivedAt::now());
                    request
                },
            ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    tracing::info!(listen = %local, path = %args.path, "mcp-bridge echo serving Streamable HTTP");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("mcp-bridge echo stopping");
            // Ends the sessions' open SSE streams, which graceful shutdown would otherwise wait for.
            cancel.cancel();
        })
        .await
        .map_err(|e| format!("serving HTTP: {e}").into())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn credentials_are_reported_present_but_never_shown() {
        let h = headers(&[
            ("authorization", "Bearer secret-token"),
            ("cookie", "session=secret"),
        ]);
        assert_eq!(print_header(&h, "Authorization").unwrap(), REDACTED);
        assert_eq!(print_header(&h, "COOKIE").unwrap(), REDACTED);
        assert_eq!(
            print_header(&h, "proxy-authorization").unwrap(),
            "header proxy-authorization not present"
        );
        let context = http_auth_context(&h);
        assert_eq!(context["authorization_header_present"], true);
        assert!(!context.to_string().contains("secret"));
    }

    #[test]
    fn a_header_sent_twice_shows_both_values() {
        let h = headers(&[("x-user-id", "local:alice"), ("x-user-id", "forged")]);
        assert_eq!(
            print_header(&h, "x-user-id").unwrap(),
            "local:alice\nforged"
        );
        assert_eq!(
            http_auth_context(&h)["X-User-Id"],
            json!(["local:alice", "forged"])
        );
        assert_eq!(http_auth_context(&h)["X-Scopes"], Value::Null);
    }

    #[test]
    fn an_invalid_header_name_is_invalid_params() {
        let e = print_header(&HeaderMap::new(), "bad header").unwrap_err();
        assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    }

    #[test]
    fn over_stdio_only_the_identity_variables_are_read() {
        let asked = std::sync::Mutex::new(Vec::new());
        let context = stdio_auth_context(|name| {
            asked.lock().unwrap().push(name.to_owned());
            (name == "MCP_BRIDGE_USER_ID").then(|| "local:alice".to_owned())
        });
        assert_eq!(context["MCP_BRIDGE_USER_ID"], "local:alice");
        assert_eq!(context["MCP_BRIDGE_SESSION_ID"], Value::Null);
        assert_eq!(*asked.lock().unwrap(), IDENTITY_VARIABLES);
    }
}
